import type { FactoryId, UserId, WorkerId } from '../../protocol/index.js';
import { ProtocolError, hashSecret, isUlid, newId, newSecret, parseName, parseWorkerId } from '../../protocol/index.js';
import { authenticate, PRIV_ADMIN, requirePriv } from '../auth.js';
import type { Principal } from '../auth.js';
import type { Core } from '../core.js';
import { BadRequest, Conflict, NotFound } from '../errors.js';
import type { HttpRequest } from '../http/types.js';
import type { Router } from '../router.js';
import { json, optStr, optStringArray, readJson, str } from '../router.js';
import type { FactoryRecord, TargetRecord, UserRecord, WorkerRecord } from '../store/records.js';

const PRIV_RE = /^[a-z0-9][a-z0-9._:-]{0,63}$/;

function admin(core: Core, req: HttpRequest): Principal {
  const me = authenticate(core, req);
  requirePriv(me, PRIV_ADMIN);
  return me;
}

/**
 * Creates a user and a token for it (the token is returned once; only its
 * hash is kept). Used by the API and by `buildwire up` for the first admin.
 */
export async function createUser(core: Core, name: string, privileges: string[]): Promise<{ user: UserRecord; token: string }> {
  parseName(name, 'user name');
  if (core.dbs.userNames.get(name)) throw new Conflict(`user ${name} already exists`, 'USER_EXISTS');
  const user: UserRecord = { v: 1, id: newId<UserId>(core.clock.now()), name, privileges, createdAt: core.clock.now() };
  const token = newSecret('bwu');
  await core.dbs.env.transaction(() => {
    core.dbs.users.put(user.id, user);
    core.dbs.userNames.put(name, user.id);
    core.dbs.tokens.put(hashSecret(token), { v: 1, kind: 'user', id: user.id, createdAt: user.createdAt });
  });
  return { user, token };
}

/** Issues another token for an existing user or factory (the old ones keep working). */
export async function issueToken(core: Core, kind: 'user' | 'factory', id: string): Promise<string> {
  const token = newSecret(kind === 'user' ? 'bwu' : 'bwf');
  await core.dbs.tokens.put(hashSecret(token), { v: 1, kind, id, createdAt: core.clock.now() });
  return token;
}

/** Creates a factory record and its token. */
export async function createFactory(core: Core, name: string, targets: string[]): Promise<{ factory: FactoryRecord; token: string }> {
  parseName(name, 'factory name');
  for (const f of core.dbs.factories.getRange({})) if (f.value.name === name) throw new Conflict(`factory ${name} already exists`, 'FACTORY_EXISTS');
  for (const t of targets) if (!core.dbs.targets.get(parseName(t, 'target'))) throw new BadRequest(`target ${JSON.stringify(t)} does not exist`, 'UNKNOWN_TARGET');
  const factory: FactoryRecord = { v: 1, id: newId<FactoryId>(core.clock.now()), name, targets, enabled: true, createdAt: core.clock.now(), lastContactAt: null };
  const token = newSecret('bwf');
  await core.dbs.env.transaction(() => {
    core.dbs.factories.put(factory.id, factory);
    core.dbs.tokens.put(hashSecret(token), { v: 1, kind: 'factory', id: factory.id, createdAt: factory.createdAt });
  });
  return { factory, token };
}

/** Creates a target if it does not exist. */
export async function ensureTarget(core: Core, name: string, description: string): Promise<TargetRecord> {
  const existing = core.dbs.targets.get(name);
  if (existing) return existing;
  const t: TargetRecord = { v: 1, name: parseName(name, 'target'), description, redirect: null, privilege: null, createdAt: core.clock.now() };
  await core.dbs.targets.put(name, t);
  return t;
}

function findUser(core: Core, ref: string): UserRecord {
  const id = isUlid(ref) ? ref : core.dbs.userNames.get(ref);
  const u = id ? core.dbs.users.get(id) : undefined;
  if (!u) throw new NotFound(`user ${JSON.stringify(ref.slice(0, 80))} does not exist`);
  return u;
}

