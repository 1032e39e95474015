/**
 * The job page (`/job/ID`): its data (also the page's JSON answer) and its
 * HTML. Pure: plain data in, an escaped HTML string out.
 *
 * The log section holds only the lines the server rendered (the last page,
 * or the page around a permalink); web/client/job.ts loads the rest page by
 * page and follows a running job live. Its configuration travels in
 * `data-` attributes of `#log`, never in inline script.
 *
 * @example
 * pageResponse(req, viewer, { title: data.job.name }, data, (nonce) => renderJobPage(data, lines, nonce), { scripts: ['/static/job.js'] });
 */
import { escapeHtml, fmtBytes, fmtDuration, fmtTime, jobLink, stateBadge, tagList } from './html.js';
import type { LogEvent } from './log.js';
import { LOG_CSS, renderLogLines } from './log.js';

/** Another job, as far as a link needs it. */
export interface JobRef {
  id: string;
  name: string;
  state: string;
  endedAt: number | null;
}

/** One run of a task, from its TASK start and exit records. */
export interface TaskRun {
  index: number;
  name: string;
  startedAt: number;
  endedAt: number | null;
  code: number | null;
  signal: string | null;
  /** The start record's seq (a permalink into the log). */
  seq: number;
}

/** A phase of the job's life: `waiting` (or `queued`) until assigned, then `running`. */
export interface Phase {
  name: 'waiting' | 'running';
  start: number;
  end: number | null;
}

/** A task as submitted. */
export interface TaskView {
  name: string;
  script: string;
  env: Record<string, string>;
  envClear: boolean;
  workdir: string | null;
  uid: number | null;
  gid: number | null;
}

/** The job itself (the fields of `GET /api/v1/jobs/:id`, and the owner's name). */
export interface JobView {
  id: string;
  name: string;
  owner: string;
  ownerName: string;
  target: string;
  runTarget: string;
  state: string;
  worker: string | null;
  tags: Record<string, string>;
  tasks: TaskView[];
  submittedAt: number;
  assignedAt: number | null;
  endedAt: number | null;
  reason: string | null;
  cancelRequested: boolean;
  private: boolean;
  lastEvent: number;
}

/** A dependency of this job, or null `ref` when that job is gone or not visible. */
export interface DependencyView {
  name: string;
  job: string;
  ref: JobRef | null;
  copyOutputs: boolean;
  onCompleted: boolean;
  onFailed: boolean;
}

/** An output with where to download it. */
export interface OutputView {
  path: string;
  size: number;
  sha256: string;
  /** Download through the page (the viewer's session). */
  url: string;
  /** The same bytes through the REST API (a bearer token). */
  apiUrl: string;
}

/** The job's main output, and who else made it (docs/web.md, "Reproducibility"). */
export interface Reproducibility {
  fingerprint: string;
  main: { path: string; sha256: string; size: number; chosenBy: 'tag' | 'largest' } | null;
  /** Other jobs with an output of the same bytes as the main output, by whether their fingerprint is the same. */
  reproducedBy: { sameInputs: JobRef[]; differentInputs: JobRef[] };
  /** Jobs with the same fingerprint whose main output differs: the build is not reproducible. */
  notReproducible: { job: JobRef; path: string | null; sha256: string | null }[];
  /** How many completed jobs of the same name were looked at for the same fingerprint. */
  scanned: number;
}

/** Everything the job page shows except the log's lines. */
export interface JobPageData {
  job: JobView;
  times: { submittedAt: number; waitedMs: number | null; ranMs: number | null; endedAt: number | null };
  timeline: { phases: Phase[]; tasks: TaskRun[] };
  dependencies: DependencyView[];
  dependents: JobRef[];
  inputs: { name: string; size: number | null; sha256: string | null }[];
  /** The store's keys; values are never on the page. */
  store: { key: string; secret: boolean; updatedAt: number }[];
  outputs: OutputView[];
  reproducibility: Reproducibility;
  log: {
    lastSeq: number;
    /** Seq range of the lines the HTML carries (0, 0 when none). */
    firstShown: number;
    lastShown: number;
    /** Whether the job may still log (the page follows it live). */
    live: boolean;
    eventsUrl: string;
    searchUrl: string;
    rawUrl: string;
    liveUrl: string;
  };
}

