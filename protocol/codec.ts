import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import type { Limits } from './limits.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Message, MessageType, LogRecord } from './messages.js';
import { REC, REC_KIND_MASK, REC_PARTIAL } from './messages.js';

// Plain maps and arrays only: msgpackr's record extension would make frames
// depend on shared structure state, which a hostile peer could poison.
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number', mapsAsObjects: true });

/**
 * Encodes one message (or any plain value) as msgpack.
 *
 * @example
 * ws.send(encode({ type: 'ping', t: Date.now() }));
 */
export function encode(value: unknown): Buffer {
  return packr.pack(value);
}

/**
 * Decodes msgpack bytes without checking the shape. For values this side
 * wrote itself (stored records); peers' bytes go through {@link decodeMessage}.
 *
 * @example
 * const rec = decodeTrusted(bytes) as StoredBatch;
 */
export function decodeTrusted(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

type Check = (v: unknown, path: string) => void;

function fail(path: string, rule: string, v: unknown): never {
  throw new ProtocolError('MALFORMED_FRAME', `${path} ${describe(v)} ${rule}`);
}

function describe(v: unknown): string {
  if (v instanceof Uint8Array) return `(${v.length} bytes)`;
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v);
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? `(array of ${v.length})` : '(map)';
}

const str = (max = 4096): Check => (v, p) => {
  if (typeof v !== 'string') fail(p, 'must be a string', v);
  if (v.length > max) fail(p, `must be at most ${max} characters`, v);
};
const int = (min = 0, max = Number.MAX_SAFE_INTEGER): Check => (v, p) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(p, `must be an integer from ${min} to ${max}`, v);
};
const bytes = (len?: number): Check => (v, p) => {
  if (!(v instanceof Uint8Array)) fail(p, 'must be binary', v);
  if (len !== undefined && v.length !== len) fail(p, `must be ${len} bytes`, v);
};
const oneOf = (...values: string[]): Check => (v, p) => {
  if (typeof v !== 'string' || !values.includes(v)) fail(p, `must be one of ${values.join(', ')}`, v);
};
const nullable = (c: Check): Check => (v, p) => {
  if (v !== null) c(v, p);
};
const array = (item: Check, max: number): Check => (v, p) => {
  if (!Array.isArray(v)) fail(p, 'must be an array', v);
  if (v.length > max) fail(p, `must have at most ${max} items`, v);
  for (let i = 0; i < v.length; i++) item(v[i], `${p}[${i}]`);
};
const shape = (fields: Record<string, Check>): Check => (v, p) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(p, 'must be a map', v);
  const o = v as Record<string, unknown>;
  for (const [name, check] of Object.entries(fields)) check(o[name], `${p}.${name}`);
};

const ULID = str(26);
const TIME = int(0);

