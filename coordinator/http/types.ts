/**
 * Transport-layer contract of the coordinator: one HTTP + WebSocket server
 * interface implemented twice (uWebSockets.js and `ws` + `node:http`).
 *
 * The interfaces come first; the bottom of the file holds small helpers that
 * both implementations share so that they behave identically.
 *
 * @module
 */

import { validateHeaderName, validateHeaderValue } from 'node:http';

/** An HTTP request as seen by {@link HttpHandler}; fully read and immutable. */
export interface HttpRequest {
  /** Request method, upper-case (`GET`, `POST`, ...). */
  readonly method: string;
  /** Request path without the query string; percent-decoding is NOT applied. */
  readonly path: string;
  /** Parsed query string (empty when the URL had none). */
  readonly query: URLSearchParams;
  /** Request headers with lower-case names; repeated headers are joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** The complete request body (at most `maxBodyBytes`). */
  readonly body: Buffer;
  /** Peer IP address as text (`127.0.0.1`, `::1`, `::ffff:10.0.0.1`). */
  readonly remoteAddress: string;
}

/**
 * The answer of an {@link HttpHandler}.
 *
 * `content-length`, `transfer-encoding` and `connection` headers are managed by
 * the transport and ignored when given: string and `Uint8Array` bodies get a
 * `Content-Length`; `AsyncIterable` bodies are streamed with backpressure, with
 * `Content-Length: length` when {@link HttpResponse.length} is set and chunked
 * otherwise.
 *
 * A `HEAD` request gets the status and headers the `GET` would get, including
 * `Content-Length` when it is known (`length`, or the size of a string or
 * `Uint8Array` body), and no body; a streamed body is then closed unread.
 * 1xx, 204 and 304 answers never carry a body or a `Content-Length`: their body
 * is dropped (a streamed one closed unread).
 *
 * @example
 * // A 1 GiB download that is never held in memory:
 * return { status: 200, headers: { 'content-type': 'application/gzip' }, length: size, body: readChunks(file) };
 */
export interface HttpResponse {
  /** HTTP status code (100-999). */
  status: number;
  /** Response headers; names are case-insensitive. */
  headers?: Record<string, string>;
  /** Response body; omitted means empty. */
  body?: string | Uint8Array | AsyncIterable<Uint8Array>;
  /**
   * The body's exact size in bytes, a non-negative safe integer. With a streamed
   * body it is sent as `Content-Length` (no chunked encoding), and a body that
   * yields more or fewer bytes gets its connection aborted (and logged) rather
   * than sent as a complete but wrong response. With a string or `Uint8Array`
   * body (or none: 0 bytes) it must equal the body's size; a mismatch, like an
   * invalid value, is a handler bug answered 500.
   */
  length?: number;
}

/**
 * Handles every HTTP request that is not a WebSocket upgrade.
 * `signal` is aborted when the client disconnects before the response is complete.
 * A rejection is answered with 500 `{"code":"INTERNAL",...}` and logged.
 */
export type HttpHandler = (req: HttpRequest, signal: AbortSignal) => Promise<HttpResponse>;

/**
 * Outcome of {@link WsConnection.send}: `ok` = written to the socket,
 * `backpressure` = queued (wait for the route's `drain`), `dropped` = not sent
 * because the backlog exceeded `maxBackpressureBytes` or the connection is closed.
 */
export type SendResult = 'ok' | 'backpressure' | 'dropped';

/** A server-side WebSocket connection; valid from upgrade until its `close` callback. */
export interface WsConnection<T> {
  /** The value returned by {@link WsRoute.create} for this connection. */
  readonly data: T;
  /** Peer IP address as text. */
  readonly remoteAddress: string;
  /**
   * Sends one binary message; never throws. `bytes` may be referenced until it
   * is written to the socket, so do not modify it afterwards.
   */
  send(bytes: Uint8Array): SendResult;
  /** Bytes queued for this connection but not yet written to the socket. */
  bufferedAmount(): number;
  /**
   * Sends a close frame; the route's `close` callback runs immediately with the
   * same code and reason. No-op when already closed. Throws RangeError for a
   * code that may not be sent (e.g. 1005, 1006); `reason` is cut to 123 bytes.
   */
  close(code: number, reason: string): void;
  /** True once the connection is closed (by either side); further sends are `dropped`. */
  readonly closed: boolean;
}

/** A WebSocket endpoint at an exact path. */
export interface WsRoute<T> {
  /** Exact request path (no query, no wildcards), e.g. `/agent`. */
  path: string;
  /**
   * Largest accepted message; bigger ones close the connection with 1009. (uWS
   * only: beyond twice this, at least +64 KiB, uWS cuts the socket itself: 1006.)
   */
  maxPayloadBytes: number;
  /** Connections without traffic for this long are closed with 1001; 0 disables. */
  idleTimeoutSeconds: number;
  /** Sends are `dropped` while the backlog exceeds this many bytes; 0 = unlimited. */
  maxBackpressureBytes: number;
  /** Builds the per-connection data during the upgrade; throwing answers 500. */
  create(req: { headers: Record<string, string>; remoteAddress: string }): T;
  /** Called once the connection is open. */
  open?(c: WsConnection<T>): void;
  /** Called for each binary message; `data` is a private copy. Text messages close with 1003. */
  message(c: WsConnection<T>, data: Buffer): void;
  /** Called when the send backlog has drained. */
  drain?(c: WsConnection<T>): void;
  /** Called exactly once per connection, whoever closed it. */
  close(c: WsConnection<T>, code: number, reason: string): void;
}

