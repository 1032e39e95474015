/**
 * `npm run bench:buildbot`: the same log-ingestion workload on Buildbot 3.7
 * (Debian's packages) and on buildwire, side by side on this host, and the
 * ratio between them. One build whose only step prints 500,000 lines of
 * 100 B (the fanout scenario's burst script), on each side in turn:
 * Buildbot, buildwire, Buildbot, buildwire, Buildbot, buildwire, after an
 * untimed warm-up build of 1,000 lines on each.
 *
 *   node dist/bench/buildbot.js [--json-only]
 *
 * Buildbot: a temporary master and worker (bench/buildbot/master.ts), the
 * default SQLite database, on 127.0.0.1. buildwire: a coordinator child on
 * a temporary store (bench/fixture.ts) and the local factory in this
 * process (a fresh agent process per job).
 *
 * What is timed, on both sides the same way (see bench/README.md):
 * - ingestion: from the first stdout line stored to the last one stored.
 *   Buildbot: the step's stdio log's `num_lines` in state.sqlite, read every
 *   25 ms by watch.py, passing the log's header lines, then header +
 *   500,000. buildwire: long polls on the events API for the first and the
 *   last output line's seq (as the fanout scenario does).
 * - recorded duration: what each system itself recorded. Buildbot: the
 *   step's started_at → complete_at (whole seconds, so ±1 s). buildwire: the
 *   task's start record → the job's endedAt (ms).
 * - trigger → complete, as the bench saw it. Buildbot: the buildset row
 *   appearing (the change accepted) → the build's complete_at appearing.
 *   buildwire: the hold on the queue released (the job already queued) → the
 *   job's state final (polled every 25 ms once the last line is stored).
 * Each build must store exactly the 500,000 lines, numbered in order
 * (Buildbot: decoded from its log chunks; buildwire: read back over REST).
 *
 * It installs the Debian packages buildbot and buildbot-worker with apt-get
 * when they are missing. Benchmarks measure; the exit code is 0 unless the
 * harness broke (bad flags: 64).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { startLocalFactory } from '../factory/local/index.js';
import type { LocalFactory } from '../factory/local/index.js';
import { BuildbotMaster, POLL_MS, ensureBuildbot } from './buildbot/master.js';
import type { BuildObserved, BuildRecord } from './buildbot/master.js';
import { CoordinatorChild } from './fixture.js';
import { publishRun } from './markdown.js';
import { killTracked, phase, sampleProc, track } from './proc.js';
import type { ProcUsage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api } from './util.js';
import { burstScript, fmt, jobCompleted, median, nowMs, sleep, submitJob, tempDir, until, withTimeout } from './util.js';

const S = 'buildbot';
/** The issue's workload: one step printing this many lines of {@link LINE_BYTES} bytes. */
const LINES = 500_000;
const LINE_BYTES = 100;
const WARM_UP_LINES = 1_000;
/** Timed builds per side, alternating. */
const ROUNDS = 3;
/** The issue's target: buildwire ingests at least this many times as fast as Buildbot. */
const TARGET_RATIO = 20;
/** Bounds: one build on either side, and the whole run. */
const BUILD_MAX_MS = 180_000;
const RUN_MAX_MS = 30 * 60_000;
/** Between runs: both sides' processes below this many cores over this window, waiting at most this long. */
const SETTLE_CORES = 0.05;
const SETTLE_WINDOW_MS = 500;
const SETTLE_MAX_MS = 30_000;
/** The step's name on both sides (Buildbot's step, buildwire's task). */
const STEP = 'burst';


/** Line i of the burst script, without its newline. */
const burstLine = (i: number) => `${String(i).padStart(8, '0')} ${'x'.repeat(90)}`;

