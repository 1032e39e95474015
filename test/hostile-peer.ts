/**
 * A hostile peer for wire tests: a raw `ws` client that does the handshake
 * by hand with the protocol's own pieces, can stop at any step (socket
 * open, hello sent, challenge checked, auth sent, welcome received), and
 * can then send any bytes at all: tampered sealed frames, replays, text
 * frames, oversized frames.
 *
 * It decodes everything the coordinator sends (sealed when it can, in the
 * clear otherwise: refusals during the handshake are unsealed), remembers
 * the last `error` frame, and reports it with the WebSocket close code, so
 * a test can assert both exactly.
 *
 * @example
 * const peer = await connectPeer(rig.c.connectUrl, key, { method: 'bootstrap', worker, credential, seed, publicKey });
 * peer.sendSealed({ type: 'nope' });
 * const close = await peer.nextClose(); // { code: 4001, reason: 'UNKNOWN_TYPE', error: { code: 'UNKNOWN_TYPE', message: ... } }
 */
import WebSocket from 'ws';
import type { ClientAuth, Limits, Message, Role, SealedChannel } from '../protocol/index.js';
import { ClientHandshake, DEFAULT_LIMITS, ProtocolError, decodeMessage, encode } from '../protocol/index.js';

/** How a connection ended, and the last error frame the coordinator sent before it did. */
export interface PeerClose {
  code: number;
  reason: string;
  error?: { code: string; message: string };
}

/** One frame the coordinator sent. `msg` is absent when it could not be decoded either way. */
export interface Received {
  bytes: Buffer;
  binary: boolean;
  sealed: boolean;
  msg?: Message;
}

/** Where {@link connectPeer} stops. */
export type Stage =
  /** The socket is open; nothing sent. */
  | 'socket'
  /** The hello is sent; the challenge is not awaited. */
  | 'hello'
  /** The challenge arrived and was checked; the auth frame is computed (`authBytes`) but not sent. */
  | 'challenge'
  /** The auth frame is sent; the welcome is not awaited. */
  | 'auth'
  /** The welcome arrived (default). */
  | 'welcome';

/** Options of {@link connectPeer}. */
export interface ConnectOptions {
  /** Defaults to `factory` for token auth, `agent` otherwise. */
  role?: Role;
  /** The protocol version to put in the hello. */
  version?: number;
  stopAfter?: Stage;
  /** Bound on each wait (socket open, challenge, welcome). */
  timeoutMs?: number;
  limits?: Limits;
}

/** The connection closed while the peer was waiting for a frame. */
export class PeerClosedError extends Error {
  readonly close: PeerClose;
  constructor(what: string, close: PeerClose) {
    super(`connection closed while waiting for ${what}: ${close.code} ${close.reason}${close.error ? ` (${close.error.code}: ${close.error.message})` : ''}`);
    this.name = 'PeerClosedError';
    this.close = close;
  }
}

interface Waiter {
  pred: (r: Received) => boolean;
  what: string;
  resolve: (r: Received) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A raw connection to `/api/v1/connect`; see {@link connectPeer}. */
export class HostilePeer {
  readonly ws: WebSocket;
  /** The handshake, once a hello was sent through {@link connectPeer}. */
  handshake: ClientHandshake | null = null;
  /** The sealed channel, once the challenge was answered. */
  channel: SealedChannel | null = null;
  /** The auth frame computed from the challenge (sent unless stopped at `challenge`). */
  authBytes: Uint8Array | null = null;
  /** The first sealed message (welcome or factory_welcome). */
  welcome: Message | null = null;
  /** Every frame received, in order. */
  readonly received: Received[] = [];
  /** The last `error` frame received. */
  lastError: { code: string; message: string } | undefined;
  /** Transport errors the `ws` client reported (kept so they never go unhandled). */
  readonly socketErrors: Error[] = [];
  readonly timeoutMs: number;
  #consumed = 0;
  #waiters = new Set<Waiter>();
  #close: PeerClose | null = null;
  readonly #closed: Promise<PeerClose>;

