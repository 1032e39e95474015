import { isUtf8 } from 'node:buffer';
import type { EventJson, JobId, LogRecord } from '../protocol/index.js';
import { REC, REC_KIND_MASK, REC_PARTIAL, decodeTrusted, encode } from '../protocol/index.js';
import type { Databases } from './store/schema.js';

export type { EventJson };

/** Line bytes per events page (a page always holds at least one event). */
export const PAGE_BYTES = 8 * 1024 * 1024;

const STREAMS = ['stdout', 'stderr', 'task', 'job', 'console', 'worker', 'control'] as const;

interface StoredBatch {
  batch: number;
  recs: LogRecord[];
}

/** Per-job sequencing state, kept in memory while a job is active. */
interface JobLog {
  /** Next event seq to hand out (events start at 1). */
  nextSeq: number;
  /** Highest event seq whose batch has committed. */
  committedSeq: number;
  /** Highest agent batch number accepted (maybe not yet committed). */
  acceptedBatch: number;
  /** Highest agent batch number committed. */
  committedBatch: number;
  /** Commit promises of accepted but uncommitted agent batches, by batch number. */
  pending: Map<number, Promise<void>>;
  /** Called with `false` on each commit (a waiter checks its own position) and `true` on a wake. */
  waiters: Set<(wake: boolean) => void>;
  /** Live followers that asked for the tail ({@link EventLog.keepTail}). */
  tailFollowers: number;
  /** Committed batches kept in memory for followers, contiguous, in seq order (empty when none asked). */
  tail: TailBatch[];
  tailBytes: number;
  /** The seq the next committed batch must start at to join the tail (set when the first follower asks). */
  tailNext: number;
}

/** A committed batch as stored, kept for live followers. */
interface TailBatch {
  first: number;
  last: number;
  bytes: Buffer;
}

/**
 * Stored bytes of a job's tail past which its oldest batches go: a follower
 * that falls that far behind reads the store instead (its reads come every
 * few tens of ms, so a tail rarely holds more than one read's worth).
 */
export const TAIL_MAX_BYTES = 8 * 1024 * 1024;

/**
 * A job's event log: agent batches and the coordinator's control messages
 * in one sequence with contiguous numbers. Batches are stored as the agent
 * sent them (no re-encoding on the hot path), keyed by their first seq.
 *
 * @example
 * await log.appendControl(jobId, 'job assigned to worker 01J...');
 * const page = log.read(jobId, 0, 1000);
 */
export class EventLog {
  readonly #dbs: Databases;
  readonly #jobs = new Map<string, JobLog>();

  constructor(dbs: Databases) {
    this.#dbs = dbs;
  }