/** Options of {@link startServer} (see `index.ts`). */
export interface ServerOptions {
  /** Address to bind, e.g. `127.0.0.1`; the server binds only there. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Largest accepted request body; bigger bodies get 413 `PAYLOAD_TOO_LARGE`. */
  maxBodyBytes: number;
  /** Handler for all non-WebSocket requests. */
  handler: HttpHandler;
  /** WebSocket routes, matched by exact path. */
  ws: WsRoute<any>[];
  /** Force an implementation; default tries uWebSockets.js first. */
  prefer?: 'uws' | 'node';
  /** Receives diagnostic lines (which server runs, handler errors). */
  log?: (line: string) => void;
}

/** A listening server. `await using` closes it. */
export interface RunningServer extends AsyncDisposable {
  /** Which implementation serves. */
  readonly kind: 'uws' | 'node';
  /** The bound port (resolved when 0 was requested). */
  readonly port: number;
  /** `http://host:port`. */
  readonly url: string;
  /**
   * Stops listening, closes WebSockets with 1001 and aborts pending HTTP
   * requests; resolves when done. Idempotent.
   */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Shared internals (not part of the public contract).

/** @internal JSON error body used by both implementations. */
export function errorJson(code: string, message: string): string {
  return JSON.stringify({ code, message });
}

/** @internal Body of the 413 answer. */
export const tooLargeJson = (max: number): string =>
  errorJson('PAYLOAD_TOO_LARGE', `request body exceeds ${max} bytes`);

/** @internal Body of the 500 answer; never contains the error itself. */
export const internalJson = errorJson('INTERNAL', 'internal error');

/** @internal Close reason used when the server shuts down. */
export const SHUTDOWN_REASON = 'server shutting down';

const MANAGED = new Set(['content-length', 'transfer-encoding', 'connection']);

/**
 * @internal Validates a handler response and returns its headers as
 * lower-case `[name, value]` pairs without transport-managed headers.
 * Throws on an invalid status, header or length (so the caller answers 500).
 */
export function checkResponse(r: HttpResponse): [string, string][] {
  if (typeof r !== 'object' || r === null || !Number.isInteger(r.status) || r.status < 100 || r.status > 999) {
    throw new Error(`invalid response status ${String((r as { status?: unknown } | null)?.status)}`);
  }
  if (r.length !== undefined) {
    if (!Number.isSafeInteger(r.length) || r.length < 0) throw new Error(`invalid response length ${String(r.length)}`);
    if (!isStream(r.body) && r.length !== byteLength(r.body)) {
      throw new Error(`response length ${r.length} differs from the ${byteLength(r.body)}-byte body`);
    }
  }
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(r.headers ?? {})) {
    const name = k.toLowerCase();
    if (MANAGED.has(name)) continue;
    validateHeaderName(name);
    validateHeaderValue(name, v);
    out.push([name, String(v)]);
  }
  return out;
}

/** @internal True when `body` is to be streamed. */
export function isStream(body: HttpResponse['body']): body is AsyncIterable<Uint8Array> {
  return typeof body === 'object' && body !== null && !(body instanceof Uint8Array) && Symbol.asyncIterator in body;
}

/** @internal Size of a string or `Uint8Array` body (an omitted body is empty). */
export function byteLength(body: string | Uint8Array | undefined): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body?.byteLength ?? 0;
}

/**
 * @internal The `Content-Length` a response announces, or undefined when it
 * has none: bodiless statuses (RFC 9110 forbids it for 1xx and 204, and for
 * 304 it would have to be the 200's length, which is not worth the risk of a
 * wrong one) and streams of unknown length.
 */
export function announcedLength(r: HttpResponse): number | undefined {
  if (isBodiless(r.status)) return undefined;
  if (r.length !== undefined) return r.length;
  return isStream(r.body) ? undefined : byteLength(r.body);
}

/** @internal True for statuses whose responses never have a body (RFC 9110 6.4.1). */
export const isBodiless = (status: number): boolean => status < 200 || status === 204 || status === 304;

/** @internal A streamed body that yielded more or fewer bytes than its declared length. */
export class BodyLengthError extends Error {}

/**
 * @internal Yields the non-empty chunks of a streamed body that must be exactly
 * `length` bytes, or throws {@link BodyLengthError} instead of yielding bytes
 * that would make a wrong response: before a chunk that overshoots, before the
 * final chunk when the body has more (it looks one chunk ahead, since that
 * chunk completes the response for the client), and at the end when short.
 * Closes `body` when stopped early.
 */
