/**
 * Unit tests of protocol/: the codec and its limits, a fuzz run over the
 * decoder and the sealed channel (only ProtocolError may ever escape), the
 * crypto cross-checks between tweetnacl and node:crypto, the whole handshake
 * in memory, sealed-channel counters, the backoff, and the coordinator's
 * Deadlines heap under a fake clock.
 */
import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import type { ClientAuth, Limits, Message, MessageType, Role } from '../protocol/index.js';
import {
  ClientHandshake, DEFAULT_LIMITS, ERROR_CODES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ProtocolError, REC, REC_PARTIAL, SEALED_HEADER_BYTES,
  SealedChannel, ServerHandshake, backoffDelay, codeForClose, decodeMessage, deriveSessionKeys, ed25519PrivateKey, encode, encodeError,
  ephemeralFast, ephemeralNacl, frameMac, generateSigningKeyPair, isFatalCode, publicKeyOf, resolveLimits, signFast, signNacl, verifyFast, verifyNacl,
} from '../protocol/index.js';
import { prng } from '../bench/util.js';
import { Deadlines } from '../coordinator/deadlines.js';
import type { Clock } from '../coordinator/deadlines.js';

/** Asserts `fn` throws a ProtocolError with this code, close code and message. */
function throwsCode(fn: () => unknown, code: keyof typeof ERROR_CODES, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.closeCode, ERROR_CODES[code]);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

const bytes = (n: number, fill = 7) => Buffer.alloc(n, fill);
const ULID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
const ULID2 = '01ARZ3NDEKTSV4RRFFQ69G5FAW';
const T = 1_763_712_000_000;

/** One valid example of every message type; the mapped type makes a missing type a compile error. */
const SAMPLES: { [K in MessageType]: Extract<Message, { type: K }> } = {
  hello: { type: 'hello', v: PROTOCOL_VERSION, role: 'agent', nonce: bytes(32, 1), ephemeral: bytes(32, 2) },
  challenge: { type: 'challenge', v: PROTOCOL_VERSION, nonce: bytes(32, 3), ephemeral: bytes(32, 4), sig: bytes(64, 5) },
  auth: { type: 'auth', method: 'bootstrap', worker: ULID, credential: 'bwb_secret', key: bytes(32, 6), sig: bytes(64, 7) },
  error: { type: 'error', code: 'BAD_MAC', message: 'frame 3 failed its MAC check' },
  welcome: { type: 'welcome', worker: ULID, job: { id: ULID2, nextBatch: 4 }, heartbeatMs: 10_000 },
  assign: { type: 'assign', payload: encode({ id: ULID2 }), sig: bytes(64, 8) },
  ack: { type: 'ack', job: ULID2, batch: 9 },
  cancel: { type: 'cancel', job: ULID2, reason: 'cancelled by alice' },
  recycle: { type: 'recycle', reason: 'job finished' },
  ping: { type: 'ping', t: T },
  pong: { type: 'pong', t: T },
  batch: {
    type: 'batch', job: ULID2, batch: 1, recs: [
      [T, REC.TASK, 0, { event: 'start', name: 'build' }],
      [T, REC.STDOUT, 0, Buffer.from('hello')],
      [T, REC.STDERR | REC_PARTIAL, 0, Buffer.from([0xff, 0xfe])],
      [T, REC.CONSOLE, 0, Buffer.alloc(0)],
      [T, REC.WORKER, 0, Buffer.from('uploading')],
      [T, REC.TASK, 0, { event: 'exit', code: 0, signal: null }],
      [T, REC.JOB, 0, { result: 'failed', reason: 'a task failed' }],
    ],
  },
  factory_welcome: { type: 'factory_welcome', factory: ULID, name: 'local', targets: ['local', 'ubuntu-22.04'], leaseMs: 300_000 },
  capacity: { type: 'capacity', free: 3 },
  lease: { type: 'lease', worker: ULID, target: 'local', credential: 'bwb_secret', expiresAt: T },
  created: { type: 'created', worker: ULID, instance: 'i-0abc' },
  renew: { type: 'renew', worker: ULID },
  renewed: { type: 'renewed', worker: ULID, expiresAt: T },
  lease_failed: { type: 'lease_failed', worker: ULID, reason: 'no capacity' },
  destroy: { type: 'destroy', worker: ULID, instance: null },
  upload_begin: { type: 'upload_begin', upload: ULID, job: ULID2, path: '/work/out/a.tar.gz', size: 1 << 30, mode: 0o644, mtime: T },
  chunk: { type: 'chunk', upload: ULID, offset: 4 << 20, data: bytes(1024, 9) },
  upload_end: { type: 'upload_end', upload: ULID, size: 1 << 30, sha256: bytes(32, 10), mtime: T },
  upload_abort: { type: 'upload_abort', upload: ULID, reason: '/work/out/a changed during upload: size 10 -> 20' },
  upload_ready: { type: 'upload_ready', upload: ULID, offset: 0 },
  chunk_ack: { type: 'chunk_ack', upload: ULID, offset: 8 << 20 },
  upload_done: { type: 'upload_done', upload: ULID, sha256: bytes(32, 11) },
  upload_failed: { type: 'upload_failed', upload: ULID, code: 'QUOTA_EXCEEDED', message: 'over max_artifact_bytes' },
  destroyed: { type: 'destroyed', worker: ULID },
  inventory: { type: 'inventory', instances: [{ worker: ULID, instance: 'i-0abc' }] },
};

const MORE_SAMPLES: Message[] = [
  { type: 'auth', method: 'key', worker: ULID, sig: bytes(64, 9) },
  { type: 'auth', method: 'token', token: 'bwf_token' },
  { type: 'welcome', worker: ULID, job: null, heartbeatMs: 1 },
  { type: 'hello', v: 0, role: 'factory', nonce: bytes(32), ephemeral: bytes(32) },
  { type: 'destroy', worker: ULID, instance: 'i-0abc' },
  { type: 'inventory', instances: [] },
];

const ALL_SAMPLES: Message[] = [...Object.values(SAMPLES), ...MORE_SAMPLES];

function line(n: number, fill = 0x61): [number, number, number, Buffer] {
  return [T, REC.STDOUT, 0, Buffer.alloc(n, fill)];
}

function batchOf(recs: unknown[]): Buffer {
  return encode({ type: 'batch', job: ULID, batch: 1, recs });
}

