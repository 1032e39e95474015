/**
 * Text helpers every page renderer shares: escaping and the few formats
 * (times, durations, sizes) the pages show. Pure functions of their input.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Escapes text for HTML element content and for quoted attribute values
 * (both quote kinds are escaped, so `title="${escapeHtml(x)}"` is safe).
 *
 * @example
 * `<td title="${escapeHtml(job.name)}">${escapeHtml(job.name)}</td>`
 */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * A time as `YYYY-MM-DD HH:MM:SSZ` (UTC, so every reader sees the same
 * text); `—` for null or a value that is not a valid time.
 *
 * @example
 * fmtTime(job.endedAt) // "2024-05-01 12:34:56Z"
 */
export function fmtTime(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '—';
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/**
 * A duration in the two largest units that matter (`850ms`, `12.3s`,
 * `4m 05s`, `2h 10m`, `3d 4h`); `—` for null or a negative value.
 *
 * @example
 * fmtDuration(job.endedAt - job.assignedAt) // "4m 05s"
 */
export function fmtDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const total = Math.floor(s);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (total < 3600) return `${Math.floor(total / 60)}m ${pad(total % 60)}s`;
  if (total < 86_400) return `${Math.floor(total / 3600)}h ${pad(Math.floor(total / 60) % 60)}m`;
  return `${Math.floor(total / 86_400)}d ${Math.floor(total / 3600) % 24}h`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * A byte count in binary units (`512 B`, `1.5 KiB`, `12.0 MiB`).
 *
 * @example
 * fmtBytes(output.size) // "3.2 MiB"
 */
export function fmtBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** The badge class for a job state: `.ok` `.fail` `.cancel` `.run` `.wait` (see layout.ts's CSS). */
export function stateClass(state: string): 'ok' | 'fail' | 'cancel' | 'run' | 'wait' {
  switch (state) {
    case 'completed': return 'ok';
    case 'failed': return 'fail';
    case 'cancelled': return 'cancel';
    case 'running': return 'run';
    default: return 'wait';
  }
}

/**
 * A job state as a badge: OK / FAIL / CANCEL for ended jobs, the state's own
 * name otherwise.
 *
 * @example
 * `<td>${stateBadge(job.state)}</td>`
 */
export function stateBadge(state: string): string {
  const label = state === 'completed' ? 'OK' : state === 'failed' ? 'FAIL' : state === 'cancelled' ? 'CANCEL' : state;
  return `<span class="badge ${stateClass(state)}">${escapeHtml(label)}</span>`;
}

/** An escaped link to a job page, `/job/ID`, showing `text` (the id by default). */
export function jobLink(id: string, text: string = id): string {
  return `<a href="/job/${encodeURIComponent(id)}">${escapeHtml(text)}</a>`;
}

/** Tags as escaped `key=value` chips. */
export function tagList(tags: Record<string, string>): string {
  return Object.entries(tags).map(([k, v]) => `<span class="tag">${escapeHtml(k)}=${escapeHtml(v)}</span>`).join(' ');
}
