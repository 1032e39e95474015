/**
 * Ceilings: what the bare building blocks do on this host in this run, so
 * every end-to-end figure can be given as a ratio to them. Raw uWS with a
 * `ws` client (windowed, acked per message), raw LMDB batched async puts of
 * ingest-sized values, msgpackr pack+unpack of log-line batches, and raw
 * uWS idle-connection memory and connect rate. Each is measured once per
 * run, on first use.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import type { LogRecord } from '../protocol/index.js';
import { REC, encode, newId } from '../protocol/index.js';
import { IpcChild, phase } from './proc.js';
import type { ProcUsage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import { fmt, mapLimit, nowMs, tempDir, withTimeout } from './util.js';

/** What every scenario gets. */
export interface BenchContext {
  quick: boolean;
  /** Progress, to stderr. */
  log: (line: string) => void;
  ceilings: Ceilings;
}

/** Bytes of one log line in the ingest scenarios. */
export const LINE_BYTES = 100;
/** Records per batch the real Outbox makes of 100-byte lines (flushBytes 256 KiB, 16 bytes counted per record). */
export const LINES_PER_BATCH = Math.ceil((256 * 1024) / (LINE_BYTES + 16));

/** An encoded batch exactly as the agent's Outbox builds it. */
export function sampleBatch(lines = LINES_PER_BATCH): { body: Buffer; lines: number } {
  const line = Buffer.alloc(LINE_BYTES, 'x');
  const recs: LogRecord[] = [];
  const t = Date.now();
  for (let i = 0; i < lines; i++) recs.push([t, REC.STDOUT, 0, line]);
  return { body: encode({ type: 'batch', job: newId(), batch: 1, recs }), lines };
}

/** Raw transport figures. */
export interface TransportCeiling {
  mbps256k: number;
  msgs256: number;
  /** Messages the server had to queue (0 = send() always wrote at once) or dropped. */
  backpressured: number;
  dropped: number;
  usage: ProcUsage[];
}

/** Raw idle-connection figures. */
export interface IdleCeiling {
  connections: number;
  kibPerConnection: number;
  connectsPerS: number;
  usage: ProcUsage[];
}

async function startUws(): Promise<{ server: IpcChild; url: string; version: string }> {
  const server = new IpcChild('./uws-server.js', ['--expose-gc']);
  const ready = await withTimeout(server.waitFor('ready'), 15_000, 'the raw uWS server');
  return { server, url: `ws://127.0.0.1:${ready.port as number}/`, version: String(ready.version) };
}

/** Sends `count` messages of `size` bytes, at most `window` unacknowledged; returns messages/s and bytes/s. */
async function windowed(url: string, size: number, count: number, window: number, capMs: number): Promise<{ msgs: number; seconds: number; bytes: number }> {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 20 });
  await withTimeout(once(ws, 'open'), 10_000, 'a raw WebSocket to open');
  const payload = randomBytes(size);
  const run = new Promise<{ msgs: number; seconds: number; bytes: number }>((resolve) => {
    let sent = 0;
    let acked = 0;
    const t0 = nowMs();
    const deadline = t0 + capMs;
    const pump = () => {
      while (sent < count && sent - acked < window && nowMs() < deadline) {
        ws.send(payload);
        sent++;
      }
    };
    ws.on('message', () => {
      acked++;
      if (acked === sent && (sent >= count || nowMs() >= deadline)) {
        const seconds = (nowMs() - t0) / 1000;
        resolve({ msgs: acked, seconds, bytes: acked * size });
      } else pump();
    });
    pump();
  });
  try {
    return await withTimeout(run, capMs + 30_000, `${count} messages of ${size} bytes`);
  } finally {
    ws.terminate();
  }
}

/** Memoised ceilings for one run. */
export class Ceilings {
  #transport: Promise<TransportCeiling> | undefined;
  #lmdb: Promise<{ mbps: number; linesPerS: number; valueBytes: number; puts: number; usage: ProcUsage[] }> | undefined;
  #msgpack: Promise<{ linesPerS: number; packLinesPerS: number; unpackLinesPerS: number; usage: ProcUsage[] }> | undefined;
  #idle: Promise<IdleCeiling> | undefined;

  constructor(readonly quick: boolean, readonly log: (l: string) => void) {}

