import type { JobId, TaskSpec } from '../../protocol/index.js';
import { parseJobId, parseName, parseJobFile, JobFileError, parseOutputRule, OutputRuleError } from '../../protocol/index.js';
import { authenticate, maySee, PRIV_READ_ALL } from '../auth.js';
import type { Core } from '../core.js';
import { BadRequest, Conflict, Forbidden, NotFound } from '../errors.js';
import { isTerminal } from '../jobs.js';
import type { Router } from '../router.js';
import { json, optBool, optInt, optStr, optStringArray, optStringMap, queryInt, readJson, str } from '../router.js';
import type { DependencySpec, JobRecord, JobState, PublishSpec } from '../store/records.js';
import { inputNameProblem } from '../artifacts/index.js';
import type { Principal } from '../auth.js';
import type { HttpRequest } from '../http/types.js';

const STATES: readonly JobState[] = ['queued', 'waiting', 'running', 'completed', 'failed', 'cancelled'];
/** Jobs one list request looks at before answering with what it found and a cursor. */
export const LIST_SCAN_RECORDS = 20_000;

/** The public JSON form of a job. */
export function jobJson(core: Core, j: JobRecord): Record<string, unknown> {
  return {
    id: j.id, name: j.name, owner: j.owner, target: j.target, runTarget: j.runTarget, state: j.state, worker: j.worker,
    tags: j.tags, outputRules: j.outputRules, buildomat: j.buildomat, maxRuntimeMs: j.maxRuntimeMs,
    tasks: j.tasks.map((t) => ({ name: t.name, script: t.script, env: t.env, envClear: t.envClear, workdir: t.workdir ?? null, uid: t.uid ?? null, gid: t.gid ?? null })),
    submittedAt: j.submittedAt, assignedAt: j.assignedAt, endedAt: j.endedAt, reason: j.reason, cancelRequested: j.cancelRequested,
    lastEvent: core.events.lastSeq(j.id),
    inputs: j.inputs ?? [], dependencies: j.dependencies ?? {}, publish: j.publish ?? [], private: j.private === true,
  };
}

/** `inputs`: names of files the owner will upload before the job runs. */
function parseInputs(body: Record<string, unknown>): string[] {
  const names = optStringArray(body, 'inputs', 100) ?? [];
  for (const [i, n] of names.entries()) {
    const bad = inputNameProblem(n);
    if (bad) throw new BadRequest(`field "inputs[${i}]": input name ${bad}`, 'BAD_INPUT_NAME');
  }
  if (new Set(names).size !== names.length) throw new BadRequest('field "inputs" names the same input twice');
  return names;
}

/**
 * `dependencies`: {NAME: {job, copyOutputs, onCompleted, onFailed}}. A job
 * file's `[dependencies.NAME]` entries must each be mapped to a job id here.
 * The job depended on must exist and be visible, so no cycle can be made.
 */
function parseDependencies(core: Core, me: Principal, body: Record<string, unknown>, declared: Record<string, { job: string; copyOutputs: boolean }>): Record<string, DependencySpec> {
  const raw = body.dependencies ?? {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BadRequest('field "dependencies" must be an object of {job, copyOutputs, onCompleted, onFailed}');
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > 100) throw new BadRequest('field "dependencies" must have at most 100 entries');
  const out: Record<string, DependencySpec> = {};
  for (const [name, v] of entries) {
    const at = `dependencies.${name}`;
    const bad = inputNameProblem(name);
    if (bad) throw new BadRequest(`field "${at}": dependency name ${bad}`, 'BAD_INPUT_NAME');
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadRequest(`field "${at}" must be an object with "job"`);
    const o = v as Record<string, unknown>;
    const id = parseJobId(str(o, 'job', { max: 26 }));
    const prior = core.jobs.get(id);
    if (!prior || !maySee(me, prior)) throw new BadRequest(`field "${at}.job": job ${id} does not exist`, 'UNKNOWN_JOB');
    out[name] = {
      job: id,
      copyOutputs: sub(() => optBool(o, 'copyOutputs'), `${at}.copyOutputs`) ?? declared[name]?.copyOutputs ?? false,
      onCompleted: sub(() => optBool(o, 'onCompleted'), `${at}.onCompleted`) ?? true,
      onFailed: sub(() => optBool(o, 'onFailed'), `${at}.onFailed`) ?? false,
    };
  }
  for (const [name, d] of Object.entries(declared)) {
    if (!out[name]) throw new BadRequest(`the job file declares dependency ${JSON.stringify(name)} (on job ${JSON.stringify(d.job)}); map it to a job id in "dependencies.${name}.job"`, 'UNMAPPED_DEPENDENCY');
  }
  return out;
}

