/**
 * The job page's view of a log: pages of events with huge lines cut for
 * display, search, the raw text, and the task timeline. Every function reads
 * a bounded amount per call, so a log of a million lines (or of 10 MB lines)
 * costs the same per request as a small one.
 */
import type { JobId, LogRecord, TaskEvent } from '../../protocol/index.js';
import { REC, REC_KIND_MASK, REC_PARTIAL } from '../../protocol/index.js';
import type { LogEvent } from '../../web/log.js';
import { DISPLAY_MAX_BYTES } from '../../web/log.js';
import { stripAnsi } from '../../web/ansi.js';
import type { TaskRun } from '../../web/job.js';
import type { Core } from '../core.js';
import { toJson } from '../event-log.js';
import { isTerminal } from '../jobs.js';

/** Lines the page shows server-side (the last ones, or those around a permalink). */
export const PAGE_LINES = 500;
/** Line bytes (after cutting long lines) one page or events answer carries past its first line. */
export const PAGE_MAX_BYTES = 1024 * 1024;
/** Records one search request looks at before answering with a cursor. */
export const SEARCH_SCAN_RECORDS = 50_000;
/** Line bytes one search request looks at before answering with a cursor. */
export const SEARCH_SCAN_BYTES = 32 * 1024 * 1024;
/** Matches one search answer carries. */
export const SEARCH_MAX_MATCHES = 200;
/** Characters of a matching line a search answer carries. */
export const SEARCH_SNIPPET_CHARS = 240;

const STREAMS = ['stdout', 'stderr', 'task', 'job', 'console', 'worker', 'control'] as const;

