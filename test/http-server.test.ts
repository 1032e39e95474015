/**
 * Conformance suite of the coordinator transport: the same tests run against
 * the uWebSockets.js server and the ws + node:http fallback.
 */

import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import {
  startServer, type HttpHandler, type RunningServer, type SendResult, type WsConnection, type WsRoute,
} from '../coordinator/http/index.js';

const MAX_BODY = 1024 * 1024;
const WS_MAX = 256 * 1024;
const BLOCK = randomBytes(64 * 1024);
const STREAM_BLOCKS = 800; // 800 x 64 KiB = 50 MiB
const SIZED_BLOCKS = 320; // 320 x 64 KiB = 20 MiB
const FIXED = 'f'.repeat(1000);

// The brief asks for the ws client with bufferutil; ws picks it up when resolvable.
createRequire(import.meta.url).resolve('bufferutil');

function block(i: number): Buffer {
  const b = Buffer.from(BLOCK);
  b.writeUInt32BE(i, 0);
  return b;
}

async function* blocks(n: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < n; i++) yield block(i);
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

interface Reply { status: number; headers: IncomingHttpHeaders; body: Buffer; reusedSocket: boolean }

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  chunks?: Buffer[];
  /** A keep-alive agent to send through (default: a fresh connection). */
  agent?: Agent;
  /** Stop reading for this long after the first body bytes, so the server meets backpressure. */
  stallMs?: number;
}

/** One HTTP/1.1 request, on a fresh connection unless `agent` is given; `chunks` are sent chunked. */
function request(url: string, o: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: o.agent ?? false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        if (parts.length === 0 && o.stallMs) {
          res.pause();
          setTimeout(() => res.resume(), o.stallMs);
        }
        parts.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject); // no-op once resolved (the server may cut an oversized upload)
    for (const c of o.chunks ?? []) req.write(c);
    req.end(o.body);
  });
}

/**
 * A GET whose response must break off: resolves with what arrived before the
 * connection was cut, rejects if the response completes instead.
 */
function cutOff(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; received: number }> {
  return within(new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res: IncomingMessage) => {
      let received = 0;
      res.on('data', (c: Buffer) => { received += c.length; });
      res.on('end', () => reject(new Error(`the response completed with ${received} bytes`)));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, received }));
    });
    req.on('error', reject);
    req.end();
  }), 10_000, `cut-off response from ${url}`);
}

function connect(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  return within(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, `connect ${url}`);
}

function closeOf(ws: WebSocket, ms = 5000): Promise<{ code: number; reason: string }> {
  return within(new Promise((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
  }), ms, 'websocket close');
}

interface Closed { conn: WsConnection<unknown>; code: number; reason: string }

