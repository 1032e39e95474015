/**
 * Following a job's events (`job tail`, `job run --tail`): replay from the
 * start, then long-poll for more until the job has ended and every event was
 * read. A coordinator restart or a dropped connection is retried with backoff
 * from the last event printed, so no line is printed twice or skipped.
 *
 * Output: the job's stdout lines go to stdout and its stderr lines to stderr,
 * byte for byte (lines that are not UTF-8 are written from their exact
 * bytes). Everything else goes to stderr prefixed `| `.
 */
import type { Writable } from 'node:stream';
import { backoffDelay } from '../protocol/backoff.js';
import type { EventJson } from '../protocol/api.js';
import type { ApiClient } from './client.js';
import { ApiError, ConnectionError } from './errors.js';
import { write } from './format.js';

export type { EventJson };

/** A page of `GET /api/v1/jobs/:id/events`. */
export interface EventsPage {
  job: string;
  state: string;
  events: EventJson[];
  next: number;
  done: boolean;
}

/** Exit code of a followed job that completed. */
export const EXIT_COMPLETED = 0;
/** Exit code of a followed job that failed (also any error of the command itself). */
export const EXIT_FAILED = 1;
/** Exit code of a followed job that was cancelled. */
export const EXIT_CANCELLED = 2;

/** How long one long poll waits on the coordinator for new events. */
export const TAIL_WAIT_SECONDS = 25;
/** How long a tail keeps retrying an unreachable coordinator before giving up. */
export const TAIL_RETRY_MS = 60_000;
const RETRY_BASE_MS = 250;
const RETRY_CAP_MS = 5_000;

/** How a tail prints and retries. */
export interface TailOptions {
  /** Prefix each line with its ISO time. */
  timestamps: boolean;
  /** Print one event JSON per line on stdout instead. */
  json: boolean;
  /** Give up after this long without reaching the coordinator (default {@link TAIL_RETRY_MS}). */
  retryMs?: number;
  stdout?: Writable;
  stderr?: Writable;
}

/**
 * The exit code for a job's final state: completed 0, failed 1, cancelled 2.
 *
 * @example
 * exitCodeOf('cancelled') // 2
 */
export function exitCodeOf(state: string): number {
  switch (state) {
    case 'completed':
      return EXIT_COMPLETED;
    case 'cancelled':
      return EXIT_CANCELLED;
    default:
      return EXIT_FAILED;
  }
}

/**
 * Turns events into output. Keeps, per stream, whether the last piece was
 * partial, so a continued line gets no second timestamp and control lines
 * start on a fresh line.
 */
export class EventPrinter {
  readonly #o: Required<Pick<TailOptions, 'timestamps' | 'json'>> & { stdout: Writable; stderr: Writable };
  readonly #midLine = { stdout: false, stderr: false };
  readonly #taskNames = new Map<number, string>();

  constructor(o: TailOptions) {
    this.#o = { timestamps: o.timestamps, json: o.json, stdout: o.stdout ?? process.stdout, stderr: o.stderr ?? process.stderr };
  }

  /** Prints one event. */
  async print(e: EventJson): Promise<void> {
    const { stdout, stderr, timestamps } = this.#o;
    if (this.#o.json) {
      await write(stdout, `${JSON.stringify(e)}\n`);
      return;
    }
    const stamp = timestamps ? `${new Date(e.time).toISOString()} ` : '';
    if (e.stream === 'stdout' || e.stream === 'stderr') {
      const stream = e.stream === 'stdout' ? stdout : stderr;
      const bytes = e.base64 !== undefined ? Buffer.from(e.base64, 'base64') : Buffer.from(e.text ?? '', 'utf8');
      const head = this.#midLine[e.stream] ? '' : stamp;
      await write(stream, Buffer.concat([Buffer.from(head), bytes, e.partial ? Buffer.alloc(0) : Buffer.from('\n')]));
      this.#midLine[e.stream] = e.partial === true;
      return;
    }
    const lead = this.#midLine.stderr ? '\n' : '';
    this.#midLine.stderr = false;
    await write(stderr, `${lead}${stamp}| ${this.describe(e)}\n`);
  }