/** Cuts `b` to at most `max` bytes without splitting a UTF-8 sequence. */
function cutUtf8(b: Uint8Array, max: number): Uint8Array {
  let end = max;
  // Back off continuation bytes (10xxxxxx) so the cut lands on a character start.
  while (end > 0 && end > max - 4 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/**
 * One record as the page's JSON: the API's event, except that a line longer
 * than {@link DISPLAY_MAX_BYTES} is cut there and says how long it was in
 * `truncated` (its full bytes are in the raw log).
 */
export function pageEvent(seq: number, rec: LogRecord): LogEvent {
  const data = rec[3];
  if (data instanceof Uint8Array && data.length > DISPLAY_MAX_BYTES) {
    const e: LogEvent = toJson(seq, [rec[0], rec[1], rec[2], cutUtf8(data, DISPLAY_MAX_BYTES)]);
    e.truncated = data.length;
    return e;
  }
  if (typeof data === 'string' && data.length > DISPLAY_MAX_BYTES) {
    const e: LogEvent = toJson(seq, [rec[0], rec[1], rec[2], data.slice(0, DISPLAY_MAX_BYTES)]);
    e.truncated = Buffer.byteLength(data);
    return e;
  }
  return toJson(seq, rec);
}

function sizeOf(e: LogEvent): number {
  return e.text !== undefined ? e.text.length + 64 : 64;
}

/**
 * Events after `after`: at most `limit`, and past the first about
 * `maxBytes` of (cut) line text.
 */
export function readEvents(core: Core, job: JobId, after: number, limit: number, maxBytes = PAGE_MAX_BYTES): LogEvent[] {
  const out: LogEvent[] = [];
  let bytes = 0;
  for (const { seq, rec } of core.events.records(job, after)) {
    const e = pageEvent(seq, rec);
    const size = sizeOf(e);
    if (out.length > 0 && bytes + size > maxBytes) break;
    bytes += size;
    out.push(e);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * The lines the page renders: with `from`, the page starting a little
 * before that seq (so the permalinked line is not at the very top); else the
 * last {@link PAGE_LINES}, cut from the front to {@link PAGE_MAX_BYTES}.
 */
export function pageLines(core: Core, job: JobId, from: number | null): LogEvent[] {
  const last = core.events.lastSeq(job);
  if (from !== null) return readEvents(core, job, Math.max(0, Math.min(from, last) - 50), PAGE_LINES);
  const lines = readEvents(core, job, Math.max(0, last - PAGE_LINES), PAGE_LINES, Number.MAX_SAFE_INTEGER);
  // The newest lines matter most here, so trim the oldest until the page fits.
  let bytes = lines.reduce((n, e) => n + sizeOf(e), 0);
  let start = 0;
  while (start < lines.length - 1 && bytes > PAGE_MAX_BYTES) bytes -= sizeOf(lines[start++]!);
  return lines.slice(start);
}

/** The events answer of the page (same fields as `GET /api/v1/jobs/:id/events`). */
export function eventsAnswer(core: Core, job: JobId, after: number, limit: number): { job: string; state: string; events: LogEvent[]; next: number; done: boolean } {
  const events = readEvents(core, job, after, limit);
  // A job deleted meanwhile has nothing more to say.
  const state = core.jobs.get(job)?.state ?? 'cancelled';
  const next = events.at(-1)?.seq ?? after;
  return { job, state, events, next, done: isTerminal(state) && next >= core.events.lastSeq(job) };
}

/** One search hit. */
export interface SearchMatch {
  seq: number;
  stream: string;
  /** The line without escape sequences, cut to {@link SEARCH_SNIPPET_CHARS} around the match. */
  text: string;
}

/** A search answer: hits after `after`, and where to continue. */
export interface SearchAnswer {
  query: string;
  matches: SearchMatch[];
  /** The last seq looked at: the `after` of the next request. */
  next: number;
  /** True when the scan reached the end of the log (as it was when scanned). */
  done: boolean;
}

/**
 * Looks for `query` (case-insensitive, in the text without escape
 * sequences) in lines after `after`, looking at no more than
 * {@link SEARCH_SCAN_RECORDS} records or {@link SEARCH_SCAN_BYTES} bytes.
 */
export function searchLog(core: Core, job: JobId, query: string, after: number): SearchAnswer {
  const needle = query.toLowerCase();
  const matches: SearchMatch[] = [];
  let next = after;
  let records = 0;
  let bytes = 0;
  const last = core.events.lastSeq(job);
  for (const { seq, rec } of core.events.records(job, after)) {
    if (seq > last || records >= SEARCH_SCAN_RECORDS || bytes >= SEARCH_SCAN_BYTES || matches.length >= SEARCH_MAX_MATCHES) break;
    records++;
    next = seq;
    const data = rec[3];
    let text: string;
    if (data instanceof Uint8Array) {
      bytes += data.length;
      text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
    } else if (typeof data === 'string') text = data;
    else continue;
    const plain = stripAnsi(text);
    const at = plain.toLowerCase().indexOf(needle);
    if (at < 0) continue;
    const start = Math.max(0, at - Math.floor(SEARCH_SNIPPET_CHARS / 3));
    matches.push({ seq, stream: STREAMS[rec[1] & REC_KIND_MASK] ?? 'worker', text: plain.slice(start, start + SEARCH_SNIPPET_CHARS) });
  }
  return { query, matches, next, done: next >= last };
}

/** A job's task runs so far and how far its log was read for them. */
interface Timeline {
  scanned: number;
  tasks: TaskRun[];
}

/** Timelines of logs already read, per coordinator; an ended job's is final, a running one's is continued from `scanned`. */
const timelineCaches = new WeakMap<Core, Map<string, Timeline>>();
const TIMELINE_CACHE = 2000;

/** Records the timeline reads before it lets other work run (about 10 ms here). */
const TIMELINE_SLICE = 5_000;

/** Timeline reads under way, so concurrent first views of a long log share one pass. */
const timelineReads = new WeakMap<Core, Map<string, Promise<TaskRun[]>>>();

/**
 * The tasks of a job as its TASK records tell them: name, start, exit code
 * or signal, duration. Read once per job (then from where the last read
 * stopped), since a long log costs a full pass: for a million lines about
 * two seconds, so the pass hands the event loop back every
 * {@link TIMELINE_SLICE} records rather than stalling ingestion and every
 * other request meanwhile.
 */
export function taskTimeline(core: Core, job: JobId): Promise<TaskRun[]> {
  let reads = timelineReads.get(core);
  if (!reads) timelineReads.set(core, (reads = new Map()));
  const running = reads.get(job);
  if (running) return running;
  const p = readTimeline(core, job).finally(() => reads.delete(job));
  reads.set(job, p);
  return p;
}

async function readTimeline(core: Core, job: JobId): Promise<TaskRun[]> {
  let timelines = timelineCaches.get(core);
  if (!timelines) timelineCaches.set(core, (timelines = new Map()));
  const cached = timelines.get(job);
  const t: Timeline = cached ? { scanned: cached.scanned, tasks: cached.tasks.map((x) => ({ ...x })) } : { scanned: 0, tasks: [] };
  const last = core.events.lastSeq(job);
  while (t.scanned < last) {
    let n = 0;
    // A fresh read from where the last slice stopped: no read transaction is held across the pause.
    for (const { seq, rec } of core.events.records(job, t.scanned)) {
      if (seq > last || n++ >= TIMELINE_SLICE) break;
      t.scanned = seq;
      if ((rec[1] & REC_KIND_MASK) !== REC.TASK) continue;
      const ev = rec[3] as TaskEvent;
      if (ev.event === 'start') {
        t.tasks.push({ index: rec[2], name: ev.name, startedAt: rec[0], endedAt: null, code: null, signal: null, seq });
      } else {
        const run = t.tasks.findLast((x) => x.index === rec[2] && x.endedAt === null);
        if (run) Object.assign(run, { endedAt: rec[0], code: ev.code, signal: ev.signal });
      }
    }
    if (n === 0) break;
    if (t.scanned < last) await new Promise((r) => setImmediate(r));
  }
  timelines.delete(job);
  timelines.set(job, t);
  if (timelines.size > TIMELINE_CACHE) timelines.delete(timelines.keys().next().value!);
  return t.tasks;
}
