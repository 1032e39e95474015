import { randomBytes } from 'node:crypto';
import { InvalidIdError } from '../../protocol/index.js';
import { escapeHtml } from '../../web/html.js';
import type { PageShell } from '../../web/layout.js';
import { renderPage } from '../../web/layout.js';
import type { Core } from '../core.js';
import { HttpError } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import type { Route } from '../router.js';
import { Router } from '../router.js';
import type { Viewer } from './session.js';
import { ANONYMOUS, SignInRequired, viewerOf } from './session.js';

/** The page contract's version, sent as `buildwire-page-version` with every JSON answer. */
export const PAGE_CONTRACT_VERSION = 1;

/** The Content-Security-Policy of every page: nothing inline without this response's nonce. */
export function cspFor(nonce: string): string {
  return `default-src 'none'; script-src 'self' 'nonce-${nonce}'; style-src 'self' 'nonce-${nonce}'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`;
}

/** A fresh random nonce (16 bytes, base64). */
export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

/** How much the Accept header wants `type` (`type/sub`), by the usual q rules; a missing header accepts all. */
function quality(accept: string, type: string): number {
  let best = -1;
  let q = 0;
  const [major] = type.split('/');
  for (const range of accept.split(',')) {
    const [media = '', ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    const spec = media === type ? 3 : media === `${major}/*` ? 2 : media === '*/*' ? 1 : 0;
    if (spec === 0 || spec < best) continue;
    const qp = params.find((p) => p.startsWith('q='));
    const val = qp ? Number(qp.slice(2)) : 1;
    best = spec;
    q = Number.isFinite(val) ? val : 0;
  }
  return q;
}

/**
 * Whether the request prefers JSON over HTML: `Accept: application/json`
 * does; a browser's `text/html,...,*∕*;q=0.8` and a missing header do not.
 */
export function wantsJson(req: HttpRequest): boolean {
  const accept = req.headers['accept'];
  if (accept === undefined || accept.trim() === '') return false;
  return quality(accept, 'application/json') > quality(accept, 'text/html');
}

/** The headers of every HTML page (the CSP carries this response's nonce). */
export function htmlHeaders(nonce: string): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': cspFor(nonce),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    'cache-control': 'no-store',
    vary: 'Accept, Cookie, Authorization',
  };
}

/** A JSON answer of the page contract. */
export function pageJson(status: number, data: unknown): HttpResponse {
  return {
    status,
    headers: {
      'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff',
      'buildwire-page-version': String(PAGE_CONTRACT_VERSION), vary: 'Accept, Cookie, Authorization',
    },
    body: JSON.stringify(data),
  };
}

/** The shell fields that come from the viewer. */
function viewerShell(v: Viewer): Pick<PageShell, 'user' | 'csrf' | 'anonymous'> {
  return { user: v.user?.name ?? null, csrf: v.csrf, anonymous: v.anonymous };
}

/**
 * Answers a page: JSON of `data` (the documented contract, docs/web.md) when
 * the request's Accept prefers `application/json`, else the HTML `render`
 * produces for this response's nonce, inside the page frame, with a strict
 * CSP, `nosniff`, `same-origin` referrers and `no-store`.
 *
 * @example
 * return pageResponse(req, v, { title: 'Jobs', nav: 'jobs' }, data, (nonce) => renderJobs(data), { scripts: ['/static/status.js'] });
 */
export function pageResponse(
  req: HttpRequest, v: Viewer, shell: Omit<PageShell, 'nonce' | 'user' | 'csrf' | 'anonymous'>, data: unknown,
  render: (nonce: string) => string, opts: { scripts?: string[]; status?: number } = {},
): HttpResponse {
  const status = opts.status ?? 200;
  if (wantsJson(req)) return pageJson(status, data);
  const nonce = newNonce();
  const full: PageShell = { ...shell, ...viewerShell(v), nonce };
  const body = renderPage(full, render(nonce), opts.scripts ? { scripts: opts.scripts } : {});
  return { status, headers: htmlHeaders(nonce), body };
}

/** A 303 redirect (after a form POST, or to the sign-in page). */
export function seeOther(location: string, headers: Record<string, string> = {}): HttpResponse {
  return { status: 303, headers: { location, 'cache-control': 'no-store', 'content-type': 'text/plain; charset=utf-8', ...headers }, body: `See ${location}\n` };
}

/**
 * The answer for anything a page handler threw: a sign-in redirect (HTML) or
 * 401 (JSON) for {@link SignInRequired}; the error's status with an error page
 * or `{code, message}` for an {@link HttpError} or a malformed id; a 500 that
 * says nothing about internals for anything else (logged).
 */
export function pageError(core: Core, req: HttpRequest, err: unknown): HttpResponse {
  let status = 500;
  let code = 'INTERNAL';
  let message = 'internal error; see the coordinator log';
  if (err instanceof SignInRequired && !wantsJson(req)) return seeOther(`/login?next=${encodeURIComponent(err.next)}`);
  if (err instanceof HttpError) ({ status, code, message } = err);
  else if (err instanceof InvalidIdError) ({ status, code, message } = { status: 400, code: 'BAD_REQUEST', message: err.message });
  else core.log(`http: internal error on page ${req.path.slice(0, 200)}: ${(err as Error)?.stack ?? String(err)}`);
  if (wantsJson(req)) return pageJson(status, { code, message });
  let v: Viewer = ANONYMOUS;
  try {
    v = viewerOf(core, req);
  } catch {
    // The error page itself needs no viewer: show it without a user.
    v = { ...ANONYMOUS, anonymous: false };
  }
  const title = status === 404 ? 'Not found' : status === 403 ? 'Forbidden' : status === 400 ? 'Bad request' : `Error ${status}`;
  const render = () => `<h1>${escapeHtml(title)}</h1><p class="error"><code>${escapeHtml(code)}</code> ${escapeHtml(message)}</p><p><a href="/">Back to the status page</a></p>`;
  return pageResponse(req, v, { title }, { code, message }, render, { status });
}

/**
 * Wraps a page route so whatever it throws becomes a page (or JSON) answer
 * instead of reaching the API's JSON-only error mapping.
 *
 * @example
 * r.add('GET', '/jobs', withPageErrors(core, ({ req }) => jobsPage(core, req)));
 */
export function withPageErrors(core: Core, route: Route): Route {
  return async (ctx) => {
    try {
      return await route(ctx);
    } catch (err) {
      return pageError(core, ctx.req, err);
    }
  };
}

/**
 * A Router whose `add` registers on `target` with {@link withPageErrors}
 * around each route, so that page modules (ours and the job pages) get HTML
 * error pages just by being handed this instead of the API router. Only
 * `add` is meant to be used; routing still happens in `target`.
 */
export class PageRouter extends Router {
  readonly #target: Router;
  readonly #core: Core;
  constructor(core: Core, target: Router) {
    super();
    this.#core = core;
    this.#target = target;
  }
  override add(method: string, pattern: string, route: Route): void {
    this.#target.add(method, pattern, withPageErrors(this.#core, route));
  }
}
