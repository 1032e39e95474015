/**
 * The `store` scenario: what a big store costs the coordinator. Three stores,
 * one after another, each seeded by its own child (store-seed.ts) through the
 * coordinator's own record factories while no coordinator has it open, then
 * served by a coordinator child and measured over REST on loopback:
 *
 * - empty (users and targets only): start-up, memory, submission rate,
 *   and the raw `Jobs.insert` rate without HTTP: the ceilings;
 * - small (10,000 jobs): the same list and log queries as the big store: the floors;
 * - big (1,000,000 jobs; quick: 100,000): seeding rate, start-up time and
 *   memory, list queries (REST and the Jobs page, with and without
 *   filters, deep cursors, a filter that matches nothing), log pages at the
 *   start, middle and end of a long log against a short one, the job page,
 *   a walk through many list pages (what the coordinator keeps in memory
 *   afterwards), then the submission rate and the raw insert rate.
 *
 * Every loop is bounded in count and time; each store's directory is removed
 * as soon as its part is done.
 */
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext } from './ceilings.js';
import { CoordinatorChild } from './fixture.js';
import type { CoordinatorMemory } from './fixture.js';
import { IpcChild, phase } from './proc.js';
import { addBottlenecks, figure, newResult, sampleOf } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Seeded, SeedRequest, SubmitSpec } from './store-seed.js';
import { fmt, mapLimit, median, nowMs, percentile, tempDir } from './util.js';

const S = 'store';

/** Counts and bounds for one mode. */
interface Sizes {
  big: number;
  small: number;
  /** Jobs with a 50 to 1,000-line log in the big store (the small one gets the same share). */
  logJobs: number;
  longLogLines: number;
  /** The newest jobs of each seeded store left queued. */
  queued: number;
  submits: number;
  warmSubmits: number;
  concurrency: number;
  /** Per query: at most this many timed requests, and no more once `sampleMs` has passed (after `minSamples`). */
  samples: number;
  minSamples: number;
  sampleMs: number;
  /** Timed requests of the query that scans the whole jobs table. */
  scanSamples: number;
  /** List pages walked with a cursor to see what the coordinator keeps. */
  walkPages: number;
  seedTimeoutMs: number;
}

const FULL: Sizes = {
  big: 1_000_000, small: 10_000, logJobs: 3_000, longLogLines: 150_000, queued: 200, submits: 3_000, warmSubmits: 300, concurrency: 64,
  samples: 100, minSamples: 5, sampleMs: 500, scanSamples: 1, walkPages: 200, seedTimeoutMs: 400_000,
};
const QUICK: Sizes = {
  big: 100_000, small: 10_000, logJobs: 300, longLogLines: 100_000, queued: 200, submits: 600, warmSubmits: 100, concurrency: 64,
  samples: 20, minSamples: 3, sampleMs: 100, scanSamples: 1, walkPages: 40, seedTimeoutMs: 120_000,
};

/** Lines of the short log every log figure is compared with (a page of 500 or 1,000 fits in it). */
const SHORT_LOG_LINES = 1_000;
/** What each timed submission sends (the raw insert builds the same record from it). */
const SUBMIT: SubmitSpec = { name: 'store-bench-submit', target: 'bench', script: 'echo hi\n', tags: { branch: 'main', commit: '0123456789abcdef0123456789abcdef01234567' } };
/** Same seed for every store, so the small and the big store have the same spreads and filters. */
const SEED = 20261121;

/** One request to time. */
interface Query {
  key: string;
  what: string;
  path: string;
  /** `json`/`html`: the Accept header a script or a browser sends to a page. */
  accept?: 'json' | 'html';
}

