/**
 * The live log's page frames (coordinator/pages/live.ts sends them, the job
 * page's script and the tests read them). Loaded by the browser as
 * `/static/live-page.js`; it imports nothing.
 *
 * A frame is one binary WebSocket message:
 *
 * | bytes | meaning |
 * |---|---|
 * | 0 | kind: `1` records, `2` records compressed with deflate-raw (RFC 1951), `0x7b` (`{`) a JSON message |
 * | 1..8 | `next`: the last seq the page holds (float64, big-endian) |
 * | 9.. | the body (kind 1), or the body compressed (kind 2) |
 *
 * The body is the job's stored batches, each `[first seq: float64 BE]
 * [length: uint32 BE][msgpack map with "recs"]`, and each record is the
 * protocol's `[time, kind, task, data]` (docs/protocol.md): record `i` of a
 * batch has seq `first + i`. A page may start with seqs the reader already
 * has; {@link decodeLivePage} drops them.
 */

/** One log event as the page renders it (the shape of the events API, web/log.ts's LogEvent). */
export interface LiveEvent {
  seq: number;
  time: number;
  stream: string;
  task: number;
  text?: string;
  event?: unknown;
  partial?: boolean;
  /** The line's full length in bytes, when it was cut for display. */
  truncated?: number;
}

/** Frame kinds (byte 0). */
export const FRAME = { RECORDS: 1, DEFLATED: 2, JSON: 0x7b } as const;
/** Bytes before a page frame's body. */
export const FRAME_HEAD = 9;

const STREAMS = ['stdout', 'stderr', 'task', 'job', 'console', 'worker', 'control'];
const KIND_MASK = 0x0f;
const PARTIAL = 0x10;
/** Lines longer than this are cut for display (web/log.ts's DISPLAY_MAX_BYTES). */
const DISPLAY_MAX_BYTES = 64 * 1024;

/** A malformed frame: its text says which rule the bytes broke. */
export class LiveFrameError extends Error {}

const utf8 = new TextDecoder('utf-8');

/**
 * A small msgpack reader for what the protocol stores: nil, booleans,
 * integers, floats, strings, binary, arrays and maps (maps become plain
 * objects; extension types are refused).
 */
class Reader {
  pos = 0;
  readonly view: DataView;

