/**
 * The `dispatch` scenario: how long from submitting a job to seeing its
 * first output line, and how many trivial jobs per second go through.
 *
 * 1. Latency: one real persistent agent process (dist/agent/main.js),
 *    idle and connected; sequential `echo hi` jobs; each timed from just
 *    before POST /api/v1/jobs to the moment a long-polling follower sees
 *    the `hi` line. Split into submit→assigned, assigned→task start,
 *    start→`hi`, `hi`→seen using the events' own timestamps.
 * 2. Throughput: four persistent agents; trivial jobs submitted as fast as
 *    possible; jobs/s until the last one ended.
 * 3. The same latency with the local factory starting a fresh agent per job.
 *
 * Floors measured here: bash printing `hi` to a pipe, one REST round trip,
 * node starting the agent bundle (`--help`), and 4 parallel bash runs/s;
 * the spawns from a small fresh process, as the agent spawns its tasks.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeState } from '../agent/state.js';
import { startLocalFactory } from '../factory/local/index.js';
import { ed25519PrivateKey, generateSigningKeyPair, publicKeyOf, signAssignment, verifyAssignment } from '../protocol/index.js';
import type { BenchContext } from './ceilings.js';
import { CoordinatorChild } from './fixture.js';
import type { CoordinatorInfo } from './fixture.js';
import { IpcChild, phase, track, waitExit } from './proc.js';
import { addBottlenecks, figure, newResult, sampleOf } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api, WorkerGrant } from './util.js';
import { createWorkers, fmt, mapLimit, median, nowMs, percentile, sleep, submitJob, tempDir, until } from './util.js';

const AGENT_MAIN = fileURLToPath(new URL('../agent/main.js', import.meta.url));

interface Floors {
  /** The agent's tweetnacl check of one signed assignment. */
  verifyMs: number;
  /** Writing the agent's small state file with fsync (it does so when a job starts). */
  stateFsyncMs: number;
  bashHiMs: number;
  restRttMs: number;
  agentStartMs: number;
  bashPerS4: number;
}

async function measureFloors(ctx: BenchContext, api: Api, dir: string): Promise<Floors> {
  const script = join(dir, 'hi.sh');
  writeFileSync(script, 'echo hi\n');
  const trueScript = join(dir, 'true.sh');
  writeFileSync(trueScript, 'true\n');
  const n = ctx.quick ? 15 : 40;
  // Spawn floors from a small fresh process, like the agent (fork cost grows with the parent's size; the bench is big by now).
  const child = new IpcChild('./sim-agent.js');
  const spawnFloor = async (cmd: string, args: string[], count: number, concurrency: number, toExit: boolean) => {
    child.send({ op: 'spawn', cmd, args, count, concurrency, toExit });
    return (await child.expect('spawn', 120_000, `${count} runs of ${cmd}`)) as unknown as { ms: number[]; seconds: number };
  };
  let bash: number[];
  let start: number[];
  let parallel: { ms: number[]; seconds: number };
  const runs = ctx.quick ? 100 : 300;
  try {
    bash = (await spawnFloor('/bin/bash', [script], n, 1, false)).ms;
    start = (await spawnFloor(process.execPath, [AGENT_MAIN, '--help'], ctx.quick ? 5 : 10, 1, true)).ms;
    parallel = await spawnFloor('/bin/bash', [trueScript], runs, 4, true);
  } finally {
    await child.stop();
  }
  const rtt: number[] = [];
  for (let i = 0; i < n * 2; i++) {
    const t0 = nowMs();
    await api.ok('GET', '/api/v1/control');
    rtt.push(nowMs() - t0);
  }
  const seed = generateSigningKeyPair().seed;
  const signed = signAssignment(ed25519PrivateKey(seed), { id: 'x'.repeat(26), tasks: [{ name: 'main', script: 'echo hi' }], issuedAt: Date.now() });
  const pub = publicKeyOf(seed);
  const verify: number[] = [];
  const fsync: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    verifyAssignment(pub, signed.payload, signed.sig);
    verify.push(nowMs() - t0);
    const t1 = nowMs();
    writeState(join(dir, 'state'), { v: 1, worker: 'x'.repeat(26), seed: '', publicKey: '', bootstrapped: true, startedJob: String(i) });
    fsync.push(nowMs() - t1);
  }
  return { verifyMs: median(verify), stateFsyncMs: median(fsync), bashHiMs: median(bash), restRttMs: median(rtt), agentStartMs: median(start), bashPerS4: runs / parallel.seconds };
}

