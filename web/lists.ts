import { escapeHtml, fmtBytes, fmtDuration, fmtTime, jobLink, stateBadge, tagList } from './html.js';

/**
 * Job lists: the job table every page shares, the Jobs page and the
 * search-by-hash page. Data in, escaped HTML out.
 */

/** A job as lists show it (the `jobs[]` items of the page contract, docs/web.md). */
export interface JobSummary {
  id: string;
  name: string;
  /** Owner user id, and name when the user still exists. */
  owner: string;
  ownerName: string | null;
  target: string;
  /** The target it ran on after redirects. */
  runTarget: string;
  state: string;
  tags: Record<string, string>;
  private: boolean;
  submittedAt: number;
  assignedAt: number | null;
  endedAt: number | null;
  /** assignedAt − submittedAt, or (still waiting) now − submittedAt. */
  waitedMs: number | null;
  /** endedAt − assignedAt, or (running) now − assignedAt. */
  ranForMs: number | null;
  reason: string | null;
}

/** The table columns a job list shows. */
export type JobColumns = 'active' | 'finished' | 'all';

/**
 * A table of jobs (newest first as given) with state badges, times and tags.
 *
 * @example
 * renderJobTable(data.recent, 'finished', 'no job finished in the last day')
 */
export function renderJobTable(jobs: JobSummary[], cols: JobColumns, empty: string, id?: string): string {
  const idAttr = id ? ` id="${escapeHtml(id)}"` : '';
  if (jobs.length === 0) return `<p class="muted"${idAttr}>${escapeHtml(empty)}</p>`;
  const head = cols === 'finished'
    ? '<th>ended</th><th class="num">waited</th><th class="num">ran for</th>'
    : cols === 'active' ? '<th>submitted</th><th class="num">waited</th><th class="num">running for</th>'
      : '<th>submitted</th><th>ended</th><th class="num">waited</th><th class="num">ran for</th>';
  const rows = jobs.map((j) => {
    const target = j.runTarget !== j.target ? `${escapeHtml(j.target)} → ${escapeHtml(j.runTarget)}` : escapeHtml(j.target);
    const times = cols === 'finished'
      ? `<td>${fmtTime(j.endedAt)}</td><td class="num">${fmtDuration(j.waitedMs)}</td><td class="num">${fmtDuration(j.ranForMs)}</td>`
      : cols === 'active' ? `<td>${fmtTime(j.submittedAt)}</td><td class="num">${fmtDuration(j.waitedMs)}</td><td class="num">${fmtDuration(j.ranForMs)}</td>`
        : `<td>${fmtTime(j.submittedAt)}</td><td>${fmtTime(j.endedAt)}</td><td class="num">${fmtDuration(j.waitedMs)}</td><td class="num">${fmtDuration(j.ranForMs)}</td>`;
    const reason = j.reason ? ` title="${escapeHtml(j.reason)}"` : '';
    return `<tr><td${reason}>${stateBadge(j.state)}</td><td>${jobLink(j.id, j.name)}${j.private ? ' <span class="muted">(private)</span>' : ''}<br><code class="muted">${escapeHtml(j.id)}</code></td>`
      + `<td>${target}</td><td>${escapeHtml(j.ownerName ?? j.owner)}</td>${times}<td>${tagList(j.tags)}</td></tr>`;
  }).join('\n');
  return `<table${idAttr}><thead><tr><th>state</th><th>job</th><th>target</th><th>owner</th>${head}<th>tags</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

/** The Jobs page's data (`GET /jobs`). */
export interface JobsPageData {
  jobs: JobSummary[];
  /** The filters applied, as given (null when absent). */
  filters: { state: string | null; name: string | null; target: string | null; tag: string | null };
  limit: number;
  /** Pass as `before` for the next (older) page; null at the end. */
  next: string | null;
  /** Job records looked at for this page. */
  scanned: number;
  /** True when the page stopped at the scan bound before filling (more may match further back). */
  scanLimited: boolean;
}

/** The job states the filter offers. */
export const JOB_STATES = ['queued', 'waiting', 'running', 'completed', 'failed', 'cancelled'] as const;

function field(name: string, label: string, value: string | null, placeholder: string): string {
  return `<label>${label} <input name="${name}" value="${escapeHtml(value ?? '')}" placeholder="${escapeHtml(placeholder)}"></label>`;
}

/** A query string from parameters, skipping empty ones (values are URL-encoded). */
export function queryString(params: Record<string, string | number | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * The Jobs page: filters (state, name, target, tag), the table, and a link to
 * the next, older page.
 */
export function renderJobsPage(d: JobsPageData): string {
  const f = d.filters;
  const states = ['', ...JOB_STATES].map((s) => `<option value="${s}"${f.state === s ? ' selected' : ''}>${s || 'any state'}</option>`).join('');
  const form = `<form class="filters" method="get" action="/jobs"><select name="state" aria-label="state">${states}</select>`
    + `${field('name', 'name', f.name, 'exact name')}${field('target', 'target', f.target, 'target')}${field('tag', 'tag', f.tag, 'key=value')}`
    + `<input type="hidden" name="limit" value="${d.limit}"><button type="submit">Filter</button> <a href="/jobs">clear</a></form>`;
  const next = d.next !== null
    ? `<p class="pager"><a href="/jobs${escapeHtml(queryString({ ...f, before: d.next, limit: d.limit }))}" rel="next">Older jobs →</a>${d.scanLimited ? ` <span class="muted">(looked at ${d.scanned} jobs; more may match further back)</span>` : ''}</p>`
    : '';
  return `<h1>Jobs</h1>${form}${renderJobTable(d.jobs, 'all', 'No job you may see matches.', 'jobs')}${next}`;
}

/** One output with the searched bytes. */
export interface HashMatch {
  job: JobSummary;
  path: string;
  size: number;
  committedAt: number;
  /** REST download URL (`/api/v1/jobs/ID/outputs/PATH`), for scripts with a Bearer token. */
  url: string;
  /** Browser download URL (`/job/ID/outputs/PATH`), which honours the session cookie and anonymous read. */
  download: string;
}

/** The search-by-hash page's data (`GET /hash?sha256=HEX`). */
export interface HashPageData {
  /** The searched hash, lower-case; null when nothing was asked yet. */
  sha256: string | null;
  outputs: HashMatch[];
  /** True when the result was cut at the bound. */
  truncated: boolean;
}

/** The search-by-hash page: every visible job output with those bytes. */
export function renderHashPage(d: HashPageData): string {
  const form = `<form class="filters" method="get" action="/hash"><label>SHA-256 <input name="sha256" size="70" value="${escapeHtml(d.sha256 ?? '')}" pattern="[0-9a-fA-F]{64}" required></label><button type="submit">Search</button></form>`;
  if (d.sha256 === null) return `<h1>Search by hash</h1>${form}`;
  const rows = d.outputs.map((o) => `<tr><td>${stateBadge(o.job.state)}</td><td>${jobLink(o.job.id, o.job.name)}<br><code class="muted">${escapeHtml(o.job.id)}</code></td>`
    + `<td><a href="${escapeHtml(o.download)}" download><code>${escapeHtml(o.path)}</code></a></td><td class="num">${fmtBytes(o.size)}</td><td>${fmtTime(o.committedAt)}</td>`
    + `<td>${escapeHtml(o.job.target)}</td></tr>`).join('\n');
  const table = d.outputs.length === 0
    ? '<p class="muted" id="matches">No output you may see has these bytes.</p>'
    : `<table id="matches"><thead><tr><th>state</th><th>job</th><th>output</th><th class="num">size</th><th>committed</th><th>target</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
  return `<h1>Search by hash</h1>${form}<p>Outputs with SHA-256 <code>${escapeHtml(d.sha256)}</code>: ${d.outputs.length}${d.truncated ? ' (only the first shown)' : ''}</p>${table}`;
}