  /** The text of a non-output event, without the `| ` prefix. */
  describe(e: EventJson): string {
    const text = e.base64 !== undefined ? Buffer.from(e.base64, 'base64').toString('utf8') : (e.text ?? '');
    switch (e.stream) {
      case 'task': {
        const ev = (e.event ?? {}) as { event?: string; name?: string; code?: number | null; signal?: string | null };
        if (ev.event === 'start') {
          if (ev.name) this.#taskNames.set(e.task, ev.name);
          return `task ${e.task} (${ev.name ?? '?'}) started`;
        }
        if (ev.event === 'exit') return ev.signal ? `task ${e.task} killed by ${ev.signal}` : `task ${e.task} exited ${ev.code ?? '?'}`;
        return `task ${e.task}: ${JSON.stringify(e.event)}`;
      }
      case 'job': {
        const ev = (e.event ?? {}) as { result?: string; reason?: string };
        return `agent: job ${ev.result ?? '?'}${ev.reason ? `: ${ev.reason}` : ''}`;
      }
      case 'worker':
        return `worker: ${text}`;
      case 'console':
        return `console: ${text}`;
      case 'control':
        return text;
      default:
        return `${String(e.stream)}: ${text || JSON.stringify(e.event)}`;
    }
  }

  /** Ends a partial last line of stderr so the shell prompt starts on its own line. */
  async finish(): Promise<void> {
    if (this.#midLine.stderr && !this.#o.json) await write(this.#o.stderr, '\n');
    this.#midLine.stderr = false;
  }
}

function retryable(err: unknown): boolean {
  // 502/503/504 come from a proxy in front of a restarting coordinator.
  return err instanceof ConnectionError || (err instanceof ApiError && err.status >= 502 && err.status <= 504);
}

/**
 * Follows job `id` to its end and resolves with its exit code (0 completed,
 * 1 failed, 2 cancelled). Rejects with the API's error (e.g. 404) or, after
 * `retryMs` without reaching the coordinator, with the ConnectionError.
 *
 * @example
 * process.exitCode = await tailJob(api, id, { timestamps: false, json: false });
 */
export async function tailJob(api: ApiClient, id: string, o: TailOptions): Promise<number> {
  const printer = new EventPrinter(o);
  const stderr = o.stderr ?? process.stderr;
  const retryMs = o.retryMs ?? TAIL_RETRY_MS;
  let after = 0;
  let failingSince: number | null = null;
  let attempt = 0;
  for (;;) {
    let page: EventsPage;
    try {
      page = await api.get<EventsPage>(`/api/v1/jobs/${encodeURIComponent(id)}/events`, { after, wait: TAIL_WAIT_SECONDS }, { timeoutMs: (TAIL_WAIT_SECONDS + 30) * 1000 });
    } catch (err) {
      if (!retryable(err)) throw err;
      const now = Date.now();
      const since = (failingSince ??= now);
      if (now - since >= retryMs) throw err;
      if (attempt === 0 && !o.json) {
        await printer.finish();
        const why = err instanceof ConnectionError ? `at ${err.url} (${err.reason})` : `(${(err as Error).message})`;
        await write(stderr, `| lost the coordinator ${why}; retrying from event ${after + 1} for up to ${Math.round(retryMs / 1000)} s\n`);
      }
      const delay = Math.max(100, backoffDelay(attempt++, RETRY_BASE_MS, RETRY_CAP_MS));
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(100, since + retryMs - now))));
      continue;
    }
    if (failingSince !== null && !o.json) await write(stderr, `| reconnected to the coordinator after ${Math.round((Date.now() - failingSince) / 1000)} s\n`);
    failingSince = null;
    attempt = 0;
    for (const e of page.events) {
      // A page never overlaps what was printed, but a replayed page after a retry must not print twice.
      if (e.seq <= after) continue;
      await printer.print(e);
      after = e.seq;
    }
    if (page.next > after) after = page.next;
    if (page.done) {
      await printer.finish();
      return exitCodeOf(page.state);
    }
  }
}
