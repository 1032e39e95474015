/**
 * The `fleet` scenario: thousands of idle agents held by one coordinator,
 * in steps of 10,000 and then 50,000 (quick: one step of 2,000), each step
 * on a fresh coordinator and store. Persistent workers are created over
 * REST, then connected from several load-generator processes (FastPeer:
 * the real wire, node:crypto on the client side — see fast-peer.ts).
 * Reports, per step, the coordinator's memory per connected agent, the
 * handshake rate and its CPU per handshake, idle CPU, and after a SIGKILL
 * and a restart on the same store and port, the time until every agent has
 * its welcome again and the handshakes per second that storm achieved.
 * The 50,000 step runs only if this host's free memory and the
 * coordinator's open-file limit allow; a smaller count the limit allows is
 * run instead (and said so). Finally it measures what the real
 * PeerClient's handshake costs a client, to show why the fleet does not use it.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Message } from '../protocol/index.js';
import {
  DEFAULT_LIMITS, PROTOCOL_VERSION, PeerClient, ServerHandshake, ed25519PrivateKey, encode, ephemeralFast, generateSigningKeyPair, randomNonce, signFast, verifyFast,
} from '../protocol/index.js';
import type { BenchContext, IdleCeiling } from './ceilings.js';
import { CLIENT_HANDSHAKE_DEADLINE_MS, FastPeer, fastKey } from './fast-peer.js';
import { CoordinatorChild } from './fixture.js';
import type { CoordinatorInfo } from './fixture.js';
import { IpcChild, phase } from './proc.js';
import type { IpcMessage, ProcUsage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api, WorkerGrant } from './util.js';
import { createWorkers, fmt, mapLimit, median, nowMs, sleep, tempDir, withTimeout } from './util.js';

const KIB = 1024;
const MIB = 1024 * 1024;

/** REST requests in flight while creating workers. */
const CREATE_IN_FLIGHT = 128;
/** Handshakes in flight per load generator while connecting. */
const CONNECTS_IN_FLIGHT = 64;
/** Agents per load-generator process: one socket each, under this host's per-process open-file limit (20,000 here). */
const AGENTS_PER_GENERATOR = 12_500;
/** At least this many load generators per step: a step's connecting is spread the same way at every size. */
const MIN_GENERATORS = 2;
/**
 * Open files the coordinator keeps free beyond its agents' sockets: the
 * store, REST connections, sockets of the reconnect storm not yet closed.
 * Running out is a different benchmark: measured here, with 20,600 agents
 * against a limit of 20,000, 19,977 connected, then the coordinator spun a
 * core on failing accept()s, logged nothing, and stopped answering REST.
 */
const FD_HEADROOM = 1000;
/** Files a fresh coordinator has open before any agent connects (store, listening sockets, pipes): a few dozen, rounded up. */
const FD_BASE = 100;
/**
 * Free memory kept beyond a step's estimate (coordinator plus load
 * generators per agent, measured on the previous step, doubled for the
 * garbage of a reconnect storm).
 */
const MEMORY_HEADROOM_BYTES = 1024 * MIB;

/**
 * Whether a fleet of `n` needs more than one source address. Towards the
 * coordinator's one address and port, one source address has only the
 * ephemeral port range (~28,000 here), and a reconnect storm needs some
 * spare. Only then does each load generator dial from its own 127.0.0.x:
 * binding a source address makes the kernel pick each port the slow way
 * (measured here: ~1 ms of CPU per connect with 9,000 sockets bound,
 * against ~0.35 ms when connect() picks), which the simulator would pay
 * on the coordinator's cores.
 */
function needsSourceAddresses(n: number): boolean {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return n > 0.7 * (hi! - lo! + 1);
  } catch {
    return n > 20_000;
  }
}

/** Waits for `op` from every child; on timeout says how far each got instead of throwing. */
async function fromAll(gens: IpcChild[], op: string, timeoutMs: number): Promise<{ msgs: (IpcMessage | null)[]; timedOut: boolean }> {
  const msgs = await Promise.all(gens.map((g) => g.expect(op, timeoutMs, op).catch(() => null)));
  return { msgs, timedOut: msgs.some((m) => m === null) };
}