/** The shape of each message type, checked field by field. */
const SHAPES: Record<MessageType, Check> = {
  hello: shape({ v: int(0, 65535), role: oneOf('agent', 'factory'), nonce: bytes(32), ephemeral: bytes(32) }),
  challenge: shape({ v: int(0, 65535), nonce: bytes(32), ephemeral: bytes(32), sig: bytes(64) }),
  auth: (v, p) => {
    shape({ method: oneOf('bootstrap', 'key', 'token') })(v, p);
    const m = (v as { method: string }).method;
    if (m === 'bootstrap') shape({ worker: ULID, credential: str(256), key: bytes(32), sig: bytes(64) })(v, p);
    else if (m === 'key') shape({ worker: ULID, sig: bytes(64) })(v, p);
    else shape({ token: str(256) })(v, p);
  },
  error: shape({ code: str(64), message: str(4096) }),
  welcome: shape({ worker: ULID, job: nullable(shape({ id: ULID, nextBatch: int(1) })), heartbeatMs: int(1) }),
  assign: shape({ payload: bytes(), sig: bytes(64) }),
  ack: shape({ job: ULID, batch: int(1) }),
  cancel: shape({ job: ULID, reason: str() }),
  recycle: shape({ reason: str() }),
  ping: shape({ t: TIME }),
  pong: shape({ t: TIME }),
  batch: shape({ job: ULID, batch: int(1), recs: array(() => undefined, Number.MAX_SAFE_INTEGER) }),
  factory_welcome: shape({ factory: ULID, name: str(64), targets: array(str(64), 1000), leaseMs: int(1) }),
  capacity: shape({ free: int(0, 1_000_000) }),
  lease: shape({ worker: ULID, target: str(64), credential: str(256), expiresAt: TIME }),
  created: shape({ worker: ULID, instance: str(256) }),
  renew: shape({ worker: ULID }),
  renewed: shape({ worker: ULID, expiresAt: TIME }),
  lease_failed: shape({ worker: ULID, reason: str() }),
  destroy: shape({ worker: ULID, instance: nullable(str(256)) }),
  destroyed: shape({ worker: ULID }),
  inventory: shape({ instances: array(shape({ worker: ULID, instance: str(256) }), 100_000) }),
  upload_begin: shape({ upload: ULID, job: ULID, path: str(4096), size: int(0), mode: int(0, 0o7777), mtime: int(0) }),
  chunk: shape({ upload: ULID, offset: int(0), data: bytes() }),
  upload_end: shape({ upload: ULID, size: int(0), sha256: bytes(32), mtime: int(0) }),
  upload_abort: shape({ upload: ULID, reason: str() }),
  upload_ready: shape({ upload: ULID, offset: int(0) }),
  chunk_ack: shape({ upload: ULID, offset: int(0) }),
  upload_done: shape({ upload: ULID, sha256: bytes(32) }),
  upload_failed: shape({ upload: ULID, code: str(64), message: str() }),
};

/**
 * Checks a batch's records against the limits: count, total bytes, line
 * size, kinds an agent may send. Called by {@link decodeMessage}.
 */
function checkBatch(recs: unknown[], limits: Limits): void {
  if (recs.length === 0) throw new ProtocolError('MALFORMED_FRAME', 'batch.recs must not be empty');
  if (recs.length > limits.maxBatchRecords) {
    throw new ProtocolError('LIMIT_EXCEEDED', `batch of ${recs.length} records exceeds maxBatchRecords (${limits.maxBatchRecords})`);
  }
  let total = 0;
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i] as LogRecord;
    if (!Array.isArray(r) || r.length !== 4) fail(`batch.recs[${i}]`, 'must be [time, kind, task, data]', r);
    const [t, k, task, data] = r;
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) fail(`batch.recs[${i}][0]`, 'must be a time in ms', t);
    if (typeof task !== 'number' || !Number.isSafeInteger(task) || task < 0 || task > 10_000) fail(`batch.recs[${i}][2]`, 'must be a task index', task);
    if (typeof k !== 'number' || !Number.isInteger(k) || (k & ~(REC_KIND_MASK | REC_PARTIAL)) !== 0) fail(`batch.recs[${i}][1]`, 'must be a record kind', k);
    const kind = k & REC_KIND_MASK;
    switch (kind) {
      case REC.STDOUT:
      case REC.STDERR:
      case REC.CONSOLE:
      case REC.WORKER:
        if (!(data instanceof Uint8Array)) fail(`batch.recs[${i}][3]`, 'must be binary for a line record', data);
        if (data.length > limits.maxLineBytes) {
          throw new ProtocolError('LIMIT_EXCEEDED', `batch.recs[${i}] line of ${data.length} bytes exceeds maxLineBytes (${limits.maxLineBytes})`);
        }
        total += data.length;
        break;
      case REC.TASK: {
        const d = data as { event?: unknown };
        if (d?.event === 'start') shape({ name: str(256) })(d, `batch.recs[${i}][3]`);
        else if (d?.event === 'exit') shape({ code: nullable(int(-1_000_000, 1_000_000)), signal: nullable(str(32)) })(d, `batch.recs[${i}][3]`);
        else fail(`batch.recs[${i}][3]`, 'must be a task start or exit event', data);
        break;
      }
      case REC.JOB:
        shape({ result: oneOf('completed', 'failed') })(data, `batch.recs[${i}][3]`);
        if ((data as { reason?: unknown }).reason !== undefined) str()((data as { reason?: unknown }).reason, `batch.recs[${i}][3].reason`);
        break;
      default:
        fail(`batch.recs[${i}][1]`, 'is not a kind an agent may send', k);
    }
  }
  if (total > limits.maxBatchBytes) {
    throw new ProtocolError('LIMIT_EXCEEDED', `batch of ${total} bytes exceeds maxBatchBytes (${limits.maxBatchBytes})`);
  }
}