export async function* exactBody(body: AsyncIterable<Uint8Array>, length: number): AsyncGenerator<Uint8Array, void, undefined> {
  const it = body[Symbol.asyncIterator]();
  let finished = false;
  const next = async (): Promise<Uint8Array | undefined> => {
    for (;;) {
      const r = await it.next();
      if (r.done) { finished = true; return undefined; }
      if (r.value.byteLength > 0) return r.value;
    }
  };
  const over = (n: number): BodyLengthError => new BodyLengthError(`yielded at least ${n} bytes, more than its length of ${length}`);
  let sent = 0;
  try {
    for (let chunk = await next(); chunk !== undefined; chunk = await next()) {
      const total = sent + chunk.byteLength;
      if (total > length) throw over(total);
      if (total === length) {
        const extra = await next();
        if (extra !== undefined) throw over(total + extra.byteLength);
      }
      sent = total;
      yield chunk;
      if (finished) break;
    }
  } finally {
    if (!finished) await Promise.resolve(it.return?.()).catch(() => {});
  }
  if (sent !== length) throw new BodyLengthError(`ended after ${sent} of its ${length} bytes`);
}

/** @internal Closes a streamed body the transport will not read (client gone, HEAD). */
export function dispose(body: HttpResponse['body']): void {
  if (isStream(body)) void (async () => body[Symbol.asyncIterator]().return?.())().catch(() => {});
}

/** @internal Adds one header line to a record, joining repeats like node does. */
export function addHeader(h: Record<string, string>, name: string, value: string): void {
  const prev = h[name];
  h[name] = prev === undefined ? value : `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
}

/** @internal `http://host:port`, with brackets for IPv6 hosts. */
export const urlOf = (host: string, port: number): string => `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

/** @internal True when the request asks for a protocol upgrade (same rule as node:http). */
export function isUpgrade(headers: Readonly<Record<string, string>>): boolean {
  return headers['upgrade'] !== undefined && /(^|[\s,])upgrade($|[\s,])/i.test(headers['connection'] ?? '');
}

/** @internal Throws when a route path could be misread as a pattern by uWS. */
export function checkRoutes(routes: readonly WsRoute<unknown>[]): Map<string, WsRoute<unknown>> {
  const map = new Map<string, WsRoute<unknown>>();
  for (const r of routes) {
    if (!/^\/[^?#*]*$/.test(r.path) || r.path.split('/').some((s) => s.startsWith(':'))) {
      throw new Error(`http: invalid WebSocket route path ${JSON.stringify(r.path)} (exact paths only)`);
    }
    if (map.has(r.path)) throw new Error(`http: duplicate WebSocket route ${r.path}`);
    map.set(r.path, r);
  }
  return map;
}

/** @internal Formats an error (with stack) for the log. */
export function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
}

/** @internal What the idle sweeper needs from a connection. */
export interface IdleTracked {
  lastActive: number;
  readonly idleMs: number;
  readonly closed: boolean;
  close(code: number, reason: string): void;
}

/**
 * @internal One interval timer for all connections of a server that closes
 * those idle for longer than their route's timeout (code 1001). The period is a
 * quarter of the shortest timeout (250 ms .. 5 s), so a connection is closed
 * between 1x and 1.25x its timeout.
 */
export class IdleSweeper {
  readonly #conns = new Set<IdleTracked>();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(idleSeconds: readonly number[]) {
    const shortest = Math.min(...idleSeconds.filter((s) => s > 0).map((s) => s * 1000));
    if (Number.isFinite(shortest)) {
      const period = Math.min(5000, Math.max(250, shortest / 4));
      this.#timer = setInterval(() => this.#sweep(), period);
      this.#timer.unref();
    }
  }

  add(c: IdleTracked): void {
    if (c.idleMs > 0 && this.#timer !== undefined) this.#conns.add(c);
  }

  delete(c: IdleTracked): void {
    this.#conns.delete(c);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#conns.clear();
  }

  #sweep(): void {
    const now = Date.now();
    // Deleting the current entry while iterating a Set is well-defined.
    for (const c of this.#conns) {
      if (c.closed) this.#conns.delete(c);
      else if (now - c.lastActive > c.idleMs) c.close(1001, 'idle timeout');
    }
  }
}

/**
 * @internal Checks a close code (1000-1003, 1007-1014, 3000-4999) and cuts the
 * reason to the 123 bytes a close frame allows. Throws RangeError on a bad code.
 */
export function closeArgs(code: number, reason: string): string {
  const ok = Number.isInteger(code) && ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
  if (!ok) throw new RangeError(`invalid WebSocket close code ${code}`);
  let r = reason;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}

/** @internal Runs a route callback; a throw is logged and closes the connection with 1011. */
export function guard(log: (l: string) => void, c: WsConnection<unknown>, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log(`http: WebSocket ${what} callback failed: ${describeError(err)}`);
    if (what !== 'close') c.close(1011, 'internal error');
  }
}
