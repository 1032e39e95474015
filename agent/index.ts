/**
 * The agent: dials out to the coordinator, runs one job's tasks at a time
 * (one job, then recycle, for factory workers; job after job for persistent
 * ones), streams their output, and survives dropped connections. Around the
 * tasks it downloads the job's inputs first and uploads its outputs last
 * (artifacts.ts; docs/artifacts.md).
 *
 * @example
 * const agent = await runAgent({ url, coordinatorKey, worker, credential, stateDir, workRoot });
 * const exitCode = await agent.done;
 */
import { chownSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Assign, JobAssignment, Limits, Message, ProtocolError } from '../protocol/index.js';
import {
  DEFAULT_LIMITS, PeerClient, REC, decodeTrusted, generateSigningKeyPair, verifyAssignment,
} from '../protocol/index.js';
import { runWithArtifacts } from './artifacts.js';
import type { InputDir, InputDirOption } from './inputs.js';
import { httpBaseOf, prepareInputDir } from './inputs.js';
import { Outbox } from './outbox.js';
import { Runner } from './runner.js';
import { readState, writeState } from './state.js';
import type { AgentState } from './state.js';

/** How an agent is started. */
export interface AgentOptions {
  /** The coordinator's `ws(s)://…/api/v1/connect`. */
  url: string;
  /** The coordinator's public key (pinned). */
  coordinatorKey: Uint8Array;
  worker: string;
  /** The single-use bootstrap credential (first start only). */
  credential?: string;
  /** Where the agent keeps its key and job state. */
  stateDir: string;
  /** Where job work directories are made. */
  workRoot: string;
  /**
   * Where each job's input directory is (default `'auto'`): `'auto'` uses
   * `/input` when this agent can create it (or it is left over from this
   * agent), else `<workRoot>/job-<id>-input`; `'shared'` always uses the
   * latter (several agents on one host, as the local factory runs them);
   * an absolute path is used if it is empty or ours, else the job fails.
   */
  inputDir?: InputDirOption;
  uid?: number;
  gid?: number;
  limits?: Limits;
  killGraceMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  log?: (line: string) => void;
}

/** A running agent. */
export interface Agent {
  /** Resolves with the process exit code: 0 after a recycle, 2 after a fatal refusal. */
  readonly done: Promise<number>;
  readonly client: PeerClient;
  stop(): void;
}