function findFactory(core: Core, ref: string): FactoryRecord {
  if (isUlid(ref)) {
    const f = core.dbs.factories.get(ref);
    if (f) return f;
  }
  for (const { value } of core.dbs.factories.getRange({})) if (value.name === ref) return value;
  throw new NotFound(`factory ${JSON.stringify(ref.slice(0, 80))} does not exist`);
}

function findWorker(core: Core, ref: string): WorkerRecord {
  const w = core.workers.get(parseWorkerId(ref));
  if (!w) throw new NotFound(`worker ${ref} does not exist`);
  return w;
}

function workerJson(core: Core, w: WorkerRecord): Record<string, unknown> {
  return {
    id: w.id, target: w.target, factory: w.factory, persistent: w.persistent, state: w.state, job: w.job, instance: w.instance,
    hold: w.hold, connected: core.agents.has(w.id as WorkerId), createdAt: w.createdAt, bootstrappedAt: w.bootstrappedAt,
    lastSeenAt: core.workers.lastSeen.get(w.id) ?? w.lastSeenAt, recycleReason: w.recycleReason, jobsRun: w.jobsRun, leaseExpiresAt: w.leaseExpiresAt,
  };
}

function factoryJson(core: Core, f: FactoryRecord): Record<string, unknown> {
  const link = core.factories.get(f.id);
  return { ...f, v: undefined, connected: !!link, free: link?.free ?? null };
}