/** What one store's part measured. */
interface StoreRun {
  label: string;
  seeded: Seeded;
  startMs: number;
  /** CPU seconds the coordinator used from exec to serving. */
  startCpuS: number;
  mem: CoordinatorMemory | undefined;
  raw: { perS: number } | null;
  submit: { perS: number; ms: number[]; coordCpuS: number } | null;
  queries: Map<string, { q: Query; ms: number[]; bytes: number; body: string }>;
  /** First load of each job page (nothing about the log cached yet). */
  cold: Map<string, number>;
  /**
   * Heap (after a forced GC) before a walk through `jobs` distinct jobs of
   * the list, after it, and after walking the very same pages again: what
   * the second walk adds is the control (nothing new to keep).
   */
  walk: { jobs: number; ms: number[]; heap: [number, number, number]; rss: [number, number, number] } | null;
}

function listQueries(s: Seeded): Query[] {
  const f = s.filters;
  const e = encodeURIComponent;
  return [
    { key: 'api-newest', what: 'GET /api/v1/jobs?all=1 newest 100', path: '/api/v1/jobs?all=1&limit=100' },
    { key: 'api-own', what: 'GET /api/v1/jobs own newest 100', path: '/api/v1/jobs?limit=100' },
    { key: 'api-middle', what: 'GET /api/v1/jobs?all=1 page at the middle', path: `/api/v1/jobs?all=1&limit=100&before=${s.cursors.middle}` },
    { key: 'api-deep', what: 'GET /api/v1/jobs?all=1 page near the oldest', path: `/api/v1/jobs?all=1&limit=100&before=${s.cursors.deep}` },
    { key: 'api-failed', what: 'GET /api/v1/jobs?all=1&state=failed', path: '/api/v1/jobs?all=1&limit=100&state=failed' },
    { key: 'api-cancelled', what: 'GET /api/v1/jobs?all=1&state=cancelled', path: '/api/v1/jobs?all=1&limit=100&state=cancelled' },
    { key: 'page-newest', what: 'GET /jobs newest 50 (JSON)', path: '/jobs', accept: 'json' },
    { key: 'page-name', what: 'GET /jobs?name=<most common name>', path: `/jobs?name=${e(f.commonName)}`, accept: 'json' },
    { key: 'page-name-mid', what: 'GET /jobs?name=<11th most common>', path: `/jobs?name=${e(f.midName)}`, accept: 'json' },
    { key: 'page-target', what: 'GET /jobs?target=<target>', path: `/jobs?target=${e(f.target)}`, accept: 'json' },
    { key: 'page-tag-rare', what: 'GET /jobs?tag=<rare branch>', path: `/jobs?tag=${e(f.rareTag)}`, accept: 'json' },
    { key: 'page-middle', what: 'GET /jobs page at the middle', path: `/jobs?before=${s.cursors.middle}`, accept: 'json' },
    { key: 'status', what: 'GET / status page (JSON)', path: '/', accept: 'json' },
  ];
}

/** Not sampled like the others: in the store no job is running, so it reads every record. */
const SCAN_QUERY: Query = { key: 'api-running', what: 'GET /api/v1/jobs?all=1&state=running (none)', path: '/api/v1/jobs?all=1&limit=100&state=running' };

function logQueries(s: Seeded): Query[] {
  const short = s.shortLog.job;
  const out: Query[] = [
    { key: 'log-short', what: 'events page of 1,000, short log', path: `/api/v1/jobs/${short}/events?after=0&limit=1000` },
    { key: 'page-log-short', what: 'GET /job/ID/events 500, short log', path: `/job/${short}/events?after=0&limit=500`, accept: 'json' },
    { key: 'jobpage-short-html', what: 'GET /job/ID (HTML), short log', path: `/job/${short}`, accept: 'html' },
    { key: 'jobpage-short-json', what: 'GET /job/ID (JSON), short log', path: `/job/${short}`, accept: 'json' },
  ];
  if (s.longLog.job) {
    const id = s.longLog.job;
    const n = s.longLog.lastSeq;
    out.push(
      { key: 'log-long-start', what: 'events page of 1,000, long log start', path: `/api/v1/jobs/${id}/events?after=0&limit=1000` },
      { key: 'log-long-middle', what: 'events page of 1,000, long log middle', path: `/api/v1/jobs/${id}/events?after=${Math.floor(n / 2)}&limit=1000` },
      { key: 'log-long-end', what: 'events page of 1,000, long log end', path: `/api/v1/jobs/${id}/events?after=${n - 1000}&limit=1000` },
      { key: 'page-log-long-middle', what: 'GET /job/ID/events 500, long log middle', path: `/job/${id}/events?after=${Math.floor(n / 2)}&limit=500`, accept: 'json' },
      { key: 'jobpage-long-html', what: 'GET /job/ID (HTML), long log', path: `/job/${id}`, accept: 'html' },
      { key: 'jobpage-long-json', what: 'GET /job/ID (JSON), long log', path: `/job/${id}`, accept: 'json' },
    );
  }
  return out;
}

