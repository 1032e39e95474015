/**
 * The fallback implementation of the transport on `node:http` + `ws`, used when
 * the uWebSockets.js addon cannot load (or when `prefer: 'node'`). It mirrors
 * the uWS implementation's observable behaviour.
 *
 * @module
 */

import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import {
  BodyLengthError, IdleSweeper, SHUTDOWN_REASON, addHeader, announcedLength, checkResponse, checkRoutes, closeArgs,
  describeError, dispose, errorJson, exactBody, guard, internalJson, isBodiless, isStream, tooLargeJson, urlOf,
  type HttpRequest, type HttpResponse, type IdleTracked, type RunningServer, type SendResult, type ServerOptions,
  type WsConnection, type WsRoute,
} from './types.js';

const EMPTY = new Uint8Array(0);
const JSON_TYPE = 'application/json';
const SEND_OPTS = { binary: true, compress: false, fin: true } as const;
/** How long close() waits for peers to answer the close handshake before cutting them off. */
const CLOSE_GRACE_MS = 2000;

/** Lower-case header record from raw headers; repeats joined like the uWS side. */
function readHeaders(raw: readonly string[]): Record<string, string> {
  const h: Record<string, string> = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    addHeader(h, (raw[i] ?? '').toLowerCase(), raw[i + 1] ?? '');
  }
  return h;
}

function splitUrl(url: string | undefined): [string, URLSearchParams] {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q < 0 ? [u, new URLSearchParams()] : [u.slice(0, q), new URLSearchParams(u.slice(q + 1))];
}

