/**
 * Server-rendered pages. This first page is a summary that names no job
 * (no sign-in yet); the full status, job and comparison pages build on it.
 *
 * @example
 * res.body = renderStatusPage(data);
 */

/** What the status page shows. */
export interface StatusData {
  hold: boolean;
  activeJobs: Record<string, number>;
  workers: { id: string; target: string; state: string; busy: boolean; connected: boolean }[];
  factories: { name: string; targets: string[]; enabled: boolean; connected: boolean; free: number }[];
}

/** Escapes text for HTML element and attribute content. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The status page as HTML. */
export function renderStatusPage(d: StatusData): string {
  const e = escapeHtml;
  const jobs = Object.entries(d.activeJobs).map(([s, n]) => `<li>${e(s)}: ${n}</li>`).join('') || '<li>none</li>';
  const workers = d.workers.map((w) => `<tr><td><code>${e(w.id)}</code></td><td>${e(w.target)}</td><td>${e(w.state)}</td><td>${w.busy ? 'busy' : 'idle'}</td><td>${w.connected ? 'yes' : 'no'}</td></tr>`).join('');
  const factories = d.factories.map((f) => `<tr><td>${e(f.name)}</td><td>${e(f.targets.join(', '))}</td><td>${f.enabled ? 'enabled' : 'disabled'}</td><td>${f.connected ? 'yes' : 'no'}</td><td>${f.free}</td></tr>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>buildwire</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}.hold{background:#fdd;padding:.5em}</style></head>
<body><h1>buildwire</h1>${d.hold ? '<p class="hold">The global hold is set: no new jobs start.</p>' : ''}
<h2>Active jobs</h2><ul>${jobs}</ul>
<h2>Workers</h2><table><tr><th>id</th><th>target</th><th>state</th><th>job</th><th>connected</th></tr>${workers}</table>
<h2>Factories</h2><table><tr><th>name</th><th>targets</th><th>state</th><th>connected</th><th>free slots</th></tr>${factories}</table>
<p>API: <code>/api/v1/</code> · CLI: <code>buildwire job list</code></p></body></html>`;
}
