import type { KeyObject } from 'node:crypto';
import { encode, decodeChunkHeader, decodeMessage } from './codec.js';
import { ProtocolError } from './errors.js';
import type { ErrorCode } from './errors.js';
import type { Limits } from './limits.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Auth, Challenge, Chunk, Hello, Message, Role } from './messages.js';
import { PROTOCOL_VERSION, MIN_PROTOCOL_VERSION } from './version.js';
import {
  deriveSessionKeys, ed25519PrivateKey, ephemeralFast, ephemeralNacl, frameMac, randomNonce, sameBytes, sha256, signFast, signNacl, verifyFast, verifyNacl,
} from './crypto.js';
import type { EphemeralKey } from './crypto.js';

/** Bytes before a sealed frame's body: an 8-byte big-endian counter and a 32-byte HMAC-SHA256. */
export const SEALED_HEADER_BYTES = 40;
/** The first protocol version with data frames. */
export const DATA_FRAMES_VERSION = 3;
/** Set in a frame's first byte (the counter's top bit) when it is a data frame. */
const DATA_FLAG = 0x80;

/**
 * One direction-pair of a sealed session. Each frame is
 * `counter (u64 BE) || HMAC-SHA256(key, counter || body) || body`. The
 * counter starts at 0 per direction per session, so a frame replayed,
 * dropped, reordered or carried over from another session fails.
 *
 * From protocol version 3 an upload's chunk travels as a **data frame**:
 * `counter (top bit set) || HMAC-SHA256(key, counter || n || header) || n
 * (u32 BE) || header (n bytes: msgpack {type: 'chunk', upload, offset, size})
 * || the chunk's bytes`. The MAC covers where the bytes go and how many
 * there are, not the bytes themselves: those are covered by the SHA-256 in
 * the (sealed) `upload_end`, which the coordinator checks against the bytes
 * it received before it commits anything. Hashing each megabyte twice more
 * for a MAC was a fifth of an upload's CPU on each side.
 *
 * @example
 * ws.send(channel.seal({ type: 'ping', t: Date.now() }));
 * const msg = channel.open(bytes); // throws ProtocolError
 */
export class SealedChannel {
  readonly #sendKey: Buffer;
  readonly #recvKey: Buffer;
  readonly #limits: Limits;
  #sent = 0;
  #received = 0;
  /** Whether chunks travel as data frames, both ways (the session's version is 3 or later). */
  readonly dataFrames: boolean;

  constructor(sendKey: Buffer, recvKey: Buffer, limits: Limits = DEFAULT_LIMITS, version = 1) {
    this.#sendKey = sendKey;
    this.#recvKey = recvKey;
    this.#limits = limits;
    this.dataFrames = version >= DATA_FRAMES_VERSION;
  }

  /** Encodes and seals a message (a chunk as a data frame when the session allows). */
  seal(msg: Message): Buffer {
    if (msg.type === 'chunk' && this.dataFrames) return this.#sealData(msg);
    return this.sealBytes(encode(msg));
  }