  /** (a) uWS server, `ws` client, loopback, one ack per message, bounded window. */
  transport(): Promise<TransportCeiling> {
    return (this.#transport ??= (async () => {
      const { server, url, version } = await startUws();
      try {
        this.log(`ceiling: raw uWS ${version} (native) with a ws client, 256 KiB and 256 B messages`);
        const big = 256 * 1024;
        // Untimed warm-up of both shapes (JIT, socket buffers).
        await windowed(url, big, 256, 128, 5_000);
        await windowed(url, 256, 20_000, 4096, 5_000);
        const end1 = phase('raw uWS 256 KiB', [{ role: 'uws server', pid: server.pid }, { role: 'bench (ws client)', pid: process.pid }]);
        const a = await windowed(url, big, this.quick ? 2048 : 8192, (32 * 1024 * 1024) / big, this.quick ? 8_000 : 20_000);
        const u1 = end1();
        const end2 = phase('raw uWS 256 B', [{ role: 'uws server', pid: server.pid }, { role: 'bench (ws client)', pid: process.pid }]);
        const b = await windowed(url, 256, this.quick ? 200_000 : 600_000, 4096, this.quick ? 8_000 : 15_000);
        const u2 = end2();
        server.send({ op: 'stats' });
        const st = await withTimeout(server.waitFor('stats'), 5000, 'uWS stats');
        return { mbps256k: a.bytes / a.seconds / 1e6, msgs256: b.msgs / b.seconds, backpressured: st.backpressured as number, dropped: st.dropped as number, usage: [...u1, ...u2] };
      } finally {
        await server.stop();
      }
    })());
  }

  /** (b) LMDB, durable, batched async puts of encoded ~256 KiB batches, as the coordinator stores them. */
  lmdb(): Promise<{ mbps: number; linesPerS: number; valueBytes: number; puts: number; usage: ProcUsage[] }> {
    return (this.#lmdb ??= (async () => {
      const dir = tempDir('bw-bench-lmdb-');
      const env = open({ path: join(dir.path, 'lmdb'), maxDbs: 32, mapSize: 2 ** 36, compression: false });
      try {
        const db = env.openDB<Buffer, [string, number]>({ name: 'events', encoding: 'binary' });
        const { body, lines } = sampleBatch();
        const puts = this.quick ? 600 : 2000;
        const inFlight = Math.max(1, Math.floor((32 * 1024 * 1024) / body.length));
        this.log(`ceiling: LMDB ${puts} async puts of ${fmt(body.length / 1024, 0)} KiB (${inFlight} in flight)`);
        const job = newId();
        const end = phase('raw LMDB puts', [{ role: 'bench (LMDB)', pid: process.pid }]);
        const t0 = nowMs();
        let seq = 1;
        const pending = new Set<Promise<boolean>>();
        for (let i = 0; i < puts; i++) {
          const p = db.put([job, seq], body);
          seq += lines;
          pending.add(p);
          void p.finally(() => pending.delete(p));
          if (pending.size >= inFlight) await Promise.race(pending);
        }
        await Promise.all(pending);
        await env.flushed;
        const s = (nowMs() - t0) / 1000;
        return { mbps: (puts * body.length) / s / 1e6, linesPerS: (puts * lines) / s, valueBytes: body.length, puts, usage: end() };
      } finally {
        await env.close();
        dir.remove();
      }
    })());
  }

  /** (c) msgpackr pack + unpack of batches of 100-byte line records, with the codec's options. */
  msgpack(): Promise<{ linesPerS: number; packLinesPerS: number; unpackLinesPerS: number; usage: ProcUsage[] }> {
    return (this.#msgpack ??= (async () => {
      const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number', mapsAsObjects: true });
      const line = Buffer.alloc(LINE_BYTES, 'x');
      const total = this.quick ? 1_000_000 : 4_000_000;
      this.log(`ceiling: msgpackr pack+unpack of ${fmt(total)} lines in batches of ${LINES_PER_BATCH}`);
      const job = newId();
      let done = 0;
      let batch = 1;
      let packMs = 0;
      let unpackMs = 0;
      let end = phase('msgpackr', [{ role: 'bench (msgpackr)', pid: process.pid }]);
      for (let warm = 0; warm < 2; warm++) {
        const target = warm === 0 ? Math.min(total, 100_000) : total;
        done = 0;
        packMs = 0;
        unpackMs = 0;
        end = phase('msgpackr', [{ role: 'bench (msgpackr)', pid: process.pid }]);
        while (done < target) {
          const n = Math.min(LINES_PER_BATCH, target - done);
          const t = Date.now();
          const t0 = nowMs();
          const recs: LogRecord[] = new Array(n);
          for (let i = 0; i < n; i++) recs[i] = [t, REC.STDOUT, 0, line];
          const packed = packr.pack({ type: 'batch', job, batch: batch++, recs });
          const t1 = nowMs();
          const out = packr.unpack(packed) as { recs: unknown[] };
          unpackMs += nowMs() - t1;
          packMs += t1 - t0;
          done += out.recs.length;
        }
      }
      return { usage: end(), linesPerS: done / ((packMs + unpackMs) / 1000), packLinesPerS: done / (packMs / 1000), unpackLinesPerS: done / (unpackMs / 1000) };
    })());
  }

  /** Idle uWS connections: server memory per connection and connect rate (ws client, 128 connecting at once). */
  idle(n: number): Promise<IdleCeiling> {
    return (this.#idle ??= (async () => {
      const { server, url } = await startUws();
      const sockets: WebSocket[] = [];
      try {
        const mem = async () => {
          server.send({ op: 'mem' });
          return (await withTimeout(server.waitFor('mem'), 10_000, 'uWS memory')).rss as number;
        };
        const rss0 = await mem();
        this.log(`ceiling: ${fmt(n)} idle raw uWS connections`);
        const end = phase('raw uWS connect', [{ role: 'uws server', pid: server.pid }, { role: 'bench (ws client)', pid: process.pid }]);
        const t0 = nowMs();
        await mapLimit(Array.from({ length: n }, (_, i) => i), 128, async () => {
          const ws = new WebSocket(url, { perMessageDeflate: false });
          sockets.push(ws);
          await withTimeout(once(ws, 'open'), 20_000, 'a raw WebSocket to open');
        });
        const s = (nowMs() - t0) / 1000;
        const usage = end();
        const rss1 = await mem();
        return { connections: n, kibPerConnection: (rss1 - rss0) / n / 1024, connectsPerS: n / s, usage };
      } finally {
        for (const ws of sockets) ws.terminate();
        await server.stop();
      }
    })());
  }

  /**
   * The ingest ceiling in lines/s: the slowest of the building blocks the
   * path goes through (wire at 256 KiB messages, msgpack, LMDB), each in
   * lines of 100 bytes as the Outbox batches them.
   */
  async ingestLines(): Promise<{ linesPerS: number; what: string; parts: Record<string, number> }> {
    const t = await this.transport();
    const l = await this.lmdb();
    const m = await this.msgpack();
    const wirePerLine = sampleBatch().body.length / LINES_PER_BATCH;
    const parts = { 'uWS 256 KiB': (t.mbps256k * 1e6) / wirePerLine, 'LMDB puts': l.linesPerS, msgpackr: m.linesPerS };
    const [what, linesPerS] = Object.entries(parts).sort((a, b) => a[1] - b[1])[0]!;
    return { linesPerS, what, parts };
  }
}

