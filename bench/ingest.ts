/**
 * The `ingest` scenario: N simulated agents (real PeerClient + real Outbox,
 * in one or two load-generator processes) each stream their share of
 * 100-byte lines into a job on a coordinator in its own process, durable
 * and acknowledged. Timed from the first line pushed to the last
 * acknowledgement; verified afterwards (untimed) against each job's stored
 * event count. Run for 1, 10, 100 and 1,000 agents (quick: 1, 10, 100),
 * each on a fresh coordinator and store.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { BenchContext } from './ceilings.js';
import { LINE_BYTES, LINES_PER_BATCH, sampleBatch } from './ceilings.js';
import { CoordinatorChild } from './fixture.js';
import { IpcChild, phase } from './proc.js';
import type { IpcMessage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult, Series } from './report.js';
import { DEFAULT_LIMITS } from '../protocol/index.js';
import { createWorkers, fmt, mapLimit, nowMs, percentile, submitJob, tempDir } from './util.js';

/** What Buildbot 3.7 does on this machine (DESIGN.md): one build printing 100-byte lines. */
export const BUILDBOT_LINES_PER_S = 45_000;

interface AgentResult {
  worker: string;
  job: string;
  lines: number;
  records: number;
  start: number;
  end: number;
  reconnects: number;
  batches: number;
  /** Time the Outbox window was full (agent waiting for acks). */
  pausedMs: number;
  /** Per batch: ms from first send to its ack. */
  ackMs: number[];
}

/** Coordinator control events per job: "job assigned ..." and "job completed ...". */
const CONTROL_EVENTS = 2;

/**
 * Agents one load-generator process holds. Above this the agents are
 * spread over two processes: connecting costs ~30 ms of tweetnacl CPU per
 * real PeerClient, so 1,000 in one process would take ~30 s on one core.
 * Never more than two: the host has two cores and the coordinator needs one.
 */
const AGENTS_PER_GENERATOR = 500;
const MAX_GENERATORS = 2;

/** REST requests in flight when creating workers and submitting jobs. */
const REST_IN_FLIGHT = 16;

/** The ingest ceiling in lines/s (slowest building block) and the coordinator's CPU floor per million lines. */
interface IngestBounds {
  linesPerS: number;
  what: string;
  parts: Record<string, number>;
  /** CPU seconds the bare blocks on the coordinator's path need per million lines: receive, unpack, store. */
  cpuSPerMLines: number;
  cpuParts: Record<string, number>;
}

function split(total: number, n: number): number[] {
  const base = Math.floor(total / n);
  return Array.from({ length: n }, (_, i) => base + (i < total % n ? 1 : 0));
}

/**
 * CPU seconds per million lines to check the frames' HMAC-SHA256 (the
 * coordinator checks every sealed frame's MAC over its whole body), timed
 * here on Outbox-sized batches: a few hundred milliseconds.
 */
function macSPerMLines(): number {
  const key = randomBytes(32);
  const { body } = sampleBatch();
  const mac = () => createHmac('sha256', key).update(body).digest();
  for (let i = 0; i < 20; i++) mac();
  const frames = 200;
  const c0 = process.cpuUsage();
  for (let i = 0; i < frames; i++) mac();
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) / 1e6 / (frames * LINES_PER_BATCH)) * 1e6;
}

/**
 * The coordinator's CPU floor, from the same run's ceilings: raw uWS server
 * CPU per received byte (256 KiB messages), the frame MAC, msgpackr unpack
 * alone, and the LMDB process's CPU per stored line, each per million
 * 100-byte lines as the Outbox batches them. The coordinator does all four
 * for every line (plus ownership checks and acks, which the floor leaves out).
 */
