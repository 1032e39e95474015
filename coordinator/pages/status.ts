import type { HourStat, StatusData } from '../../web/status.js';
import { renderStatus } from '../../web/status.js';
import { PRIV_ADMIN } from '../auth.js';
import type { Core } from '../core.js';
import { isTerminal } from '../jobs.js';
import type { Router } from '../router.js';
import type { JobRecord } from '../store/records.js';
import { factoryRows, liveWorkers } from './fleet.js';
import { JobScan, summarizer, visibleJobs } from './lists.js';
import { pageResponse } from './respond.js';
import type { Viewer } from './session.js';
import { mayView, viewerOf } from './session.js';

const HOUR_MS = 3600_000;
/** Most job records the status page reads for "recently finished" and the chart. */
export const STATUS_SCAN = 2_000;
/** How many finished jobs the status page lists. */
export const RECENT_JOBS = 50;
/** How many queued, waiting and running jobs the status page lists. */
export const ACTIVE_JOBS = 200;
/**
 * How far back (by submission) the status page looks for jobs that ended in
 * the last 24 hours: a job may queue and run for a while before it ends.
 */
const LOOKBACK_MS = 48 * HOUR_MS;

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Jobs finished per hour (and failed) and their median queue wait, for the 24 hours up to `now`. */
export function hourlyStats(finished: JobRecord[], now: number): HourStat[] {
  const first = Math.floor(now / HOUR_MS) * HOUR_MS - 23 * HOUR_MS;
  const hours = Array.from({ length: 24 }, (_, i) => ({ start: first + i * HOUR_MS, finished: 0, failed: 0, waits: [] as number[] }));
  for (const j of finished) {
    if (j.endedAt === null) continue;
    const h = hours[Math.floor((j.endedAt - first) / HOUR_MS)];
    if (!h) continue;
    h.finished++;
    if (j.state === 'failed') h.failed++;
    if (j.assignedAt !== null) h.waits.push(j.assignedAt - j.submittedAt);
  }
  return hours.map(({ waits, ...h }) => ({ ...h, medianWaitMs: median(waits) }));
}

/**
 * Everything the status page shows, for one viewer. "Recently finished" and
 * the chart read the jobs database newest first and stop after
 * {@link STATUS_SCAN} records or 48 hours of submissions, never the whole store.
 */
export function statusData(core: Core, v: Viewer): StatusData {
  const now = core.clock.now();
  const summarize = summarizer(core);
  const active = [...core.jobs.active.values()].filter((j) => mayView(core, v, j)).sort((a, b) => (a.id < b.id ? 1 : -1));
  const counts = { queued: 0, waiting: 0, running: 0 };
  for (const j of active) if (j.state === 'queued' || j.state === 'waiting' || j.state === 'running') counts[j.state]++;
  const finished: JobRecord[] = [];
  for (const j of visibleJobs(core, v, null, new JobScan(STATUS_SCAN))) {
    if (j.submittedAt < now - LOOKBACK_MS) break;
    if (isTerminal(j.state) && j.endedAt !== null) finished.push(j);
  }
  const recent = [...finished].sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0)).slice(0, RECENT_JOBS);
  const workers = liveWorkers(core, v);
  const factories = factoryRows(core);
  return {
    now, hold: core.scheduler.hold, admin: v.has(PRIV_ADMIN),
    counts: { ...counts, workers: workers.length, factories: factories.length },
    workers, active: active.slice(0, ACTIVE_JOBS).map(summarize), activeLimit: ACTIVE_JOBS, recent: recent.map(summarize), factories,
    hours: hourlyStats(finished, now),
  };
}

/** The status page at `/`. */
export function statusRoutes(core: Core, r: Router): void {
  r.add('GET', '/', ({ req }) => {
    const v = viewerOf(core, req);
    const data = statusData(core, v);
    return pageResponse(req, v, { title: 'Status', nav: 'status' }, data, () => renderStatus(data, v.csrf), { scripts: ['/static/status.js'] });
  });
}
