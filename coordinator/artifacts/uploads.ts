import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { JobId, UploadFailed } from '../../protocol/index.js';
import type { Core } from '../core.js';
import type { UploadRecord } from '../store/records.js';
import type { BlobStore } from './blob-store.js';

/** Why an upload was refused or failed. `code` is stable (docs/errors.md). */
export class UploadError extends Error {
  constructor(
    readonly code: UploadFailed['code'] | 'BAD_OFFSET' | 'UNKNOWN_UPLOAD',
    message: string,
  ) {
    super(message);
  }
}

/** What starts an upload. */
export interface UploadSpec {
  id: string;
  job: JobId;
  kind: UploadRecord['kind'];
  path: string;
  size: number;
  mode: number;
  mtime: number;
  expectSha256: string | null;
}

/** Where a committed upload goes: the caller records it in the same transaction as the blob reference. */
export type CommitHook = (rec: UploadRecord, sha256: string, size: number) => void;

interface Active {
  rec: UploadRecord;
  fh: FileHandle;
  hash: Hash;
  /** Bytes received and hashed: the next chunk must start here. */
  received: number;
  /** Bytes the file system has taken. */
  written: number;
  /** The last durable point and the hash state there. */
  synced: { at: number; hash: Hash };
  /** A hash state taken at a receipt boundary, to become `synced` once written and fsynced. */
  candidate: { at: number; hash: Hash } | null;
  chain: Promise<void>;
  error: UploadError | null;
  committing: Promise<{ sha256: string; size: number }> | null;
}

/** How often (in bytes) an upload's part file is fsynced and its durable offset recorded. */
export const SYNC_EVERY_BYTES = 64 * 1024 * 1024;

/**
 * Resumable uploads into the blob store, shared by agents' output uploads
 * (WebSocket chunks) and owners' input uploads (REST chunks).
 *
 * Bytes are hashed (SHA-256) in arrival order and written to a part file.
 * Every `syncEvery` bytes the part file is fsynced and the offset recorded:
 * the durable offset a resumed upload restarts from. Nothing beyond it is
 * trusted after a reconnect or restart, so a torn tail is cut off, never kept.
 */
export class Uploads {
  readonly #core: () => Core;
  readonly #blobs: BlobStore;
  readonly active = new Map<string, Active>();
  readonly #opening = new Map<string, Promise<Active>>();

  constructor(core: () => Core, blobs: BlobStore) {
    this.#core = core;
    this.#blobs = blobs;
  }

  /** Bytes promised to uploads in progress (for the quota). */
  reservedBytes(): number {
    let n = 0;
    for (const a of this.active.values()) n += a.rec.size;
    return n;
  }