/** Handler, routes and recorded events of one server under test. */
function fixture() {
  const logs: string[] = [];
  const closes: Closed[] = [];
  const slowEntered = deferred<void>();
  const slowAborted = deferred<void>();
  const sendResults: SendResult[] = [];
  /** One record per /endless request: chunks produced, and when its iterator was closed. */
  const endless: { count: number; finished: ReturnType<typeof deferred<void>> }[] = [];
  const unread = { started: 0 };
  const drained = deferred<void>();
  const handler: HttpHandler = async (req, signal) => {
    if (req.path.startsWith('/echo')) {
      const { method, path, headers, remoteAddress } = req;
      const body = JSON.stringify({ method, path, headers, remoteAddress, query: [...req.query], body: req.body.toString() });
      return { status: 200, headers: { 'Content-Type': 'application/json', 'X-Reply': 'yes' }, body };
    }
    if (req.path === '/throw') throw new Error('secret-detail-42');
    if (req.path === '/stream') return { status: 200, body: blocks(Number(req.query.get('n'))) };
    if (req.path === '/fixed') return { status: 200, headers: { 'content-type': 'text/plain' }, body: FIXED };
    if (req.path === '/sized') {
      // n blocks announced as `len` bytes (default: their real size).
      const n = Number(req.query.get('n'));
      const len = Number(req.query.get('len') ?? n * BLOCK.length);
      return { status: 200, headers: { 'content-type': 'application/octet-stream' }, length: len, body: blocks(n) };
    }
    if (req.path === '/unread') {
      const body = (async function* () { unread.started++; yield block(0); })();
      return { status: 200, length: 3 << 20, body };
    }
    if (req.path === '/bodiless') {
      return { status: Number(req.query.get('status')), headers: { etag: '"v1"' }, body: 'a body the status does not allow' };
    }
    if (req.path === '/badlength') return { status: 200, length: 5, body: 'abc' };
    if (req.path === '/big') return { status: 200, body: Buffer.concat(Array.from({ length: 256 }, (_, i) => block(i))) };
    if (req.path === '/endless') {
      const produced = { count: 0, finished: deferred<void>() };
      endless.push(produced);
      const n = 100_000; // bounded: 6 GiB
      return {
        status: 200,
        ...(req.query.has('sized') ? { length: n * BLOCK.length } : {}),
        body: (async function* () {
          try {
            for (let i = 0; i < n; i++, produced.count++) yield block(i);
          } finally {
            produced.finished.resolve();
          }
        })(),
      };
    }
    if (req.path === '/slow') {
      slowEntered.resolve();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 10_000);
        signal.addEventListener('abort', () => { clearTimeout(t); slowAborted.resolve(); resolve(); }, { once: true });
      });
      return { status: 204 };
    }
    return { status: 404, body: `handler:${req.path}` };
  };
  const base = { maxPayloadBytes: WS_MAX, idleTimeoutSeconds: 0, maxBackpressureBytes: 32 << 20 };
  const route = (path: string, extra: Partial<WsRoute<string>>): WsRoute<string> => ({
    ...base, path,
    create: (r) => r.remoteAddress,
    message: (c, data) => { c.send(data); },
    close: (conn, code, reason) => { closes.push({ conn, code, reason }); },
    ...extra,
  });
  const ws = [
    route('/ws/echo', {}),
    route('/ws/idle', { idleTimeoutSeconds: 1 }),
    route('/ws/push', {
      maxBackpressureBytes: 4 << 20,
      message: (c) => {
        for (let i = 0; i < 256; i++) { // bounded: 256 MiB at most
          const r = c.send(Buffer.alloc(1 << 20, i));
          sendResults.push(r);
          if (r === 'dropped') break;
        }
      },
      drain: (c) => { if (c.bufferedAmount() === 0) drained.resolve(); },
    }),
  ];
  return { logs, closes, slowEntered, slowAborted, sendResults, drained, endless, unread, handler, ws };
}

