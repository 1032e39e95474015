/**
 * Downloading a job's outputs (`job download`): streamed to a temporary file
 * beside the destination while hashing, checked against the SHA-256 the
 * coordinator sends as the `ETag`, then renamed into place, so a mismatch or
 * an interruption never leaves a wrong file under the destination's name. A
 * dropped connection resumes with `Range` from the bytes already written
 * (docs/artifacts.md, "Downloads over HTTP").
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { backoffDelay } from '../protocol/backoff.js';
import type { ApiClient } from './client.js';
import { ApiError, CliError, ConnectionError } from './errors.js';
import { Progress, write } from './format.js';

/** Consecutive failed attempts (dropped connections or 5xx without new bytes) before a download gives up. */
export const DOWNLOAD_MAX_ATTEMPTS = 8;
/** A body that sends nothing for this long counts as a dropped connection (and is resumed). */
export const DOWNLOAD_IDLE_MS = 60_000;
const RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 10_000;

/** What a download wrote. */
export interface Downloaded {
  size: number;
  sha256: string;
}

/** Knobs of {@link downloadOutput}. */
export interface DownloadOptions {
  /** The SHA-256 the caller already knows (from the outputs list); the ETag must agree. */
  expectSha256?: string;
  maxAttempts?: number;
  idleMs?: number;
  /** Shows a progress line labelled so (on a terminal only). */
  label?: string;
}

/**
 * The API path of a job's output: the path without its leading `/`, each
 * segment percent-encoded. A `.` or `..` segment is refused: URL parsing
 * folds them, so the request would name another file.
 *
 * @example
 * outputUrlPath('01J9Z3Q8W4M6T0Y2R5N7P9B1C3', '/work/out/a b.txt')
 * // '/api/v1/jobs/01J9Z3Q8W4M6T0Y2R5N7P9B1C3/outputs/work/out/a%20b.txt'
 */
export function outputUrlPath(job: string, path: string): string {
  const segments = path.replace(/^\/+/, '').split('/');
  if (segments.some((s) => s === '.' || s === '..')) throw new CliError(`output path ${JSON.stringify(path)} has a "." or ".." segment; outputs are named by plain paths such as /work/out/a.tar.gz`);
  return `/api/v1/jobs/${encodeURIComponent(job)}/outputs/${segments.map(encodeURIComponent).join('/')}`;
}

/**
 * Where output `path` goes under `dir` for `job download --all`: `dir` plus
 * the path without its leading `/`. Throws a CliError naming the path when
 * it would land outside `dir` (a `..` segment, an absolute or empty rest).
 *
 * @example
 * outputDestination('out', '/work/a.txt') // '/abs/out/work/a.txt'
 */
export function outputDestination(dir: string, path: string): string {
  const rel = path.replace(/^\/+/, '');
  const refuse = (why: string) => new CliError(`refusing output path ${JSON.stringify(path)}: ${why}, so it would not stay inside ${dir}; nothing was downloaded`);
  if (rel === '') throw refuse('it is empty without its leading "/"');
  if (rel.includes('\0')) throw refuse('it contains a NUL byte');
  if (rel.split(/[/\\]/).some((s) => s === '..')) throw refuse('it has a ".." segment');
  if (isAbsolute(rel)) throw refuse('it is absolute even without its leading "/"');
  const root = resolve(dir);
  const full = resolve(root, rel);
  if (full === root || !full.startsWith(root + sep)) throw refuse(`it resolves to ${full}`);
  return full;
}

/** The SHA-256 in an `ETag: "<sha256>"` header, or null. */
export function etagSha256(etag: string | null): string | null {
  const m = /^(?:W\/)?"?([0-9a-fA-F]{64})"?$/.exec(etag?.trim() ?? '');
  return m ? m[1]!.toLowerCase() : null;
}

function retryable(err: unknown): boolean {
  return err instanceof ConnectionError || (err instanceof ApiError && err.status >= 500);
}

/** Where the bytes go: a temporary file renamed at the end, or stdout. */
interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  /** Starts over (the coordinator ignored a Range). False when it cannot (stdout). */
  restart(): Promise<boolean>;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

async function fileSink(dest: string): Promise<Sink> {
  // Same directory, so the final rename is atomic and never crosses file systems.
  const temp = join(dirname(dest), `.${basename(dest)}.${randomBytes(6).toString('hex')}.bw-part`);
  let fh: FileHandle | null = await open(temp, 'wx').catch((e: NodeJS.ErrnoException) => {
    throw new CliError(`cannot write ${dest}: creating ${temp} failed (${e.code ?? e.message})`);
  });
  const close = async () => {
    const f = fh;
    fh = null;
    await f?.close();
  };
  return {
    async write(chunk) {
      await fh!.write(chunk);
    },
    async restart() {
      await fh!.truncate(0);
      await close();
      fh = await open(temp, 'r+');
      return true;
    },
    async commit() {
      await fh!.sync();
      await close();
      await rename(temp, dest);
    },
    async discard() {
      await close().catch(() => {});
      await rm(temp, { force: true });
    },
  };
}

