/**
 * The job page and the endpoints its script reads, all signed in by the
 * page session (or a bearer token) through `viewerOf`:
 *
 * | path | answer |
 * |---|---|
 * | `GET /job/:id` `?from=SEQ` | the page (JSON with `Accept: application/json`) |
 * | `GET /job/:id/events?after=N&limit=M` | `{job, state, events, next, done}` like the API; long lines cut |
 * | `GET /job/:id/search?q=TEXT&after=N` | `{query, matches: [{seq, stream, text}], next, done}` |
 * | `GET /job/:id/log.txt` | the raw log |
 * | `GET /job/:id/outputs/*path` | an output's bytes (Range, ETag) |
 *
 * A job the viewer may not see answers exactly like one that does not exist.
 */
import type { JobId } from '../../protocol/index.js';
import { parseJobId } from '../../protocol/index.js';
import type { DependencyView, JobPageData, JobView, OutputView } from '../../web/job.js';
import { renderJobPage } from '../../web/job.js';
import type { LogEvent } from '../../web/log.js';
import { jobJson } from '../api/jobs.js';
import type { Core } from '../core.js';
import { BadRequest, NotFound } from '../errors.js';
import { contentTypeOf, serveBlob } from '../http/ranges.js';
import { isTerminal } from '../jobs.js';
import type { Router } from '../router.js';
import { queryInt } from '../router.js';
import type { JobRecord } from '../store/records.js';
import { eventsAnswer, pageLines, searchLog, taskTimeline } from './job-log.js';
import { jobRef, reproducibilityOf } from './reproducibility.js';
import { pageJson, pageResponse, wantsJson } from './respond.js';
import type { Viewer } from './session.js';
import { mayView, viewerOf } from './session.js';

/** The path of the live-log WebSocket (coordinator/pages/live.ts). */
export const LIVE_PATH = '/api/v1/live';
/** Most dependents listed on a page. */
const DEPENDENTS_LIMIT = 200;

/** The job behind a URL segment, if the viewer may see it; 404 otherwise, 400 for a malformed id. */
export function visibleJob(core: Core, v: Viewer, raw: string): JobRecord {
  const id = parseJobId(raw);
  const job = core.jobs.get(id);
  if (!job || !mayView(core, v, job)) throw new NotFound(`job ${id} does not exist`);
  return job;
}

/** `/prefix/<path without its leading />`, each segment percent-encoded. */
function outputUrl(prefix: string, path: string): string {
  return `${prefix}/${path.replace(/^\/+/, '').split('/').map(encodeURIComponent).join('/')}`;
}

/** Everything the job page shows except its log lines. */
export async function jobPageData(core: Core, v: Viewer, j: JobRecord, shown: readonly LogEvent[]): Promise<JobPageData> {
  const now = core.clock.now();
  const id = j.id;
  const job: JobView = {
    ...jobJson(core, j),
    id, name: j.name, owner: j.owner, ownerName: core.dbs.users.get(j.owner)?.name ?? j.owner, target: j.target, runTarget: j.runTarget,
    state: j.state, worker: j.worker, tags: j.tags, submittedAt: j.submittedAt, assignedAt: j.assignedAt, endedAt: j.endedAt,
    reason: j.reason, cancelRequested: j.cancelRequested, private: j.private === true, lastEvent: core.events.lastSeq(id),
    tasks: j.tasks.map((t) => ({ name: t.name, script: t.script, env: t.env, envClear: t.envClear, workdir: t.workdir ?? null, uid: t.uid ?? null, gid: t.gid ?? null })),
  };
  const waitEnd = j.assignedAt ?? j.endedAt;
  const phases: JobPageData['timeline']['phases'] = [{ name: 'waiting', start: j.submittedAt, end: waitEnd }];
  if (j.assignedAt !== null) phases.push({ name: 'running', start: j.assignedAt, end: j.endedAt });
  const dependencies: DependencyView[] = Object.entries(j.dependencies ?? {}).map(([name, d]) => {
    const other = core.jobs.get(d.job);
    return { name, job: d.job, ref: other && mayView(core, v, other) ? jobRef(other) : null, copyOutputs: d.copyOutputs, onCompleted: d.onCompleted, onFailed: d.onFailed };
  });
  const dependents = [];
  for (const { key } of core.dbs.dependents.getRange({ start: [id, ''], end: [id, '\uffff'], limit: DEPENDENTS_LIMIT })) {
    const other = core.jobs.get(key[1] as JobId);
    if (other && mayView(core, v, other)) dependents.push(jobRef(other));
  }
  const inputs = (j.inputs ?? []).map((name) => {
    const rec = core.dbs.inputs.get([id, name]);
    return { name, size: rec?.size ?? null, sha256: rec?.sha256 ?? null };
  });
  const store = [...core.dbs.jobStore.getRange({ start: [id, ''], end: [id, '\uffff'] })]
    .map(({ key, value }) => ({ key: key[1], secret: value.secret, updatedAt: value.updatedAt }));
  const records = core.artifacts.outputsOf(id);
  const outputs: OutputView[] = records.map((o) => ({
    path: o.path, size: o.size, sha256: o.sha256, url: outputUrl(`/job/${id}/outputs`, o.path), apiUrl: outputUrl(`/api/v1/jobs/${id}/outputs`, o.path),
  }));
  return {
    job,
    times: {
      submittedAt: j.submittedAt, waitedMs: (waitEnd ?? now) - j.submittedAt,
      ranMs: j.assignedAt === null ? null : (j.endedAt ?? now) - j.assignedAt, endedAt: j.endedAt,
    },
    timeline: { phases, tasks: await taskTimeline(core, id) },
    dependencies, dependents, inputs, store, outputs,
    reproducibility: reproducibilityOf(core, v, j, records),
    log: {
      lastSeq: job.lastEvent, firstShown: shown[0]?.seq ?? 0, lastShown: shown.at(-1)?.seq ?? 0, live: !isTerminal(j.state),
      eventsUrl: `/job/${id}/events`, searchUrl: `/job/${id}/search`, rawUrl: `/job/${id}/log.txt`, liveUrl: LIVE_PATH,
    },
  };
}