/** A bounded wait that scales with the count: ~1,000 handshakes/s here, at worst a fifth of that. */
function waitMsFor(n: number): number {
  return 30_000 + n * 5;
}

/** This process's open-file limit (soft; children inherit it), from /proc; Infinity if unreadable or unlimited. */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * Creates `n` persistent workers with POST /api/v1/workers, one request
 * per worker as an administrator would (the API has no bulk create), over
 * node:http with a keep-alive agent.
 *
 * Why not util.ts's fetch-based client: measured here, fetch costs ~1 ms
 * of client CPU per request (node:http ~0.15-0.25 ms), and created ~760
 * workers/s against ~2,000-3,000/s with node:http. At 18,500 workers that
 * is ~20 s of the scenario's time on the cores the coordinator needs.
 */
async function createWorkersFast(api: Api, target: string, n: number, inFlight: number): Promise<WorkerGrant[]> {
  const url = new URL(api.url);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: inFlight });
  const body = JSON.stringify({ target });
  const post = () => new Promise<WorkerGrant>((resolve, reject) => {
    const req = httpRequest({
      host: url.hostname, port: url.port, path: '/api/v1/workers', method: 'POST', agent,
      headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode !== 201) {
          reject(new Error(`POST /api/v1/workers: ${res.statusCode} ${text.slice(0, 300)}`));
          return;
        }
        const b = JSON.parse(text) as { id: string; credential: string };
        resolve({ worker: b.id, credential: b.credential });
      });
    });
    req.setTimeout(30_000, () => req.destroy(new Error('POST /api/v1/workers: no answer within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
  try {
    return await mapLimit(Array.from({ length: n }, (_, i) => i), inFlight, post);
  } finally {
    agent.destroy();
  }
}

/** CPU milliseconds the bench process spends per client handshake, for the real PeerClient and for FastPeer. */
async function clientHandshakeCost(api: Api, info: CoordinatorInfo, n: number): Promise<{ realMs: number; keygenMs: number; fastMs: number }> {
  const key = new Uint8Array(Buffer.from(info.publicKey, 'base64'));
  const grants = await createWorkers(api, 'bench', 2 * n, 4);
  let real = 0;
  let keygen = 0;
  for (const g of grants.slice(0, n)) {
    const k0 = process.cpuUsage();
    const kp = generateSigningKeyPair();
    const k1 = process.cpuUsage(k0);
    keygen += (k1.user + k1.system) / 1000;
    const c0 = process.cpuUsage();
    const client = new PeerClient({
      url: info.connectUrl, coordinatorKey: key, role: 'agent', backoffBaseMs: 100, backoffCapMs: 2000,
      auth: () => ({ method: 'bootstrap', worker: g.worker, credential: g.credential, seed: kp.seed, publicKey: kp.publicKey }),
    });
    const opened = once(client, 'open') as Promise<[Message]>;
    client.start();
    await withTimeout(opened, 20_000, 'a PeerClient welcome');
    const c1 = process.cpuUsage(c0);
    real += (c1.user + c1.system) / 1000;
    client.close();
  }
  let fast = 0;
  for (const g of grants.slice(n)) {
    const c0 = process.cpuUsage();
    const welcomed = new Promise<void>((resolve) => {
      const p = new FastPeer({
        url: info.connectUrl, coordinatorKey: key, worker: g.worker, credential: g.credential, key: fastKey(), backoffBaseMs: 100, backoffCapMs: 2000,
        onWelcome: () => {
          p.close();
          resolve();
        },
        onFatal: () => resolve(),
      });
      p.start();
    });
    await withTimeout(welcomed, 20_000, 'a FastPeer welcome');
    const c1 = process.cpuUsage(c0);
    fast += (c1.user + c1.system) / 1000;
  }
  return { realMs: real / n, keygenMs: keygen / n, fastMs: fast / n };
}

/**
 * The coordinator's handshake crypto alone, in this process: ServerHandshake.onHello
 * (X25519 key, agreement, HKDF, Ed25519 signature) plus the client-signature check.
 */
function serverCryptoMs(n: number): { helloMs: number; verifyMs: number } {
  const identity = ed25519PrivateKey(generateSigningKeyPair().seed);
  const agent = fastKey();
  const msg = randomBytes(96);
  const sig = signFast(ed25519PrivateKey(agent.seed), msg);
  const hello: number[] = [];
  const verify: number[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = encode({ type: 'hello', v: PROTOCOL_VERSION, role: 'agent', nonce: randomNonce(), ephemeral: ephemeralFast().publicKey });
    const t0 = nowMs();
    new ServerHandshake(identity).onHello(bytes);
    const t1 = nowMs();
    verifyFast(agent.publicKey, msg, sig);
    verify.push(nowMs() - t1);
    hello.push(t1 - t0);
  }
  return { helloMs: median(hello), verifyMs: median(verify) };
}

/** What the whole scenario measures once and every step compares with. */
interface FleetBounds {
  idle: IdleCeiling;
  /** Raw uWS server CPU per connect, ms. */
  rawConnectMs: number;
  /** Server handshake crypto alone, ms. */
  cryptoMs: number;
  hsCrypto: { helloMs: number; verifyMs: number };
}

/** One step's numbers, for the series and for sizing the next step. */
interface StepResult {
  agents: number;
  kibPerAgent: number;
  resumeS: number;
  stormPerS: number;
  /** Load generators' RSS per agent after the storm, KiB (sizes the next step). */
  genKibPerAgent: number;
  /** Coordinator RSS per agent after the storm, KiB (same). */
  coordKibPerAgent: number;
}

/**
 * One step: a fresh coordinator, `n` workers created over REST, connected
 * from their own load generators, idle, then SIGKILL, restart and the
 * reconnect storm. `targets` applies the issue's targets (they are set for
 * 10,000 agents); `clientCost` also measures what a client handshake costs.
 */
async function fleetStep(ctx: BenchContext, r: ScenarioResult, b: FleetBounds, n: number, opts: { targets: boolean; clientCost: boolean }): Promise<StepResult | null> {
  const S = 'fleet';
  const L = `${fmt(n, 0)} agents`;
  const dir = tempDir('bw-bench-fleet-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  const gens: IpcChild[] = [];
  const tStep = nowMs();
  try {
    const info = await coord.start();
    const api = coord.api;
    const mem0 = await coord.memory();
    ctx.log(`fleet: creating ${fmt(n)} persistent workers over REST (${CREATE_IN_FLIGHT} requests in flight), coordinator on port ${coord.port}`);
    const t0 = nowMs();
    let end = phase(`${L}: create workers (REST)`, [{ role: 'coordinator', pid: coord.pid }, { role: 'bench (REST client)', pid: process.pid }]);
    const grants = await createWorkersFast(api, 'bench', n, CREATE_IN_FLIGHT);
    const createS = (nowMs() - t0) / 1000;
    r.processes.push(...end());
    const mem1 = await coord.memory();
    r.notes.push(`${L}: created ${fmt(n)} workers over REST in ${fmt(createS, 2)} s (${fmt(n / createS)}/s; ${CREATE_IN_FLIGHT} in flight; POST /api/v1/workers one worker per request: the API has no bulk create)`);

    const genCount = Math.max(MIN_GENERATORS, Math.ceil(n / AGENTS_PER_GENERATOR));
    const per = Math.ceil(n / genCount);
    for (let i = 0; i < genCount; i++) gens.push(new IpcChild('./sim-agent.js'));
    const latest: (IpcMessage | null)[] = gens.map(() => null);
    gens.forEach((g, i) => (g.onMessage = (m) => (latest[i] = m)));
    // Per generator: its answer if it gave one, else its last progress report (after a timeout).
    const sum = (msgs: (IpcMessage | null)[], key: string, progressKey = key) =>
      gens.reduce((s, _, i) => s + ((msgs[i]?.[key] as number | undefined) ?? ((latest[i]?.[progressKey] as number | undefined) ?? 0)), 0);
    const roles = () => [{ role: 'coordinator', pid: coord.pid }, ...gens.map((g) => ({ role: 'load generators', pid: g.pid }))];
    const sourceAddresses = needsSourceAddresses(n);
    ctx.log(`fleet: connecting ${fmt(n)} agents from ${genCount} processes (${CONNECTS_IN_FLIGHT} handshakes in flight each${sourceAddresses ? ', each from its own 127.0.0.x' : ''})`);
    end = phase(`${L}: connect`, roles());
    gens.forEach((g, i) => g.send({
      op: 'fleet', url: info.connectUrl, coordinatorKey: info.publicKey, agents: grants.slice(i * per, (i + 1) * per),
      concurrency: CONNECTS_IN_FLIGHT, backoffBaseMs: 100, backoffCapMs: 2000, ...(sourceAddresses ? { localAddress: `127.0.0.${10 + i}` } : {}),
    }));
    const conn = await fromAll(gens, 'connected', waitMsFor(n));
    const connUse = end();
    r.processes.push(...connUse);
    const welcomed = sum(conn.msgs, 'welcomed', 'firstWelcomed');
    const fatal = sum(conn.msgs, 'fatal');
    if (conn.timedOut || welcomed < n) {
      r.errors.push(`${L}: only ${fmt(welcomed)} connected within ${fmt(waitMsFor(n) / 1000, 0)} s (${fmt(fatal)} refused: ${JSON.stringify(latest.map((l) => l?.fatalCodes ?? {}))})`);
    }
    const stalledConnecting = sum(conn.msgs, 'stalled');
    if (stalledConnecting > 0) r.errors.push(`${L}: ${fmt(stalledConnecting)} connection attempt(s) got neither a welcome nor a close within ${CLIENT_HANDSHAKE_DEADLINE_MS / 1000} s while connecting (the coordinator's handshake timeout is ${DEFAULT_LIMITS.handshakeTimeoutMs / 1000} s); the load generators dialled again; waiting for: ${JSON.stringify(latest.map((l) => l?.stalledIn ?? {}))}`);
    if (welcomed === 0) return null;
    const handshakeFloor = { value: b.rawConnectMs + b.cryptoMs, what: 'ms (raw uWS connect + handshake crypto alone)' };
    if (!conn.timedOut) {
      const start = Math.min(...conn.msgs.map((m) => m!.t0 as number));
      const last = Math.max(...conn.msgs.map((m) => m!.t as number));
      r.figures.push(figure(S, `${L}: handshakes/s while connecting`, welcomed / ((last - start) / 1000), 'agents/s', 'higher', {
        ceiling: { value: b.idle.connectsPerS, what: 'raw ws connects/s to raw uWS' },
        note: `${fmt(welcomed)} welcomed in ${fmt((last - start) / 1000, 2)} s; bootstrap (credential burned, key stored) for each`,
      }));
    }
    const coordConn = connUse.find((u) => u.role === 'coordinator');
    if (coordConn) {
      r.figures.push(figure(S, `${L}: coordinator CPU per bootstrap handshake`, (coordConn.cpuS * 1000) / welcomed, 'ms', 'lower', {
        ceiling: handshakeFloor,
        note: `Ed25519 sign + verify, X25519, HKDF (node:crypto), credential burn (LMDB), welcome; raw uWS alone ${fmt(b.rawConnectMs, 3)} ms per connect, the crypto alone ${fmt(b.cryptoMs, 3)} ms`,
      }));
    }
    const memNow = await coord.memory();
    // Idle: heartbeats only. Also lets the handshake deadlines (10 s, dropped lazily) fall due before memory is read.
    end = phase(`${L}: idle (heartbeats)`, roles());
    await sleep(ctx.quick ? 3000 : 10_000);
    const idleUse = end();
    r.processes.push(...idleUse);
    const cu = idleUse.find((u) => u.role === 'coordinator');
    if (cu) r.notes.push(`${L}: idle, coordinator ${fmt(cu.cores * 100, 1)}% of a core (a ping every 10 s from each agent)`);
    // Memory once settled (after the idle phase and a forced GC): right after connecting it still holds handshake garbage.
    const mem2 = await coord.memory();
    let kibPerAgent = NaN;
    if (mem1 && mem2) {
      kibPerAgent = (mem2.rss - mem1.rss) / welcomed / KIB;
      r.figures.push(figure(S, `${L}: coordinator memory per connected agent`, kibPerAgent, 'KiB/agent', 'lower', {
        ceiling: { value: b.idle.kibPerConnection, what: 'KiB per raw uWS connection' }, target: opts.targets ? { op: '<', value: 8 } : null,
        note: `RSS after GC: fresh ${fmt(mem0 ? mem0.rss / MIB : NaN, 0)} MiB, with ${fmt(n)} workers ${fmt(mem1.rss / MIB, 0)} MiB, all connected and idle ${fmt(mem2.rss / MIB, 0)} MiB ` +
          `(${fmt(memNow ? (memNow.rss - mem1.rss) / welcomed / KIB : NaN, 2)} KiB/agent right after connecting); JS heap +${fmt((mem2.heapUsed - mem1.heapUsed) / welcomed / KIB, 2)} KiB/agent; ` +
          `${fmt(mem0 ? (mem2.rss - mem0.rss) / welcomed / KIB : NaN, 2)} KiB/agent counting the worker records too`,
      }));
    }

    // Restart: SIGKILL, start again on the same store and port.
    ctx.log(`fleet: SIGKILL the coordinator and restart it on port ${coord.port} (${fmt(welcomed)} agents to come back)`);
    for (const g of gens) g.send({ op: 'mark' });
    const genPhase = phase(`${L}: restart + reconnect`, gens.map((g) => ({ role: 'load generators', pid: g.pid })));
    const tKill = nowMs();
    await coord.kill9();
    await coord.start(60_000);
    const tReady = nowMs();
    const ready = coord.sample();
    const back = await fromAll(gens, 'all-back', waitMsFor(n));
    const cs = coord.sample();
    if (cs) {
      const wallS = (cs.t - tKill) / 1000;
      r.processes.push({
        role: 'coordinator', phase: `${L}: restart + reconnect`, pid: cs.pid, wallS, cpuS: cs.cpuS, cores: cs.cpuS / wallS, rssStartMiB: 0, rssEndMiB: cs.rssKiB / KIB,
        peakMiB: cs.hwmKiB / KIB, procs: 1, extra: `CPU since its start (includes opening the store: ${fmt(ready?.cpuS ?? NaN, 2)} s until it served)`,
      } satisfies ProcUsage);
    }
    const genUse = genPhase();
    r.processes.push(...genUse);
    // Per generator: since the mark when it answered, else its total so far (a timeout: an upper bound).
    const stalledStorm = sum(back.msgs, 'stalled');
    if (stalledStorm > 0) {
      r.errors.push(`${L}: after the restart ${fmt(stalledStorm)} connection attempt(s) got neither a welcome nor a close within ${CLIENT_HANDSHAKE_DEADLINE_MS / 1000} s ` +
        `(the coordinator's handshake timeout is ${DEFAULT_LIMITS.handshakeTimeoutMs / 1000} s); the load generators dialled again, so the resume time includes that wait; waiting for: ${JSON.stringify(latest.map((l) => l?.stalledIn ?? {}))}`);
    }
    let resumeS = NaN;
    let stormPerS = NaN;
    if (back.timedOut) {
      r.errors.push(`${L}: after the restart only ${fmt(sum(back.msgs, 'back'))} of ${fmt(welcomed)} agents had their welcome within ${fmt(waitMsFor(n) / 1000, 0)} s`);
    } else {
      const lastBack = Math.max(...back.msgs.map((m) => m!.t as number));
      const floorS = welcomed / b.idle.connectsPerS;
      resumeS = (lastBack - tKill) / 1000;
      stormPerS = welcomed / ((lastBack - tReady) / 1000);
      r.figures.push(
        figure(S, `${L}: restart: kill → all welcomed`, resumeS, 's', 'lower', {
          ceiling: { value: floorS, what: 's (raw ws reconnects, same count)' }, target: opts.targets ? { op: '<', value: 15 } : null,
          note: `coordinator serving again ${fmt((tReady - tKill) / 1000, 2)} s after the kill (store opened, workers loaded); agents back ${fmt((lastBack - tReady) / 1000, 2)} s after that (backoff 100 ms → 2 s, full jitter)`,
        }),
        figure(S, `${L}: restart: handshakes/s in the reconnect storm`, stormPerS, 'agents/s', 'higher', {
          ceiling: { value: b.idle.connectsPerS, what: 'raw ws connects/s to raw uWS' },
          note: `${fmt(welcomed)} key-authenticated reconnects from serving to the last welcome, ${fmt(sum(back.msgs, 'attempts'))} connection attempts since the kill ` +
            `(refused while it was down, or timed out); at most ${CONNECTS_IN_FLIGHT} attempts in flight per load generator (fast-peer.ts, ConnectGate); load generators and coordinator share the 2 cores`,
        }),
      );
      if (cs && ready) {
        const stormMs = ((cs.cpuS - ready.cpuS) * 1000) / welcomed;
        r.figures.push(figure(S, `${L}: handshakes/s per coordinator core`, 1000 / stormMs, 'agents/s', 'higher', {
          ceiling: { value: 1000 / handshakeFloor.value, what: '/s per core (raw uWS connect + handshake crypto alone)' },
          note: `coordinator CPU ${fmt(stormMs, 3)} ms per key-authenticated reconnect during the storm (Ed25519 verify of the agent, onHello's X25519 + sign, welcome); ` +
            `${fmt(cs.cpuS, 1)} CPU s in all with start-up (DESIGN.md: a restart must not cost 80 s); crypto alone onHello ${fmt(b.hsCrypto.helloMs, 3)} + verify ${fmt(b.hsCrypto.verifyMs, 3)} ms (bench process)`,
        }));
      }
    }
    const mem3 = await coord.memory();
    if (mem3) r.notes.push(`${L}: after the restart with ${fmt(welcomed)} agents back, RSS ${fmt(mem3.rss / MIB, 0)} MiB, heap ${fmt(mem3.heapUsed / MIB, 0)} MiB (after GC)`);
    const genEnd = genUse.find((u) => u.role === 'load generators');

    if (opts.clientCost) {
      for (const g of gens) await g.stop();
      gens.length = 0;
      const cost = await clientHandshakeCost(api, coord.info!, ctx.quick ? 10 : 20);
      r.notes.push(
        `client CPU per handshake (bench process, sequential): real PeerClient ${fmt(cost.realMs, 1)} ms (tweetnacl; +${fmt(cost.keygenMs, 1)} ms to generate its key), FastPeer ${fmt(cost.fastMs, 2)} ms. ` +
        `${fmt(n)} real PeerClients on this 2-core host would need ~${fmt((n * (cost.realMs + cost.keygenMs)) / 1000, 0)} CPU s just for client crypto — hence FastPeer for the fleet.`,
      );
    }
    r.notes.push(`${L}: step took ${fmt((nowMs() - tStep) / 1000, 1)} s (${genCount} load generators)`);
    return {
      agents: welcomed, kibPerAgent, resumeS, stormPerS,
      genKibPerAgent: genEnd ? (genEnd.rssEndMiB * KIB) / welcomed : NaN,
      coordKibPerAgent: mem3 ? mem3.rss / KIB / welcomed : NaN,
    };
  } catch (err) {
    r.errors.push(`${L}: ${(err as Error).message}; coordinator ${coord.child?.exitCode !== null || coord.child?.signalCode ? `exited (${coord.child?.signalCode ?? coord.child?.exitCode})` : 'running'}, log tail: ${coord.log.slice(-800)}`);
    return null;
  } finally {
    for (const g of gens) await g.stop();
    await coord.stop();
    dir.remove();
  }
}

/**
 * How many agents the next step can hold, at most `wanted`: the
 * coordinator's open-file limit (one socket per agent) and this host's free
 * memory, sized from the previous step. Returns the count and, when it is
 * less than wanted, why.
 */
function sizeStep(wanted: number, prev: StepResult): { n: number; why: string | null } {
  const limit = openFileLimit();
  const fdRoom = limit - FD_HEADROOM - FD_BASE;
  const perAgent = (prev.genKibPerAgent + prev.coordKibPerAgent) * KIB * 2;
  const memRoom = Number.isFinite(perAgent) ? (freemem() - MEMORY_HEADROOM_BYTES) / perAgent : Infinity;
  const n = Math.floor(Math.min(wanted, fdRoom, memRoom) / 500) * 500;
  if (n >= wanted) return { n: wanted, why: null };
  const why = fdRoom <= memRoom
    ? `the open-file limit is ${fmt(limit, 0)} per process here (RLIMIT_NOFILE; node raises its soft limit to the hard one, and a higher hard limit needs CAP_SYS_RESOURCE), ` +
      `and the coordinator needs one file per connected agent plus ${FD_HEADROOM} spare`
    : `free memory is ${fmt(freemem() / 2 ** 30, 1)} GiB and the last step used ~${fmt(perAgent / 2 / KIB, 1)} KiB per agent (coordinator + load generators), doubled for the storm, plus ${fmt(MEMORY_HEADROOM_BYTES / 2 ** 30, 0)} GiB spare`;
  return { n, why };
}

/** Runs the fleet scenario: 10,000 idle agents, then 50,000 if this host allows (quick: 2,000). */
export async function runFleet(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult('fleet');
  const steps = ctx.quick ? [2000] : [10_000, 50_000];
  const idle = await ctx.ceilings.idle(Math.min(steps[0]!, 5000));
  r.processes.push(...idle.usage);
  r.notes.push(`raw uWS ceiling: ${fmt(idle.connections)} idle ws connections cost the server ${fmt(idle.kibPerConnection, 2)} KiB each and connected at ${fmt(idle.connectsPerS)}/s (128 at a time)`);
  const rawServer = idle.usage.find((u) => u.role === 'uws server');
  const hsCrypto = serverCryptoMs(ctx.quick ? 200 : 500);
  const bounds: FleetBounds = {
    idle, hsCrypto, cryptoMs: hsCrypto.helloMs + hsCrypto.verifyMs, rawConnectMs: rawServer ? (rawServer.cpuS * 1000) / idle.connections : NaN,
  };
  const done: StepResult[] = [];
  for (const [i, wanted] of steps.entries()) {
    let n = wanted;
    const prev = done[done.length - 1];
    if (i > 0) {
      if (!prev) {
        r.notes.push(`${fmt(wanted, 0)} agents: not run (the previous step failed)`);
        break;
      }
      const size = sizeStep(wanted, prev);
      n = size.n;
      if (size.why && n <= prev.agents) {
        r.notes.push(`${fmt(wanted, 0)} agents: not run, and no larger step than ${fmt(prev.agents, 0)} fits: ${size.why}`);
        break;
      }
      if (size.why) r.notes.push(`${fmt(wanted, 0)} agents: not possible here, ran ${fmt(n, 0)} instead (the most that fits): ${size.why}`);
    }
    const s = await fleetStep(ctx, r, bounds, n, { targets: i === 0, clientCost: i === 0 });
    if (s) done.push(s);
  }
  const line = (name: string, unit: string, y: (s: StepResult) => number, ceiling: (s: StepResult) => number, ceilingWhat: string) => ({
    name, xLabel: 'agents', unit, ceilingWhat, points: done.map((s) => ({ x: s.agents, y: y(s), ceiling: ceiling(s) })),
  });
  r.series.push(
    line('coordinator memory per connected agent versus number of agents', 'KiB/agent', (s) => s.kibPerAgent, () => idle.kibPerConnection, 'KiB per raw uWS connection'),
    line('restart: kill → all welcomed versus number of agents', 's', (s) => s.resumeS, (s) => s.agents / idle.connectsPerS, 's of raw ws reconnects, same count'),
    line('handshakes/s in the reconnect storm versus number of agents', 'agents/s', (s) => s.stormPerS, () => idle.connectsPerS, 'raw ws connects/s to raw uWS'),
  );
  addBottlenecks(r);
  return r;
}