/** Resolves on 'drain' or 'close', whichever comes first. */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Answers an upgrade request that will not be upgraded and closes the socket. */
function refuseUpgrade(socket: Duplex, status: number, body: string): void {
  socket.on('error', () => {});
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nConnection: close\r\n` +
    `Content-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/** Maps a `ws` receive error to the close code it sent (or 1002). */
function errorCode(err: Error & { code?: string }): number {
  if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return 1009;
  if (err.code === 'WS_ERR_INVALID_UTF8') return 1007;
  return 1002;
}

/** A WebSocket connection on `ws`. */
class NodeConnection implements WsConnection<unknown>, IdleTracked {
  closed = false;
  lastActive = Date.now();
  #wantDrain = false;

  constructor(
    readonly ws: WebSocket,
    readonly data: unknown,
    readonly remoteAddress: string,
    readonly idleMs: number,
    readonly route: WsRoute<unknown>,
    readonly onClosed: (c: NodeConnection) => void,
    readonly log: (line: string) => void,
  ) {}

  send(bytes: Uint8Array): SendResult {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return 'dropped';
    const max = this.route.maxBackpressureBytes;
    if (max > 0 && this.ws.bufferedAmount > max) return 'dropped';
    this.ws.send(bytes, SEND_OPTS, this.#flushed);
    this.lastActive = Date.now();
    if (this.ws.bufferedAmount === 0) return 'ok';
    this.#wantDrain = true;
    return 'backpressure';
  }

  /**
   * Write callback of every send; fires `drain` once nothing is buffered. The
   * socket's own 'drain' event is not enough: it only fires after a write
   * crossed the stream's highWaterMark (16 KiB), so a smaller backlog would
   * never report `drain`.
   */
  readonly #flushed = (): void => {
    if (!this.#wantDrain || this.closed || this.ws.bufferedAmount > 0) return;
    this.#wantDrain = false;
    const drain = this.route.drain;
    if (drain) guard(this.log, this, 'drain', () => drain.call(this.route, this));
  };

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.bufferedAmount;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    const why = closeArgs(code, reason);
    this.ws.close(code, why);
    this.finalize(code, why);
  }

  /** Marks the connection closed and runs the route's close callback, once. */
  finalize(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    guard(this.log, this, 'close', () => this.route.close(this, code, reason));
  }
}

/** A configured (not yet listening) node server. */
export class NodeServer implements RunningServer {
  readonly kind = 'node' as const;
  port = 0;
  readonly #server: Server;
  readonly #opts: ServerOptions;
  readonly #log: (line: string) => void;
  readonly #routes: Map<string, { route: WsRoute<unknown>; wss: WebSocketServer }>;
  readonly #conns = new Set<NodeConnection>();
  /** Every upgraded socket until it is gone (outlives its connection while closing). */
  readonly #sockets = new Set<WebSocket>();
  readonly #sweeper: IdleSweeper;
  #closing: Promise<void> | null = null;

  constructor(opts: ServerOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? (() => {});
    this.#routes = new Map();
    for (const route of checkRoutes(opts.ws).values()) {
      const wss = new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: route.maxPayloadBytes, // bigger messages: ws closes with 1009
        skipUTF8Validation: true, // text frames are refused with 1003 anyway
      });
      this.#routes.set(route.path, { route, wss });
    }
    this.#sweeper = new IdleSweeper(opts.ws.map((r) => r.idleTimeoutSeconds));
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  get url(): string {
    return urlOf(this.#opts.host, this.port);
  }

  /** Binds `host:port`; rejects with an Error naming them when that fails. */
  listen(): Promise<this> {
    const { host, port } = this.#opts;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        this.#sweeper.stop();
        reject(new Error(`http: cannot listen on ${host}:${port} (${err.code ?? err.message})`, { cause: err }));
      };
      this.#server.once('error', onError);
      this.#server.listen({ host, port, exclusive: true }, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (err) => this.#log(`http: server error: ${describeError(err)}`));
        this.port = (this.#server.address() as AddressInfo).port;
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
    for (const c of [...this.#conns]) c.close(1001, SHUTDOWN_REASON);
    // server.close() waits for every accepted socket, upgraded ones included.
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections(); // pending requests: their signals abort
    const grace = setTimeout(() => { for (const ws of this.#sockets) ws.terminate(); }, CLOSE_GRACE_MS);
    await stopped;
    clearTimeout(grace);
    for (const { wss } of this.#routes.values()) wss.close();
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const [path] = splitUrl(req.url);
    const entry = this.#routes.get(path);
    if (!entry) return refuseUpgrade(socket, 404, errorJson('NOT_FOUND', 'no WebSocket route at this path'));
    if (this.#closing) return refuseUpgrade(socket, 503, errorJson('UNAVAILABLE', 'server is shutting down'));
    const { route, wss } = entry;
    const remoteAddress = req.socket.remoteAddress ?? '';
    let data: unknown;
    try {
      data = route.create({ headers: { ...readHeaders(req.rawHeaders) }, remoteAddress });
    } catch (err) {
      this.#log(`http: WebSocket create failed for ${route.path}: ${describeError(err)}`);
      return refuseUpgrade(socket, 500, internalJson);
    }
    wss.handleUpgrade(req, socket, head, (ws) => this.#onOpen(route, ws, data, remoteAddress));
  }

  #onOpen(route: WsRoute<unknown>, ws: WebSocket, data: unknown, remoteAddress: string): void {
    const idleMs = route.idleTimeoutSeconds > 0 ? route.idleTimeoutSeconds * 1000 : 0;
    const c = new NodeConnection(ws, data, remoteAddress, idleMs, route, (x) => {
      this.#conns.delete(x);
      this.#sweeper.delete(x);
    }, this.#log);
    this.#conns.add(c);
    this.#sockets.add(ws);
    this.#sweeper.add(c);
    const touch = (): void => { c.lastActive = Date.now(); };
    ws.on('ping', touch);
    ws.on('pong', touch);
    ws.on('message', (msg: Buffer, isBinary: boolean) => {
      if (c.closed) return;
      touch();
      if (!isBinary) return c.close(1003, 'binary messages only');
      guard(this.#log, c, 'message', () => route.message(c, msg));
    });
    // A receive error (e.g. too big: ws already sent 1009) arrives before 'close'.
    ws.on('error', (err: Error & { code?: string }) => c.finalize(errorCode(err), ''));
    ws.on('close', (code: number, reason: Buffer) => {
      this.#sockets.delete(ws);
      c.finalize(code, reason.toString('utf8'));
    });
    if (route.open) guard(this.#log, c, 'open', () => route.open?.(c));
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const [path, query] = splitUrl(req.url);
    const headers = readHeaders(req.rawHeaders);
    const method = (req.method ?? 'GET').toUpperCase();
    const remoteAddress = req.socket.remoteAddress ?? '';
    const ac = new AbortController();
    res.once('close', () => { if (!res.writableFinished) ac.abort(); });
    req.on('error', () => {}); // a client reset mid-body is reported through the signal
    const max = this.#opts.maxBodyBytes;
    const declared = headers['content-length'];
    if (declared !== undefined && Number(declared) > max) return this.#tooLarge(req, res);
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      req.off('data', onData);
      req.off('end', onEnd);
      this.#tooLarge(req, res);
    };
    const onEnd = (): void => {
      const body = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size);
      void this.#run(res, ac.signal, { method, path, query, headers, body, remoteAddress });
    };
    req.on('data', onData);
    req.on('end', onEnd);
  }

  /** Answers 413; `Connection: close` makes node drop the socket once it is written. */
  #tooLarge(req: IncomingMessage, res: ServerResponse): void {
    req.pause();
    const body = tooLargeJson(this.#opts.maxBodyBytes);
    res.writeHead(413, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  }

  async #run(res: ServerResponse, signal: AbortSignal, req: HttpRequest): Promise<void> {
    let r: HttpResponse;
    let headers: [string, string][];
    try {
      r = await this.#opts.handler(req, signal);
      headers = checkResponse(r);
    } catch (err) {
      if (signal.aborted) return;
      this.#log(`http: handler failed for ${req.method} ${req.path}: ${describeError(err)}`);
      r = { status: 500, body: internalJson };
      headers = [['content-type', JSON_TYPE]];
    }
    if (signal.aborted || res.destroyed) return dispose(r.body);
    res.statusCode = r.status;
    for (const [k, v] of headers) res.setHeader(k, v);
    const body = r.body;
    const length = announcedLength(r);
    if (req.method === 'HEAD' || isBodiless(r.status)) {
      dispose(body);
      // node would still send a Content-Length set here on a 204/304, so only set an allowed one.
      if (length !== undefined) res.setHeader('content-length', length);
      res.end();
      return;
    }
    if (!isStream(body)) {
      res.setHeader('content-length', length ?? 0);
      res.end(typeof body === 'string' ? Buffer.from(body) : body ?? EMPTY);
      return;
    }
    let chunks: AsyncIterable<Uint8Array> = body;
    if (length !== undefined) {
      res.setHeader('content-length', length);
      chunks = exactBody(body, length);
    }
    try {
      for await (const chunk of chunks) {
        if (res.destroyed) break;
        if (chunk.byteLength === 0) continue;
        if (!res.write(chunk)) await writable(res);
        if (res.destroyed) break;
      }
    } catch (err) {
      if (signal.aborted) return;
      this.#log(err instanceof BodyLengthError
        ? `http: response body of ${req.method} ${req.path} ${err.message}; connection aborted`
        : `http: response body failed: ${describeError(err)}`);
      res.destroy(); // headers may be out: the client must see a broken response, not a wrong one
      return;
    }
    if (!res.destroyed) res.end();
  }
}

/** Configures a node server (does not listen yet). */
export function createNodeServer(opts: ServerOptions): NodeServer {
  return new NodeServer(opts);
}
