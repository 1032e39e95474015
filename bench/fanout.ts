/**
 * The `fanout` scenario: live viewers of one busy job, over the real
 * `/api/v1/live` WebSocket. A coordinator in its own process (temp store)
 * and the local factory (in this process; a fresh agent process per job),
 * on loopback.
 *
 * 1. Ingestion slowdown. A burst job (`cat` of 1,000,000 lines of build
 *    output, about 94 B each; quick 300,000) runs with no viewer and with 1, 10 and 100 (quick 1 and 20)
 *    viewers, in turn, 5 rounds (quick 2), each round starting one count
 *    further along; the figure is the median. The viewers subscribe while the
 *    global hold keeps the job queued. Ingestion is timed from the
 *    coordinator committing the first output line to committing the last,
 *    with long polls on the events API (the same in every run).
 * 2. Delivery latency. A steady job (1,000 lines/s in ticks of 50 lines
 *    every 50 ms, 5 s; quick 2 s) with the same viewer counts: the time
 *    from the agent reading a line (its record's `time`) to a viewer having
 *    it decoded. The floor is the same job followed by one REST long-poll
 *    follower (`GET /api/v1/jobs/ID/events?wait=`) and no viewer.
 *
 * The host's CPUs are split in two ({@link pinCores}): the coordinator on
 * the first half, and this process, with the local factory, the agents it
 * spawns and their jobs, on the rest, as a worker machine apart from the
 * coordinator's. Without that, which cores the agent, its job and the
 * coordinator happen to share moves a 2-core host's ingestion by ±30% run
 * to run, and the slowdown figure would measure the placement.
 *
 * The viewers run in a child process of their own (this file, forked) on
 * the coordinator's CPUs, every thread under SCHED_IDLE: they run only on
 * CPU time the coordinator leaves, and yield the moment it wakes (real
 * viewers are browsers on other machines; at nice 19 they still held
 * slices that delayed the coordinator's wake-ups, and its acks, by
 * milliseconds). Their CPU time is measured apart. They behave as the
 * page's script does (ping every 25 s; after a connection lost without
 * `done`, reconnect with `after` = the last seq received). Up to
 * {@link FULL_VIEWERS} of them read every page as the page does
 * (web/client/live-page.js: inflate, decode every record, drop what they
 * have) and check each line arrives once, in order; the others inflate the
 * start of each page and check its first batch follows on from what they
 * had (the server sends every viewer the same page bytes; 100 full
 * decoders would measure this host's viewers, not the coordinator). Every
 * viewer must reach the job's last seq and `done`.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { constants as zc, inflateRawSync } from 'node:zlib';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import type { LocalFactory } from '../factory/local/index.js';
import { SESSION_COOKIE, sessionCookie } from '../test/fixtures/browser.js';
import { FRAME, decodeLivePage, pageHead } from '../web/client/live-page.js';
import type { BenchContext } from './ceilings.js';
import { CoordinatorChild, startBenchFactory } from './fixture.js';
import { IpcChild, idleAll, niceAll, phase, pinAll } from './proc.js';
import type { IpcMessage } from './proc.js';
import { addBottlenecks, figure, newResult, sampleOf } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api } from './util.js';
import { fmt, jobCompleted, median, nowMs, percentile, submitJob, tempDir, withTimeout } from './util.js';

const S = 'fanout';
/** The issue's ceiling on ingestion slowdown with live viewers. */
const MAX_SLOWDOWN = 0.1;
/** About the bytes of each line of the burst job (like the ingest scenario's 100). */
const LINE_BYTES = 94;

/**
 * Writes `n` lines that read like a compiler's warnings (about
 * {@link LINE_BYTES} B each, numbered from 1) to `path`, with a fixed seed.
 * They compress about 6× with deflate level 1, as build output does; the
 * ingest scenario's lines of `x`s compress 25× and would make the
 * coordinator's compression for viewers look three times cheaper than it is.
 * The burst job `cat`s the file, so the job itself costs next to nothing.
 */
