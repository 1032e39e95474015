/**
 * The bare building blocks of an upload, in a small process of their own,
 * for the `artifacts` scenario's ceilings. The first IPC message says
 * which part this process plays:
 *
 * - `{op:'serve'}`: a raw uWebSockets.js server (no handshake, MAC, msgpack
 *   or store). After `{op:'expect', path, size}` it takes binary messages
 *   as one upload: copies each (uWS neuters it on return, as the
 *   coordinator copies), hashes it (SHA-256) in arrival order, writes it at
 *   its offset (async, in order), answers with the 8-byte written offset
 *   once written (checking what `send` returns), and after the last byte
 *   fdatasyncs and answers with the 32-byte digest. Sends `{op:'ready', port,
 *   version}` once listening and `{op:'received', ...}` after the fsync.
 * - `{op:'send', url, file, bytes?, chunkBytes, windowBytes, highWaterBytes, hash}`:
 *   a `ws` client (bufferutil loads if installed) sending `file` (or its
 *   first `bytes`) as
 *   `chunkBytes` messages, read by position into fresh buffers and hashed
 *   as the agent does, with at most `windowBytes` unacknowledged; answers
 *   `{op:'sent', ms, bytes, sha256, serverSha256, bufferutil}`, timed from
 *   the first read to the server's digest.
 * - `{op:'write', path, size, chunkBytes}`: no network: hashes and writes
 *   `size` bytes (one write in flight while the next chunk is hashed), then
 *   fdatasyncs; answers `{op:'written', ms}`.
 * - `{op:'small', dir, count, bytes, capMs}`: per file, what the
 *   coordinator's commit does on disk (write, fdatasync, close, hard link
 *   into a blob directory, fsync of that directory, unlink of the part
 *   file), one file after another; answers `{op:'stored', files, ms}`.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as U from '@trufflesuite/uws-js-unofficial';
import WebSocket from 'ws';
import { nowMs } from './util.js';

function send(m: Record<string, unknown>): void {
  process.send?.(m);
}
function fail(err: unknown): void {
  send({ op: 'error', message: (err as Error).stack ?? String(err) });
}

async function writeAll(fh: FileHandle, data: Uint8Array, at: number): Promise<void> {
  for (let done = 0; done < data.length; ) done += (await fh.write(data, done, data.length - done, at + done)).bytesWritten;
}

/** The one upload the server takes. */
interface Sink {
  fh: FileHandle;
  size: number;
  received: number;
  hash: ReturnType<typeof createHash>;
  chain: Promise<void>;
  firstAt: number;
  lastAt: number;
  dropped: number;
}