  /**
   * Starts an upload, or resumes one with the same id: resolves with the
   * offset to send from (the durable offset), and whether it is already
   * committed (a retry after the commit's answer was lost).
   */
  async begin(spec: UploadSpec): Promise<{ offset: number; committed: boolean }> {
    const core = this.#core();
    const existing = core.dbs.uploads.get(spec.id);
    if (existing) {
      if (existing.job !== spec.job || existing.path !== spec.path || existing.kind !== spec.kind) {
        throw new UploadError('BAD_PATH', `upload ${spec.id} belongs to ${existing.kind} ${existing.path} of job ${existing.job}, not ${spec.path} of job ${spec.job}`);
      }
      if (existing.state === 'committed') return { offset: existing.size, committed: true };
      const a = await this.#resume(existing);
      return { offset: a.received, committed: false };
    }
    const cap = core.config.maxArtifactBytes;
    if (cap > 0) {
      const used = this.#blobs.usedBytes() + this.reservedBytes();
      if (used + spec.size > cap) {
        throw new UploadError('QUOTA_EXCEEDED', `storing ${spec.path} (${spec.size} bytes) would take the artifact store to ${used + spec.size} bytes, over max_artifact_bytes (${cap})`);
      }
    }
    const rec: UploadRecord = {
      v: 1, id: spec.id, job: spec.job, kind: spec.kind, path: spec.path, size: spec.size, mode: spec.mode, mtime: spec.mtime,
      durable: 0, state: 'open', sha256: null, expectSha256: spec.expectSha256, createdAt: core.clock.now(),
    };
    const opening = (async () => {
      const fh = await open(this.#blobs.partPath(spec.id), 'w+', 0o600);
      await core.dbs.env.transaction(() => {
        core.dbs.uploads.put(rec.id, rec);
        core.dbs.uploadsByJob.put([rec.job, rec.id], 1);
      });
      const hash = createHash('sha256');
      const a: Active = {
        rec, fh, hash, received: 0, written: 0, synced: { at: 0, hash: hash.copy() }, candidate: null, chain: Promise.resolve(), error: null, committing: null,
      };
      this.active.set(rec.id, a);
      return a;
    })();
    this.#opening.set(spec.id, opening);
    try {
      await opening;
    } finally {
      this.#opening.delete(spec.id);
    }
    return { offset: 0, committed: false };
  }

  /** Reopens (after a restart) or rewinds (after a reconnect) an open upload to its durable offset. */
  async #resume(rec: UploadRecord): Promise<Active> {
    const pending = this.#opening.get(rec.id);
    if (pending) return pending;
    const p = (async () => {
      let a = this.active.get(rec.id);
      if (a) {
        // Writes already queued finish first; then everything past the durable point is dropped.
        await a.chain.catch(() => {});
        if (a.error) throw a.error;
        a.received = a.written = a.synced.at;
        a.hash = a.synced.hash.copy();
        a.candidate = null;
        await a.fh.truncate(a.synced.at);
        return a;
      }
      const fh = await open(this.#blobs.partPath(rec.id), 'r+').catch(async () => open(this.#blobs.partPath(rec.id), 'w+', 0o600));
      const { size } = await fh.stat();
      // The durable offset was recorded only after an fsync, so the file holds at least that much; if not, start over.
      const at = size >= rec.durable ? rec.durable : 0;
      await fh.truncate(at);
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(4 << 20);
      for (let pos = 0; pos < at; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, at - pos), pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      a = { rec: { ...rec, durable: at }, fh, hash, received: at, written: at, synced: { at, hash: hash.copy() }, candidate: null, chain: Promise.resolve(), error: null, committing: null };
      this.active.set(rec.id, a);
      return a;
    })();
    this.#opening.set(rec.id, p);
    try {
      return await p;
    } finally {
      this.#opening.delete(rec.id);
    }
  }

  /** The upload in progress with this id (resumed from the store if needed). */
  async #get(id: string): Promise<Active> {
    const a = this.active.get(id) ?? (await this.#opening.get(id));
    if (a) return a;
    const rec = this.#core().dbs.uploads.get(id);
    if (!rec) throw new UploadError('UNKNOWN_UPLOAD', `upload ${id} is not known (never begun, or aborted)`);
    if (rec.state === 'committed') throw new UploadError('BAD_OFFSET', `upload ${id} of ${rec.path} is already committed`);
    return this.#resume(rec);
  }

  /**
   * Takes bytes `[offset, offset + data.length)`. The bytes are hashed at
   * once (in order); resolves with the written offset once the file system
   * has them. `syncEvery` 0 fsyncs after this chunk (REST inputs answer only
   * when durable); otherwise every SYNC_EVERY_BYTES.
   */
  async write(id: string, offset: number, data: Uint8Array, syncEvery = SYNC_EVERY_BYTES, maxBytes = Number.MAX_SAFE_INTEGER): Promise<number> {
    const a = this.active.get(id) ?? (await this.#get(id));
    if (a.error) throw a.error;
    if (a.committing) throw new UploadError('BAD_OFFSET', `upload ${id} of ${a.rec.path} is being committed; no more bytes are taken`);
    if (offset !== a.received) {
      throw new UploadError('BAD_OFFSET', `chunk of ${a.rec.path} at offset ${offset} does not continue the upload, which holds ${a.received} bytes`);
    }
    const end = offset + data.length;
    if (end > maxBytes) throw new UploadError('OUTPUT_TOO_LARGE', `${a.rec.path} grew past ${maxBytes} bytes, the per-file limit (max_output_bytes)`);
    a.hash.update(data);
    a.received = end;
    const every = syncEvery === 0 ? 1 : syncEvery;
    if (!a.candidate && end - a.synced.at >= every) a.candidate = { at: end, hash: a.hash.copy() };
    const fh = a.fh;
    const run = async () => {
      if (a.error) throw a.error;
      try {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
          done += bytesWritten;
        }
        a.written = end;
        if (a.candidate && a.candidate.at === end) await this.#sync(a);
      } catch (err) {
        a.error ??= this.#ioError(a, err, offset);
        throw a.error;
      }
    };
    const p = a.chain.then(run);
    a.chain = p.catch(() => {});
    await p;
    return end;
  }

  async #sync(a: Active): Promise<void> {
    const c = a.candidate!;
    await a.fh.datasync();
    a.synced = c;
    a.candidate = null;
    a.rec = { ...a.rec, durable: c.at };
    // Not awaited: an older durable offset in the store is still true, only less far along.
    void this.#core().dbs.uploads.put(a.rec.id, a.rec);
  }