/** Which short-log query (same store) each long-log one is compared with. */
const LOG_FLOORS: Record<string, string> = {
  'log-long-start': 'log-short', 'log-long-middle': 'log-short', 'log-long-end': 'log-short',
  'page-log-long-middle': 'page-log-short', 'jobpage-long-html': 'jobpage-short-html', 'jobpage-long-json': 'jobpage-short-json',
};

/** One timed GET: ms until the whole body is read. Throws on a non-200 answer (a harness or coordinator fault, not a figure). */
async function timedGet(base: string, token: string, q: Query): Promise<{ ms: number; body: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (q.accept) headers.accept = q.accept === 'json' ? 'application/json' : 'text/html,application/xhtml+xml,*/*;q=0.8';
  const t0 = nowMs();
  const res = await fetch(base + q.path, { headers });
  const body = await res.text();
  const ms = nowMs() - t0;
  if (res.status !== 200) throw new Error(`${q.path}: ${res.status} ${body.slice(0, 300)}`);
  return { ms, body };
}

/** One untimed request (JIT, caches), then up to `max` timed ones, one at a time, stopping after `capMs` once `min` are in. */
async function sample(base: string, token: string, q: Query, max: number, min: number, capMs: number, warm = true): Promise<{ q: Query; ms: number[]; bytes: number; body: string }> {
  let body = warm ? (await timedGet(base, token, q)).body : '';
  const ms: number[] = [];
  const deadline = nowMs() + capMs;
  for (let i = 0; i < max; i++) {
    if (i >= min && nowMs() > deadline) break;
    const t = await timedGet(base, token, q);
    ms.push(t.ms);
    body = t.body;
  }
  return { q, ms, bytes: body.length, body };
}

/** Submits `n` jobs, `concurrency` in flight; the rate over the wall time and each request's latency. */
async function submitMany(base: string, token: string, n: number, concurrency: number): Promise<{ perS: number; ms: number[] }> {
  const body = JSON.stringify({ name: SUBMIT.name, target: SUBMIT.target, tasks: [{ name: 'main', script: SUBMIT.script }], tags: SUBMIT.tags });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const ms: number[] = [];
  const t0 = nowMs();
  await mapLimit(Array.from({ length: n }, (_, i) => i), concurrency, async () => {
    const t = nowMs();
    const res = await fetch(`${base}/api/v1/jobs`, { method: 'POST', headers, body });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`POST /api/v1/jobs: ${res.status} ${text.slice(0, 300)}`);
    ms.push(nowMs() - t);
  });
  return { perS: n / ((nowMs() - t0) / 1000), ms };
}

