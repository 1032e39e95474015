/**
 * Uploading output files to the coordinator over the agent's connection,
 * one file at a time, as docs/artifacts.md describes:
 *
 *   upload_begin -> upload_ready {offset}; chunk x N -> chunk_ack; upload_end -> upload_done | upload_failed
 *
 * Chunks are read by position, so a resume after a reconnect re-reads from
 * the coordinator's durable offset; the SHA-256 is computed on the first
 * pass only. A window of unacknowledged chunks stays in flight (never
 * stop-and-wait), and the socket's own buffer is respected.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, stat } from 'node:fs/promises';
import type { FromAgent, Message, PeerClient, PeerClientEvents, UploadFailed } from '../protocol/index.js';
import { newId } from '../protocol/index.js';
import type { ScannedOutput } from './outputs.js';

/** The part of a {@link PeerClient} the uploader needs (tests pass a fake). */
export interface UploadLink {
  send(msg: Message): boolean;
  readonly isOpen: boolean;
  /** Bytes queued in the socket. */
  readonly bufferedAmount: number;
  on<K extends keyof PeerClientEvents>(event: K, listener: (...args: PeerClientEvents[K]) => void): unknown;
  off<K extends keyof PeerClientEvents>(event: K, listener: (...args: PeerClientEvents[K]) => void): unknown;
}

/** How uploads run. */
export interface UploadOptions {
  link: UploadLink;
  /** The job the outputs belong to. */
  job: string;
  /** Largest file the coordinator accepts (the assignment's `maxOutputBytes`). */
  maxOutputBytes: number;
  /** Bytes per chunk (default 1 MiB; the coordinator accepts up to `maxChunkBytes`). */
  chunkBytes?: number;
  /** Unacknowledged bytes allowed in flight (default 8 MiB). */
  windowBytes?: number;
  /** Socket buffer above which sending waits for it to drain (default 4 MiB). */
  highWaterBytes?: number;
  /** WORKER lines: each committed file, and notes about files uploaded as read, retried or skipped. */
  log: (line: string) => void;
  /** Stops the uploads (the job was cancelled, the agent is stopping). */
  signal?: AbortSignal;
}

/** A file the coordinator committed. */
export interface CommittedOutput {
  path: string;
  size: number;
  mode: number;
  mtime: number;
  /** Lower-case hex. */
  sha256: string;
}

/** What {@link uploadOutputs} did. */
export interface UploadResults {
  committed: CommittedOutput[];
  /** Rule-space paths of `%` files that vanished and were skipped. */
  skipped: string[];
  /** One message per file that failed, naming it. */
  failures: string[];
}

/** Default chunk size: 1 MiB, a quarter of the coordinator's `maxChunkBytes`. */
export const UPLOAD_CHUNK_BYTES = 1024 * 1024;
/**
 * Default window of unacknowledged bytes: half the coordinator's
 * maxUnackedBytes (32 MiB), deep enough to keep its disk busy across an ack
 * round trip, with room left for log batches.
 */
export const UPLOAD_WINDOW_BYTES = 16 * 1024 * 1024;
/** Default socket buffer level above which sending pauses. */
export const UPLOAD_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/**
 * How often a sender blocked on the socket buffer looks again. ws does not
 * promise a 'drain' event, so the wait on it has this fallback.
 */
const BUFFER_RECHECK_MS = 20;

type Outcome =
  | { kind: 'done'; out: CommittedOutput }
  | { kind: 'skipped' }
  | { kind: 'failed'; message: string; code?: UploadFailed['code'] };

/**
 * Uploads the files one at a time and reports each one's fate. A file the
 * coordinator says arrived corrupted (`HASH_MISMATCH`) is sent once more
 * from scratch under a new upload id. Never throws for a file's trouble.
 *
 * @example
 * const r = await uploadOutputs(scan.files, { link: client, job: a.id, maxOutputBytes: a.maxOutputBytes ?? 2 ** 30, log });
 * for (const f of r.failures) log(f);
 */
