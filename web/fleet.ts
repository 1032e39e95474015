import { escapeHtml, fmtDuration, fmtTime, jobLink } from './html.js';

/**
 * The fleet pages: workers, factories and targets, and the admin buttons
 * (hold, release, recycle, the global hold). Buttons are POST forms carrying
 * the session's CSRF token; they are rendered only when `admin` is true.
 */

/** A worker as the pages show it (the `workers[]` items of the page contract). */
export interface WorkerRow {
  id: string;
  target: string;
  factory: { id: string; name: string } | null;
  persistent: boolean;
  state: string;
  hold: boolean;
  connected: boolean;
  instance: string | null;
  createdAt: number;
  ageMs: number;
  lastSeenAt: number | null;
  /** The job it runs, when the viewer may see that job. */
  job: string | null;
  /** True when it runs a job (visible to the viewer or not). */
  busy: boolean;
  jobsRun: number;
  recycleReason: string | null;
}

/** A factory as the pages show it. */
export interface FactoryRow {
  id: string;
  name: string;
  targets: string[];
  enabled: boolean;
  connected: boolean;
  /** Free slots it last reported; null while not connected. */
  free: number | null;
  lastContactAt: number | null;
  /** Live workers it made. */
  workers: number;
}

/** A target as the pages show it. */
export interface TargetRow {
  name: string;
  description: string;
  redirect: string | null;
  privilege: string | null;
  queued: number;
  idle: number;
  coming: number;
  workers: number;
}

/** Admin abilities of a page: whether to show buttons, and the token they carry. */
export interface AdminForms {
  admin: boolean;
  csrf: string | null;
}

/** A one-button POST form (only for admins; nothing otherwise). */
export function adminButton(a: AdminForms, action: string, label: string): string {
  if (!a.admin) return '';
  const csrf = a.csrf !== null ? `<input type="hidden" name="csrf" value="${escapeHtml(a.csrf)}">` : '';
  return `<form class="inline" method="post" action="${escapeHtml(action)}">${csrf}<button type="submit">${escapeHtml(label)}</button></form>`;
}

/** The global hold banner, with the hold/release button for admins. */
export function renderHold(hold: boolean, a: AdminForms): string {
  if (hold) return `<p class="hold" id="hold">The global hold is set: no new jobs start and no workers are leased. ${adminButton(a, '/control/release', 'Release the hold')}</p>`;
  return a.admin ? `<p class="muted" id="hold">Jobs are being scheduled. ${adminButton(a, '/control/hold', 'Set the global hold')}</p>` : '<span id="hold"></span>';
}

/**
 * A table of workers: id, target, factory, instance, state, age, job, and
 * (for admins) hold/release and recycle buttons.
 */
export function renderWorkerTable(workers: WorkerRow[], a: AdminForms, id = 'workers'): string {
  if (workers.length === 0) return `<p class="muted" id="${escapeHtml(id)}">No active workers.</p>`;
  const rows = workers.map((w) => {
    const job = w.job !== null ? jobLink(w.job) : w.busy ? '<span class="muted">(a job you may not see)</span>' : '<span class="muted">idle</span>';
    const state = `${escapeHtml(w.state)}${w.hold ? ' <span class="badge wait">held</span>' : ''}${w.connected ? '' : ' <span class="muted">(not connected)</span>'}`;
    const buttons = w.state === 'destroyed' ? '' : `${adminButton(a, `/workers/${encodeURIComponent(w.id)}/${w.hold ? 'release' : 'hold'}`, w.hold ? 'Release' : 'Hold')} ${adminButton(a, `/workers/${encodeURIComponent(w.id)}/recycle`, 'Recycle')}`;
    return `<tr><td><code>${escapeHtml(w.id)}</code></td><td>${escapeHtml(w.target)}</td><td>${w.factory ? escapeHtml(w.factory.name) : '<span class="muted">persistent</span>'}</td>`
      + `<td><code>${escapeHtml(w.instance ?? '—')}</code></td><td>${state}</td><td class="num">${fmtDuration(w.ageMs)}</td><td>${job}</td><td class="num">${w.jobsRun}</td>`
      + `${a.admin ? `<td>${buttons}</td>` : ''}</tr>`;
  }).join('\n');
  return `<table id="${escapeHtml(id)}"><thead><tr><th>worker</th><th>target</th><th>factory</th><th>instance</th><th>state</th><th class="num">age</th><th>job</th><th class="num">jobs run</th>${a.admin ? '<th>actions</th>' : ''}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

/** A table of factories with capacity and last contact. */
export function renderFactoryTable(factories: FactoryRow[], id = 'factories'): string {
  if (factories.length === 0) return `<p class="muted" id="${escapeHtml(id)}">No factories.</p>`;
  const rows = factories.map((f) => `<tr><td>${escapeHtml(f.name)}<br><code class="muted">${escapeHtml(f.id)}</code></td><td>${escapeHtml(f.targets.join(', '))}</td>`
    + `<td>${f.enabled ? 'enabled' : '<span class="badge cancel">disabled</span>'}</td><td>${f.connected ? 'connected' : '<span class="muted">not connected</span>'}</td>`
    + `<td class="num">${f.free ?? '—'}</td><td class="num">${f.workers}</td><td>${fmtTime(f.lastContactAt)}</td></tr>`).join('\n');
  return `<table id="${escapeHtml(id)}"><thead><tr><th>factory</th><th>targets</th><th>state</th><th>link</th><th class="num">free slots</th><th class="num">workers</th><th>last contact</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

/** The Workers page's data (`GET /workers`). */
export interface WorkersPageData {
  hold: boolean;
  /** Whether the viewer may use the admin buttons. */
  admin: boolean;
  /** True with `?all=1`: destroyed workers too (the newest 1,000). */
  all: boolean;
  workers: WorkerRow[];
}

/** The Workers page. */
export function renderWorkersPage(d: WorkersPageData, csrf: string | null): string {
  const a = { admin: d.admin, csrf };
  const toggle = d.all ? '<a href="/workers">only active workers</a>' : '<a href="/workers?all=1">include destroyed workers</a>';
  return `<h1>Workers</h1>${renderHold(d.hold, a)}<p>${toggle}</p>${renderWorkerTable(d.workers, a)}`;
}

/** The Factories page's data (`GET /factories`). */
export interface FactoriesPageData {
  factories: FactoryRow[];
}

/** The Factories page. */
export function renderFactoriesPage(d: FactoriesPageData): string {
  return `<h1>Factories</h1>${renderFactoryTable(d.factories)}`;
}

/** The Targets page's data (`GET /targets`). */
export interface TargetsPageData {
  targets: TargetRow[];
}

/** The Targets page. */
export function renderTargetsPage(d: TargetsPageData): string {
  if (d.targets.length === 0) return '<h1>Targets</h1><p class="muted" id="targets">No targets.</p>';
  const rows = d.targets.map((t) => `<tr><td><code>${escapeHtml(t.name)}</code></td><td>${escapeHtml(t.description)}</td>`
    + `<td>${t.redirect !== null ? `→ <code>${escapeHtml(t.redirect)}</code>` : '—'}</td><td>${t.privilege !== null ? `<code>${escapeHtml(t.privilege)}</code>` : '—'}</td>`
    + `<td class="num">${t.queued}</td><td class="num">${t.workers}</td><td class="num">${t.idle}</td><td class="num">${t.coming}</td></tr>`).join('\n');
  return `<h1>Targets</h1><table id="targets"><thead><tr><th>target</th><th>description</th><th>redirects to</th><th>privilege</th><th class="num">queued</th><th class="num">workers</th><th class="num">idle</th><th class="num">coming</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}