/** Seeds, serves and measures one store; see the file comment for which parts run where. */
async function runStore1(
  ctx: BenchContext, r: ScenarioResult, sz: Sizes, label: string, seedReq: Omit<SeedRequest, 'dir'>,
  parts: { raw: boolean; queries: boolean; walk: boolean; submit: boolean },
): Promise<StoreRun> {
  const dir = tempDir(`bw-bench-store-${label.replace(/[^a-z0-9]/gi, '')}-`);
  const storeDir = join(dir.path, 'store');
  const seeder = new IpcChild('./store-seed.js');
  let coord: CoordinatorChild | undefined;
  try {
    ctx.log(`store ${label}: seeding ${fmt(seedReq.jobs, 0)} jobs`);
    const endSeed = phase(`seed ${label}`, [{ role: 'seeder', pid: seeder.pid }]);
    seeder.send({ op: 'seed', dir: storeDir, ...seedReq });
    const seeded = (await seeder.expect('seeded', sz.seedTimeoutMs, `seeding ${fmt(seedReq.jobs, 0)} jobs`)) as unknown as Seeded;
    if (seedReq.jobs > 0) r.processes.push(...endSeed());
    let raw: StoreRun['raw'] = null;
    if (parts.raw) {
      seeder.send({ op: 'raw-insert', dir: storeDir, n: sz.submits, concurrency: sz.concurrency, submit: SUBMIT });
      const ins = await seeder.expect('inserted', 120_000, 'the raw inserts');
      raw = { perS: (ins.n as number) / ((ins.ms as number) / 1000) };
    }
    await seeder.stop();

    coord = new CoordinatorChild(storeDir);
    coord.adminToken = seeded.adminToken;
    const t0 = nowMs();
    const info = await coord.start(120_000);
    const startMs = nowMs() - t0;
    const startCpuS = coord.sample()?.cpuS ?? NaN;
    const mem = await coord.memory();
    ctx.log(`store ${label}: coordinator ${info.serverKind} pid ${coord.pid} serving after ${fmt(startMs, 0)} ms, rss ${fmt((mem?.rss ?? NaN) / 2 ** 20, 0)} MiB`);
    const base = info.url;
    const token = seeded.adminToken;
    const run: StoreRun = { label, seeded, startMs, startCpuS, mem, raw, submit: null, queries: new Map(), cold: new Map(), walk: null };
    const procs = () => [{ role: 'coordinator', pid: coord!.pid }, { role: 'bench (HTTP client)', pid: process.pid }];

    if (parts.queries) {
      const logs = logQueries(seeded);
      // First loads before anything else reads these logs: the job page's task timeline reads the whole log once.
      for (const q of logs.filter((x) => x.key.startsWith('jobpage-') && x.key.endsWith('-html'))) run.cold.set(q.key, (await timedGet(base, token, q)).ms);
      const end = phase(`queries ${label}`, procs());
      for (const q of [...listQueries(seeded), ...logs]) run.queries.set(q.key, await sample(base, token, q, sz.samples, sz.minSamples, sz.sampleMs));
      r.processes.push(...end());
      const endScan = phase(`full scan ${label}`, procs());
      run.queries.set(SCAN_QUERY.key, await sample(base, token, SCAN_QUERY, sz.scanSamples, 1, 0, false));
      r.processes.push(...endScan());
    }

    if (parts.walk) {
      // Page back through the list with its cursor (every job listed is a different one), then walk the same pages again.
      const m0 = await coord.memory();
      const paths: string[] = [];
      const ms: number[] = [];
      let jobs = 0;
      const deadline = nowMs() + 60_000;
      const end = phase(`list walk ${label}`, procs());
      for (let p = 0, cursor = ''; p < sz.walkPages && nowMs() < deadline; p++) {
        const q: Query = { key: 'walk', what: 'walk', path: `/api/v1/jobs?all=1&limit=100${cursor ? `&before=${cursor}` : ''}` };
        const t = await timedGet(base, token, q);
        const page = (JSON.parse(t.body) as { jobs: { id: string }[] }).jobs;
        paths.push(q.path);
        ms.push(t.ms);
        jobs += page.length;
        if (page.length === 0) break;
        cursor = page.at(-1)!.id;
      }
      r.processes.push(...end());
      const m1 = await coord.memory();
      for (const path of paths) await timedGet(base, token, { key: 'walk', what: 'walk again', path });
      const m2 = await coord.memory();
      const heap = (m: CoordinatorMemory | undefined) => m?.heapUsed ?? NaN;
      const rss = (m: CoordinatorMemory | undefined) => m?.rss ?? NaN;
      run.walk = { jobs, ms, heap: [heap(m0), heap(m1), heap(m2)], rss: [rss(m0), rss(m1), rss(m2)] };
    }

    if (parts.submit) {
      // Target `bench` has no agents, so every job stays queued: this times the submission alone.
      await submitMany(base, token, sz.warmSubmits, sz.concurrency);
      const end = phase(`submit ${label}`, procs());
      const sub = await submitMany(base, token, sz.submits, sz.concurrency);
      const usage = end();
      r.processes.push(...usage);
      run.submit = { ...sub, coordCpuS: usage.find((u) => u.role === 'coordinator')?.cpuS ?? NaN };
      ctx.log(`store ${label}: ${fmt(sub.perS, 0)} submissions/s (raw insert ${fmt(raw?.perS ?? NaN, 0)}/s)`);
    }
    return run;
  } finally {
    await seeder.stop();
    if (coord) {
      await coord.stop(30_000);
      if (/Error|failed/.test(coord.log)) r.notes.push(`${label} coordinator log tail: ${coord.log.slice(-600)}`);
    }
    dir.remove();
  }
}