  #state(job: JobId): JobLog {
    let s = this.#jobs.get(job);
    if (s) return s;
    const { nextSeq, batchNo } = this.#scan(job, true);
    s = {
      nextSeq, committedSeq: nextSeq - 1, acceptedBatch: batchNo, committedBatch: batchNo, pending: new Map(), waiters: new Set(),
      tailFollowers: 0, tail: [], tailBytes: 0, tailNext: 0,
    };
    this.#jobs.set(job, s);
    return s;
  }

  /**
   * A job's next seq from the store: the last batch gives it. With
   * `batchNo`, also the last agent batch number, which needs a short walk
   * back past the coordinator's control batches.
   */
  #scan(job: JobId, batchNo: boolean): { nextSeq: number; batchNo: number } {
    let nextSeq = 1;
    let no = 0;
    for (const { key, value } of this.#dbs.events.getRange({ start: [job, Number.MAX_SAFE_INTEGER], end: [job, 0], reverse: true })) {
      const b = decodeTrusted(value) as StoredBatch;
      if (nextSeq === 1) nextSeq = key[1] + b.recs.length;
      if (b.batch > 0 || !batchNo) {
        no = b.batch;
        break;
      }
    }
    return { nextSeq, batchNo: no };
  }

  /** The next agent batch number the coordinator expects after everything committed. */
  nextBatch(job: JobId): number {
    return this.#state(job).committedBatch + 1;
  }

  /** Highest committed event seq. */
  lastSeq(job: JobId): number {
    const s = this.#jobs.get(job);
    if (s) return s.committedSeq;
    // Read, not kept: listing a million ended jobs must not leave state behind for each (only writers and waiters keep it).
    return this.#scan(job, false).nextSeq - 1;
  }

  /**
   * Classifies an agent batch number: `new` (the next one), `duplicate`
   * (already accepted; the promise resolves once it is committed) or `gap`.
   */
  classify(job: JobId, batch: number): { kind: 'new' } | { kind: 'duplicate'; committed: Promise<void> } | { kind: 'gap'; expected: number } {
    const s = this.#state(job);
    if (batch === s.acceptedBatch + 1) return { kind: 'new' };
    if (batch <= s.committedBatch) return { kind: 'duplicate', committed: Promise.resolve() };
    if (batch <= s.acceptedBatch) return { kind: 'duplicate', committed: s.pending.get(batch) ?? Promise.resolve() };
    return { kind: 'gap', expected: s.acceptedBatch + 1 };
  }

  /**
   * Stores an agent batch (its encoded body, `count` records). Resolves once
   * committed, after which followers are woken. Call only after `classify` said `new`.
   */
  appendAgentBatch(job: JobId, batch: number, body: Uint8Array, count: number): Promise<void> {
    const s = this.#state(job);
    const first = s.nextSeq;
    s.nextSeq += count;
    s.acceptedBatch = batch;
    const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    // Held until the commit only for a watched job: otherwise the received frame could go at once.
    // (A follower arriving meanwhile misses this batch in the tail and reads it from the store.)
    const keep = s.tailFollowers > 0 ? bytes : null;
    const done = this.#dbs.events.put([job, first], bytes).then(() => {
      s.pending.delete(batch);
      if (batch > s.committedBatch) s.committedBatch = batch;
      if (keep && s.tailFollowers > 0) this.#toTail(s, first, first + count - 1, keep);
      this.#committed(s, first + count - 1);
    });
    s.pending.set(batch, done);
    return done;
  }

  /** Appends coordinator text (a control message). Resolves with its seq once committed. */
  async appendControl(job: JobId, text: string, now = Date.now()): Promise<number> {
    const s = this.#state(job);
    const seq = s.nextSeq++;
    const rec: LogRecord = [now, REC.CONTROL, 0, text];
    const bytes = encode({ type: 'batch', job, batch: 0, recs: [rec] });
    await this.#dbs.events.put([job, seq], bytes);
    if (s.tailFollowers > 0) this.#toTail(s, seq, seq, bytes);
    this.#committed(s, seq);
    return seq;
  }

  /** Adds a committed batch to the tail if it follows on; else the tail restarts after it. */
  #toTail(s: JobLog, first: number, last: number, bytes: Buffer): void {
    if (first !== s.tailNext) {
      // Commits resolve in the order they were issued, so this does not happen; if it did, the tail
      // restarts here and a follower reads what came before from the store.
      s.tail = [];
      s.tailBytes = 0;
    }
    s.tail.push({ first, last, bytes });
    s.tailBytes += bytes.length;
    while (s.tailBytes > TAIL_MAX_BYTES && s.tail.length > 1) s.tailBytes -= s.tail.shift()!.bytes.length;
    s.tailNext = last + 1;
  }

  /**
   * Keeps (`on`) or stops keeping the job's committed batches in memory for
   * {@link tailBatches}: a live follower reads what just committed without
   * a read of the store. Counted; the tail goes when the last follower stops.
   */
  keepTail(job: JobId, on: boolean): void {
    const s = on ? this.#state(job) : this.#jobs.get(job);
    if (!s) return;
    s.tailFollowers = Math.max(0, s.tailFollowers + (on ? 1 : -1));
    if (on && s.tailFollowers === 1) s.tailNext = s.committedSeq + 1;
    if (s.tailFollowers === 0) {
      s.tail = [];
      s.tailBytes = 0;
    }
  }

  /**
   * What {@link rawBatches} would answer for `after` (up to the end,
   * `maxBytes` past the first batch), from the in-memory tail. Null when the
   * tail does not hold seq `after + 1` (then read the store), or when
   * nothing after `after` has committed. Batches wholly at or before
   * `after` leave the tail: followers only move forward.
   */
  tailBatches(job: JobId, after: number, maxBytes: number): { batches: { first: number; bytes: Buffer }[]; next: number } | null {
    const s = this.#jobs.get(job);
    if (!s || s.tailFollowers === 0) return null;
    while (s.tail.length > 0 && s.tail[0]!.last <= after) s.tailBytes -= s.tail.shift()!.bytes.length;
    if (s.tail.length === 0 || s.tail[0]!.first > after + 1) return null;
    const batches: { first: number; bytes: Buffer }[] = [];
    let bytes = 0;
    let next = after;
    for (const b of s.tail) {
      if (batches.length > 0 && bytes + b.bytes.length > maxBytes) break;
      batches.push({ first: b.first, bytes: b.bytes });
      bytes += b.bytes.length;
      next = b.last;
    }
    return { batches, next };
  }

  #committed(s: JobLog, seq: number): void {
    if (seq > s.committedSeq) s.committedSeq = seq;
    // lmdb-js renews its read snapshot after a commit in a later microtask or tick; a waiter woken
    // here reads at once and must see this commit. One native call per commit, not per line.
    try {
      this.#dbs.env.resetReadTxn();
    } catch {
      // The store is closing; nothing will read it.
    }
    for (const w of [...s.waiters]) w(false);
  }

  /**
   * Resolves when an event after `after` has committed, when `wake()` is
   * called for the job (it ended), on timeout, or on abort.
   */
  wait(job: JobId, after: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const s = this.#state(job);
    if (s.committedSeq > after || timeoutMs <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        s.waiters.delete(check);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      // Commits of events at or before `after` (a slow reader's own position) are not what it waits for.
      const check = (wake: boolean) => {
        if (wake || s.committedSeq > after) done();
      };
      const timer = setTimeout(done, timeoutMs);
      s.waiters.add(check);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Wakes a job's waiters (its state changed). */
  wake(job: JobId): void {
    const s = this.#jobs.get(job);
    if (!s) return;
    for (const w of [...s.waiters]) w(true);
  }

  /** Drops a finished job's in-memory state once nothing waits on it. */
  forget(job: JobId): void {
    const s = this.#jobs.get(job);
    if (s && s.waiters.size === 0 && s.pending.size === 0 && s.tailFollowers === 0) this.#jobs.delete(job);
  }

  /** Raw records after `after`, up to about `limit`, with their seqs. */
  *records(job: JobId, after: number): Generator<{ seq: number; rec: LogRecord }> {
    // Start from the batch holding seq after+1: the last key at or before it.
    let start = after + 1;
    for (const { key } of this.#dbs.events.getRange({ start: [job, after + 1], end: [job, 0], reverse: true, limit: 1 })) start = key[1];
    for (const { key, value } of this.#dbs.events.getRange({ start: [job, start], end: [job, Number.MAX_SAFE_INTEGER] })) {
      const b = decodeTrusted(value) as StoredBatch;
      for (let i = 0; i < b.recs.length; i++) {
        const seq = key[1] + i;
        if (seq > after) yield { seq, rec: b.recs[i]! };
      }
    }
  }

  /**
   * Stored batches as they are (no decoding): from the one holding seq
   * `after + 1` on, none starting past `upTo` or past `cut`, and past the
   * first about `maxBytes` in all. `next` is the last seq the batches hold.
   * The first batch may hold seqs at or before `after`; readers drop those.
   * Null when nothing after `after` has committed up to `upTo`.
   *
   * What the live log sends (coordinator/pages/live.ts): a page costs a
   * read and a copy, not a decode and re-encode of every record.
   */
  rawBatches(job: JobId, after: number, upTo: number, maxBytes: number, cut = Number.MAX_SAFE_INTEGER): { batches: { first: number; bytes: Buffer }[]; next: number } | null {
    // Only what the log says committed: every seq up to lastSeq is in the store, and lastSeq ends a batch.
    const end = Math.min(upTo, this.lastSeq(job));
    if (after >= end) return null;
    let start = after + 1;
    for (const { key } of this.#dbs.events.getRange({ start: [job, after + 1], end: [job, 0], reverse: true, limit: 1 })) start = key[1];
    const batches: { first: number; bytes: Buffer }[] = [];
    let bytes = 0;
    // The last batch taken ends where the next one starts, or at `end` when none follows up to it.
    let next = end;
    for (const { key, value } of this.#dbs.events.getRange({ start: [job, start], end: [job, end + 1] })) {
      const first = key[1];
      if (batches.length > 0 && (bytes + value.length > maxBytes || first > cut)) {
        next = first - 1;
        break;
      }
      batches.push({ first, bytes: value });
      bytes += value.length;
    }
    return batches.length > 0 ? { batches, next } : null;
  }

  /**
   * A page of events in their JSON form: at most `limit` events and, past
   * the first, about `maxBytes` of line data, so a log of huge lines cannot
   * make one answer (and the coordinator's memory) unbounded.
   */
  read(job: JobId, after: number, limit: number, maxBytes = PAGE_BYTES): EventJson[] {
    const out: EventJson[] = [];
    if (limit <= 0) return out;
    let bytes = 0;
    for (const { seq, rec } of this.records(job, after)) {
      const data = rec[3];
      const size = data instanceof Uint8Array ? data.length : 64;
      if (out.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      out.push(toJson(seq, rec));
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * The whole log as text, streamed in pieces of about 256 KiB (never built
   * in memory): line bytes as stored, control lines as `[control] TEXT`,
   * task and job records as `[task] JSON` / `[job] JSON`. What both the REST
   * API's and the web page's raw log downloads serve.
   */
  async *text(job: JobId): AsyncGenerator<Uint8Array> {
    const NL = Buffer.from('\n');
    let chunk: Uint8Array[] = [];
    let size = 0;
    for (const { rec } of this.records(job, 0)) {
      const [, k, , data] = rec;
      const piece = data instanceof Uint8Array
        ? data
        : Buffer.from(typeof data === 'string' ? `[control] ${data}` : `[${(k & REC_KIND_MASK) === REC.TASK ? 'task' : 'job'}] ${JSON.stringify(data)}`);
      chunk.push(piece);
      if (!(k & REC_PARTIAL)) chunk.push(NL);
      size += piece.length + 1;
      if (size >= 256 * 1024) {
        yield Buffer.concat(chunk);
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length > 0) yield Buffer.concat(chunk);
  }
}

/** One record as JSON. */
export function toJson(seq: number, rec: LogRecord): EventJson {
  const [time, k, task, data] = rec;
  const kind = k & REC_KIND_MASK;
  const e: EventJson = { seq, time, stream: STREAMS[kind] ?? 'worker', task };
  if (data instanceof Uint8Array) {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    e.text = buf.toString('utf8');
    if (!isUtf8(buf)) e.base64 = buf.toString('base64');
  } else if (typeof data === 'string') {
    e.text = data;
  } else {
    e.event = data;
  }
  if (k & REC_PARTIAL) e.partial = true;
  return e;
}
