import type { UserId } from '../protocol/index.js';
import { hashSecret } from '../protocol/index.js';
import type { Core } from './core.js';
import { Forbidden, Unauthorized } from './errors.js';
import type { HttpRequest } from './http/types.js';
import type { JobRecord, UserRecord } from './store/records.js';

/**
 * Privileges. `admin` may do everything; `read-all` ("admin read") may see
 * every job; a target may name a privilege needed to submit to it.
 */
export const PRIV_ADMIN = 'admin';
export const PRIV_READ_ALL = 'read-all';

/** Who is calling. */
export interface Principal {
  user: UserRecord;
  has(priv: string): boolean;
}

/**
 * The user behind `Authorization: Bearer TOKEN`, or 401.
 *
 * @example
 * const me = authenticate(core, req); requirePriv(me, PRIV_ADMIN);
 */
export function authenticate(core: Core, req: HttpRequest): Principal {
  const h = req.headers['authorization'];
  if (!h) throw new Unauthorized();
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (!m) throw new Unauthorized('the Authorization header must be "Bearer TOKEN"');
  const t = core.dbs.tokens.get(hashSecret(m[1]!));
  if (!t || t.kind !== 'user') throw new Unauthorized('the token is not known');
  const user = core.dbs.users.get(t.id);
  if (!user) throw new Unauthorized('the token\'s user no longer exists');
  return { user, has: (p) => user.privileges.includes(PRIV_ADMIN) || user.privileges.includes(p) };
}

/** 403 unless the caller has `priv`. */
export function requirePriv(me: Principal, priv: string): void {
  if (!me.has(priv)) throw new Forbidden(`user ${me.user.name} lacks the "${priv}" privilege`);
}

/** Whether the caller may see a job: their own, or with read-all. */
export function maySee(me: Principal, job: JobRecord): boolean {
  return job.owner === me.user.id || me.has(PRIV_READ_ALL);
}

/** The caller's user id. */
export function ownerOf(me: Principal): UserId {
  return me.user.id;
}