describe('codec', () => {
  for (const msg of ALL_SAMPLES) {
    const label = msg.type === 'auth' ? `auth (${msg.method})` : msg.type;
    test(`a ${label} message survives encode and decodeMessage unchanged`, () => {
      assert.deepEqual(decodeMessage(encode(msg)), msg);
    });
  }

  test('every message type has a round-trip sample', () => {
    assert.equal(Object.keys(SAMPLES).length, 30);
  });

  test('a batch of more than maxBatchRecords records is LIMIT_EXCEEDED naming the count and the limit', () => {
    const limits = resolveLimits({ maxBatchRecords: 3 });
    decodeMessage(batchOf([line(1), line(1), line(1)]), limits);
    throwsCode(() => decodeMessage(batchOf([line(1), line(1), line(1), line(1)]), limits), 'LIMIT_EXCEEDED', 'batch of 4 records exceeds maxBatchRecords (3)');
  });

  test('a line longer than maxLineBytes is LIMIT_EXCEEDED naming the record, its size and the limit', () => {
    const limits = resolveLimits({ maxLineBytes: 100, maxBatchBytes: 1000, maxFrameBytes: 1000 + 65536 });
    decodeMessage(batchOf([line(100)]), limits);
    throwsCode(() => decodeMessage(batchOf([line(5), line(101)]), limits), 'LIMIT_EXCEEDED', 'batch.recs[1] line of 101 bytes exceeds maxLineBytes (100)');
  });

  test('a batch of more than maxBatchBytes payload bytes is LIMIT_EXCEEDED naming the total and the limit', () => {
    const limits = resolveLimits({ maxLineBytes: 100, maxBatchBytes: 1000, maxFrameBytes: 1000 + 65536 });
    decodeMessage(batchOf(Array.from({ length: 10 }, () => line(100))), limits);
    throwsCode(() => decodeMessage(batchOf(Array.from({ length: 11 }, () => line(100))), limits), 'LIMIT_EXCEEDED', 'batch of 1100 bytes exceeds maxBatchBytes (1000)');
  });

  test('a frame longer than maxFrameBytes is FRAME_TOO_LARGE (close code 1009) naming its size and the limit', () => {
    const limits = resolveLimits({ maxLineBytes: 100, maxBatchBytes: 1000, maxFrameBytes: 1000 + 65536 });
    const max = limits.maxFrameBytes;
    const fits = encode({ type: 'ping', t: 1, pad: Buffer.alloc(max - 30) });
    assert.ok(fits.length <= max);
    decodeMessage(fits, limits);
    throwsCode(() => decodeMessage(Buffer.alloc(max + 1), limits), 'FRAME_TOO_LARGE', `frame of ${max + 1} bytes exceeds maxFrameBytes (${max})`);
    assert.equal(ERROR_CODES.FRAME_TOO_LARGE, 1009);
    const ch = new SealedChannel(bytes(32, 1), bytes(32, 1), limits);
    throwsCode(() => ch.open(Buffer.alloc(max + 1)), 'FRAME_TOO_LARGE', `frame of ${max + 1} bytes exceeds maxFrameBytes (${max})`);
  });

  test('trailing bytes after the one msgpack value are MALFORMED_FRAME', () => {
    const ping = encode({ type: 'ping', t: 1 });
    throwsCode(() => decodeMessage(Buffer.concat([ping, Buffer.from([0x00])])), 'MALFORMED_FRAME', new RegExp(`^frame of ${ping.length + 1} bytes is not one msgpack value \\(`));
    throwsCode(() => decodeMessage(Buffer.concat([ping, ping])), 'MALFORMED_FRAME', /is not one msgpack value/);
  });

  test('bytes that are not msgpack, or cut short, are MALFORMED_FRAME', () => {
    throwsCode(() => decodeMessage(Buffer.alloc(0)), 'MALFORMED_FRAME', 'frame is empty');
    const ping = encode({ type: 'ping', t: 1 });
    throwsCode(() => decodeMessage(ping.subarray(0, ping.length - 1)), 'MALFORMED_FRAME', new RegExp(`^frame of ${ping.length - 1} bytes is not one msgpack value`));
    throwsCode(() => decodeMessage(Buffer.from([0xd4, 0x99, 0x00])), 'MALFORMED_FRAME', /^frame of 3 bytes is not one msgpack value \(Unknown extension 153\)$/);
  });

  test('a value that is not a map with a string type is MALFORMED_FRAME naming what it got', () => {
    throwsCode(() => decodeMessage(encode([1, 2])), 'MALFORMED_FRAME', 'frame (array of 2) must be a map with a type');
    throwsCode(() => decodeMessage(encode(5)), 'MALFORMED_FRAME', 'frame 5 must be a map with a type');
    throwsCode(() => decodeMessage(encode({ t: 1 })), 'MALFORMED_FRAME', 'frame.type undefined must be a string');
    throwsCode(() => decodeMessage(encode({ type: 3 })), 'MALFORMED_FRAME', 'frame.type 3 must be a string');
  });

  test('an unknown type is UNKNOWN_TYPE, including names inherited from Object.prototype', () => {
    throwsCode(() => decodeMessage(encode({ type: 'nope' })), 'UNKNOWN_TYPE', 'message type "nope" is not known to this protocol version');
    for (const type of ['__proto__', 'toString', 'constructor', 'hasOwnProperty']) {
      throwsCode(() => decodeMessage(encode({ type })), 'UNKNOWN_TYPE', `message type ${JSON.stringify(type)} is not known to this protocol version`);
    }
  });

  test('a field of the wrong shape is MALFORMED_FRAME naming the field and the rule', () => {
    throwsCode(() => decodeMessage(encode({ ...SAMPLES.hello, nonce: bytes(31) })), 'MALFORMED_FRAME', 'hello.nonce (31 bytes) must be 32 bytes');
    throwsCode(() => decodeMessage(encode({ ...SAMPLES.hello, role: 'admin' })), 'MALFORMED_FRAME', 'hello.role "admin" must be one of agent, factory');
    throwsCode(() => decodeMessage(encode({ ...SAMPLES.ack, batch: 0 })), 'MALFORMED_FRAME', `ack.batch 0 must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`);
    throwsCode(() => decodeMessage(encode({ ...SAMPLES.ping, t: 1.5 })), 'MALFORMED_FRAME', `ping.t 1.5 must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`);
    throwsCode(() => decodeMessage(encode({ type: 'auth', method: 'password' })), 'MALFORMED_FRAME', 'auth.method "password" must be one of bootstrap, key, token');
    throwsCode(() => decodeMessage(encode({ type: 'auth', method: 'key', worker: ULID, sig: 'sig' })), 'MALFORMED_FRAME', 'auth.sig "sig" must be binary');
    throwsCode(() => decodeMessage(encode({ ...SAMPLES.created, worker: 'x'.repeat(27) })), 'MALFORMED_FRAME', /^created\.worker "x{27}" must be at most 26 characters$/);
  });

  test('a batch is checked record by record: empty, bad tuples and kinds an agent may not send are MALFORMED_FRAME', () => {
    throwsCode(() => decodeMessage(batchOf([])), 'MALFORMED_FRAME', 'batch.recs must not be empty');
    throwsCode(() => decodeMessage(batchOf([[T, 0, 0]])), 'MALFORMED_FRAME', 'batch.recs[0] (array of 3) must be [time, kind, task, data]');
    throwsCode(() => decodeMessage(batchOf([[-1, 0, 0, Buffer.from('x')]])), 'MALFORMED_FRAME', 'batch.recs[0][0] -1 must be a time in ms');
    throwsCode(() => decodeMessage(batchOf([[T, REC.CONTROL, 0, 'forged control line']])), 'MALFORMED_FRAME', 'batch.recs[0][1] 6 is not a kind an agent may send');
    throwsCode(() => decodeMessage(batchOf([[T, 0x20, 0, Buffer.from('x')]])), 'MALFORMED_FRAME', 'batch.recs[0][1] 32 must be a record kind');
    throwsCode(() => decodeMessage(batchOf([[T, REC.STDOUT, 0, 'text']])), 'MALFORMED_FRAME', 'batch.recs[0][3] "text" must be binary for a line record');
    throwsCode(() => decodeMessage(batchOf([[T, REC.TASK, 0, { event: 'boom' }]])), 'MALFORMED_FRAME', 'batch.recs[0][3] (map) must be a task start or exit event');
    throwsCode(() => decodeMessage(batchOf([[T, REC.JOB, 0, { result: 'maybe' }]])), 'MALFORMED_FRAME', 'batch.recs[0][3].result "maybe" must be one of completed, failed');
    throwsCode(() => decodeMessage(batchOf([[T, REC.STDOUT, 10_001, Buffer.from('x')]])), 'MALFORMED_FRAME', 'batch.recs[0][2] 10001 must be a task index');
  });

  test('a msgpack record definition in one frame does not change how the next frame decodes', () => {
    // 0xd4 0x72 0x40 defines record structure 0 as the keys that follow; 0x40 later would read as that record.
    const def = Buffer.concat([Buffer.from([0xd4, 0x72, 0x40]), encode(['type', 't']), encode('ping'), encode(5)]);
    assert.deepEqual(decodeMessage(def), { type: 'ping', t: 5 });
    // `t: 64` is encoded as the single byte 0x40.
    assert.deepEqual(decodeMessage(encode({ type: 'ping', t: 64 })), { type: 'ping', t: 64 });
  });

  test('resolveLimits refuses limits that are not positive integers or cannot hold a maximal line', () => {
    assert.throws(() => resolveLimits({ maxFrameBytes: 0 }), { name: 'RangeError', message: 'limit maxFrameBytes must be a positive integer, got 0' });
    assert.throws(() => resolveLimits({ maxBatchBytes: 10, maxLineBytes: 11 }), { name: 'RangeError', message: 'maxBatchBytes (10) must be at least maxLineBytes (11)' });
    assert.throws(() => resolveLimits({ maxFrameBytes: 1 << 20 }), { name: 'RangeError', message: `maxFrameBytes (1048576) must exceed maxBatchBytes (${DEFAULT_LIMITS.maxBatchBytes}) by 64 KiB for framing` });
    assert.deepEqual(resolveLimits(), DEFAULT_LIMITS);
  });

  test('error codes: close codes are unique, map back to their code, and only unfixable refusals are fatal', () => {
    const values = Object.values(ERROR_CODES);
    assert.equal(new Set(values).size, values.length);
    for (const [code, close] of Object.entries(ERROR_CODES)) assert.equal(codeForClose(close), code);
    assert.equal(codeForClose(1000), undefined);
    assert.ok(isFatalCode('CREDENTIAL_USED') && isFatalCode('COORDINATOR_IMPOSTOR') && isFatalCode('WORKER_RECYCLED'));
    assert.ok(!isFatalCode('BAD_MAC') && !isFatalCode('GOING_AWAY') && !isFatalCode('SUPERSEDED'));
    assert.deepEqual(decodeMessage(encodeError(new ProtocolError('NOT_OWNER', 'x'))), { type: 'error', code: 'NOT_OWNER', message: 'x' });
  });
});