/** One timed build on one side, in the same terms for both. */
interface Run {
  /** ms from the first stdout line stored to the last. */
  ingestMs: number;
  /** ms of the step (task) as the system recorded it. */
  recordedMs: number;
  /** ms from trigger to completion, as the bench saw them; and the parts before the first line and after the last. */
  wallMs: number;
  toFirstMs: number;
  afterLastMs: number;
  /** CPU seconds of the side's processes over the phase (awk included: each side reaps it). */
  cpuS: number;
  /** The same, by process: role → CPU seconds (children reaped meanwhile apart from their parent). */
  cpuBy: Record<string, number>;
  /** Output lines stored, and how many of them were not the script's line i. */
  stored: number;
  wrong: number;
  /** Problems found checking the stored log (empty when it holds exactly the lines). */
  problems: string[];
  usage: ProcUsage[];
}

/** CPU seconds of the rows with these roles. */
const sideCpu = (usage: ProcUsage[], roles: string[]) => usage.filter((u) => roles.includes(u.role)).reduce((s, u) => s + u.cpuS, 0);

let clkTck = 0;

/**
 * CPU seconds of a process itself and of the children it has reaped (an
 * agent, a build step's sh and awk), from /proc/<pid>/stat; undefined if it
 * is gone. proc.ts sums the two; here they are told apart.
 */
function cpuSplit(pid: number | undefined): { self: number; children: number } | undefined {
  if (!pid) return undefined;
  try {
    clkTck ||= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": utime, stime, cutime, cstime are fields [11..14].
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { self: (f[11]! + f[12]!) / clkTck, children: (f[13]! + f[14]!) / clkTck };
  } catch {
    return undefined;
  }
}

/** Self and reaped-children CPU seconds of `pid` between now and the returned function's call. */
function splitSince(pid: number | undefined): () => { self: number; children: number } {
  const a = cpuSplit(pid);
  return () => {
    const b = cpuSplit(pid);
    return a && b ? { self: b.self - a.self, children: b.children - a.children } : { self: NaN, children: NaN };
  };
}

// ---------------------------------------------------------------------------
// Buildbot.

const BB_ROLES = ['buildbot master', 'buildbot worker (+sh, awk)'];

/** When num_lines first reached `n`, as seen; NaN if never. */
function firstSeen(lines: { t: number; n: number }[], n: number): number {
  return lines.find((l) => l.n >= n)?.t ?? NaN;
}

/** One timed Buildbot build. */
async function buildbotRun(bb: BuildbotMaster, label: string): Promise<Run> {
  const w = await bb.watch(BUILD_MAX_MS);
  const end = phase(label, [
    { role: BB_ROLES[0]!, pid: bb.master?.pid }, { role: BB_ROLES[1]!, pid: bb.worker?.pid }, { role: 'bench watcher (watch.py)', pid: w.pid },
  ]);
  const worker = splitSince(bb.worker?.pid);
  let seen: BuildObserved;
  let usage: ProcUsage[];
  let workerCpu: { self: number; children: number };
  try {
    await bb.trigger();
    seen = await w.done;
    usage = end();
    workerCpu = worker();
  } finally {
    await w.close();
  }
  const rec: BuildRecord = await bb.inspect(seen.id);
  const problems: string[] = [];
  const log = rec.log;
  if (!log) throw new Error(`build ${seen.id} has no stdio log for step ${STEP}`);
  if (rec.build.results !== 0 || rec.step.results !== 0) problems.push(`build ${rec.build.number}: results build ${rec.build.results}, step ${rec.step.results} (0 is success)`);
  if (log.stdout !== LINES || log.wrong > 0) problems.push(`build ${rec.build.number}: ${fmt(log.stdout)} stdout lines stored, ${log.wrong} not as printed${log.firstWrong ? ` (first: ${JSON.stringify(log.firstWrong)})` : ''}`);
  if (log.numLines !== log.header + log.stdout + log.trailer) problems.push(`build ${rec.build.number}: num_lines ${log.numLines} ≠ ${log.header} header + ${log.stdout} stdout + ${log.trailer} trailer lines`);
  // The log's header lines (the command, its directory, argv, the environment) come before the first output line.
  const firstAt = firstSeen(seen.lines, log.header + 1);
  const lastAt = firstSeen(seen.lines, log.header + LINES);
  const recordedS = rec.step.completeAt !== null ? rec.step.completeAt - rec.step.startedAt : NaN;
  return {
    ingestMs: lastAt - firstAt, recordedMs: recordedS * 1000,
    wallMs: seen.completedAt - seen.triggeredAt, toFirstMs: firstAt - seen.triggeredAt, afterLastMs: seen.completedAt - lastAt,
    cpuS: sideCpu(usage, BB_ROLES), stored: log.stdout, wrong: log.wrong, problems, usage,
    cpuBy: { master: sideCpu(usage, [BB_ROLES[0]!]), worker: workerCpu.self, 'sh + awk': workerCpu.children },
  };
}

