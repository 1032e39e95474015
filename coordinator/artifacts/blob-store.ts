import { createReadStream } from 'node:fs';
import { link, mkdir, open, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Core } from '../core.js';
import type { BlobRecord } from '../store/records.js';
import type { BlobArchive } from './archive.js';

/** Lower-case hex SHA-256. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Content-addressed file storage: `DATA/blobs/<aa>/<sha256>`, one file per
 * distinct content, with a reference count in the store (outputs, inputs and
 * published files). The store is the truth: a blob file exists only while its
 * record does, and a record says whether the bytes are local, archived, or both.
 *
 * Reference counts change only inside store transactions (`refInTxn`), so an
 * output and the count that keeps its bytes alive commit together.
 */
export class BlobStore {
  readonly #core: () => Core;
  readonly dir: string;
  readonly partsDir: string;
  readonly archive: BlobArchive | null;
  /** Blobs being linked into place: garbage collection leaves them alone. */
  readonly #pinned = new Map<string, number>();

  constructor(core: () => Core, dataDir: string, archive: BlobArchive | null) {
    this.#core = core;
    this.dir = join(dataDir, 'blobs');
    this.partsDir = join(dataDir, 'uploads');
    this.archive = archive;
  }

  /** Creates the directories. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await mkdir(this.partsDir, { recursive: true, mode: 0o700 });
  }

  /** Where a blob's bytes live locally. */
  path(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new TypeError(`not a SHA-256: ${sha256}`);
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  /** Where an upload's bytes collect until it commits. */
  partPath(uploadId: string): string {
    return join(this.partsDir, `${uploadId}.part`);
  }

  /** The blob's record, if stored. */
  get(sha256: string): BlobRecord | undefined {
    return this.#core().dbs.blobs.get(sha256);
  }

  /** Bytes in committed blobs (local or archived). */
  usedBytes(): number {
    return (this.#core().dbs.meta.get('blobBytes') as number | undefined) ?? 0;
  }

  /**
   * Moves a finished part file into the store under its hash. If the blob is
   * already there (another job made the same bytes) the part file is dropped.
   * The caller must then reference it with `refInTxn` and `unpin` it.
   */
  async adopt(part: string, sha256: string): Promise<void> {
    this.#pinned.set(sha256, (this.#pinned.get(sha256) ?? 0) + 1);
    const dest = this.path(sha256);
    const dir = join(this.dir, sha256.slice(0, 2));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const rec = this.get(sha256);
    if (!rec?.local) {
      try {
        await link(part, dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      // The new name must survive a crash before the store says the blob exists.
      const d = await open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    }
    await unlink(part).catch(() => {});
  }

  /** Ends the pin taken by `adopt`. */
  unpin(sha256: string): void {
    const n = (this.#pinned.get(sha256) ?? 1) - 1;
    if (n <= 0) this.#pinned.delete(sha256);
    else this.#pinned.set(sha256, n);
  }

  /**
   * Adds `delta` references to a blob. Call only inside a store transaction
   * callback; creates the record on the first reference (after `adopt`, which
   * says so with `adopted`: the local file is then known to exist).
   */
  refInTxn(sha256: string, size: number, delta: number, adopted = false): void {
    const { dbs, clock } = this.#core();
    const rec = dbs.blobs.get(sha256);
    if (!rec) {
      if (delta <= 0) return;
      dbs.blobs.put(sha256, { v: 1, size, refs: delta, local: true, archived: false, createdAt: clock.now() });
      dbs.meta.put('blobBytes', this.usedBytes() + size);
      if (this.archive) dbs.archiveQueue.put(sha256, 1);
      return;
    }
    // A blob whose local copy was removed after archiving is local again once re-adopted.
    dbs.blobs.put(sha256, { ...rec, refs: rec.refs + delta, local: rec.local || adopted });
  }

  /**
   * Removes blobs in `shas` that nothing references any more: the record in
   * one transaction, then the bytes (locally and in the archive). A crash in
   * between leaves an orphan file, never a record without bytes.
   */
  async collect(shas: Iterable<string>): Promise<number> {
    const { dbs } = this.#core();
    const doomed: BlobRecord[] = [];
    const names: string[] = [];
    await dbs.env.transaction(() => {
      for (const sha of new Set(shas)) {
        if (this.#pinned.has(sha)) continue;
        const rec = dbs.blobs.get(sha);
        if (!rec || rec.refs > 0) continue;
        dbs.blobs.remove(sha);
        dbs.archiveQueue.remove(sha);
        dbs.meta.put('blobBytes', Math.max(0, this.usedBytes() - rec.size));
        doomed.push(rec);
        names.push(sha);
      }
    });
    for (let i = 0; i < names.length; i++) {
      const sha = names[i]!;
      await rm(this.path(sha), { force: true });
      if (doomed[i]!.archived && this.archive) {
        await this.archive.delete(sha).catch((err) => this.#core().log(`archive: could not delete ${sha}: ${(err as Error).message}`));
      }
    }
    return names.length;
  }

  /** Deletes the local copy of an archived blob, unless it is being re-adopted or is marked local again. */
  async removeLocal(sha256: string): Promise<void> {
    if (this.#pinned.has(sha256) || this.get(sha256)?.local !== false) return;
    await rm(this.path(sha256), { force: true });
  }

  /**
   * Streams bytes `[start, endInclusive]` of a blob from wherever they are:
   * the local file, or the archive once the local copy is gone.
   */
  read(sha256: string, start: number, endInclusive: number, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const rec = this.get(sha256);
    if (!rec) throw new Error(`blob ${sha256} is not stored`);
    if (endInclusive < start) return (async function* () {})();
    if (rec.local) {
      return createReadStream(this.path(sha256), { start, end: endInclusive, highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
    }
    if (!this.archive) throw new Error(`blob ${sha256} is archived but no archive is configured`);
    return this.archive.read(sha256, start, endInclusive, signal);
  }
}