describe('fuzzing the decoder and the sealed channel', () => {
  const limits: Limits = resolveLimits({ maxLineBytes: 4096, maxBatchBytes: 16384, maxFrameBytes: 16384 + 65536, maxBatchRecords: 64 });
  const KNOWN = new Set(Object.keys(ERROR_CODES));
  const INTERESTING = [0xc1, 0xc0, 0xff, 0x00, 0x7f, 0x80, 0x90, 0xa0, 0xd4, 0xd5, 0xc7, 0xdc, 0xdd, 0xde, 0xdf, 0xcf, 0xd3, 0xcb, 0xc4, 0xc6, 0x72, 0x40];

  /** Runs `fn`; anything thrown must be a ProtocolError with a known code and its close code. */
  function onlyProtocolErrors(fn: () => unknown, input: Uint8Array, stats: Map<string, number>): void {
    try {
      fn();
      stats.set('ok', (stats.get('ok') ?? 0) + 1);
    } catch (err) {
      if (!(err instanceof ProtocolError)) {
        assert.fail(`a ${(err as Error)?.constructor?.name} escaped for input ${Buffer.from(input).toString('hex').slice(0, 400)}: ${(err as Error)?.stack ?? String(err)}`);
      }
      assert.ok(KNOWN.has(err.code), err.code);
      assert.equal(err.closeCode, ERROR_CODES[err.code]);
      stats.set(err.code, (stats.get(err.code) ?? 0) + 1);
    }
  }

  function randomBytes(rand: () => number, max: number): Buffer {
    const n = Math.floor(rand() * max);
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = rand() < 0.2 ? INTERESTING[Math.floor(rand() * INTERESTING.length)]! : Math.floor(rand() * 256);
    return b;
  }

  function mutate(rand: () => number, src: Buffer): Buffer {
    let b = Buffer.from(src);
    const edits = 1 + Math.floor(rand() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * Math.max(1, b.length));
      switch (Math.floor(rand() * 7)) {
        case 0: if (b.length) b[at]! ^= 1 << Math.floor(rand() * 8); break;
        case 1: if (b.length) b[at] = Math.floor(rand() * 256); break;
        case 2: if (b.length) b[at] = INTERESTING[Math.floor(rand() * INTERESTING.length)]!; break;
        case 3: b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), b.subarray(at)]); break;
        case 4: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]); break;
        case 5: b = b.subarray(0, at); break;
        case 6: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.floor(rand() * b.length))]); break;
      }
    }
    return b;
  }

  const valid = ALL_SAMPLES.map((m) => encode(m));
  const key = (n: number) => Buffer.alloc(32, n);

  test('2,000 random byte strings: decodeMessage and SealedChannel.open throw only ProtocolError', () => {
    const rand = prng(1);
    const stats = new Map<string, number>();
    const channel = new SealedChannel(key(1), key(2), limits);
    for (let i = 0; i < 2000; i++) {
      const input = randomBytes(rand, i % 10 === 0 ? 2000 : 120);
      onlyProtocolErrors(() => decodeMessage(input, limits), input, stats);
      onlyProtocolErrors(() => channel.open(input), input, stats);
    }
    assert.ok((stats.get('BAD_MAC') ?? 0) > 1000, JSON.stringify([...stats]));
  });

  test('2,000 mutations of valid frames: decodeMessage and SealedChannel.open throw only ProtocolError', () => {
    const rand = prng(2);
    const stats = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const body = valid[i % valid.length]!;
      const mutated = mutate(rand, body);
      onlyProtocolErrors(() => decodeMessage(mutated, limits), mutated, stats);
      // Resealed by a peer that holds the key: the mutation gets past the MAC to the decoder.
      const sender = new SealedChannel(key(3), key(4), limits);
      const receiver = new SealedChannel(key(4), key(3), limits);
      const resealed = sender.sealBytes(mutated);
      onlyProtocolErrors(() => receiver.open(resealed), resealed, stats);
      // Mutated on the wire: the whole sealed frame, header included.
      const onWire = mutate(rand, new SealedChannel(key(3), key(4), limits).sealBytes(body));
      onlyProtocolErrors(() => new SealedChannel(key(4), key(3), limits).open(onWire), onWire, stats);
    }
    // The run reached past the MAC into every layer of the decoder.
    for (const code of ['BAD_MAC', 'MALFORMED_FRAME', 'UNKNOWN_TYPE', 'ok']) assert.ok((stats.get(code) ?? 0) > 0, `${code}: ${JSON.stringify([...stats])}`);
  });
});

