/**
 * Small shared helpers for the benchmarks: time, waiting with bounds,
 * percentiles, temporary directories, and a REST client for the
 * coordinator's API. Nothing here asserts: benchmarks print numbers.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small fast seeded PRNG (mulberry32) in [0, 1): the same seed gives the
 * same sequence, so bench data and fuzzed test inputs are the same every run.
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Milliseconds on a wall clock shared by every process on this host, with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `check` until it returns a truthy value or `timeoutMs` passes;
 * returns the value or `undefined` on timeout (never throws for time).
 *
 * @example
 * const ok = await until(() => worker.connected, 20_000);
 */
export async function until<T>(check: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs: number, everyMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1_000_000; i++) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(everyMs);
  }
  return undefined;
}

/**
 * Races a promise against a timeout; rejects with `what` in the message.
 *
 * @example
 * await withTimeout(child.waitFor('ready'), 60_000, 'agents to connect');
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Runs `cmd args` and resolves with ms until `hi` appears on stdout (or until exit when `toExit`). */
export function timeSpawn(cmd: string, args: string[], toExit: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let done = false;
    const end = () => {
      if (!done) {
        done = true;
        resolve(nowMs() - t0);
      }
    };
    child.stdout!.on('data', (b: Buffer) => {
      if (!toExit && b.includes('hi')) end();
    });
    child.on('error', reject);
    child.on('close', end);
  });
}

/** Nearest-rank percentile (q in 0..1) of unsorted numbers; NaN for none. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** Median of unsorted numbers. */
export function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

/** A temporary directory and a function that removes it. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; results keep input order. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return out;
}

/** One REST answer. */
export interface ApiResponse {
  status: number;
  body: any;
}

/**
 * A minimal client of the coordinator's REST API with a bearer token.
 * Non-2xx answers are returned, not thrown; use {@link Api.ok} to throw.
 */
export class Api {
  constructor(readonly url: string, readonly token: string) {}

  /** Sends one request; the body is JSON when given. */
  async call(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r: Response;
    try {
      r = await fetch(this.url + path, init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`${method} ${this.url}${path}: ${(err as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''}`);
    }
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: r.status, body: parsed };
  }

  /** Like `call`, but throws unless the status is 2xx. */
  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  }
}

/** A persistent worker as POST /api/v1/workers returns it. */
export interface WorkerGrant {
  worker: string;
  credential: string;
}

/** Creates `n` persistent workers for `target` over REST, `concurrency` requests at a time. */
export async function createWorkers(api: Api, target: string, n: number, concurrency: number): Promise<WorkerGrant[]> {
  return mapLimit(Array.from({ length: n }, (_, i) => i), concurrency, async () => {
    const b = await api.ok('POST', '/api/v1/workers', { target });
    return { worker: b.id as string, credential: b.credential as string };
  });
}

/** Submits a one-task bash job and returns its id. */
export async function submitJob(api: Api, target: string, script: string, name = 'bench'): Promise<string> {
  const b = await api.ok('POST', '/api/v1/jobs', { name, target, tasks: [{ name: 'main', script }] });
  return b.id as string;
}

/** Formats a number for a table: thousands separators, sensible decimals. */
export function fmt(n: number | null | undefined, digits?: number): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : Math.abs(n) >= 1 ? 2 : 3);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/**
 * A bash script printing `n` lines of exactly 100 bytes (newline included),
 * numbered from 1, as fast as it can: the burst job of the fanout and
 * buildbot benchmarks. mawk: an 8-digit number, a space, 90 x's, the newline.
 */
export function burstScript(n: number): string {
  return `awk 'BEGIN{p=sprintf("%90s",""); gsub(/ /,"x",p); for(i=1;i<=${n};i++) printf "%08d %s\\n", i, p}'`;
}

/** Waits (bounded, polling every `everyMs`) for a job to end; throws unless it completed. Returns the job. */
export async function jobCompleted(api: Api, id: string, timeoutMs: number, everyMs = 100): Promise<any> {
  const j = await until(async () => {
    const b = await api.ok('GET', `/api/v1/jobs/${id}`);
    return ['completed', 'failed', 'cancelled'].includes(b.state) ? b : undefined;
  }, timeoutMs, everyMs);
  if (!j) throw new Error(`job ${id} did not end within ${timeoutMs / 1000} s`);
  if (j.state !== 'completed') throw new Error(`job ${id} ended ${j.state}: ${j.reason ?? ''}`);
  return j;
}