function writeBuildLog(path: string, n: number): void {
  const fd = openSync(path, 'w');
  try {
    execFileSync('awk', [
      '-v', `n=${n}`,
      'BEGIN { srand(1); split("cc ld ar rustc as", t, " "); for (i = 1; i <= n; i++) printf "%08d [%s] src/%s/mod_%03d.c:%d: warning: unused variable `tmp%d` [-Wunused-%s]  \\n", i, t[1 + int(rand() * 5)], substr("abcdefghijklmnop", 1 + int(rand() * 6), 4), int(rand() * 300), int(rand() * 2000), int(rand() * 64), substr("variablefunctionparameter", 1 + int(rand() * 3) * 8, 8) }',
    ], { stdio: ['ignore', fd, 'inherit'] });
  } finally {
    closeSync(fd);
  }
}
/** Viewers per run that decode every record, as the page does. */
const FULL_VIEWERS = 5;
/** Compressed bytes a header-checking viewer inflates of each page (enough for the first batch's header). */
const HEAD_PREFIX_BYTES = 512;
/** How often a viewer pings, and how soon it first reconnects, as web/client/job.ts does. */
const PING_MS = 25_000;
const RECONNECT_MS = 500;
/** How long, from subscribing, the viewers of one run may take to get every line and `done`. */
const VIEWERS_MAX_WAIT_MS = 180_000;



/** A script printing 50 such lines every 50 ms, `ticks` times. */
function steadyScript(ticks: number): string {
  return `for t in $(seq 0 ${ticks - 1}); do awk -v t=$t 'BEGIN{p=sprintf("%90s",""); gsub(/ /,"x",p); for(i=1;i<=50;i++) printf "%08d %s\\n", t*50+i, p}'; sleep 0.05; done`;
}

// ---------------------------------------------------------------------------
// The viewers' side (the child process).

/** What one viewer saw of a job. */
interface ViewerResult {
  /** Whether it decoded every record (else it checked batch headers only). */
  full: boolean;
  /** Output lines decoded (full viewers), seqs in [firstSeq, lastSeq]. */
  lines: number;
  /** The highest seq received. */
  lastSeq: number;
  /** Pages whose first batch left a gap after what it had, or (full) records out of order. */
  disorder: number;
  /** When `lastSeq` of the lines arrived (nowMs), or null. */
  lastLineAt: number | null;
  /** Full viewers: ms from each output line's record time (the agent read it) to having it decoded. */
  latencies: number[];
  /** Whether the server said `done` and closed with 1000. */
  done: boolean;
  /** Connections lost without `done` (each followed by a reconnect), with their close codes. */
  reconnects: number;
  closeCodes: number[];
  /** Page frames and their bytes on the wire, and how many came compressed. */
  frames: number;
  bytes: number;
  deflated: number;
  /** Why it stopped early, if it did. */
  error: string | null;
}

interface WatchOrder {
  url: string;
  cookie: string;
  job: string;
  n: number;
  firstSeq: number;
  lastSeq: number;
  maxWaitMs: number;
}

/**
 * One live viewer. Resolves `ready` once first subscribed and `done` when it
 * got `done`, was refused (44xx), or gave up.
 */