/** Starts an agent. */
export function runAgent(o: AgentOptions): Agent {
  const log = o.log ?? ((l: string) => process.stderr.write(`agent: ${l}\n`));
  const limits = o.limits ?? DEFAULT_LIMITS;
  let state: AgentState | undefined = readState(o.stateDir);
  if (state && state.worker !== o.worker) throw new Error(`state in ${o.stateDir} belongs to worker ${state.worker}, not ${o.worker}`);
  if (!state) {
    if (!o.credential) throw new Error(`worker ${o.worker} has no saved key in ${o.stateDir} and no bootstrap credential was given`);
    const kp = generateSigningKeyPair();
    state = { v: 1, worker: o.worker, seed: Buffer.from(kp.seed).toString('base64'), publicKey: Buffer.from(kp.publicKey).toString('base64'), bootstrapped: false, startedJob: null };
    // The key is on disk before the credential is spent, so a crash after bootstrapping can still reconnect.
    writeState(o.stateDir, state);
  }
  const st = state;
  const seed = new Uint8Array(Buffer.from(st.seed, 'base64'));
  const publicKey = new Uint8Array(Buffer.from(st.publicKey, 'base64'));

  // Inputs are fetched over HTTP from the same coordinator the agent dials.
  const httpBase = httpBaseOf(o.url);
  const client = new PeerClient({
    url: o.url, coordinatorKey: o.coordinatorKey, role: 'agent', limits, log,
    backoffBaseMs: o.backoffBaseMs ?? 250, backoffCapMs: o.backoffCapMs ?? 10_000,
    auth: () =>
      st.bootstrapped || !o.credential
        ? { method: 'key', worker: o.worker, seed }
        : { method: 'bootstrap', worker: o.worker, credential: o.credential, seed, publicKey },
  });

  // `cancel` stops whatever the job is doing: downloads, tasks or uploads.
  let current: { id: string; outbox: Outbox; runner: Runner | null; cancel: (reason: string) => void } | null = null;
  let next: { a: JobAssignment; nextBatch: number } | null = null;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  let stopped = false;

  const stop = (code: number) => {
    if (stopped) return;
    stopped = true;
    current?.cancel('the agent is stopping');
    client.close();
    finish(code);
  };

  function startJob(a: JobAssignment, nextBatch: number): void {
    const outbox = new Outbox(a.id, client, {
      maxUnackedBytes: limits.maxUnackedBytes, firstBatch: nextBatch,
      onPause: () => current?.runner?.pause(), onResume: () => current?.runner?.resume(),
    });
    if (st.startedJob === a.id) {
      // We ran this job before a restart and lost its tasks' processes: report, do not re-run.
      current = { id: a.id, outbox, runner: null, cancel: () => {} };
      outbox.push([Date.now(), REC.WORKER, 0, Buffer.from('the agent restarted while this job was running; its tasks are not run again')]);
      outbox.push([Date.now(), REC.JOB, 0, { result: 'failed', reason: 'the agent restarted mid-job' }]);
      void outbox.drained().then(() => jobOver(a.id));
      return;
    }
    st.startedJob = a.id;
    writeState(o.stateDir, st);
    const workdir = join(o.workRoot, `job-${a.id}`);
    rmSync(workdir, { recursive: true, force: true });
    mkdirSync(workdir, { recursive: true, mode: 0o755 });
    const worker = (line: string) => outbox.push([Date.now(), REC.WORKER, 0, Buffer.from(line)]);
    let inputDir: InputDir;
    try {
      inputDir = prepareInputDir(o.inputDir ?? 'auto', o.workRoot, o.stateDir, a.id);
      if (o.uid !== undefined) chownSync(inputDir.path, o.uid, o.gid ?? o.uid);
    } catch (err) {
      current = { id: a.id, outbox, runner: null, cancel: () => {} };
      const reason = `could not prepare the input directory: ${(err as Error).message}`;
      worker(reason);
      outbox.push([Date.now(), REC.JOB, 0, { result: 'failed', reason }]);
      void outbox.drained().then(() => {
        rmSync(workdir, { recursive: true, force: true });
        jobOver(a.id);
      });
      return;
    }
    const runner = new Runner({
      workdir, inputDir: inputDir.path, maxLineBytes: limits.maxLineBytes, killGraceMs: o.killGraceMs ?? 10_000, emit: (r) => outbox.push(r),
      ...(o.uid !== undefined ? { uid: o.uid } : {}), ...(o.gid !== undefined ? { gid: o.gid } : {}),
    });
    const abort = new AbortController();
    const cancel = (reason: string) => {
      runner.cancel(reason);
      abort.abort(reason);
    };
    current = { id: a.id, outbox, runner, cancel };
    log(`job ${a.id} (${a.name}): ${a.tasks.length} task(s) in ${workdir}, inputs in ${inputDir.path}`);
    const owner = o.uid !== undefined ? { uid: o.uid, gid: o.gid ?? o.uid } : undefined;
    runWithArtifacts(runner, {
      job: a, link: client, httpBase, roots: { work: workdir, input: inputDir.path }, worker, signal: abort.signal, ...(owner ? { owner } : {}),
    }).then(
      (res) => {
        outbox.push([Date.now(), REC.JOB, 0, res]);
        return outbox.drained();
      },
      (err: Error) => {
        worker(`agent error: ${err.message}`);
        outbox.push([Date.now(), REC.JOB, 0, { result: 'failed', reason: `agent error: ${err.message}` }]);
        return outbox.drained();
      },
    ).then(() => {
      try {
        rmSync(workdir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        // A process the job left outside its process group may still write there.
        log(`could not clean up ${workdir}: ${(err as Error).message}`);
      }
      try {
        inputDir.remove();
      } catch (err) {
        log(`could not clean up ${inputDir.path}: ${(err as Error).message}`);
      }
      jobOver(a.id);
    });
  }

  function jobOver(id: string): void {
    if (current?.id !== id) return;
    current = null;
    st.startedJob = null;
    writeState(o.stateDir, st);
    log(`job ${id} done`);
    const queued = next;
    next = null;
    if (queued && !stopped) startJob(queued.a, queued.nextBatch);
  }

  function onAssign(msg: Assign, nextBatch: number): void {
    verifyAssignment(o.coordinatorKey, msg.payload, msg.sig);
    const a = decodeTrusted(msg.payload) as JobAssignment;
    if (a.worker !== o.worker) {
      log(`ignoring an assignment for worker ${a.worker}`);
      return;
    }
    if (current?.id === a.id || next?.a.id === a.id) return;
    if (current) {
      // The coordinator hands a persistent worker its next job as soon as the last one's end
      // is stored, which can be before this agent has closed its books on it: start it then.
      next = { a, nextBatch };
      return;
    }
    startJob(a, nextBatch);
  }

  let resumeBatch = 1;
  client.on('open', (w: Message) => {
    if (w.type !== 'welcome') return;
    if (!st.bootstrapped) {
      st.bootstrapped = true;
      writeState(o.stateDir, st);
    }
    resumeBatch = w.job?.nextBatch ?? 1;
    if (current && w.job?.id === current.id) current.outbox.resume(w.job.nextBatch);
    else if (current && !w.job) {
      // The coordinator no longer has us on this job (it failed us while we were away): stop it.
      current.cancel('the coordinator ended this job while the agent was disconnected');
    }
  });
  client.on('message', (msg: Message) => {
    try {
      switch (msg.type) {
        case 'assign':
          onAssign(msg, resumeBatch);
          resumeBatch = 1;
          return;
        case 'ack':
          if (current?.id === msg.job) current.outbox.ack(msg.batch);
          return;
        case 'cancel':
          if (current?.id === msg.job) current.cancel(msg.reason);
          return;
        case 'recycle':
          log(`recycled: ${msg.reason}`);
          stop(0);
          return;
        case 'pong':
          return;
        case 'upload_ready':
        case 'chunk_ack':
        case 'upload_done':
        case 'upload_failed':
          // The uploader (uploader.ts) listens for its own upload's answers.
          return;
        default:
          log(`unexpected ${msg.type} from the coordinator`);
      }
    } catch (err) {
      log(`error handling ${msg.type}: ${(err as Error).message}`);
      client.dropConnection();
    }
  });
  client.on('disconnected', (why) => log(`disconnected (${why}); reconnecting`));
  client.on('fatal', (err: ProtocolError) => {
    log(`refused by the coordinator: ${err.code}: ${err.message}`);
    stop(err.code === 'WORKER_RECYCLED' ? 0 : 2);
  });
  client.start();
  return { done, client, stop: () => stop(0) };
}