async function ingestBounds(ctx: BenchContext): Promise<IngestBounds> {
  const ceiling = await ctx.ceilings.ingestLines();
  const t = await ctx.ceilings.transport();
  const l = await ctx.ceilings.lmdb();
  const m = await ctx.ceilings.msgpack();
  const wirePerLine = sampleBatch().body.length / LINES_PER_BATCH;
  const server = t.usage.find((u) => u.role === 'uws server' && u.phase === 'raw uWS 256 KiB');
  const store = l.usage.find((u) => u.role === 'bench (LMDB)');
  // Both ceilings report a rate over the same wall time as their phase row, so rate × wall ≈ the work done.
  const cpuParts = {
    'uWS receive': server ? ((server.cpuS / (t.mbps256k * 1e6 * server.wallS)) * wirePerLine) * 1e6 : NaN,
    'HMAC-SHA256': macSPerMLines(),
    'msgpackr unpack': 1e6 / m.unpackLinesPerS,
    'LMDB puts': store ? (store.cpuS / (l.linesPerS * store.wallS)) * 1e6 : NaN,
  };
  return { ...ceiling, cpuSPerMLines: Object.values(cpuParts).reduce((s, v) => s + v, 0), cpuParts };
}

/** One count's figures, for the series. */
interface CountResult {
  agents: number;
  linesPerS: number;
  cpuSPerMLines: number;
  peakMiB: number;
  floorMiB: number;
}

