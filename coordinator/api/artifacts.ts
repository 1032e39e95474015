import type { JobId } from '../../protocol/index.js';
import { parseJobId } from '../../protocol/index.js';
import { inputNameProblem, PublishConflict, PublishMissing, SHA256_HEX, UploadError } from '../artifacts/index.js';
import { authenticate, maySee } from '../auth.js';
import type { Principal } from '../auth.js';
import type { Core } from '../core.js';
import { BadRequest, Conflict, Forbidden, HttpError, NotFound, Unauthorized } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import { contentTypeOf, serveBlob } from '../http/ranges.js';
import { isTerminal } from '../jobs.js';
import type { Router } from '../router.js';
import { json, queryInt, readJson, str } from '../router.js';
import type { JobRecord, OutputRecord } from '../store/records.js';

/** Names of series, versions and published files: one path segment each. */
const PUBLISH_PART = /^(?!\.{1,2}$)[A-Za-z0-9._+-]{1,128}$/;

function visibleJob(core: Core, me: Principal, raw: string): JobRecord {
  const id = parseJobId(raw);
  const job = core.jobs.get(id);
  if (!job || !maySee(me, job)) throw new NotFound(`job ${id} does not exist`);
  return job;
}

function ownJob(core: Core, me: Principal, raw: string, what: string): JobRecord {
  const job = visibleJob(core, me, raw);
  if (job.owner !== me.user.id && !me.has('admin')) throw new Forbidden(`only the owner or an admin may ${what} job ${job.id}`);
  return job;
}

/** An upload's failure as an HTTP error with the same stable code. */
function httpOf(err: unknown): unknown {
  if (!(err instanceof UploadError)) return err;
  const status = { OUTPUT_TOO_LARGE: 413, QUOTA_EXCEEDED: 507, DISK_FULL: 507, HASH_MISMATCH: 409, SIZE_MISMATCH: 409, BAD_OFFSET: 409, UNKNOWN_UPLOAD: 404, BAD_PATH: 400, NOT_RUNNING: 409, STORE_ERROR: 500 }[err.code];
  return new HttpError(status, err.code, err.message);
}

function outputJson(o: OutputRecord): Record<string, unknown> {
  return { path: o.path, size: o.size, mode: o.mode, mtime: o.mtime, sha256: o.sha256, committedAt: o.committedAt };
}

function serveOutput(core: Core, req: HttpRequest, signal: AbortSignal, job: JobId, o: { path: string; size: number; sha256: string; committedAt?: number }): HttpResponse {
  return serveBlob(req, {
    size: o.size, sha256: o.sha256, contentType: contentTypeOf(o.path), fileName: o.path.split('/').pop()!,
    ...(o.committedAt !== undefined ? { lastModified: o.committedAt } : {}),
    open: (start, end, sig) => core.artifacts.blobs.read(o.sha256, start, end, sig),
  }, signal);
}

/** The id under which an input's upload is kept: one per job and name. */
const inputUploadId = (job: JobId, name: string) => `${job}-input-${name}`;