/** Bytes free where the temporary stores go. */
function freeBytes(): number {
  try {
    const st = statfsSync(tmpdir());
    return st.bavail * st.bsize;
  } catch {
    return Infinity;
  }
}

const p50 = (xs: number[]) => median(xs);
const p99 = (xs: number[]) => percentile(xs, 0.99);

/** Runs the store scenario. */
export async function runStore(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult(S);
  const sz = ctx.quick ? QUICK : FULL;
  const bigLabel = sz.big >= 1_000_000 ? `${sz.big / 1_000_000}M` : `${sz.big / 1000}k`;
  const smallLabel = `${sz.small / 1000}k`;
  // About 2 KiB a job in the data file (see the figures), plus the long log; refuse rather than fill the disk.
  const need = sz.big * 2048 + sz.longLogLines * 200;
  if (freeBytes() < 3 * need) {
    r.errors.push(`not enough free space under ${tmpdir()} for a ${fmt(sz.big)}-job store: need about ${fmt(need / 2 ** 30, 1)} GiB (×3 margin), have ${fmt(freeBytes() / 2 ** 30, 1)} GiB`);
    return r;
  }
  const base = { queued: 0, logJobs: 0, longLogLines: 0, shortLogLines: SHORT_LOG_LINES, seed: SEED };
  try {
    const empty = await runStore1(ctx, r, sz, 'empty', { ...base, jobs: 0, shortLogLines: 0 }, { raw: true, queries: false, walk: false, submit: true });
    // The small store gets the big one's share of jobs with logs, so bytes per job compare.
    const small = await runStore1(ctx, r, sz, smallLabel, { ...base, jobs: sz.small, queued: sz.queued, logJobs: Math.max(1, Math.round((sz.logJobs * sz.small) / sz.big)) }, { raw: false, queries: true, walk: false, submit: false });
    const big = await runStore1(ctx, r, sz, bigLabel, { ...base, jobs: sz.big, queued: sz.queued, logJobs: sz.logJobs, longLogLines: sz.longLogLines }, { raw: true, queries: true, walk: true, submit: true });
    report(r, sz, empty, small, big);
  } catch (err) {
    // Without all three stores no figure has its ceiling or floor: report the failure and what the phases used.
    r.errors.push((err as Error).stack ?? String(err));
  }
  addBottlenecks(r);
  return r;
}