export async function uploadOutputs(files: readonly ScannedOutput[], o: UploadOptions): Promise<UploadResults> {
  const results: UploadResults = { committed: [], skipped: [], failures: [] };
  for (const file of files) {
    if (o.signal?.aborted) {
      results.failures.push(`${file.path} was not uploaded: ${reasonOf(o.signal)}`);
      continue;
    }
    let outcome = await uploadFile(file, o);
    if (outcome.kind === 'failed' && outcome.code === 'HASH_MISMATCH') {
      o.log(`${file.path}: the coordinator's hash did not match (${outcome.message}); uploading it again from the start`);
      outcome = await uploadFile(file, o);
    }
    if (outcome.kind === 'done') {
      results.committed.push(outcome.out);
      o.log(`uploaded ${file.path} (${outcome.out.size} bytes, sha256 ${outcome.out.sha256.slice(0, 12)}…)`);
    }
    else if (outcome.kind === 'skipped') results.skipped.push(file.path);
    else {
      results.failures.push(outcome.message);
      // The coordinator no longer runs this job: every further upload would be refused the same way.
      if (outcome.code === 'NOT_RUNNING') {
        for (const rest of files.slice(files.indexOf(file) + 1)) results.failures.push(`${rest.path} was not uploaded: the coordinator no longer runs this job`);
        break;
      }
    }
  }
  return results;
}

function reasonOf(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : typeof r === 'string' ? r : 'aborted';
}

const iso = (ms: number): string => new Date(ms).toISOString();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * One attempt at one file, under a fresh upload id. Its messages are picked
 * out of the link's stream by that id; connection events move it along.
 */
