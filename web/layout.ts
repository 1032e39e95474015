import { escapeHtml } from './html.js';

/**
 * The frame around every page. The coordinator fills it from the viewer's
 * session; renderers only ever see plain data.
 */
export interface PageShell {
  /** The page title (plain text; escaped here). */
  title: string;
  /** The response's CSP nonce: every inline `<style>` and `<script>` must carry it. */
  nonce: string;
  /** The signed-in user's name, or null. */
  user: string | null;
  /** The session's CSRF token (for the sign-out form), or null without a session. */
  csrf: string | null;
  /** True when the viewer reads without signing in (anonymous read is on). */
  anonymous: boolean;
  /** Which navigation entry to mark as current. */
  nav?: 'status' | 'jobs' | 'workers' | 'factories' | 'targets' | 'hash';
}

const NAV: [NonNullable<PageShell['nav']>, string, string][] = [
  ['status', '/', 'Status'],
  ['jobs', '/jobs', 'Jobs'],
  ['workers', '/workers', 'Workers'],
  ['factories', '/factories', 'Factories'],
  ['targets', '/targets', 'Targets'],
];

/**
 * The page CSS: light, compact, readable. One block, sent with the nonce,
 * so the CSP needs no `'unsafe-inline'`.
 */
export const PAGE_CSS = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2329;background:#fafbfc}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.4em 1.2em;padding:.5em 1.2em;background:#fff;border-bottom:1px solid #d8dee4}
header .brand{font-weight:700;color:#1d2329;text-decoration:none;margin-right:.5em}
header nav a{color:#3b4a5a;text-decoration:none;padding:.2em .5em;border-radius:4px}
header nav a.current{background:#e7edf3;color:#0b3d6e;font-weight:600}
header form{display:inline;margin:0}
header .search input{width:20em;font:12px ui-monospace,monospace;padding:.25em .4em}
header .who{margin-left:auto;color:#57606a}
main{padding:1em 1.2em;max-width:1400px}
h1{font-size:1.35em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff;margin:.3em 0 1em}
th,td{padding:.25em .6em;border-bottom:1px solid #e5e9ee;text-align:left;vertical-align:top}
th{font-weight:600;color:#57606a;background:#f3f5f7}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
a{color:#0b5cad}
.badge{display:inline-block;min-width:4.2em;text-align:center;padding:0 .4em;border-radius:3px;font-size:12px;font-weight:600;color:#fff}
.ok{background:#1f883d}.fail{background:#cf222e}.cancel{background:#6e7781}.run{background:#0969da}.wait{background:#bf8700}
.tag{display:inline-block;background:#eef1f4;border-radius:3px;padding:0 .35em;font:12px ui-monospace,monospace;margin:0 .2em .1em 0}
.hold{background:#fff1e5;border:1px solid #f0b37e;padding:.5em .8em;border-radius:4px}
.error{background:#ffebe9;border:1px solid #ff8182;padding:.5em .8em;border-radius:4px}
.muted{color:#6e7781}
.counts span{margin-right:1.2em}
form.inline{display:inline;margin:0}
button{font:inherit;font-size:12px;padding:.1em .6em;cursor:pointer}
.filters input,.filters select{font:inherit;font-size:13px;margin-right:.4em}
svg.chart{background:#fff;border:1px solid #e5e9ee;display:block;margin:.3em 0 1em}
svg.chart text{font:11px system-ui,sans-serif;fill:#57606a}
.pager{margin:.5em 0}
`;

/**
 * The whole HTML document: a header with navigation (Status, Jobs, Workers,
 * Factories, Targets), a search-by-hash box, the signed-in user with a
 * sign-out form (POST /logout with the CSRF token) or a sign-in link, then
 * `body` as is (it must already be escaped).
 *
 * `opts.scripts` are URL paths (`/static/job.js`) loaded as module scripts with the nonce;
 * `opts.head` is extra markup for `<head>` (already escaped, nonce'd).
 *
 * @example
 * renderPage({ title: 'Jobs', nonce, user: 'alice', csrf, anonymous: false, nav: 'jobs' }, table, { scripts: ['/static/status.js'] });
 */
export function renderPage(shell: PageShell, body: string, opts: { scripts?: string[]; head?: string } = {}): string {
  const e = escapeHtml;
  const nonce = e(shell.nonce);
  const nav = NAV.map(([key, href, label]) => `<a href="${href}"${shell.nav === key ? ' class="current" aria-current="page"' : ''}>${label}</a>`).join('');
  let who: string;
  if (shell.user !== null) {
    // Sign-out changes state, so it is a POST carrying the CSRF token, never a link.
    const csrf = shell.csrf !== null ? `<input type="hidden" name="csrf" value="${e(shell.csrf)}">` : '';
    who = `<span class="who">${e(shell.user)}${shell.csrf !== null ? ` <form method="post" action="/logout">${csrf}<button type="submit">Sign out</button></form>` : ''}</span>`;
  } else {
    who = `<span class="who">${shell.anonymous ? 'anonymous · ' : ''}<a href="/login">Sign in</a></span>`;
  }
  // type="module": tsc emits `export {};` into every client script (the package is ESM), which a
  // classic script would reject; modules are also deferred, so they run once the DOM is parsed.
  const scripts = (opts.scripts ?? []).map((src) => `<script type="module" nonce="${nonce}" src="${e(src)}"></script>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${e(shell.title)} · buildwire</title>
<style nonce="${nonce}">${PAGE_CSS}</style>${opts.head ?? ''}${scripts}</head>
<body><header><a class="brand" href="/">buildwire</a><nav>${nav}</nav>
<form class="search" method="get" action="/hash" role="search"><input name="sha256" placeholder="search by SHA-256" aria-label="search outputs by SHA-256" pattern="[0-9a-fA-F]{64}" required></form>
${who}</header>
<main>${body}</main></body></html>`;
}

/** The sign-in page's data (`GET /login`). */
export interface LoginPageData {
  /** Where to go after signing in (a same-site path). */
  next: string;
  /** Why the last attempt failed, or null. */
  error: string | null;
  /** The user already signed in, if any. */
  user: string | null;
}

/** The sign-in form: one user token field, posted to `/login`. */
export function renderLogin(d: LoginPageData): string {
  const e = escapeHtml;
  const error = d.error !== null ? `<p class="error" role="alert">${e(d.error)}</p>` : '';
  const already = d.user !== null ? `<p>You are signed in as <b>${e(d.user)}</b>. Signing in again replaces that session.</p>` : '';
  return `<h1>Sign in</h1>${already}${error}
<form method="post" action="/login"><input type="hidden" name="next" value="${e(d.next)}">
<p><label>User token<br><input type="password" name="token" size="60" autocomplete="current-password" required autofocus></label></p>
<p><button type="submit">Sign in</button></p></form>
<p class="muted">A user token comes from <code>buildwire admin user create NAME</code> (or the <code>admin-token</code> file of <code>buildwire up</code>). The session lasts 7 days.</p>`;
}
