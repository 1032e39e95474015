/**
 * `job run -i NAME=FILE`: checking input names and files before anything is
 * sent, hashing them, and uploading each one to the waiting job in chunks
 * that resume after a dropped connection (docs/artifacts.md, "Inputs" and
 * "REST endpoints").
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, createReadStream, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { backoffDelay } from '../protocol/backoff.js';
import { seg } from './api-command.js';
import type { ApiClient } from './client.js';
import { ApiError, CliError, ConnectionError, UsageError } from './errors.js';
import { Progress } from './format.js';

/** The rule for input and dependency names, for messages and help. */
export const INPUT_NAME_RULE = 'names are 1 to 128 of letters, digits, ".", "_", "-", and not "." or ".."';

/**
 * Bytes per `PUT .../inputs/NAME` request. Half the coordinator's default
 * `max_body_bytes` (16 MiB), so a request is never refused for its size, and
 * large enough that a request's overhead is small next to its bytes.
 */
export const INPUT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Consecutive failed attempts (network errors or 5xx without progress) before an upload gives up. */
export const INPUT_MAX_ATTEMPTS = 8;
/** How long one chunk's PUT may take: 8 MiB over a slow link needs more than an ordinary request's minute. */
export const INPUT_CHUNK_TIMEOUT_MS = 5 * 60_000;
const RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 10_000;

/**
 * Why `name` cannot name an input or a dependency (both become names under
 * `/input`), or null when it can. The coordinator applies the same rule; checking
 * here turns a typo into exit 64 before a job is made.
 *
 * @example
 * inputNameProblem('a/b') // 'must not contain "/"'
 */
export function inputNameProblem(name: string): string | null {
  if (name === '') return 'must not be empty';
  if (name.includes('/')) return 'must not contain "/"';
  if (name === '.' || name === '..') return `must not be ${JSON.stringify(name)}`;
  if (name.length > 128) return `is ${name.length} characters long, more than 128`;
  const bad = /[^A-Za-z0-9._-]/.exec(name);
  if (bad) return `contains ${JSON.stringify(bad[0])}`;
  return null;
}

/** One `-i NAME=FILE`, checked. */
export interface InputSpec {
  readonly name: string;
  /** As given, for messages. */
  readonly file: string;
  /** Absolute, so a later chdir cannot change which file is read. */
  readonly path: string;
}

/** An input with the size and SHA-256 it is declared with. */
export interface HashedInput extends InputSpec {
  readonly size: number;
  readonly sha256: string;
}

/**
 * Parses every `--input NAME=FILE`: the name must follow {@link INPUT_NAME_RULE}
 * and be given once, and FILE must be a readable regular file. Throws a
 * UsageError naming the value and the rule.
 *
 * @example
 * parseInputs(['src=src.tar.gz'], 'job run') // [{ name: 'src', file: 'src.tar.gz', path: '/home/me/src.tar.gz' }]
 */
export function parseInputs(raws: readonly string[], command: string): InputSpec[] {
  const seen = new Set<string>();
  return raws.map((raw) => {
    const eq = raw.indexOf('=');
    if (eq < 0) throw new UsageError(`--input ${JSON.stringify(raw)} must be NAME=FILE`, command);
    const name = raw.slice(0, eq);
    const file = raw.slice(eq + 1);
    const problem = inputNameProblem(name);
    if (problem) throw new UsageError(`--input ${JSON.stringify(raw)}: the input name ${JSON.stringify(name)} ${problem} (${INPUT_NAME_RULE})`, command);
    if (seen.has(name)) throw new UsageError(`--input ${JSON.stringify(name)} is given twice: each input needs a name of its own`, command);
    seen.add(name);
    if (file === '') throw new UsageError(`--input ${JSON.stringify(raw)} needs a FILE after "="`, command);
    const path = resolve(file);
    try {
      const st = statSync(path);
      // A pipe or device cannot be hashed and then read again from a position, which resuming needs.
      if (!st.isFile()) throw new UsageError(`--input ${JSON.stringify(raw)}: ${JSON.stringify(file)} must be a regular file, not ${st.isDirectory() ? 'a directory' : 'a special file'}`, command);
      accessSync(path, constants.R_OK);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new UsageError(`--input ${JSON.stringify(raw)}: ${JSON.stringify(file)} must be a readable regular file (${code} at ${path})`, command);
    }
    return { name, file, path };
  });
}