// ---------------------------------------------------------------------------
// buildwire.

const BW_ROLES = ['coordinator', 'bench (+factory, agent, sh, awk)'];

/** Resolves with nowMs() once an event after `after` of `job` is committed (long polls, until `deadline`). */
async function committed(api: Api, job: string, after: number, deadline: number): Promise<number> {
  while (Date.now() < deadline) {
    const b = await api.ok('GET', `/api/v1/jobs/${job}/events?after=${after}&limit=1&wait=30`);
    if (b.events.length > 0) return nowMs();
    if (b.done) throw new Error(`job ${job} ended before event ${after + 1}`);
  }
  throw new Error(`event ${after + 1} of job ${job} was not committed within ${BUILD_MAX_MS / 1000} s`);
}


interface JobEvent {
  seq: number;
  time: number;
  stream: string;
  text?: string;
  event?: { event?: string };
}

/** Reads a job's whole log back, checking its stdout lines are exactly the script's; returns the task's start record time. */
async function checkJobLog(api: Api, job: string, first: number): Promise<{ startTime: number; stored: number; wrong: number; firstSeq: number; lastSeq: number }> {
  let stored = 0;
  let wrong = 0;
  let firstSeq = NaN;
  let lastSeq = NaN;
  let startTime = NaN;
  for (let after = 0, pages = 0; pages < 10_000; pages++) {
    const b = await api.ok('GET', `/api/v1/jobs/${job}/events?after=${after}&limit=10000`);
    for (const e of b.events as JobEvent[]) {
      if (e.stream === 'task' && e.event?.event === 'start') startTime = e.time;
      if (e.stream !== 'stdout') continue;
      stored++;
      if (e.text !== burstLine(stored)) wrong++;
      if (stored === 1) firstSeq = e.seq;
      lastSeq = e.seq;
    }
    after = b.next as number;
    if (b.done || (b.events as JobEvent[]).length === 0) break;
  }
  if (firstSeq !== first) wrong++;
  return { startTime, stored, wrong, firstSeq, lastSeq };
}

interface BuildwireRig {
  api: Api;
  coord: CoordinatorChild;
  factory: LocalFactory;
  /** The seq of a job's first output line (the same for every job of this script), from the warm-up. */
  first: number;
}

