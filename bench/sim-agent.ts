/**
 * A load-generator process holding many simulated agents, driven by the
 * bench over IPC. Two modes:
 *
 * - `ingest`: real agents as far as the wire goes — PeerClient (16
 *   handshakes in flight), bootstrap with an Ed25519 key, signed
 *   assignments checked, and the real Outbox (batching, ack window, pause/resume, resend after a
 *   reconnect). On `go` each agent streams its share of 100-byte lines as
 *   fast as the Outbox lets it, then a TASK exit and a JOB completed
 *   record, and waits for `drained()`.
 * - `fleet`: thousands of idle agents as FastPeer connections (see
 *   fast-peer.ts for why), with the real backoff, at most `concurrency`
 *   attempts in flight (ConnectGate), dialling from `localAddress` when
 *   given; reports welcomes.
 *
 * Persistent workers take job after job: each new assignment starts a new
 * round, so the bench can run an untimed warm-up job first.
 *
 * It also times process spawns for the dispatch floors (`{op:'spawn'}`),
 * from a process as small as an agent.
 *
 * Messages in: `{op:'ingest', ...}`, `{op:'go', lines}`, `{op:'fleet', ...}`,
 * `{op:'mark'}`, `{op:'spawn', ...}`, `{op:'exit'}`. Out: `ready`, `assigned`, `ingest-done`,
 * `connected`, `all-back`, `progress`, `error`.
 */
import { Outbox } from '../agent/outbox.js';
import type { JobAssignment, Message } from '../protocol/index.js';
import { DEFAULT_LIMITS, PeerClient, REC, decodeTrusted, verifyAssignment } from '../protocol/index.js';
import { ConnectGate, FastPeer, fastKey } from './fast-peer.js';
import type { WorkerGrant } from './util.js';
import { mapLimit, nowMs, timeSpawn } from './util.js';

const send = (m: Record<string, unknown>) => process.send?.(m);
const LINE = Buffer.alloc(100, 'x');
// Whole Outbox batches per turn (it flushes at 256 KiB = 2,260 records of 100 B), so batches are full-sized.
const PUMP_BUDGET = 4 * Math.ceil((256 * 1024) / (100 + 16));

interface IngestAgent {
  grant: WorkerGrant;
  lines: number;
  client: PeerClient;
  bootstrapped: boolean;
  welcomed: boolean;
  job: string | null;
  outbox: Outbox | null;
  sent: number;
  scheduled: boolean;
  finishing: boolean;
  start: number;
  end: number;
  reconnects: number;
  /** When each batch of the current job was first sent (index = batch - 1). */
  sentAt: number[];
  acked: number;
  ackMs: number[];
  pausedAt: number;
  pausedMs: number;
  /** True while Outbox.resume() resends after a reconnect (not first sends). */
  resending: boolean;
}

let ingestAgents: IngestAgent[] = [];
let fleet: FastPeer[] = [];
const logs: string[] = [];
const log = (l: string) => {
  if (logs.length < 50) logs.push(l);
};

let assignedThisRound = 0;

/**
 * Handshakes in flight per process. The real client spends ~30 ms of CPU
 * per handshake in tweetnacl: started all at once, 500 agents in one
 * process would queue ~15 s of crypto and the last ones would overrun the
 * coordinator's 10 s handshake timeout.
 */
const INGEST_CONNECTS_IN_FLIGHT = 16;