  private constructor(ws: WebSocket, timeoutMs: number) {
    this.ws = ws;
    this.timeoutMs = timeoutMs;
    ws.binaryType = 'nodebuffer';
    ws.on('error', (err) => this.socketErrors.push(err));
    ws.on('message', (data: Buffer, binary: boolean) => this.#onFrame(data, binary));
    this.#closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        const close: PeerClose = { code, reason: reason.toString() };
        if (this.lastError) close.error = this.lastError;
        this.#close = close;
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(new PeerClosedError(w.what, close));
        }
        this.#waiters.clear();
        resolve(close);
      });
    });
  }

  /**
   * Opens a WebSocket to `url` and resolves once it is open.
   *
   * @example
   * const peer = await HostilePeer.open(rig.c.connectUrl);
   */
  static open(url: string, timeoutMs = 5000): Promise<HostilePeer> {
    // No maxPayload on our side: the hostile peer should read whatever comes.
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const peer = new HostilePeer(ws, timeoutMs);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(peer));
      ws.once('close', (code) => reject(new Error(`socket to ${url} closed (${code}) before it opened: ${peer.socketErrors.map((e) => e.message).join('; ')}`)));
    });
  }

  #onFrame(bytes: Buffer, binary: boolean): void {
    const r: Received = { bytes, binary, sealed: false };
    if (binary) {
      // Sealed first: an unsealed frame cannot pass the MAC, and a failed open
      // does not move the receive counter. Refusals during the handshake come unsealed.
      if (this.channel) {
        try {
          r.msg = this.channel.open(bytes);
          r.sealed = true;
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }
      if (!r.msg) {
        try {
          r.msg = decodeMessage(bytes, DEFAULT_LIMITS);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }
      if (r.msg?.type === 'error') this.lastError = { code: r.msg.code, message: r.msg.message };
    }
    this.received.push(r);
    for (const w of this.#waiters) {
      if (!w.pred(r)) continue;
      this.#waiters.delete(w);
      clearTimeout(w.timer);
      this.#consumed = this.received.length;
      w.resolve(r);
      return;
    }
  }

  /** Whether the socket has closed. */
  get isClosed(): boolean {
    return this.#close !== null;
  }

  /**
   * The next frame not yet consumed that matches `pred` (any frame by
   * default). Rejects with {@link PeerClosedError} if the connection closes
   * first, or after `timeoutMs`.
   */
  nextFrame(pred: (r: Received) => boolean = () => true, what = 'a frame', timeoutMs = this.timeoutMs): Promise<Received> {
    for (let i = this.#consumed; i < this.received.length; i++) {
      const r = this.received[i]!;
      if (pred(r)) {
        this.#consumed = i + 1;
        return Promise.resolve(r);
      }
    }
    if (this.#close) return Promise.reject(new PeerClosedError(what, this.#close));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred, what, resolve, reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received: ${this.describeReceived()}`));
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  /** The next decoded message of a given type (skipping others). */
  async nextMessage<T extends Message['type']>(type: T, timeoutMs = this.timeoutMs): Promise<Extract<Message, { type: T }>> {
    const r = await this.nextFrame((f) => f.msg?.type === type, `a ${type} message`, timeoutMs);
    return r.msg as Extract<Message, { type: T }>;
  }

  /**
   * Resolves when the connection closes, with the close code, reason and the
   * last error frame received. Rejects after `timeoutMs` if it stays open.
   */
  nextClose(timeoutMs = this.timeoutMs): Promise<PeerClose> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for the coordinator to close; received: ${this.describeReceived()}`)), timeoutMs);
    });
    return Promise.race([this.#closed, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends raw bytes as one binary message. */
  send(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Sends a text message (never part of the protocol). */
  sendText(text: string): void {
    this.ws.send(text, { binary: false });
  }

  /** Seals a body with the next counter without sending it. */
  sealRaw(body: Uint8Array): Buffer {
    if (!this.channel) throw new TypeError('no sealed channel yet: answer the challenge first');
    return this.channel.sealBytes(body);
  }

  /** Encodes any value (a message or not), seals it and sends it. */
  sendSealed(msg: unknown): void {
    this.send(this.sealRaw(encode(msg)));
  }

  /** Drops the connection at once. */
  terminate(): void {
    this.ws.terminate();
  }

  /** A short summary of what arrived, for timeout messages. */
  describeReceived(): string {
    if (this.received.length === 0) return 'nothing';
    return this.received.map((r) => (r.msg ? `${r.msg.type}${r.msg.type === 'error' ? `(${r.msg.code})` : ''}${r.sealed ? '' : ' unsealed'}` : `${r.bytes.length} undecodable bytes`)).join(', ');
  }
}

/**
 * Dials `url` and runs the client side of the handshake by hand, stopping
 * after `opts.stopAfter` (default: once the welcome arrived). Rejects with
 * {@link PeerClosedError} if the coordinator closes first, or with the
 * ProtocolError `ClientHandshake.answer` throws (e.g. COORDINATOR_IMPOSTOR);
 * the socket is dropped in both cases.
 *
 * @example
 * const peer = await connectPeer(url, key, { method: 'key', worker, seed }, { stopAfter: 'auth' });
 * const close = await peer.nextClose();
 */
export async function connectPeer(url: string, coordinatorKey: Uint8Array | string, auth: ClientAuth, opts: ConnectOptions = {}): Promise<HostilePeer> {
  const stop = opts.stopAfter ?? 'welcome';
  const key = typeof coordinatorKey === 'string' ? new Uint8Array(Buffer.from(coordinatorKey, 'base64')) : coordinatorKey;
  const peer = await HostilePeer.open(url, opts.timeoutMs);
  if (stop === 'socket') return peer;
  try {
    const hs = new ClientHandshake({
      role: opts.role ?? (auth.method === 'token' ? 'factory' : 'agent'), coordinatorKey: key, auth,
      ...(opts.limits ? { limits: opts.limits } : {}), ...(opts.version !== undefined ? { version: opts.version } : {}),
    });
    peer.handshake = hs;
    peer.send(hs.hello());
    if (stop === 'hello') return peer;
    const challenge = await peer.nextFrame(() => true, 'the challenge');
    peer.authBytes = hs.answer(challenge.bytes);
    peer.channel = hs.channel;
    if (stop === 'challenge') return peer;
    peer.send(peer.authBytes);
    if (stop === 'auth') return peer;
    const welcome = await peer.nextFrame((r) => r.sealed, 'the welcome');
    // A refusal after the keys are set (e.g. an internal error while welcoming) comes sealed.
    if (welcome.msg?.type === 'error') throw new PeerClosedError('the welcome', await peer.nextClose());
    peer.welcome = welcome.msg!;
    return peer;
  } catch (err) {
    peer.terminate();
    throw err;
  }
}
