/**
 * A job's input files: where its input directory is, and downloading
 * `assignment.inputs` into it before the first task runs.
 *
 * Each file is fetched over HTTP from the coordinator with the job's bearer
 * token, streamed to `<path>.part` while hashing, resumed with a `Range`
 * request after a dropped connection, verified (size and SHA-256) and only
 * then renamed into place, so a task never sees a partial input.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { accessSync, chownSync, constants, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { chmod, chown, mkdir, open, rename } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { InputFile } from '../protocol/index.js';
import { backoffDelay } from '../protocol/index.js';

/**
 * Where a job's input directory goes: `'auto'` (`/input` when it can be used,
 * else beside the job's work directory), `'shared'` (always beside the work
 * directory: several agents share this host), or an absolute path.
 */
export type InputDirOption = 'auto' | 'shared' | (string & {});

/** The machine-wide input directory, as on buildomat. */
export const MACHINE_INPUT_DIR = '/input';

/** A job's input directory and how to clean it up. */
export interface InputDir {
  path: string;
  /** Removes what the job put there (and the directory itself when it was per-job). */
  remove(): void;
}

/**
 * Picks and prepares the job's input directory. With `'auto'`, `/input` is
 * used when this agent can create it (mkdir is atomic, so two agents on one
 * host never share it) or it is left over from this agent (a marker in
 * `stateDir` says so, after a restart mid-job); otherwise the job gets
 * `<workRoot>/job-<id>-input`. An explicit path is used if it is empty or
 * ours, and throws otherwise: the operator chose it, so a silent fallback
 * would hide a mistake.
 *
 * @example
 * const dir = prepareInputDir('shared', '/var/buildwire/work', '/var/buildwire/state', jobId);
 * // dir.path === '/var/buildwire/work/job-<id>-input'; dir.remove() at the end of the job
 */
export function prepareInputDir(option: InputDirOption, workRoot: string, stateDir: string, jobId: string): InputDir {
  const perJob = join(workRoot, `job-${jobId}-input`);
  if (option === 'shared') return freshPerJob(perJob);
  const fixed = option === 'auto' ? MACHINE_INPUT_DIR : option;
  if (!isAbsolute(fixed)) throw new RangeError(`the input directory must be 'auto', 'shared' or an absolute path, got ${JSON.stringify(option)}`);
  const marker = join(stateDir, 'input-dir-in-use');
  const problem = claim(fixed, marker, option !== 'auto');
  if (problem === null) {
    return {
      path: fixed,
      remove() {
        // /input goes entirely, so the next job (of any agent here) can claim it by creating it.
        if (option === 'auto') rmSync(fixed, { recursive: true, force: true });
        else for (const name of readdirSync(fixed)) rmSync(join(fixed, name), { recursive: true, force: true });
        rmSync(marker, { force: true });
      },
    };
  }
  if (option !== 'auto') throw new Error(`input directory ${fixed} cannot be used: ${problem}`);
  return freshPerJob(perJob);
}

function freshPerJob(path: string): InputDir {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true, mode: 0o755 });
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Makes `dir` ours for this job, or says why it cannot be. `emptyWillDo`: an existing empty directory may be taken. */
function claim(dir: string, marker: string, emptyWillDo: boolean): string | null {
  try {
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!lstatSync(dir).isDirectory()) return 'it is not a directory';
      // Left over from a job of ours that never cleaned up (the agent restarted): empty it.
      if (existsSync(marker) && readFileSync(marker, 'utf8') === `${dir}\n`) {
        for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
      } else if (!emptyWillDo) {
        return 'it already exists and this agent did not make it (another agent on this host may be using it)';
      } else if (readdirSync(dir).length > 0) {
        return 'it is not empty';
      }
    }
    accessSync(dir, constants.W_OK);
    writeFileSync(marker, `${dir}\n`, { mode: 0o600 });
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

/**
 * Why an input path is refused, or null when it is fine: it must be
 * relative, `/`-separated, with no empty, `.` or `..` segments, so it can
 * only name a file under the input directory.
 *
 * @example
 * inputPathProblem('dep/work/out/a.txt'); // null
 * inputPathProblem('../etc/passwd');      // 'has a ".." segment'
 */
export function inputPathProblem(path: string): string | null {
  if (path === '') return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.startsWith('/')) return 'is absolute';
  for (const seg of path.split('/')) {
    if (seg === '') return 'has an empty segment';
    if (seg === '..') return 'has a ".." segment';
    if (seg === '.') return 'has a "." segment';
  }
  return null;
}

/**
 * The coordinator's HTTP base from the agent's connect URL:
 * `ws://h:p/api/v1/connect` -> `http://h:p`, `wss` -> `https`. A path
 * before `/api/v1/connect` (a reverse proxy's prefix) is kept.
 *
 * @example
 * httpBaseOf('wss://ci.example.com/bw/api/v1/connect'); // 'https://ci.example.com/bw'
 */
export function httpBaseOf(connectUrl: string): string {
  const u = new URL(connectUrl);
  const protocol = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' }[u.protocol];
  if (!protocol) throw new RangeError(`cannot derive an HTTP URL from ${JSON.stringify(connectUrl)}`);
  const path = u.pathname.replace(/\/api\/v1\/connect\/?$/, '').replace(/\/+$/, '');
  return `${protocol}//${u.host}${path}`;
}