  #ioError(a: Active, err: unknown, offset: number): UploadError {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') {
      return new UploadError('DISK_FULL', `the coordinator's data directory is full (${e.code}) writing ${a.rec.path} at offset ${offset}`);
    }
    return new UploadError('STORE_ERROR', `the coordinator could not write ${a.rec.path} at offset ${offset}: ${e.code ?? e.message}`);
  }

  /**
   * Commits an upload whose bytes are all sent: checks size and SHA-256
   * against what the sender declared, moves the bytes into the blob store,
   * and records them (through `hook`) in the same transaction as the blob's
   * reference. Idempotent: a repeated commit answers the same.
   */
  async commit(id: string, size: number, sha256: string | null, hook: CommitHook): Promise<{ sha256: string; size: number }> {
    const rec = this.#core().dbs.uploads.get(id);
    if (rec?.state === 'committed') return { sha256: rec.sha256!, size: rec.size };
    const a = this.active.get(id) ?? (await this.#get(id));
    a.committing ??= this.#commit(a, size, sha256, hook);
    try {
      return await a.committing;
    } catch (err) {
      a.committing = null;
      throw err;
    }
  }

  async #commit(a: Active, size: number, declared: string | null, hook: CommitHook): Promise<{ sha256: string; size: number }> {
    const core = this.#core();
    await a.chain;
    if (a.error) throw a.error;
    const path = a.rec.path;
    if (size !== a.received) {
      await this.abort(a.rec.id);
      throw new UploadError('SIZE_MISMATCH', `${path}: the sender declared ${size} bytes but sent ${a.received}`);
    }
    const sha256 = a.hash.digest('hex');
    const expect = declared ?? a.rec.expectSha256;
    if (expect !== null && expect !== sha256) {
      await this.abort(a.rec.id);
      throw new UploadError('HASH_MISMATCH', `${path}: the sender declared SHA-256 ${expect} but the coordinator received bytes with SHA-256 ${sha256}`);
    }
    await a.fh.datasync();
    await a.fh.close();
    this.active.delete(a.rec.id);
    const done: UploadRecord = { ...a.rec, size, durable: size, state: 'committed', sha256 };
    await this.#blobs.adopt(this.#blobs.partPath(a.rec.id), sha256);
    try {
      await core.dbs.env.transaction(() => {
        this.#blobs.refInTxn(sha256, size, 1, true);
        hook(done, sha256, size);
        core.dbs.uploads.put(done.id, done);
      });
    } finally {
      this.#blobs.unpin(sha256);
    }
    return { sha256, size };
  }

  /** Discards an upload: its part file and its record. */
  async abort(id: string): Promise<void> {
    const core = this.#core();
    const a = this.active.get(id);
    this.active.delete(id);
    if (a) {
      await a.chain.catch(() => {});
      await a.fh.close().catch(() => {});
    }
    await rm(this.#blobs.partPath(id), { force: true });
    const rec = core.dbs.uploads.get(id);
    if (rec && rec.state !== 'committed') {
      await core.dbs.env.transaction(() => {
        core.dbs.uploads.remove(id);
        core.dbs.uploadsByJob.remove([rec.job, id]);
      });
    }
  }

  /** Forgets a job's uploads once it has ended: open ones are discarded, committed ones are only bookkeeping. */
  async dropJob(job: JobId): Promise<void> {
    const core = this.#core();
    const ids = [...core.dbs.uploadsByJob.getRange({ start: [job, ''], end: [job, '\uffff'] })].map(({ key }) => key[1]);
    for (const id of ids) await this.abort(id);
    await core.dbs.env.transaction(() => {
      for (const id of ids) {
        core.dbs.uploads.remove(id);
        core.dbs.uploadsByJob.remove([job, id]);
      }
    });
  }
}