/** One timed buildwire job. */
async function buildwireRun(x: BuildwireRig, label: string): Promise<Run> {
  const { api } = x;
  const deadline = Date.now() + BUILD_MAX_MS;
  // Held while the follower's long poll gets in place, as in the fanout scenario.
  await api.ok('POST', '/api/v1/control/hold');
  const job = await submitJob(api, 'local', burstScript(LINES), STEP);
  const last = x.first + LINES - 1;
  const end = phase(label, [{ role: BW_ROLES[0]!, pid: x.coord.pid }, { role: BW_ROLES[1]!, pid: process.pid }]);
  const self = splitSince(process.pid);
  const firstP = committed(api, job, x.first - 1, deadline);
  firstP.catch(() => {});
  await api.ok('POST', '/api/v1/control/resume');
  const triggeredAt = nowMs();
  const firstAt = await firstP;
  const lastAt = await committed(api, job, last - 1, deadline);
  const j = await jobCompleted(api, job, Math.max(1000, deadline - Date.now()), POLL_MS);
  const completedAt = nowMs();
  // The agent's CPU time (with its sh and awk) reaches this process's /proc figures once the factory has reaped it.
  if (!(await until(() => x.factory.running() === 0, 20_000, 10))) throw new Error(`job ${job}'s agent was still running 20 s after the job ended`);
  const usage = end();
  const selfCpu = self();
  const log = await checkJobLog(api, job, x.first);
  const problems: string[] = [];
  if (log.stored !== LINES || log.wrong > 0) problems.push(`job ${job}: ${fmt(log.stored)} stdout lines stored, ${log.wrong} not as printed (first at seq ${log.firstSeq}, expected ${x.first})`);
  if (log.lastSeq !== last) problems.push(`job ${job}: last stdout line at seq ${log.lastSeq}, timed to seq ${last}`);
  return {
    ingestMs: lastAt - firstAt, recordedMs: (j.endedAt as number) - log.startTime,
    wallMs: completedAt - triggeredAt, toFirstMs: firstAt - triggeredAt, afterLastMs: completedAt - lastAt,
    cpuS: sideCpu(usage, BW_ROLES), stored: log.stored, wrong: log.wrong, problems, usage,
    cpuBy: { coordinator: sideCpu(usage, [BW_ROLES[0]!]), 'agent (+sh, awk)': selfCpu.children, 'this process (factory, bench polls)': selfCpu.self },
  };
}

// ---------------------------------------------------------------------------
// The floor: the script itself.

/** ms for the script to print everything into a pipe this process drains (sh's start included), checking the byte count. */
function timeScript(script: string, lines: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const child = track(spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] }));
    let bytes = 0;
    child.stdout!.on('data', (b: Buffer) => (bytes += b.length));
    child.on('error', reject);
    child.on('close', () => (bytes === lines * LINE_BYTES ? resolve(nowMs() - t0) : reject(new Error(`the script printed ${bytes} B, not ${lines * LINE_BYTES}`))));
  });
}

// ---------------------------------------------------------------------------

/**
 * Waits until the given processes together use less than {@link SETTLE_CORES}
 * of a core over {@link SETTLE_WINDOW_MS}, so one side's after-work does not
 * land in the other side's run. False if they were still busy after
 * {@link SETTLE_MAX_MS}.
 */
async function settle(pids: (number | undefined)[]): Promise<boolean> {
  const cpu = () => pids.reduce<number>((s, p) => s + (p ? (sampleProc(p)?.cpuS ?? 0) : 0), 0);
  const deadline = Date.now() + SETTLE_MAX_MS;
  while (Date.now() < deadline) {
    const a = cpu();
    await sleep(SETTLE_WINDOW_MS);
    if (cpu() - a < (SETTLE_CORES * SETTLE_WINDOW_MS) / 1000) return true;
  }
  return false;
}

/** The load average now, for the notes (the host is shared). */
function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