  constructor(readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  need(n: number): void {
    if (this.pos + n > this.b.length) throw new LiveFrameError(`msgpack value at byte ${this.pos} runs past the end (${this.b.length} bytes)`);
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number {
    this.need(1);
    return this.b[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A value; `depth` bounds nesting so a hostile frame cannot blow the stack. */
  value(depth = 0): unknown {
    if (depth > 64) throw new LiveFrameError(`msgpack nesting deeper than 64 at byte ${this.pos}`);
    const t = this.u8();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return this.map(t & 0x0f, depth);
    if ((t & 0xf0) === 0x90) return this.array(t & 0x0f, depth);
    if ((t & 0xe0) === 0xa0) return utf8.decode(this.bytes(t & 0x1f));
    const v = this.view;
    let p: number;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bytes(this.u8());
      case 0xc5: return this.bytes(this.u16());
      case 0xc6: return this.bytes(this.u32());
      case 0xca: this.need(4); p = this.pos; this.pos += 4; return v.getFloat32(p);
      case 0xcb: this.need(8); p = this.pos; this.pos += 8; return v.getFloat64(p);
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: this.need(8); p = this.pos; this.pos += 8; return v.getUint32(p) * 2 ** 32 + v.getUint32(p + 4);
      case 0xd0: this.need(1); return v.getInt8(this.pos++);
      case 0xd1: this.need(2); p = this.pos; this.pos += 2; return v.getInt16(p);
      case 0xd2: this.need(4); p = this.pos; this.pos += 4; return v.getInt32(p);
      case 0xd3: this.need(8); p = this.pos; this.pos += 8; return v.getInt32(p) * 2 ** 32 + v.getUint32(p + 4);
      case 0xd9: return utf8.decode(this.bytes(this.u8()));
      case 0xda: return utf8.decode(this.bytes(this.u16()));
      case 0xdb: return utf8.decode(this.bytes(this.u32()));
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      default: throw new LiveFrameError(`msgpack type 0x${t.toString(16)} at byte ${this.pos - 1} is not one the log uses`);
    }
  }

  array(n: number, depth: number): unknown[] {
    // Each element takes at least a byte: a length past the end is a lie, not an allocation to make.
    this.need(n);
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  map(n: number, depth: number): Record<string, unknown> {
    this.need(n * 2);
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (let i = 0; i < n; i++) {
      const k = this.value(depth + 1);
      if (typeof k !== 'string' && typeof k !== 'number') throw new LiveFrameError(`msgpack map key at byte ${this.pos} is not a string or number`);
      out[String(k)] = this.value(depth + 1);
    }
    return out;
  }
}

/** `b` cut to at most `max` bytes without splitting a UTF-8 sequence. */
function cutUtf8(b: Uint8Array, max: number): Uint8Array {
  let end = max;
  while (end > 0 && end > max - 4 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/** One stored record as an event. */
function toEvent(seq: number, rec: unknown): LiveEvent {
  if (!Array.isArray(rec) || rec.length < 4 || typeof rec[0] !== 'number' || typeof rec[1] !== 'number' || typeof rec[2] !== 'number') {
    throw new LiveFrameError(`record ${seq} is not [time, kind, task, data]`);
  }
  const [time, k, task, data] = rec as [number, number, number, unknown];
  const e: LiveEvent = { seq, time, stream: STREAMS[k & KIND_MASK] ?? 'worker', task };
  if (data instanceof Uint8Array) {
    if (data.length > DISPLAY_MAX_BYTES) e.truncated = data.length;
    e.text = utf8.decode(data.length > DISPLAY_MAX_BYTES ? cutUtf8(data, DISPLAY_MAX_BYTES) : data);
  } else if (typeof data === 'string') {
    if (data.length > DISPLAY_MAX_BYTES) e.truncated = new TextEncoder().encode(data).length;
    e.text = data.length > DISPLAY_MAX_BYTES ? data.slice(0, DISPLAY_MAX_BYTES) : data;
  } else {
    e.event = data;
  }
  if (k & PARTIAL) e.partial = true;
  return e;
}

/** A page frame's kind and `next`, and its body (still compressed for kind 2). */
export function pageHead(frame: Uint8Array): { kind: number; next: number; body: Uint8Array } {
  if (frame.length < FRAME_HEAD) throw new LiveFrameError(`a page frame is at least ${FRAME_HEAD} bytes, this one is ${frame.length}`);
  const kind = frame[0]!;
  if (kind !== FRAME.RECORDS && kind !== FRAME.DEFLATED) throw new LiveFrameError(`frame kind ${kind} is not a page (1 or 2)`);
  const next = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getFloat64(1);
  return { kind, next, body: frame.subarray(FRAME_HEAD) };
}

/** The events of a page body (uncompressed) with seq greater than `after`, in order. */
export function decodeLivePage(body: Uint8Array, after: number): LiveEvent[] {
  const out: LiveEvent[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let pos = 0;
  while (pos < body.length) {
    if (pos + 12 > body.length) throw new LiveFrameError(`batch header at byte ${pos} runs past the end (${body.length} bytes)`);
    const first = view.getFloat64(pos);
    const len = view.getUint32(pos + 8);
    pos += 12;
    if (pos + len > body.length) throw new LiveFrameError(`batch at seq ${first} says ${len} bytes, ${body.length - pos} are left`);
    const batch = new Reader(body.subarray(pos, pos + len)).value();
    pos += len;
    const recs = batch !== null && typeof batch === 'object' ? (batch as { recs?: unknown }).recs : undefined;
    if (!Array.isArray(recs)) throw new LiveFrameError(`batch at seq ${first} has no "recs" array`);
    for (let i = 0; i < recs.length; i++) if (first + i > after) out.push(toEvent(first + i, recs[i]));
  }
  return out;
}