async function ingestOnce(ctx: BenchContext, r: ScenarioResult, n: number, total: number, bounds: IngestBounds): Promise<CountResult | null> {
  const S = 'ingest';
  const t0 = nowMs();
  const dir = tempDir('bw-bench-ingest-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  const gens: IpcChild[] = [];
  const label = `${fmt(n, 0)} agent${n === 1 ? '' : 's'}`;
  try {
    const info = await coord.start();
    const api = coord.api;
    const grants = await createWorkers(api, 'bench', n, REST_IN_FLIGHT);
    const per = split(total, n);
    const genCount = Math.min(MAX_GENERATORS, Math.ceil(n / AGENTS_PER_GENERATOR));
    // Contiguous slices: generator i holds agents [from, to) and streams their shares.
    const slices = split(n, genCount).map((size, i, sizes) => {
      const from = sizes.slice(0, i).reduce((s, x) => s + x, 0);
      return { from, to: from + size };
    });
    ctx.log(`ingest: ${label} in ${genCount} load generator(s), ${fmt(total)} lines of ${LINE_BYTES} B (${fmt(per[0]!)} each), coordinator ${info.serverKind} pid ${coord.pid}`);
    for (const s of slices) {
      const g = new IpcChild('./sim-agent.js');
      gens.push(g);
      g.send({ op: 'ingest', url: info.connectUrl, coordinatorKey: info.publicKey, agents: grants.slice(s.from, s.to) });
    }
    const all = (op: string, timeoutMs: number, what: string) => Promise.all(gens.map((g) => g.expect(op, timeoutMs, what)));
    const go = (lines: number[]) => slices.forEach((s, i) => gens[i]!.send({ op: 'go', lines: lines.slice(s.from, s.to) }));
    // ~30 ms of client CPU per real handshake, 16 in flight per generator: a minute plus that, bounded.
    const tc = nowMs();
    await all('ready', 60_000 + n * 60, `${label} to connect`);
    const connectS = (nowMs() - tc) / 1000;
    // Untimed warm-up round (JIT, LMDB file growth): a small job per agent, then the timed one.
    const warm = per.map((p) => Math.min(p, Math.ceil(100_000 / n)));
    await mapLimit(grants, REST_IN_FLIGHT, () => submitJob(api, 'bench', 'true', `ingest-warm-${n}`));
    await all('assigned', 60_000, `${label} to receive their warm-up jobs`);
    go(warm);
    await all('ingest-done', 120_000, 'the warm-up round');
    const jobs = await mapLimit(grants, REST_IN_FLIGHT, () => submitJob(api, 'bench', 'true', `ingest-${n}`));
    await all('assigned', 60_000, `${label} to receive their jobs`);
    const idle = coord.sample();
    const end = phase(`ingest ${label}`, [{ role: 'coordinator', pid: coord.pid }, ...gens.map((g) => ({ role: 'load generator', pid: g.pid }))]);
    go(per);
    const done: IpcMessage[] = await all('ingest-done', ctx.quick ? 120_000 : 300_000, `${fmt(total)} lines to be acknowledged`);
    const usage = end();
    r.processes.push(...usage);
    const results = done.flatMap((d) => d.results as AgentResult[]);
    const start = Math.min(...results.map((x) => x.start));
    const finish = Math.max(...results.map((x) => x.end));
    const lines = results.reduce((s, x) => s + x.lines, 0);
    const seconds = (finish - start) / 1000;
    const linesPerS = lines / seconds;
    const coordUse = usage.find((u) => u.role === 'coordinator');
    const genUse = usage.find((u) => u.role === 'load generator');
    const cpuSPerMLines = coordUse ? (coordUse.cpuS / lines) * 1e6 : NaN;
    r.figures.push(
      figure(S, `${label}: lines/s`, linesPerS, 'lines/s', 'higher', {
        ceiling: { value: bounds.linesPerS, what: `lines/s (${bounds.what})` }, target: { op: '>=', value: 1_000_000 },
        note: `${fmt(lines)} lines in ${fmt(seconds, 2)} s; ${fmt(linesPerS / BUILDBOT_LINES_PER_S, 1)}× Buildbot's ${fmt(BUILDBOT_LINES_PER_S)} lines/s`,
      }),
      figure(S, `${label}: MB/s of line bytes`, (linesPerS * LINE_BYTES) / 1e6, 'MB/s', 'higher', {
        ceiling: { value: (bounds.linesPerS * LINE_BYTES) / 1e6, what: 'MB/s (same)' }, target: { op: '>=', value: 100 },
      }),
    );
    if (coordUse) {
      r.figures.push(
        figure(S, `${label}: coordinator CPU per million lines`, cpuSPerMLines, 'CPU s', 'lower', {
          ceiling: { value: bounds.cpuSPerMLines, what: 's (bare receive + MAC + unpack + LMDB put)' },
          note: `${fmt(coordUse.cpuS, 2)} CPU s over ${fmt(coordUse.wallS, 2)} s = ${fmt(coordUse.cores, 2)} cores; ` +
            `load generator${genCount > 1 ? `s (×${genCount})` : ''} ${fmt(genUse?.cpuS ?? NaN, 2)} CPU s (${fmt(genUse?.cores ?? NaN, 2)} cores)`,
        }),
        figure(S, `${label}: coordinator peak RSS`, coordUse.peakMiB, 'MiB', 'lower', {
          ceiling: idle ? { value: idle.rssKiB / 1024, what: `MiB RSS just before, ${label} connected (floor)` } : null,
          note: `RSS at the end ${fmt(coordUse.rssEndMiB, 0)} MiB`,
        }),
      );
    }
    const acks = results.flatMap((x) => x.ackMs);
    const batches = results.reduce((s, x) => s + x.batches, 0);
    const pausedShare = results.reduce((s, x) => s + x.pausedMs / Math.max(1, x.end - x.start), 0) / results.length;
    r.notes.push(
      `${label}: ${fmt(batches)} batches of ~${fmt(lines / Math.max(1, batches), 0)} lines; ack after send p50 ${fmt(percentile(acks, 0.5), 1)} ms, p99 ${fmt(percentile(acks, 0.99), 1)} ms; ` +
      `agents spent ${fmt(pausedShare * 100, 0)}% of the run paused on a full ${DEFAULT_LIMITS.maxUnackedBytes / 2 ** 20} MiB window (waiting for the coordinator)`,
    );
    const reconnects = results.reduce((s, x) => s + x.reconnects, 0);
    if (reconnects > 0) r.errors.push(`${label}: agents reconnected ${reconnects} time(s) during the run (${done.flatMap((d) => d.logs as string[]).slice(0, 3).join(' | ')})`);
    // Verify, untimed: every line stored exactly once.
    const mismatches = (await mapLimit(results, REST_IN_FLIGHT, async (x) => {
      const j = await api.ok('GET', `/api/v1/jobs/${x.job}`);
      const expected = x.lines + x.records + CONTROL_EVENTS;
      if (j.lastEvent === expected && j.state === 'completed') return 0;
      const msg = `${label}: job ${x.job} has ${j.lastEvent} stored events (expected ${expected} = ${x.lines} lines + ${x.records} records + ${CONTROL_EVENTS} control) and state ${j.state}`;
      r.errors.push(msg);
      ctx.log(`!!! MISMATCH ${msg}`);
      return 1;
    })).reduce((s: number, x) => s + x, 0);
    if (jobs.length !== results.length) r.errors.push(`${label}: ${jobs.length} jobs submitted but ${results.length} agents reported`);
    r.notes.push(
      `${label}: verified ${results.length} job(s): ${mismatches === 0 ? 'every stored event count = lines + 2 agent records + 2 control events, state completed' : `${mismatches} MISMATCH(ES)`}; ` +
      `this count took ${fmt((nowMs() - t0) / 1000, 1)} s in all (connecting the agents ${fmt(connectS, 1)} s)`,
    );
    return coordUse ? { agents: n, linesPerS, cpuSPerMLines, peakMiB: coordUse.peakMiB, floorMiB: idle ? idle.rssKiB / 1024 : NaN } : null;
  } finally {
    for (const g of gens) await g.stop();
    await coord.stop();
    if (coord.log.includes('Error') || coord.log.includes('failed')) r.notes.push(`${label}: coordinator log tail: ${coord.log.slice(-600)}`);
    dir.remove();
  }
}

/**
 * Agent counts and the lines each count streams in all. Every count gets
 * the same total so the rates compare; quick mode cuts the total and
 * leaves out 1,000 agents (connecting them alone takes ~20 s here).
 */
function plan(quick: boolean): { agents: number; lines: number }[] {
  return quick
    ? [1, 10, 100].map((agents) => ({ agents, lines: 300_000 }))
    : [1, 10, 100, 1000].map((agents) => ({ agents, lines: 2_000_000 }));
}

/** Runs the ingest scenario for 1, 10, 100 and 1,000 agents (quick: 1, 10 and 100). */
export async function runIngest(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult('ingest');
  const bounds = await ingestBounds(ctx);
  r.notes.push(`ceiling parts (this run, lines/s of 100 B): ${Object.entries(bounds.parts).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
  r.notes.push(`coordinator CPU floor parts (this run, CPU s per million lines): ${Object.entries(bounds.cpuParts).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(', ')}`);
  const counts: CountResult[] = [];
  for (const { agents, lines } of plan(ctx.quick)) {
    try {
      const c = await ingestOnce(ctx, r, agents, lines, bounds);
      if (c) counts.push(c);
    } catch (err) {
      r.errors.push(`${agents} agent(s): ${(err as Error).message}`);
      ctx.log(`ingest ${agents}: ${(err as Error).message}`);
    }
  }
  const series = (name: string, unit: string, y: (c: CountResult) => number, ceiling: (c: CountResult) => number, ceilingWhat: string): Series => ({
    name, xLabel: 'agents', unit, ceilingWhat, points: counts.map((c) => ({ x: c.agents, y: y(c), ceiling: ceiling(c) })),
  });
  r.series.push(
    series('throughput versus number of agents', 'lines/s', (c) => c.linesPerS, () => bounds.linesPerS, `ingest ceiling (${bounds.what})`),
    series('coordinator CPU per million lines versus number of agents', 'CPU s', (c) => c.cpuSPerMLines, () => bounds.cpuSPerMLines, 'bare receive + MAC + unpack + LMDB put'),
    series('coordinator peak RSS versus number of agents', 'MiB', (c) => c.peakMiB, (c) => c.floorMiB, 'RSS just before, agents connected'),
  );
  addBottlenecks(r);
  return r;
}
