import type { LogRecord } from '../protocol/index.js';
import { REC_PARTIAL, encode } from '../protocol/index.js';

interface Sent {
  batch: number;
  body: Buffer;
  recs: number;
}

/** Where an outbox's batches go. */
export interface OutboxSink {
  /** Sends one encoded batch body; false if not connected (it stays queued). */
  sendEncoded(body: Uint8Array): boolean;
}

/**
 * A job's outgoing log: records are gathered into numbered batches, sent,
 * and kept until the coordinator acknowledges them (after its commit). When
 * unacknowledged bytes reach `maxUnackedBytes`, `paused` turns true and the
 * task's pipes stop being read, so the build slows instead of losing output.
 * After a reconnect, `resume(nextBatch)` resends what was not stored.
 *
 * @example
 * const out = new Outbox(jobId, sink, { onPause, onResume });
 * out.push([Date.now(), REC.STDOUT, 0, line]);
 */
export class Outbox {
  readonly job: string;
  readonly #sink: OutboxSink;
  readonly #maxUnacked: number;
  readonly #flushBytes: number;
  readonly #flushRecs: number;
  readonly #onPause: () => void;
  readonly #onResume: () => void;
  #next = 1;
  #recs: LogRecord[] = [];
  #bytes = 0;
  #unacked: Sent[] = [];
  #unackedBytes = 0;
  /** How many of the unacknowledged batches (from the front) went out on this session, and their bytes. */
  #sent = 0;
  #sentBytes = 0;
  #flushScheduled = false;
  #paused = false;
  #ackWaiters: { batch: number; resolve: () => void }[] = [];

  constructor(job: string, sink: OutboxSink, opts: { maxUnackedBytes: number; flushBytes?: number; flushRecords?: number; onPause?: () => void; onResume?: () => void; firstBatch?: number }) {
    this.job = job;
    this.#sink = sink;
    this.#maxUnacked = opts.maxUnackedBytes;
    this.#flushBytes = opts.flushBytes ?? 256 * 1024;
    this.#flushRecs = opts.flushRecords ?? 8192;
    this.#onPause = opts.onPause ?? (() => {});
    this.#onResume = opts.onResume ?? (() => {});
    this.#next = opts.firstBatch ?? 1;
  }

  /** Whether the producer should stop reading until `onResume`. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Bytes sent but not acknowledged. */
  get unackedBytes(): number {
    return this.#unackedBytes;
  }