/** Agent log lines worth reporting (ignored assignments, errors), by worker. */
export const agentLogs = new Map<string, string[]>();

/**
 * Starts a real agent process (dist/agent/main.js run) for a persistent
 * worker; `env` adds to its environment, `nodeArgs` are node flags (e.g. `--cpu-prof`).
 */
export function startAgent(info: CoordinatorInfo, g: WorkerGrant, dir: string, env: Record<string, string> = {}, nodeArgs: string[] = []): ChildProcess {
  mkdirSync(dir, { recursive: true });
  const child = track(spawn(process.execPath, [...nodeArgs, AGENT_MAIN, 'run'], {
    cwd: dir, stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin', BUILDWIRE_URL: info.url, BUILDWIRE_COORDINATOR_KEY: info.publicKey, BUILDWIRE_WORKER_ID: g.worker,
      BUILDWIRE_BOOTSTRAP: g.credential, BUILDWIRE_AGENT_STATE: join(dir, 'state'), BUILDWIRE_WORK_ROOT: join(dir, 'work'), ...env,
    },
  }));
  const keep: string[] = [];
  agentLogs.set(g.worker, keep);
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (/ignoring|error|refused|disconnected/i.test(line) && keep.length < 20) keep.push(line.trim());
  });
  return child;
}

/** Polls until every worker in `ids` is connected; false after `timeoutMs`. */
export async function waitConnected(api: Api, ids: string[], timeoutMs: number): Promise<boolean> {
  const ok = await until(async () => {
    const b = await api.ok('GET', '/api/v1/workers');
    const connected = new Set((b.workers as { id: string; connected: boolean }[]).filter((w) => w.connected).map((w) => w.id));
    return ids.every((id) => connected.has(id));
  }, timeoutMs, 50);
  return ok === true;
}

/** One event as GET /api/v1/jobs/ID/events returns it. */
export interface Event {
  seq: number;
  time: number;
  stream: string;
  text?: string;
  event?: { event?: string };
}

/** Follows a job's events with long polls until `stop(events)` says so or the job ends; returns when it stopped. */
async function follow(api: Api, id: string, after: number, stop: (e: Event) => boolean, timeoutMs: number): Promise<{ at: number; events: Event[]; next: number; done: boolean }> {
  const deadline = Date.now() + timeoutMs;
  const events: Event[] = [];
  for (let polls = 0; polls < 10_000 && Date.now() < deadline; polls++) {
    const b = await api.ok('GET', `/api/v1/jobs/${id}/events?after=${after}&wait=10`);
    const at = nowMs();
    events.push(...(b.events as Event[]));
    after = b.next as number;
    if ((b.events as Event[]).some(stop) || b.done) return { at, events, next: after, done: b.done as boolean };
  }
  throw new Error(`job ${id}: follower gave up after ${timeoutMs} ms`);
}

const isHi = (e: Event) => e.stream === 'stdout' && e.text === 'hi';

interface Latency {
  total: number;
  assigned: number;
  started: number;
  printed: number;
  seen: number;
}

/** Submits one `echo hi` job, times it to the follower seeing `hi`, then waits (untimed) for the job to end. */
async function oneJob(api: Api, target: string, hiTimeoutMs = 20_000): Promise<Latency> {
  const t0 = nowMs();
  const id = await submitJob(api, target, 'echo hi', 'dispatch');
  const f = await follow(api, id, 0, isHi, hiTimeoutMs);
  const hi = f.events.find(isHi);
  if (!hi) throw new Error(`job ${id} ended without printing hi`);
  const assigned = f.events.find((e) => e.stream === 'control' && e.text?.startsWith('job assigned'));
  const started = f.events.find((e) => e.stream === 'task' && e.event?.event === 'start');
  if (!f.done) await follow(api, id, f.next, () => false, 20_000);
  return {
    total: f.at - t0,
    assigned: assigned ? assigned.time - t0 : NaN,
    started: assigned && started ? started.time - assigned.time : NaN,
    printed: started ? hi.time - started.time : NaN,
    seen: f.at - hi.time,
  };
}

/** How a latency series runs. */
interface SeriesOptions {
  target: string;
  count: number;
  capMs: number;
  /** How long to wait for `hi` before calling the job hung. */
  hiTimeoutMs: number;
  /** Runs after each measured job. */
  onJob: () => void;
  /** Replaces a stuck agent; without it the series stops at the first hung job. */
  recover?: () => Promise<boolean>;
}

/**
 * Sequential jobs until `count` or `capMs`. A job that fails or hangs is
 * recorded in `errors`; the series then recovers (at most 10 times) or stops.
 */
