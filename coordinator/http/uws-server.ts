/**
 * The uWebSockets.js implementation of the transport (preferred).
 *
 * uWS hands out ArrayBuffers and request objects that are only valid during
 * the callback, so everything needed later is read or copied synchronously.
 *
 * @module
 */

import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as U from '@trufflesuite/uws-js-unofficial';
import {
  BodyLengthError, IdleSweeper, SHUTDOWN_REASON, addHeader, announcedLength, checkResponse, checkRoutes, closeArgs,
  describeError, dispose, errorJson, exactBody, guard, internalJson, isBodiless, isStream, isUpgrade, tooLargeJson, urlOf,
  type HttpRequest, type HttpResponse, type IdleTracked, type RunningServer, type SendResult, type ServerOptions,
  type WsConnection, type WsRoute,
} from './types.js';

/** The loaded native module and its version (without the `-unofficial` suffix). */
export interface UwsModule {
  readonly lib: typeof U;
  readonly version: string;
}

/**
 * Loads the native uWebSockets.js addon. The package entry point is bypassed on
 * purpose: when the addon does not load it prints to the console and silently
 * returns a JS re-implementation; we want the error so we can fall back to our
 * own node implementation instead.
 */
export function loadUws(): UwsModule {
  const require = createRequire(import.meta.url);
  const pkgFile = require.resolve('@trufflesuite/uws-js-unofficial/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { version?: string };
  const { platform, arch, versions } = process;
  const lib = require(join(dirname(pkgFile), 'binaries', `uws_${platform}_${arch}_${versions.modules}.node`)) as typeof U;
  if (typeof lib.App !== 'function') throw new Error('uWebSockets.js addon has no App()');
  return { lib, version: (pkg.version ?? 'unknown').split('-')[0] ?? 'unknown' };
}

/** Methods present in the native 20.30 addon but missing from its typings. */
interface AppExtras {
  listen(host: string, port: number, options: number, cb: (ls: U.us_listen_socket | false) => void): unknown;
  close?(): void;
}

/** LIBUS_LISTEN_EXCLUSIVE_PORT: without it uSockets sets SO_REUSEPORT and a busy port "works". */
const EXCLUSIVE_PORT = 1;
const EMPTY = new Uint8Array(0);
const JSON_TYPE = 'application/json';

/**
 * uWS closes connections whose frame exceeds `maxPayloadLength` without a close
 * frame (1006). To answer 1009 as required, uWS gets a larger hard limit and the
 * exact limit is checked per message; only messages over the hard limit (twice
 * the limit, at least +64 KiB) still see 1006.
 */
export const hardPayloadLimit = (max: number): number => max + Math.max(max, 64 * 1024);

/** Per-request state shared between the uWS callbacks and the async handler. */
interface Pending {
  readonly res: U.HttpResponse;
  readonly ac: AbortController;
  aborted: boolean;
  /** The body was refused (413); further body data is ignored. */
  refused: boolean;
  /** Wakes a writer waiting for `onWritable` (also called on abort). */
  wake: (() => void) | null;
}

/** uWS user data attached at upgrade time. */
interface Holder {
  conn: UwsConnection | null;
  readonly data: unknown;
  readonly remoteAddress: string;
}

/** Formats uWS's binary peer address the way node does (`::1`, `::ffff:1.2.3.4`). */
export function addressText(ab: ArrayBuffer): string {
  const b = Buffer.from(ab);
  if (b.length === 4) return b.join('.');
  if (b.length !== 16) return '';
  if (b.subarray(0, 12).equals(V4_MAPPED)) return `::ffff:${b.subarray(12).join('.')}`;
  // The WHATWG URL parser prints IPv6 in the canonical RFC 5952 form, as node does.
  return new URL(`http://[${b.toString('hex').replace(/(....)(?!$)/g, '$1:')}]`).hostname.slice(1, -1);
}
const V4_MAPPED = Buffer.from('00000000000000000000ffff', 'hex');

function readHeaders(req: U.HttpRequest): Record<string, string> {
  const h: Record<string, string> = Object.create(null);
  req.forEach((k, v) => addHeader(h, k, v));
  return h;
}

const statusLine = (s: number): string => `${s} ${STATUS_CODES[s] ?? 'Unknown'}`;

/** Writes a small complete response; must run inside `cork`. */
function simple(res: U.HttpResponse, status: number, body: string, closeConnection = false): void {
  res.writeStatus(statusLine(status)).writeHeader('content-type', JSON_TYPE).end(body, closeConnection);
}

/** A WebSocket connection on uWS. */
class UwsConnection implements WsConnection<unknown>, IdleTracked {
  closed = false;
  lastActive = Date.now();
  constructor(
    readonly ws: U.WebSocket<Holder>,
    readonly data: unknown,
    readonly remoteAddress: string,
    readonly idleMs: number,
  ) {}

  send(bytes: Uint8Array): SendResult {
    if (this.closed) return 'dropped';
    let r = 2;
    this.ws.cork(() => { r = this.ws.send(bytes, true, false); });
    if (r !== 2) this.lastActive = Date.now();
    return r === 1 ? 'ok' : r === 0 ? 'backpressure' : 'dropped';
  }

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    const why = closeArgs(code, reason);
    // end() sends the close frame and runs the close handler synchronously.
    this.ws.cork(() => this.ws.end(code, why));
  }
}

