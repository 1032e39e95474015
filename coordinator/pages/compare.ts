/**
 * `GET /compare/:a/:b`: two jobs side by side (both must be visible to the
 * viewer, else 404 naming the first that is not). Outputs by SHA-256; the
 * target, task settings, environment and scripts that differ; inputs and
 * dependency outputs by SHA-256; and a structured diff of manifest outputs
 * (the files that say how a build was made).
 */
import type { CompareData, CompareSide, ManifestCompare, OutputCompare } from '../../web/compare.js';
import { renderComparePage } from '../../web/compare.js';
import type { Core } from '../core.js';
import { fingerprintInput, fingerprintsOf } from '../fingerprint.js';
import type { Router } from '../router.js';
import type { JobRecord, OutputRecord } from '../store/records.js';
import { lineDiff, manifestDiff, parseManifest } from './diff.js';
import { visibleJob } from './job.js';
import { pageResponse } from './respond.js';
import { viewerOf } from './session.js';

/** Most bytes of a manifest that are read and compared. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;
/** Most manifests compared on one page. */
const MAX_MANIFESTS = 20;

const MANIFEST_NAMES = new Set(['build-environment', 'system-packages']);

/**
 * The outputs of a job that describe how it was built: basename
 * `build-environment` or `system-packages`, a name ending `.build-info`, the
 * path in tag `manifest`, or (if under 1 MiB) a path listed in tag
 * `manifests` (comma-separated). Tag paths may omit the leading `/`.
 */