async function latencySeries(ctx: BenchContext, api: Api, o: SeriesOptions, errors: string[]): Promise<{ lat: Latency[]; hung: number }> {
  const lat: Latency[] = [];
  const deadline = Date.now() + o.capMs;
  let hung = 0;
  for (let i = 0; lat.length < o.count && Date.now() < deadline && i < o.count + 10; i++) {
    try {
      lat.push(await oneJob(api, o.target, o.hiTimeoutMs));
      o.onJob();
    } catch (err) {
      hung++;
      errors.push(`${o.target}: job ${i + 1}: ${(err as Error).message}`);
      if (!o.recover || hung > 10 || !(await o.recover())) break;
    }
  }
  if (lat.length < o.count) ctx.log(`dispatch: only ${lat.length} of ${o.count} jobs on ${o.target} measured`);
  return { lat, hung };
}

function latencyFigures(r: ScenarioResult, label: string, lat: Latency[], floor: { value: number; what: string }, targets: boolean): void {
  const S = 'dispatch';
  const t = lat.map((l) => l.total);
  const split = `median split: submit→assigned ${fmt(median(lat.map((l) => l.assigned)), 1)} ms, assigned→task start ${fmt(median(lat.map((l) => l.started)), 1)} ms, start→hi ${fmt(median(lat.map((l) => l.printed)), 1)} ms, hi→seen ${fmt(median(lat.map((l) => l.seen)), 1)} ms (event times are whole ms; assigned→start includes the coordinator committing the 'assigned' event before it sends the assignment)`;
  r.figures.push(
    figure(S, `${label}: p50 submit→hi seen`, percentile(t, 0.5), 'ms', 'lower', { ceiling: floor, target: targets ? { op: '<', value: 10 } : null, note: `${lat.length} jobs; ${split}` }),
    figure(S, `${label}: p99`, percentile(t, 0.99), 'ms', 'lower', { ceiling: floor, target: targets ? { op: '<', value: 50 } : null }),
    figure(S, `${label}: max`, Math.max(...t), 'ms', 'lower', { ceiling: floor }),
  );
  latencyCharts(r, label, lat, floor);
}

/**
 * The same jobs for the report's charts: the whole latency and its parts
 * as distributions in one chart (where the time goes), and each job's
 * latency in order (drift, GC pauses and the host's noise show there).
 */
function latencyCharts(r: ScenarioResult, label: string, lat: Latency[], floor: { value: number; what: string }): void {
  if (lat.length === 0) return;
  const group = `${label}: submit → hi seen, and its parts`;
  const parts: [string, (l: Latency) => number][] = [
    ['submit → hi seen', (l) => l.total], ['submit → assigned', (l) => l.assigned], ['assigned → task start', (l) => l.started],
    ['task start → hi', (l) => l.printed], ['hi → seen', (l) => l.seen],
  ];
  for (const [i, [name, pick]] of parts.entries()) {
    // Only the whole has a floor: the parts are split by the events' whole-millisecond times.
    r.distributions.push({ name: `${label}: ${name}`, unit: 'ms', samples: sampleOf(lat.map(pick)), group, ...(i === 0 ? { floor: floor.value } : {}) });
  }
  r.series.push({
    name: `${label}: submit → hi seen, job by job`, xLabel: 'job (in order)', unit: 'ms', xScale: 'linear', ceilingWhat: floor.what,
    points: lat.map((l, i) => ({ x: i + 1, y: l.total, ceiling: floor.value })),
  });
}

const TERMINAL = ['completed', 'failed', 'cancelled'];

/**
 * Waits (bounded) until every job ended, checking the oldest 64 not yet
 * ended every 50 ms; gives up after `timeoutMs` or once no job has ended
 * for `stallMs`; calls `onProgress` whenever some ended. Returns every
 * job's final record (one read each).
 */
async function waitAllEnded(api: Api, ids: string[], timeoutMs: number, onProgress: () => void, stallMs = 10_000): Promise<any[]> {
  const deadline = Date.now() + timeoutMs;
  let open = ids;
  let progressAt = Date.now();
  for (let sweep = 0; sweep < 100_000 && open.length > 0; sweep++) {
    const head = open.slice(0, 64);
    const got = await mapLimit(head, 8, (id) => api.ok('GET', `/api/v1/jobs/${id}`));
    const ended = new Set(got.filter((j) => TERMINAL.includes(j.state as string)).map((j) => j.id as string));
    if (ended.size > 0) {
      progressAt = Date.now();
      onProgress();
    }
    open = open.filter((id) => !ended.has(id));
    if (open.length === 0 || Date.now() > deadline || Date.now() - progressAt > stallMs) break;
    await sleep(50);
  }
  return mapLimit(ids, 16, (id) => api.ok('GET', `/api/v1/jobs/${id}`));
}

