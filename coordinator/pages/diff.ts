/**
 * The two diffs the comparison page needs, both bounded so that two large
 * inputs cost a known amount: a line diff of scripts (longest common
 * subsequence on what remains after the common head and tail), and a
 * structured diff of manifests (key/value or package lines).
 */
import type { DiffLine, ManifestEntryDiff } from '../../web/compare.js';

/** Most cells (lines of A times lines of B, after trimming) the LCS table may have. */
export const MAX_LCS_CELLS = 2_000_000;
/** Unchanged lines kept around each change; longer unchanged runs are folded. */
export const DIFF_CONTEXT = 3;
/** Most manifest entries read from one file. */
export const MAX_MANIFEST_ENTRIES = 20_000;

/**
 * A line diff of `a` and `b`, unchanged runs longer than twice
 * {@link DIFF_CONTEXT} folded into `{op: '…', count}`. Null when the
 * differing middle is too large to diff within {@link MAX_LCS_CELLS}.
 *
 * @example
 * lineDiff('a\nb\nc', 'a\nB\nc') // [{op:' ',text:'a'},{op:'-',text:'b'},{op:'+',text:'B'},{op:' ',text:'c'}]
 */
export function lineDiff(a: string, b: string): DiffLine[] | null {
  const A = a.split('\n');
  const B = b.split('\n');
  let head = 0;
  while (head < A.length && head < B.length && A[head] === B[head]) head++;
  let tail = 0;
  while (tail < A.length - head && tail < B.length - head && A[A.length - 1 - tail] === B[B.length - 1 - tail]) tail++;
  const a2 = A.slice(head, A.length - tail);
  const b2 = B.slice(head, B.length - tail);
  const n = a2.length;
  const m = b2.length;
  if ((n + 1) * (m + 1) > MAX_LCS_CELLS) return null;
  // lcs[i][j]: length of the LCS of a2[i..] and b2[j..], in one flat array.
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] = a2[i] === b2[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
    }
  }
  const raw: { op: ' ' | '-' | '+'; text: string }[] = A.slice(0, head).map((text) => ({ op: ' ', text }));
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a2[i] === b2[j]) {
      raw.push({ op: ' ', text: a2[i++]! });
      j++;
    } else if (i < n && (j >= m || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) raw.push({ op: '-', text: a2[i++]! });
    else raw.push({ op: '+', text: b2[j++]! });
  }
  for (const text of A.slice(A.length - tail)) raw.push({ op: ' ', text });
  return fold(raw);
}

function fold(raw: { op: ' ' | '-' | '+'; text: string }[]): DiffLine[] {
  const out: DiffLine[] = [];
  let k = 0;
  while (k < raw.length) {
    if (raw[k]!.op !== ' ') {
      out.push(raw[k++]!);
      continue;
    }
    let end = k;
    while (end < raw.length && raw[end]!.op === ' ') end++;
    const keepHead = k === 0 ? 0 : DIFF_CONTEXT;
    const keepTail = end === raw.length ? 0 : DIFF_CONTEXT;
    if (end - k > keepHead + keepTail + 1) {
      out.push(...raw.slice(k, k + keepHead), { op: '…', count: end - k - keepHead - keepTail }, ...raw.slice(end - keepTail, end));
    } else out.push(...raw.slice(k, end));
    k = end;
  }
  return out;
}

/** A manifest read into entries. */
export interface Manifest {
  kind: 'key/value' | 'packages';
  entries: Map<string, string>;
  /** True when it had more than {@link MAX_MANIFEST_ENTRIES} entries (the rest were not read). */
  cut: boolean;
}

/**
 * Reads manifest lines: `KEY=VALUE` and `name=version`, `KEY: VALUE`, and
 * `name version` (package lists); blank lines and `#` comments are skipped,
 * a line of one word is a key with an empty value. A key given twice keeps
 * both values, joined by `, ` (two architectures of one package).
 *
 * @example
 * parseManifest('CC=gcc\nzlib1g 1.2.13').entries // Map {CC => gcc, zlib1g => 1.2.13}
 */
export function parseManifest(text: string, packagesHint = false): Manifest {
  const entries = new Map<string, string>();
  let pairs = 0;
  let kvs = 0;
  let cut = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim().slice(0, 4096);
    if (line === '' || line.startsWith('#')) continue;
    if (entries.size >= MAX_MANIFEST_ENTRIES) {
      cut = true;
      break;
    }
    let m: RegExpExecArray | null;
    let key: string;
    let value: string;
    if ((m = /^([^\s=:]+)\s*=\s*(.*)$/.exec(line)) || (m = /^([^\s:]+):(?:\s+(.*))?$/.exec(line))) {
      key = m[1]!;
      value = m[2] ?? '';
      kvs++;
    } else if ((m = /^(\S+)\s+(.+)$/.exec(line))) {
      key = m[1]!;
      value = m[2]!;
      pairs++;
    } else {
      key = line;
      value = '';
    }
    const prev = entries.get(key);
    entries.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }
  return { kind: packagesHint || pairs > kvs ? 'packages' : 'key/value', entries, cut };
}

/** What changed from manifest `a` to manifest `b`, each list sorted by key. */
export function manifestDiff(a: Manifest, b: Manifest): { added: ManifestEntryDiff[]; removed: ManifestEntryDiff[]; changed: ManifestEntryDiff[] } {
  const added: ManifestEntryDiff[] = [];
  const removed: ManifestEntryDiff[] = [];
  const changed: ManifestEntryDiff[] = [];
  for (const [key, va] of a.entries) {
    const vb = b.entries.get(key);
    if (vb === undefined) removed.push({ key, a: va, b: null });
    else if (vb !== va) changed.push({ key, a: va, b: vb });
  }
  for (const [key, vb] of b.entries) if (!a.entries.has(key)) added.push({ key, a: null, b: vb });
  const byKey = (x: ManifestEntryDiff, y: ManifestEntryDiff) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0);
  return { added: added.sort(byKey), removed: removed.sort(byKey), changed: changed.sort(byKey) };
}