export function manifestPaths(job: JobRecord, outputs: readonly OutputRecord[]): Set<string> {
  const abs = (p: string) => (p.startsWith('/') ? p : `/${p}`);
  const tagged = new Set((job.tags.manifests ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(abs));
  const single = job.tags.manifest !== undefined ? abs(job.tags.manifest.trim()) : null;
  const out = new Set<string>();
  for (const o of outputs) {
    const base = o.path.slice(o.path.lastIndexOf('/') + 1);
    if (MANIFEST_NAMES.has(base) || base.endsWith('.build-info') || o.path === single || (tagged.has(o.path) && o.size < MANIFEST_MAX_BYTES)) out.add(o.path);
  }
  return out;
}

/** At most {@link MANIFEST_MAX_BYTES} of a blob, or null when its bytes cannot be read. */
async function readHead(core: Core, o: OutputRecord, signal: AbortSignal): Promise<Buffer | null> {
  const n = Math.min(o.size, MANIFEST_MAX_BYTES);
  if (n === 0) return Buffer.alloc(0);
  try {
    const parts: Buffer[] = [];
    for await (const c of core.artifacts.blobs.read(o.sha256, 0, n - 1, signal)) parts.push(Buffer.from(c));
    return Buffer.concat(parts);
  } catch (err) {
    core.log(`compare: could not read blob ${o.sha256}: ${(err as Error).message}`);
    return null;
  }
}

async function compareManifest(core: Core, path: string, a: OutputRecord | undefined, b: OutputRecord | undefined, signal: AbortSignal): Promise<ManifestCompare> {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const packages = base === 'system-packages';
  const none = { added: [], removed: [], changed: [], note: null };
  if (!a || !b) return { path, kind: packages ? 'packages' : 'key/value', status: a ? 'only-a' : 'only-b', ...none };
  if (a.sha256 === b.sha256) return { path, kind: packages ? 'packages' : 'key/value', status: 'identical', ...none };
  const [ba, bb] = await Promise.all([readHead(core, a, signal), readHead(core, b, signal)]);
  if (ba === null || bb === null) return { path, kind: 'key/value', status: 'unreadable', ...none, note: 'the bytes of one side could not be read' };
  const ma = parseManifest(ba.toString('utf8'), packages);
  const mb = parseManifest(bb.toString('utf8'), packages);
  const notes: string[] = [];
  if (a.size > MANIFEST_MAX_BYTES || b.size > MANIFEST_MAX_BYTES) notes.push(`only the first ${MANIFEST_MAX_BYTES} bytes of each side were compared`);
  if (ma.cut || mb.cut) notes.push('only the first entries were compared');
  return { path, kind: ma.kind === 'packages' || mb.kind === 'packages' ? 'packages' : 'key/value', status: 'compared', ...manifestDiff(ma, mb), note: notes.length ? notes.join('; ') : null };
}

function side(core: Core, j: JobRecord): CompareSide {
  return { id: j.id, name: j.name, state: j.state, target: j.target, runTarget: j.runTarget, fingerprint: fingerprintsOf(core).of(j) };
}

/** Inputs and dependency outputs by name (`NAME`, `DEP/path`), from the fingerprint's own view of them. */
function inputHashes(core: Core, j: JobRecord): Map<string, string | null> {
  const f = fingerprintInput(core, j);
  const out = new Map<string, string | null>();
  for (const i of f.inputs) out.set(i.name, i.sha256);
  for (const d of f.dependencies) for (const o of d.outputs) out.set(`${d.name}${o.path}`, o.sha256);
  return out;
}

/** Everything the comparison page shows. */
export async function compareData(core: Core, a: JobRecord, b: JobRecord, signal: AbortSignal): Promise<CompareData> {
  const outA = core.artifacts.outputsOf(a.id);
  const outB = core.artifacts.outputsOf(b.id);
  const mapA = new Map(outA.map((o) => [o.path, o]));
  const mapB = new Map(outB.map((o) => [o.path, o]));
  const paths = [...new Set([...mapA.keys(), ...mapB.keys()])].sort();
  const outputs: OutputCompare[] = paths.map((path) => {
    const x = mapA.get(path);
    const y = mapB.get(path);
    const status = !y ? 'only-a' : !x ? 'only-b' : x.sha256 === y.sha256 ? 'identical' : 'different';
    return { path, status, a: x ? { size: x.size, sha256: x.sha256 } : null, b: y ? { size: y.size, sha256: y.sha256 } : null };
  });

  const fields: CompareData['fields'] = [];
  if (a.runTarget !== b.runTarget) fields.push({ field: 'target', a: a.runTarget, b: b.runTarget });
  if (a.tasks.length !== b.tasks.length) fields.push({ field: 'tasks', a: String(a.tasks.length), b: String(b.tasks.length) });
  const tasks: CompareData['tasks'] = [];
  const scripts: CompareData['scripts'] = [];
  for (let i = 0; i < Math.max(a.tasks.length, b.tasks.length); i++) {
    const ta = a.tasks[i];
    const tb = b.tasks[i];
    const str = (v: string | number | boolean | undefined) => (v === undefined ? null : String(v));
    for (const f of ['name', 'envClear', 'workdir', 'uid', 'gid'] as const) {
      if (str(ta?.[f]) !== str(tb?.[f])) tasks.push({ task: i, field: f, a: str(ta?.[f]), b: str(tb?.[f]) });
    }
    const keys = [...new Set([...Object.keys(ta?.env ?? {}), ...Object.keys(tb?.env ?? {})])].sort();
    for (const k of keys) {
      const va = ta?.env[k] ?? null;
      const vb = tb?.env[k] ?? null;
      if (va !== vb) tasks.push({ task: i, field: `env.${k}`, a: va, b: vb });
    }
    const sa = ta?.script ?? '';
    const sb = tb?.script ?? '';
    if (sa !== sb) scripts.push({ task: i, name: tb?.name ?? ta?.name ?? '', diff: lineDiff(sa, sb), linesA: sa.split('\n').length, linesB: sb.split('\n').length });
  }

  const ia = inputHashes(core, a);
  const ib = inputHashes(core, b);
  const inputs: CompareData['inputs'] = [];
  for (const name of [...new Set([...ia.keys(), ...ib.keys()])].sort()) {
    const x = ia.get(name) ?? null;
    const y = ib.get(name) ?? null;
    if (x !== y || ia.has(name) !== ib.has(name)) inputs.push({ name, a: x, b: y });
  }

  const manifestSet = [...new Set([...manifestPaths(a, outA), ...manifestPaths(b, outB)])].sort().slice(0, MAX_MANIFESTS);
  const manifests = await Promise.all(manifestSet.map((p) => compareManifest(core, p, mapA.get(p), mapB.get(p), signal)));
  const sa = side(core, a);
  const sb = side(core, b);
  return { a: sa, b: sb, sameFingerprint: sa.fingerprint === sb.fingerprint, outputs, fields, tasks, scripts, inputs, manifests };
}

/** Registers `/compare/:a/:b`. */
export function comparePageRoutes(core: Core, r: Router): void {
  r.add('GET', '/compare/:a/:b', async ({ req, params, signal }) => {
    const v = viewerOf(core, req);
    const a = visibleJob(core, v, params.a!);
    const b = visibleJob(core, v, params.b!);
    const data = await compareData(core, a, b, signal);
    return pageResponse(req, v, { title: `Compare ${a.name} and ${b.name}`, nav: 'jobs' }, data, (nonce) => renderComparePage(data, nonce));
  });
}