function startIngest(m: { url: string; coordinatorKey: string; agents: WorkerGrant[] }): void {
  const key = new Uint8Array(Buffer.from(m.coordinatorKey, 'base64'));
  let welcomed = 0;
  let next = 0;
  let inflight = 0;
  const launch = () => {
    while (inflight < INGEST_CONNECTS_IN_FLIGHT && next < ingestAgents.length) {
      inflight++;
      ingestAgents[next++]!.client.start();
    }
  };
  ingestAgents = m.agents.map((g) => {
    // The same Ed25519 seed and public key generateSigningKeyPair() makes, from node:crypto:
    // tweetnacl takes ~5 ms per key, 5 CPU s for 1,000 agents before the first connects.
    const kp = fastKey();
    const a: IngestAgent = {
      grant: g, lines: 0, bootstrapped: false, welcomed: false, job: null, outbox: null, sent: 0, scheduled: false, finishing: false,
      start: 0, end: 0, reconnects: 0, sentAt: [], acked: 0, ackMs: [], pausedAt: 0, pausedMs: 0, resending: false,
      client: new PeerClient({
        url: m.url, coordinatorKey: key, role: 'agent', backoffBaseMs: 100, backoffCapMs: 2000, log,
        auth: () => (a.bootstrapped
          ? { method: 'key', worker: g.worker, seed: kp.seed }
          : { method: 'bootstrap', worker: g.worker, credential: g.credential, seed: kp.seed, publicKey: kp.publicKey }),
      }),
    };
    a.client.on('open', (w: Message) => {
      a.bootstrapped = true;
      if (!a.welcomed) {
        a.welcomed = true;
        inflight--;
        launch();
        if (++welcomed === ingestAgents.length) send({ op: 'ready', agents: welcomed });
      }
      // After a reconnect mid-stream: resend what the coordinator has not stored.
      if (w.type === 'welcome' && a.outbox && w.job?.id === a.job) {
        a.resending = true;
        a.outbox.resume(w.job.nextBatch);
        a.resending = false;
      }
    });
    a.client.on('disconnected', (why) => {
      a.reconnects++;
      log(`agent ${g.worker} disconnected: ${why}`);
    });
    a.client.on('fatal', (err) => send({ op: 'error', message: `agent ${g.worker} refused: ${err.code}: ${err.message}` }));
    a.client.on('message', (msg: Message) => {
      if (msg.type === 'assign') {
        verifyAssignment(key, msg.payload, msg.sig);
        const job = decodeTrusted(msg.payload) as JobAssignment;
        if (a.job === job.id) return;
        // A new job (persistent worker): start a fresh round for this agent.
        Object.assign(a, { job: job.id, outbox: null, sent: 0, lines: 0, scheduled: false, finishing: false, start: 0, end: 0, sentAt: [], acked: 0, ackMs: [], pausedAt: 0, pausedMs: 0 });
        if (++assignedThisRound === ingestAgents.length) {
          assignedThisRound = 0;
          send({ op: 'assigned', agents: ingestAgents.length });
        }
      } else if (msg.type === 'ack' && a.outbox && msg.job === a.job) {
        const t = nowMs();
        for (let b = a.acked + 1; b <= msg.batch; b++) a.ackMs.push(t - (a.sentAt[b - 1] ?? t));
        a.acked = Math.max(a.acked, msg.batch);
        a.outbox.ack(msg.batch);
      }
    });
    return a;
  });
  launch();
}

function schedule(a: IngestAgent): void {
  if (a.scheduled || a.finishing) return;
  a.scheduled = true;
  setImmediate(() => pump(a));
}

function pump(a: IngestAgent): void {
  a.scheduled = false;
  const out = a.outbox!;
  let budget = PUMP_BUDGET;
  while (a.sent < a.lines && !out.paused && budget-- > 0) {
    out.push([Date.now(), REC.STDOUT, 0, LINE]);
    a.sent++;
  }
  if (a.sent < a.lines) {
    if (!out.paused) schedule(a);
    return;
  }
  if (a.finishing) return;
  a.finishing = true;
  const t = Date.now();
  out.push([t, REC.TASK, 0, { event: 'exit', code: 0, signal: null }]);
  out.push([t, REC.JOB, 0, { result: 'completed' }]);
  void out.drained().then(() => {
    a.end = nowMs();
    if (ingestAgents.every((x) => x.end > 0)) {
      send({
        op: 'ingest-done', logs,
        results: ingestAgents.map((x) => ({
          worker: x.grant.worker, job: x.job, lines: x.sent, records: 2, start: x.start, end: x.end, reconnects: x.reconnects,
          batches: x.sentAt.length, pausedMs: x.pausedMs, ackMs: x.ackMs,
        })),
      });
    }
  });
}

function go(lines: number[]): void {
  for (const [i, a] of ingestAgents.entries()) {
    a.lines = lines[i] ?? 0;
    if (!a.job) {
      send({ op: 'error', message: `agent ${a.grant.worker} has no job` });
      return;
    }
    // The sink notes when each batch first goes out, to time its acknowledgement.
    const sink = {
      sendEncoded: (body: Uint8Array) => {
        if (!a.resending) a.sentAt.push(nowMs());
        return a.client.sendEncoded(body);
      },
    };
    a.outbox = new Outbox(a.job, sink, {
      maxUnackedBytes: DEFAULT_LIMITS.maxUnackedBytes,
      onPause: () => (a.pausedAt = nowMs()),
      onResume: () => {
        a.pausedMs += nowMs() - a.pausedAt;
        schedule(a);
      },
    });
  }
  for (const a of ingestAgents) {
    a.start = nowMs();
    schedule(a);
  }
}