describe('crypto', () => {
  const messages = [Buffer.alloc(0), Buffer.from('buildwire handshake'), Buffer.alloc(4096, 0xab)];

  test('tweetnacl and node:crypto make the same Ed25519 signatures and verify each other\'s', () => {
    for (let i = 0; i < 5; i++) {
      const kp = generateSigningKeyPair();
      assert.deepEqual(Buffer.from(publicKeyOf(kp.seed)), Buffer.from(kp.publicKey));
      const fastKey = ed25519PrivateKey(kp.seed);
      for (const m of messages) {
        const nacl = signNacl(kp.seed, m);
        const fast = signFast(fastKey, m);
        assert.deepEqual(Buffer.from(fast), Buffer.from(nacl), 'Ed25519 is deterministic: same bytes from both');
        assert.ok(verifyFast(kp.publicKey, m, nacl), 'node:crypto verifies tweetnacl');
        assert.ok(verifyNacl(kp.publicKey, m, fast), 'tweetnacl verifies node:crypto');
        const other = Buffer.concat([m, Buffer.from([1])]);
        assert.equal(verifyFast(kp.publicKey, other, nacl), false);
        assert.equal(verifyNacl(kp.publicKey, other, fast), false);
      }
    }
  });

  test('verification with a wrong key, a bad signature or wrong lengths is false, never a throw', () => {
    const kp = generateSigningKeyPair();
    const sig = signNacl(kp.seed, messages[1]!);
    const wrong = generateSigningKeyPair().publicKey;
    assert.equal(verifyFast(wrong, messages[1]!, sig), false);
    assert.equal(verifyNacl(wrong, messages[1]!, sig), false);
    const flipped = Buffer.from(sig);
    flipped[10]! ^= 1;
    assert.equal(verifyFast(kp.publicKey, messages[1]!, flipped), false);
    assert.equal(verifyNacl(kp.publicKey, messages[1]!, flipped), false);
    assert.equal(verifyFast(kp.publicKey.subarray(0, 31), messages[1]!, sig), false);
    assert.equal(verifyNacl(kp.publicKey, messages[1]!, sig.subarray(0, 63)), false);
    assert.equal(verifyFast(Buffer.alloc(32), messages[1]!, sig), false);
  });

  test('X25519 agreement matches between ephemeralNacl and ephemeralFast in every pairing', () => {
    const makers = [ephemeralNacl, ephemeralFast];
    for (const makeA of makers) {
      for (const makeB of makers) {
        const a = makeA();
        const b = makeB();
        assert.equal(a.publicKey.length, 32);
        const ab = Buffer.from(a.agree(b.publicKey));
        assert.deepEqual(Buffer.from(b.agree(a.publicKey)), ab, `${makeA.name} × ${makeB.name}`);
        assert.equal(ab.length, 32);
      }
    }
  });

  test('deriveSessionKeys gives distinct keys per direction, bound to the transcript', () => {
    const a = ephemeralNacl();
    const b = ephemeralFast();
    const shared = a.agree(b.publicKey);
    const t1 = Buffer.alloc(32, 1);
    const k = deriveSessionKeys(shared, t1);
    assert.equal(k.clientToServer.length, 32);
    assert.notDeepEqual(k.clientToServer, k.serverToClient);
    assert.deepEqual(deriveSessionKeys(b.agree(a.publicKey), t1), k, 'both sides derive the same keys');
    const k2 = deriveSessionKeys(shared, Buffer.alloc(32, 2));
    assert.notDeepEqual(k2.clientToServer, k.clientToServer);
    assert.notDeepEqual(k2.serverToClient, k.serverToClient);
    assert.throws(() => deriveSessionKeys(new Uint8Array(32), t1), { name: 'RangeError', message: 'X25519 produced the all-zero secret (low-order peer key)' });
  });

  test('frameMac is HMAC-SHA256 over counter then body', () => {
    const key = Buffer.alloc(32, 9);
    const counter = Buffer.from('0000000000000005', 'hex');
    const body = Buffer.from('body');
    assert.deepEqual(frameMac(key, counter, body), createHmac('sha256', key).update(Buffer.concat([counter, body])).digest());
  });
});

