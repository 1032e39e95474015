import type { Auth, Batch, Chunk, FactoryId, FromFactory, Message, OutputRuleMatcher, Role, UploadBegin, UploadEnd, WorkerId } from '../protocol/index.js';
import {
  ProtocolError, REC, REC_KIND_MASK, SEALED_HEADER_BYTES, ServerHandshake, compileOutputRules, encodeError, hashSecret, parseOutputRule,
} from '../protocol/index.js';
import { SYNC_EVERY_BYTES, UploadError } from './artifacts/index.js';
import type { SealedChannel } from '../protocol/index.js';
import type { AgentLink, Core, FactoryLink } from './core.js';
import type { WsConnection, WsRoute } from './http/types.js';
import type { JobId } from '../protocol/index.js';

type Stage = 'hello' | 'auth' | 'authenticating' | 'open' | 'closed';

/** Per-connection state of an agent or factory socket. */
interface Peer {
  id: number;
  stage: Stage;
  /** The handshake, dropped once the session is open (10,000 idle agents should not keep it). */
  hs: ServerHandshake | null;
  channel: SealedChannel | null;
  role: Role;
  agent: AgentLink | null;
  factory: FactoryLink | null;
  /** Log and chunk bytes received but not yet committed or written (the coordinator's side of the window). */
  unacked: number;
  /** Uploads begun on this connection, by id, with their job. */
  uploads: Map<string, JobId>;
}

/**
 * Compiled output rules, one per job: a job's record is copied on every
 * change, but its rules array travels along unchanged, so it keys the cache.
 */
const matchers = new WeakMap<readonly string[], OutputRuleMatcher>();
function matcherFor(rules: readonly string[]): OutputRuleMatcher {
  let m = matchers.get(rules);
  if (!m) matchers.set(rules, (m = compileOutputRules(rules.map(parseOutputRule))));
  return m;
}

/** Why an output path cannot be stored, or null. Paths are absolute, normalised rule-space paths. */
export function outputPathProblem(path: string): string | null {
  if (!path.startsWith('/')) return `output path ${JSON.stringify(path.slice(0, 200))} is not absolute`;
  if (path.includes('\0')) return `output path ${JSON.stringify(path.slice(0, 200))} contains a NUL byte`;
  const segs = path.split('/').slice(1);
  if (segs.some((s) => s === '' || s === '.' || s === '..')) return `output path ${JSON.stringify(path.slice(0, 200))} has an empty, "." or ".." segment`;
  return null;
}

let nextPeerId = 1;

/**
 * The WebSocket route every agent and factory dials: `/api/v1/connect`.
 * Handshake first (hello → challenge → auth → welcome), then sealed frames.
 * Any ProtocolError closes the connection with its code, after telling the
 * peer why; other connections are untouched.
 */
