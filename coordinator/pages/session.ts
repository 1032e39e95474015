import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { UserId } from '../../protocol/index.js';
import { hashSecret } from '../../protocol/index.js';
import { authenticate, maySee } from '../auth.js';
import type { Core } from '../core.js';
import { BadRequest, Forbidden, HttpError } from '../errors.js';
import type { HttpRequest } from '../http/types.js';
import type { JobRecord, SessionRecord, UserRecord } from '../store/records.js';

/** The cookie holding the session id (the store keeps only its SHA-256). */
export const SESSION_COOKIE = 'bw_session';
/** How long a session lasts from sign-in. */
export const SESSION_TTL_MS = 7 * 24 * 3600_000;

/** Who is looking at a page. */
export interface Viewer {
  /** The signed-in (or token-bearing) user; null for an anonymous reader. */
  user: UserRecord | null;
  /** True when nobody signed in and the deployment allows anonymous read. */
  anonymous: boolean;
  /** Whether the viewer has a privilege (`admin` implies every one). */
  has(priv: string): boolean;
  /** The session's CSRF token; null for token callers and anonymous readers. */
  csrf: string | null;
}

/**
 * Thrown when a page needs a signed-in user. The page layer answers HTML
 * requests with 303 to `/login?next=PATH` and JSON requests with 401.
 */
export class SignInRequired extends HttpError {
  /** The path (with query) to come back to after signing in. */
  readonly next: string;
  constructor(next: string) {
    super(401, 'SIGN_IN_REQUIRED', 'sign in first: this page needs a signed-in user (or a Bearer user token)');
    this.next = next;
  }
}

/** The cookies of a request, by name (the first of a repeated name wins). */
export function cookiesOf(req: HttpRequest): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers['cookie'] ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** The stored session behind the request's cookie, if it is known and not expired. */
export function sessionOf(core: Core, req: HttpRequest): { key: string; session: SessionRecord } | null {
  const id = cookiesOf(req).get(SESSION_COOKIE);
  // Session ids are 32 random bytes in base64url: anything else cannot be one of ours.
  if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
  const key = hashSecret(id);
  const session = core.dbs.sessions.get(key);
  if (!session) return null;
  if (session.expiresAt <= core.clock.now()) {
    void core.dbs.sessions.remove(key);
    return null;
  }
  return { key, session };
}

function userViewer(user: UserRecord, csrf: string | null): Viewer {
  return { user, anonymous: false, csrf, has: (p) => user.privileges.includes('admin') || user.privileges.includes(p) };
}

/** A viewer that reads anonymously (only when `anonymousRead` is on). */
export const ANONYMOUS: Viewer = { user: null, anonymous: true, csrf: null, has: () => false };

/**
 * The viewer of a page: the `Authorization: Bearer` user token if one is
 * sent (scripts), else the `bw_session` cookie; with neither, an anonymous
 * viewer when `config.anonymousRead`, else {@link SignInRequired}. An
 * unknown or expired session counts as none.
 *
 * @example
 * const v = viewerOf(core, req); if (!mayView(core, v, job)) throw new NotFound(...);
 */
export function viewerOf(core: Core, req: HttpRequest): Viewer {
  // A bearer token wins: browsers never add one on their own, so it cannot be forged cross-site.
  if (req.headers['authorization'] !== undefined) return userViewer(authenticate(core, req).user, null);
  const s = sessionOf(core, req);
  if (s) {
    const user = core.dbs.users.get(s.session.user);
    if (user) return userViewer(user, s.session.csrf);
  }
  if (core.config.anonymousRead) return ANONYMOUS;
  // Coming back to a form's POST target would be a GET it does not serve: after a POST, go home.
  throw new SignInRequired(req.method === 'GET' || req.method === 'HEAD' ? pathWithQuery(req) : '/');
}

/** The request's path and query, as `next` after sign-in. */
function pathWithQuery(req: HttpRequest): string {
  const q = req.query.toString();
  return q ? `${req.path}?${q}` : req.path;
}

/**
 * Whether a viewer may see a job: its owner or a `read-all` (or admin) user;
 * an anonymous reader only non-private jobs, and only when anonymous read is on.
 *
 * @example
 * const visible = jobs.filter((j) => mayView(core, v, j));
 */
export function mayView(core: Core, v: Viewer, job: JobRecord): boolean {
  if (v.user) return maySee({ user: v.user, has: v.has }, job);
  return v.anonymous && core.config.anonymousRead && job.private !== true;
}

/**
 * Checks a POST form's `csrf` field against the session's, 403 otherwise.
 * Callers with a Bearer token (no session) are exempt: a browser cannot
 * send their token on its own. Anonymous readers are refused outright.
 *
 * @example
 * const form = readForm(req); checkCsrf(v, form);
 */
export function checkCsrf(v: Viewer, form: URLSearchParams): void {
  if (v.user === null) throw new Forbidden('sign in first: anonymous readers may not change anything');
  if (v.csrf === null) return;
  const sent = form.get('csrf');
  if (sent === null || sent === '') throw new Forbidden('the form has no "csrf" field; reload the page and try again');
  const a = Buffer.from(sent);
  const b = Buffer.from(v.csrf);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new Forbidden('the form\'s "csrf" field does not match your session; reload the page and try again');
}

/**
 * The fields of an `application/x-www-form-urlencoded` POST body; 400 for
 * any other content type.
 *
 * @example
 * const token = readForm(req).get('token') ?? '';
 */
export function readForm(req: HttpRequest): URLSearchParams {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new BadRequest(`a form must be sent as application/x-www-form-urlencoded, got ${JSON.stringify(type.slice(0, 80) || '(none)')}`);
  }
  return new URLSearchParams(req.body.toString('utf8'));
}

/** Whether the browser reached us over HTTPS (directly or through a proxy that says so). */
export function isHttps(core: Core, req: HttpRequest): boolean {
  const proto = (req.headers['x-forwarded-proto'] ?? '').split(',')[0]!.trim().toLowerCase();
  return proto === 'https' || (core.config.publicUrl?.startsWith('wss://') ?? false);
}

/** The `Set-Cookie` value for a session id (or for clearing it, with `null`). */
export function sessionCookie(core: Core, req: HttpRequest, id: string | null): string {
  const attrs = `HttpOnly; SameSite=Lax; Path=/${isHttps(core, req) ? '; Secure' : ''}`;
  return id === null ? `${SESSION_COOKIE}=; ${attrs}; Max-Age=0` : `${SESSION_COOKIE}=${id}; ${attrs}; Max-Age=${SESSION_TTL_MS / 1000}`;
}

/** Starts a session for a user; returns the id for the cookie (only its hash is stored). */
export async function createSession(core: Core, user: UserId): Promise<string> {
  const id = randomBytes(32).toString('base64url');
  const now = core.clock.now();
  const rec: SessionRecord = { v: 1, user, csrf: randomBytes(24).toString('base64url'), createdAt: now, expiresAt: now + SESSION_TTL_MS };
  await core.dbs.sessions.put(hashSecret(id), rec);
  return id;
}