function stdoutSink(): Sink {
  return {
    write: async (chunk) => write(process.stdout, chunk),
    restart: async () => false,
    commit: async () => {},
    discard: async () => {},
  };
}

/**
 * Downloads one output (`urlPath` from {@link outputUrlPath}) to `dest`
 * (`null`: stdout), verifying its SHA-256 against the ETag. Resumes with
 * `Range` after a dropped connection, up to `maxAttempts` failures in a row.
 * On a mismatch nothing is left at `dest` (on stdout the bytes are already
 * written: the error says so).
 *
 * @example
 * await downloadOutput(api, outputUrlPath(id, '/work/out/a.tgz'), './a.tgz');
 */
export async function downloadOutput(api: ApiClient, urlPath: string, dest: string | null, o: DownloadOptions = {}): Promise<Downloaded> {
  const sink = dest === null ? stdoutSink() : await fileSink(dest);
  try {
    const got = await fetchVerified(api, urlPath, sink, dest, o);
    await sink.commit();
    return got;
  } catch (err) {
    await sink.discard();
    throw err;
  }
}

async function fetchVerified(api: ApiClient, urlPath: string, sink: Sink, dest: string | null, o: DownloadOptions): Promise<Downloaded> {
  const maxAttempts = o.maxAttempts ?? DOWNLOAD_MAX_ATTEMPTS;
  const idleMs = o.idleMs ?? DOWNLOAD_IDLE_MS;
  let expected: string | null = o.expectSha256 ?? null;
  let total: number | null = null;
  let hash = createHash('sha256');
  let written = 0;
  let failures = 0;
  let progress: Progress | null = null;
  try {
    for (;;) {
      const ac = new AbortController();
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => ac.abort(new Error(`no bytes for ${Math.round(idleMs / 1000)} s`)), idleMs);
      };
      try {
        // Until the headers are in, open() has its own timeout; from then on, a silent body is what to watch for.
        const res = await api.open(urlPath, written > 0 ? { range: `bytes=${written}-` } : {}, ac.signal);
        arm();
        const etag = etagSha256(res.headers.get('etag'));
        if (etag === null) throw new CliError(`the coordinator sent ${urlPath} without an ETag holding its SHA-256 (got ${JSON.stringify(res.headers.get('etag'))}); the bytes cannot be verified`);
        if (expected === null) expected = etag;
        else if (etag !== expected) throw new CliError(`the coordinator's ETag for ${urlPath} is ${etag}, but ${o.expectSha256 !== undefined && written === 0 ? 'the outputs list says' : 'the download began with'} ${expected}`);
        let skip = 0;
        if (res.status === 206) {
          const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
          if (!m || Number(m[1]) !== written) throw new CliError(`the coordinator answered a resume from byte ${written} with Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
          total = Number(m[3]);
        } else {
          const len = res.headers.get('content-length');
          if (len !== null && /^\d+$/.test(len)) total = Number(len);
          // A 200 to a Range request is the whole file again: skip what was written, or start over.
          if (written > 0) {
            if (await sink.restart()) {
              hash = createHash('sha256');
              written = 0;
            } else {
              skip = written;
            }
          }
        }
        if (o.label !== undefined && progress === null && total !== null) progress = new Progress(o.label, total);
        const reader = res.body!.getReader();
        for (;;) {
          let r: Awaited<ReturnType<typeof reader.read>>;
          try {
            r = await reader.read();
          } catch (e) {
            throw new ConnectionError(api.url, `the download broke off after ${written} bytes: ${(ac.signal.reason as Error | undefined)?.message ?? (e as Error).message}`);
          }
          if (r.done) break;
          arm();
          let chunk = r.value;
          if (skip > 0) {
            const drop = Math.min(skip, chunk.length);
            skip -= drop;
            chunk = chunk.subarray(drop);
            if (chunk.length === 0) continue;
          }
          hash.update(chunk);
          await sink.write(chunk);
          written += chunk.length;
          failures = 0;
          progress?.update(written);
        }
        if (total !== null && written < total) throw new ConnectionError(api.url, `the download ended after ${written} of ${total} bytes`);
        if (total !== null && written > total) throw new CliError(`the coordinator sent ${written} bytes of ${urlPath}, more than the ${total} it announced`);
        break;
      } catch (err) {
        if (!retryable(err) || ++failures >= maxAttempts) throw err;
        await new Promise((r) => setTimeout(r, Math.max(100, backoffDelay(failures - 1, RETRY_BASE_MS, RETRY_CAP_MS))));
      } finally {
        clearTimeout(idle);
        // Frees the connection of an answer left unread (refused above); a no-op after a full read.
        ac.abort();
      }
    }
  } finally {
    progress?.done();
  }
  const actual = hash.digest('hex');
  if (actual !== expected) {
    throw new CliError(`SHA-256 mismatch for ${urlPath}: the coordinator says ${expected}, the ${written} bytes received hash to ${actual}; ${dest === null ? 'they were already written to stdout' : `nothing was written to ${dest}`}`);
  }
  return { size: written, sha256: actual };
}