export function connectRoute(core: Core): WsRoute<Peer> {
  const { limits } = core.config;

  function refuse(c: WsConnection<Peer>, err: ProtocolError): void {
    const p = c.data;
    if (p.stage === 'closed') return;
    try {
      c.send(p.stage === 'open' && p.channel ? p.channel.seal({ type: 'error', code: err.code, message: err.message }) : encodeError(err));
    } catch {
      // The socket may already be gone; closing below is what matters.
    }
    p.stage = 'closed';
    c.close(err.closeCode, err.code);
  }

  function sealedSend(c: WsConnection<Peer>, msg: Message): void {
    const p = c.data;
    if (!p.channel || p.stage !== 'open') return;
    if (c.send(p.channel.seal(msg)) === 'dropped' && !c.closed) {
      refuse(c, new ProtocolError('LIMIT_EXCEEDED', `peer is not reading: more than the send buffer limit is queued`));
    }
  }

  async function authenticate(c: WsConnection<Peer>, auth: Auth): Promise<void> {
    const p = c.data;
    if (p.role === 'agent') {
      if (auth.method === 'token') throw new ProtocolError('UNEXPECTED_MESSAGE', 'agents authenticate with a bootstrap credential or their key, not a token');
      const worker = auth.worker as WorkerId;
      if (auth.method === 'bootstrap') {
        // Check the signature before burning: a forged attempt must not use up a real credential.
        p.hs!.verifyClient(auth, auth.key);
        await core.workers.bootstrap(worker, auth.credential, auth.key);
      } else {
        p.hs!.verifyClient(auth, core.workers.keyOf(worker));
      }
      if (p.stage === 'closed') return;
      // The worker may have been recycled while its bootstrap was being written.
      const now = core.workers.live.get(worker);
      if (!now) throw new ProtocolError('WORKER_UNKNOWN', `worker ${worker} was destroyed while it connected`);
      if (now.state !== 'ready') throw new ProtocolError('WORKER_RECYCLED', `worker ${worker} is ${now.state}: ${now.recycleReason ?? ''}`);
      const link: AgentLink = {
        worker,
        send: (msg) => sealedSend(c, msg),
        close: (err) => refuse(c, err),
      };
      p.agent = link;
      p.stage = 'open';
      p.hs = null;
      core.deadlines.cancel(`hs:${p.id}`);
      core.workers.connected(link);
      return;
    }
    if (auth.method !== 'token') throw new ProtocolError('UNEXPECTED_MESSAGE', 'factories authenticate with a factory token');
    const t = core.dbs.tokens.get(hashSecret(auth.token));
    const f = t?.kind === 'factory' ? core.dbs.factories.get(t.id) : undefined;
    if (!f) throw new ProtocolError('BAD_TOKEN', 'the factory token is not known');
    if (!f.enabled) throw new ProtocolError('BAD_TOKEN', `factory ${f.name} (${f.id}) is disabled`);
    const link: FactoryLink = {
      factory: f.id as FactoryId, free: 0,
      send: (msg) => sealedSend(c, msg),
      close: (err) => refuse(c, err),
    };
    const old = core.factories.get(f.id);
    old?.close(new ProtocolError('SUPERSEDED', `a newer connection for factory ${f.name} replaced this one`));
    core.factories.set(f.id, link);
    p.factory = link;
    p.stage = 'open';
    p.hs = null;
    core.deadlines.cancel(`hs:${p.id}`);
    core.dbs.factories.put(f.id, { ...f, lastContactAt: core.clock.now() });
    link.send({ type: 'factory_welcome', factory: f.id, name: f.name, targets: f.targets, leaseMs: core.config.leaseMs });
  }

  function onBatch(c: WsConnection<Peer>, msg: Batch, body: Uint8Array): void {
    const p = c.data;
    const link = p.agent!;
    const w = core.workers.live.get(link.worker);
    const jobId = msg.job as JobId;
    const owner = w?.job === jobId ? w.id : core.jobs.get(jobId)?.worker;
    if (owner !== link.worker) throw new ProtocolError('NOT_OWNER', `worker ${link.worker} does not hold job ${msg.job}`);
    // No closure below may mention `msg`: closures share one scope in V8, so a mention anywhere would
    // keep every decoded record of the batch alive until its commit (about 200 bytes of heap per line,
    // times every agent's batches in flight).
    const batch = msg.batch;
    const verdict = core.events.classify(jobId, batch);
    if (verdict.kind === 'duplicate') {
      // A batch resent after a reconnect: acknowledged again, never stored twice.
      verdict.committed.then(() => sealedSend(c, { type: 'ack', job: jobId, batch }), () => {});
      return;
    }
    if (!w || w.job !== jobId) throw new ProtocolError('NOT_OWNER', `worker ${link.worker} does not hold job ${msg.job}`);
    if (verdict.kind === 'gap') throw new ProtocolError('SEQUENCE_GAP', `batch ${msg.batch} of job ${msg.job} skips ahead of ${verdict.expected}`);
    const endAt = msg.recs.findIndex((r) => (r[1] & REC_KIND_MASK) === REC.JOB);
    if (endAt !== -1 && endAt !== msg.recs.length - 1) {
      throw new ProtocolError('MALFORMED_FRAME', `batch ${msg.batch}: the job-end record must be the last record`);
    }
    if (p.unacked + body.length > limits.maxUnackedBytes) {
      throw new ProtocolError('LIMIT_EXCEEDED', `${p.unacked + body.length} unacknowledged bytes exceed maxUnackedBytes (${limits.maxUnackedBytes})`);
    }
    p.unacked += body.length;
    const end = endAt === -1 ? null : (msg.recs[endAt]![3] as { result: 'completed' | 'failed'; reason?: string });
    core.events.appendAgentBatch(jobId, batch, body, msg.recs.length).then(
      async () => {
        p.unacked -= body.length;
        if (end) {
          const job = core.jobs.active.get(jobId);
          if (job) {
            const to = job.cancelRequested ? 'cancelled' : end.result;
            await core.jobs.finish(jobId, to, job.cancelRequested ? (job.reason ?? 'cancelled') : (end.reason ?? (to === 'completed' ? 'all tasks exited 0' : 'a task failed')));
          }
        }
        sealedSend(c, { type: 'ack', job: jobId, batch });
      },
      (err) => {
        core.log(`agent ${link.worker}: storing batch ${batch} of ${jobId} failed: ${String(err)}`);
        refuse(c, new ProtocolError('GOING_AWAY', 'the coordinator could not store a batch; reconnect and resend'));
      },
    );
  }

  /** The job an agent's upload message may touch: the one its worker holds, still running. */
  function ownedRunningJob(p: Peer, job: string, what: string): JobId {
    const link = p.agent!;
    const w = core.workers.live.get(link.worker);
    const jobId = job as JobId;
    if (!w || w.job !== jobId) throw new ProtocolError('NOT_OWNER', `worker ${link.worker} does not hold job ${job} (${what})`);
    return jobId;
  }

  function uploadFailed(c: WsConnection<Peer>, upload: string, err: unknown): void {
    if (err instanceof UploadError) {
      const code = err.code === 'BAD_OFFSET' || err.code === 'UNKNOWN_UPLOAD' ? 'STORE_ERROR' : err.code;
      sealedSend(c, { type: 'upload_failed', upload, code, message: err.message });
      if (err.code !== 'HASH_MISMATCH' && err.code !== 'SIZE_MISMATCH') void core.artifacts.uploads.abort(upload).catch(() => {});
      return;
    }
    core.log(`upload ${upload}: ${(err as Error).stack ?? String(err)}`);
    sealedSend(c, { type: 'upload_failed', upload, code: 'STORE_ERROR', message: 'the coordinator could not store the upload (see its log)' });
    void core.artifacts.uploads.abort(upload).catch(() => {});
  }

  function onUploadBegin(c: WsConnection<Peer>, msg: UploadBegin): void {
    const p = c.data;
    const jobId = ownedRunningJob(p, msg.job, `upload of ${msg.path}`);
    const job = core.jobs.active.get(jobId);
    const fail = (code: 'BAD_PATH' | 'OUTPUT_TOO_LARGE' | 'NOT_RUNNING', message: string) => sealedSend(c, { type: 'upload_failed', upload: msg.upload, code, message });
    if (!job || job.state !== 'running') return fail('NOT_RUNNING', `job ${msg.job} is not running`);
    const bad = outputPathProblem(msg.path);
    if (bad) return fail('BAD_PATH', bad);
    // The coordinator applies the same rules as the agent, so an agent cannot store files the job did not ask for.
    if (!matcherFor(job.outputRules).matches(msg.path)) {
      return fail('BAD_PATH', `output path ${msg.path} is not selected by the job's output rules`);
    }
    if (msg.size > core.config.maxOutputBytes) {
      return fail('OUTPUT_TOO_LARGE', `${msg.path} is ${msg.size} bytes, over the per-file limit of ${core.config.maxOutputBytes} bytes (max_output_bytes)`);
    }
    p.uploads.set(msg.upload, jobId);
    core.artifacts.uploads.begin({ id: msg.upload, job: jobId, kind: 'output', path: msg.path, size: msg.size, mode: msg.mode, mtime: msg.mtime, expectSha256: null }).then(
      ({ offset }) => sealedSend(c, { type: 'upload_ready', upload: msg.upload, offset }),
      (err) => uploadFailed(c, msg.upload, err),
    );
  }

  function onChunk(c: WsConnection<Peer>, msg: Chunk): void {
    const p = c.data;
    if (!p.uploads.has(msg.upload)) throw new ProtocolError('UNEXPECTED_MESSAGE', `chunk for upload ${msg.upload}, which was not begun on this connection`);
    const n = msg.data.length;
    if (p.unacked + n > limits.maxUnackedBytes) {
      throw new ProtocolError('LIMIT_EXCEEDED', `${p.unacked + n} unacknowledged bytes exceed maxUnackedBytes (${limits.maxUnackedBytes})`);
    }
    p.unacked += n;
    core.artifacts.uploads.write(msg.upload, msg.offset, msg.data, SYNC_EVERY_BYTES, core.config.maxOutputBytes).then(
      (offset) => {
        p.unacked -= n;
        sealedSend(c, { type: 'chunk_ack', upload: msg.upload, offset });
      },
      (err) => {
        p.unacked -= n;
        uploadFailed(c, msg.upload, err);
      },
    );
  }

  function onUploadEnd(c: WsConnection<Peer>, msg: UploadEnd): void {
    const p = c.data;
    const jobId = p.uploads.get(msg.upload);
    if (!jobId) throw new ProtocolError('UNEXPECTED_MESSAGE', `upload_end for upload ${msg.upload}, which was not begun on this connection`);
    ownedRunningJob(p, jobId, `commit of upload ${msg.upload}`);
    const sha = Buffer.from(msg.sha256).toString('hex');
    core.artifacts.uploads.commit(msg.upload, msg.size, sha, (rec, sha256, size) => {
      core.artifacts.recordOutputInTxn(jobId, { v: 1, path: rec.path, size, mode: rec.mode, mtime: msg.mtime, sha256, committedAt: core.clock.now() });
    }).then(
      ({ sha256 }) => {
        sealedSend(c, { type: 'upload_done', upload: msg.upload, sha256: Buffer.from(sha256, 'hex') });
        core.artifacts.pokeArchive();
      },
      (err) => uploadFailed(c, msg.upload, err),
    );
  }

  function onFactoryMessage(c: WsConnection<Peer>, msg: FromFactory): void {
    const link = c.data.factory!;
    const owned = (worker: string) => {
      const w = core.workers.live.get(worker as WorkerId);
      if (!w) return undefined;
      if (w.factory !== link.factory) throw new ProtocolError('NOT_OWNER', `factory ${link.factory} does not own worker ${worker}`);
      return w;
    };
    switch (msg.type) {
      case 'capacity':
        link.free = msg.free;
        core.scheduler.poke();
        return;
      case 'created': {
        const w = owned(msg.worker);
        if (w) core.workers.renewLease(core.workers.patch(w, { instance: msg.instance }));
        else link.send({ type: 'destroy', worker: msg.worker, instance: msg.instance });
        return;
      }
      case 'renew': {
        const w = owned(msg.worker);
        if (w?.state === 'pending') link.send({ type: 'renewed', worker: w.id, expiresAt: core.workers.renewLease(w).leaseExpiresAt! });
        return;
      }
      case 'lease_failed':
      case 'destroyed': {
        const w = owned(msg.worker);
        if (w) {
          if (msg.type === 'lease_failed') core.log(`factory ${link.factory}: lease for worker ${w.id} failed: ${msg.reason}`);
          core.workers.destroyed(w);
        }
        return;
      }
      case 'inventory': {
        const reported = new Set<string>();
        for (const { worker, instance } of msg.instances) {
          reported.add(worker);
          const w = core.workers.live.get(worker as WorkerId);
          if (!w || w.factory !== link.factory || w.state === 'recycling') link.send({ type: 'destroy', worker, instance });
        }
        for (const w of [...core.workers.live.values()]) {
          if (w.factory === link.factory && !reported.has(w.id)) core.workers.destroyed(w);
        }
        return;
      }
      case 'ping':
        link.send({ type: 'pong', t: msg.t });
        return;
      case 'pong':
        return;
    }
  }

  return {
    path: '/api/v1/connect',
    maxPayloadBytes: limits.maxFrameBytes,
    idleTimeoutSeconds: core.config.idleTimeoutSeconds,
    maxBackpressureBytes: 64 * 1024 * 1024,
    create: () => ({
      id: nextPeerId++, stage: 'hello', hs: new ServerHandshake(core.identity.key, limits), channel: null, role: 'agent',
      agent: null, factory: null, unacked: 0, uploads: new Map(),
    }),
    open(c) {
      core.deadlines.set(`hs:${c.data.id}`, core.clock.now() + limits.handshakeTimeoutMs, () => {
        if (c.data.stage !== 'open' && !c.closed) {
          refuse(c, new ProtocolError('HANDSHAKE_TIMEOUT', `handshake not finished within handshakeTimeoutMs (${limits.handshakeTimeoutMs} ms)`));
        }
      });
    },
    message(c, data) {
      const p = c.data;
      try {
        switch (p.stage) {
          case 'hello':
            c.send(p.hs!.onHello(data));
            p.role = p.hs!.role;
            p.stage = 'auth';
            return;
          case 'auth': {
            const auth = p.hs!.onAuth(data);
            p.stage = 'authenticating';
            p.channel = p.hs!.channel;
            authenticate(c, auth).catch((err) => {
              if (err instanceof ProtocolError) refuse(c, err);
              else {
                core.log(`connect: authentication failed: ${(err as Error).stack ?? String(err)}`);
                refuse(c, new ProtocolError('GOING_AWAY', 'internal error during authentication'));
              }
            });
            return;
          }
          case 'authenticating':
            throw new ProtocolError('UNEXPECTED_MESSAGE', 'a message arrived before the welcome');
          case 'closed':
            return;
          case 'open': {
            const msg = p.channel!.open(data);
            if (p.agent) {
              switch (msg.type) {
                case 'batch':
                  onBatch(c, msg, data.subarray(SEALED_HEADER_BYTES));
                  return;
                case 'upload_begin':
                  onUploadBegin(c, msg);
                  return;
                case 'chunk':
                  onChunk(c, msg);
                  return;
                case 'upload_end':
                  onUploadEnd(c, msg);
                  return;
                case 'upload_abort':
                  if (p.uploads.delete(msg.upload)) void core.artifacts.uploads.abort(msg.upload).catch(() => {});
                  return;
                case 'ping':
                  p.agent.send({ type: 'pong', t: msg.t });
                  return;
                case 'pong':
                  return;
                default:
                  throw new ProtocolError('UNEXPECTED_MESSAGE', `agents may not send ${msg.type}`);
              }
            }
            switch (msg.type) {
              case 'capacity': case 'created': case 'renew': case 'lease_failed': case 'destroyed': case 'inventory': case 'ping': case 'pong':
                onFactoryMessage(c, msg);
                return;
              default:
                throw new ProtocolError('UNEXPECTED_MESSAGE', `factories may not send ${msg.type}`);
            }
          }
        }
      } catch (err) {
        if (err instanceof ProtocolError) refuse(c, err);
        else {
          core.log(`connect: ${(err as Error).stack ?? String(err)}`);
          refuse(c, new ProtocolError('GOING_AWAY', 'internal error'));
        }
      }
    },
    close(c) {
      const p = c.data;
      p.stage = 'closed';
      core.deadlines.cancel(`hs:${p.id}`);
      if (p.agent) core.workers.disconnected(p.agent);
      if (p.factory && core.factories.get(p.factory.factory) === p.factory) core.factories.delete(p.factory.factory);
    },
  };
}
