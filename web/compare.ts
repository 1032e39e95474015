/**
 * The comparison page (`/compare/A/B`): two jobs side by side, as builder-web
 * shows two builds of one package, made general. Its data is also the
 * page's JSON answer. Pure: plain data in, escaped HTML out.
 *
 * @example
 * renderComparePage(data, nonce)
 */
import { escapeHtml, fmtBytes, jobLink, stateBadge } from './html.js';

/** One line of a line diff, or a fold of `count` unchanged lines. */
export type DiffLine = { op: ' ' | '-' | '+'; text: string } | { op: '…'; count: number };

/** One entry of a manifest diff (`a` null: added in B; `b` null: removed in B). */
export interface ManifestEntryDiff {
  key: string;
  a: string | null;
  b: string | null;
}

/** A side of the comparison. */
export interface CompareSide {
  id: string;
  name: string;
  state: string;
  target: string;
  runTarget: string;
  fingerprint: string;
}

/** An output path and how the two jobs' files compare. */
export interface OutputCompare {
  path: string;
  status: 'identical' | 'different' | 'only-a' | 'only-b';
  a: { size: number; sha256: string } | null;
  b: { size: number; sha256: string } | null;
}

/** A manifest output compared entry by entry. */
export interface ManifestCompare {
  path: string;
  kind: 'key/value' | 'packages';
  status: 'identical' | 'compared' | 'only-a' | 'only-b' | 'unreadable';
  added: ManifestEntryDiff[];
  removed: ManifestEntryDiff[];
  changed: ManifestEntryDiff[];
  /** Why the comparison is partial or missing, in words; null when complete. */
  note: string | null;
}

/** Everything the comparison page shows. */
export interface CompareData {
  a: CompareSide;
  b: CompareSide;
  sameFingerprint: boolean;
  outputs: OutputCompare[];
  /** Job-level fields that differ (target, task count). */
  fields: { field: string; a: string; b: string }[];
  /** Task settings that differ: environment variables (`env.NAME`) and `envClear`, `workdir`, `uid`, `gid`, `name`. */
  tasks: { task: number; field: string; a: string | null; b: string | null }[];
  /** Scripts of tasks at the same position that differ; `diff` null when too large to diff. */
  scripts: { task: number; name: string; diff: DiffLine[] | null; linesA: number; linesB: number }[];
  /** Inputs (named inputs, and `DEP/path` for dependency outputs) whose SHA-256 differs or that only one job has. */
  inputs: { name: string; a: string | null; b: string | null }[];
  manifests: ManifestCompare[];
}

const e = escapeHtml;
const short = (sha: string | null | undefined) => (sha ? `<code title="${e(sha)}">${e(sha.slice(0, 16))}…</code>` : '<span class="muted">—</span>');
const val = (v: string | null) => (v === null ? '<span class="muted">(unset)</span>' : `<code>${e(v)}</code>`);
const STATUS: Record<OutputCompare['status'], string> = { identical: 'identical', different: 'DIFFERENT', 'only-a': 'only in A', 'only-b': 'only in B' };

function header(d: CompareData): string {
  const side = (label: string, s: CompareSide) => `<td><b>${label}</b> ${jobLink(s.id, s.name)} ${stateBadge(s.state)}<br><code>${e(s.id)}</code><br>target ${e(s.runTarget)}<br>fingerprint ${short(s.fingerprint)}</td>`;
  return `<table class="sides"><tr>${side('A', d.a)}${side('B', d.b)}</tr></table>
<p>${d.sameFingerprint ? '<b>Same input fingerprint</b>: the outputs should be identical.' : 'The input fingerprints differ: the differences below explain why.'}</p>`;
}

function outputs(d: CompareData): string {
  if (d.outputs.length === 0) return '<h2>Outputs</h2><p class="muted">Neither job has outputs.</p>';
  const counts = (['identical', 'different', 'only-a', 'only-b'] as const).map((s) => `${d.outputs.filter((o) => o.status === s).length} ${STATUS[s]}`).join(' · ');
  return `<h2>Outputs</h2><p>${e(counts)}</p><table><tr><th>path</th><th>status</th><th class="num">A size</th><th>A SHA-256</th><th class="num">B size</th><th>B SHA-256</th></tr>${d.outputs.map((o) =>
    `<tr class="out-${o.status}"><td><code>${e(o.path)}</code></td><td><span class="st st-${o.status}">${STATUS[o.status]}</span></td>`
    + `<td class="num">${o.a ? e(fmtBytes(o.a.size)) : ''}</td><td>${short(o.a?.sha256)}</td><td class="num">${o.b ? e(fmtBytes(o.b.size)) : ''}</td><td>${short(o.b?.sha256)}</td></tr>`).join('')}</table>`;
}

