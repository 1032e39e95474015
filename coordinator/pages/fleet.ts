import type { FactoryId, JobId, WorkerId } from '../../protocol/index.js';
import { parseWorkerId } from '../../protocol/index.js';
import type { FactoriesPageData, FactoryRow, TargetRow, TargetsPageData, WorkerRow, WorkersPageData } from '../../web/fleet.js';
import { renderFactoriesPage, renderTargetsPage, renderWorkersPage } from '../../web/fleet.js';
import { PRIV_ADMIN } from '../auth.js';
import type { Core } from '../core.js';
import { Conflict, Forbidden, NotFound } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import type { Router } from '../router.js';
import type { WorkerRecord } from '../store/records.js';
import { pageJson, pageResponse, seeOther, wantsJson } from './respond.js';
import type { Viewer } from './session.js';
import { checkCsrf, mayView, readForm, viewerOf } from './session.js';

/** Most destroyed-and-live workers `/workers?all=1` lists. */
export const MAX_ALL_WORKERS = 1_000;

/** A worker's row; its job is named only when the viewer may see that job. */
export function workerRow(core: Core, v: Viewer, w: WorkerRecord, factoryNames: Map<string, string>): WorkerRow {
  const job = w.job ? core.jobs.get(w.job as JobId) : undefined;
  return {
    id: w.id, target: w.target, factory: w.factory ? { id: w.factory, name: factoryNames.get(w.factory) ?? w.factory } : null,
    persistent: w.persistent, state: w.state, hold: w.hold, connected: core.agents.has(w.id as WorkerId), instance: w.instance,
    createdAt: w.createdAt, ageMs: core.clock.now() - w.createdAt, lastSeenAt: core.workers.lastSeen.get(w.id) ?? w.lastSeenAt,
    job: job && mayView(core, v, job) ? job.id : null, busy: w.job !== null, jobsRun: w.jobsRun, recycleReason: w.recycleReason,
  };
}

/** Factory id → name, for worker rows. */
export function factoryNames(core: Core): Map<string, string> {
  return new Map([...core.dbs.factories.getRange({})].map(({ value }) => [value.id, value.name]));
}

/** Live workers, newest first. */
export function liveWorkers(core: Core, v: Viewer): WorkerRow[] {
  const names = factoryNames(core);
  return [...core.workers.live.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).map((w) => workerRow(core, v, w, names));
}

/** Every factory with its capacity (free slots from its live link) and last contact. */
export function factoryRows(core: Core): FactoryRow[] {
  const perFactory = new Map<string, number>();
  for (const w of core.workers.live.values()) if (w.factory) perFactory.set(w.factory, (perFactory.get(w.factory) ?? 0) + 1);
  return [...core.dbs.factories.getRange({})].map(({ value: f }) => {
    const link = core.factories.get(f.id as FactoryId);
    return {
      id: f.id, name: f.name, targets: f.targets, enabled: f.enabled, connected: link !== undefined, free: link?.free ?? null,
      lastContactAt: f.lastContactAt, workers: perFactory.get(f.id) ?? 0,
    };
  });
}

/** 403 unless the viewer is an admin (checked after the CSRF token, which every POST must carry). */
function requireAdmin(v: Viewer): void {
  if (!v.has(PRIV_ADMIN)) throw new Forbidden(`user ${v.user?.name ?? '(anonymous)'} lacks the "${PRIV_ADMIN}" privilege`);
}

/** After an admin action: back to the page the form was on (same site only), or JSON for scripts. */
function afterAction(req: HttpRequest, fallback: string, result: unknown): HttpResponse {
  if (wantsJson(req)) return pageJson(200, result);
  const ref = req.headers['referer'];
  let back = fallback;
  if (ref) {
    try {
      const u = new URL(ref);
      if (u.host === req.headers['host'] && (u.pathname === '/' || u.pathname === '/workers')) back = u.pathname + u.search;
    } catch {
      // A malformed Referer just means we go to the fallback.
    }
  }
  return seeOther(back);
}

/** Routes of the Workers, Factories and Targets pages, and the admin buttons' POST targets. */
export function fleetRoutes(core: Core, r: Router): void {
  r.add('GET', '/workers', ({ req }) => {
    const v = viewerOf(core, req);
    const all = req.query.get('all') === '1';
    const names = factoryNames(core);
    const workers = all
      ? [...core.dbs.workers.getRange({ reverse: true, limit: MAX_ALL_WORKERS })].map(({ value }) => workerRow(core, v, core.workers.live.get(value.id as WorkerId) ?? value, names))
      : liveWorkers(core, v);
    const data: WorkersPageData = { hold: core.scheduler.hold, admin: v.has(PRIV_ADMIN), all, workers };
    return pageResponse(req, v, { title: 'Workers', nav: 'workers' }, data, () => renderWorkersPage(data, v.csrf));
  });

  r.add('GET', '/factories', ({ req }) => {
    const v = viewerOf(core, req);
    const data: FactoriesPageData = { factories: factoryRows(core) };
    return pageResponse(req, v, { title: 'Factories', nav: 'factories' }, data, () => renderFactoriesPage(data));
  });

  r.add('GET', '/targets', ({ req }) => {
    const v = viewerOf(core, req);
    const stats = core.scheduler.stats();
    const workers = new Map<string, number>();
    for (const w of core.workers.live.values()) workers.set(w.target, (workers.get(w.target) ?? 0) + 1);
    const targets: TargetRow[] = [...core.dbs.targets.getRange({})].map(({ value: t }) => ({
      name: t.name, description: t.description, redirect: t.redirect, privilege: t.privilege,
      queued: stats.queued[t.name] ?? 0, idle: stats.idle[t.name] ?? 0, coming: stats.coming[t.name] ?? 0, workers: workers.get(t.name) ?? 0,
    }));
    const data: TargetsPageData = { targets };
    return pageResponse(req, v, { title: 'Targets', nav: 'targets' }, data, () => renderTargetsPage(data));
  });

  // The same store operations as the admin API (coordinator/api/admin.ts): Workers.recycle/setHold.
  r.add('POST', '/workers/:worker/:verb', async ({ req, params }) => {
    const v = viewerOf(core, req);
    checkCsrf(v, readForm(req));
    requireAdmin(v);
    const verb = params.verb!;
    if (verb !== 'hold' && verb !== 'release' && verb !== 'recycle') throw new NotFound(`no such worker action ${JSON.stringify(verb.slice(0, 40))} (hold, release or recycle)`);
    const id = parseWorkerId(params.worker!);
    const w = core.workers.get(id);
    if (!w) throw new NotFound(`worker ${id} does not exist`);
    if (w.state === 'destroyed') throw new Conflict(`worker ${w.id} is already destroyed`, 'WORKER_DESTROYED');
    if (verb === 'recycle') core.workers.recycle(w, `recycled by ${v.user?.name ?? 'an administrator'} from the web page`);
    else core.workers.setHold(w, verb === 'hold');
    await core.dbs.workers.flushed;
    const now = core.workers.get(id) ?? w;
    return afterAction(req, '/workers', workerRow(core, v, now, factoryNames(core)));
  });

  r.add('POST', '/control/:verb', async ({ req, params }) => {
    const v = viewerOf(core, req);
    checkCsrf(v, readForm(req));
    requireAdmin(v);
    const verb = params.verb!;
    if (verb !== 'hold' && verb !== 'release') throw new NotFound(`no such control action ${JSON.stringify(verb.slice(0, 40))} (hold or release)`);
    await core.scheduler.setHold(verb === 'hold');
    return afterAction(req, '/', { hold: core.scheduler.hold });
  });
}