describe('the handshake in memory', () => {
  const id = generateSigningKeyPair();
  const identity = ed25519PrivateKey(id.seed);

  function handshake(auth: ClientAuth, role: Role = auth.method === 'token' ? 'factory' : 'agent', opts: { coordinatorKey?: Uint8Array; version?: number } = {}) {
    const client = new ClientHandshake({ role, coordinatorKey: opts.coordinatorKey ?? id.publicKey, auth, ...(opts.version !== undefined ? { version: opts.version } : {}) });
    const server = new ServerHandshake(identity);
    const challenge = server.onHello(client.hello());
    const authBytes = client.answer(challenge);
    const received = server.onAuth(authBytes);
    return { client, server, challenge, authBytes, received };
  }

  /** Both directions of the sealed channel carry messages. */
  function talk(client: ClientHandshake, server: ServerHandshake): void {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(server.channel.open(client.channel.seal({ type: 'ping', t: i })), { type: 'ping', t: i });
      assert.deepEqual(client.channel.open(server.channel.seal({ type: 'pong', t: i })), { type: 'pong', t: i });
    }
  }

  test('bootstrap: the server receives the credential and new key, the signature verifies, and the channel works both ways', () => {
    const kp = generateSigningKeyPair();
    const { client, server, received } = handshake({ method: 'bootstrap', worker: ULID, credential: 'bwb_x', seed: kp.seed, publicKey: kp.publicKey });
    assert.equal(received.method, 'bootstrap');
    assert.ok(received.method === 'bootstrap');
    assert.equal(received.credential, 'bwb_x');
    assert.deepEqual(Buffer.from(received.key), Buffer.from(kp.publicKey));
    server.verifyClient(received, received.key);
    assert.equal(server.role, 'agent');
    assert.equal(server.version, PROTOCOL_VERSION);
    talk(client, server);
  });

  test('key: the reconnect signature verifies with the registered key and not with another', () => {
    const kp = generateSigningKeyPair();
    const { client, server, received } = handshake({ method: 'key', worker: ULID, seed: kp.seed });
    assert.ok(received.method === 'key');
    server.verifyClient(received, kp.publicKey);
    throwsCode(() => server.verifyClient(received, generateSigningKeyPair().publicKey), 'BAD_SIGNATURE', `worker ${ULID}: handshake signature does not verify with its registered key`);
    talk(client, server);
  });

  test('a native-crypto client (node:crypto) produces a handshake the server accepts exactly like a tweetnacl one', () => {
    const kp = generateSigningKeyPair();
    for (const method of ['bootstrap', 'key'] as const) {
      const auth: ClientAuth = method === 'bootstrap'
        ? { method, worker: ULID, credential: 'bwb_x', seed: kp.seed, publicKey: kp.publicKey }
        : { method, worker: ULID, seed: kp.seed };
      const client = new ClientHandshake({ role: 'agent', coordinatorKey: id.publicKey, auth, native: true });
      const server = new ServerHandshake(identity);
      const received = server.onAuth(client.answer(server.onHello(client.hello())));
      assert.ok(received.method === method);
      server.verifyClient(received as typeof received & { worker: string; sig: Uint8Array }, kp.publicKey);
      talk(client, server);
    }
  });

  test('token: a factory hands over its token and the channel works both ways', () => {
    const { client, server, received } = handshake({ method: 'token', token: 'bwf_tok' });
    assert.deepEqual(received, { type: 'auth', method: 'token', token: 'bwf_tok' });
    assert.equal(server.role, 'factory');
    talk(client, server);
  });

  test('a client pinning another coordinator key refuses the challenge with COORDINATOR_IMPOSTOR', () => {
    const kp = generateSigningKeyPair();
    throwsCode(() => handshake({ method: 'key', worker: ULID, seed: kp.seed }, 'agent', { coordinatorKey: generateSigningKeyPair().publicKey }),
      'COORDINATOR_IMPOSTOR', 'the coordinator\'s handshake signature does not match the pinned coordinator key');
  });

  test('a challenge made for another client\'s hello is COORDINATOR_IMPOSTOR (the signature covers the transcript)', () => {
    const kp = generateSigningKeyPair();
    const auth: ClientAuth = { method: 'key', worker: ULID, seed: kp.seed };
    const victim = new ClientHandshake({ role: 'agent', coordinatorKey: id.publicKey, auth });
    const other = new ClientHandshake({ role: 'agent', coordinatorKey: id.publicKey, auth });
    victim.hello();
    const challengeForOther = new ServerHandshake(identity).onHello(other.hello());
    throwsCode(() => victim.answer(challengeForOther), 'COORDINATOR_IMPOSTOR', /does not match the pinned coordinator key/);
  });

  test('an auth frame replayed into another session fails BAD_SIGNATURE (it signs that session\'s transcript)', () => {
    const kp = generateSigningKeyPair();
    const first = handshake({ method: 'key', worker: ULID, seed: kp.seed });
    const server2 = new ServerHandshake(identity);
    server2.onHello(new ClientHandshake({ role: 'agent', coordinatorKey: id.publicKey, auth: { method: 'key', worker: ULID, seed: kp.seed } }).hello());
    const replayed = server2.onAuth(first.authBytes);
    assert.ok(replayed.method === 'key');
    throwsCode(() => server2.verifyClient(replayed, kp.publicKey), 'BAD_SIGNATURE', /handshake signature does not verify/);
  });

  test('a hello older than MIN_PROTOCOL_VERSION is VERSION_UNSUPPORTED; a newer one is answered with our version', () => {
    const kp = generateSigningKeyPair();
    const old = new ClientHandshake({ role: 'agent', coordinatorKey: id.publicKey, auth: { method: 'key', worker: ULID, seed: kp.seed }, version: MIN_PROTOCOL_VERSION - 1 });
    throwsCode(() => new ServerHandshake(identity).onHello(old.hello()), 'VERSION_UNSUPPORTED',
      `protocol version ${MIN_PROTOCOL_VERSION - 1} is older than the oldest supported (${MIN_PROTOCOL_VERSION})`);
    const { client, server } = handshake({ method: 'key', worker: ULID, seed: kp.seed }, 'agent', { version: PROTOCOL_VERSION + 1 });
    assert.equal(server.version, PROTOCOL_VERSION);
    assert.equal(client.version, PROTOCOL_VERSION);
  });

  test('a hello with a low-order (all-zero) ephemeral key is MALFORMED_FRAME', () => {
    const hello = encode({ type: 'hello', v: PROTOCOL_VERSION, role: 'agent', nonce: bytes(32), ephemeral: Buffer.alloc(32) });
    throwsCode(() => new ServerHandshake(identity).onHello(hello), 'MALFORMED_FRAME', /^hello\.ephemeral is not a usable X25519 key \(/);
  });

  test('messages out of order are UNEXPECTED_MESSAGE; an error frame instead of a challenge surfaces its code', () => {
    throwsCode(() => new ServerHandshake(identity).onHello(encode(SAMPLES.auth)), 'UNEXPECTED_MESSAGE', 'expected hello, got auth');
    const server = new ServerHandshake(identity);
    const client = new ClientHandshake({ role: 'factory', coordinatorKey: id.publicKey, auth: { method: 'token', token: 't' } });
    server.onHello(client.hello());
    throwsCode(() => server.onAuth(client.hello()), 'UNEXPECTED_MESSAGE', 'expected auth, got hello');
    throwsCode(() => client.answer(encode({ type: 'ping', t: 1 })), 'UNEXPECTED_MESSAGE', 'expected a challenge, got ping');
    throwsCode(() => client.answer(encodeError(new ProtocolError('CREDENTIAL_USED', 'the bootstrap credential of worker X was already used'))),
      'CREDENTIAL_USED', 'the bootstrap credential of worker X was already used');
  });

  test('misuse by our own code throws TypeError or RangeError at once', () => {
    const auth: ClientAuth = { method: 'token', token: 't' };
    assert.throws(() => new ClientHandshake({ role: 'factory', coordinatorKey: new Uint8Array(31), auth }), { name: 'RangeError', message: 'coordinator key must be 32 bytes, got 31' });
    const client = new ClientHandshake({ role: 'factory', coordinatorKey: id.publicKey, auth });
    assert.throws(() => client.answer(Buffer.alloc(1)), { name: 'TypeError', message: 'answer() called before hello()' });
    assert.throws(() => client.channel, { name: 'TypeError', message: 'channel is not ready before answer()' });
    const server = new ServerHandshake(identity);
    assert.throws(() => server.onAuth(Buffer.alloc(1)), { name: 'TypeError', message: 'onAuth() called before onHello()' });
    assert.throws(() => server.channel, { name: 'TypeError', message: 'channel is not ready before onHello()' });
  });
});

