import type { JobId } from '../../protocol/index.js';
import { parseJobId } from '../../protocol/index.js';
import type { HashMatch, HashPageData, JobSummary, JobsPageData } from '../../web/lists.js';
import { JOB_STATES, renderHashPage, renderJobsPage } from '../../web/lists.js';
import { PRIV_READ_ALL } from '../auth.js';
import type { Core } from '../core.js';
import { BadRequest } from '../errors.js';
import type { Router } from '../router.js';
import { queryInt } from '../router.js';
import type { JobRecord } from '../store/records.js';
import { pageResponse } from './respond.js';
import type { Viewer } from './session.js';
import { mayView, viewerOf } from './session.js';

/** Most job records one list request reads before it answers with what it has and a cursor. */
export const MAX_SCAN = 5_000;
/** Most outputs one hash search lists. */
export const MAX_HASH_MATCHES = 1_000;

/**
 * Turns job records into their list form, looking owner names up once per
 * request (a page of 50 jobs usually has a handful of owners).
 */
export function summarizer(core: Core): (j: JobRecord) => JobSummary {
  const names = new Map<string, string | null>();
  const now = core.clock.now();
  return (j) => {
    if (!names.has(j.owner)) names.set(j.owner, core.dbs.users.get(j.owner)?.name ?? null);
    return {
      id: j.id, name: j.name, owner: j.owner, ownerName: names.get(j.owner) ?? null, target: j.target, runTarget: j.runTarget,
      state: j.state, tags: j.tags, private: j.private === true, submittedAt: j.submittedAt, assignedAt: j.assignedAt, endedAt: j.endedAt,
      // A job that ended without ever running (cancelled while queued) has no wait to show.
      waitedMs: j.assignedAt !== null ? j.assignedAt - j.submittedAt : j.endedAt === null ? now - j.submittedAt : null,
      ranForMs: j.assignedAt === null ? null : (j.endedAt ?? now) - j.assignedAt,
      reason: j.reason,
    };
  };
}

/** How far a job scan got: every record read counts, seen or not, so a scan stays bounded. */
export class JobScan {
  scanned = 0;
  /** The id of the last record read (a cursor to continue from). */
  last: string | null = null;
  /** True when the scan stopped at `max` rather than at the end. */
  cut = false;
  constructor(readonly max: number) {}
}

/**
 * Job records the viewer may see, newest first, starting before `before`,
 * reading at most `scan.max` records. Reads the smallest index that covers
 * the viewer: a user without read-all sees only their own jobs, so their
 * scan walks `jobsByOwner`; everyone else walks the time-ordered (ULID)
 * `jobs` database backwards.
 */
export function* visibleJobs(core: Core, v: Viewer, before: string | null, scan: JobScan): Generator<JobRecord> {
  const own = v.user !== null && !v.has(PRIV_READ_ALL);
  const ids = own
    ? mapKeys(core.dbs.jobsByOwner.getRange({ start: [v.user!.id, before ?? '\uffff'], end: [v.user!.id, ''], reverse: true, exclusiveStart: before !== null }), (k) => k[1])
    : mapKeys(core.dbs.jobs.getRange({ reverse: true, ...(before !== null ? { start: before, exclusiveStart: true } : {}) }), (k) => k);
  for (const id of ids) {
    if (scan.scanned >= scan.max) {
      scan.cut = true;
      return;
    }
    scan.scanned++;
    scan.last = id;
    // The active map holds the newest copy of a running job; the store may trail it by one commit.
    const j = core.jobs.get(id as JobId);
    if (j && (own || mayView(core, v, j))) yield j;
  }
}

function* mapKeys<K>(range: Iterable<{ key: K }>, f: (k: K) => string): Generator<string> {
  for (const { key } of range) yield f(key);
}

/** `?tag=key=value` as a pair; 400 naming the rule otherwise. */
function parseTag(raw: string | null): [string, string] | null {
  if (raw === null || raw === '') return null;
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new BadRequest(`query parameter "tag" must be key=value, got ${JSON.stringify(raw.slice(0, 80))}`);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}

function optQuery(q: URLSearchParams, name: string, max: number): string | null {
  const v = q.get(name);
  if (v === null || v === '') return null;
  if (v.length > max) throw new BadRequest(`query parameter "${name}" must be at most ${max} characters, got ${v.length}`);
  return v;
}

