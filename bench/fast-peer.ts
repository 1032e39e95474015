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
import { ClientHandshake, DEFAULT_LIMITS, SealedChannel, backoffDelay, codeForClose, isFatalCode } from '../protocol/index.js';

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

/**
 * At most `max` connection attempts in flight across the peers that share
 * it; the rest wait their turn (first come, first served).
 *
 * Why: a real fleet dials from thousands of machines, each with its own
 * CPU. Here a few load-generator processes share two cores with the
 * coordinator. Let 9,000 peers in one process dial at once after a
 * restart, and that process's event loop falls seconds behind: it answers
 * challenges too late, handshakes time out on both sides, every retry
 * costs more CPU, and the storm collapses inside the simulator (measured
 * here with other work on the host: 18,500 agents, 4,707 back after two minutes, the load generators
 * spending 18 ms of CPU per successful handshake while the coordinator
 * idled at 0.1 cores). With a gate each process offers the coordinator as
 * many handshakes as it can finish, and the figure measures the coordinator.
 *
 * @example
 * const gate = new ConnectGate(64);
 * new FastPeer({ ...opts, gate }).start();
 */
export class ConnectGate {
  #inflight = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`a connect gate needs a positive integer size, got ${max}`);
  }

  /** Runs `dial` now if a slot is free, else when one frees. The attempt must call {@link leave} once when it ends. */
  enter(dial: () => void): void {
    if (this.#inflight < this.max) {
      this.#inflight++;
      dial();
    } else this.#waiting.push(dial);
  }

  /** An attempt ended (welcomed, refused or failed): its slot goes to the next waiting one. */
  leave(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#inflight--;
  }
}

/**
 * How long an attempt may take from dialling to the welcome before the
 * peer gives up on it and dials again: twice the coordinator's own
 * handshake timeout, which should have closed the connection long before.
 * Without it a connection that neither side moves (seen here, rarely,
 * during 18,500-agent reconnect storms: every gate slot held by an
 * upgraded socket with no challenge and no close, for minutes) would stall
 * the whole fleet. Each one is counted and reported, since it means the
 * coordinator did not enforce its limit.
 */
export const CLIENT_HANDSHAKE_DEADLINE_MS = 2 * DEFAULT_LIMITS.handshakeTimeoutMs;

/** How a {@link FastPeer} connects. */
export interface FastPeerOptions {
  url: string;
  coordinatorKey: Uint8Array;
  worker: string;
  credential: string;
  key: FastKey;
  backoffBaseMs: number;
  backoffCapMs: number;
  /**
   * Source address to dial from (any 127.x.y.z on Linux). One source
   * address has ~28,000 ephemeral ports towards one server port, so a fleet
   * larger than that must spread its connections over several. Costs CPU
   * per connect (the kernel's port search after bind()): leave it out below that.
   */
  localAddress?: string;
  /** Shared limit on attempts in flight (first connect and every reconnect); none if absent. */
  gate?: ConnectGate;
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
  /** Attempts abandoned after {@link CLIENT_HANDSHAKE_DEADLINE_MS} without a welcome or a close. */
  stalled = 0;
  /** Where each abandoned attempt was (`upgrade`, `challenge` or `welcome`: what it waited for), for the report. */
  stalledIn: string[] = [];
  #backoff = 0;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;
  heartbeatMs = 10_000;

  constructor(readonly o: FastPeerOptions) {}

  /** Dials now (or when the gate lets it). */
  start(): void {
    this.#dial();
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

  /** One attempt through the gate: the slot is held from dialling until the welcome or the close, whichever comes first. */
  #dial(): void {
    const gate = this.o.gate;
    if (!gate) {
      this.#connect(() => {});
      return;
    }
    gate.enter(() => {
      let held = true;
      const release = () => {
        if (held) {
          held = false;
          gate.leave();
        }
      };
      if (this.#closed) release();
      else this.#connect(release);
    });
  }

  #connect(release: () => void): void {
    if (this.#closed) return;
    this.attempts++;
    const o = this.o;
    const hs = new ClientHandshake({
      role: 'agent', coordinatorKey: o.coordinatorKey, native: true,
      auth: this.bootstrapped
        ? { method: 'key', worker: o.worker, seed: o.key.seed, publicKey: o.key.publicKey }
        : { method: 'bootstrap', worker: o.worker, credential: o.credential, seed: o.key.seed, publicKey: o.key.publicKey },
    });
    const ws = new WebSocket(o.url, { perMessageDeflate: false, handshakeTimeout: 10_000, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    ws.binaryType = 'nodebuffer';
    this.ws = ws;
    let stage: 'challenge' | 'welcome' | 'open' = 'challenge';
    let fatal = false;
    const deadline = setTimeout(() => {
      this.stalled++;
      this.stalledIn.push(ws.readyState === WebSocket.CONNECTING ? 'upgrade' : stage);
      ws.terminate();
    }, CLIENT_HANDSHAKE_DEADLINE_MS);
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
          clearTimeout(deadline);
          release();
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
      clearTimeout(deadline);
      release();
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
      this.#retry = setTimeout(() => this.#dial(), backoffDelay(this.#backoff++, o.backoffBaseMs, o.backoffCapMs));
    });
  }
}