describe('sealed-channel counters', () => {
  const k1 = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  const pair = () => ({ a: new SealedChannel(k1, k2), b: new SealedChannel(k2, k1) });
  const ping = (t: number) => ({ type: 'ping', t }) as const;

  test('each frame carries the next counter (u64 BE) and its HMAC, starting at 0 per direction', () => {
    const { a, b } = pair();
    for (let i = 0; i < 5; i++) {
      const f = a.seal(ping(i));
      assert.equal(f.readBigUInt64BE(0), BigInt(i));
      const body = f.subarray(SEALED_HEADER_BYTES);
      assert.deepEqual(f.subarray(8, SEALED_HEADER_BYTES), frameMac(k1, f.subarray(0, 8), body));
      assert.deepEqual(b.open(f), ping(i));
    }
    // The other direction has its own counter.
    const back = b.seal(ping(99));
    assert.equal(back.readBigUInt64BE(0), 0n);
    assert.deepEqual(a.open(back), ping(99));
  });

  test('a replayed frame is REPLAYED_FRAME and a skipped one SKIPPED_FRAME, naming the counters', () => {
    const { a, b } = pair();
    const f0 = a.seal(ping(0));
    const f1 = a.seal(ping(1));
    const f2 = a.seal(ping(2));
    b.open(f0);
    throwsCode(() => b.open(f0), 'REPLAYED_FRAME', 'frame counter 0 was already used (expected 1)');
    throwsCode(() => b.open(f2), 'SKIPPED_FRAME', 'frame counter 2 skips ahead of 1');
    // A refused frame does not move the counter: the right one is still accepted.
    assert.deepEqual(b.open(f1), ping(1));
    assert.deepEqual(b.open(f2), ping(2));
  });

  test('a frame opened with the sender\'s own channel fails BAD_MAC (keys differ per direction)', () => {
    const { a } = pair();
    throwsCode(() => a.open(a.seal(ping(0))), 'BAD_MAC', 'frame 0 failed its MAC check');
  });

  test('tampering with the counter, MAC or body is BAD_MAC, checked before the counter', () => {
    const { a, b } = pair();
    const f = a.seal(ping(0));
    for (const at of [7, 8, 39, f.length - 1]) {
      const t = Buffer.from(f);
      t[at]! ^= 0x80;
      throwsCode(() => b.open(t), 'BAD_MAC', 'frame 0 failed its MAC check');
    }
    assert.deepEqual(b.open(f), ping(0));
  });

  test('a frame no longer than the header is MALFORMED_FRAME naming its size', () => {
    const { b } = pair();
    throwsCode(() => b.open(Buffer.alloc(SEALED_HEADER_BYTES)), 'MALFORMED_FRAME', 'sealed frame of 40 bytes is shorter than its 40-byte header plus a body');
    throwsCode(() => b.open(Buffer.alloc(3)), 'MALFORMED_FRAME', 'sealed frame of 3 bytes is shorter than its 40-byte header plus a body');
  });

  test('a frame that passes the MAC but does not decode still uses up its counter', () => {
    const { a, b } = pair();
    throwsCode(() => b.open(a.sealBytes(encode({ type: 'nope' }))), 'UNKNOWN_TYPE', 'message type "nope" is not known to this protocol version');
    assert.deepEqual(b.open(a.seal(ping(1))), ping(1));
  });
});

describe('backoffDelay', () => {
  test('grows from baseMs by doubling, with full jitter below the ceiling', () => {
    const base = 250;
    const cap = 10_000;
    const top = () => 0.999_999_9;
    assert.equal(backoffDelay(0, base, cap, () => 0), 0);
    assert.equal(backoffDelay(0, base, cap, top), base - 1);
    assert.equal(backoffDelay(1, base, cap, top), 2 * base - 1);
    assert.equal(backoffDelay(3, base, cap, top), 8 * base - 1);
    assert.equal(backoffDelay(3, base, cap, () => 0.5), 4 * base);
  });

  test('never reaches capMs, however many attempts (no overflow to Infinity or NaN)', () => {
    const top = () => 0.999_999_9;
    for (const attempt of [6, 10, 31, 100, 1e6, Number.MAX_SAFE_INTEGER]) {
      const d = backoffDelay(attempt, 250, 10_000, top);
      assert.equal(d, 9_999, `attempt ${attempt}`);
    }
  });

  test('random delays stay in [0, min(cap, base·2^attempt)) and spread across the range', () => {
    const rand = prng(42);
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(10_000, 250 * 2 ** attempt);
      const samples = Array.from({ length: 500 }, () => backoffDelay(attempt, 250, 10_000, rand));
      for (const d of samples) {
        assert.ok(Number.isInteger(d) && d >= 0 && d < ceiling, `attempt ${attempt}: ${d} outside [0, ${ceiling})`);
      }
      assert.ok(Math.min(...samples) < ceiling / 4 && Math.max(...samples) >= (3 * ceiling) / 4, `attempt ${attempt}: jitter spreads over the range`);
    }
  });
});

