import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { backoffDelay } from './backoff.js';
import { ClientHandshake } from './channel.js';
import type { ClientAuth, SealedChannel } from './channel.js';
import { ProtocolError, isFatalCode, codeForClose } from './errors.js';
import type { Limits } from './limits.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Message, Role } from './messages.js';

/** How a {@link PeerClient} dials and authenticates. */
export interface PeerClientOptions {
  /** The coordinator's `ws://…/api/v1/connect` URL. */
  url: string;
  /** The coordinator's pinned Ed25519 public key. */
  coordinatorKey: Uint8Array;
  role: Role;
  /** Called before each connection attempt: bootstrap on the first, key afterwards. */
  auth: () => ClientAuth;
  limits?: Limits;
  /** Reconnect backoff. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  log?: (line: string) => void;
}

/** Events a {@link PeerClient} emits. */
export interface PeerClientEvents {
  /** Authenticated; `welcome` is the first sealed message (welcome or factory_welcome). */
  open: [welcome: Message];
  /** A sealed message after the welcome. */
  message: [msg: Message];
  /** The connection dropped; a reconnect is scheduled. */
  disconnected: [reason: string];
  /** The coordinator refused us for good (burned credential, wrong key, impostor...); no reconnect. */
  fatal: [err: ProtocolError];
  /** Write buffer drained. */
  drain: [];
}

/**
 * An outbound connection to the coordinator that survives drops: dial,
 * handshake, sealed messages, heartbeats, and reconnects with capped,
 * jittered backoff until a fatal refusal or `close()`.
 *
 * @example
 * const c = new PeerClient({ url, coordinatorKey, role: 'agent', auth: () => ({ method: 'key', worker, seed }) });
 * c.on('open', (welcome) => ...); c.on('message', (m) => ...); c.start();
 */
export class PeerClient extends EventEmitter<PeerClientEvents> {
  readonly #o: Required<Omit<PeerClientOptions, 'log'>> & { log: (l: string) => void };
  #ws: WebSocket | null = null;
  #channel: SealedChannel | null = null;
  #open = false;
  #closed = false;
  #attempt = 0;
  #heartbeat: NodeJS.Timeout | null = null;
  #retry: NodeJS.Timeout | null = null;

  constructor(opts: PeerClientOptions) {
    super();
    this.#o = { limits: DEFAULT_LIMITS, backoffBaseMs: 250, backoffCapMs: 10_000, log: () => {}, ...opts };
  }

  /** Whether a sealed session is up. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Bytes queued in the socket. */
  get bufferedAmount(): number {
    return this.#ws?.bufferedAmount ?? 0;
  }

  /** Starts dialling. */
  start(): void {
    this.#connect();
  }

  /** Sends a sealed message; returns false if not connected. */
  send(msg: Message): boolean {
    if (!this.#open || !this.#channel || !this.#ws) return false;
    this.#ws.send(this.#channel.seal(msg));
    return true;
  }

  /** Sends an encoded body sealed; returns false if not connected. */
  sendEncoded(body: Uint8Array): boolean {
    if (!this.#open || !this.#channel || !this.#ws) return false;
    this.#ws.send(this.#channel.sealBytes(body));
    return true;
  }

  /** Closes for good. */
  close(): void {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#stopHeartbeat();
    this.#ws?.close(1000, 'closing');
    this.#ws?.terminate();
  }

  /** Drops the current connection without closing the client (tests, reconnect drills). */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  #connect(): void {
    if (this.#closed) return;
    const hs = new ClientHandshake({ role: this.#o.role, coordinatorKey: this.#o.coordinatorKey, auth: this.#o.auth(), limits: this.#o.limits });
    const ws = new WebSocket(this.#o.url, { perMessageDeflate: false, maxPayload: this.#o.limits.maxFrameBytes, handshakeTimeout: this.#o.limits.handshakeTimeoutMs });
    this.#ws = ws;
    let stage: 'challenge' | 'welcome' | 'open' = 'challenge';
    let fatal: ProtocolError | null = null;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => ws.send(hs.hello()));
    ws.on('message', (data: Buffer, isBinary) => {
      try {
        if (!isBinary) throw new ProtocolError('MALFORMED_FRAME', 'text frames are not part of the protocol');
        if (stage === 'challenge') {
          ws.send(hs.answer(data));
          this.#channel = hs.channel;
          stage = 'welcome';
          return;
        }
        const msg = this.#channel!.open(data);
        if (msg.type === 'error') {
          const err = new ProtocolError(/^[A-Z_]+$/.test(msg.code) ? (msg.code as never) : 'UNEXPECTED_MESSAGE', msg.message);
          if (isFatalCode(err.code)) fatal = err;
          this.#o.log(`coordinator refused: ${err.code}: ${err.message}`);
          return;
        }
        if (stage === 'welcome') {
          stage = 'open';
          this.#open = true;
          this.#attempt = 0;
          this.#startHeartbeat(msg);
          this.emit('open', msg);
          return;
        }
        if (msg.type === 'ping') {
          this.send({ type: 'pong', t: msg.t });
          return;
        }
        this.emit('message', msg);
      } catch (err) {
        if (err instanceof ProtocolError) {
          if (isFatalCode(err.code)) fatal = err;
          this.#o.log(`connection error: ${err.code}: ${err.message}`);
          ws.close(err.closeCode < 3000 && err.closeCode !== 1009 && err.closeCode !== 1001 ? 4000 : err.closeCode, err.code);
        } else {
          this.#o.log(`connection error: ${(err as Error).stack ?? String(err)}`);
          ws.terminate();
        }
      }
    });
    ws.on('drain' as never, () => this.emit('drain'));
    ws.on('error', (err) => this.#o.log(`websocket: ${err.message}`));
    ws.on('close', (code, reasonBuf) => {
      const reason = reasonBuf.toString() || String(code);
      const wasOpen = this.#open;
      this.#open = false;
      this.#channel = null;
      this.#stopHeartbeat();
      if (this.#ws !== ws) return;
      this.#ws = null;
      const coded = codeForClose(code);
      if (!fatal && coded && isFatalCode(coded)) fatal = new ProtocolError(coded, `closed by the coordinator: ${reason}`);
      if (fatal) {
        this.#closed = true;
        this.emit('fatal', fatal);
        return;
      }
      if (wasOpen) this.emit('disconnected', reason);
      if (this.#closed) return;
      const delay = backoffDelay(this.#attempt++, this.#o.backoffBaseMs, this.#o.backoffCapMs);
      this.#retry = setTimeout(() => this.#connect(), delay);
    });
  }

  #startHeartbeat(welcome: Message): void {
    const every = 'heartbeatMs' in welcome ? welcome.heartbeatMs : 10_000;
    this.#heartbeat = setInterval(() => this.send({ type: 'ping', t: Date.now() }), every);
    this.#heartbeat.unref();
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }
}
