/**
 * The web pages: routes, sessions and data gathering. Rendering lives in
 * `web/` (which never imports the coordinator); this folder decides who
 * sees what, gathers plain data, and hands it to the renderers. Every page
 * answers `Accept: application/json` with the same data (docs/web.md).
 *
 * @example
 * const router = new Router();
 * pageRoutes(core, router);
 */
import { hashSecret } from '../../protocol/index.js';
import type { LoginPageData } from '../../web/layout.js';
import { renderLogin } from '../../web/layout.js';
import type { Core } from '../core.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import type { Router } from '../router.js';
import { comparePageRoutes } from './compare.js';
import { feedRoutes } from './feeds.js';
import { fleetRoutes } from './fleet.js';
import { jobPageRoutes } from './job.js';
import { listRoutes } from './lists.js';
import { PageRouter, pageJson, pageResponse, seeOther, wantsJson } from './respond.js';
import type { Viewer } from './session.js';
import { ANONYMOUS, checkCsrf, createSession, readForm, sessionCookie, sessionOf, viewerOf } from './session.js';
import { staticRoutes } from './static.js';
import { statusRoutes } from './status.js';

export { checkCsrf, mayView, readForm, SignInRequired, viewerOf } from './session.js';
export type { Viewer } from './session.js';
export { pageError, pageResponse, withPageErrors, wantsJson } from './respond.js';

/**
 * Where to go after signing in: only a same-site path (one leading `/`, not
 * `//host` or `/\host`, which browsers read as another site), else `/`.
 */
export function safeNext(raw: string | null): string {
  if (raw === null || raw.length > 2000 || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) return '/';
  return raw;
}

/** The viewer for the sign-in page itself, which must open for everyone. */
function loginViewer(core: Core, req: HttpRequest): Viewer {
  try {
    return viewerOf(core, req);
  } catch {
    return { ...ANONYMOUS, anonymous: false };
  }
}

function loginPage(core: Core, req: HttpRequest, d: LoginPageData, status = 200): HttpResponse {
  return pageResponse(req, loginViewer(core, req), { title: 'Sign in' }, d, () => renderLogin(d), { status });
}

function loginRoutes(core: Core, r: Router): void {
  r.add('GET', '/login', ({ req }) => loginPage(core, req, { next: safeNext(req.query.get('next')), error: null, user: loginViewer(core, req).user?.name ?? null }));

  // No CSRF token here: there is no session yet, and the SameSite=Lax cookie keeps other sites from using one.
  r.add('POST', '/login', async ({ req }) => {
    const form = readForm(req);
    const next = safeNext(form.get('next'));
    const token = (form.get('token') ?? '').trim();
    const t = token ? core.dbs.tokens.get(hashSecret(token)) : undefined;
    const user = t && t.kind === 'user' ? core.dbs.users.get(t.id) : undefined;
    if (!user) {
      const error = token ? 'That token is not a known user token. Check it and try again.' : 'Enter your user token.';
      return loginPage(core, req, { next, error, user: null }, 401);
    }
    const cookie = sessionCookie(core, req, await createSession(core, user.id));
    if (wantsJson(req)) {
      const res = pageJson(200, { user: user.name, next });
      res.headers!['set-cookie'] = cookie;
      return res;
    }
    return seeOther(next, { 'set-cookie': cookie });
  });

  r.add('POST', '/logout', async ({ req }) => {
    const s = sessionOf(core, req);
    if (s) {
      const user = core.dbs.users.get(s.session.user);
      if (user) checkCsrf({ user, anonymous: false, csrf: s.session.csrf, has: () => false }, readForm(req));
      await core.dbs.sessions.remove(s.key);
    }
    const cookie = sessionCookie(core, req, null);
    if (wantsJson(req)) {
      const res = pageJson(200, { signedOut: true });
      res.headers!['set-cookie'] = cookie;
      return res;
    }
    return seeOther('/login', { 'set-cookie': cookie });
  });
}

/**
 * Registers every page: sign-in, status, lists, fleet, search by hash,
 * feeds, client scripts, and the job and comparison pages. All of them go
 * through a {@link PageRouter}, so what a page throws becomes an HTML error
 * page (or JSON, by Accept) and a missing sign-in a redirect to `/login`.
 */
export function pageRoutes(core: Core, r: Router): void {
  const pages = new PageRouter(core, r);
  loginRoutes(core, pages);
  statusRoutes(core, pages);
  listRoutes(core, pages);
  fleetRoutes(core, pages);
  feedRoutes(core, pages);
  staticRoutes(pages);
  jobPageRoutes(core, pages);
  comparePageRoutes(core, pages);
}