/** Runs the comparison and returns its result (errors inside are recorded in it). */
export async function runBuildbot(log: (l: string) => void): Promise<ScenarioResult> {
  const r = newResult(S);
  const runDeadline = Date.now() + RUN_MAX_MS;
  const dir = tempDir('bw-bench-buildbot-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  let factory: LocalFactory | undefined;
  let bb: BuildbotMaster | undefined;
  const loadBefore = loadAverage();
  try {
    const version = await ensureBuildbot(log);
    r.notes.push(`${version} (Debian ${readFileSync('/etc/debian_version', 'utf8').trim()}); Debian packages no buildbot-www, so the master runs without its web UI and REST API (as Debian's sample master.cfg), and the bench reads the master's database`);

    log('buildbot: starting the Buildbot master and worker, and the buildwire coordinator and local factory');
    bb = await BuildbotMaster.start(join(dir.path, 'buildbot'), { script: burstScript(LINES), stepName: STEP, log });
    const info = await coord.start();
    const flog: string[] = [];
    factory = startLocalFactory({
      url: info.connectUrl, coordinatorKey: new Uint8Array(Buffer.from(info.publicKey, 'base64')), token: coord.factoryToken, slots: 1,
      workRoot: dir.path, killGraceMs: 1000, log: (l) => flog.length < 200 && flog.push(l),
    });
    if (!(await until(() => flog.some((l) => l.startsWith('connected as factory')), 20_000))) throw new Error(`the local factory did not connect: ${flog.slice(-3).join(' | ')}`);
    const api = coord.api;

    // Untimed warm-ups (Python's and V8's first runs, the databases' first pages, the worker's build directory, the agent's first start).
    log(`buildbot: untimed warm-up builds of ${fmt(WARM_UP_LINES)} lines`);
    const warmBb = await bb.build(BUILD_MAX_MS, burstScript(WARM_UP_LINES));
    if (warmBb.record.log?.stdout !== WARM_UP_LINES) throw new Error(`the Buildbot warm-up build stored ${warmBb.record.log?.stdout} stdout lines, not ${WARM_UP_LINES}`);
    const warm = await submitJob(api, 'local', burstScript(WARM_UP_LINES), `${STEP}-warm-up`);
    await jobCompleted(api, warm, BUILD_MAX_MS, 100);
    const ev = await api.ok('GET', `/api/v1/jobs/${warm}/events?after=0&limit=50`);
    const firstOut = (ev.events as JobEvent[]).find((e) => e.stream === 'stdout');
    if (!firstOut) throw new Error('the buildwire warm-up job printed no stdout line');
    const x: BuildwireRig = { api, coord, factory, first: firstOut.seq };

    const bbRuns: Run[] = [];
    const bwRuns: Run[] = [];
    const floors: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      if (Date.now() > runDeadline) {
        r.errors.push(`stopped after ${i - 1} of ${ROUNDS} rounds: the run's ${RUN_MAX_MS / 60_000} min were up`);
        break;
      }
      floors.push(await timeScript(burstScript(LINES), LINES));
      log(`buildbot: round ${i} of ${ROUNDS}: Buildbot build of ${fmt(LINES)} lines (load ${loadAverage()})`);
      const b = await buildbotRun(bb, `buildbot build ${i}`);
      log(`buildbot: Buildbot ingested in ${fmt(b.ingestMs / 1000, 2)} s (${fmt(LINES / (b.ingestMs / 1000))} lines/s); buildwire job (load ${loadAverage()})`);
      bbRuns.push(b);
      r.processes.push(...b.usage);
      // Buildbot recompresses a finished log in the background: let that end before the other side starts.
      const quiet = [bb.master?.pid, bb.worker?.pid, coord.pid];
      if (!(await settle(quiet))) r.notes.push(`round ${i}: Buildbot was still busy ${SETTLE_MAX_MS / 1000} s after its build; the buildwire job ran anyway`);
      const w = await buildwireRun(x, `buildwire job ${i}`);
      log(`buildbot: buildwire ingested in ${fmt(w.ingestMs / 1000, 2)} s (${fmt(LINES / (w.ingestMs / 1000))} lines/s)`);
      bwRuns.push(w);
      r.processes.push(...w.usage);
      if (!(await settle(quiet))) r.notes.push(`round ${i}: buildwire was still busy ${SETTLE_MAX_MS / 1000} s after its job; the next build ran anyway`);
    }
    report(r, bbRuns, bwRuns, floors);
  } catch (err) {
    r.errors.push((err as Error).stack ?? String(err));
  } finally {
    await factory?.close();
    await coord.stop();
    await bb?.stop();
    dir.remove();
  }
  r.notes.push(`load average (1, 5, 15 min) at start ${loadBefore}, at end ${loadAverage()}: this host is shared with other benchmark runs, so see each phase's machine row`);
  addBottlenecks(r);
  return r;
}