/** Routes for outputs, inputs, publishing, hash search and stable URLs (docs/artifacts.md). */
export function artifactRoutes(core: Core, r: Router): void {
  const input = (me: Principal, id: string, name: string) => {
    const job = ownJob(core, me, id, 'upload inputs to');
    const bad = inputNameProblem(name);
    if (bad) throw new BadRequest(`input name ${bad}`, 'BAD_INPUT_NAME');
    if (!(job.inputs ?? []).includes(name)) throw new NotFound(`job ${job.id} declares no input ${JSON.stringify(name)} (it declares: ${(job.inputs ?? []).join(', ') || 'none'})`);
    return job;
  };

  r.add('POST', '/api/v1/jobs/:id/inputs/:name', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = input(me, params.id!, params.name!);
    const name = params.name!;
    const body = readJson(req);
    const size = body.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new BadRequest(`field "size" must be a non-negative integer, got ${JSON.stringify(size)}`);
    const sha256 = str(body, 'sha256', { max: 64 }).toLowerCase();
    if (!SHA256_HEX.test(sha256)) throw new BadRequest(`field "sha256" must be 64 hex digits, got ${JSON.stringify(sha256)}`);
    const done = core.dbs.inputs.get([job.id, name]);
    if (done?.sha256) {
      if (done.sha256 !== sha256) throw new Conflict(`input ${name} of job ${job.id} is already committed with SHA-256 ${done.sha256}`, 'INPUT_COMMITTED');
      return json(200, { offset: done.size, committed: true });
    }
    if (job.state !== 'waiting') throw new Conflict(`job ${job.id} is ${job.state}; inputs are taken only while it waits`, 'JOB_NOT_WAITING');
    if (size > core.config.maxOutputBytes) throw new HttpError(413, 'OUTPUT_TOO_LARGE', `input ${name} is ${size} bytes, over the per-file limit of ${core.config.maxOutputBytes} bytes (max_output_bytes)`);
    const id = inputUploadId(job.id, name);
    const prev = core.dbs.uploads.get(id);
    if (prev && (prev.size !== size || prev.expectSha256 !== sha256)) {
      // The owner is sending another file under the same name: start over rather than splice two files.
      await core.artifacts.uploads.abort(id);
    }
    try {
      const { offset, committed } = await core.artifacts.uploads.begin({ id, job: job.id, kind: 'input', path: name, size, mode: 0o644, mtime: core.clock.now(), expectSha256: sha256 });
      return json(200, { offset, committed });
    } catch (err) {
      throw httpOf(err);
    }
  });

  r.add('PUT', '/api/v1/jobs/:id/inputs/:name', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = input(me, params.id!, params.name!);
    const offset = queryInt(req, 'offset', -1, 0, Number.MAX_SAFE_INTEGER);
    if (offset < 0) throw new BadRequest('query parameter "offset" is required');
    if (req.body.length === 0) throw new BadRequest('the request body (a chunk of the input) is empty');
    const id = inputUploadId(job.id, params.name!);
    if (!core.dbs.uploads.get(id)) throw new NotFound(`input ${params.name} of job ${job.id} has no upload in progress; POST to begin one`);
    try {
      const at = await core.artifacts.uploads.write(id, offset, req.body, 0, core.config.maxOutputBytes);
      return json(200, { offset: at });
    } catch (err) {
      throw httpOf(err);
    }
  });

  r.add('POST', '/api/v1/jobs/:id/inputs/:name/commit', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = input(me, params.id!, params.name!);
    const name = params.name!;
    const id = inputUploadId(job.id, name);
    const rec = core.dbs.uploads.get(id);
    if (!rec) {
      const done = core.dbs.inputs.get([job.id, name]);
      if (done?.sha256) return json(200, { name, size: done.size, sha256: done.sha256 });
      throw new NotFound(`input ${name} of job ${job.id} has no upload in progress; POST to begin one`);
    }
    try {
      const { sha256, size } = await core.artifacts.uploads.commit(id, rec.size, rec.expectSha256, (_r, sha, n) => {
        core.dbs.inputs.put([job.id, name], { v: 1, name, size: n, sha256: sha, committedAt: core.clock.now() });
      });
      await core.jobs.evaluateWaiting(job.id);
      core.artifacts.pokeArchive();
      return json(200, { name, size, sha256 });
    } catch (err) {
      throw httpOf(err);
    }
  });

  r.add('GET', '/api/v1/jobs/:id/inputs', ({ req, params }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    const inputs = (job.inputs ?? []).map((name) => {
      const rec = core.dbs.inputs.get([job.id, name]);
      const up = core.dbs.uploads.get(inputUploadId(job.id, name));
      return { name, size: rec?.size ?? up?.size ?? null, sha256: rec?.sha256 ?? null, committed: Boolean(rec?.sha256), received: rec?.sha256 ? rec.size : (up?.durable ?? 0) };
    });
    return json(200, { inputs });
  });

  r.add('GET', '/api/v1/jobs/:id/outputs', ({ req, params }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    return json(200, { outputs: core.artifacts.outputsOf(job.id).map(outputJson) });
  });

  r.add('GET', '/api/v1/jobs/:id/outputs/*path', ({ req, params, signal }) => {
    const job = visibleJob(core, authenticate(core, req), params.id!);
    const path = `/${params.path!}`;
    const o = core.dbs.outputs.get([job.id, path]);
    if (!o) throw new NotFound(`job ${job.id} has no output ${JSON.stringify(path)}`);
    return serveOutput(core, req, signal, job.id, o);
  });

  r.add('POST', '/api/v1/jobs/:id/publish', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = ownJob(core, me, params.id!, 'publish from');
    if (job.state !== 'completed') throw new Conflict(`job ${job.id} is ${job.state}; only completed jobs publish`, 'JOB_NOT_COMPLETED');
    const body = readJson(req);
    const fromOutput = str(body, 'fromOutput', { max: 4096 });
    const parts: Record<string, string> = {};
    for (const f of ['series', 'version', 'name'] as const) {
      const v = str(body, f, { max: 128 });
      if (!PUBLISH_PART.test(v)) throw new BadRequest(`field "${f}" ${JSON.stringify(v)} must be 1 to 128 of letters, digits, ".", "_", "+", "-" (one path segment)`);
      parts[f] = v;
    }
    const owner = me.user.id === job.owner ? me.user.name : (core.dbs.users.get(job.owner)?.name ?? job.owner);
    try {
      const rec = await core.artifacts.publish(job, owner, fromOutput, parts.series!, parts.version!, parts.name!);
      const url = `/public/file/${[owner, parts.series!, parts.version!, parts.name!].map(encodeURIComponent).join('/')}`;
      await core.events.appendControl(job.id, `published ${fromOutput} as ${url}`);
      return json(201, { url, sha256: rec.sha256, size: rec.size, job: rec.job, path: rec.path });
    } catch (err) {
      if (err instanceof PublishConflict) throw new Conflict(err.message, 'PUBLISH_CONFLICT');
      if (err instanceof PublishMissing) throw new NotFound(err.message);
      throw err;
    }
  });

  r.add('DELETE', '/api/v1/jobs/:id', async ({ req, params }) => {
    const me = authenticate(core, req);
    const job = ownJob(core, me, params.id!, 'delete');
    if (!isTerminal(job.state)) throw new Conflict(`job ${job.id} is ${job.state}; cancel it first, only ended jobs are deleted`, 'JOB_NOT_ENDED');
    const { freedBlobs } = await core.jobs.delete(job);
    return json(200, { deleted: job.id, freedBlobs });
  });

  r.add('GET', '/api/v1/outputs', ({ req }) => {
    const me = authenticate(core, req);
    const sha = (req.query.get('sha256') ?? '').toLowerCase();
    if (!SHA256_HEX.test(sha)) throw new BadRequest(`query parameter "sha256" must be 64 hex digits, got ${JSON.stringify(sha.slice(0, 80))}`);
    const limit = queryInt(req, 'limit', 1000, 1, 10_000);
    const out: Record<string, unknown>[] = [];
    for (const { key } of core.dbs.outputsByHash.getRange({ start: [sha, '\uffff', ''], end: [sha, '', ''], reverse: true })) {
      const job = core.jobs.get(key[1] as JobId);
      if (!job || !maySee(me, job)) continue;
      const o = core.dbs.outputs.get([job.id, key[2]]);
      if (!o) continue;
      out.push({ job: job.id, name: job.name, target: job.runTarget, state: job.state, owner: job.owner, ...outputJson(o) });
      if (out.length >= limit) break;
    }
    return json(200, { sha256: sha, outputs: out });
  });

  r.add('GET', '/api/v1/agent/jobs/:id/inputs/:sha256', ({ req, params, signal }) => {
    const id = parseJobId(params.id!);
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers['authorization'] ?? '');
    if (!m || !core.artifacts.checkInputToken(id, m[1]!)) throw new Unauthorized(`a valid input token for job ${id} is required`);
    const job = core.jobs.active.get(id);
    if (!job || job.state !== 'running') throw new Forbidden(`job ${id} is not running; its input token is no longer honoured`);
    const sha = params.sha256!;
    if (!SHA256_HEX.test(sha) || !core.artifacts.isInputOf(job, sha)) throw new NotFound(`job ${id} has no input with SHA-256 ${sha.slice(0, 64)}`);
    const blob = core.artifacts.blobs.get(sha);
    if (!blob) throw new NotFound(`blob ${sha} is not stored`);
    return serveOutput(core, req, signal, id, { path: sha, size: blob.size, sha256: sha });
  });

  r.add('GET', '/public/file/:owner/:series/:version/:name', ({ req, params, signal }) => {
    const rec = core.dbs.published.get([params.owner!, params.series!, params.version!, params.name!]);
    if (!rec) throw new NotFound(`nothing is published at ${params.owner}/${params.series}/${params.version}/${params.name}`);
    return serveOutput(core, req, signal, rec.job, { path: params.name!, size: rec.size, sha256: rec.sha256, committedAt: rec.publishedAt });
  });

  const latest = (req: HttpRequest, name: string): JobRecord => {
    const me = authenticate(core, req);
    const target = req.query.get('target') ?? '';
    for (const { key } of core.dbs.completedByName.getRange({ start: [name, target, '\uffff'], end: [name, target, ''], reverse: true })) {
      const job = core.jobs.get(key[2] as JobId);
      if (job && maySee(me, job)) return job;
    }
    throw new NotFound(`no completed job named ${JSON.stringify(name.slice(0, 200))}${target ? ` on target ${target}` : ''} that you may see`);
  };

  r.add('GET', '/job/:name/latest', ({ req, params }) => {
    const job = latest(req, params.name!);
    return { status: 302, headers: { location: `/job/${job.id}`, 'content-type': 'application/json' }, body: JSON.stringify({ job: job.id }) };
  });

  r.add('GET', '/job/:name/latest/*path', ({ req, params, signal }) => {
    const job = latest(req, params.name!);
    const path = `/${params.path!}`;
    const o = core.dbs.outputs.get([job.id, path]);
    if (!o) throw new NotFound(`job ${job.id} (the latest ${params.name}) has no output ${JSON.stringify(path)}`);
    return serveOutput(core, req, signal, job.id, o);
  });
}