async function uploadFile(file: ScannedOutput, o: UploadOptions): Promise<Outcome> {
  // Refused before any byte is sent, so a huge file costs nothing.
  if (file.size > o.maxOutputBytes) {
    return { kind: 'failed', message: `${file.path} is ${file.size} bytes, over the coordinator's limit of ${o.maxOutputBytes} bytes per output file` };
  }
  let fh: FileHandle;
  try {
    fh = await open(file.hostPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { kind: 'failed', message: `${file.path} could not be opened: ${(err as Error).message}` };
    if (!file.allowChange) return { kind: 'failed', message: `${file.path} vanished before its upload` };
    o.log(`${file.path} vanished before its upload; skipped (a % rule allows this)`);
    return { kind: 'skipped' };
  }
  const up = new FileUpload(file, fh, o);
  try {
    return await up.run();
  } catch (err) {
    // A read or stat error mid-upload (EIO, a file system gone away): this file fails, the others still go.
    return up.readFailure(err as NodeJS.ErrnoException);
  } finally {
    up.dispose();
    await fh.close().catch(() => {});
  }
}

/** The state of one upload attempt, fed by the link's events. */
class FileUpload {
  readonly #f: ScannedOutput;
  readonly #fh: FileHandle;
  readonly #o: UploadOptions;
  readonly #id = newId();
  readonly #chunk: number;
  readonly #window: number;
  readonly #highWater: number;
  readonly #hash: Hash = createHash('sha256');
  /** Bytes fed to the hash so far: the first pass over the file. */
  #hashed = 0;
  #digest: Buffer | null = null;
  /** Bytes to send: the scan's size, or fewer if a `%` file shrank. */
  #end: number;
  #final: { size: number; mtime: number } | null = null;
  #begun = false;
  // Fed by the link.
  #session = 0;
  #ready: number | null = null;
  #acked = 0;
  #done: Uint8Array | null = null;
  #failed: UploadFailed | null = null;
  #wake: (() => void) | null = null;
  readonly #listeners: Array<[string, (...a: never[]) => void]> = [];

  constructor(f: ScannedOutput, fh: FileHandle, o: UploadOptions) {
    this.#f = f;
    this.#fh = fh;
    this.#o = o;
    this.#chunk = o.chunkBytes ?? UPLOAD_CHUNK_BYTES;
    this.#window = o.windowBytes ?? UPLOAD_WINDOW_BYTES;
    this.#highWater = o.highWaterBytes ?? UPLOAD_HIGH_WATER_BYTES;
    this.#end = f.size;
    this.#listen('message', (msg: Message) => this.#onMessage(msg));
    this.#listen('open', () => {
      this.#session++;
      this.#notify();
    });
    this.#listen('disconnected', () => {
      this.#session++;
      this.#notify();
    });
    this.#listen('drain', () => this.#notify());
    o.signal?.addEventListener('abort', this.#notifyBound);
  }

  readonly #notifyBound = (): void => this.#notify();

  #listen(event: 'message' | 'open' | 'disconnected' | 'drain', fn: (...a: never[]) => void): void {
    this.#o.link.on(event, fn as never);
    this.#listeners.push([event, fn]);
  }

  dispose(): void {
    for (const [event, fn] of this.#listeners) this.#o.link.off(event as 'message', fn as never);
    this.#o.signal?.removeEventListener('abort', this.#notifyBound);
  }

  #onMessage(msg: Message): void {
    if (!('upload' in msg) || msg.upload !== this.#id) return;
    switch (msg.type) {
      case 'upload_ready':
        this.#ready = msg.offset;
        break;
      case 'chunk_ack':
        this.#acked = Math.max(this.#acked, msg.offset);
        break;
      case 'upload_done':
        this.#done = msg.sha256;
        break;
      case 'upload_failed':
        this.#failed = msg;
        break;
      default:
        return;
    }
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Resolves at the next event (or after `ms`, for waits on the socket buffer). */
  #next(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const t = ms === undefined ? null : setTimeout(resolve, ms);
      this.#wake = () => {
        if (t) clearTimeout(t);
        resolve();
      };
    });
  }

  /** Something has ended this attempt: the coordinator's verdict, or an abort. */
  #verdict(): Outcome | null {
    if (this.#failed) {
      return { kind: 'failed', code: this.#failed.code, message: `${this.#f.path}: the coordinator refused the upload: ${this.#failed.code}: ${this.#failed.message}` };
    }
    if (this.#o.signal?.aborted) {
      this.#abort(reasonOf(this.#o.signal));
      return { kind: 'failed', message: `${this.#f.path} was not uploaded: ${reasonOf(this.#o.signal)}` };
    }
    return null;
  }

  #send(msg: FromAgent): boolean {
    return this.#o.link.send(msg);
  }

  #abort(reason: string): void {
    if (this.#begun) this.#send({ type: 'upload_abort', upload: this.#id, reason: reason.slice(0, 1000) });
  }

  async run(): Promise<Outcome> {
    for (;;) {
      // (Re)start a session: begin, and send from wherever the coordinator's durable bytes end.
      while (!this.#o.link.isOpen) {
        const v = this.#verdict();
        if (v) return v;
        await this.#next();
      }
      const session = this.#session;
      const live = () => this.#session === session && this.#o.link.isOpen;
      this.#ready = null;
      this.#begun = true;
      const f = this.#f;
      if (!this.#send({ type: 'upload_begin', upload: this.#id, job: this.#o.job, path: f.path, size: f.size, mode: f.mode, mtime: f.mtime })) continue;
      while (this.#ready === null && this.#done === null && live()) {
        const v = this.#verdict();
        if (v) return v;
        await this.#next();
      }
      if (this.#done) return this.#committed();
      if (this.#ready === null) continue;
      const sent = await this.#sendFrom(this.#ready, live);
      if (typeof sent === 'object') return sent;
      if (!sent) continue;
      if (!this.#final) {
        const checked = await this.#check();
        if (checked) return checked;
      }
      const fin = this.#final!;
      if (!this.#send({ type: 'upload_end', upload: this.#id, size: fin.size, sha256: this.#digest!, mtime: fin.mtime })) continue;
      while (this.#done === null && live()) {
        const v = this.#verdict();
        if (v) return v;
        await this.#next();
      }
      if (this.#done) return this.#committed();
      // Dropped before the verdict: begin again; a committed upload answers upload_done again.
    }
  }

  /**
   * Sends bytes `[offset, end)` keeping at most a window unacknowledged.
   * True when all went out, false when the session dropped (begin again),
   * an outcome when the attempt is over.
   */
  async #sendFrom(offset: number, live: () => boolean): Promise<boolean | Outcome> {
    this.#acked = offset;
    // The coordinator can only hold bytes we sent, and every byte sent was hashed first; anything else
    // is a confused peer, and resuming would leave a gap in the hash.
    if (offset > this.#hashed) {
      this.#abort(`upload_ready offset ${offset} is past the ${this.#hashed} bytes sent`);
      return { kind: 'failed', message: `${this.#f.path}: the coordinator asked to resume at byte ${offset}, past the ${this.#hashed} bytes the agent sent` };
    }
    let pos = offset;
    while (pos < this.#end) {
      // Wait while the window is full (one chunk always allowed) or the socket is backed up.
      for (;;) {
        const v = this.#verdict();
        if (v) return v;
        if (!live()) return false;
        const windowFull = pos > this.#acked && pos - this.#acked + this.#chunk > this.#window;
        const backedUp = this.#o.link.bufferedAmount > this.#highWater;
        if (!windowFull && !backedUp) break;
        await this.#next(backedUp ? BUFFER_RECHECK_MS : undefined);
      }
      const data = await this.#read(pos, Math.min(this.#chunk, this.#end - pos));
      if (data === null) {
        // EOF before the scan's size: the file shrank. The check after the last byte says whether that fails.
        this.#end = pos;
        break;
      }
      if (!this.#send({ type: 'chunk', upload: this.#id, offset: pos, data })) return false;
      pos += data.length;
    }
    if (this.#digest === null) this.#digest = this.#hash.digest();
    return true;
  }

  /** Reads up to `len` bytes at `pos`, hashing them if this is the first pass over them; null at EOF. */
  async #read(pos: number, len: number): Promise<Buffer | null> {
    // A fresh buffer each time: the link may keep the message until it is written.
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.#fh.read(buf, got, len - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got === 0) return null;
    const data = got === len ? buf : buf.subarray(0, got);
    if (pos === this.#hashed && this.#digest === null) {
      this.#hash.update(data);
      this.#hashed += got;
    }
    return data;
  }

  /**
   * After the last byte: the file must be as the scan saw it (size and
   * mtime; buildomat checks only the size, so a file rewritten in place
   * slipped through there), unless a `%` rule allows a change.
   */
  async #check(): Promise<Outcome | null> {
    const f = this.#f;
    // ENOENT here (vanished) is thrown to uploadFile, which treats it as during a read.
    const now = await stat(f.hostPath);
    const mtime = Math.trunc(now.mtimeMs);
    const changes: string[] = [];
    if (now.size !== f.size) changes.push(`size ${f.size} → ${now.size}`);
    if (mtime !== f.mtime) changes.push(`mtime ${iso(f.mtime)} → ${iso(mtime)}`);
    if (changes.length > 0 && !f.allowChange) {
      this.#abort(`the file changed during upload: ${changes.join(', ')}`);
      return { kind: 'failed', message: `${f.path} changed during upload: ${changes.join(', ')}` };
    }
    if (changes.length > 0) {
      this.#o.log(`${f.path} changed during upload (${changes.join(', ')}); uploaded the ${this.#end} bytes read (a % rule allows this)`);
    }
    this.#final = { size: this.#end, mtime };
    return null;
  }

  /** The attempt ended in a file-system error: abort it and name the file (ENOENT counts as vanishing). */
  readFailure(err: NodeJS.ErrnoException): Outcome {
    const f = this.#f;
    if (err.code === 'ENOENT') {
      this.#abort('the file vanished during upload');
      if (!f.allowChange) return { kind: 'failed', message: `${f.path} vanished during upload` };
      this.#o.log(`${f.path} vanished during upload; skipped (a % rule allows this)`);
      return { kind: 'skipped' };
    }
    this.#abort(`read error: ${err.message}`);
    return { kind: 'failed', message: `${f.path} could not be read: ${err.message}` };
  }

  #committed(): Outcome {
    const f = this.#f;
    const fin = this.#final;
    if (!fin || !this.#digest) {
      // upload_done before we sent upload_end: only an id clash could do this.
      return { kind: 'failed', message: `${f.path}: the coordinator reported upload ${this.#id} done before it was ended` };
    }
    if (!Buffer.from(this.#done!).equals(this.#digest)) {
      return { kind: 'failed', message: `${f.path}: the coordinator committed sha256 ${hex(this.#done!)}, but the agent read ${hex(this.#digest)}` };
    }
    return { kind: 'done', out: { path: f.path, size: fin.size, mode: f.mode, mtime: fin.mtime, sha256: hex(this.#digest) } };
  }
}