const chunkHeader = shape({ upload: ULID, offset: int(0), size: int(1) });

/**
 * Decodes and validates the header of a data frame's chunk (protocol
 * version 3, see SealedChannel): `{type: 'chunk', upload, offset, size}`.
 *
 * @example
 * const { upload, offset, size } = decodeChunkHeader(meta, limits);
 */
export function decodeChunkHeader(data: Uint8Array, limits: Limits = DEFAULT_LIMITS): { upload: string; offset: number; size: number } {
  let value: unknown;
  try {
    value = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError('MALFORMED_FRAME', `data frame header of ${data.length} bytes is not one msgpack value (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || (value as { type?: unknown }).type !== 'chunk') {
    fail('data frame header', 'must be a map with type "chunk"', value);
  }
  chunkHeader(value, 'chunk');
  const h = value as { upload: string; offset: number; size: number };
  if (h.size > limits.maxChunkBytes) throw new ProtocolError('LIMIT_EXCEEDED', `chunk of ${h.size} bytes exceeds maxChunkBytes (${limits.maxChunkBytes})`);
  return h;
}

/**
 * Decodes and validates one message from a peer. Any failure is a
 * {@link ProtocolError}: FRAME_TOO_LARGE, MALFORMED_FRAME, UNKNOWN_TYPE or
 * LIMIT_EXCEEDED, with a message naming the field and the rule.
 *
 * @example
 * const msg = decodeMessage(frameBody, limits); // throws ProtocolError
 * switch (msg.type) { case 'batch': ... }
 */
export function decodeMessage(data: Uint8Array, limits: Limits = DEFAULT_LIMITS): Message {
  if (data.length > limits.maxFrameBytes) {
    throw new ProtocolError('FRAME_TOO_LARGE', `frame of ${data.length} bytes exceeds maxFrameBytes (${limits.maxFrameBytes})`);
  }
  if (data.length === 0) throw new ProtocolError('MALFORMED_FRAME', 'frame is empty');
  let value: unknown;
  try {
    // msgpackr's unpack throws on trailing bytes, so a frame is exactly one value.
    value = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError('MALFORMED_FRAME', `frame of ${data.length} bytes is not one msgpack value (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('frame', 'must be a map with a type', value);
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') fail('frame.type', 'must be a string', type);
  const check = Object.hasOwn(SHAPES, type) ? SHAPES[type as MessageType] : undefined;
  if (!check) throw new ProtocolError('UNKNOWN_TYPE', `message type ${JSON.stringify(type.slice(0, 60))} is not known to this protocol version`);
  check(value, type);
  if (type === 'batch') checkBatch((value as { recs: unknown[] }).recs, limits);
  if (type === 'chunk') {
    const n = (value as { data: Uint8Array }).data.length;
    if (n === 0) throw new ProtocolError('MALFORMED_FRAME', 'chunk.data must not be empty');
    if (n > limits.maxChunkBytes) throw new ProtocolError('LIMIT_EXCEEDED', `chunk of ${n} bytes exceeds maxChunkBytes (${limits.maxChunkBytes})`);
  }
  return value as Message;
}