/** An output's path as URL segments, each encoded (`/work/a b.txt` → `work/a%20b.txt`). */
function pathSegments(path: string): string {
  return path.split('/').filter(Boolean).map(encodeURIComponent).join('/');
}

/** REST download URL of an output, `/api/v1/jobs/ID/outputs/PATH` (Bearer token only). */
export function outputUrl(job: string, path: string): string {
  return `/api/v1/jobs/${encodeURIComponent(job)}/outputs/${pathSegments(path)}`;
}

/**
 * Browser download URL of an output, `/job/ID/outputs/PATH` (the job page's
 * route): the REST one takes only a Bearer token, which a browser holding a
 * session cookie cannot send from a link.
 */
export function outputPageUrl(job: string, path: string): string {
  return `/job/${encodeURIComponent(job)}/outputs/${pathSegments(path)}`;
}

/** Routes of the Jobs list and the search by hash. */
export function listRoutes(core: Core, r: Router): void {
  r.add('GET', '/jobs', ({ req }) => {
    const v = viewerOf(core, req);
    const q = req.query;
    const limit = queryInt(req, 'limit', 50, 1, 200);
    const state = optQuery(q, 'state', 20);
    if (state !== null && !(JOB_STATES as readonly string[]).includes(state)) {
      throw new BadRequest(`query parameter "state" must be one of ${JOB_STATES.join(', ')}, got ${JSON.stringify(state)}`);
    }
    const name = optQuery(q, 'name', 128);
    const target = optQuery(q, 'target', 64);
    const tagRaw = optQuery(q, 'tag', 1024);
    const tag = parseTag(tagRaw);
    const beforeRaw = optQuery(q, 'before', 26);
    const before = beforeRaw === null ? null : parseJobId(beforeRaw);
    const summarize = summarizer(core);
    const jobs: JobSummary[] = [];
    const scan = new JobScan(MAX_SCAN);
    for (const j of visibleJobs(core, v, before, scan)) {
      if (state !== null && j.state !== state) continue;
      if (name !== null && j.name !== name) continue;
      if (target !== null && j.target !== target && j.runTarget !== target) continue;
      if (tag !== null && j.tags[tag[0]] !== tag[1]) continue;
      jobs.push(summarize(j));
      if (jobs.length >= limit) break;
    }
    // A full page continues after its last job (the next page may turn out empty); a cut scan after its last read.
    const full = jobs.length >= limit;
    const data: JobsPageData = {
      jobs, filters: { state, name, target, tag: tagRaw }, limit, next: full ? jobs.at(-1)!.id : scan.cut ? scan.last : null,
      scanned: scan.scanned, scanLimited: !full && scan.cut,
    };
    return pageResponse(req, v, { title: 'Jobs', nav: 'jobs' }, data, () => renderJobsPage(data));
  });

  r.add('GET', '/hash', ({ req }) => {
    const v = viewerOf(core, req);
    const raw = req.query.get('sha256');
    let data: HashPageData = { sha256: null, outputs: [], truncated: false };
    if (raw !== null && raw !== '') {
      if (!/^[0-9a-fA-F]{64}$/.test(raw)) {
        throw new BadRequest(`query parameter "sha256" must be 64 hexadecimal digits (a SHA-256), got ${JSON.stringify(raw.slice(0, 100))}`);
      }
      const sha = raw.toLowerCase();
      const summarize = summarizer(core);
      const outputs: HashMatch[] = [];
      let truncated = false;
      for (const { key } of core.dbs.outputsByHash.getRange({ start: [sha, '', ''], end: [sha, '\uffff', '\uffff'] })) {
        const [, jobId, path] = key;
        const job = core.jobs.get(jobId as JobId);
        // Jobs the viewer may not see are skipped without a trace, exactly as if they did not exist.
        if (!job || !mayView(core, v, job)) continue;
        if (outputs.length >= MAX_HASH_MATCHES) {
          truncated = true;
          break;
        }
        const o = core.dbs.outputs.get([jobId, path]);
        outputs.push({ job: summarize(job), path, size: o?.size ?? 0, committedAt: o?.committedAt ?? 0, url: outputUrl(jobId, path), download: outputPageUrl(jobId, path) });
      }
      data = { sha256: sha, outputs, truncated };
    }
    return pageResponse(req, v, { title: 'Search by hash', nav: 'hash' }, data, () => renderHashPage(data));
  });
}