/**
 * Size and SHA-256 of an input file, read as a stream (inputs may be far
 * larger than memory).
 *
 * @example
 * const h = await hashInput(spec); // { ...spec, size: 1234, sha256: 'ab12…' }
 */
export async function hashInput(spec: InputSpec): Promise<HashedInput> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(spec.path)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (e) {
    throw new CliError(`cannot read input ${spec.name} from ${spec.path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return { ...spec, size, sha256: hash.digest('hex') };
}

/** Knobs of {@link uploadInput}; tests make them small. */
export interface UploadOptions {
  chunkBytes?: number;
  maxAttempts?: number;
  /** Shows a progress line (on a terminal only). */
  progress?: boolean;
}

/** The two sides disagree on where the upload stands: begin again, which answers the coordinator's offset. */
class OffsetDisagreement extends Error {}

// What a retry can cure: no answer, a server-side failure (a restart behind a proxy, a disk hiccup), or a lost offset.
function retryable(err: unknown): boolean {
  return err instanceof ConnectionError || err instanceof OffsetDisagreement || (err instanceof ApiError && err.status >= 500);
}

function offsetOf(answer: unknown, what: string, size: number): number {
  const o = (answer as { offset?: unknown } | undefined)?.offset;
  if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0 || o > size) {
    throw new CliError(`the coordinator answered ${what} with offset ${JSON.stringify(o)}, not a whole number from 0 to the size ${size}`);
  }
  return o;
}

/**
 * Uploads one input to job `job`: begin (the coordinator says where to start),
 * chunks read by position from the file, then commit. A network error or a
 * 5xx answer starts again from begin, which answers the durable offset, after
 * a backoff; after {@link INPUT_MAX_ATTEMPTS} failures in a row without
 * progress it gives up with the last error.
 *
 * @example
 * await uploadInput(api, job.id, await hashInput(spec));
 */
export async function uploadInput(api: ApiClient, job: string, input: HashedInput, o: UploadOptions = {}): Promise<void> {
  const chunkBytes = o.chunkBytes ?? INPUT_CHUNK_BYTES;
  const maxAttempts = o.maxAttempts ?? INPUT_MAX_ATTEMPTS;
  const base = `/api/v1/jobs/${seg(job)}/inputs/${seg(input.name)}`;
  const progress = new Progress(`input ${input.name}`, input.size);
  const fh = await open(input.path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new CliError(`cannot open input ${input.name} at ${input.path} (${e.code ?? e.message})`);
  });
  const buf = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(1, input.size)));
  let failures = 0;
  try {
    for (;;) {
      try {
        let offset = offsetOf(await api.post(base, { size: input.size, sha256: input.sha256 }), `POST ${base}`, input.size);
        while (offset < input.size) {
          const n = Math.min(buf.length, input.size - offset);
          await readExactly(fh, buf, n, offset, input);
          const answer = await api.putBytes(base, buf.subarray(0, n), { offset }, { timeoutMs: INPUT_CHUNK_TIMEOUT_MS }).catch((e: unknown) => {
            // A 409 to a chunk is the coordinator holding another offset (it restarted and cut back to its durable one).
            throw e instanceof ApiError && e.status === 409 ? new OffsetDisagreement(e.message) : e;
          });
          const next = offsetOf(answer, `PUT ${base}`, input.size);
          if (next <= offset) throw new OffsetDisagreement(`the coordinator answered a chunk at offset ${offset} with offset ${next}`);
          offset = next;
          failures = 0;
          if (o.progress !== false) progress.update(offset);
        }
        if (o.progress !== false) progress.update(input.size);
        await api.post(`${base}/commit`);
        return;
      } catch (err) {
        if (!retryable(err) || ++failures >= maxAttempts) throw err;
        await new Promise((r) => setTimeout(r, Math.max(100, backoffDelay(failures - 1, RETRY_BASE_MS, RETRY_CAP_MS))));
      }
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new CliError(`uploading input ${input.name} from ${input.file} failed${failures >= maxAttempts ? ` after ${failures} attempts` : ''}: ${why}`);
  } finally {
    progress.done();
    await fh.close();
  }
}

/** Reads `n` bytes at `position`, or fails: a file that shrank since it was hashed cannot be sent as declared. */
async function readExactly(fh: FileHandle, buf: Buffer, n: number, position: number, input: HashedInput): Promise<void> {
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, position + got);
    if (bytesRead === 0) throw new CliError(`input ${input.name}: ${input.path} is now shorter than the ${input.size} bytes it had when hashed; it changed during the upload`);
    got += bytesRead;
  }
}