function visibleJob(core: Core, me: Principal, raw: string): JobRecord {
  const id = parseJobId(raw);
  const job = core.jobs.get(id);
  // A job the caller may not see answers exactly like one that does not exist.
  if (!job || !maySee(me, job)) throw new NotFound(`job ${id} does not exist`);
  return job;
}

function parseTasks(body: Record<string, unknown>): TaskSpec[] {
  const raw = body.tasks;
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 100) throw new BadRequest('field "tasks" must be an array of 1 to 100 tasks');
  return raw.map((t, i) => {
    if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new BadRequest(`field "tasks[${i}]" must be an object`);
    const o = t as Record<string, unknown>;
    const at = (f: string) => `tasks[${i}].${f}`;
    const script = o.script;
    if (typeof script !== 'string' || script.length === 0) throw new BadRequest(`field "${at('script')}" must be a non-empty string`);
    const task: TaskSpec = {
      name: typeof o.name === 'string' && o.name.length > 0 ? o.name.slice(0, 256) : `task-${i}`,
      script, env: sub(() => optStringMap(o, 'env') ?? {}, at('env')), envClear: sub(() => optBool(o, 'envClear') ?? false, at('envClear')),
    };
    const workdir = sub(() => optStr(o, 'workdir', 4096), at('workdir'));
    if (workdir !== undefined) task.workdir = workdir;
    const uid = sub(() => optInt(o, 'uid', 0, 2 ** 31), at('uid'));
    if (uid !== undefined) task.uid = uid;
    const gid = sub(() => optInt(o, 'gid', 0, 2 ** 31), at('gid'));
    if (gid !== undefined) task.gid = gid;
    return task;
  });
}

function sub<T>(f: () => T, path: string): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof BadRequest) throw new BadRequest(err.message.replace(/^field "[^"]*"/, `field "${path}"`));
    throw err;
  }
}

/** Resolves a target through redirects (bounded: a redirect loop is a 400). */
function resolveTarget(core: Core, me: Principal, name: string): string {
  let cur = name;
  for (let hops = 0; hops < 8; hops++) {
    const t = core.dbs.targets.get(cur);
    if (!t) throw new BadRequest(`target ${JSON.stringify(cur)} does not exist${cur !== name ? ` (redirected from ${name})` : ''}`, 'UNKNOWN_TARGET');
    if (t.privilege && !me.has(t.privilege)) throw new Forbidden(`target ${cur} requires the "${t.privilege}" privilege`);
    if (!t.redirect) return cur;
    cur = t.redirect;
  }
  throw new BadRequest(`target ${name} redirects more than 8 times`);
}