/** A download that failed for good; the message names the input. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** How inputs are downloaded. */
export interface DownloadOptions {
  /** The coordinator's HTTP base, e.g. `http://127.0.0.1:8080` (see {@link httpBaseOf}). */
  httpBase: string;
  /** The assignment's `inputToken`. */
  token: string;
  /** The job's input directory. */
  dir: string;
  /** Give the files to the tasks' user (when the agent runs as root and tasks do not). */
  owner?: { uid: number; gid: number };
  /** Attempts per file before giving up (default 5). */
  attempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  signal?: AbortSignal;
  /** WORKER lines (retries). */
  log?: (line: string) => void;
}

/**
 * Downloads every input into `o.dir`, one after another. Every path is
 * checked before anything is fetched, so a hostile assignment writes
 * nothing.
 *
 * @throws InputError naming the input and what went wrong.
 * @example
 * await downloadInputs(a.inputs ?? [], { httpBase: httpBaseOf(url), token: a.inputToken!, dir: '/input' });
 */
export async function downloadInputs(inputs: readonly InputFile[], o: DownloadOptions): Promise<void> {
  for (const f of inputs) {
    const problem = inputPathProblem(f.path);
    if (problem) throw new InputError(`input path ${JSON.stringify(f.path)} ${problem}; refused`);
    if (!/^[0-9a-f]{64}$/.test(f.sha256)) throw new InputError(`input ${f.path} has a malformed sha256 ${JSON.stringify(f.sha256)}`);
  }
  // Each file is written as "<path>.part" first: no input may be another's part file, or twice the same path.
  const paths = new Set<string>();
  for (const f of inputs) {
    if (paths.has(f.path)) throw new InputError(`input path ${JSON.stringify(f.path)} appears twice; refused`);
    paths.add(f.path);
  }
  for (const f of inputs) {
    if (paths.has(`${f.path}.part`)) throw new InputError(`input path ${JSON.stringify(`${f.path}.part`)} collides with the part file of ${JSON.stringify(f.path)}; refused`);
  }
  for (const f of inputs) await downloadOne(f, o);
}

/** A failure not worth retrying (the coordinator said no, or sent what cannot be right). */
class Permanent extends Error {}

async function downloadOne(f: InputFile, o: DownloadOptions): Promise<void> {
  const dest = join(o.dir, f.path);
  const part = `${dest}.part`;
  try {
    await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new InputError(`input ${f.path}: could not create its directory: ${(err as Error).message}`);
  }
  const fh = await open(part, 'w', 0o600);
  const state = { have: 0, hash: createHash('sha256') };
  const attempts = o.attempts ?? 5;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await fetchInto(f, o, fh, state);
        break;
      } catch (err) {
        if (o.signal?.aborted) throw new InputError(`input ${f.path}: download stopped: ${String(o.signal.reason)}`);
        const msg = (err as Error).message;
        if (err instanceof Permanent || attempt >= attempts) {
          throw new InputError(`input ${f.path}: ${msg}${err instanceof Permanent ? '' : ` (gave up after ${attempts} attempts)`}`);
        }
        o.log?.(`input ${f.path}: ${msg}; retrying from byte ${state.have}`);
        await sleep(backoffDelay(attempt, o.backoffBaseMs ?? 250, o.backoffCapMs ?? 5_000), o.signal);
      }
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    rmSync(part, { force: true });
    throw err instanceof InputError ? err : new InputError(`input ${f.path}: ${(err as Error).message}`);
  }
  await fh.close();
  const sha = state.hash.digest('hex');
  if (state.have !== f.size || sha !== f.sha256) {
    rmSync(part, { force: true });
    throw new InputError(`input ${f.path}: downloaded ${state.have} bytes with sha256 ${sha}, expected ${f.size} bytes with sha256 ${f.sha256}`);
  }
  // Permission bits only: a setuid bit from someone's upload must not become one on this machine.
  await chmod(part, f.mode & 0o777);
  if (o.owner) {
    await chown(part, o.owner.uid, o.owner.gid);
    for (let d = dirname(dest); d.startsWith(o.dir) && d !== o.dir; d = dirname(d)) chownSync(d, o.owner.uid, o.owner.gid);
  }
  await rename(part, dest);
}

/**
 * One GET from `state.have` on, appending to the part file and the hash.
 * Resolves when all `f.size` bytes are in; throws (to be retried) when the
 * connection drops first.
 */
async function fetchInto(f: InputFile, o: DownloadOptions, fh: FileHandle, state: { have: number; hash: Hash }): Promise<void> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token}` };
  if (state.have > 0) headers.range = `bytes=${state.have}-`;
  const res = await fetch(`${o.httpBase}${f.url}`, { headers, ...(o.signal ? { signal: o.signal } : {}) });
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    const text = `GET ${f.url} answered ${res.status} ${res.statusText}`;
    throw retryable ? new Error(text) : new Permanent(text);
  }
  if (state.have > 0 && res.status !== 206) {
    // The server ignored the range: start over from its first byte.
    await fh.truncate(0);
    state.have = 0;
    state.hash = createHash('sha256');
  } else if (res.status === 206 && !(res.headers.get('content-range') ?? '').startsWith(`bytes ${state.have}-`)) {
    await res.body?.cancel().catch(() => {});
    throw new Permanent(`GET ${f.url} answered a range other than the one asked for: ${res.headers.get('content-range')}`);
  }
  if (!res.body) throw new Error(`GET ${f.url} answered no body`);
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    if (state.have + chunk.length > f.size) throw new Permanent(`GET ${f.url} sent more than the ${f.size} bytes expected`);
    await fh.write(chunk, 0, chunk.length, state.have);
    state.hash.update(chunk);
    state.have += chunk.length;
  }
  if (state.have < f.size) throw new Error(`the connection ended after ${state.have} of ${f.size} bytes`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}