/** Turns the three runs into figures, distributions, a series and notes. */
function report(r: ScenarioResult, sz: Sizes, empty: StoreRun, small: StoreRun, big: StoreRun): void {
  const B = big.label;
  const bs = big.seeded;
  const ss = small.seeded;
  const perS = (s: Seeded) => s.jobs / (s.ms / 1000);

  r.figures.push(
    figure(S, `seeding ${B} jobs`, perS(bs), 'jobs/s', 'higher', {
      ceiling: { value: perS(ss), what: `jobs/s seeding ${small.label} (same code)` },
      note: `${fmt(bs.ms / 1000, 1)} s; ${fmt(bs.puts / (bs.ms / 1000))} puts/s in sync transactions of 10,000 jobs; ${fmt(bs.events, 0)} events in ${fmt(bs.logged, 0)} logs; states ${Object.entries(bs.counts).map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ')}`,
    }),
    figure(S, `data file per job (${B})`, bs.fileBytes / bs.jobs, 'B/job', 'lower', {
      ceiling: { value: ss.fileBytes / ss.jobs, what: `B/job with ${small.label} (same spread)` },
      note: `data.mdb ${fmt(bs.fileBytes / 2 ** 20, 0)} MiB; ${Object.entries(bs.databases).map(([k, d]) => `${k} ${fmt(d.entries, 0)} keys, depth ${d.depth}, ${fmt(d.mib, 0)} MiB`).join('; ')}`,
    }),
    figure(S, `start-up with ${B} jobs: time to serve`, big.startMs, 'ms', 'lower', {
      ceiling: { value: empty.startMs, what: 'ms on the empty store' },
      note: `exec → info line, ${fmt(big.startCpuS, 2)} CPU s (empty store ${fmt(empty.startCpuS, 2)}); ${fmt(bs.counts.queued ?? 0, 0)} queued jobs loaded`,
    }),
    figure(S, `RSS after start-up (${B})`, (big.mem?.rss ?? NaN) / 2 ** 20, 'MiB', 'lower', {
      ceiling: { value: (empty.mem?.rss ?? NaN) / 2 ** 20, what: 'MiB on the empty store' },
      note: `after a forced GC: heap used ${fmt((big.mem?.heapUsed ?? NaN) / 2 ** 20, 1)} MiB (empty store ${fmt((empty.mem?.heapUsed ?? NaN) / 2 ** 20, 1)})`,
    }),
  );

  if (big.submit && empty.submit) {
    const sb = big.submit;
    const se = empty.submit;
    r.figures.push(
      figure(S, `submit with ${B} stored`, sb.perS, 'jobs/s', 'higher', {
        ceiling: { value: se.perS, what: 'jobs/s on the empty store (same harness)' },
        note: `${fmt(sz.submits)} POST /api/v1/jobs, ${sz.concurrency} in flight, after ${sz.warmSubmits} untimed; coordinator ${fmt((sb.coordCpuS / sz.submits) * 1e6, 0)} µs CPU per submission (empty store ${fmt((se.coordCpuS / sz.submits) * 1e6, 0)})`,
      }),
      figure(S, `submit with ${B} stored vs no HTTP`, sb.perS, 'jobs/s', 'higher', {
        ceiling: big.raw ? { value: big.raw.perS, what: `jobs/s Jobs.create+insert, no HTTP, ${B} stored` } : null,
      }),
      figure(S, `raw insert with ${B} stored`, big.raw?.perS ?? NaN, 'jobs/s', 'higher', {
        ceiling: empty.raw ? { value: empty.raw.perS, what: 'jobs/s raw insert, empty store' } : null,
        note: `the coordinator's Jobs.insert (one async transaction of 3 puts per job) in a child, ${sz.concurrency} in flight`,
      }),
      figure(S, `submit latency p50 (${B})`, p50(sb.ms), 'ms', 'lower', { ceiling: { value: p50(se.ms), what: 'ms p50, empty store' } }),
      figure(S, `submit latency p99 (${B})`, p99(sb.ms), 'ms', 'lower', { ceiling: { value: p99(se.ms), what: 'ms p99, empty store' } }),
    );
    r.distributions.push(
      { name: `submit latency, ${B} stored`, unit: 'ms', samples: sampleOf(sb.ms), floor: p50(se.ms), group: 'submit latency' },
      { name: 'submit latency, empty store', unit: 'ms', samples: sampleOf(se.ms), group: 'submit latency' },
    );
    r.series.push({
      name: 'submission rate by jobs stored', xLabel: 'jobs stored', unit: 'jobs/s', xScale: 'linear',
      ceilingWhat: `jobs/s Jobs.create+insert without HTTP, ${sz.concurrency} in flight`,
      points: [
        { x: 0, y: se.perS, ...(empty.raw ? { ceiling: empty.raw.perS } : {}) },
        { x: bs.jobs, y: sb.perS, ...(big.raw ? { ceiling: big.raw.perS } : {}) },
      ],
    });
  }

  // List and log queries: p50 and p99 against the floor (the same query on the small store, or the short log on the same store).
  const pair = (value: { ms: number[] } | undefined, floor: { ms: number[] } | undefined, floorWhat: string, what: string, extra: string | null, group: string) => {
    if (!value || value.ms.length === 0) return;
    r.figures.push(
      figure(S, `${what} p50`, p50(value.ms), 'ms', 'lower', {
        ceiling: floor ? { value: p50(floor.ms), what: `ms p50, ${floorWhat}` } : null,
        note: `${value.ms.length} requests${extra ? `; ${extra}` : ''}`,
      }),
      figure(S, `${what} p99`, p99(value.ms), 'ms', 'lower', { ceiling: floor ? { value: p99(floor.ms), what: `ms p99, ${floorWhat}` } : null }),
    );
    r.distributions.push({ name: `${what} (${B})`, unit: 'ms', samples: sampleOf(value.ms), group, ...(floor ? { floor: p50(floor.ms) } : {}) });
  };
  for (const [key, v] of big.queries) {
    if (key === SCAN_QUERY.key) continue;
    const logFloor = LOG_FLOORS[key];
    const group = key.startsWith('api-') || (key.startsWith('page-') && !key.startsWith('page-log')) || key === 'status' ? 'list queries' : 'log pages and the job page';
    if (logFloor) pair(v, big.queries.get(logFloor), `short log, same store`, v.q.what, pageInfo(v.body, p50(v.ms)), group);
    else pair(v, small.queries.get(key), `${small.label} store`, v.q.what, pageInfo(v.body, p50(v.ms)), group);
  }
  const scan = big.queries.get(SCAN_QUERY.key);
  const scanUse = r.processes.find((u) => u.phase === `full scan ${B}` && u.role === 'coordinator');
  if (scan) {
    r.figures.push(figure(S, `${SCAN_QUERY.what}${scan.ms.length === 1 ? ', one request' : ', median'}`, p50(scan.ms), 'ms', 'lower', {
      ceiling: small.queries.get(SCAN_QUERY.key) ? { value: p50(small.queries.get(SCAN_QUERY.key)!.ms), what: `ms, ${small.label} store` } : null,
      note: `${scan.ms.length === 1 ? 'one request' : `${scan.ms.length} requests`}, each reading all ${fmt(bs.jobs)} job records while the coordinator's one thread serves nothing else; ${fmt((p50(scan.ms) * 1000) / bs.jobs, 2)} µs per record`
        + (scanUse ? `, ${fmt((scanUse.cpuS * 1e6) / bs.jobs / scan.ms.length, 2)} µs CPU; coordinator RSS ${fmt(scanUse.rssStartMiB, 0)} → ${fmt(scanUse.rssEndMiB, 0)} MiB (the data file's pages, mapped)` : ''),
    }));
  }
  for (const [key, ms] of big.cold) {
    const floorKey = key.replace('-long-', '-short-');
    if (floorKey === key) continue;
    r.figures.push(figure(S, `first load of the job page, long log (${fmt(bs.longLog.lastSeq, 0)} events)`, ms, 'ms', 'lower', {
      ceiling: big.cold.has(floorKey) ? { value: big.cold.get(floorKey)!, what: `ms, first load with a ${fmt(SHORT_LOG_LINES, 0)}-line log` } : null,
      note: 'one request each; the task timeline reads the whole log once per job (then it is cached)',
    }));
  }
  if (big.walk) {
    const w = big.walk;
    const [h0, h1, h2] = w.heap;
    r.figures.push(figure(S, `coordinator heap after listing ${fmt(w.jobs, 0)} jobs`, h1 / 2 ** 20, 'MiB', 'lower', {
      ceiling: { value: h0 / 2 ** 20, what: 'MiB heap just before (after GC)' },
      note: `${fmt(w.ms.length, 0)} pages of GET /api/v1/jobs?all=1&limit=100 walked with the before cursor, p50 ${fmt(p50(w.ms), 1)} ms, p99 ${fmt(p99(w.ms), 1)} ms; `
        + `heap kept ${fmt((h1 - h0) / Math.max(1, w.jobs), 0)} B per job listed; walking the same pages again added ${fmt((h2 - h1) / Math.max(1, w.jobs), 0)} B per job (control); `
        + `RSS ${w.rss.map((x) => fmt(x / 2 ** 20, 0)).join(' → ')} MiB (includes the store's mapped pages)`,
    }));
    r.distributions.push({ name: `list walk page (${B})`, unit: 'ms', samples: sampleOf(w.ms), group: 'list queries' });
  }

  r.notes.push(
    `stores: empty (users and targets only), ${small.label} and ${B} jobs seeded straight into LMDB by store-seed.ts with the coordinator's Jobs.create, createUser and ensureTarget, the rest of Jobs.insert/transition/finish mirrored; ${fmt(bs.logged, 0)} of the ${B} jobs have a log (50 to 1,000 lines; one ${fmt(sz.longLogLines)}-line, one ${fmt(SHORT_LOG_LINES)}-line), the rest none, to keep seeding within budget`,
    `filters: name ${JSON.stringify(bs.filters.commonName)} (most common), ${JSON.stringify(bs.filters.midName)} (11th), target ${bs.filters.target}, tag ${bs.filters.rareTag} (rare); GET /api/v1/jobs filters by state only; name, target and tag filters are the Jobs page's (/jobs, JSON), which reads at most 5,000 records per request`,
  );
  const scanFloor = small.queries.get(SCAN_QUERY.key);
  if (scan && scanFloor) {
    r.notes.push(`GET /api/v1/jobs?state=X reads job records newest first until it has a page (no bound): with no job in state X it read all ${fmt(bs.jobs)} records in ${fmt(p50(scan.ms), 0)} ms (${fmt(ss.jobs)}: ${fmt(p50(scanFloor.ms), 1)} ms)`);
  }
}

/** What an answer held: jobs returned and, for the Jobs page, how many records it read and the time per record at p50. */
function pageInfo(body: string, p50Ms: number): string | null {
  try {
    const b = JSON.parse(body) as { jobs?: unknown[]; scanned?: number; scanLimited?: boolean; events?: unknown[] };
    if (Array.isArray(b.jobs)) {
      const read = b.scanned !== undefined && b.scanned > 0 ? `, ${fmt(b.scanned, 0)} records read${b.scanLimited ? ' (the bound)' : ''}, ${fmt((p50Ms * 1000) / b.scanned, 1)} µs each at p50` : '';
      return `${b.jobs.length} jobs${read}`;
    }
    if (Array.isArray(b.events)) return `${b.events.length} events`;
  } catch {
    // HTML: nothing to count.
  }
  return `${fmt(body.length / 1024, 0)} KiB`;
}