for (const kind of ['uws', 'node'] as const) {
  describe(`http transport (${kind})`, () => {
    let server: RunningServer;
    let f: ReturnType<typeof fixture>;
    const start = (fx: ReturnType<typeof fixture>, port = 0): Promise<RunningServer> => startServer({
      host: '127.0.0.1', port, maxBodyBytes: MAX_BODY, handler: fx.handler, ws: fx.ws, prefer: kind,
      log: (l) => fx.logs.push(l),
    });
    before(async () => {
      f = fixture();
      server = await start(f);
    });
    after(() => server.close());

    it(`runs the ${kind} implementation and logs which one once`, () => {
      assert.equal(server.kind, kind);
      assert.equal(server.url, `http://127.0.0.1:${server.port}`);
      const lines = f.logs.filter((l) => l.includes('serving with'));
      assert.equal(lines.length, 1);
      assert.match(lines[0] ?? '', kind === 'uws' ? /uWebSockets\.js \d+\.\d+\.\d+/ : /ws \+ node:http/);
    });

    it('GET passes method, raw path and query; string bodies get Content-Length', async () => {
      const r = await request(`${server.url}/echo/a%20b?x=1&y=two%20words&x=3`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['x-reply'], 'yes');
      assert.equal(r.headers['content-length'], String(r.body.length));
      const j = JSON.parse(r.body.toString());
      assert.equal(j.method, 'GET');
      assert.equal(j.path, '/echo/a%20b');
      assert.deepEqual(j.query, [['x', '1'], ['y', 'two words'], ['x', '3']]);
      assert.equal(j.remoteAddress, '127.0.0.1');
      assert.equal(j.body, '');
    });

    it('POST delivers the whole body; header names arrive lower-cased', async () => {
      const body = 'hello ' + 'x'.repeat(MAX_BODY - 6);
      const r = await request(`${server.url}/echo`, { method: 'POST', body, headers: { 'X-Mixed-Case': 'Value' } });
      const j = JSON.parse(r.body.toString());
      assert.equal(j.method, 'POST');
      assert.equal(j.body, body);
      assert.equal(j.headers['x-mixed-case'], 'Value');
      assert.ok(Object.keys(j.headers).every((k) => k === k.toLowerCase()));
    });

    it('a non-upgrade request to a WebSocket path goes to the handler', async () => {
      const r = await request(`${server.url}/ws/echo`);
      assert.equal(r.body.toString(), 'handler:/ws/echo');
    });

    it('a body over maxBodyBytes gets 413 PAYLOAD_TOO_LARGE (declared and chunked)', async () => {
      const expected = { code: 'PAYLOAD_TOO_LARGE', message: `request body exceeds ${MAX_BODY} bytes` };
      const declared = await request(`${server.url}/echo`, { method: 'POST', body: Buffer.alloc(MAX_BODY + 1) });
      assert.equal(declared.status, 413);
      assert.deepEqual(JSON.parse(declared.body.toString()), expected);
      // 8 MiB sent chunked: the client is still writing when the server answers.
      const chunks = Array.from({ length: 8 }, () => Buffer.alloc(MAX_BODY));
      const chunked = await request(`${server.url}/echo`, { method: 'POST', chunks });
      assert.equal(chunked.status, 413);
      assert.deepEqual(JSON.parse(chunked.body.toString()), expected);
    });

    it('a throwing handler gets 500 INTERNAL without leaking the error, which is logged', async () => {
      const r = await request(`${server.url}/throw`);
      assert.equal(r.status, 500);
      assert.deepEqual(JSON.parse(r.body.toString()), { code: 'INTERNAL', message: 'internal error' });
      assert.ok(!r.body.toString().includes('secret'));
      assert.ok(f.logs.some((l) => l.includes('secret-detail-42')));
    });

    it('a 50 MiB AsyncIterable body streams chunked and arrives intact', { timeout: 60_000 }, async () => {
      const want = createHash('sha256');
      for (let i = 0; i < STREAM_BLOCKS; i++) want.update(block(i));
      const r = await request(`${server.url}/stream?n=${STREAM_BLOCKS}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['transfer-encoding'], 'chunked');
      assert.equal(r.body.length, STREAM_BLOCKS * BLOCK.length);
      assert.equal(createHash('sha256').update(r.body).digest('hex'), want.digest('hex'));
    });

    it('a 16 MiB Uint8Array body gets Content-Length and arrives intact', { timeout: 30_000 }, async () => {
      const r = await request(`${server.url}/big`);
      assert.equal(r.headers['content-length'], String(256 * BLOCK.length));
      assert.ok(r.body.equals(Buffer.concat(Array.from({ length: 256 }, (_, i) => block(i)))));
    });

    for (const [how, query] of [['chunked', ''], ['with a length', '?sized']] as const) {
      it(`streaming ${how} waits for a client that does not read, and stops the body when it leaves`, { timeout: 20_000 }, async () => {
        const req = httpRequest(`${server.url}/endless${query}`, { agent: false });
        req.on('error', () => {});
        const res = await within(new Promise<IncomingMessage>((r) => req.on('response', r).end()), 5000, 'response');
        const produced = f.endless.at(-1)!;
        assert.equal(res.headers['content-length'], query ? String(100_000 * BLOCK.length) : undefined);
        res.pause();
        await new Promise((r) => setTimeout(r, 400));
        const early = produced.count;
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(produced.count, early, 'producer kept going without backpressure');
        assert.ok(early < 1000, `${early} chunks produced for a client that reads nothing`);
        res.destroy();
        await within(produced.finished.promise, 5000, 'body iterator closed');
      });
    }

    it('a streamed body with a length gets Content-Length, no chunked encoding, and exactly its 20 MiB, even past backpressure', { timeout: 60_000 }, async () => {
      const want = createHash('sha256');
      for (let i = 0; i < SIZED_BLOCKS; i++) want.update(block(i));
      const r = await request(`${server.url}/sized?n=${SIZED_BLOCKS}`, { stallMs: 300 });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(SIZED_BLOCKS * BLOCK.length));
      assert.equal(r.headers['transfer-encoding'], undefined);
      assert.equal(r.body.length, SIZED_BLOCKS * BLOCK.length);
      assert.equal(createHash('sha256').update(r.body).digest('hex'), want.digest('hex'));
    });

    it('a streamed body with length 0 gets Content-Length: 0 and an empty body', async () => {
      const r = await request(`${server.url}/sized?n=0&len=0`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '0');
      assert.equal(r.headers['transfer-encoding'], undefined);
      assert.equal(r.body.length, 0);
    });

    it('a streamed body yielding fewer bytes than its length has its connection cut (and logged), not a short 200', async () => {
      const len = 10 * BLOCK.length;
      const r = await cutOff(`${server.url}/sized?n=5&len=${len}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(len));
      assert.ok(r.received < len, `${r.received} bytes arrived`);
      assert.ok(f.logs.includes(`http: response body of GET /sized ended after ${5 * BLOCK.length} of its ${len} bytes; connection aborted`), f.logs.join('\n'));
    });

    it('a streamed body yielding more bytes than its length has its connection cut before its last byte (and logged)', async () => {
      const len = 2 * BLOCK.length;
      const r = await cutOff(`${server.url}/sized?n=3&len=${len}`);
      assert.equal(r.headers['content-length'], String(len));
      assert.ok(r.received < len, `${r.received} bytes arrived: the client saw a complete response`);
      assert.ok(f.logs.includes(`http: response body of GET /sized yielded at least ${3 * BLOCK.length} bytes, more than its length of ${len}; connection aborted`), f.logs.join('\n'));
    });

    it('a length that differs from a string body is a handler bug: 500 INTERNAL, logged', async () => {
      const r = await request(`${server.url}/badlength`);
      assert.equal(r.status, 500);
      assert.deepEqual(JSON.parse(r.body.toString()), { code: 'INTERNAL', message: 'internal error' });
      assert.ok(f.logs.some((l) => l.includes('response length 5 differs from the 3-byte body')));
    });

    it('HEAD of a string body gets its status, headers and Content-Length, and no body', async () => {
      const r = await request(`${server.url}/fixed`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'text/plain');
      assert.equal(r.headers['content-length'], String(FIXED.length));
      assert.equal(r.body.length, 0);
    });

    it('HEAD of a streamed body gets Content-Length from its length, no body, and never starts the iterable', async () => {
      const r = await request(`${server.url}/unread`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(3 << 20));
      assert.equal(r.headers['transfer-encoding'], undefined);
      assert.equal(r.body.length, 0);
      assert.equal(f.unread.started, 0);
    });

    it('HEAD of a streamed body without a length gets no Content-Length and no body', async () => {
      const r = await request(`${server.url}/stream?n=3`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], undefined);
      assert.equal(r.body.length, 0);
    });

    it('204 and 304 drop the body and send no Content-Length; the keep-alive connection stays in step', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const answers = [
          await request(`${server.url}/bodiless?status=204`, { agent }),
          await request(`${server.url}/bodiless?status=304`, { agent }),
          await request(`${server.url}/bodiless?status=304`, { agent, method: 'HEAD' }),
        ];
        for (const r of answers) {
          assert.equal(r.body.length, 0);
          assert.equal(r.headers['content-length'], undefined);
          assert.equal(r.headers['transfer-encoding'], undefined);
          assert.equal(r.headers['etag'], '"v1"');
        }
        assert.deepEqual(answers.map((r) => r.status), [204, 304, 304]);
        const after = await request(`${server.url}/fixed`, { agent });
        assert.equal(after.body.toString(), FIXED);
        assert.ok(after.reusedSocket);
      } finally {
        agent.destroy();
      }
    });

    it('after HEAD answers the keep-alive connection serves the next request', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        await request(`${server.url}/fixed`, { agent, method: 'HEAD' });
        await request(`${server.url}/unread`, { agent, method: 'HEAD' });
        const r = await within(request(`${server.url}/fixed`, { agent }), 5000, 'GET after HEAD');
        assert.ok(r.reusedSocket);
        assert.equal(r.body.toString(), FIXED);
      } finally {
        agent.destroy();
      }
    });

    it('the abort signal fires when the client disconnects during a slow handler', async () => {
      const req = httpRequest(`${server.url}/slow`, { agent: false });
      req.on('error', () => {});
      req.end();
      await within(f.slowEntered.promise, 5000, 'handler entered');
      req.destroy();
      await within(f.slowAborted.promise, 5000, 'signal aborted');
    });

    it('WebSocket echoes 200 binary messages of 64 KiB in order, as copies', { timeout: 30_000 }, async () => {
      const ws = await connect(`${server.url.replace('http', 'ws')}/ws/echo`);
      const got: Buffer[] = [];
      const all = deferred<void>();
      ws.on('message', (d: Buffer, binary: boolean) => {
        assert.ok(binary);
        got.push(d);
        if (got.length === 200) all.resolve();
      });
      for (let i = 0; i < 200; i++) ws.send(block(i));
      await within(all.promise, 20_000, '200 echoes');
      for (let i = 0; i < 200; i++) assert.ok(got[i]?.equals(block(i)), `message ${i}`);
      ws.close(1000, 'bye');
      await closeOf(ws);
    });

    it('send maps to ok/backpressure/dropped and drain fires once the backlog empties', { timeout: 30_000 }, async () => {
      const ws = await connect(`${server.url.replace('http', 'ws')}/ws/push`);
      ws.pause(); // stop reading so the server builds a backlog
      ws.send(Buffer.from([1]));
      for (let i = 0; i < 500 && !f.sendResults.includes('dropped'); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(f.sendResults.includes('backpressure'));
      assert.equal(f.sendResults.at(-1), 'dropped');
      ws.resume();
      ws.on('message', () => {});
      await within(f.drained.promise, 10_000, 'drain');
      ws.terminate();
    });

    it('a text message closes the connection with 1003', async () => {
      const ws = await connect(`${server.url.replace('http', 'ws')}/ws/echo`);
      const closed = closeOf(ws);
      ws.send('text is refused');
      assert.equal((await closed).code, 1003);
    });

    it('a message over maxPayloadBytes closes the connection with 1009', async () => {
      const ws = await connect(`${server.url.replace('http', 'ws')}/ws/echo`);
      const closed = closeOf(ws);
      ws.send(Buffer.alloc(WS_MAX + 1));
      assert.equal((await closed).code, 1009);
    });

    it('a connection idle for idleTimeoutSeconds=1 is closed (1001)', async () => {
      const t0 = Date.now();
      const ws = await connect(`${server.url.replace('http', 'ws')}/ws/idle`);
      const { code, reason } = await closeOf(ws, 5000);
      const elapsed = Date.now() - t0;
      assert.equal(code, 1001);
      assert.equal(reason, 'idle timeout');
      assert.ok(elapsed >= 900 && elapsed < 3000, `closed after ${elapsed} ms`);
    });

    it('an upgrade request to an unknown path gets 404', async () => {
      const ws = new WebSocket(`${server.url.replace('http', 'ws')}/nope`);
      const status = await within(new Promise<number>((resolve) => {
        ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume(); });
        ws.on('error', () => {});
      }), 5000, 'upgrade answer');
      assert.equal(status, 404);
      ws.terminate();
    });

    it('a busy port makes startServer reject naming host:port', async () => {
      await assert.rejects(start(fixture(), server.port), (err: Error) => {
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}\\b`));
        return true;
      });
    });

    it('close() closes WebSockets with 1001 (close callback once each) and aborts pending requests', { timeout: 20_000 }, async () => {
      const g = fixture();
      const s = await start(g);
      const wsUrl = `${s.url.replace('http', 'ws')}/ws/echo`;
      const clients = [await connect(wsUrl), await connect(wsUrl)];
      const closed = clients.map((c) => closeOf(c));
      const pending = httpRequest(`${s.url}/slow`, { agent: false });
      pending.on('error', () => {});
      pending.end();
      await within(g.slowEntered.promise, 5000, 'handler entered');
      await within(s.close(), 10_000, 'close()');
      for (const c of await Promise.all(closed)) assert.equal(c.code, 1001);
      await within(g.slowAborted.promise, 5000, 'pending request aborted');
      await new Promise((r) => setTimeout(r, 100)); // would catch a late second close callback
      assert.equal(g.closes.length, 2);
      assert.equal(new Set(g.closes.map((c) => c.conn)).size, 2);
      for (const c of g.closes) {
        assert.equal(c.code, 1001);
        assert.equal(c.conn.closed, true);
        assert.equal(c.conn.send(Buffer.from('late')), 'dropped');
      }
      await assert.rejects(request(`${s.url}/echo`), /ECONNREFUSED/);
    });
  });
}

describe('http transport fallback', () => {
  it('serves with ws + node:http and logs why when the uWS addon cannot load', { timeout: 20_000 }, async () => {
    const index = new URL('../coordinator/http/index.js', import.meta.url).href;
    const script = `process.dlopen = () => { throw new Error('simulated dlopen failure'); };
      const { startServer } = await import(${JSON.stringify(index)});
      const lines = [];
      const s = await startServer({ host: '127.0.0.1', port: 0, maxBodyBytes: 1, ws: [], log: (l) => lines.push(l),
        handler: async () => ({ status: 200 }) });
      const r = await fetch(s.url);
      await s.close();
      console.log(JSON.stringify({ kind: s.kind, status: r.status, lines }));`;
    const { execFile } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
    const got = JSON.parse(out) as { kind: string; status: number; lines: string[] };
    assert.equal(got.kind, 'node');
    assert.equal(got.status, 200);
    assert.equal(got.lines.length, 1);
    assert.match(got.lines[0] ?? '', /uWebSockets\.js did not load \(.*simulated dlopen failure.*\); serving with ws \+ node:http/);
  });
});
