/**
 * The job page's reproducibility section: the job's main output, the other
 * jobs that produced the same bytes (split by whether their input
 * fingerprint is the same), and the jobs with the same fingerprint that
 * produced other bytes: builds that are not reproducible. Only jobs the
 * viewer may see are named. The rules are in docs/web.md.
 */
import type { JobId } from '../../protocol/index.js';
import type { JobRef, Reproducibility } from '../../web/job.js';
import type { Core } from '../core.js';
import { fingerprintsOf } from '../fingerprint.js';
import { isTerminal } from '../jobs.js';
import type { JobRecord, OutputRecord } from '../store/records.js';
import type { Viewer } from './session.js';
import { mayView } from './session.js';

/** Most jobs listed as having produced the same main output. */
export const SAME_BYTES_LIMIT = 200;
/** Most hash-index entries read for them (an empty file is everyone's output). */
export const SAME_BYTES_SCAN = 5_000;

/** A job as a link needs it. */
export function jobRef(j: JobRecord): JobRef {
  return { id: j.id, name: j.name, state: j.state, endedAt: j.endedAt };
}

/**
 * A job's main output: the one its `main` tag names (with or without the
 * leading `/`), else the largest (the first by path among equals).
 */
export function mainOutput(job: JobRecord, outputs: readonly OutputRecord[]): { out: OutputRecord; chosenBy: 'tag' | 'largest' } | null {
  const tag = job.tags.main;
  if (tag !== undefined) {
    const path = tag.startsWith('/') ? tag : `/${tag}`;
    const o = outputs.find((x) => x.path === path);
    if (o) return { out: o, chosenBy: 'tag' };
  }
  let best: OutputRecord | null = null;
  for (const o of outputs) if (!best || o.size > best.size) best = o;
  return best ? { out: best, chosenBy: 'largest' } : null;
}

/** The reproducibility section of a job's page, for one viewer. */
export function reproducibilityOf(core: Core, v: Viewer, job: JobRecord, outputs: readonly OutputRecord[]): Reproducibility {
  const fps = fingerprintsOf(core);
  const fingerprint = fps.of(job);
  const empty: Reproducibility = { fingerprint, main: null, reproducedBy: { sameInputs: [], differentInputs: [] }, notReproducible: [], scanned: 0 };
  // A job still running may not have all its outputs yet: its main output is not known.
  if (!isTerminal(job.state)) return empty;
  const main = mainOutput(job, outputs);
  if (!main) return empty;
  const { out } = main;
  const sameInputs: JobRef[] = [];
  const differentInputs: JobRef[] = [];
  const seen = new Set<string>([job.id]);
  const range = core.dbs.outputsByHash.getRange({ start: [out.sha256, '\uffff', ''], end: [out.sha256, '', ''], reverse: true, limit: SAME_BYTES_SCAN });
  for (const { key } of range) {
    if (sameInputs.length + differentInputs.length >= SAME_BYTES_LIMIT) break;
    if (seen.has(key[1])) continue;
    seen.add(key[1]);
    const other = core.jobs.get(key[1] as JobId);
    if (!other || !mayView(core, v, other)) continue;
    (fps.of(other) === fingerprint ? sameInputs : differentInputs).push(jobRef(other));
  }
  const notReproducible: Reproducibility['notReproducible'] = [];
  const same = fps.sameFingerprint(job);
  for (const other of same.jobs) {
    if (!mayView(core, v, other)) continue;
    // The other job's file at the same path, else its own main output: what it offered as the build's result.
    const theirs = core.dbs.outputs.get([other.id, out.path]) ?? mainOutput(other, core.artifacts.outputsOf(other.id))?.out ?? null;
    if (theirs?.sha256 !== out.sha256) notReproducible.push({ job: jobRef(other), path: theirs?.path ?? null, sha256: theirs?.sha256 ?? null });
  }
  return {
    fingerprint, main: { path: out.path, sha256: out.sha256, size: out.size, chosenBy: main.chosenBy },
    reproducedBy: { sameInputs, differentInputs }, notReproducible, scanned: same.scanned,
  };
}
