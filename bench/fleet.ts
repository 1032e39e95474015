/**
 * The `fleet` scenario: thousands of idle agents held by one coordinator.
 * Persistent workers are created over REST, then connected from two
 * load-generator processes (FastPeer: the real wire, node:crypto on the
 * client side — see fast-peer.ts). Reports the coordinator's memory per
 * connected agent, the handshake rate, idle CPU, and after a SIGKILL and a
 * restart on the same store and port, the time until every agent has its
 * welcome again. Finally it measures what the real PeerClient's handshake
 * costs a client, to show why the fleet does not use it.
 */
import { once } from 'node:events';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Message } from '../protocol/index.js';
import {
  PROTOCOL_VERSION, PeerClient, ServerHandshake, ed25519PrivateKey, encode, ephemeralFast, generateSigningKeyPair, randomNonce, signFast, verifyFast,
} from '../protocol/index.js';
import type { BenchContext } from './ceilings.js';
import { FastPeer, fastKey } from './fast-peer.js';
import { CoordinatorChild } from './fixture.js';
import type { CoordinatorInfo } from './fixture.js';
import { IpcChild, phase, sampleProc } from './proc.js';
import type { IpcMessage, ProcUsage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api } from './util.js';
import { createWorkers, fmt, median, nowMs, sleep, tempDir, withTimeout } from './util.js';

const KIB = 1024;