/** Fills in the figures from the runs. */
function report(r: ScenarioResult, bb: Run[], bw: Run[], floors: number[]): void {
  const rate = (ms: number) => LINES / (ms / 1000);
  const each = (runs: Run[], f: (x: Run) => number, digits?: number) => runs.map((x) => fmt(f(x), digits)).join(', ');
  const floor = { value: rate(median(floors)), what: 'lines/s, the script into a pipe' };
  const bbRate = median(bb.map((x) => rate(x.ingestMs)));
  const bwRate = median(bw.map((x) => rate(x.ingestMs)));
  const pairs = bb.map((x, i) => (bw[i] ? x.ingestMs / bw[i]!.ingestMs : NaN));
  r.figures.push(
    figure(S, 'Buildbot: ingestion', bbRate, 'lines/s', 'higher', {
      ceiling: floor,
      note: `median of ${bb.length}: ${each(bb, (x) => rate(x.ingestMs))} lines/s; first → last stdout line in state.sqlite (the step's stdio log num_lines, read every ${POLL_MS} ms)`,
    }),
    figure(S, 'buildwire: ingestion', bwRate, 'lines/s', 'higher', {
      ceiling: floor,
      note: `median of ${bw.length}: ${each(bw, (x) => rate(x.ingestMs))} lines/s; first → last stdout line committed (long polls on the events API)`,
    }),
    figure(S, 'buildwire ÷ Buildbot, ingestion', bwRate / bbRate, '×', 'higher', {
      target: { op: '>=', value: TARGET_RATIO },
      note: `ratio of the medians; run by run (each Buildbot build and the buildwire job after it): ${pairs.map((p) => `${fmt(p, 1)}×`).join(', ')}`,
    }),
  );
  const bbRec = median(bb.map((x) => rate(x.recordedMs)));
  const bwRec = median(bw.map((x) => rate(x.recordedMs)));
  r.figures.push(
    figure(S, 'Buildbot: step as recorded', bbRec, 'lines/s', 'higher', {
      note: `steps.started_at → complete_at: ${each(bb, (x) => x.recordedMs / 1000, 0)} s (whole seconds: ±1 s each)`,
    }),
    figure(S, 'buildwire: task start → job end as recorded', bwRec, 'lines/s', 'higher', {
      note: `the task's start record → the job's endedAt: ${each(bw, (x) => x.recordedMs / 1000, 2)} s`,
    }),
    figure(S, 'buildwire ÷ Buildbot, as recorded', bwRec / bbRec, '×', 'higher'),
  );
  const bbWall = median(bb.map((x) => x.wallMs / 1000));
  const bwWall = median(bw.map((x) => x.wallMs / 1000));
  r.figures.push(
    figure(S, 'Buildbot: trigger → build complete', bbWall, 's', 'lower', {
      note: `buildset row → complete_at seen: ${each(bb, (x) => x.wallMs / 1000, 2)} s; of which trigger → first line stored ${each(bb, (x) => x.toFirstMs / 1000, 2)} s, last line stored → complete ${each(bb, (x) => x.afterLastMs / 1000, 2)} s`,
    }),
    figure(S, 'buildwire: trigger → job complete', bwWall, 's', 'lower', {
      note: `queue released → final state seen: ${each(bw, (x) => x.wallMs / 1000, 2)} s; of which trigger → first line committed ${each(bw, (x) => x.toFirstMs / 1000, 2)} s, last line committed → complete ${each(bw, (x) => x.afterLastMs / 1000, 2)} s`,
    }),
    figure(S, 'Buildbot ÷ buildwire, trigger → complete', bbWall / bwWall, '×', 'higher'),
  );
  const per100k = (runs: Run[]) => median(runs.map((x) => (x.cpuS / LINES) * 1e5));
  // Per process, medians over the runs: where each side's CPU went.
  const by = (runs: Run[]) => Object.keys(runs[0]?.cpuBy ?? {}).map((k) => `${k} ${fmt(median(runs.map((x) => x.cpuBy[k]!)), 2)}`).join(', ');
  r.figures.push(
    figure(S, 'Buildbot: CPU per 100k lines', per100k(bb), 'CPU s', 'lower', { note: `master + worker + the step's sh and awk, trigger → complete: ${each(bb, (x) => x.cpuS, 1)} CPU s per build (median CPU s: ${by(bb)})` }),
    figure(S, 'buildwire: CPU per 100k lines', per100k(bw), 'CPU s', 'lower', { note: `coordinator + agent + the task's sh and awk + this process (local factory, the bench's polls), trigger → agent reaped: ${each(bw, (x) => x.cpuS, 1)} CPU s per job (median CPU s: ${by(bw)})` }),
    figure(S, 'Buildbot ÷ buildwire, CPU per line', per100k(bb) / per100k(bw), '×', 'higher', { note: 'CPU seconds do not depend on what else shares the host as much as wall time does' }),
  );
  const complete = (runs: Run[]) => runs.filter((x) => x.problems.length === 0).length;
  r.figures.push(
    figure(S, `Buildbot builds that stored all ${fmt(LINES)} lines`, complete(bb), 'builds', 'higher', {
      target: { op: '>=', value: bb.length }, note: bb.flatMap((x) => x.problems).join('; ') || `every line decoded from the log chunks, numbered 1…${fmt(LINES)} in order`,
    }),
    figure(S, `buildwire jobs that stored all ${fmt(LINES)} lines`, complete(bw), 'jobs', 'higher', {
      target: { op: '>=', value: bw.length }, note: bw.flatMap((x) => x.problems).join('; ') || `every line read back over REST, numbered 1…${fmt(LINES)} in order`,
    }),
  );
  r.series.push(
    { name: 'Buildbot ingestion, run by run', xLabel: 'round', unit: 'lines/s', xScale: 'linear', points: bb.map((x, i) => ({ x: i + 1, y: rate(x.ingestMs) })) },
    { name: 'buildwire ingestion, run by run', xLabel: 'round', unit: 'lines/s', xScale: 'linear', points: bw.map((x, i) => ({ x: i + 1, y: rate(x.ingestMs) })) },
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jsonOnly = args.includes('--json-only');
  const unknown = args.filter((a) => a !== '--json-only');
  if (unknown.length > 0) {
    process.stderr.write(`bench:buildbot: unknown argument ${JSON.stringify(unknown[0])}\nusage: node dist/bench/buildbot.js [--json-only]\n`);
    process.exit(64);
  }
  const startedAt = new Date();
  const t0 = nowMs();
  const log = (l: string) => process.stderr.write(`[${((nowMs() - t0) / 1000).toFixed(1).padStart(6)} s] ${l}\n`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killTracked();
      process.exit(130);
    });
  }
  process.on('exit', killTracked);

  log(`=== scenario ${S}`);
  const r = await withTimeout(runBuildbot(log), RUN_MAX_MS + 5 * 60_000, 'the buildbot comparison');
  r.seconds = (nowMs() - t0) / 1000;
  for (const e of r.errors) log(`!!! ${S}: ${e}`);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memGiB: totalmem() / 2 ** 30, node: process.version };
  const doc = {
    startedAt: startedAt.toISOString(), seconds: r.seconds, quick: false, scenarios: [S], machine,
    ratioMeaning: 'ratio = value / ceiling.value, both measured in this run; here the ceiling of a lines/s figure is the script printing into a pipe; the buildwire ÷ Buildbot figures are ratios of medians',
    results: [r],
  };
  const header = `buildwire vs Buildbot ${startedAt.toISOString()}: ${machine.cpus} × ${machine.cpuModel}, ${machine.memGiB.toFixed(0)} GiB, node ${machine.node}; ${doc.seconds.toFixed(0)} s`;
  publishRun(doc, startedAt, [r], header, jsonOnly);
  killTracked();
}

main().catch((err: Error) => {
  process.stderr.write(`bench:buildbot: ${err.stack ?? err.message}\n`);
  killTracked();
  process.exit(1);
});