  /** Adds a record; batches go out at the end of the current I/O turn or when full. */
  push(rec: LogRecord): void {
    this.#recs.push(rec);
    const d = rec[3];
    this.#bytes += d instanceof Uint8Array ? d.length + 16 : 64;
    if (this.#bytes >= this.#flushBytes || this.#recs.length >= this.#flushRecs) this.flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Closes the gathered records into one batch and sends it if the window allows. */
  flush(): void {
    if (this.#recs.length === 0) return;
    const batch = this.#next++;
    const body = encode({ type: 'batch', job: this.job, batch, recs: this.#recs });
    this.#unacked.push({ batch, body, recs: this.#recs.length });
    this.#unackedBytes += body.length;
    this.#recs = [];
    this.#bytes = 0;
    this.#pump();
    if (!this.#paused && this.#unackedBytes >= this.#maxUnacked) {
      this.#paused = true;
      this.#onPause();
    }
  }

  /**
   * Sends queued batches while the bytes in flight stay within the window (at
   * least one batch is always allowed), so the coordinator never sees more
   * than `maxUnackedBytes` unacknowledged from us.
   */
  #pump(): void {
    while (this.#sent < this.#unacked.length) {
      const next = this.#unacked[this.#sent]!;
      if (this.#sent > 0 && this.#sentBytes + next.body.length > this.#maxUnacked) return;
      if (!this.#sink.sendEncoded(next.body)) return;
      this.#sent++;
      this.#sentBytes += next.body.length;
    }
  }

  /** The coordinator stored everything up to `batch`. */
  ack(batch: number): void {
    while (this.#unacked.length > 0 && this.#unacked[0]!.batch <= batch) {
      const done = this.#unacked.shift()!;
      this.#unackedBytes -= done.body.length;
      if (this.#sent > 0) {
        this.#sent--;
        this.#sentBytes -= done.body.length;
      }
    }
    this.#pump();
    if (this.#paused && this.#unackedBytes < this.#maxUnacked / 2) {
      this.#paused = false;
      this.#onResume();
    }
    this.#ackWaiters = this.#ackWaiters.filter((w) => {
      if (w.batch > batch) return true;
      w.resolve();
      return false;
    });
  }

  /** After a reconnect: forget what the coordinator already has, resend the rest in order. */
  resume(nextBatch: number): void {
    // A new session: nothing is in flight on it yet, so everything unacknowledged goes out again, in order.
    this.#sent = 0;
    this.#sentBytes = 0;
    this.ack(nextBatch - 1);
    // A fresh agent (restarted mid-job) numbers on from what the coordinator expects.
    if (this.#unacked.length === 0 && this.#recs.length === 0 && this.#next < nextBatch) this.#next = nextBatch;
  }

  /** Resolves when everything pushed so far has been acknowledged. */
  drained(): Promise<void> {
    this.flush();
    const last = this.#next - 1;
    if (this.#unacked.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#ackWaiters.push({ batch: last, resolve }));
  }
}

/**
 * Splits a byte stream into line records. A line longer than `maxLine` is
 * cut into pieces flagged {@link REC_PARTIAL}; output that ends without a
 * newline ends with a partial piece. Nothing is decoded or dropped.
 *
 * @example
 * const split = new LineSplitter(REC.STDOUT, 0, maxLine, (r) => outbox.push(r));
 * child.stdout.on('data', (b) => split.write(b)); child.stdout.on('end', () => split.end());
 */
export class LineSplitter {
  readonly #kind: number;
  readonly #task: number;
  readonly #maxLine: number;
  readonly #emit: (rec: LogRecord) => void;
  #carry: Buffer[] = [];
  #carryLen = 0;

  constructor(kind: number, task: number, maxLine: number, emit: (rec: LogRecord) => void) {
    this.#kind = kind;
    this.#task = task;
    this.#maxLine = maxLine;
    this.#emit = emit;
  }

  write(chunk: Buffer): void {
    const t = Date.now();
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      let line = chunk.subarray(start, nl);
      if (this.#carryLen > 0) {
        line = Buffer.concat([...this.#carry, line]);
        this.#carry = [];
        this.#carryLen = 0;
      }
      this.#emitLine(t, line, false);
      start = nl + 1;
    }
    if (start < chunk.length) {
      // Copy: the rest stays with us past this callback.
      const rest = Buffer.from(chunk.subarray(start));
      this.#carry.push(rest);
      this.#carryLen += rest.length;
      if (this.#carryLen >= this.#maxLine) {
        const all = Buffer.concat(this.#carry);
        this.#carry = [];
        this.#carryLen = 0;
        let off = 0;
        while (all.length - off >= this.#maxLine) {
          this.#emit([t, this.#kind | REC_PARTIAL, this.#task, all.subarray(off, off + this.#maxLine)]);
          off += this.#maxLine;
        }
        if (off < all.length) {
          this.#carry = [all.subarray(off)];
          this.#carryLen = all.length - off;
        }
      }
    }
  }

  #emitLine(t: number, line: Buffer, partial: boolean): void {
    let off = 0;
    while (line.length - off > this.#maxLine) {
      this.#emit([t, this.#kind | REC_PARTIAL, this.#task, line.subarray(off, off + this.#maxLine)]);
      off += this.#maxLine;
    }
    this.#emit([t, this.#kind | (partial ? REC_PARTIAL : 0), this.#task, off === 0 ? line : line.subarray(off)]);
  }

  /** The stream ended: a last line without a newline is emitted as partial. */
  end(): void {
    if (this.#carryLen > 0) this.#emitLine(Date.now(), Buffer.concat(this.#carry), true);
    this.#carry = [];
    this.#carryLen = 0;
  }
}