/** Waits for `op` from every child; on timeout says how far each got instead of throwing. */
async function fromAll(gens: IpcChild[], op: string, timeoutMs: number): Promise<{ msgs: (IpcMessage | null)[]; timedOut: boolean }> {
  const msgs = await Promise.all(gens.map((g) => g.expect(op, timeoutMs, op).catch(() => null)));
  return { msgs, timedOut: msgs.some((m) => m === null) };
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

/** Runs the fleet scenario: 10,000 idle agents (quick: 2,000). */
export async function runFleet(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult('fleet');
  const S = 'fleet';
  const n = ctx.quick ? 2000 : 10_000;
  const idle = await ctx.ceilings.idle(Math.min(n, 5000));
  r.processes.push(...idle.usage);
  r.notes.push(`raw uWS ceiling: ${fmt(idle.connections)} idle ws connections cost the server ${fmt(idle.kibPerConnection, 2)} KiB each and connected at ${fmt(idle.connectsPerS)}/s (128 at a time)`);
  const dir = tempDir('bw-bench-fleet-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  const gens: IpcChild[] = [];
  try {
    const info = await coord.start();
    const api = coord.api;
    const mem0 = await coord.memory();
    ctx.log(`fleet: creating ${fmt(n)} persistent workers over REST (32 requests in flight), coordinator on port ${coord.port}`);
    let t0 = nowMs();
    const grants = await createWorkers(api, 'bench', n, 32);
    const createS = (nowMs() - t0) / 1000;
    const mem1 = await coord.memory();
    r.notes.push(`created ${fmt(n)} workers over REST in ${fmt(createS, 2)} s (${fmt(n / createS)}/s)`);

    // Connect, from two load-generator processes.
    for (let i = 0; i < 2; i++) gens.push(new IpcChild('./sim-agent.js'));
    const latest: (IpcMessage | null)[] = [null, null];
    gens.forEach((g, i) => (g.onMessage = (m) => (latest[i] = m)));
    const roles = () => [{ role: 'coordinator', pid: coord.pid }, ...gens.map((g) => ({ role: 'load generators', pid: g.pid }))];
    ctx.log(`fleet: connecting ${fmt(n)} agents from 2 processes (64 handshakes in flight each)`);
    let end = phase('connect', roles());
    const half = Math.ceil(n / 2);
    gens.forEach((g, i) => g.send({
      op: 'fleet', url: info.connectUrl, coordinatorKey: info.publicKey, agents: grants.slice(i * half, (i + 1) * half),
      concurrency: 64, backoffBaseMs: 100, backoffCapMs: 2000,
    }));
    const conn = await fromAll(gens, 'connected', 120_000);
    const connUse = end();
    r.processes.push(...connUse);
    const welcomed = conn.msgs.reduce((s, m, i) => s + ((m?.welcomed as number | undefined) ?? ((latest[i]?.firstWelcomed as number | undefined) ?? 0)), 0);
    const fatal = conn.msgs.reduce((s, m, i) => s + ((m?.fatal as number | undefined) ?? ((latest[i]?.fatal as number | undefined) ?? 0)), 0);
    if (conn.timedOut || welcomed < n) r.errors.push(`only ${fmt(welcomed)} of ${fmt(n)} agents connected within 120 s (${fmt(fatal)} refused: ${JSON.stringify(latest.map((l) => l?.fatalCodes ?? {}))})`);
    if (!conn.timedOut) {
      const start = Math.min(...conn.msgs.map((m) => m!.t0 as number));
      const last = Math.max(...conn.msgs.map((m) => m!.t as number));
      r.figures.push(figure(S, `handshakes while connecting ${fmt(n)}`, welcomed / ((last - start) / 1000), 'agents/s', 'higher', {
        ceiling: { value: idle.connectsPerS, what: 'raw ws connects/s to raw uWS' },
        note: `${fmt(welcomed)} welcomed in ${fmt((last - start) / 1000, 2)} s; bootstrap (credential burned, key stored) for each`,
      }));
    }
    const hsCrypto = serverCryptoMs(ctx.quick ? 200 : 500);
    const coordConn = connUse.find((u) => u.role === 'coordinator');
    const rawServer = idle.usage.find((u) => u.role === 'uws server');
    if (coordConn && welcomed > 0) {
      r.figures.push(figure(S, 'coordinator CPU per bootstrap handshake', (coordConn.cpuS * 1000) / welcomed, 'ms', 'lower', {
        ceiling: rawServer ? { value: (rawServer.cpuS * 1000) / idle.connections, what: 'ms raw uWS server CPU per connect' } : null,
        note: `Ed25519 sign + verify, X25519, HKDF (node:crypto), credential burn (LMDB), welcome; the crypto alone costs ${fmt(hsCrypto.helloMs + hsCrypto.verifyMs, 3)} ms`,
      }));
    }
    const memNow = await coord.memory();
    // Idle: heartbeats only.
    end = phase('idle (heartbeats)', roles());
    await sleep(ctx.quick ? 3000 : 10_000);
    const idleUse = end();
    r.processes.push(...idleUse);
    const cu = idleUse.find((u) => u.role === 'coordinator');
    if (cu) r.notes.push(`idle with ${fmt(welcomed)} agents: coordinator ${fmt(cu.cores * 100, 1)}% of a core (pings every 10 s each)`);
    // Memory once settled (after the idle phase and a forced GC): right after connecting it still holds handshake garbage.
    const mem2 = await coord.memory();
    if (mem1 && mem2) {
      r.figures.push(figure(S, 'coordinator memory per connected agent', (mem2.rss - mem1.rss) / welcomed / KIB, 'KiB/agent', 'lower', {
        ceiling: { value: idle.kibPerConnection, what: 'KiB per raw uWS connection' }, target: { op: '<', value: 8 },
        note: `RSS after GC: fresh ${fmt(mem0 ? mem0.rss / 2 ** 20 : NaN, 0)} MiB, with ${fmt(n)} workers ${fmt(mem1.rss / 2 ** 20, 0)} MiB, all connected and idle ${fmt(mem2.rss / 2 ** 20, 0)} MiB ` +
          `(${fmt(memNow ? (memNow.rss - mem1.rss) / welcomed / KIB : NaN, 2)} KiB/agent right after connecting); JS heap +${fmt((mem2.heapUsed - mem1.heapUsed) / welcomed / KIB, 2)} KiB/agent; ` +
          `${fmt(mem0 ? (mem2.rss - mem0.rss) / welcomed / KIB : NaN, 2)} KiB/agent counting the worker records too`,
      }));
    }

    // Restart: SIGKILL, start again on the same store and port.
    ctx.log(`fleet: SIGKILL the coordinator and restart it on port ${coord.port}`);
    for (const g of gens) g.send({ op: 'mark' });
    const genPhase = phase('restart + reconnect', gens.map((g) => ({ role: 'load generators', pid: g.pid })));
    const tKill = nowMs();
    await coord.kill9();
    await coord.start(60_000);
    const tReady = nowMs();
    const back = await fromAll(gens, 'all-back', 120_000);

    const cs = coord.pid ? sampleProc(coord.pid) : undefined;
    if (cs) {
      const wallS = (cs.t - tKill) / 1000;
      const u: ProcUsage = { role: 'coordinator', phase: 'restart + reconnect', pid: cs.pid, wallS, cpuS: cs.cpuS, cores: cs.cpuS / wallS, rssStartMiB: 0, rssEndMiB: cs.rssKiB / KIB, peakMiB: cs.hwmKiB / KIB, procs: 1, extra: 'CPU since its start (includes opening the store)' };
      r.processes.push(u);
    }
    r.processes.push(...genPhase());
    if (cs && !back.timedOut && welcomed > 0) {
      r.figures.push(figure(S, 'coordinator CPU per reconnect (incl. start-up)', (cs.cpuS * 1000) / welcomed, 'ms', 'lower', {
        ceiling: rawServer ? { value: (rawServer.cpuS * 1000) / idle.connections, what: 'ms raw uWS server CPU per connect' } : null,
        note: `${fmt(cs.cpuS, 1)} CPU s in all for ${fmt(welcomed)} key-authenticated reconnects (DESIGN.md: must not cost 80 s); ` +
          `of which handshake crypto alone ${fmt(hsCrypto.helloMs + hsCrypto.verifyMs, 3)} ms (onHello ${fmt(hsCrypto.helloMs, 3)} + verify ${fmt(hsCrypto.verifyMs, 3)}, measured in the bench process)`,
      }));
    }
    if (back.timedOut) {
      const got = latest.reduce((s, l) => s + ((l?.back as number | undefined) ?? 0), 0);
      r.errors.push(`after the restart only ${fmt(got)} of ${fmt(welcomed)} agents had their welcome within 120 s`);
    } else {
      const lastBack = Math.max(...back.msgs.map((m) => m!.t as number));
      const floorS = welcomed / idle.connectsPerS;
      r.figures.push(
        figure(S, `restart: kill → all ${fmt(welcomed)} welcomed`, (lastBack - tKill) / 1000, 's', 'lower', {
          ceiling: { value: floorS, what: 's (raw ws reconnects, same count)' }, target: { op: '<', value: 15 },
          note: `coordinator serving again ${fmt((tReady - tKill) / 1000, 2)} s after the kill (store opened, workers loaded); agents back ${fmt((lastBack - tReady) / 1000, 2)} s after that (backoff 100 ms → 2 s, full jitter)`,
        }),
        figure(S, 'restart: serving → all welcomed', (lastBack - tReady) / 1000, 's', 'lower', { ceiling: { value: floorS, what: 's (same floor)' } }),
      );
    }
    const mem3 = await coord.memory();
    if (mem3) r.notes.push(`after the restart with ${fmt(welcomed)} agents back: RSS ${fmt(mem3.rss / 2 ** 20, 0)} MiB, heap ${fmt(mem3.heapUsed / 2 ** 20, 0)} MiB (after GC)`);

    // What the real client costs per handshake.
    for (const g of gens) await g.stop();
    gens.length = 0;
    const cost = await clientHandshakeCost(api, coord.info!, ctx.quick ? 10 : 20);
    r.notes.push(
      `client CPU per handshake (bench process, sequential): real PeerClient ${fmt(cost.realMs, 1)} ms (tweetnacl; +${fmt(cost.keygenMs, 1)} ms to generate its key), FastPeer ${fmt(cost.fastMs, 2)} ms. ` +
      `${fmt(n)} real PeerClients on this 2-core host would need ~${fmt((n * (cost.realMs + cost.keygenMs)) / 1000, 0)} CPU s just for client crypto — hence FastPeer for the fleet.`,
    );
  } catch (err) {
    r.errors.push(`${(err as Error).message}; coordinator ${coord.child?.exitCode !== null || coord.child?.signalCode ? `exited (${coord.child?.signalCode ?? coord.child?.exitCode})` : 'running'}, log tail: ${coord.log.slice(-800)}`);
  } finally {
    for (const g of gens) await g.stop();
    await coord.stop();
    dir.remove();
  }
  addBottlenecks(r);
  return r;
}
