/**
 * The `ingest` scenario: N simulated agents (real PeerClient + real Outbox,
 * in one load-generator process) each stream their share of 100-byte lines
 * into a job on a coordinator in its own process, durable and acknowledged.
 * Timed from the first line pushed to the last acknowledgement; verified
 * afterwards (untimed) against each job's stored event count.
 */
import { join } from 'node:path';
import type { BenchContext } from './ceilings.js';
import { LINE_BYTES } from './ceilings.js';
import { CoordinatorChild } from './fixture.js';
import { IpcChild, phase } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import { DEFAULT_LIMITS } from '../protocol/index.js';
import { createWorkers, fmt, mapLimit, percentile, submitJob, tempDir } from './util.js';

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

function split(total: number, n: number): number[] {
  const base = Math.floor(total / n);
  return Array.from({ length: n }, (_, i) => base + (i < total % n ? 1 : 0));
}

async function ingestOnce(ctx: BenchContext, r: ScenarioResult, n: number, total: number, ceiling: { linesPerS: number; what: string; parts: Record<string, number> }): Promise<void> {
  const S = 'ingest';
  const dir = tempDir('bw-bench-ingest-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  let gen: IpcChild | undefined;
  try {
    const info = await coord.start();
    const api = coord.api;
    const grants = await createWorkers(api, 'bench', n, 8);
    gen = new IpcChild('./sim-agent.js');
    const per = split(total, n);
    ctx.log(`ingest: ${n} agent(s), ${fmt(total)} lines of ${LINE_BYTES} B (${fmt(per[0]!)} each), coordinator ${info.serverKind} pid ${coord.pid}`);
    gen.send({ op: 'ingest', url: info.connectUrl, coordinatorKey: info.publicKey, agents: grants });
    await gen.expect('ready', 60_000, `${n} agents to connect`);
    // Untimed warm-up round (JIT, LMDB file growth): a small job per agent, then the timed one.
    const warm = per.map((p) => Math.min(p, Math.ceil(100_000 / n)));
    await mapLimit(grants, 8, () => submitJob(api, 'bench', 'true', `ingest-warm-${n}`));
    await gen.expect('assigned', 60_000, `${n} agents to receive their warm-up jobs`);
    gen.send({ op: 'go', lines: warm });
    await gen.expect('ingest-done', 120_000, 'the warm-up round');
    const jobs = await mapLimit(grants, 8, () => submitJob(api, 'bench', 'true', `ingest-${n}`));
    await gen.expect('assigned', 60_000, `${n} agents to receive their jobs`);
    const idle = coord.sample();
    const end = phase(`ingest ${n} agent(s)`, [{ role: 'coordinator', pid: coord.pid }, { role: 'load generator', pid: gen.pid }]);
    gen.send({ op: 'go', lines: per });
    const done = await gen.expect('ingest-done', ctx.quick ? 120_000 : 300_000, `${fmt(total)} lines to be acknowledged`);
    const usage = end();
    r.processes.push(...usage);
    const results = done.results as AgentResult[];
    const start = Math.min(...results.map((x) => x.start));
    const finish = Math.max(...results.map((x) => x.end));
    const lines = results.reduce((s, x) => s + x.lines, 0);
    const seconds = (finish - start) / 1000;
    const linesPerS = lines / seconds;
    const label = `${n} agent${n === 1 ? '' : 's'}`;
    const coordUse = usage.find((u) => u.role === 'coordinator');
    const genUse = usage.find((u) => u.role === 'load generator');
    r.figures.push(
      figure(S, `${label}: lines/s`, linesPerS, 'lines/s', 'higher', {
        ceiling: { value: ceiling.linesPerS, what: `lines/s (${ceiling.what})` }, target: { op: '>=', value: 1_000_000 },
        note: `${fmt(lines)} lines in ${fmt(seconds, 2)} s; ${fmt(linesPerS / BUILDBOT_LINES_PER_S, 1)}× Buildbot's ${fmt(BUILDBOT_LINES_PER_S)} lines/s`,
      }),
      figure(S, `${label}: MB/s of line bytes`, (linesPerS * LINE_BYTES) / 1e6, 'MB/s', 'higher', {
        ceiling: { value: (ceiling.linesPerS * LINE_BYTES) / 1e6, what: 'MB/s (same)' }, target: { op: '>=', value: 100 },
      }),
    );
    if (coordUse) {
      r.figures.push(
        figure(S, `${label}: coordinator CPU`, coordUse.cpuS, 'CPU s', 'lower', {
          ceiling: { value: coordUse.wallS, what: 's wall (= 1 busy core)' }, ratioKind: 'of-ceiling',
          note: `${fmt((coordUse.cpuS / lines) * 1e9, 0)} ns CPU per line; load generator ${fmt(genUse?.cpuS ?? NaN, 2)} CPU s (${fmt(genUse?.cores ?? NaN, 2)} cores)`,
        }),
        figure(S, `${label}: coordinator peak RSS`, coordUse.peakMiB, 'MiB', 'lower', {
          ceiling: idle ? { value: idle.rssKiB / 1024, what: 'MiB RSS just before (floor)' } : null,
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
    if (reconnects > 0) r.errors.push(`${label}: agents reconnected ${reconnects} time(s) during the run (${(done.logs as string[]).slice(0, 3).join(' | ')})`);
    // Verify, untimed: every line stored exactly once.
    let mismatches = 0;
    for (const x of results) {
      const j = await api.ok('GET', `/api/v1/jobs/${x.job}`);
      const expected = x.lines + x.records + CONTROL_EVENTS;
      if (j.lastEvent !== expected || j.state !== 'completed') {
        mismatches++;
        const msg = `${label}: job ${x.job} has ${j.lastEvent} stored events (expected ${expected} = ${x.lines} lines + ${x.records} records + ${CONTROL_EVENTS} control) and state ${j.state}`;
        r.errors.push(msg);
        ctx.log(`!!! MISMATCH ${msg}`);
      }
    }
    if (jobs.length !== results.length) r.errors.push(`${label}: ${jobs.length} jobs submitted but ${results.length} agents reported`);
    r.notes.push(`${label}: verified ${results.length} job(s): ${mismatches === 0 ? 'every stored event count = lines + 2 agent records + 2 control events, state completed' : `${mismatches} MISMATCH(ES)`}`);
  } finally {
    if (gen) await gen.stop();
    await coord.stop();
    if (coord.log.includes('Error') || coord.log.includes('failed')) r.notes.push(`coordinator log tail: ${coord.log.slice(-600)}`);
    dir.remove();
  }
}

/** Runs the ingest scenario for 1, 10 and 100 agents (quick: 1 and 10). */
export async function runIngest(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult('ingest');
  const counts = ctx.quick ? [1, 10] : [1, 10, 100];
  const total = ctx.quick ? 300_000 : 2_000_000;
  const ceiling = await ctx.ceilings.ingestLines();
  r.notes.push(`ceiling parts (this run, lines/s of 100 B): ${Object.entries(ceiling.parts).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
  for (const n of counts) {
    try {
      await ingestOnce(ctx, r, n, total, ceiling);
    } catch (err) {
      r.errors.push(`${n} agent(s): ${(err as Error).message}`);
      ctx.log(`ingest ${n}: ${(err as Error).message}`);
    }
  }
  addBottlenecks(r);
  return r;
}
