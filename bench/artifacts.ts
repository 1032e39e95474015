/**
 * The `artifacts` scenario: how fast outputs go from an agent into the
 * coordinator's blob store, and dependency inputs back out to an agent.
 * A coordinator in its own process (temp store) and one real agent process
 * (dist/agent/main.js run) on loopback:
 *
 * 1. One big output (1 GiB; quick: 64 MiB): the job hard-links a file the
 *    bench made beforehand (untimed), so the timed part is the upload alone:
 *    from the task's exit record to the agent's WORKER line `uploaded
 *    /work/big.bin` (written when the coordinator's upload_done arrives:
 *    after hashing, writing, fdatasync, linking into the blob store and the
 *    commit transaction). Both timestamps come from the agent's clock.
 * 2. Small outputs (10,000 of 4 KiB; quick: 500) from one job: files/s
 *    from the task's exit to the last `uploaded` line.
 * 3. A job depending on the first with copyOutputs: the big file downloaded
 *    to the agent, timed from the coordinator's "job assigned" control line
 *    to the first task's start record.
 *
 * Ceilings, measured first in the same run, each in small processes of
 * their own (bench/upload-peer.ts): a bare uWS server taking the same bytes
 * as 1 MiB WebSocket messages from a `ws` client that reads and hashes the
 * same file with the agent's chunk size and window, the server hashing,
 * writing and fsyncing (no handshake, MAC, msgpack, store); raw hash + write
 * + fdatasync of the same size with no network; and, for small files, the
 * disk work a commit does per file (write, fdatasync, link, directory fsync).
 *
 * With BW_BENCH_CPU_PROF=DIR in the environment, the coordinator and the
 * agent run with --cpu-prof and leave their profiles in DIR.
 */
import { createHash, randomFillSync } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { UPLOAD_CHUNK_BYTES, UPLOAD_HIGH_WATER_BYTES, UPLOAD_WINDOW_BYTES } from '../agent/uploader.js';
import type { BenchContext } from './ceilings.js';
import { agentLogs, startAgent, waitConnected } from './dispatch.js';
import type { Event } from './dispatch.js';
import { CoordinatorChild } from './fixture.js';
import { IpcChild, mainThreadCpuS, phase, waitExit } from './proc.js';
import type { ProcUsage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api } from './util.js';
import { createWorkers, fmt, tempDir, until } from './util.js';

const MIB = 1024 * 1024;
/** Bytes of each small output. */
const SMALL_BYTES = 4096;
/** The targets for one big upload. */
const TARGET_MBPS = 400;
const TARGET_OF_BARE = 0.8;

/** The scenario's name, on every figure. */
const S = 'artifacts';

const mbps = (bytes: number, ms: number) => bytes / (ms / 1000) / 1e6;
const label = (size: number) => `${fmt(size / MIB, 0)} MiB`;

