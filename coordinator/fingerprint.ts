/**
 * Input fingerprints: a SHA-256 over everything that should decide a job's
 * outputs (its tasks, the target it ran on, the bytes of its inputs and of
 * the outputs of the jobs it depends on). Two jobs with the same fingerprint
 * should produce the same bytes; when they do not, the build is not
 * reproducible, and the job page says so. The recipe is in docs/web.md
 * ("Reproducibility") and is a contract: a change needs a new `v`.
 *
 * Fingerprints are not stored (that would need a schema change for a value
 * that can always be recomputed): they are computed on demand and kept in a
 * bounded in-memory cache, once the job's inputs can no longer change.
 *
 * @example
 * const fp = fingerprints.of(job); // '3f2a…' (64 hex digits)
 */
import { createHash } from 'node:crypto';
import type { JobId } from '../protocol/index.js';
import type { Core } from './core.js';
import type { JobRecord, OutputRecord } from './store/records.js';

/** The recipe's version, hashed in as `v`. */
export const FINGERPRINT_VERSION = 1;
/** How many fingerprints the cache keeps. */
export const FINGERPRINT_CACHE_SIZE = 10_000;
/** How many of the newest completed jobs of the same name are searched for the same fingerprint. */
export const SAME_NAME_SCAN = 200;

/** What the fingerprint is a hash of (its canonical JSON is hashed). */
export interface FingerprintInput {
  v: number;
  tasks: { name: string; script: string; env: Record<string, string>; envClear: boolean; workdir: string | null; uid: number | null; gid: number | null }[];
  target: string;
  inputs: { name: string; sha256: string | null }[];
  dependencies: { name: string; outputs: { path: string; sha256: string }[] }[];
}

/**
 * JSON with object keys sorted (by UTF-16 code units, as `Array.sort` does)
 * and no whitespace, so the same value always gives the same bytes.
 *
 * @example
 * canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }) // '{"a":[2,{"c":4,"d":3}],"b":1}'
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

const byKey = <T>(key: (x: T) => string) => (a: T, b: T): number => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/**
 * What goes into a job's fingerprint. `outputsOf` gives a dependency's
 * outputs; a dependency whose job is gone contributes no outputs.
 */
export function fingerprintInput(core: Core, job: JobRecord): FingerprintInput {
  const inputs = (job.inputs ?? []).map((name) => ({ name, sha256: core.dbs.inputs.get([job.id, name])?.sha256 ?? null }));
  const dependencies = Object.entries(job.dependencies ?? {}).map(([name, d]) => ({
    name,
    outputs: core.artifacts.outputsOf(d.job).map((o: OutputRecord) => ({ path: o.path, sha256: o.sha256 })).sort(byKey((o) => o.path)),
  }));
  return {
    v: FINGERPRINT_VERSION,
    tasks: job.tasks.map((t) => ({ name: t.name, script: t.script, env: t.env, envClear: t.envClear, workdir: t.workdir ?? null, uid: t.uid ?? null, gid: t.gid ?? null })),
    target: job.runTarget,
    inputs: inputs.sort(byKey((i) => i.name)),
    dependencies: dependencies.sort(byKey((d) => d.name)),
  };
}

/** SHA-256 hex of the canonical JSON of {@link fingerprintInput}. */
export function computeFingerprint(core: Core, job: JobRecord): string {
  return createHash('sha256').update(canonicalJson(fingerprintInput(core, job))).digest('hex');
}

/**
 * Fingerprints with a bounded LRU cache. A waiting job's inputs and
 * dependencies may still change, so its fingerprint is computed every time
 * and not cached; from `queued` on it is fixed.
 */
export class Fingerprints {
  readonly #core: () => Core;
  readonly #cache = new Map<JobId, string>();
  readonly #max: number;

  constructor(core: () => Core, max = FINGERPRINT_CACHE_SIZE) {
    this.#core = core;
    this.#max = max;
  }

  /** The fingerprint of a job (SHA-256 hex). */
  of(job: JobRecord): string {
    const hit = this.#cache.get(job.id);
    if (hit !== undefined) {
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.#cache.delete(job.id);
      this.#cache.set(job.id, hit);
      return hit;
    }
    const fp = computeFingerprint(this.#core(), job);
    if (job.state !== 'waiting') {
      this.#cache.set(job.id, fp);
      if (this.#cache.size > this.#max) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return fp;
  }

  /**
   * Completed jobs of the same name (any target) with the same fingerprint,
   * newest first, not counting `job` itself. Searches only the newest
   * {@link SAME_NAME_SCAN} of them: a fingerprint index would need a schema
   * change, and jobs that repeat a build share its name in practice.
   */
  sameFingerprint(job: JobRecord): { jobs: JobRecord[]; scanned: number } {
    const core = this.#core();
    const mine = this.of(job);
    const jobs: JobRecord[] = [];
    let scanned = 0;
    const range = core.dbs.completedByName.getRange({ start: [job.name, '', '\uffff'], end: [job.name, '', ''], reverse: true, limit: SAME_NAME_SCAN });
    for (const { key } of range) {
      if (key[2] === job.id) continue;
      scanned++;
      const other = core.jobs.get(key[2] as JobId);
      if (other && this.of(other) === mine) jobs.push(other);
    }
    return { jobs, scanned };
  }
}

const instances = new WeakMap<Core, Fingerprints>();

/** The coordinator's fingerprint cache (one per core, made on first use). */
export function fingerprintsOf(core: Core): Fingerprints {
  let f = instances.get(core);
  if (!f) instances.set(core, (f = new Fingerprints(() => core)));
  return f;
}
