import type { FeedData, FeedEntry } from '../../web/feeds.js';
import { renderAtom } from '../../web/feeds.js';
import type { Core } from '../core.js';
import { BadRequest, Unauthorized } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../http/types.js';
import { isTerminal } from '../jobs.js';
import type { Router } from '../router.js';
import type { JobRecord } from '../store/records.js';
import { JobScan, visibleJobs } from './lists.js';
import { pageJson, wantsJson } from './respond.js';
import type { Viewer } from './session.js';
import { SignInRequired, isHttps, viewerOf } from './session.js';

/** Entries per feed. */
export const FEED_ENTRIES = 50;
/** Most job records one feed request reads. */
export const FEED_SCAN = 5_000;

/** The absolute base URL the reader used (feeds carry absolute links). */
function baseUrl(core: Core, req: HttpRequest): string {
  const host = req.headers['x-forwarded-host']?.split(',')[0]?.trim() || req.headers['host'] || `${core.config.host}:${core.config.port}`;
  // A Host header is the reader's own claim; keep only what a host can be so it cannot break out of the URL.
  const safe = /^[A-Za-z0-9.\-:[\]]+$/.test(host) ? host : 'localhost';
  return `${isHttps(core, req) ? 'https' : 'http'}://${safe}`;
}

/**
 * A feed reader's viewer. Readers cannot follow a sign-in form, so where a
 * page would redirect, a feed answers 401 (send a Bearer user token, or a
 * session cookie).
 */
function feedViewer(core: Core, req: HttpRequest): Viewer {
  try {
    return viewerOf(core, req);
  } catch (err) {
    if (err instanceof SignInRequired) throw new Unauthorized('feeds need a Bearer user token or a session cookie (anonymous read is off)');
    throw err;
  }
}

/** The newest finished jobs the viewer may see that `keep` accepts, newest end first. */
function finishedJobs(core: Core, v: Viewer, keep: (j: JobRecord) => boolean): JobRecord[] {
  const out: JobRecord[] = [];
  for (const j of visibleJobs(core, v, null, new JobScan(FEED_SCAN))) {
    if (!isTerminal(j.state) || j.endedAt === null || !keep(j)) continue;
    out.push(j);
    // Ids follow submission, not the end: read a few beyond the page so late finishers still sort in.
    if (out.length >= FEED_ENTRIES * 2) break;
  }
  return out.sort((a, b) => b.endedAt! - a.endedAt!).slice(0, FEED_ENTRIES);
}

function feed(core: Core, req: HttpRequest, title: string, alternate: string, keep: (j: JobRecord) => boolean): HttpResponse {
  const v = feedViewer(core, req);
  const base = baseUrl(core, req);
  const names = new Map<string, string>();
  const entries: FeedEntry[] = finishedJobs(core, v, keep).map((j) => {
    if (!names.has(j.owner)) names.set(j.owner, core.dbs.users.get(j.owner)?.name ?? j.owner);
    return {
      job: j.id, name: j.name, state: j.state, target: j.target, owner: names.get(j.owner)!, url: `${base}/job/${encodeURIComponent(j.id)}`,
      submittedAt: j.submittedAt, endedAt: j.endedAt!, reason: j.reason, tags: j.tags,
    };
  });
  const data: FeedData = { id: `${base}${req.path}`, title, alternate: `${base}${alternate}`, updated: entries[0]?.endedAt ?? core.clock.now(), entries };
  if (wantsJson(req)) return pageJson(200, data);
  return {
    status: 200,
    headers: { 'content-type': 'application/atom+xml; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', vary: 'Accept, Cookie, Authorization' },
    body: renderAtom(data),
  };
}

/** Atom feeds: every finished job, failures, and per job name. */
export function feedRoutes(core: Core, r: Router): void {
  r.add('GET', '/feeds/jobs.atom', ({ req }) => feed(core, req, 'buildwire: finished jobs', '/jobs', () => true));
  r.add('GET', '/feeds/failures.atom', ({ req }) => feed(core, req, 'buildwire: failed jobs', '/jobs?state=failed', (j) => j.state === 'failed'));
  r.add('GET', '/feeds/job/:file', ({ req, params }) => {
    const file = params.file!;
    if (!file.endsWith('.atom') || file.length === '.atom'.length) {
      throw new BadRequest(`a job name feed is /feeds/job/NAME.atom, got ${JSON.stringify(file.slice(0, 140))}`);
    }
    const name = file.slice(0, -'.atom'.length);
    return feed(core, req, `buildwire: ${name}`, `/jobs?name=${encodeURIComponent(name)}`, (j) => j.name === name);
  });
}