/** Writes `size` random-looking bytes (a 16 MiB random block, repeated) and fsyncs; returns the SHA-256. */
async function makeSource(path: string, size: number): Promise<string> {
  const block = randomFillSync(Buffer.allocUnsafe(16 * MIB));
  const fh = await open(path, 'w', 0o644);
  const hash = createHash('sha256');
  try {
    for (let at = 0; at < size; at += block.length) {
      const piece = block.subarray(0, Math.min(block.length, size - at));
      hash.update(piece);
      await fh.write(piece, 0, piece.length, at);
    }
    // Clean pages before anything is timed: no writeback of this file competes with the measurements.
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

interface UploadCeilings {
  /** The bare uWS loop, MB/s, and what it reported; CPU seconds of each side (all threads, and the main thread alone). */
  bare: { mbps: number; ms: number; bufferutil: string; dropped: number; syncMs: number; server: Cpu; client: Cpu };
  /** Hash + write + fdatasync in one process, MB/s. */
  rawMbps: number;
  /** The commit's per-file disk work, files/s. */
  smallPerS: number;
  usage: ProcUsage[];
}

/** CPU seconds of one process in one phase: all its threads, and its main (JavaScript) thread alone. */
interface Cpu {
  all: number;
  main: number;
}

/** Starts counting the main-thread CPU of some processes; the returned function gives each one's seconds since. */
function mainThreads(pids: (number | undefined)[]): () => number[] {
  const start = pids.map((pid) => (pid ? mainThreadCpuS(pid) : NaN));
  return () => pids.map((pid, i) => (pid ? mainThreadCpuS(pid) - start[i]! : NaN));
}

const cpuOf = (usage: ProcUsage[], role: string, main: number | undefined): Cpu => ({ all: usage.find((u) => u.role === role)?.cpuS ?? NaN, main: main ?? NaN });

/** The bare loop, raw write and small-file ceilings; temporary files go under `dir`. */
async function measureCeilings(ctx: BenchContext, dir: string, src: string, size: number, smallCount: number): Promise<UploadCeilings> {
  const server = new IpcChild('./upload-peer.js');
  const client = new IpcChild('./upload-peer.js');
  const usage: ProcUsage[] = [];
  try {
    server.send({ op: 'serve' });
    const ready = await server.expect('ready', 15_000, 'the raw uWS upload server');
    const url = `ws://127.0.0.1:${ready.port as number}/`;
    const upload = async (bytes: number, phaseName: string | null) => {
      const dest = join(dir, 'bare.bin');
      server.send({ op: 'expect', path: dest, size: bytes });
      await server.expect('expecting', 10_000, 'the raw server to open its file');
      const end = phaseName ? phase(phaseName, [{ role: 'uws server', pid: server.pid }, { role: 'ws client', pid: client.pid }]) : null;
      const endMain = mainThreads([server.pid, client.pid]);
      client.send({ op: 'send', url, file: src, bytes, chunkBytes: UPLOAD_CHUNK_BYTES, windowBytes: UPLOAD_WINDOW_BYTES, highWaterBytes: UPLOAD_HIGH_WATER_BYTES, hash: true });
      const sent = await client.expect('sent', 120_000, `the bare loop to take ${label(bytes)}`);
      const got = await server.expect('received', 10_000, 'the raw server’s report');
      const [serverMain, clientMain] = endMain();
      const used = end ? end() : [];
      usage.push(...used);
      rmSync(dest, { force: true });
      if (sent.serverSha256 !== sent.sha256) throw new Error(`bare loop: the server hashed ${String(sent.serverSha256)}, the client ${String(sent.sha256)}`);
      return {
        mbps: mbps(bytes, sent.ms as number), ms: sent.ms as number, bufferutil: String(sent.bufferutil), dropped: got.dropped as number,
        syncMs: (got.syncedAt as number) - (got.lastWrite as number), server: cpuOf(used, 'uws server', serverMain), client: cpuOf(used, 'ws client', clientMain),
      };
    };
    ctx.log(`artifacts: ceiling: bare uWS loop, ${label(size)} in ${UPLOAD_CHUNK_BYTES / MIB} MiB messages (hash + write + fdatasync)`);
    await upload(Math.min(size, 64 * MIB), null); // warm-up: JIT, socket buffers
    const bare = await upload(size, 'bare uWS upload');

    ctx.log(`artifacts: ceiling: raw hash + write + fdatasync of ${label(size)}`);
    const writer = new IpcChild('./upload-peer.js');
    try {
      const end = phase('raw write', [{ role: 'writer', pid: writer.pid }]);
      writer.send({ op: 'write', path: join(dir, 'raw.bin'), size, chunkBytes: UPLOAD_CHUNK_BYTES });
      const w = await writer.expect('written', 120_000, 'the raw write');
      usage.push(...end());
      rmSync(join(dir, 'raw.bin'), { force: true });
      const smallDir = join(dir, 'small-ceiling');
      mkdirSync(smallDir);
      writer.send({ op: 'small', dir: smallDir, count: Math.ceil(smallCount / 5), bytes: SMALL_BYTES, capMs: 5_000 });
      const s = await writer.expect('stored', 30_000, 'the small-file store');
      rmSync(smallDir, { recursive: true, force: true });
      return { bare, rawMbps: mbps(size, w.ms as number), smallPerS: (s.files as number) / ((s.ms as number) / 1000), usage };
    } finally {
      await writer.stop();
    }
  } finally {
    await Promise.all([server.stop(), client.stop()]);
  }
}

/** What one job did, from its events. */
interface JobRun {
  id: string;
  state: string;
  reason: string;
  /** It did not end within the time allowed (it was then cancelled). */
  timedOut: boolean;
  events: Event[];
  usage: ProcUsage[];
  /** Main-thread CPU seconds of each process given, in order. */
  main: number[];
}

const TERMINAL = ['completed', 'failed', 'cancelled'];
const isTask = (what: string) => (e: Event) => e.stream === 'task' && e.event?.event === what;
const isWorker = (prefix: string) => (e: Event) => e.stream === 'worker' && (e.text ?? '').startsWith(prefix);

/**
 * Submits a one-task job on the `bench` target, waits (bounded) for it to
 * end, then reads its events. It polls the job's state every 100 ms rather
 * than long-polling its events: a follower woken by each of 10,000 WORKER
 * lines would cost the coordinator more than the uploads it watches. A job
 * still running after `timeoutMs` is cancelled, and what it did so far returned.
 */
async function runJob(api: Api, body: Record<string, unknown>, timeoutMs: number, procs: { role: string; pid: number | undefined }[], label: string | null): Promise<JobRun> {
  const end = label ? phase(label, procs) : null;
  const endMain = mainThreads(procs.map((p) => p.pid));
  const { id } = (await api.ok('POST', '/api/v1/jobs', { target: 'bench', ...body })) as { id: string };
  const ended = async () => {
    const j = await api.ok('GET', `/api/v1/jobs/${id}`);
    return TERMINAL.includes(j.state as string) ? j : undefined;
  };
  let job = await until(ended, timeoutMs, 100);
  const main = endMain();
  const usage = end ? end() : [];
  const timedOut = !job;
  if (!job) {
    await api.call('POST', `/api/v1/jobs/${id}/cancel`);
    job = (await until(ended, 10_000, 100)) ?? (await api.ok('GET', `/api/v1/jobs/${id}`));
  }
  const events: Event[] = [];
  for (let after = 0, pages = 0; pages < 1000; pages++) {
    const b = await api.ok('GET', `/api/v1/jobs/${id}/events?after=${after}&limit=10000`);
    events.push(...(b.events as Event[]));
    after = b.next as number;
    if (b.done || (b.events as Event[]).length === 0) break;
  }
  return { id, state: job.state as string, reason: String(job.reason ?? ''), timedOut, events, usage, main };
}

function mustComplete(j: JobRun, what: string): void {
  if (j.state !== 'completed' || j.timedOut) {
    const lines = j.events.filter((e) => e.stream === 'worker' || e.stream === 'stderr').slice(-5).map((e) => e.text);
    throw new Error(`${what} (job ${j.id}) ended ${j.state}: ${j.reason}; last lines: ${JSON.stringify(lines)}`);
  }
}

/** What the three measurements share. */
interface Run {
  api: Api;
  r: ScenarioResult;
  c: UploadCeilings;
  size: number;
  /** The source file the big job hard-links, and its SHA-256. */
  src: string;
  srcSha: string;
  procs: { role: string; pid: number | undefined }[];
  capMs: number;
}

/** 1. One big output: MB/s, the ratio to the bare loop, and CPU per GiB on each side against the bare loop's. */
async function bigUpload(x: Run): Promise<string> {
  const { api, r, c, size } = x;
  const job = await runJob(api, { name: 'artifacts-big', tasks: [{ name: 'main', script: `ln ${x.src} big.bin` }], outputRules: ['/work/big.bin'] }, x.capMs, x.procs, 'big upload');
  mustComplete(job, 'the big-output job');
  r.processes.push(...job.usage);
  const exit = job.events.find(isTask('exit'));
  const uploaded = job.events.find(isWorker('uploaded /work/big.bin'));
  const outs = (await api.ok('GET', `/api/v1/jobs/${job.id}/outputs`)).outputs as { path: string; size: number; sha256: string; committedAt: number }[];
  const out = outs.find((o) => o.path === '/work/big.bin');
  if (!out || out.size !== size || out.sha256 !== x.srcSha) r.errors.push(`big output: stored ${JSON.stringify(out)}, expected ${size} bytes with sha256 ${x.srcSha}`);
  const ms = exit && uploaded ? uploaded.time - exit.time : NaN;
  const value = mbps(size, ms);
  const gib = size / 2 ** 30;
  const coord = cpuOf(job.usage, 'coordinator', job.main[0]);
  const agent = cpuOf(job.usage, 'agent (+bash)', job.main[1]);
  const perGib = (cpu: Cpu) => `${fmt(cpu.all / gib, 2)} s/GiB (main thread ${fmt(cpu.main / gib, 2)})`;
  r.figures.push(
    figure(S, `1 output of ${label(size)}: upload`, value, 'MB/s', 'higher', {
      ceiling: { value: c.bare.mbps, what: 'MB/s bare uWS loop' }, target: { op: '>=', value: TARGET_MBPS },
      note: `${fmt(ms / 1000, 2)} s from task exit to the agent's "uploaded" line (the coordinator's committedAt ${out && exit ? fmt(out.committedAt - exit.time, 0) : '—'} ms after the exit)`,
    }),
    figure(S, 'upload / bare uWS loop', value / c.bare.mbps, 'ratio', 'higher', {
      target: { op: '>=', value: TARGET_OF_BARE },
      note: `bare loop ${fmt(c.bare.mbps)} MB/s in ${fmt(c.bare.ms / 1000, 2)} s (its final fdatasync ${fmt(c.bare.syncMs, 0)} ms; ws client masking with bufferutil: ${c.bare.bufferutil})`,
    }),
    // CPU seconds per byte hardly move when other people's processes share the cores; MB/s does.
    figure(S, 'upload: coordinator CPU per GiB', coord.all / gib, 's/GiB', 'lower', {
      ceiling: { value: c.bare.server.all / gib, what: 's/GiB bare uWS server' },
      note: `coordinator ${perGib(coord)}; bare uWS server ${perGib(c.bare.server)}; the whole job, from POST to its end`,
    }),
    figure(S, 'upload: agent CPU per GiB', agent.all / gib, 's/GiB', 'lower', {
      ceiling: { value: c.bare.client.all / gib, what: 's/GiB bare ws client' },
      note: `agent ${perGib(agent)}; bare ws client (reads and hashes too) ${perGib(c.bare.client)}`,
    }),
    figure(S, `bare uWS loop, ${label(size)} (ceiling)`, c.bare.mbps, 'MB/s', 'higher', {
      ceiling: { value: c.rawMbps, what: 'MB/s raw hash+write+fdatasync' },
      note: `a ws client (another process) reads and hashes the file in ${UPLOAD_CHUNK_BYTES / MIB} MiB chunks, ${UPLOAD_WINDOW_BYTES / MIB} MiB window; a bare uWS server copies, hashes, writes (async, in order), acks each message once written, fdatasyncs at the end; DESIGN.md reference: 440-550 MB/s`,
    }),
    figure(S, `raw hash+write+fdatasync, ${label(size)} (ceiling)`, c.rawMbps, 'MB/s', 'higher', { note: 'one process, no network: SHA-256 of each 1 MiB chunk while the previous one is written' }),
  );
  if (c.bare.dropped > 0) r.errors.push(`the bare uWS server dropped ${c.bare.dropped} acks (send() returned 2)`);
  return job.id;
}

/** 3. The big output as a dependency's input: from "job assigned" to the first task's start. */
async function dependencyDownload(x: Run, prior: string): Promise<void> {
  const { r, size } = x;
  const job = await runJob(x.api, {
    name: 'artifacts-dep', tasks: [{ name: 'main', script: `test "$(stat -c %s "$BUILDWIRE_INPUT/prior/work/big.bin")" = ${size}` }],
    dependencies: { prior: { job: prior, copyOutputs: true } },
  }, x.capMs, x.procs, 'dependency download');
  mustComplete(job, 'the dependent job');
  r.processes.push(...job.usage);
  const assigned = job.events.find((e) => e.stream === 'control' && (e.text ?? '').startsWith('job assigned'));
  const started = job.events.find(isTask('start'));
  const downloaded = job.events.find(isWorker('downloaded '));
  const ms = assigned && started ? started.time - assigned.time : NaN;
  const agent = cpuOf(job.usage, 'agent (+bash)', job.main[1]);
  r.figures.push(figure(S, `dependency input of ${label(size)}: download`, mbps(size, ms), 'MB/s', 'higher', {
    ceiling: { value: x.c.rawMbps, what: 'MB/s raw hash+write+fdatasync' },
    note: `${fmt(ms / 1000, 2)} s from "job assigned" to the task's start (the agent's "downloaded" line at ${downloaded && assigned ? fmt(downloaded.time - assigned.time, 0) : '—'} ms): ` +
      `GET over loopback HTTP, written to a part file while hashed, fsync, rename; agent CPU ${fmt(agent.all, 2)} s (main thread ${fmt(agent.main, 2)} s)`,
  }));
}

/** 2. Many small outputs from one job: files/s from the task's exit to the last "uploaded" line. */
async function smallUploads(x: Run, count: number, timeoutMs: number): Promise<void> {
  const { api, r } = x;
  const job = await runJob(api, {
    name: 'artifacts-small', tasks: [{ name: 'main', script: `mkdir small && head -c ${count * SMALL_BYTES} /dev/urandom | split -b ${SMALL_BYTES} -a 5 -d - small/f` }],
    outputRules: ['/work/small/*'],
  }, timeoutMs, x.procs, 'small uploads');
  if (!job.timedOut) mustComplete(job, 'the small-outputs job');
  r.processes.push(...job.usage);
  const exit = job.events.find(isTask('exit'));
  const ups = job.events.filter(isWorker('uploaded /work/small/'));
  const outs = (await api.ok('GET', `/api/v1/jobs/${job.id}/outputs`)).outputs as { committedAt: number }[];
  let partial = '';
  if (job.timedOut) {
    partial = `ONLY ${ups.length} OF ${fmt(count)} FILES WERE UPLOADED within ${timeoutMs / 1000} s (then the job was cancelled): this rate covers those. `;
    r.errors.push(`small outputs: ${ups.length} of ${count} uploaded within ${timeoutMs / 1000} s; the job was cancelled`);
  } else if (ups.length !== count || outs.length !== count) {
    r.errors.push(`small outputs: ${ups.length} "uploaded" lines and ${outs.length} stored outputs, expected ${count}`);
  }
  const ms = exit && ups.length > 0 ? ups.at(-1)!.time - exit.time : NaN;
  const committed = outs.map((o) => o.committedAt).sort((a, b) => a - b);
  const span = committed.length > 1 ? committed.at(-1)! - committed[0]! : NaN;
  const coord = cpuOf(job.usage, 'coordinator', job.main[0]);
  const agent = cpuOf(job.usage, 'agent (+bash)', job.main[1]);
  const perFile = (cpu: Cpu) => `${fmt((cpu.all / ups.length) * 1000, 2)} ms (main thread ${fmt((cpu.main / ups.length) * 1000, 2)})`;
  r.figures.push(figure(S, `${fmt(count)} outputs of ${SMALL_BYTES / 1024} KiB: uploads`, ups.length / (ms / 1000), 'files/s', 'higher', {
    ceiling: { value: x.c.smallPerS, what: 'files/s raw write+fdatasync+link+dir fsync' },
    note: `${partial}${fmt(ms / 1000, 2)} s from task exit to the last "uploaded" line; the first file committed ${exit && committed.length ? fmt(committed[0]! - exit.time, 0) : '—'} ms after the exit (scan included); ` +
      `between the first and last commit ${fmt((committed.length - 1) / (span / 1000))} files/s; CPU per file: coordinator ${perFile(coord)}, agent ${perFile(agent)}`,
  }));
}

/** Runs the artifacts scenario. */
export async function runArtifacts(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult(S);
  const size = ctx.quick ? 64 * MIB : 1024 * MIB;
  const smallCount = ctx.quick ? 500 : 10_000;
  const dir = tempDir('bw-bench-artifacts-');
  const profDir = process.env.BW_BENCH_CPU_PROF;
  const prof = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const coord = new CoordinatorChild(join(dir.path, 'store'), { maxOutputBytes: Math.max(size, 1024 * MIB) }, undefined, prof);
  let agent: ChildProcess | undefined;
  try {
    const src = join(dir.path, 'big.bin');
    ctx.log(`artifacts: writing a ${label(size)} source file (untimed)`);
    const srcSha = await makeSource(src, size);
    const c = await measureCeilings(ctx, dir.path, src, size, smallCount);
    r.processes.push(...c.usage);

    const info = await coord.start();
    const api = coord.api;
    const [g] = await createWorkers(api, 'bench', 1, 1);
    // Inputs beside the job's directory (not /input): everything stays in the temp dir.
    agent = startAgent(info, g!, join(dir.path, 'agent'), { BUILDWIRE_INPUT_DIR: 'shared' }, prof);
    if (!(await waitConnected(api, [g!.worker], 20_000))) throw new Error('the agent did not connect within 20 s');
    const x: Run = {
      api, r, c, size, src, srcSha, capMs: ctx.quick ? 60_000 : 120_000,
      procs: [{ role: 'coordinator', pid: coord.pid }, { role: 'agent (+bash)', pid: agent.pid }, { role: 'bench (client)', pid: process.pid }],
    };

    // Untimed warm-up of all three paths (JIT on both sides, LMDB growth).
    ctx.log('artifacts: warm-up job (64 MiB + 200 small outputs, then a dependent download)');
    const warm = await runJob(api, {
      name: 'artifacts-warm', tasks: [{ name: 'main', script: `head -c ${64 * MIB} ${src} > w.bin && mkdir s && head -c ${200 * SMALL_BYTES} /dev/urandom | split -b ${SMALL_BYTES} -a 5 -d - s/f` }],
      outputRules: ['/work/w.bin', '/work/s/*'],
    }, x.capMs, x.procs, null);
    mustComplete(warm, 'the warm-up job');
    const warmDep = await runJob(api, { name: 'artifacts-warm-dep', tasks: [{ name: 'main', script: 'true' }], dependencies: { prior: { job: warm.id, copyOutputs: true } } }, x.capMs, x.procs, null);
    mustComplete(warmDep, 'the warm-up dependent job');

    ctx.log(`artifacts: one ${label(size)} output`);
    const big = await bigUpload(x);
    // The download runs next, while the blob is in the page cache, as a dependent job's would usually be.
    ctx.log(`artifacts: a dependent job downloading the ${label(size)} output`);
    await dependencyDownload(x, big);
    ctx.log(`artifacts: ${fmt(smallCount)} outputs of ${SMALL_BYTES / 1024} KiB from one job`);
    await smallUploads(x, smallCount, ctx.quick ? 30_000 : 120_000);
    r.notes.push('ceilings ran first, each in small processes of their own (bench/upload-peer.ts); the buildwire jobs ran after an untimed warm-up job, on one persistent agent');
    r.notes.push('the bare loop fsyncs once at the end; the coordinator fdatasyncs its part file every 64 MiB (its writes wait meanwhile) and again at the commit, then hard-links it into the blob store and fsyncs that directory');
  } catch (err) {
    r.errors.push((err as Error).message);
    if (agent) r.notes.push(`agent log lines: ${JSON.stringify([...agentLogs.values()].flat().slice(-5))}`);
  } finally {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await waitExit(agent, 5000);
    }
    await coord.stop();
    dir.remove();
  }
  addBottlenecks(r);
  return r;
}
