/**
 * A simulated agent connection for the fleet benchmark that speaks the real
 * wire (hello → challenge → auth → sealed welcome, per-frame MACs) but does
 * its client-side crypto with node:crypto instead of tweetnacl.
 *
 * Why: the real PeerClient's ClientHandshake spends about 25-30 ms of CPU
 * per connection in tweetnacl (verify the coordinator's signature, sign the
 * transcript, X25519). That is nothing for one agent on its own machine,
 * but 10,000 simulated agents on this 2-core box would need ~300 CPU
 * seconds, and the fleet figures would measure the simulator, not the
 * coordinator. The bytes on the wire are the same (Ed25519 and X25519 are
 * the same in both libraries); the fleet scenario measures the real
 * PeerClient's per-handshake cost separately and reports it.
 *
 * The handshake itself is protocol/channel.ts's ClientHandshake with
 * `native: true`, so the simulator cannot drift from the real wire.
 */
import { generateKeyPairSync } from 'node:crypto';
import WebSocket from 'ws';
import type { Message } from '../protocol/index.js';
import { ClientHandshake, SealedChannel, backoffDelay, codeForClose, isFatalCode } from '../protocol/index.js';

/** An Ed25519 identity made with node:crypto (fast): the raw seed and public key. */
export interface FastKey {
  publicKey: Uint8Array;
  seed: Uint8Array;
}

/** A fresh agent key pair (node:crypto). */
export function fastKey(): FastKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return { publicKey: new Uint8Array(spki.subarray(spki.length - 32)), seed: new Uint8Array(pkcs8.subarray(pkcs8.length - 32)) };
}

/** How a {@link FastPeer} connects. */
export interface FastPeerOptions {
  url: string;
  coordinatorKey: Uint8Array;
  worker: string;
  credential: string;
  key: FastKey;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Called on every welcome (first connect and each reconnect). */
  onWelcome: (peer: FastPeer) => void;
  /** Called once if the coordinator refuses for good. */
  onFatal: (peer: FastPeer, code: string, message: string) => void;
}

/**
 * One simulated agent connection: connects, authenticates (bootstrap the
 * first time, key afterwards), answers pings, reconnects with the real
 * backoff until closed.
 */
export class FastPeer {
  ws: WebSocket | null = null;
  channel: SealedChannel | null = null;
  open = false;
  bootstrapped = false;
  welcomes = 0;
  /** Connection attempts in total. */
  attempts = 0;
  #backoff = 0;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;
  heartbeatMs = 10_000;

  constructor(readonly o: FastPeerOptions) {}

  /** Dials now. */
  start(): void {
    this.#connect();
  }

  /** Sends a sealed ping if connected (the fleet child calls this on the heartbeat schedule). */
  ping(): void {
    if (this.open && this.channel && this.ws) this.ws.send(this.channel.seal({ type: 'ping', t: Date.now() }));
  }

  /** Closes for good. */
  close(): void {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.ws?.terminate();
  }

  #connect(): void {
    if (this.#closed) return;
    this.attempts++;
    const o = this.o;
    const hs = new ClientHandshake({
      role: 'agent', coordinatorKey: o.coordinatorKey, native: true,
      auth: this.bootstrapped
        ? { method: 'key', worker: o.worker, seed: o.key.seed, publicKey: o.key.publicKey }
        : { method: 'bootstrap', worker: o.worker, credential: o.credential, seed: o.key.seed, publicKey: o.key.publicKey },
    });
    const ws = new WebSocket(o.url, { perMessageDeflate: false, handshakeTimeout: 10_000 });
    ws.binaryType = 'nodebuffer';
    this.ws = ws;
    let stage: 'challenge' | 'welcome' | 'open' = 'challenge';
    let fatal = false;
    ws.on('open', () => ws.send(hs.hello()));
    ws.on('message', (data: Buffer) => {
      try {
        if (stage === 'challenge') {
          ws.send(hs.answer(data));
          this.channel = hs.channel;
          stage = 'welcome';
          return;
        }
        const msg: Message = this.channel!.open(data);
        if (msg.type === 'error') {
          if (isFatalCode(msg.code)) {
            fatal = true;
            o.onFatal(this, msg.code, msg.message);
          }
          return;
        }
        if (stage === 'welcome') {
          stage = 'open';
          this.open = true;
          this.bootstrapped = true;
          this.#backoff = 0;
          this.welcomes++;
          if (msg.type === 'welcome') this.heartbeatMs = msg.heartbeatMs;
          o.onWelcome(this);
          return;
        }
        if (msg.type === 'ping') ws.send(this.channel!.seal({ type: 'pong', t: msg.t }));
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code && isFatalCode(code)) {
          fatal = true;
          o.onFatal(this, code, (err as Error).message);
        }
        ws.terminate();
      }
    });
    ws.on('error', () => {});
    ws.on('close', (closeCode: number, reason: Buffer) => {
      // Refusals during authentication arrive unsealed; the close code carries them (as PeerClient reads them).
      const coded = codeForClose(closeCode);
      if (!fatal && coded && isFatalCode(coded)) {
        fatal = true;
        o.onFatal(this, coded, reason.toString());
      }
      this.open = false;
      this.channel = null;
      if (this.ws !== ws) return;
      this.ws = null;
      if (fatal || this.#closed) return;
      this.#retry = setTimeout(() => this.#connect(), backoffDelay(this.#backoff++, o.backoffBaseMs, o.backoffCapMs));
    });
  }
}