const e = escapeHtml;

function ref(r: JobRef): string {
  return `${jobLink(r.id, r.name)} <code>${e(r.id)}</code> ${stateBadge(r.state)}`;
}

function kv(rows: [string, string][]): string {
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${e(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function summary(d: JobPageData): string {
  const j = d.job;
  const target = j.runTarget !== j.target ? `${e(j.target)} → redirected to <b>${e(j.runTarget)}</b>` : e(j.target);
  const rows: [string, string][] = [
    ['id', `<code>${e(j.id)}</code>`],
    ['target', target],
    ['owner', e(j.ownerName)],
    ['tags', tagList(j.tags) || '<span class="muted">none</span>'],
    ['submitted', e(fmtTime(d.times.submittedAt))],
    ['waited', e(fmtDuration(d.times.waitedMs))],
    ['ran for', e(fmtDuration(d.times.ranMs))],
    ['ended', e(fmtTime(d.times.endedAt))],
  ];
  if (j.worker) rows.push(['worker', `<code>${e(j.worker)}</code>`]);
  if (j.reason) rows.push(['reason', e(j.reason)]);
  if (j.cancelRequested && !j.endedAt) rows.push(['cancel', 'requested']);
  if (j.private) rows.push(['visibility', 'private']);
  return kv(rows);
}

/** The phases and tasks as a bar chart (SVG attributes, no inline style) and a table. */
function timeline(d: JobPageData): string {
  const { phases, tasks } = d.timeline;
  const t0 = d.times.submittedAt;
  const end = Math.max(t0 + 1, ...phases.map((p) => p.end ?? p.start), ...tasks.map((t) => t.endedAt ?? t.startedAt), d.times.endedAt ?? 0);
  // A label column, then bars on a shared time axis; SVG attributes only (the CSP allows no inline style).
  const L = 200;
  const W = 1000;
  const x = (t: number) => L + Math.round(((t - t0) / (end - t0)) * (W - L - 10));
  const rows = [...phases.map((p) => ({ label: p.name, cls: p.name === 'running' ? 'run' : 'wait', s: p.start, e: p.end ?? end })),
    ...tasks.map((t) => ({ label: `task ${t.index} ${t.name}`, cls: t.endedAt === null ? 'run' : t.code === 0 ? 'ok' : 'fail', s: t.startedAt, e: t.endedAt ?? end }))];
  const H = 18;
  const bars = rows.map((r, i) => `<text x="4" y="${i * H + 14}">${e(r.label.length > 28 ? `${r.label.slice(0, 27)}…` : r.label)}</text>`
    + `<rect class="${r.cls}" x="${x(r.s)}" y="${i * H + 3}" width="${Math.max(2, x(r.e) - x(r.s))}" height="${H - 6}"><title>${e(r.label)}: ${e(fmtDuration(r.e - r.s))}</title></rect>`).join('');
  const chart = rows.length ? `<svg class="chart timeline" viewBox="0 0 ${W} ${rows.length * H + 4}" width="100%" role="img" aria-label="timeline">${bars}</svg>` : '';
  const table = tasks.length === 0 ? '<p class="muted">No task has started.</p>'
    : `<table><tr><th>#</th><th>task</th><th>started</th><th class="num">duration</th><th>exit</th></tr>${tasks.map((t) => {
      const exit = t.endedAt === null ? '<span class="badge run">running</span>' : t.signal ? `signal ${e(t.signal)}` : `<span class="badge ${t.code === 0 ? 'ok' : 'fail'}">${e(String(t.code))}</span>`;
      return `<tr><td>${t.index}</td><td><a href="#L${t.seq}">${e(t.name)}</a></td><td>${e(fmtTime(t.startedAt))}</td><td class="num">${e(fmtDuration((t.endedAt ?? end) - t.startedAt))}</td><td>${exit}</td></tr>`;
    }).join('')}</table>`;
  return `<h2>Timeline</h2>${chart}${table}`;
}

function dependencies(d: JobPageData): string {
  if (d.dependencies.length === 0 && d.dependents.length === 0) return '';
  const deps = d.dependencies.map((x) => {
    const flags = [x.copyOutputs ? 'copies outputs' : '', x.onFailed ? 'runs on failure' : '', x.onCompleted ? '' : 'not on completion'].filter(Boolean).join(', ');
    return `<li><b>${e(x.name)}</b>: ${x.ref ? ref(x.ref) : `<code>${e(x.job)}</code> <span class="muted">(gone or not visible)</span>`}${flags ? ` <span class="muted">${e(flags)}</span>` : ''}</li>`;
  }).join('');
  const back = d.dependents.map((r) => `<li>${ref(r)}</li>`).join('');
  return `<h2>Dependencies</h2>${deps ? `<p>This job depends on:</p><ul>${deps}</ul>` : ''}${back ? `<p>Jobs that depend on this one:</p><ul>${back}</ul>` : ''}`;
}

function inputsAndStore(d: JobPageData): string {
  let html = '';
  if (d.inputs.length > 0) {
    html += `<h2>Inputs</h2><table><tr><th>name</th><th class="num">size</th><th>SHA-256</th></tr>${d.inputs.map((i) =>
      `<tr><td>${e(i.name)}</td><td class="num">${i.size === null ? '—' : e(fmtBytes(i.size))}</td><td><code>${i.sha256 === null ? 'not uploaded yet' : e(i.sha256)}</code></td></tr>`).join('')}</table>`;
  }
  if (d.store.length > 0) {
    html += `<h2>Store</h2><p class="muted">Keys only; values are not shown here.</p><ul class="store">${d.store.map((s) =>
      `<li><code>${e(s.key)}</code>${s.secret ? ' <span class="tag">secret</span>' : ''} <span class="muted">${e(fmtTime(s.updatedAt))}</span></li>`).join('')}</ul>`;
  }
  return html;
}

function outputs(d: JobPageData): string {
  if (d.outputs.length === 0) return '<h2>Outputs</h2><p class="muted">None.</p>';
  return `<h2>Outputs</h2><table><tr><th>path</th><th class="num">size</th><th>SHA-256</th></tr>${d.outputs.map((o) =>
    `<tr><td><a href="${e(o.url)}" download>${e(o.path)}</a></td><td class="num">${e(fmtBytes(o.size))}</td><td><code>${e(o.sha256)}</code></td></tr>`).join('')}</table>`;
}

function reproducibility(d: JobPageData): string {
  const r = d.reproducibility;
  const id = d.job.id;
  const cmp = (other: string) => `<a href="/compare/${encodeURIComponent(id)}/${encodeURIComponent(other)}">compare</a>`;
  let html = `<h2 id="reproducibility">Reproducibility</h2><p>Input fingerprint <code class="fingerprint">${e(r.fingerprint)}</code> <span class="muted">(a SHA-256 of the tasks, environment, target and input hashes)</span></p>`;
  if (!r.main) return `${html}<p class="muted">No outputs, so nothing to compare.</p>`;
  const n = r.reproducedBy.sameInputs.length + r.reproducedBy.differentInputs.length;
  html += `<p>Main output <code>${e(r.main.path)}</code> (${r.main.chosenBy === 'tag' ? 'tag <code>main</code>' : 'the largest output'}), SHA-256 <code>${e(r.main.sha256)}</code>: `
    + `<b class="reproduced">reproduced by ${n} job${n === 1 ? '' : 's'}</b>`
    + ` (${r.reproducedBy.sameInputs.length} with the same inputs, ${r.reproducedBy.differentInputs.length} with different inputs).</p>`;
  const list = (title: string, refs: JobRef[]) => refs.length === 0 ? ''
    : `<p>${e(title)}:</p><ul>${refs.map((x) => `<li>${ref(x)} · ${cmp(x.id)}</li>`).join('')}</ul>`;
  html += list('Same bytes, same inputs', r.reproducedBy.sameInputs) + list('Same bytes, different inputs', r.reproducedBy.differentInputs);
  if (r.notReproducible.length > 0) {
    html += `<div class="error not-reproducible"><p><b>NOT REPRODUCIBLE</b>: ${r.notReproducible.length} job${r.notReproducible.length === 1 ? '' : 's'} with the same input fingerprint produced a different main output.</p><ul>${r.notReproducible.map((x) =>
      `<li>${ref(x.job)}: ${x.path === null ? 'no such output' : `<code>${e(x.path)}</code> <code>${e(x.sha256 ?? '')}</code>`} · ${cmp(x.job.id)}</li>`).join('')}</ul></div>`;
  }
  html += `<p class="muted">Looked at the ${r.scanned} newest completed jobs named ${e(JSON.stringify(d.job.name))} for the same fingerprint.</p>`;
  return html;
}

function logSection(d: JobPageData, lines: readonly LogEvent[]): string {
  const L = d.log;
  const t0 = d.job.assignedAt ?? d.job.submittedAt;
  const attrs = [
    ['job', d.job.id], ['last', String(L.lastSeq)], ['first-shown', String(L.firstShown)], ['last-shown', String(L.lastShown)],
    ['live', L.live ? '1' : '0'], ['t0', String(t0)], ['events', L.eventsUrl], ['search', L.searchUrl], ['raw', L.rawUrl], ['ws', L.liveUrl],
  ].map(([k, v]) => `data-${k}="${e(v!)}"`).join(' ');
  const older = L.firstShown > 1 ? `<div class="logmore" id="older">${L.firstShown - 1} earlier lines: scroll up to load them</div>` : '';
  const newer = L.lastShown < L.lastSeq ? `<div class="logmore" id="later">${L.lastSeq - L.lastShown} later lines: scroll down to load them</div>` : '';
  return `<h2 id="log-title">Log</h2>
<div class="logbar">
<form id="log-search" role="search" action="${e(L.searchUrl)}" method="get"><input type="search" name="q" placeholder="search the log" aria-label="search the log" maxlength="200"> <button type="submit">Find</button> <button type="button" id="search-prev" disabled>↑</button><button type="button" id="search-next" disabled>↓</button> <span id="search-status" class="muted"></span></form>
<button type="button" id="ts-toggle">absolute times</button>
<a href="${e(L.rawUrl)}" download>raw log</a>
<span id="live-status" class="live ${L.live ? 'on' : 'off'}" data-state="${L.live ? 'connecting' : 'ended'}">${L.live ? 'live' : 'ended'}</span>
<span class="muted"><span id="event-count">${L.lastSeq}</span> events</span>
</div>
<div id="log" class="log" ${attrs} tabindex="0">${older}<div id="lines">${renderLogLines(lines, { jobId: d.job.id, t0 })}</div>${newer}<button type="button" id="newest" data-count="0" hidden>jump to newest</button></div>`;
}

/** The page's own stylesheet (on top of the shell's). */
export const JOB_CSS = `
table.kv{width:auto}table.kv th{background:none;width:8em}
svg.timeline rect.ok{fill:#1f883d}svg.timeline rect.fail{fill:#cf222e}svg.timeline rect.run{fill:#0969da}svg.timeline rect.wait{fill:#bf8700}
svg.timeline text{fill:#1d2329;font:11px system-ui,sans-serif}
.not-reproducible{margin:.6em 0}
` + LOG_CSS;

/**
 * The job page body. `lines` are the log lines to render server-side (a
 * bounded page); everything is escaped.
 */
export function renderJobPage(d: JobPageData, lines: readonly LogEvent[], nonce: string): string {
  const j = d.job;
  return `<style nonce="${e(nonce)}">${JOB_CSS}</style>
<h1>${e(j.name)} ${stateBadge(j.state)}</h1>
${summary(d)}${timeline(d)}${dependencies(d)}${inputsAndStore(d)}${outputs(d)}${reproducibility(d)}${logSection(d, lines)}`;
}