/** Registers the job page and its log endpoints. */
export function jobPageRoutes(core: Core, r: Router): void {
  r.add('GET', '/job/:id', async ({ req, params }) => {
    const v = viewerOf(core, req);
    const job = visibleJob(core, v, params.id!);
    const fromRaw = req.query.get('from');
    const from = fromRaw === null ? null : queryInt(req, 'from', 0, 0, Number.MAX_SAFE_INTEGER);
    // The JSON answer never carries log lines: scripts page them through /events.
    const lines = wantsJson(req) ? [] : pageLines(core, job.id, from);
    const data = await jobPageData(core, v, job, lines);
    return pageResponse(req, v, { title: `${job.name} (${job.state})`, nav: 'jobs' }, data, (nonce) => renderJobPage(data, lines, nonce), { scripts: ['/static/job.js'] });
  });

  r.add('GET', '/job/:id/events', ({ req, params }) => {
    const job = visibleJob(core, viewerOf(core, req), params.id!);
    const after = queryInt(req, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = queryInt(req, 'limit', 500, 1, 5000);
    return pageJson(200, eventsAnswer(core, job.id, after, limit));
  });

  r.add('GET', '/job/:id/search', ({ req, params }) => {
    const job = visibleJob(core, viewerOf(core, req), params.id!);
    const q = req.query.get('q') ?? '';
    if (q.length === 0 || q.length > 200) throw new BadRequest(`query parameter "q" must be 1 to 200 characters, got ${q.length}`);
    const after = queryInt(req, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    return pageJson(200, searchLog(core, job.id, q, after));
  });

  r.add('GET', '/job/:id/log.txt', ({ req, params }) => {
    const job = visibleJob(core, viewerOf(core, req), params.id!);
    return {
      status: 200,
      headers: {
        'content-type': 'text/plain; charset=utf-8', 'content-disposition': `attachment; filename="${job.id}.log"`,
        'x-content-type-options': 'nosniff', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; sandbox",
      },
      body: core.events.text(job.id),
    };
  });

  r.add('GET', '/job/:id/outputs/*path', ({ req, params, signal }) => {
    const job = visibleJob(core, viewerOf(core, req), params.id!);
    const path = `/${params.path!}`;
    const o = core.dbs.outputs.get([job.id, path]);
    if (!o) throw new NotFound(`job ${job.id} has no output ${JSON.stringify(path.slice(0, 300))}`);
    const res = serveBlob(req, {
      size: o.size, sha256: o.sha256, contentType: contentTypeOf(o.path), fileName: o.path.split('/').pop()!, lastModified: o.committedAt,
      open: (start, end, sig) => core.artifacts.blobs.read(o.sha256, start, end, sig),
    }, signal);
    // Output bytes are whatever the build wrote: never let the browser run them as a page of ours.
    res.headers = { ...res.headers, 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; sandbox" };
    return res;
  });
}