function settings(d: CompareData): string {
  let html = '<h2>Environment and settings</h2>';
  const rows = [...d.fields.map((f) => ({ where: 'job', field: f.field, a: f.a as string | null, b: f.b as string | null })), ...d.tasks.map((t) => ({ where: `task ${t.task}`, field: t.field, a: t.a, b: t.b }))];
  if (rows.length === 0) return `${html}<p class="muted">Same target, tasks and environment.</p>`;
  html += `<table><tr><th>where</th><th>setting</th><th>A</th><th>B</th></tr>${rows.map((r) => `<tr><td>${e(r.where)}</td><td><code>${e(r.field)}</code></td><td>${val(r.a)}</td><td>${val(r.b)}</td></tr>`).join('')}</table>`;
  return html;
}

/** A line diff as `<pre>` lines (block spans, so no newlines between them) with classes `.d-add`, `.d-del`, `.d-fold` (text escaped). */
export function renderDiff(lines: readonly DiffLine[]): string {
  return `<pre class="diff">${lines.map((l) => (l.op === '…'
    ? `<span class="d-fold">… ${l.count} unchanged line${l.count === 1 ? '' : 's'} …</span>`
    : `<span class="${l.op === '+' ? 'd-add' : l.op === '-' ? 'd-del' : 'd-same'}">${l.op} ${e(l.text)}</span>`)).join('')}</pre>`;
}

function scripts(d: CompareData): string {
  if (d.scripts.length === 0) return '<h2>Scripts</h2><p class="muted">The scripts are the same.</p>';
  return `<h2>Scripts</h2>${d.scripts.map((s) => `<h3>task ${s.task} ${e(s.name)}</h3>${s.diff === null
    ? `<p class="muted">Too large to diff here (${s.linesA} and ${s.linesB} lines).</p>` : renderDiff(s.diff)}`).join('')}`;
}

function inputs(d: CompareData): string {
  if (d.inputs.length === 0) return '<h2>Inputs</h2><p class="muted">Same inputs (names and SHA-256).</p>';
  return `<h2>Inputs</h2><table><tr><th>input</th><th>A SHA-256</th><th>B SHA-256</th></tr>${d.inputs.map((i) =>
    `<tr><td><code>${e(i.name)}</code></td><td>${short(i.a)}</td><td>${short(i.b)}</td></tr>`).join('')}</table>`;
}

function manifests(d: CompareData): string {
  if (d.manifests.length === 0) return '';
  const entries = (title: string, cls: string, list: ManifestEntryDiff[], show: (x: ManifestEntryDiff) => string) => list.length === 0 ? ''
    : `<h4>${e(title)} (${list.length})</h4><table class="${cls}"><tr><th>key</th><th>value</th></tr>${list.map((x) => `<tr><td><code>${e(x.key)}</code></td><td>${show(x)}</td></tr>`).join('')}</table>`;
  return `<h2>Build manifests</h2>${d.manifests.map((m) => {
    let body: string;
    if (m.status === 'identical') body = '<p>Identical.</p>';
    else if (m.status === 'only-a' || m.status === 'only-b') body = `<p>Only in ${m.status === 'only-a' ? 'A' : 'B'}.</p>`;
    else if (m.status === 'unreadable') body = '';
    else {
      body = entries('Changed', 'm-changed', m.changed, (x) => `${val(x.a)} → ${val(x.b)}`)
        + entries('Added in B', 'm-added', m.added, (x) => val(x.b)) + entries('Removed in B', 'm-removed', m.removed, (x) => val(x.a));
      if (!body) body = '<p>Same entries (the files differ in order, comments or spacing only).</p>';
    }
    return `<h3><code>${e(m.path)}</code> <span class="muted">${e(m.kind)}</span></h3>${m.note ? `<p class="muted">${e(m.note)}</p>` : ''}${body}`;
  }).join('')}`;
}

/** The page's own stylesheet. */
export const COMPARE_CSS = `
table.sides td{width:50%}
.st-identical{color:#1f883d}.st-different{color:#cf222e;font-weight:600}.st-only-a,.st-only-b{color:#bf8700}
pre.diff{background:#fff;border:1px solid #e5e9ee;padding:.4em;overflow:auto;font:12px/1.4 ui-monospace,monospace}
.d-add{background:#dafbe1;display:block}.d-del{background:#ffebe9;display:block}.d-fold{color:#6e7781;display:block}.d-same{display:block}
`;

/** The comparison page body (everything escaped). */
export function renderComparePage(d: CompareData, nonce: string): string {
  return `<style nonce="${e(nonce)}">${COMPARE_CSS}</style>
<h1>Compare ${e(d.a.name)} and ${e(d.b.name)}</h1>
${header(d)}${outputs(d)}${manifests(d)}${settings(d)}${scripts(d)}${inputs(d)}`;
}