let markAt = 0;
let backSinceMark = new Set<FastPeer>();
/** Connection attempts (and stalled ones) made before the mark, so `all-back` can say how many the storm took. */
let attemptsAtMark = 0;
let stalledAtMark = 0;

function startFleet(m: { url: string; coordinatorKey: string; agents: WorkerGrant[]; concurrency: number; backoffBaseMs: number; backoffCapMs: number; localAddress?: string }): void {
  const key = new Uint8Array(Buffer.from(m.coordinatorKey, 'base64'));
  let t0 = 0;
  let firstWelcomed = 0;
  let fatal = 0;
  const fatalCodes: Record<string, number> = {};
  // One gate for first connects and reconnect storms alike (see ConnectGate for why).
  const gate = new ConnectGate(m.concurrency);
  fleet = m.agents.map((g) => new FastPeer({
    url: m.url, coordinatorKey: key, worker: g.worker, credential: g.credential, key: fastKey(), gate,
    backoffBaseMs: m.backoffBaseMs, backoffCapMs: m.backoffCapMs, ...(m.localAddress ? { localAddress: m.localAddress } : {}),
    onWelcome: (p) => {
      if (p.welcomes === 1) {
        firstWelcomed++;
        if (firstWelcomed + fatal === fleet.length) send({ op: 'connected', t0, t: nowMs(), welcomed: firstWelcomed, fatal, stalled: fleet.reduce((n, x) => n + x.stalled, 0) });
      }
      if (markAt > 0) {
        backSinceMark.add(p);
        if (backSinceMark.size + fatal === fleet.length) {
          send({
            op: 'all-back', t: nowMs(), back: backSinceMark.size, attempts: fleet.reduce((n, x) => n + x.attempts, 0) - attemptsAtMark,
            stalled: fleet.reduce((n, x) => n + x.stalled, 0) - stalledAtMark,
          });
        }
      }
    },
    onFatal: (_p, code) => {
      fatal++;
      fatalCodes[code] = (fatalCodes[code] ?? 0) + 1;
    },
  }));
  // Timed from here: the keys above (~0.3 ms each) are made before any agent dials.
  t0 = nowMs();
  for (const p of fleet) p.start();
  // One timer for the whole fleet: each agent pings once per heartbeat period, spread over 20 slices.
  let tick = 0;
  setInterval(() => {
    const slice = tick++ % 20;
    for (let i = slice; i < fleet.length; i += 20) fleet[i]!.ping();
  }, (fleet[0]?.heartbeatMs ?? 10_000) / 20).unref();
  setInterval(() => {
    const open = fleet.reduce((n, p) => n + (p.open ? 1 : 0), 0);
    const stalled = fleet.reduce((n, p) => n + p.stalled, 0);
    const stalledIn: Record<string, number> = {};
    for (const p of fleet) for (const w of p.stalledIn) stalledIn[w] = (stalledIn[w] ?? 0) + 1;
    send({ op: 'progress', firstWelcomed, open, back: backSinceMark.size, fatal, fatalCodes, stalled, stalledIn });
  }, 500).unref();
}

process.on('message', (m: { op: string } & Record<string, any>) => {
  try {
    switch (m.op) {
      case 'ingest':
        startIngest(m as never);
        return;
      case 'go':
        go(m.lines as number[]);
        return;
      case 'fleet':
        startFleet(m as never);
        return;
      case 'spawn': {
        // Spawn floors, from this small process (as an agent spawns its tasks).
        const t0 = nowMs();
        void mapLimit(Array.from({ length: m.count as number }, (_, i) => i), m.concurrency as number, () => timeSpawn(m.cmd as string, m.args as string[], m.toExit as boolean))
          .then((ms) => send({ op: 'spawn', ms, seconds: (nowMs() - t0) / 1000 }), (err: Error) => send({ op: 'error', message: err.message }));
        return;
      }
      case 'mark':
        markAt = nowMs();
        backSinceMark = new Set();
        attemptsAtMark = fleet.reduce((n, x) => n + x.attempts, 0);
        stalledAtMark = fleet.reduce((n, x) => n + x.stalled, 0);
        return;
      case 'exit':
        for (const a of ingestAgents) a.client.close();
        for (const p of fleet) p.close();
        setTimeout(() => process.exit(0), 100);
        return;
    }
  } catch (err) {
    send({ op: 'error', message: (err as Error).stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