describe('Deadlines with a fake clock', () => {
  class FakeClock implements Clock {
    t = 1_000_000;
    now(): number {
      return this.t;
    }
  }

  // Deadlines sit a minute into the fake future, so the real (unref'd) timer
  // Deadlines arms never fires during a test; the tests move the clock and call runDue.
  function setup() {
    const clock = new FakeClock();
    const errors: [string, unknown][] = [];
    const d = new Deadlines(clock, (key, err) => errors.push([key, err]));
    const ran: string[] = [];
    const origin = clock.t + 60_000;
    const at = (ms: number) => origin + ms;
    const advanceTo = (ms: number) => {
      clock.t = origin + ms;
      d.runDue();
    };
    // A copy: asserting on it must not narrow `ran` itself.
    const log = () => [...ran];
    return { d, ran, log, errors, at, advanceTo };
  }

  test('runs due callbacks in deadline order, not insertion order, and leaves later ones', () => {
    const { d, ran, log, at, advanceTo } = setup();
    try {
      d.set('c', at(30), () => ran.push('c'));
      d.set('a', at(10), () => ran.push('a'));
      d.set('d', at(40), () => ran.push('d'));
      d.set('b', at(20), () => ran.push('b'));
      advanceTo(5);
      assert.deepEqual(log(), []);
      advanceTo(25);
      assert.deepEqual(log(), ['a', 'b']);
      assert.ok(d.has('c') && d.has('d') && !d.has('a') && !d.has('b'));
      advanceTo(100);
      assert.deepEqual(log(), ['a', 'b', 'c', 'd']);
      advanceTo(1000);
      assert.deepEqual(log(), ['a', 'b', 'c', 'd'], 'each runs once');
    } finally {
      d.close();
    }
  });

  test('a deadline due exactly now runs', () => {
    const { d, ran, log, at, advanceTo } = setup();
    try {
      d.set('x', at(10), () => ran.push('x'));
      advanceTo(9);
      assert.deepEqual(log(), []);
      advanceTo(10);
      assert.deepEqual(log(), ['x']);
    } finally {
      d.close();
    }
  });

  test('setting a key again replaces its deadline, later or earlier', () => {
    const { d, ran, log, at, advanceTo } = setup();
    try {
      d.set('k', at(10), () => ran.push('k-first'));
      d.set('k', at(50), () => ran.push('k-later'));
      advanceTo(20);
      assert.deepEqual(log(), [], 'the replaced deadline does not run at its old time');
      advanceTo(60);
      assert.deepEqual(log(), ['k-later']);
      d.set('j', at(200), () => ran.push('j-late'));
      d.set('j', at(70), () => ran.push('j-early'));
      advanceTo(80);
      assert.deepEqual(log(), ['k-later', 'j-early']);
      advanceTo(1000);
      assert.deepEqual(log(), ['k-later', 'j-early'], 'the replaced callbacks never run');
    } finally {
      d.close();
    }
  });

  test('cancel removes a deadline; cancelling an unknown key does nothing', () => {
    const { d, ran, log, at, advanceTo } = setup();
    try {
      d.set('k', at(10), () => ran.push('k'));
      d.set('m', at(20), () => ran.push('m'));
      d.cancel('k');
      d.cancel('never-set');
      assert.equal(d.has('k'), false);
      assert.equal(d.has('m'), true);
      advanceTo(100);
      assert.deepEqual(log(), ['m']);
    } finally {
      d.close();
    }
  });

  test('a callback that throws is reported with its key and the others still run', () => {
    const { d, ran, log, errors, at, advanceTo } = setup();
    try {
      d.set('a', at(1), () => ran.push('a'));
      d.set('boom', at(2), () => {
        throw new Error('boom');
      });
      d.set('c', at(3), () => ran.push('c'));
      advanceTo(10);
      assert.deepEqual(log(), ['a', 'c']);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]![0], 'boom');
      assert.equal((errors[0]![1] as Error).message, 'boom');
    } finally {
      d.close();
    }
  });

  test('after close nothing runs', () => {
    const { d, ran, log, at, advanceTo } = setup();
    d.set('a', at(1), () => ran.push('a'));
    d.close();
    advanceTo(10);
    assert.deepEqual(log(), []);
    assert.equal(d.has('a'), false);
  });

  test('with the system clock a deadline fires on its own timer', async () => {
    const d = new Deadlines({ now: () => Date.now() }, () => {});
    try {
      const t0 = Date.now();
      const fired = new Promise<number>((resolve) => d.set('soon', t0 + 20, () => resolve(Date.now())));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('deadline did not fire within 2 s')), 2000);
      });
      const t = await Promise.race([fired, timeout]).finally(() => clearTimeout(timer));
      assert.ok(t - t0 >= 10, `fired after ${t - t0} ms, not at once`);
    } finally {
      d.close();
    }
  });
});

describe('upload messages', () => {
  test('a chunk larger than maxChunkBytes is LIMIT_EXCEEDED naming the size and the limit', () => {
    const limits = { ...DEFAULT_LIMITS, maxChunkBytes: 1024 };
    assert.throws(() => decodeMessage(encode({ type: 'chunk', upload: ULID, offset: 0, data: Buffer.alloc(1025) }), limits),
      (e: unknown) => e instanceof ProtocolError && e.code === 'LIMIT_EXCEEDED' && e.message === 'chunk of 1025 bytes exceeds maxChunkBytes (1024)');
  });

  test('an empty chunk is MALFORMED_FRAME', () => {
    assert.throws(() => decodeMessage(encode({ type: 'chunk', upload: ULID, offset: 0, data: Buffer.alloc(0) })),
      (e: unknown) => e instanceof ProtocolError && e.code === 'MALFORMED_FRAME' && e.message === 'chunk.data must not be empty');
  });

  test('an upload_end whose sha256 is not 32 bytes is MALFORMED_FRAME naming the field', () => {
    assert.throws(() => decodeMessage(encode({ type: 'upload_end', upload: ULID, size: 1, sha256: Buffer.alloc(31), mtime: T })),
      (e: unknown) => e instanceof ProtocolError && e.code === 'MALFORMED_FRAME' && e.message === 'upload_end.sha256 (31 bytes) must be 32 bytes');
  });

  test('an upload_begin with a negative size or a mode beyond 0o7777 is MALFORMED_FRAME', () => {
    assert.throws(() => decodeMessage(encode({ type: 'upload_begin', upload: ULID, job: ULID2, path: '/work/a', size: -1, mode: 0o644, mtime: T })),
      (e: unknown) => e instanceof ProtocolError && e.code === 'MALFORMED_FRAME' && /upload_begin\.size -1 must be an integer/.test(e.message));
    assert.throws(() => decodeMessage(encode({ type: 'upload_begin', upload: ULID, job: ULID2, path: '/work/a', size: 1, mode: 0o10000, mtime: T })),
      (e: unknown) => e instanceof ProtocolError && e.code === 'MALFORMED_FRAME' && /upload_begin\.mode 4096 must be an integer from 0 to 4095/.test(e.message));
  });
});