/** Admin routes: users, targets, factories, workers, the global hold. */
export function adminRoutes(core: Core, r: Router): void {
  r.add('GET', '/api/v1/users', ({ req }) => {
    admin(core, req);
    return json(200, { users: [...core.dbs.users.getRange({})].map(({ value }) => ({ id: value.id, name: value.name, privileges: value.privileges, createdAt: value.createdAt })) });
  });
  r.add('POST', '/api/v1/users', async ({ req }) => {
    admin(core, req);
    const body = readJson(req);
    const privileges = optStringArray(body, 'privileges', 64) ?? [];
    for (const p of privileges) if (!PRIV_RE.test(p)) throw new BadRequest(`privilege ${JSON.stringify(p)} must be 1 to 64 of [a-z0-9._:-]`);
    const { user, token } = await createUser(core, str(body, 'name', { max: 64 }), privileges);
    return json(201, { id: user.id, name: user.name, privileges: user.privileges, token });
  });
  for (const verb of ['grant', 'revoke'] as const) {
    r.add('POST', `/api/v1/users/:user/${verb}`, async ({ req, params }) => {
      admin(core, req);
      const u = findUser(core, params.user!);
      const p = str(readJson(req), 'privilege', { max: 64 });
      if (!PRIV_RE.test(p)) throw new BadRequest(`privilege ${JSON.stringify(p)} must be 1 to 64 of [a-z0-9._:-]`);
      const privileges = verb === 'grant' ? [...new Set([...u.privileges, p])] : u.privileges.filter((x) => x !== p);
      await core.dbs.users.put(u.id, { ...u, privileges });
      return json(200, { id: u.id, name: u.name, privileges });
    });
  }

  r.add('GET', '/api/v1/targets', ({ req }) => {
    authenticate(core, req);
    return json(200, { targets: [...core.dbs.targets.getRange({})].map(({ value }) => ({ ...value, v: undefined })) });
  });
  r.add('POST', '/api/v1/targets', async ({ req }) => {
    admin(core, req);
    const body = readJson(req);
    const name = parseName(str(body, 'name', { max: 64 }), 'target');
    if (core.dbs.targets.get(name)) throw new Conflict(`target ${name} already exists`, 'TARGET_EXISTS');
    const privilege = optStr(body, 'privilege', 64) ?? null;
    if (privilege !== null && !PRIV_RE.test(privilege)) throw new BadRequest(`privilege ${JSON.stringify(privilege)} must be 1 to 64 of [a-z0-9._:-]`);
    const t: TargetRecord = { v: 1, name, description: optStr(body, 'description', 1024) ?? '', redirect: null, privilege, createdAt: core.clock.now() };
    await core.dbs.targets.put(name, t);
    return json(201, { ...t, v: undefined });
  });
  r.add('POST', '/api/v1/targets/:name/redirect', async ({ req, params }) => {
    admin(core, req);
    const t = core.dbs.targets.get(parseName(params.name, 'target'));
    if (!t) throw new NotFound(`target ${params.name} does not exist`);
    const body = readJson(req);
    const to = body.to === null ? null : parseName(str(body, 'to', { max: 64 }), 'target');
    if (to !== null) {
      if (!core.dbs.targets.get(to)) throw new BadRequest(`redirect target ${to} does not exist`, 'UNKNOWN_TARGET');
      // Refuse a loop now rather than at every submission.
      for (let cur: string | null = to, hops = 0; cur; cur = core.dbs.targets.get(cur)?.redirect ?? null, hops++) {
        if (cur === t.name || hops > 8) throw new BadRequest(`redirecting ${t.name} to ${to} would make a redirect loop`);
      }
    }
    const next = { ...t, redirect: to };
    await core.dbs.targets.put(t.name, next);
    return json(200, { ...next, v: undefined });
  });

  r.add('GET', '/api/v1/factories', ({ req }) => {
    admin(core, req);
    return json(200, { factories: [...core.dbs.factories.getRange({})].map(({ value }) => factoryJson(core, value)) });
  });
  r.add('POST', '/api/v1/factories', async ({ req }) => {
    admin(core, req);
    const body = readJson(req);
    const targets = optStringArray(body, 'targets', 64) ?? [];
    if (targets.length === 0) throw new BadRequest('field "targets" must name at least one target');
    const { factory, token } = await createFactory(core, str(body, 'name', { max: 64 }), targets);
    return json(201, { ...factoryJson(core, factory), token });
  });
  for (const verb of ['enable', 'disable'] as const) {
    r.add('POST', `/api/v1/factories/:factory/${verb}`, async ({ req, params }) => {
      admin(core, req);
      const f = { ...findFactory(core, params.factory!), enabled: verb === 'enable' };
      await core.dbs.factories.put(f.id, f);
      if (!f.enabled) core.factories.get(f.id)?.close(new ProtocolError('BAD_TOKEN', `factory ${f.name} was disabled`));
      else core.scheduler.poke();
      return json(200, factoryJson(core, f));
    });
  }

  r.add('GET', '/api/v1/workers', ({ req }) => {
    admin(core, req);
    const all = req.query.get('all') === '1';
    const list = all ? [...core.dbs.workers.getRange({ reverse: true, limit: 1000 })].map((e) => e.value) : [...core.workers.live.values()];
    return json(200, { workers: list.map((w) => workerJson(core, w)) });
  });
  r.add('POST', '/api/v1/workers', async ({ req }) => {
    admin(core, req);
    const body = readJson(req);
    const target = parseName(str(body, 'target', { max: 64 }), 'target');
    if (!core.dbs.targets.get(target)) throw new BadRequest(`target ${target} does not exist`, 'UNKNOWN_TARGET');
    const { worker, credential } = core.workers.create(target, null, true);
    await core.dbs.workers.put(worker.id, worker);
    return json(201, { ...workerJson(core, worker), credential, coordinatorKey: Buffer.from(core.identity.publicKey).toString('base64') });
  });
  for (const verb of ['hold', 'release', 'recycle'] as const) {
    r.add('POST', `/api/v1/workers/:worker/${verb}`, async ({ req, params }) => {
      admin(core, req);
      let w = findWorker(core, params.worker!);
      if (w.state === 'destroyed') throw new Conflict(`worker ${w.id} is already destroyed`, 'WORKER_DESTROYED');
      if (verb === 'recycle') core.workers.recycle(w, 'recycled by an administrator');
      else w = core.workers.setHold(w, verb === 'hold');
      await core.dbs.workers.flushed;
      return json(200, workerJson(core, core.workers.get(w.id)!));
    });
  }

  r.add('GET', '/api/v1/control', ({ req }) => {
    authenticate(core, req);
    return json(200, { hold: core.scheduler.hold, ...core.scheduler.stats() });
  });
  for (const verb of ['hold', 'resume'] as const) {
    r.add('POST', `/api/v1/control/${verb}`, async ({ req }) => {
      admin(core, req);
      await core.scheduler.setHold(verb === 'hold');
      return json(200, { hold: core.scheduler.hold });
    });
  }
}

export type { FactoryId };
