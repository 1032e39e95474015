import type { FactoryRow, WorkerRow } from './fleet.js';
import { renderFactoryTable, renderHold, renderWorkerTable } from './fleet.js';
import { escapeHtml, fmtDuration } from './html.js';
import type { JobSummary } from './lists.js';
import { renderJobTable } from './lists.js';

/** One hour of the status chart. */
export interface HourStat {
  /** Start of the hour, ms. */
  start: number;
  /** Jobs that ended in this hour (that the viewer may see). */
  finished: number;
  /** Of those, how many failed. */
  failed: number;
  /** Median of assignedAt − submittedAt over those that ran; null when none did. */
  medianWaitMs: number | null;
}

/** The Status page's data (`GET /`). */
export interface StatusData {
  now: number;
  hold: boolean;
  /** Whether the viewer may use the admin buttons. */
  admin: boolean;
  counts: { queued: number; waiting: number; running: number; workers: number; factories: number };
  workers: WorkerRow[];
  /** Queued, waiting and running jobs, newest first (at most `activeLimit`). */
  active: JobSummary[];
  activeLimit: number;
  /** The 50 most recently ended jobs. */
  recent: JobSummary[];
  factories: FactoryRow[];
  /** The last 24 hours, oldest first. */
  hours: HourStat[];
}

/** Bars plus a line, in server-side SVG: finished jobs per hour and median queue wait. */
export function renderChart(hours: HourStat[]): string {
  const W = 720;
  const H = 160;
  const padL = 36;
  const padR = 52;
  const padT = 12;
  const padB = 22;
  const iw = W - padL - padR;
  const ih = H - padT - padB;
  const n = Math.max(hours.length, 1);
  const bw = iw / n;
  const maxJobs = Math.max(1, ...hours.map((h) => h.finished));
  const maxWait = Math.max(1, ...hours.map((h) => h.medianWaitMs ?? 0));
  const bars = hours.map((h, i) => {
    const x = padL + i * bw + 1;
    const ok = h.finished - h.failed;
    const hOk = (ok / maxJobs) * ih;
    const hFail = (h.failed / maxJobs) * ih;
    const label = `${new Date(h.start).toISOString().slice(11, 16)}Z: ${h.finished} finished, ${h.failed} failed, median wait ${fmtDuration(h.medianWaitMs)}`;
    return `<g><title>${escapeHtml(label)}</title><rect x="${x.toFixed(1)}" y="${(padT + ih - hOk).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${hOk.toFixed(1)}" fill="#2da44e"/>`
      + `<rect x="${x.toFixed(1)}" y="${(padT + ih - hOk - hFail).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${hFail.toFixed(1)}" fill="#cf222e"/></g>`;
  }).join('');
  // The wait line skips hours where nothing ran rather than drawing them as zero.
  const pts = hours.map((h, i) => h.medianWaitMs === null ? null : `${(padL + (i + 0.5) * bw).toFixed(1)},${(padT + ih - (h.medianWaitMs / maxWait) * ih).toFixed(1)}`);
  const segs: string[] = [];
  let cur: string[] = [];
  for (const p of [...pts, null]) {
    if (p === null) {
      if (cur.length > 1) segs.push(`<polyline points="${cur.join(' ')}" fill="none" stroke="#0969da" stroke-width="2"/>`);
      else if (cur.length === 1) segs.push(`<circle cx="${cur[0]!.split(',')[0]}" cy="${cur[0]!.split(',')[1]}" r="2.5" fill="#0969da"/>`);
      cur = [];
    } else cur.push(p);
  }
  const first = hours[0];
  const last = hours.at(-1);
  const axis = `<line x1="${padL}" y1="${padT + ih}" x2="${padL + iw}" y2="${padT + ih}" stroke="#d0d7de"/>`
    + `<text x="${padL - 4}" y="${padT + 8}" text-anchor="end">${maxJobs}</text><text x="${padL - 4}" y="${padT + ih}" text-anchor="end">0</text>`
    + `<text x="${padL + iw + 4}" y="${padT + 8}">${escapeHtml(fmtDuration(maxWait))}</text>`
    + (first ? `<text x="${padL}" y="${H - 6}">${new Date(first.start).toISOString().slice(11, 16)}Z</text>` : '')
    + (last ? `<text x="${padL + iw}" y="${H - 6}" text-anchor="end">now</text>` : '');
  return `<svg class="chart" id="chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="Jobs finished per hour (bars: green completed, red failed) and median queue wait (blue line) over the last 24 hours">`
    + `${axis}${bars}${segs.join('')}</svg>`
    + '<p class="muted">Bars: jobs finished per hour (green OK, red FAIL; left scale). Line: median queue wait (right scale).</p>';
}

/**
 * The Status page. Sections carry ids the live-update script swaps
 * (`#counts`, `#hold`, `#workers`, `#active`, `#recent`, `#factories`, `#chart`).
 */
export function renderStatus(d: StatusData, csrf: string | null): string {
  const a = { admin: d.admin, csrf };
  const c = d.counts;
  const counts = `<p class="counts" id="counts"><span><b>${c.running}</b> running</span><span><b>${c.queued}</b> queued</span><span><b>${c.waiting}</b> waiting</span>`
    + `<span><b>${c.workers}</b> workers</span><span><b>${c.factories}</b> factories</span><span class="muted" id="updated" data-now="${d.now}"></span></p>`;
  const more = d.active.length >= d.activeLimit ? `<p class="muted">Showing the newest ${d.activeLimit}; see <a href="/jobs">Jobs</a> for all.</p>` : '';
  return `<h1>Status</h1><div id="live">${renderHold(d.hold, a)}${counts}`
    + `<h2>Queued, waiting and running jobs</h2>${renderJobTable(d.active, 'active', 'No job is queued, waiting or running.', 'active')}${more}`
    + `<h2>Active workers</h2>${renderWorkerTable(d.workers, a)}`
    + `<h2>Recently finished</h2>${renderJobTable(d.recent, 'finished', 'No job finished recently.', 'recent')}`
    + `<h2>The last 24 hours</h2>${renderChart(d.hours)}`
    + `<h2>Factories</h2>${renderFactoryTable(d.factories)}</div>`;
}