/** A configured (not yet listening) uWS server. */
export class UwsServer implements RunningServer {
  readonly kind = 'uws' as const;
  port = 0;
  readonly #lib: typeof U;
  readonly #app: U.TemplatedApp & AppExtras;
  readonly #opts: ServerOptions;
  readonly #log: (line: string) => void;
  readonly #routes: Map<string, WsRoute<unknown>>;
  readonly #conns = new Set<UwsConnection>();
  readonly #pending = new Set<Pending>();
  readonly #sweeper: IdleSweeper;
  #listenSocket: U.us_listen_socket | null = null;
  #closing: Promise<void> | null = null;

  /** Creates the app and registers all routes; throws if uWS cannot be used. */
  constructor(opts: ServerOptions, mod: UwsModule) {
    this.#lib = mod.lib;
    this.#opts = opts;
    this.#log = opts.log ?? (() => {});
    this.#routes = checkRoutes(opts.ws);
    this.#app = mod.lib.App() as U.TemplatedApp & AppExtras;
    for (const route of this.#routes.values()) this.#addRoute(route);
    this.#app.any('/*', (res, req) => this.#onRequest(res, req));
    this.#sweeper = new IdleSweeper(opts.ws.map((r) => r.idleTimeoutSeconds));
  }

  get url(): string {
    return urlOf(this.#opts.host, this.port);
  }

  /** Binds `host:port`; rejects with an Error naming them when that fails. */
  listen(): Promise<this> {
    const { host, port } = this.#opts;
    return new Promise((resolve, reject) => {
      this.#app.listen(host, port, EXCLUSIVE_PORT, (ls) => {
        if (!ls) {
          this.#sweeper.stop();
          this.#app.close?.();
          reject(new Error(`http: cannot listen on ${host}:${port} (address in use, not local or not permitted)`));
          return;
        }
        this.#listenSocket = ls;
        this.port = this.#lib.us_socket_local_port(ls as U.us_socket);
        resolve(this);
      });
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#sweeper.stop();
    if (this.#listenSocket) this.#lib.us_listen_socket_close(this.#listenSocket);
    this.#listenSocket = null;
    let backlog = 0;
    for (const c of [...this.#conns]) {
      backlog += c.bufferedAmount();
      c.close(1001, SHUTDOWN_REASON);
    }
    for (const p of [...this.#pending]) p.res.close(); // runs onAborted -> aborts the signal
    // The close frames queue behind any backlog and app.close() cuts sockets hard;
    // uWS does not tell when an ended socket is gone, so allow a short grace.
    if (backlog > 0) await new Promise((r) => setTimeout(r, 500));
    this.#app.close?.();
  }

  #addRoute(route: WsRoute<unknown>): void {
    const idleMs = route.idleTimeoutSeconds > 0 ? route.idleTimeoutSeconds * 1000 : 0;
    const conn = (ws: U.WebSocket<Holder>): UwsConnection | null => {
      const c = ws.getUserData().conn;
      return c && !c.closed ? c : null;
    };
    const touch = (ws: U.WebSocket<Holder>): void => { const c = conn(ws); if (c) c.lastActive = Date.now(); };
    this.#app.ws<Holder>(route.path, {
      compression: this.#lib.DISABLED,
      maxPayloadLength: hardPayloadLimit(route.maxPayloadBytes),
      maxBackpressure: route.maxBackpressureBytes,
      closeOnBackpressureLimit: 0, // false: a full backlog drops sends, it does not close
      // Native idleTimeout must be 0 or >= 8 s (else the process aborts) and closes
      // without a close frame; the shared IdleSweeper handles idling instead.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => {
        const headers = readHeaders(req);
        const key = req.getHeader('sec-websocket-key');
        const protocol = (req.getHeader('sec-websocket-protocol').split(',')[0] ?? '').trim();
        const extensions = req.getHeader('sec-websocket-extensions');
        const remoteAddress = addressText(res.getRemoteAddress());
        if (this.#closing) return void res.cork(() => simple(res, 503, errorJson('UNAVAILABLE', 'shutting down'), true));
        let data: unknown;
        try {
          data = route.create({ headers: { ...headers }, remoteAddress });
        } catch (err) {
          this.#log(`http: WebSocket create failed for ${route.path}: ${describeError(err)}`);
          res.cork(() => simple(res, 500, internalJson));
          return;
        }
        res.upgrade<Holder>({ conn: null, data, remoteAddress }, key, protocol, extensions, context);
      },
      open: (ws) => {
        const h = ws.getUserData();
        const c = new UwsConnection(ws, h.data, h.remoteAddress, idleMs);
        h.conn = c;
        this.#conns.add(c);
        this.#sweeper.add(c);
        if (route.open) guard(this.#log, c, 'open', () => route.open?.(c));
      },
      message: (ws, ab, isBinary) => {
        const c = conn(ws);
        if (!c) return;
        c.lastActive = Date.now();
        if (!isBinary) return c.close(1003, 'binary messages only');
        if (ab.byteLength > route.maxPayloadBytes) return c.close(1009, '');
        const data = Buffer.from(new Uint8Array(ab)); // copy: uWS neuters `ab` on return
        guard(this.#log, c, 'message', () => route.message(c, data));
      },
      drain: (ws) => {
        const c = conn(ws);
        if (c && route.drain) guard(this.#log, c, 'drain', () => route.drain?.(c));
      },
      ping: touch,
      pong: touch,
      close: (ws, code, message) => {
        const c = ws.getUserData().conn;
        if (!c || c.closed) return;
        c.closed = true;
        this.#conns.delete(c);
        this.#sweeper.delete(c);
        const reason = Buffer.from(message).toString('utf8'); // decode now: `message` dies on return
        guard(this.#log, c, 'close', () => route.close(c, code, reason));
      },
    });
  }

  #onRequest(res: U.HttpResponse, req: U.HttpRequest): void {
    // Everything from `req` must be read now: it is invalid after this callback.
    const method = req.getMethod().toUpperCase();
    const path = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const headers = readHeaders(req);
    const remoteAddress = addressText(res.getRemoteAddress());
    if (isUpgrade(headers)) {
      // Valid handshakes on WebSocket paths never get here (the ws route takes them).
      const known = this.#routes.has(path);
      res.cork(() => simple(res, known ? 400 : 404, known
        ? errorJson('BAD_REQUEST', 'invalid WebSocket handshake')
        : errorJson('NOT_FOUND', 'no WebSocket route at this path')));
      return;
    }
    const p: Pending = { res, ac: new AbortController(), aborted: false, refused: false, wake: null };
    this.#pending.add(p);
    res.onAborted(() => {
      p.aborted = true;
      this.#pending.delete(p);
      p.wake?.();
      p.ac.abort();
    });
    const max = this.#opts.maxBodyBytes;
    const declared = headers['content-length'];
    if (declared !== undefined && Number(declared) > max) return this.#tooLarge(p);
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((ab, isLast) => {
      if (p.aborted || p.refused) return;
      size += ab.byteLength;
      if (size > max) return this.#tooLarge(p);
      if (ab.byteLength > 0) chunks.push(Buffer.from(new Uint8Array(ab))); // copy: `ab` is neutered on return
      if (!isLast) return;
      const body = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size);
      void this.#run(p, { method, path, query, headers, body, remoteAddress });
    });
  }

  /**
   * Stops reading the body, then answers 413 and closes the connection. The
   * answer waits one turn of the event loop: with reading paused the client's
   * writes stall, so it reads the 413 instead of failing a write with EPIPE
   * (node's http client does when the socket closes under an active upload).
   */
  #tooLarge(p: Pending): void {
    p.refused = true;
    p.res.pause();
    setTimeout(() => {
      if (p.aborted) return;
      this.#pending.delete(p);
      p.res.cork(() => simple(p.res, 413, tooLargeJson(this.#opts.maxBodyBytes), true));
    }, 0);
  }

  async #run(p: Pending, req: HttpRequest): Promise<void> {
    let r: HttpResponse;
    let headers: [string, string][];
    try {
      r = await this.#opts.handler(req, p.ac.signal);
      headers = checkResponse(r);
    } catch (err) {
      if (p.aborted) return;
      this.#log(`http: handler failed for ${req.method} ${req.path}: ${describeError(err)}`);
      r = { status: 500, body: internalJson };
      headers = [['content-type', JSON_TYPE]];
    }
    if (p.aborted) return dispose(r.body);
    const { res } = p;
    const head = (): void => {
      res.writeStatus(statusLine(r.status));
      for (const [k, v] of headers) res.writeHeader(k, v);
    };
    const body = r.body;
    if (req.method === 'HEAD' || isBodiless(r.status)) {
      dispose(body);
      const n = announcedLength(r);
      // endWithoutBody(n) leaves uWS waiting for n body bytes (the keep-alive socket stalls), so
      // the length goes in as a plain header.
      res.cork(() => { head(); if (n !== undefined) res.writeHeader('content-length', String(n)); res.endWithoutBody(); });
      return void this.#pending.delete(p);
    }
    if (isStream(body)) {
      return r.length === undefined ? this.#stream(p, head, body) : this.#streamExact(p, req, head, body, r.length);
    }
    const buf = typeof body === 'string' ? Buffer.from(body) : body ?? EMPTY;
    const total = buf.byteLength;
    // tryEnd sends what the socket takes now (Content-Length: total) and the
    // rest from onWritable, so a large body is not copied into uWS's buffer.
    let done = false;
    let base = 0;
    res.cork(() => {
      head();
      base = res.getWriteOffset();
      done = res.tryEnd(buf, total)[1];
    });
    if (!done) {
      await new Promise<void>((resolve) => {
        p.wake = resolve;
        res.onWritable((offset) => {
          let ok = false;
          res.cork(() => { [ok, done] = res.tryEnd(buf.subarray(offset - base), total); });
          if (done) resolve();
          return ok;
        });
      });
    }
    if (!p.aborted) this.#pending.delete(p);
  }

  /**
   * Streams exactly `length` bytes under `Content-Length`, pulling the next
   * chunk only once uWS has taken the current one. tryEnd writes what the
   * socket takes now and keeps nothing; the rest of the chunk is offered again
   * from onWritable, whose offset says how much of the body has gone out.
   */
  async #streamExact(p: Pending, req: HttpRequest, head: () => void, body: AsyncIterable<Uint8Array>, length: number): Promise<void> {
    const { res } = p;
    let chunk: Uint8Array = EMPTY;
    let chunkOffset = 0; // body offset at which `chunk` starts
    let done = false;
    // A completed response must leave #pending at once: close() would touch it.
    const finish = (): void => { if (done) this.#pending.delete(p); };
    res.onWritable((offset) => {
      let ok = false;
      res.cork(() => { [ok, done] = res.tryEnd(chunk.subarray(offset - chunkOffset), length); });
      finish();
      if (ok || done) { const w = p.wake; p.wake = null; w?.(); }
      return ok;
    });
    res.cork(head);
    try {
      for await (const c of exactBody(body, length)) {
        if (p.aborted) break;
        let ok = false;
        res.cork(() => {
          chunkOffset = res.getWriteOffset();
          [ok, done] = res.tryEnd(c, length);
        });
        finish();
        if (!ok && !done) {
          chunk = c;
          await new Promise<void>((resolve) => { p.wake = resolve; });
          chunk = EMPTY;
        }
        if (p.aborted) break;
      }
    } catch (err) {
      if (p.aborted) return;
      this.#log(err instanceof BodyLengthError
        ? `http: response body of ${req.method} ${req.path} ${err.message}; connection aborted`
        : `http: response body failed: ${describeError(err)}`);
      res.close(); // headers are out: the client must see a broken response, not a wrong one
      return;
    }
    if (p.aborted) return;
    // A zero-length body never reaches tryEnd, which is what sends Content-Length.
    if (!done) res.cork(() => res.end());
    this.#pending.delete(p);
  }

  /** Streams chunked, pulling the next chunk only when uWS has no backpressure. */
  async #stream(p: Pending, head: () => void, body: AsyncIterable<Uint8Array>): Promise<void> {
    const { res } = p;
    res.cork(head);
    res.onWritable(() => { const w = p.wake; p.wake = null; w?.(); return true; });
    try {
      for await (const chunk of body) {
        if (p.aborted) break;
        if (chunk.byteLength === 0) continue; // an empty write would end the chunked body
        let ok = true;
        res.cork(() => { ok = res.write(chunk); });
        if (!ok) await new Promise<void>((resolve) => { p.wake = resolve; });
        if (p.aborted) break;
      }
    } catch (err) {
      if (p.aborted) return;
      this.#log(`http: response body failed: ${describeError(err)}`);
      res.close(); // headers are out: the client must see a broken response
      return;
    }
    if (p.aborted) return;
    res.cork(() => res.end());
    this.#pending.delete(p);
  }
}

/** Loads uWS and configures a server; throws when the addon or app cannot be created. */
export function createUwsServer(opts: ServerOptions): { server: UwsServer; version: string } {
  const mod = loadUws();
  return { server: new UwsServer(opts, mod), version: mod.version };
}