function serve(): void {
  // The addon itself, as the coordinator loads it, so a failure to load shows instead of a JS imitation.
  const require = createRequire(import.meta.url);
  const pkgFile = require.resolve('@trufflesuite/uws-js-unofficial/package.json');
  const version = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { version: string }).version;
  const uws = require(join(dirname(pkgFile), 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`)) as typeof U;
  let sink: Sink | null = null;
  const app = uws.App().ws<{ closed: boolean }>('/*', {
    compression: uws.DISABLED,
    maxPayloadLength: 8 * 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    idleTimeout: 0,
    upgrade: (res, req, ctx) => {
      res.upgrade({ closed: false }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), ctx);
    },
    message: (ws, ab) => {
      const s = sink;
      if (!s) return ws.end(1011, 'no upload expected');
      const data = Buffer.from(new Uint8Array(ab));
      if (s.received === 0) s.firstAt = nowMs();
      const at = s.received;
      s.received += data.length;
      s.lastAt = nowMs();
      s.hash.update(data);
      const reply = (b: Uint8Array) => {
        if (!ws.getUserData().closed && ws.send(b, true, false) === 2) s.dropped++;
      };
      s.chain = s.chain.then(async () => {
        await writeAll(s.fh, data, at);
        const ack = Buffer.allocUnsafe(8);
        ack.writeBigUInt64BE(BigInt(at + data.length));
        reply(ack);
      });
      if (s.received < s.size) return;
      s.chain = s.chain.then(async () => {
        const lastWrite = nowMs();
        await s.fh.datasync();
        await s.fh.close();
        const digest = s.hash.digest();
        reply(digest);
        sink = null;
        send({ op: 'received', bytes: s.received, firstAt: s.firstAt, lastAt: s.lastAt, lastWrite, syncedAt: nowMs(), sha256: digest.toString('hex'), dropped: s.dropped });
      }).catch(fail);
    },
    close: (ws) => {
      ws.getUserData().closed = true;
    },
  });
  app.listen('127.0.0.1', 0, (ls) => {
    if (!ls) return fail(new Error('could not listen'));
    send({ op: 'ready', port: uws.us_socket_local_port(ls as unknown as U.us_socket), version });
  });
  process.on('message', (m: { op: string } & Record<string, any>) => {
    if (m.op !== 'expect') return;
    open(m.path as string, 'w', 0o600).then((fh) => {
      sink = { fh, size: m.size as number, received: 0, hash: createHash('sha256'), chain: Promise.resolve(), firstAt: 0, lastAt: 0, dropped: 0 };
      send({ op: 'expecting' });
    }, fail);
  });
}

async function sendFile(m: Record<string, any>): Promise<void> {
  const chunk = m.chunkBytes as number;
  const window = m.windowBytes as number;
  const highWater = m.highWaterBytes as number;
  const ws = new WebSocket(m.url as string, { perMessageDeflate: false, maxPayload: 1 << 20 });
  await once(ws, 'open');
  const fh = await open(m.file as string, 'r');
  const size = Math.min((await fh.stat()).size, (m.bytes as number | undefined) ?? Infinity);
  const hash = createHash('sha256');
  let acked = 0;
  let serverSha: Buffer | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const next = (ms?: number) => new Promise<void>((resolve) => {
    const t = ms === undefined ? null : setTimeout(resolve, ms);
    wake = () => {
      if (t) clearTimeout(t);
      resolve();
    };
  });
  ws.on('message', (b: Buffer) => {
    if (b.length === 8) acked = Math.max(acked, Number(b.readBigUInt64BE(0)));
    else if (b.length === 32) serverSha = b;
    notify();
  });
  ws.on('close', notify);
  const t0 = nowMs();
  let pos = 0;
  while (pos < size) {
    // The agent's rules: one chunk always allowed; otherwise wait for acks, or for the socket to drain.
    for (;;) {
      const windowFull = pos > acked && pos - acked + chunk > window;
      const backedUp = ws.bufferedAmount > highWater;
      if (!windowFull && !backedUp) break;
      if (ws.readyState !== WebSocket.OPEN) throw new Error('the raw server closed the connection');
      await next(backedUp ? 20 : undefined);
    }
    const len = Math.min(chunk, size - pos);
    const buf = Buffer.allocUnsafe(len);
    for (let got = 0; got < len; ) got += (await fh.read(buf, got, len - got, pos + got)).bytesRead;
    if (m.hash) hash.update(buf);
    ws.send(buf, { binary: true });
    pos += len;
  }
  while (serverSha === null) {
    if (ws.readyState !== WebSocket.OPEN) throw new Error('the raw server closed the connection before its digest');
    await next();
  }
  const ms = nowMs() - t0;
  await fh.close();
  ws.terminate();
  send({
    op: 'sent', ms, bytes: size, sha256: m.hash ? hash.digest('hex') : null, serverSha256: (serverSha as Buffer).toString('hex'),
    bufferutil: bufferutilKind(),
  });
}

/** Whether `ws` masks with bufferutil's native code, its JS fallback, or its own JS. */
function bufferutilKind(): 'native' | 'fallback' | 'absent' {
  try {
    const b = createRequire(import.meta.url)('bufferutil') as { mask: () => void };
    return /native code/.test(String(b.mask)) ? 'native' : 'fallback';
  } catch {
    return 'absent';
  }
}

async function writeLocal(m: Record<string, any>): Promise<void> {
  const chunk = m.chunkBytes as number;
  const size = m.size as number;
  // A few distinct random chunks, reused: neither the disk nor SHA-256 cares, and no time goes to making bytes.
  const pool = Array.from({ length: 8 }, () => randomFillSync(Buffer.allocUnsafe(chunk)));
  const fh = await open(m.path as string, 'w', 0o600);
  const hash = createHash('sha256');
  const t0 = nowMs();
  let prev: Promise<void> = Promise.resolve();
  for (let at = 0, i = 0; at < size; at += chunk, i++) {
    const buf = pool[i % pool.length]!.subarray(0, Math.min(chunk, size - at));
    hash.update(buf);
    const w = prev.then(() => writeAll(fh, buf, at));
    await prev;
    prev = w;
  }
  await prev;
  await fh.datasync();
  hash.digest();
  const ms = nowMs() - t0;
  await fh.close();
  send({ op: 'written', ms });
}

async function storeSmall(m: Record<string, any>): Promise<void> {
  const dir = m.dir as string;
  const blobs = join(dir, 'blobs');
  await mkdir(blobs, { recursive: true });
  const data = randomFillSync(Buffer.allocUnsafe(m.bytes as number));
  const t0 = nowMs();
  const deadline = t0 + (m.capMs as number);
  let files = 0;
  for (; files < (m.count as number) && nowMs() < deadline; files++) {
    const part = join(dir, `${files}.part`);
    const fh = await open(part, 'w+', 0o600);
    data.writeUInt32BE(files, 0);
    createHash('sha256').update(data).digest();
    await writeAll(fh, data, 0);
    await fh.datasync();
    await fh.close();
    await link(part, join(blobs, String(files)));
    const d = await open(blobs, 'r');
    await d.sync();
    await d.close();
    await unlink(part);
  }
  send({ op: 'stored', files, ms: nowMs() - t0 });
}

let role: string | null = null;
process.on('message', (m: { op: string } & Record<string, any>) => {
  if (m.op === 'exit') process.exit(0);
  if (role !== null && role !== 'client') return;
  switch (m.op) {
    case 'serve':
      role = 'server';
      serve();
      return;
    case 'send':
      role = 'client';
      sendFile(m).catch(fail);
      return;
    case 'write':
      role = 'client';
      writeLocal(m).catch(fail);
      return;
    case 'small':
      role = 'client';
      storeSmall(m).catch(fail);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