/** Routes for jobs, their events, and their stores. */
export function jobRoutes(core: Core, r: Router): void {
  r.add('POST', '/api/v1/jobs', async ({ req }) => {
    const me = authenticate(core, req);
    const body = readJson(req);
    let name = optStr(body, 'name', 128);
    let target = optStr(body, 'target', 64);
    let tasks: TaskSpec[];
    let outputRules = optStringArray(body, 'outputRules', 256) ?? [];
    const env = optStringMap(body, 'env') ?? {};
    let buildomat = false;
    let publish: PublishSpec[] = [];
    let declaredDeps: Record<string, { job: string; copyOutputs: boolean }> = {};
    const jobFile = optStr(body, 'jobFile', 1 << 20);
    if (jobFile !== undefined) {
      if (body.tasks !== undefined) throw new BadRequest('fields "jobFile" and "tasks" cannot both be given');
      let jf;
      try {
        jf = parseJobFile(jobFile, optStr(body, 'jobFileName', 256) ?? 'job file');
      } catch (err) {
        if (err instanceof JobFileError) throw new BadRequest(err.message, 'BAD_JOB_FILE');
        throw err;
      }
      name ??= jf.name;
      target ??= jf.target;
      outputRules = jf.outputRules.map((o) => o.rule);
      publish = jf.publish.map((p) => ({ fromOutput: p.fromOutput, series: p.series, name: p.name }));
      declaredDeps = { ...jf.dependencies };
      tasks = [{ name: 'default', script: jobFile, env: { ...jf.env, ...env }, envClear: false }];
      buildomat = true;
    } else {
      tasks = parseTasks(body);
      for (const t of tasks) t.env = { ...env, ...t.env };
    }
    if (name === undefined) throw new BadRequest('field "name" must be a string and is missing');
    // Real buildomat job names carry spaces and brackets ("build (illumos)"); refuse only what breaks logs and URLs.
    if (!/^[^\s\p{C}](?:[^\p{C}]{0,126}[^\s\p{C}])?$/u.test(name)) throw new BadRequest(`field "name" ${JSON.stringify(name)} must be 1 to 128 printable characters, not starting or ending with a space`);
    if (target === undefined) throw new BadRequest('field "target" must be a string and is missing');
    parseName(target, 'target');
    for (const [i, rule] of outputRules.entries()) {
      try {
        parseOutputRule(rule);
      } catch (err) {
        if (err instanceof OutputRuleError) throw new BadRequest(`field "outputRules[${i}]": ${err.message}`, 'BAD_OUTPUT_RULE');
        throw err;
      }
    }
    const inputs = parseInputs(body);
    const dependencies = parseDependencies(core, me, body, declaredDeps);
    const maxS = optInt(body, 'maxRuntimeSeconds', 1, Math.floor(core.config.maxRuntimeMs / 1000));
    const tags = optStringMap(body, 'tags', 64) ?? {};
    const runTarget = resolveTarget(core, me, target);
    const job = core.jobs.create({
      name, owner: me.user.id, target, runTarget, tasks, outputRules, tags, buildomat,
      maxRuntimeMs: maxS !== undefined ? maxS * 1000 : core.config.maxRuntimeMs, inputs, dependencies, publish,
      private: optBool(body, 'private') ?? false,
    });
    // Scheduling may start before the insert commits: the store applies writes in order, so an
    // assignment can never commit before its job, and the agent hears of it only after that.
    const committed = core.jobs.insert(job);
    if (job.state === 'queued') core.scheduler.enqueue(job);
    await committed;
    // Dependencies may all have ended already (and a job with neither inputs nor open dependencies queues now).
    if (job.state === 'waiting') await core.jobs.evaluateWaiting(job.id);
    return json(201, jobJson(core, job));
  });

  r.add('GET', '/api/v1/jobs', ({ req }) => {
    const me = authenticate(core, req);
    const limit = queryInt(req, 'limit', 100, 1, 1000);
    const state = req.query.get('state');
    if (state !== null && !STATES.includes(state as JobState)) throw new BadRequest(`query parameter "state" must be one of ${STATES.join(', ')}, got ${JSON.stringify(state.slice(0, 40))}`);
    const before = req.query.get('before');
    if (before !== null) parseJobId(before);
    const all = req.query.get('all') === '1' || req.query.get('all') === 'true';
    if (all && !me.has(PRIV_READ_ALL)) throw new Forbidden(`user ${me.user.name} lacks the "${PRIV_READ_ALL}" privilege needed for all=1`);
    const out: Record<string, unknown>[] = [];
    if (state !== null && !isTerminal(state as JobState)) {
      // Queued, waiting and running jobs are all in memory: no need to walk a store of a million ended ones.
      const ids = [...core.jobs.active.values()]
        .filter((j) => j.state === state && (all || j.owner === me.user.id) && (before === null || j.id < before))
        .map((j) => j.id).sort().reverse();
      const page = ids.slice(0, limit);
      return json(200, { jobs: page.map((id) => jobJson(core, core.jobs.get(id)!)), next: ids.length > limit ? page.at(-1)! : null });
    }
    // A filter that matches little must not read the whole store in one request: stop after
    // LIST_SCAN_RECORDS and say where to go on (`next`, the `before` of the next request).
    let scanned = 0;
    let lastId: string | null = null;
    let full = false;
    const keep = (id: string, j: JobRecord | undefined): boolean => {
      lastId = id;
      if (j && (state === null || j.state === state)) out.push(jobJson(core, j));
      full = out.length >= limit;
      return full || ++scanned >= LIST_SCAN_RECORDS;
    };
    let ended = true;
    if (all) {
      for (const { key, value } of core.dbs.jobs.getRange({ reverse: true, ...(before ? { start: before, exclusiveStart: true } : {}) })) {
        if (keep(key as string, value)) {
          ended = false;
          break;
        }
      }
    } else {
      const owner = me.user.id;
      const range = core.dbs.jobsByOwner.getRange({ start: [owner, before ?? '\uffff'], end: [owner, ''], reverse: true, exclusiveStart: before !== null });
      for (const { key } of range) {
        if (keep(key[1] as string, core.jobs.get(key[1] as JobId))) {
          ended = false;
          break;
        }
      }
    }
    return json(200, { jobs: out, next: ended ? null : lastId });
  });

  r.add('GET', '/api/v1/jobs/:id', ({ req, params }) => json(200, jobJson(core, visibleJob(core, authenticate(core, req), params.id!))));

  r.add('GET', '/api/v1/jobs/:id/events', async ({ req, params, signal }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    const after = queryInt(req, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = queryInt(req, 'limit', 10_000, 1, 100_000);
    const waitMs = queryInt(req, 'wait', 0, 0, Math.floor(core.config.maxWaitMs / 1000)) * 1000;
    let events = core.events.read(job.id, after, limit);
    if (events.length === 0 && waitMs > 0 && !isTerminal(core.jobs.get(job.id)!.state)) {
      await core.events.wait(job.id, after, waitMs, signal);
      events = core.events.read(job.id, after, limit);
    }
    const now = core.jobs.get(job.id)!;
    const last = events.at(-1)?.seq ?? after;
    const done = isTerminal(now.state) && last >= core.events.lastSeq(job.id);
    return json(200, { job: job.id, state: now.state, events, next: last, done });
  });

  r.add('GET', '/api/v1/jobs/:id/log', ({ req, params }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-disposition': `attachment; filename="${job.id}.log"` }, body: core.events.text(job.id) };
  });

  r.add('POST', '/api/v1/jobs/:id/cancel', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = visibleJob(core, me, params.id!);
    if (job.owner !== me.user.id && !me.has('admin')) throw new Forbidden(`only the owner or an admin may cancel job ${job.id}`);
    if (isTerminal(job.state)) throw new Conflict(`job ${job.id} already ended (${job.state})`, 'JOB_ENDED');
    const after = await core.jobs.cancel(job.id, `cancelled by ${me.user.name}`);
    return json(200, jobJson(core, after));
  });

  r.add('GET', '/api/v1/jobs/:id/store', ({ req, params }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    const out: Record<string, { value: string | null; secret: boolean; updatedAt: number }> = {};
    for (const { key, value } of core.dbs.jobStore.getRange({ start: [job.id, ''], end: [job.id, '\uffff'] })) {
      out[key[1]] = { value: value.secret ? null : value.value, secret: value.secret, updatedAt: value.updatedAt };
    }
    return json(200, { store: out });
  });

  r.add('GET', '/api/v1/jobs/:id/store/:key', ({ req, params }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    const key = storeKey(params.key!);
    const v = core.dbs.jobStore.get([job.id, key]);
    if (!v) throw new NotFound(`job ${job.id} has no store key ${JSON.stringify(key)}`);
    return json(200, { key, value: v.secret ? null : v.value, secret: v.secret, updatedAt: v.updatedAt });
  });

  r.add('PUT', '/api/v1/jobs/:id/store/:key', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = visibleJob(core, me, params.id!);
    if (job.owner !== me.user.id && !me.has('admin')) throw new Forbidden(`only the owner or an admin may change job ${job.id}'s store`);
    const key = storeKey(params.key!);
    const body = readJson(req);
    const value = str(body, 'value', { max: 1 << 20 });
    const secret = optBool(body, 'secret') ?? false;
    await core.dbs.jobStore.put([job.id, key], { v: 1, value, secret, updatedAt: core.clock.now() });
    return json(200, { key, value: secret ? null : value, secret });
  });
}

function storeKey(raw: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,99}$/.test(raw)) throw new BadRequest(`store key ${JSON.stringify(raw.slice(0, 120))} must be 1 to 100 of [A-Za-z0-9_], not starting with a digit`);
  return raw;
}

export type { HttpRequest };