/** The `ceiling` scenario: the building blocks themselves. */
export async function runCeilings(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult('ceiling');
  const c = ctx.ceilings;
  const t = await c.transport();
  const l = await c.lmdb();
  const m = await c.msgpack();
  const ing = await c.ingestLines();
  const S = 'ceiling';
  r.figures.push(
    figure(S, 'raw uWS ← ws, 256 KiB msgs, acked', t.mbps256k, 'MB/s', 'higher', { note: 'DESIGN.md reference: ~2,200 MB/s at 64 KiB (another day)' }),
    figure(S, 'raw uWS ← ws, 256 B msgs, acked', t.msgs256, 'msgs/s', 'higher', { note: 'DESIGN.md reference: ~150,000 msgs/s' }),
    figure(S, `raw LMDB async puts, ${fmt(l.valueBytes / 1024, 0)} KiB values`, l.mbps, 'MB/s', 'higher', { note: `= ${fmt(l.linesPerS)} lines/s of 100 B; DESIGN.md reference: ~280 MB/s at 12.6 KB values` }),
    figure(S, 'msgpackr pack+unpack, 100 B line records', m.linesPerS, 'lines/s', 'higher', {
      note: `pack alone ${fmt(m.packLinesPerS)}/s (the agent's side), unpack alone ${fmt(m.unpackLinesPerS)}/s (the coordinator's side); DESIGN.md reference: ~2,000,000 lines/s (batches of 100)`,
    }),
    figure(S, 'ingest ceiling (slowest block)', ing.linesPerS, 'lines/s', 'higher', {
      note: `set by ${ing.what}; ${Object.entries(ing.parts).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')} lines/s`,
    }),
  );
  if (t.dropped > 0) r.errors.push(`the raw uWS server dropped ${t.dropped} acks (send() returned 2)`);
  r.notes.push(`raw uWS server send() queued ${t.backpressured} acks under backpressure and dropped ${t.dropped}`);
  r.processes.push(...t.usage, ...l.usage, ...m.usage);
  addBottlenecks(r);
  return r;
}
