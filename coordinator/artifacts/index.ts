/**
 * Artifacts: the blob store, resumable uploads, job outputs and inputs,
 * dependency inputs, publishing, deletion and the S3 archive pass. See
 * docs/artifacts.md for the contract.
 *
 * @example
 * const a = new Artifacts(() => core, dataDir, archive);
 * await a.init();
 * const { offset } = await a.uploads.begin(spec);
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { InputFile, JobId } from '../../protocol/index.js';
import type { Core } from '../core.js';
import type { JobRecord, OutputRecord, PublishedRecord } from '../store/records.js';
import type { BlobArchive } from './archive.js';
import { BlobStore } from './blob-store.js';
import { Uploads } from './uploads.js';

export { BlobStore, SHA256_HEX } from './blob-store.js';
export { Uploads, UploadError, SYNC_EVERY_BYTES } from './uploads.js';

/** Names of inputs and dependencies: they become directory names under `/input`. */
export const INPUT_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/;

/** Why a name is not a valid input or dependency name, or null. */
export function inputNameProblem(name: string): string | null {
  if (name.includes('/')) return `${JSON.stringify(name)} contains "/"`;
  if (name === '.' || name === '..') return `${JSON.stringify(name)} is not a name`;
  if (!INPUT_NAME.test(name)) return `${JSON.stringify(name.slice(0, 140))} must be 1 to 128 of letters, digits, ".", "_", "-"`;
  return null;
}

/** Thrown when publishing would replace a published file with other bytes. */
export class PublishConflict extends Error {}
/** Thrown when a publish names no output of the job. */
export class PublishMissing extends Error {}

/** The coordinator's artifact duties. */
export class Artifacts {
  readonly #core: () => Core;
  readonly blobs: BlobStore;
  readonly uploads: Uploads;
  readonly #tokenKey: Buffer;
  #archiving: Promise<void> | null = null;
  #archiveAgain = false;

  constructor(core: () => Core, dataDir: string, archive: BlobArchive | null, secret: Uint8Array) {
    this.#core = core;
    this.blobs = new BlobStore(core, dataDir, archive);
    this.uploads = new Uploads(core, this.blobs);
    this.#tokenKey = createHmac('sha256', Buffer.from(secret)).update('buildwire input token v1').digest();
  }

  async init(): Promise<void> {
    await this.blobs.init();
    if (this.blobs.archive) this.pokeArchive();
  }