/** Runs the dispatch scenario. */
export async function runDispatch(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult('dispatch');
  const S = 'dispatch';
  const dir = tempDir('bw-bench-dispatch-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  const agents: ChildProcess[] = [];
  try {
    const info = await coord.start();
    const api = coord.api;
    ctx.log('dispatch: floors (bash, REST round trip, agent start-up, parallel bash)');
    const floors = await measureFloors(ctx, api, dir.path);
    r.notes.push(`agent-side costs on the assigned→task start path (medians): tweetnacl check of the assignment signature ${fmt(floors.verifyMs, 2)} ms, state file write with fsync ${fmt(floors.stateFsyncMs, 2)} ms`);
    r.notes.push(`floors: bash prints hi in ${fmt(floors.bashHiMs, 2)} ms, REST round trip ${fmt(floors.restRttMs, 2)} ms, node loads the agent in ${fmt(floors.agentStartMs, 1)} ms, 4 parallel bash runs ${fmt(floors.bashPerS4)}/s (medians)`);

    // 1. Latency, one persistent agent (replaced by a fresh one if it strands a job; see the errors).
    const grants = await createWorkers(api, 'bench', 5, 4);
    let latWorker = grants[0]!.worker;
    agents.push(startAgent(info, grants[0]!, join(dir.path, 'agent-0')));
    if (!(await waitConnected(api, [latWorker], 20_000))) throw new Error('the agent did not connect within 20 s');
    for (let i = 0; i < 3; i++) await oneJob(api, 'bench'); // warm-up, not counted
    const n = ctx.quick ? 100 : 1000;
    ctx.log(`dispatch: ${n} sequential echo-hi jobs on one persistent agent`);
    let end = phase('latency (1 agent)', [{ role: 'coordinator', pid: coord.pid }, { role: 'agent (+bash)', pid: agents[0]!.pid }, { role: 'bench (client)', pid: process.pid }]);
    // The phase closes after the last job measured on the first agent (a hung job would dilute the CPU figures).
    let latUse = end();
    let replaced = 0;
    const stranded: string[] = [];
    const { lat, hung } = await latencySeries(ctx, api, {
      target: 'bench', count: n, capMs: ctx.quick ? 40_000 : 150_000, hiTimeoutMs: 5_000,
      onJob: () => {
        if (replaced === 0) latUse = end();
      },
      recover: async () => {
        stranded.push(...(agentLogs.get(latWorker) ?? []).filter((l) => l.includes('ignoring')));
        const old = agents[agents.length - 1]!;
        old.kill('SIGTERM');
        await waitExit(old, 5000);
        const [g] = await createWorkers(api, 'bench', 1, 1);
        latWorker = g!.worker;
        agents.push(startAgent(info, g!, join(dir.path, `agent-r${++replaced}`)));
        return waitConnected(api, [latWorker], 20_000);
      },
    }, r.errors);
    r.processes.push(...latUse);
    if (hung > 0) {
      r.errors.push(`persistent agent: ${hung} of ${lat.length + hung} sequential jobs did not print hi within 5 s (agent replaced by a fresh one each time; the series went on); the replaced agents logged: ${JSON.stringify(stranded.slice(0, 3))}`);
    }
    latencyFigures(r, 'persistent agent', lat, { value: floors.bashHiMs + floors.restRttMs, what: 'ms (bash hi + 1 REST round trip)' }, true);

    // 2. Throughput, four fresh persistent agents (the latency agent may hold a hung job).
    const latAgent = agents[agents.length - 1]!;
    latAgent.kill('SIGTERM');
    await waitExit(latAgent, 5000);
    const tputAgents = grants.slice(1).map((g, i) => startAgent(info, g, join(dir.path, `agent-${i + 1}`)));
    agents.push(...tputAgents);
    if (!(await waitConnected(api, grants.slice(1).map((g) => g.worker), 20_000))) throw new Error('the four agents did not connect within 20 s');
    const m = ctx.quick ? 100 : 500;
    ctx.log(`dispatch: ${m} trivial jobs on four persistent agents`);
    end = phase('throughput (4 agents)', [{ role: 'coordinator', pid: coord.pid }, ...tputAgents.map((a) => ({ role: 'agents (+bash)', pid: a.pid })), { role: 'bench (client)', pid: process.pid }]);
    const t0 = nowMs();
    const ids = await mapLimit(Array.from({ length: m }, (_, i) => i), 16, () => submitJob(api, 'bench', 'true', 'throughput'));
    const submitS = (nowMs() - t0) / 1000;
    // The phase closes at the last sweep that saw a job end (a stall would otherwise dilute the CPU figures).
    let tput = end();
    const jobs = await waitAllEnded(api, ids, ctx.quick ? 60_000 : 120_000, () => (tput = end()));
    r.processes.push(...tput);
    const ended = jobs.filter((j) => j.state === 'completed');
    const notDone = jobs.filter((j) => j.state !== 'completed');
    if (notDone.length > 0) {
      const w = notDone[0].worker as string | null;
      r.errors.push(
        `throughput: ${notDone.length} of ${m} jobs did not complete (no progress for 10 s, or the time limit): ${[...new Set(notDone.map((j) => `${j.state}${j.reason ? ` (${j.reason})` : ''}`))].slice(0, 3).join('; ')}; ` +
        `e.g. job ${notDone[0].id} on worker ${w ?? '(none)'}, whose agent logged: ${JSON.stringify((w && agentLogs.get(w)) || [])}`,
      );
    }
    const lastEnd = Math.max(...ended.map((j) => j.endedAt as number));
    const jobsPerS = ended.length / ((lastEnd - t0) / 1000);
    const tputFigure = figure(S, '4 persistent agents: jobs/s', jobsPerS, 'jobs/s', 'higher', {
      ceiling: { value: floors.bashPerS4, what: 'bash runs/s, 4 in parallel' }, target: { op: '>=', value: 100 },
      note: `${notDone.length > 0 ? `ONLY ${ended.length} OF ${m} JOBS COMPLETED (see the error): this rate covers those alone. ` : ''}${ended.length} jobs completed in ${fmt((lastEnd - t0) / 1000, 2)} s; submitting took ${fmt(submitS, 2)} s (${fmt(m / submitS)} POST/s, 16 in flight)`,
    });
    // "Time until all completed" never came: the target cannot count as met.
    if (notDone.length > 0) tputFigure.met = false;
    r.figures.push(tputFigure);
    // Completions over time beside what four parallel bash runs at the floor's rate would have finished by then.
    const ends = ended.map((j) => ((j.endedAt as number) - t0) / 1000).sort((a, b) => a - b);
    const every = Math.max(1, Math.ceil(ends.length / 200));
    r.series.push({
      name: '4 persistent agents: jobs completed', xLabel: 's since the first POST', unit: 'jobs', xScale: 'linear',
      ceilingWhat: `${fmt(floors.bashPerS4)} bash runs/s, 4 in parallel`,
      points: ends.flatMap((x, i) => (i % every === 0 || i === ends.length - 1 ? [{ x, y: i + 1, ceiling: Math.min(m, floors.bashPerS4 * x) }] : [])),
    });
    for (const a of agents) a.kill('SIGTERM');
    await Promise.all(agents.map((a) => waitExit(a, 5000)));

    // 3. Latency with the local factory: a fresh agent process per job.
    const k = ctx.quick ? 10 : 50;
    ctx.log(`dispatch: ${k} sequential echo-hi jobs through the local factory`);
    const flog: string[] = [];
    const factory = startLocalFactory({
      url: info.connectUrl, coordinatorKey: new Uint8Array(Buffer.from(info.publicKey, 'base64')), token: coord.factoryToken, slots: 2,
      workRoot: dir.path, killGraceMs: 1000, log: (l) => flog.length < 200 && flog.push(l),
    });
    try {
      await until(() => flog.some((l) => l.startsWith('connected as factory')), 20_000);
      await oneJob(api, 'local'); // warm-up
      end = phase('latency (factory)', [{ role: 'coordinator', pid: coord.pid }, { role: 'bench (+factory, agents)', pid: process.pid }]);
      let facUse = end();
      const { lat: flat } = await latencySeries(ctx, api, { target: 'local', count: k, capMs: ctx.quick ? 30_000 : 90_000, hiTimeoutMs: 20_000, onJob: () => (facUse = end()) }, r.errors);
      r.processes.push(...facUse);
      latencyFigures(r, 'local factory', flat, { value: floors.agentStartMs + floors.bashHiMs + floors.restRttMs, what: 'ms (node agent start + bash hi + REST)' }, false);
    } finally {
      await factory.close();
    }
  } catch (err) {
    r.errors.push((err as Error).message);
  } finally {
    for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL');
    await coord.stop();
    dir.remove();
  }
  addBottlenecks(r);
  return r;
}