describe('data frames (protocol version 3)', () => {
  const k1 = Buffer.alloc(32, 5);
  const k2 = Buffer.alloc(32, 6);
  const pair = (version = 3) => ({ a: new SealedChannel(k1, k2, DEFAULT_LIMITS, version), b: new SealedChannel(k2, k1, DEFAULT_LIMITS, version) });
  const upload = '01JABCDEFGHJKMNPQRSTVWXYZ0';
  const chunk = (offset: number, data: Buffer) => ({ type: 'chunk', upload, offset, data }) as const;

  test('a chunk travels as a data frame whose MAC covers counter and header, and comes out as the same chunk', () => {
    const { a, b } = pair();
    const data = Buffer.alloc(100_000, 7);
    const f = a.seal(chunk(4096, data));
    assert.equal(f[0]! & 0x80, 0x80, 'the counter\'s top bit marks a data frame');
    const n = f.readUInt32BE(SEALED_HEADER_BYTES);
    assert.equal(f.length, SEALED_HEADER_BYTES + 4 + n + data.length, 'the bytes follow the header as they are: no msgpack wrapping');
    assert.deepEqual(f.subarray(8, SEALED_HEADER_BYTES), frameMac(k1, f.subarray(0, 8), f.subarray(SEALED_HEADER_BYTES, SEALED_HEADER_BYTES + 4 + n)));
    const got = b.open(f) as { type: string; upload: string; offset: number; data: Uint8Array };
    assert.deepEqual({ ...got, data: Buffer.from(got.data) }, chunk(4096, data));
    // Counters are shared with ordinary frames.
    assert.deepEqual(b.open(a.seal({ type: 'ping', t: 1 })), { type: 'ping', t: 1 });
    throwsCode(() => b.open(f), 'REPLAYED_FRAME', 'frame counter 0 was already used (expected 2)');
  });

  test('other messages, and every message of an older session, stay ordinary sealed frames', () => {
    assert.equal(pair().a.seal({ type: 'ping', t: 1 })[0]! & 0x80, 0);
    const { a, b } = pair(2);
    const f = a.seal(chunk(0, Buffer.from('abc')));
    assert.equal(f[0]! & 0x80, 0);
    assert.equal(Buffer.from((b.open(f) as { data: Uint8Array }).data).toString(), 'abc');
  });

  test('a changed header fails the MAC; a changed byte of data does not (upload_end\'s SHA-256 catches it); bad shapes name the rule', () => {
    const data = Buffer.from('hello world');
    {
      const { a, b } = pair();
      const f = a.seal(chunk(0, data));
      f[SEALED_HEADER_BYTES + 6]! ^= 1;
      throwsCode(() => b.open(f), 'BAD_MAC', 'frame 0 failed its MAC check');
    }
    {
      const { a, b } = pair();
      const f = a.seal(chunk(0, data));
      f[f.length - 1]! ^= 1;
      assert.equal(Buffer.from((b.open(f) as { data: Uint8Array }).data).toString(), 'hello worle');
    }
    {
      // On a version 2 session the flag means nothing: the frame fails the MAC over its whole body.
      const f = pair().a.seal(chunk(0, data));
      throwsCode(() => pair(2).b.open(f), 'BAD_MAC', 'frame 0 failed its MAC check');
    }
    {
      const { a, b } = pair();
      const f = a.seal(chunk(0, data));
      throwsCode(() => b.open(f.subarray(0, f.length - data.length)), 'BAD_MAC', 'frame 0 failed its MAC check');
    }
    // Resealed by a key holder with lies in the header: size mismatch, oversized chunk, wrong type.
    const forge = (header: unknown, body: Buffer) => {
      const h = encode(header);
      const f = Buffer.concat([Buffer.alloc(SEALED_HEADER_BYTES), Buffer.alloc(4), h, body]);
      f[0] = 0x80;
      f.writeUInt32BE(h.length, SEALED_HEADER_BYTES);
      frameMac(k1, f.subarray(0, 8), f.subarray(SEALED_HEADER_BYTES, SEALED_HEADER_BYTES + 4 + h.length)).copy(f, 8);
      return f;
    };
    throwsCode(() => pair().b.open(forge({ type: 'chunk', upload, offset: 0, size: 3 }, data)), 'MALFORMED_FRAME', 'data frame carries 11 bytes, its header says 3');
    throwsCode(() => pair().b.open(forge({ type: 'chunk', upload, offset: 0, size: DEFAULT_LIMITS.maxChunkBytes + 1 }, data)), 'LIMIT_EXCEEDED', /exceeds maxChunkBytes/);
    throwsCode(() => pair().b.open(forge({ type: 'ping', t: 1 }, data)), 'MALFORMED_FRAME', /must be a map with type "chunk"/);
    throwsCode(() => pair().b.open(forge({ type: 'chunk', upload, offset: -1, size: 11 }, data)), 'MALFORMED_FRAME', /chunk.offset -1 must be an integer/);
  });

  test('2,000 mutations of data frames throw only ProtocolError', () => {
    let seed = 9;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const codes = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const { a, b } = pair();
      const f = a.seal(chunk(i, Buffer.alloc(1 + (i % 50), i)));
      const m = Buffer.from(f.subarray(0, Math.max(1, Math.floor(rand() * (f.length + 1)))));
      for (let k = 0; k < 3; k++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
      try {
        b.open(m);
        codes.set('ok', (codes.get('ok') ?? 0) + 1);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `${(err as Error).name}: ${(err as Error).message}`);
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
      }
    }
    assert.ok((codes.get('BAD_MAC') ?? 0) > 0 && (codes.get('MALFORMED_FRAME') ?? 0) > 0, JSON.stringify([...codes]));
  });
});