  #sealData(msg: Chunk): Buffer {
    const header = encode({ type: 'chunk', upload: msg.upload, offset: msg.offset, size: msg.data.length });
    const bodyAt = SEALED_HEADER_BYTES + 4 + header.length;
    const frame = Buffer.allocUnsafe(bodyAt + msg.data.length);
    frame.writeUInt32BE(Math.floor(this.#sent / 2 ** 32), 0);
    frame.writeUInt32BE(this.#sent >>> 0, 4);
    frame[0]! |= DATA_FLAG;
    this.#sent++;
    frame.writeUInt32BE(header.length, SEALED_HEADER_BYTES);
    frame.set(header, SEALED_HEADER_BYTES + 4);
    frame.set(msg.data, bodyAt);
    frameMac(this.#sendKey, frame.subarray(0, 8), frame.subarray(SEALED_HEADER_BYTES, bodyAt)).copy(frame, 8);
    return frame;
  }

  /** Seals an already encoded body. */
  sealBytes(body: Uint8Array): Buffer {
    const frame = Buffer.allocUnsafe(SEALED_HEADER_BYTES + body.length);
    frame.writeUInt32BE(Math.floor(this.#sent / 2 ** 32), 0);
    frame.writeUInt32BE(this.#sent >>> 0, 4);
    this.#sent++;
    frameMac(this.#sendKey, frame.subarray(0, 8), body).copy(frame, 8);
    frame.set(body, SEALED_HEADER_BYTES);
    return frame;
  }

  /** Verifies and decodes one sealed frame from the peer. */
  open(frame: Uint8Array): Message {
    if (frame.length > this.#limits.maxFrameBytes) {
      throw new ProtocolError('FRAME_TOO_LARGE', `frame of ${frame.length} bytes exceeds maxFrameBytes (${this.#limits.maxFrameBytes})`);
    }
    if (frame.length < SEALED_HEADER_BYTES + 1) {
      throw new ProtocolError('MALFORMED_FRAME', `sealed frame of ${frame.length} bytes is shorter than its ${SEALED_HEADER_BYTES}-byte header plus a body`);
    }
    const header = frame.subarray(0, 8);
    const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    // Before version 3 the flag means nothing: such a frame fails the MAC like any other tampering.
    if (frame[0]! & DATA_FLAG && this.dataFrames) return this.#openData(view);
    const body = frame.subarray(SEALED_HEADER_BYTES);
    // The MAC first: a tampered counter must read as tampering, not as a replay.
    if (!sameBytes(frameMac(this.#recvKey, header, body), frame.subarray(8, SEALED_HEADER_BYTES))) {
      throw new ProtocolError('BAD_MAC', `frame ${this.#received} failed its MAC check`);
    }
    this.#count(view.readUInt32BE(0) * 2 ** 32 + view.readUInt32BE(4));
    return decodeMessage(body, this.#limits);
  }

  /** Checks a verified frame's counter is the next one, and counts it. */
  #count(counter: number): void {
    if (counter < this.#received) throw new ProtocolError('REPLAYED_FRAME', `frame counter ${counter} was already used (expected ${this.#received})`);
    if (counter > this.#received) throw new ProtocolError('SKIPPED_FRAME', `frame counter ${counter} skips ahead of ${this.#received}`);
    this.#received++;
  }

  #openData(frame: Buffer): Chunk {
    const n = frame.length >= SEALED_HEADER_BYTES + 4 ? frame.readUInt32BE(SEALED_HEADER_BYTES) : -1;
    const bodyAt = SEALED_HEADER_BYTES + 4 + n;
    // A header length that cannot fit was never sealed by the peer: tampering (or junk), like a wrong MAC.
    if (n < 1 || bodyAt >= frame.length || !sameBytes(frameMac(this.#recvKey, frame.subarray(0, 8), frame.subarray(SEALED_HEADER_BYTES, bodyAt)), frame.subarray(8, SEALED_HEADER_BYTES))) {
      throw new ProtocolError('BAD_MAC', `frame ${this.#received} failed its MAC check`);
    }
    this.#count((frame.readUInt32BE(0) & 0x7fffffff) * 2 ** 32 + frame.readUInt32BE(4));
    const h = decodeChunkHeader(frame.subarray(SEALED_HEADER_BYTES + 4, bodyAt), this.#limits);
    const data = frame.subarray(bodyAt);
    if (data.length !== h.size) throw new ProtocolError('MALFORMED_FRAME', `data frame carries ${data.length} bytes, its header says ${h.size}`);
    return { type: 'chunk', upload: h.upload, offset: h.offset, data };
  }
}

function transcriptOf(helloBytes: Uint8Array, v: number, nonce: Uint8Array, ephemeral: Uint8Array): Buffer {
  const vb = Buffer.alloc(2);
  vb.writeUInt16BE(v);
  return sha256('buildwire handshake v1', helloBytes, vb, nonce, ephemeral);
}

const SERVER_LABEL = Buffer.from('bw-server');
const CLIENT_LABEL = Buffer.from('bw-client');

function clientSigned(transcript: Uint8Array, worker: string): Buffer {
  return Buffer.concat([CLIENT_LABEL, transcript, Buffer.from(worker)]);
}

/** How a client proves who it is. */
export type ClientAuth =
  | { method: 'bootstrap'; worker: string; credential: string; seed: Uint8Array; publicKey: Uint8Array }
  | { method: 'key'; worker: string; seed: Uint8Array; publicKey?: Uint8Array }
  | { method: 'token'; token: string };

/**
 * The dialling side of the handshake: `hello()`, then `answer(challenge)`
 * (which checks the coordinator's identity), then `channel` is ready.
 *
 * @example
 * const hs = new ClientHandshake({ role: 'agent', coordinatorKey, auth });
 * ws.send(hs.hello());
 * ws.once('message', (b) => { ws.send(hs.answer(b)); const ch = hs.channel; });
 */
export class ClientHandshake {
  readonly #role: Role;
  readonly #coordinatorKey: Uint8Array;
  readonly #auth: ClientAuth;
  readonly #limits: Limits;
  readonly #native: boolean;
  readonly #ephemeral: EphemeralKey;
  #helloBytes: Uint8Array | undefined;
  #channel: SealedChannel | undefined;
  version = 0;

  /**
   * `native` does the client's crypto with node:crypto instead of tweetnacl
   * (same bytes, about 30 times less CPU): for load generators that play
   * thousands of agents on one machine. Real agents sign once per connection
   * and use tweetnacl.
   */
  constructor(opts: { role: Role; coordinatorKey: Uint8Array; auth: ClientAuth; limits?: Limits; version?: number; native?: boolean }) {
    if (opts.coordinatorKey.length !== 32) throw new RangeError(`coordinator key must be 32 bytes, got ${opts.coordinatorKey.length}`);
    this.#native = opts.native ?? false;
    this.#ephemeral = this.#native ? ephemeralFast() : ephemeralNacl();
    this.#role = opts.role;
    this.#coordinatorKey = opts.coordinatorKey;
    this.#auth = opts.auth;
    this.#limits = opts.limits ?? DEFAULT_LIMITS;
    this.version = opts.version ?? PROTOCOL_VERSION;
  }

  /** The first frame to send. */
  hello(): Uint8Array {
    const hello: Hello = { type: 'hello', v: this.version, role: this.#role, nonce: randomNonce(), ephemeral: this.#ephemeral.publicKey };
    this.#helloBytes = encode(hello);
    return this.#helloBytes;
  }

  /** Checks the coordinator's challenge and returns the auth frame to send. Throws ProtocolError. */
  answer(challengeBytes: Uint8Array): Uint8Array {
    if (!this.#helloBytes) throw new TypeError('answer() called before hello()');
    const msg = decodeMessage(challengeBytes, this.#limits);
    if (msg.type === 'error') throw new ProtocolError(knownCode(msg.code), msg.message);
    if (msg.type !== 'challenge') throw new ProtocolError('UNEXPECTED_MESSAGE', `expected a challenge, got ${msg.type}`);
    const transcript = transcriptOf(this.#helloBytes, msg.v, msg.nonce, msg.ephemeral);
    const verifyServer = this.#native ? verifyFast : verifyNacl;
    if (!verifyServer(this.#coordinatorKey, Buffer.concat([SERVER_LABEL, transcript]), msg.sig)) {
      throw new ProtocolError('COORDINATOR_IMPOSTOR', 'the coordinator\'s handshake signature does not match the pinned coordinator key');
    }
    this.version = msg.v;
    const keys = deriveSessionKeys(this.#ephemeral.agree(msg.ephemeral), transcript);
    this.#channel = new SealedChannel(keys.clientToServer, keys.serverToClient, this.#limits, this.version);
    const a = this.#auth;
    const pub = a.method === 'token' ? undefined : a.publicKey;
    const signClient = (seed: Uint8Array, m: Uint8Array) => (this.#native ? signFast(ed25519PrivateKey(seed, pub), m) : signNacl(seed, m));
    let auth: Auth;
    switch (a.method) {
      case 'bootstrap':
        auth = { type: 'auth', method: 'bootstrap', worker: a.worker, credential: a.credential, key: a.publicKey, sig: signClient(a.seed, clientSigned(transcript, a.worker)) };
        break;
      case 'key':
        auth = { type: 'auth', method: 'key', worker: a.worker, sig: signClient(a.seed, clientSigned(transcript, a.worker)) };
        break;
      case 'token':
        auth = { type: 'auth', method: 'token', token: a.token };
        break;
    }
    return encode(auth);
  }

  /** The sealed channel, once `answer` has run. */
  get channel(): SealedChannel {
    if (!this.#channel) throw new TypeError('channel is not ready before answer()');
    return this.#channel;
  }
}

function knownCode(code: string): ErrorCode {
  return (/^[A-Z_]+$/.test(code) ? code : 'UNEXPECTED_MESSAGE') as ErrorCode;
}

/**
 * The coordinator's side: `onHello` returns the signed challenge,
 * `onAuth` parses the proof, `verifyClient` checks an agent's signature
 * (node:crypto, fast), then `channel` is ready.
 *
 * @example
 * const hs = new ServerHandshake(identityKeyObject, limits);
 * send(hs.onHello(bytes)); const auth = hs.onAuth(next); hs.verifyClient(auth, agentKey);
 */
export class ServerHandshake {
  readonly #identity: KeyObject;
  readonly #limits: Limits;
  #transcript: Buffer | undefined;
  #channel: SealedChannel | undefined;
  role: Role = 'agent';
  version = 0;

  constructor(identity: KeyObject, limits: Limits = DEFAULT_LIMITS) {
    this.#identity = identity;
    this.#limits = limits;
  }

  /** Reads a hello and returns the challenge frame. Throws ProtocolError. */
  onHello(helloBytes: Uint8Array): Uint8Array {
    const msg = decodeMessage(helloBytes, this.#limits);
    if (msg.type !== 'hello') throw new ProtocolError('UNEXPECTED_MESSAGE', `expected hello, got ${msg.type}`);
    if (msg.v < MIN_PROTOCOL_VERSION) {
      throw new ProtocolError('VERSION_UNSUPPORTED', `protocol version ${msg.v} is older than the oldest supported (${MIN_PROTOCOL_VERSION})`);
    }
    this.role = msg.role;
    this.version = Math.min(msg.v, PROTOCOL_VERSION);
    const eph = ephemeralFast();
    const nonce = randomNonce();
    this.#transcript = transcriptOf(helloBytes, this.version, nonce, eph.publicKey);
    let keys;
    try {
      keys = deriveSessionKeys(eph.agree(msg.ephemeral), this.#transcript);
    } catch (err) {
      throw new ProtocolError('MALFORMED_FRAME', `hello.ephemeral is not a usable X25519 key (${(err as Error).message})`);
    }
    this.#channel = new SealedChannel(keys.serverToClient, keys.clientToServer, this.#limits, this.version);
    const challenge: Challenge = {
      type: 'challenge', v: this.version, nonce, ephemeral: eph.publicKey,
      sig: signFast(this.#identity, Buffer.concat([SERVER_LABEL, this.#transcript])),
    };
    return encode(challenge);
  }

  /** Reads the client's auth message. Throws ProtocolError. */
  onAuth(bytes: Uint8Array): Auth {
    if (!this.#transcript) throw new TypeError('onAuth() called before onHello()');
    const msg = decodeMessage(bytes, this.#limits);
    if (msg.type !== 'auth') throw new ProtocolError('UNEXPECTED_MESSAGE', `expected auth, got ${msg.type}`);
    return msg;
  }

  /** Checks an agent's transcript signature against its public key. Throws BAD_SIGNATURE. */
  verifyClient(auth: Auth & { worker: string; sig: Uint8Array }, publicKey: Uint8Array): void {
    if (!this.#transcript) throw new TypeError('verifyClient() called before onHello()');
    if (!verifyFast(publicKey, clientSigned(this.#transcript, auth.worker), auth.sig)) {
      throw new ProtocolError('BAD_SIGNATURE', `worker ${auth.worker}: handshake signature does not verify with its registered key`);
    }
  }

  /** The sealed channel, ready after `onHello`; use it only once auth succeeded. */
  get channel(): SealedChannel {
    if (!this.#channel) throw new TypeError('channel is not ready before onHello()');
    return this.#channel;
  }
}

/**
 * An unsealed error frame, for refusals during the handshake.
 *
 * @example
 * ws.send(encodeError(err)); ws.close(err.closeCode, err.code);
 */
export function encodeError(err: ProtocolError): Uint8Array {
  return encode({ type: 'error', code: err.code, message: err.message });
}

/**
 * Signs a job assignment with the coordinator's identity key.
 *
 * @example
 * const { payload, sig } = signAssignment(identity, assignment);
 */
export function signAssignment(identity: KeyObject, assignment: unknown): { payload: Uint8Array; sig: Uint8Array } {
  const payload = encode(assignment);
  return { payload, sig: signFast(identity, Buffer.concat([Buffer.from('bw-assign'), payload])) };
}

/**
 * Verifies a signed assignment. node:crypto, not tweetnacl: tweetnacl takes
 * about 8 ms per verification here, which would be most of a job's dispatch
 * latency. Throws BAD_SIGNATURE.
 *
 * @example
 * const job = openAssignment(coordinatorKey, msg.payload, msg.sig);
 */
export function verifyAssignment(coordinatorKey: Uint8Array, payload: Uint8Array, sig: Uint8Array): void {
  if (!verifyFast(coordinatorKey, Buffer.concat([Buffer.from('bw-assign'), payload]), sig)) {
    throw new ProtocolError('BAD_SIGNATURE', 'job assignment signature does not match the pinned coordinator key');
  }
}