function viewer(o: WatchOrder, full: boolean): { ready: Promise<void>; done: Promise<ViewerResult>; giveUp(why: string): void } {
  const res: ViewerResult = {
    full, lines: 0, lastSeq: 0, disorder: 0, lastLineAt: null, latencies: [], done: false, reconnects: 0, closeCodes: [], frames: 0, bytes: 0, deflated: 0, error: null,
  };
  const origin = new URL(o.url.replace(/^ws/, 'http')).origin;
  let ws: WebSocket | null = null;
  let stopped = false;
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res1, rej1) => ((readyResolve = res1), (readyReject = rej1)));
  let finish!: () => void;
  const done = new Promise<ViewerResult>((resolve) => (finish = () => resolve(res)));
  const onPage = (data: Buffer) => {
    const { kind, next, body } = pageHead(data);
    res.frames++;
    res.bytes += data.length;
    if (kind === FRAME.DEFLATED) res.deflated++;
    const whole = (): Buffer => (kind === FRAME.DEFLATED ? inflateRawSync(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    if (full) {
      const now = Date.now();
      for (const e of decodeLivePage(whole(), res.lastSeq)) {
        if (e.seq !== res.lastSeq + 1) res.disorder++;
        res.lastSeq = Math.max(res.lastSeq, e.seq);
        if (e.seq >= o.firstSeq && e.seq <= o.lastSeq) {
          res.lines++;
          res.latencies.push(now - e.time);
        }
      }
    } else {
      // The first batch's header only: it must start at or before the next seq wanted. Inflating the
      // stream's first bytes is enough for that (the full viewers read the same frames whole).
      let head = kind === FRAME.DEFLATED ? inflateRawSync(body.subarray(0, HEAD_PREFIX_BYTES), { finishFlush: zc.Z_SYNC_FLUSH }) : whole();
      if (head.length < 12) head = whole();
      if (head.length < 12 || head.readDoubleBE(0) > res.lastSeq + 1) res.disorder++;
      if (next > res.lastSeq) res.lastSeq = next;
    }
    if (res.lastSeq >= o.lastSeq && res.lastLineAt === null) res.lastLineAt = nowMs();
  };
  const connect = () => {
    const sock = new WebSocket(o.url, { headers: { cookie: `${SESSION_COOKIE}=${o.cookie}`, origin }, perMessageDeflate: false });
    ws = sock;
    let ping: NodeJS.Timeout | undefined;
    sock.on('open', () => {
      sock.send(Buffer.from(JSON.stringify({ job: o.job, after: res.lastSeq })));
      // As the page does: the server closes a connection it has not heard from in 75 s.
      ping = setInterval(() => sock.send(Buffer.from('{"ping":1}')), PING_MS);
      readyResolve();
    });
    sock.on('message', (data: Buffer) => {
      try {
        if (data[0] === FRAME.JSON) {
          if ((JSON.parse(data.toString('utf8')) as { done?: boolean }).done) res.done = true;
        } else onPage(data);
      } catch (err) {
        res.error ??= `bad frame: ${(err as Error).message}`;
        stopped = true;
        sock.terminate();
      }
    });
    sock.on('error', (e) => readyReject(e));
    sock.on('close', (code, reason) => {
      clearInterval(ping);
      if (res.done || stopped) return finish();
      if (code >= 4400 && code < 4500) {
        res.error ??= `refused: ${code} ${reason.toString()}`;
        return finish();
      }
      res.reconnects++;
      res.closeCodes.push(code);
      setTimeout(() => {
        if (stopped) finish();
        else connect();
      }, RECONNECT_MS);
    });
  };
  connect();
  const giveUp = (why: string) => {
    stopped = true;
    res.error ??= why;
    ws?.terminate();
  };
  return { ready, done, giveUp };
}

/** The viewers' child process: `{op:'watch', ...}` → `ready` → `done`. Runs when this file is the main module. */
async function viewersChild(): Promise<void> {
  let open: ReturnType<typeof viewer>[] = [];
  process.on('message', (m: IpcMessage) => {
    void (async () => {
      try {
        if (m.op === 'exit') {
          for (const v of open) v.giveUp('closed');
          process.exit(0);
        }
        if (m.op !== 'watch') return;
        const o = m as unknown as WatchOrder;
        open = Array.from({ length: o.n }, (_, i) => viewer(o, i < FULL_VIEWERS));
        await Promise.all(open.map((v) => v.ready));
        process.send!({ op: 'ready' });
        // Bounded: a viewer the server stopped feeding would otherwise wait forever (it pings).
        const timer = setTimeout(() => {
          for (const v of open) v.giveUp(`no done after ${o.maxWaitMs / 1000} s`);
        }, o.maxWaitMs);
        const results = await Promise.all(open.map((v) => v.done));
        clearTimeout(timer);
        open = [];
        // Latencies travel thinned: the parent only needs their distribution.
        for (const r of results) r.latencies = sampleOf(r.latencies);
        process.send!({ op: 'done', results });
      } catch (err) {
        process.send!({ op: 'error', message: (err as Error).stack ?? String(err) });
      }
    })();
  });
}

// ---------------------------------------------------------------------------
// The bench's side.

interface Rig {
  api: Api;
  coord: CoordinatorChild;
  viewers: IpcChild;
  wsUrl: string;
  cookie: string;
  /** The seq of a job's first output line (the same for every job here). */
  first: number;
}

interface RunResult {
  /** ms from the first output line committed to the last. */
  ms: number;
  coordCpuS: number;
  endAt: number;
  results: ViewerResult[];
  lastEvent: number;
  /** The REST follower's latencies (floor run only). */
  restLatencies: number[];
}

/** How the scenario split the CPUs; `undo` gives the bench all of its CPUs back. */
interface Pinning {
  /** The CPUs of the coordinator and the viewers (empty when not pinned). */
  coordinatorCpus: number[];
  note: string;
  undo(): void;
}

/**
 * Splits this host's CPUs in two: the coordinator (and, later, the viewers)
 * on the first half, this process on the rest, so the agents the local
 * factory spawns and their jobs run beside the coordinator as on a worker
 * machine of their own. Unpinned when BW_BENCH_FANOUT_PIN=0, on one CPU, or
 * when taskset fails; the note says which.
 */
function pinCores(coordinatorPid: number): Pinning {
  const unpinned = (why: string): Pinning => ({ coordinatorCpus: [], note: `not pinned (${why}): the coordinator, the agent, the job and the viewers shared every CPU`, undo() {} });
  if (process.env.BW_BENCH_FANOUT_PIN === '0') return unpinned('BW_BENCH_FANOUT_PIN=0');
  const cpus = allowedCpus();
  if (cpus.length < 2) return unpinned(`${cpus.length} CPU allowed`);
  const half = Math.floor(cpus.length / 2);
  const mine = cpus.slice(0, half);
  const theirs = cpus.slice(half);
  try {
    pinAll(coordinatorPid, mine);
    pinAll(process.pid, theirs);
  } catch (err) {
    return unpinned(`taskset failed: ${(err as Error).message}`);
  }
  return {
    coordinatorCpus: mine,
    note: `pinned: the coordinator and the viewers on CPU ${mine.join(',')}, this process with the local factory, the agent and the job on CPU ${theirs.join(',')} (a worker machine of their own); BW_BENCH_FANOUT_PIN=0 shares every CPU`,
    undo: () => pinAll(process.pid, cpus),
  };
}

/** The CPUs this process may run on (/proc/self/status `Cpus_allowed_list`, e.g. `0-3,6`). */
function allowedCpus(): number[] {
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) return [];
  const out: number[] = [];
  for (const part of m[1]!.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

/** Resolves with nowMs() once an event after `after` of `job` is committed (long polls, bounded). */
async function committed(api: Api, job: string, after: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const b = await api.ok('GET', `/api/v1/jobs/${job}/events?after=${after}&limit=1&wait=30`);
    if (b.events.length > 0) return nowMs();
    if (b.done) throw new Error(`job ${job} ended before event ${after + 1}`);
  }
  throw new Error(`event ${after + 1} of job ${job} never came`);
}

/** Follows a job over REST long polls until `last`, recording each output line's latency from its record time. */
async function restFollower(api: Api, job: string, firstSeq: number, last: number, deadline: number): Promise<number[]> {
  const lat: number[] = [];
  let after = 0;
  while (after < last && Date.now() < deadline) {
    const b = await api.ok('GET', `/api/v1/jobs/${job}/events?after=${after}&limit=10000&wait=10`);
    const now = Date.now();
    for (const e of b.events as { seq: number; time: number }[]) if (e.seq >= firstSeq && e.seq <= last) lat.push(now - e.time);
    if (b.events.length > 0) after = b.events.at(-1).seq;
    else if (b.done) break;
  }
  return lat;
}

/** One run of `script` (`lines` output lines): with `n` viewers watching, or with the REST follower when `rest`. */
async function run(x: Rig, script: string, lines: number, n: number, rest = false): Promise<RunResult> {
  const { api, coord, viewers } = x;
  await api.ok('POST', '/api/v1/control/hold');
  const job = await submitJob(api, 'local', script, 'fanout');
  const last = x.first + lines - 1;
  let done: Promise<IpcMessage> | undefined;
  if (n > 0) {
    viewers.send({ op: 'watch', url: x.wsUrl, cookie: x.cookie, job, n, firstSeq: x.first, lastSeq: last, maxWaitMs: VIEWERS_MAX_WAIT_MS } satisfies WatchOrder & { op: string });
    await viewers.expect('ready', 60_000, `${n} viewers to subscribe`);
    done = viewers.expect('done', VIEWERS_MAX_WAIT_MS + 30_000, `${n} viewers to receive every line`);
    // Awaited below; if the run fails first, its rejection (at the viewers' exit) must not crash the bench.
    done.catch(() => {});
  }
  const follower = rest ? restFollower(api, job, x.first, last, Date.now() + 120_000) : Promise.resolve([]);
  follower.catch(() => {});
  const firstAt = committed(api, job, x.first - 1);
  await api.ok('POST', '/api/v1/control/resume');
  const startAt = await firstAt;
  const cpu0 = coord.sample();
  const endAt = await committed(api, job, last - 1);
  const cpu1 = coord.sample();
  await jobCompleted(api, job, 120_000);
  const results = done ? ((await done).results as ViewerResult[]) : [];
  // Read after the viewers' `done`: the job's closing control line commits just after its state turns final.
  const lastEvent = (await api.ok('GET', `/api/v1/jobs/${job}`)).lastEvent as number;
  return { ms: endAt - startAt, coordCpuS: cpu0 && cpu1 ? cpu1.cpuS - cpu0.cpuS : NaN, endAt, results, lastEvent, restLatencies: await follower };
}

/** Checks every viewer of a run got everything; returns problems (at most a few). */
function check(run: RunResult, lines: number, label: string): string[] {
  const out: string[] = [];
  for (const v of run.results) {
    const ok = v.lastSeq === run.lastEvent && v.disorder === 0 && v.done && !v.error && (!v.full || v.lines === lines);
    if (!ok && out.length < 3) out.push(`${label}: ${v.full ? `${v.lines} lines, ` : ''}last seq ${v.lastSeq} of ${run.lastEvent}, ${v.disorder} out of order${v.done ? '' : ', no done'}${v.error ? `, ${v.error}` : ''}`);
  }
  return out;
}

/** Runs the fanout scenario: ingestion slowdown and delivery latency with 1, 10 and 100 live viewers (quick: 1 and 20). */
export async function runFanout(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult(S);
  const dir = tempDir('bw-bench-fanout-');
  // BW_BENCH_CPU_PROF=DIR: the coordinator writes a CPU profile there (as in the artifacts scenario).
  const profDir = process.env.BW_BENCH_CPU_PROF;
  const coord = new CoordinatorChild(join(dir.path, 'store'), {}, undefined, profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []);
  let factory: LocalFactory | undefined;
  let viewers: IpcChild | undefined;
  let pinned: Pinning | undefined;
  const counts = ctx.quick ? [1, 20] : [1, 10, 100];
  const total = ctx.quick ? 300_000 : 1_000_000;
  const rounds = ctx.quick ? 2 : 5;
  const ticks = ctx.quick ? 40 : 100;
  try {
    const info = await coord.start();
    // Before the factory starts: the agents it spawns (and their jobs) inherit the bench's CPUs.
    pinned = pinCores(coord.pid!);
    r.notes.push(pinned.note);
    factory = await startBenchFactory(coord, info, dir.path);
    const cookie = await withTimeout(sessionCookie(info.url, coord.adminToken), 10_000, 'sign-in');
    const api = coord.api;
    // Untimed warm-up (JIT, LMDB growth, the agent's first start), which also shows where output lines start.
    const logFile = join(dir.path, 'build.log');
    writeBuildLog(logFile, total);
    const burst = `cat ${logFile}`;
    const warm = await submitJob(api, 'local', `head -n 1000 ${logFile}`, 'fanout-warm');
    await jobCompleted(api, warm, 60_000);
    const ev = await api.ok('GET', `/api/v1/jobs/${warm}/events?after=0&limit=50`);
    const firstOut = (ev.events as { seq: number; stream: string }[]).find((e) => e.stream === 'stdout');
    if (!firstOut) throw new Error('the warm-up job printed no stdout line');

    viewers = new IpcChild('./fanout.js');
    if (pinned.coordinatorCpus.length > 0) pinAll(viewers.pid!, pinned.coordinatorCpus);
    try {
      idleAll(viewers.pid!);
    } catch (err) {
      // Without SCHED_IDLE, nice 19 at least (it still takes slices that delay the coordinator's wake-ups).
      r.notes.push(`could not put the viewers under SCHED_IDLE (${(err as Error).message}); they ran at nice 19`);
      try {
        niceAll(viewers.pid!, 19);
      } catch (err2) {
        r.notes.push(`could not lower the viewers' priority either: ${(err2 as Error).message}`);
      }
    }
    const x: Rig = { api, coord, viewers, wsUrl: `${info.url.replace(/^http/, 'ws')}/api/v1/live`, cookie, first: firstOut.seq };

    // 1. Ingestion with 0, 1, 10, 100 viewers, in turn, `rounds` times.
    ctx.log(`fanout: burst job of ${fmt(total)} build-log lines of about ${LINE_BYTES} B, ${rounds} rounds with ${[0, ...counts].join(', ')} live viewers`);
    const rate = new Map<number, number[]>();
    const cpu = new Map<number, number[]>();
    const lags = new Map<number, number[]>();
    const wire = new Map<number, { frames: number; bytes: number; deflated: number }>();
    const problems: string[] = [];
    let reconnects = 0;
    let complete = 0;
    let watched = 0;
    for (let i = 0; i < rounds; i++) {
      // Each round starts one further along, so no count always runs first or right after another.
      const order = [0, ...counts];
      for (const n of [...order.slice(i % order.length), ...order.slice(0, i % order.length)]) {
        const end = phase(`burst, ${n} viewers`, [
          { role: 'coordinator', pid: coord.pid }, { role: 'viewers', pid: viewers.pid }, { role: 'bench (+factory, agent)', pid: process.pid },
        ]);
        const res = await run(x, burst, total, n);
        const usage = end();
        if (i === rounds - 1) r.processes.push(...usage);
        (rate.get(n) ?? rate.set(n, []).get(n)!).push(total / (res.ms / 1000));
        (cpu.get(n) ?? cpu.set(n, []).get(n)!).push(res.coordCpuS);
        if (n === 0) continue;
        problems.push(...check(res, total, `round ${i + 1}, ${n} viewers`).slice(0, Math.max(0, 5 - problems.length)));
        watched += res.results.length;
        for (const v of res.results) {
          if (check({ ...res, results: [v] }, total, '').length === 0) complete++;
          if (v.lastLineAt !== null) (lags.get(n) ?? lags.set(n, []).get(n)!).push(v.lastLineAt - res.endAt);
          reconnects += v.reconnects;
          const w = wire.get(n) ?? wire.set(n, { frames: 0, bytes: 0, deflated: 0 }).get(n)!;
          w.frames += v.frames;
          w.bytes += v.bytes;
          w.deflated += v.deflated;
        }
      }
    }
    const base = median(rate.get(0)!);
    const baseCpu = median(cpu.get(0)!);
    r.figures.push(figure(S, 'ingestion, no viewer', base, 'lines/s', 'higher', { note: `median of ${rounds}: ${rate.get(0)!.map((v) => fmt(v)).join(', ')} lines/s of about ${LINE_BYTES} B` }));
    for (const n of counts) {
      const got = median(rate.get(n)!);
      const w = wire.get(n)!;
      r.figures.push(
        figure(S, `ingestion with ${n} live viewer${n === 1 ? '' : 's'}`, got, 'lines/s', 'higher', {
          ceiling: { value: base, what: 'lines/s with no viewer (same job)' },
          note: `median of ${rounds}: ${rate.get(n)!.map((v) => fmt(v)).join(', ')} lines/s`,
        }),
        figure(S, `slowdown with ${n} viewer${n === 1 ? '' : 's'}`, (1 - got / base) * 100, '%', 'lower', { target: { op: '<', value: MAX_SLOWDOWN * 100 } }),
        figure(S, `coordinator CPU per 100k lines, ${n} viewer${n === 1 ? '' : 's'}`, (median(cpu.get(n)!) / total) * 1e5, 'CPU s', 'lower', {
          ceiling: { value: (baseCpu / total) * 1e5, what: 'CPU s with no viewer' },
          note: `first to last line committed; ${fmt(((median(cpu.get(n)!) - baseCpu) / total / n) * 1e9, 1)} ns per line per viewer; `
            + `on the wire ${fmt(w.bytes / (total * rounds * n), 1)} B per line per viewer in ${fmt(w.frames / (rounds * n), 0)} frames per run (${fmt((w.deflated / Math.max(1, w.frames)) * 100, 0)}% compressed)`,
        }),
        figure(S, `burst, ${n} viewer${n === 1 ? '' : 's'}: last line committed → at viewer`, percentile(lags.get(n) ?? [], 0.5), 'ms p50', 'lower', {
          note: `p99 ${fmt(percentile(lags.get(n) ?? [], 0.99), 0)} ms; the viewers (SCHED_IDLE, one process) catch up on what CPU the coordinator leaves`,
        }),
      );
    }
    r.figures.push(figure(S, 'viewers that received every line', complete, 'viewers', 'higher', {
      ceiling: { value: watched, what: `viewers (${counts.join(' + ')} × ${rounds} rounds)` }, target: { op: '>=', value: watched },
      note: `${problems.length ? problems.join('; ') : `each reached the last seq and done; ${Math.min(FULL_VIEWERS, Math.max(...counts))} per run decoded every line, once, in order`}; `
        + `${reconnects === 0 ? 'no connection lost' : `${reconnects} connection(s) lost and resumed`}`,
    }));
    r.series.push({ name: 'ingestion with live viewers', xLabel: 'live viewers', unit: 'lines/s', points: [0, ...counts].map((n) => ({ x: n, y: median(rate.get(n)!), ceiling: base })) });

    // 2. Delivery latency of a steady job.
    const steadyLines = ticks * 50;
    ctx.log(`fanout: steady job of ${fmt(steadyLines)} lines (50 every 50 ms), REST follower, then ${counts.join(', ')} live viewers`);
    const floorRun = await run(x, steadyScript(ticks), steadyLines, 0, true);
    const floor = floorRun.restLatencies;
    r.distributions.push({ name: 'steady job: line read → REST long-poll follower', unit: 'ms', samples: sampleOf(floor) });
    for (const n of counts) {
      const res = await run(x, steadyScript(ticks), steadyLines, n);
      problems.push(...check(res, steadyLines, `steady, ${n} viewers`));
      const lat = res.results.flatMap((v) => v.latencies);
      r.distributions.push({ name: `steady job: line read → ${n} live viewer${n === 1 ? '' : 's'}`, unit: 'ms', samples: sampleOf(lat), floor: percentile(floor, 0.5) });
      r.figures.push(
        figure(S, `steady job, ${n} viewer${n === 1 ? '' : 's'}: delivery p50`, percentile(lat, 0.5), 'ms', 'lower', {
          ceiling: { value: percentile(floor, 0.5), what: 'ms p50, REST long-poll follower' },
          note: `line read by the agent → decoded by a viewer (${fmt(lat.length)} samples from ${Math.min(n, FULL_VIEWERS)} full viewers); includes the agent's batching and the feed's 25 ms pacing`,
        }),
        figure(S, `steady job, ${n} viewer${n === 1 ? '' : 's'}: delivery p99`, percentile(lat, 0.99), 'ms', 'lower', {
          ceiling: { value: percentile(floor, 0.99), what: 'ms p99, REST long-poll follower' },
          note: `max ${fmt(Math.max(...lat), 0)} ms${check(res, steadyLines, '').length ? `; ${check(res, steadyLines, 'steady').join('; ')}` : ''}`,
        }),
      );
    }
  } finally {
    await viewers?.stop();
    await factory?.close();
    await coord.stop();
    dir.remove();
    pinned?.undo();
  }
  addBottlenecks(r);
  return r;
}

// Forked by the scenario (IpcChild('./fanout.js')) as the viewers' process.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void viewersChild();