  /**
   * The bearer token a job's agent downloads inputs with. Derived from the
   * coordinator's secret and the job id, so it needs no storage and is the
   * same when an assignment is re-sent; it is honoured only while the job runs.
   */
  inputToken(job: JobId): string {
    return createHmac('sha256', this.#tokenKey).update(job).digest('base64url');
  }

  /** Whether `token` is the input token of `job`. */
  checkInputToken(job: JobId, token: string): boolean {
    const want = Buffer.from(this.inputToken(job));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** A job's committed outputs, in path order. */
  outputsOf(job: JobId): OutputRecord[] {
    return [...this.#core().dbs.outputs.getRange({ start: [job, ''], end: [job, '\uffff'] })].map(({ value }) => value);
  }

  /** Records a committed output (inside the commit transaction). */
  recordOutputInTxn(job: JobId, out: OutputRecord): void {
    const { dbs } = this.#core();
    const old = dbs.outputs.get([job, out.path]);
    if (old) {
      dbs.outputsByHash.remove([old.sha256, job, old.path]);
      this.blobs.refInTxn(old.sha256, old.size, -1);
    }
    dbs.outputs.put([job, out.path], out);
    dbs.outputsByHash.put([out.sha256, job, out.path], 1);
  }

  /**
   * The files an assignment carries: named inputs at `NAME`, and the outputs
   * of dependencies with `copyOutputs` at `DEP/<path without its leading />`.
   */
  assignmentInputs(job: JobRecord): InputFile[] {
    const { dbs } = this.#core();
    const out: InputFile[] = [];
    const url = (sha: string) => `/api/v1/agent/jobs/${job.id}/inputs/${sha}`;
    for (const name of job.inputs ?? []) {
      const rec = dbs.inputs.get([job.id, name]);
      if (rec?.sha256) out.push({ path: name, sha256: rec.sha256, size: rec.size!, mode: 0o644, url: url(rec.sha256) });
    }
    for (const [name, dep] of Object.entries(job.dependencies ?? {})) {
      if (!dep.copyOutputs) continue;
      for (const o of this.outputsOf(dep.job)) {
        out.push({ path: `${name}/${o.path.replace(/^\/+/, '')}`, sha256: o.sha256, size: o.size, mode: o.mode & 0o777, url: url(o.sha256) });
      }
    }
    return out;
  }

  /**
   * Whether `sha256` is among a job's inputs (what its input token may fetch).
   * Asked once per downloaded file, so it looks the hash up (a named input,
   * or the hash index under each copied dependency) instead of listing every
   * input: a dependency with 10,000 outputs must not cost 10,000 checks per file.
   */
  isInputOf(job: JobRecord, sha256: string): boolean {
    const { dbs } = this.#core();
    for (const name of job.inputs ?? []) if (dbs.inputs.get([job.id, name])?.sha256 === sha256) return true;
    for (const dep of Object.values(job.dependencies ?? {})) {
      if (!dep.copyOutputs) continue;
      for (const _ of dbs.outputsByHash.getRange({ start: [sha256, dep.job, ''], end: [sha256, dep.job, '\uffff'], limit: 1 })) return true;
    }
    return false;
  }

  /**
   * Publishes output `fromOutput` of `job` as owner/series/version/name.
   * The same bytes again is a no-op; other bytes under the same name are
   * refused, because a published URL must always mean the same file.
   */
  async publish(job: JobRecord, ownerName: string, fromOutput: string, series: string, version: string, name: string): Promise<PublishedRecord> {
    const core = this.#core();
    const { dbs } = core;
    const out = dbs.outputs.get([job.id, fromOutput]);
    if (!out) throw new PublishMissing(`job ${job.id} has no output ${JSON.stringify(fromOutput)} to publish as ${series}/${version}/${name}`);
    const key: [string, string, string, string] = [ownerName, series, version, name];
    let result: PublishedRecord | undefined;
    await dbs.env.transaction(() => {
      const prev = dbs.published.get(key);
      if (prev) {
        if (prev.sha256 !== out.sha256) {
          throw new PublishConflict(`${ownerName}/${series}/${version}/${name} is already published with SHA-256 ${prev.sha256} (job ${prev.job}); job ${job.id}'s ${fromOutput} has ${out.sha256}`);
        }
        result = prev;
        return;
      }
      result = { v: 1, job: job.id, path: fromOutput, sha256: out.sha256, size: out.size, publishedAt: core.clock.now() };
      dbs.published.put(key, result);
      this.blobs.refInTxn(out.sha256, out.size, 1);
    });
    return result!;
  }

  /**
   * Removes everything a deleted job holds: outputs, inputs, uploads, and the
   * blobs no one else references. The job record itself is the caller's.
   */
  dropJobFilesInTxn(job: JobRecord, freed: string[]): void {
    const { dbs } = this.#core();
    for (const o of this.outputsOf(job.id)) {
      dbs.outputs.remove([job.id, o.path]);
      dbs.outputsByHash.remove([o.sha256, job.id, o.path]);
      this.blobs.refInTxn(o.sha256, o.size, -1);
      freed.push(o.sha256);
    }
    for (const { key, value } of dbs.inputs.getRange({ start: [job.id, ''], end: [job.id, '\uffff'] })) {
      dbs.inputs.remove(key);
      if (value.sha256) {
        this.blobs.refInTxn(value.sha256, value.size ?? 0, -1);
        freed.push(value.sha256);
      }
    }
  }

  /** Wakes the archive pass (after a commit, and at start). */
  pokeArchive(): void {
    if (!this.blobs.archive) return;
    if (this.#archiving) {
      this.#archiveAgain = true;
      return;
    }
    this.#archiving = (async () => {
      do {
        this.#archiveAgain = false;
        try {
          await this.archiveOnce();
        } catch (err) {
          this.#core().log(`archive: pass failed (will retry on the next commit): ${(err as Error).message}`);
        }
      } while (this.#archiveAgain);
      this.#archiving = null;
    })();
  }

  /** Waits for the archive pass in progress (tests and shutdown). */
  async archiveIdle(): Promise<void> {
    while (this.#archiving) await this.#archiving;
  }

  /**
   * One archive pass: copies every queued blob to the bucket, marks it
   * archived, and removes the local copy when configured to.
   */
  async archiveOnce(): Promise<number> {
    const core = this.#core();
    const archive = this.blobs.archive;
    if (!archive) return 0;
    let n = 0;
    for (const { key: sha } of [...core.dbs.archiveQueue.getRange({ limit: 1000 })]) {
      const rec = this.blobs.get(sha);
      if (!rec || !rec.local) {
        await core.dbs.archiveQueue.remove(sha);
        continue;
      }
      await archive.put(sha, this.blobs.path(sha), rec.size);
      const removeLocal = core.config.archive?.removeLocal === true;
      await core.dbs.env.transaction(() => {
        const now = core.dbs.blobs.get(sha);
        if (now) core.dbs.blobs.put(sha, { ...now, archived: true, local: removeLocal ? false : now.local });
        core.dbs.archiveQueue.remove(sha);
      });
      if (removeLocal) await this.blobs.removeLocal(sha);
      n++;
    }
    return n;
  }
}
