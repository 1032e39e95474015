/**
 * The live log: a WebSocket at `/api/v1/live` that follows one job's log.
 *
 * Protocol (every message is a binary frame holding UTF-8 JSON; the
 * coordinator's WebSocket layer closes text frames with 1003):
 *
 * | from | message | meaning |
 * |---|---|---|
 * | client | `{job, after}` | follow job `job` from the event after seq `after` (once per connection) |
 * | client | `{ping: any}` | keep-alive; ignored (the connection closes after {@link LIVE_IDLE_SECONDS} of silence) |
 * | server | `{events: [EventJson...], next}` | the next events in order; `next` is the last seq sent |
 * | server | `{done: true, state}` | the job ended and every event was sent; the server then closes with 1000 |
 *
 * | close code | meaning | should the client reconnect? |
 * |---|---|---|
 * | 1000 | done | no |
 * | 1001 | server going away or idle | yes, with `after` = last seq received |
 * | 4400 | a malformed message (the reason says which rule it broke) | no |
 * | 4401 | not signed in (no session cookie or bearer token, and no anonymous read) | no |
 * | 4403 | the page that opened it is on another site (`Origin` is not this host) | no |
 * | 4404 | no such job, or one the viewer may not see | no |
 *
 * Fan-out: one {@link Feed} per followed job waits on the event log (one
 * waiter per job, not per viewer), reads each new page of events once,
 * encodes it once, and sends the same bytes to every viewer that is caught
 * up. A viewer whose send reported backpressure gets nothing more until its
 * `drain`; it then catches up from the store at its own cursor, page by page,
 * and rejoins the shared stream when it reaches the feed's head. Nothing is
 * buffered per viewer beyond what the socket holds.
 */
import type { JobId } from '../../protocol/index.js';
import { parseJobId, REC } from '../../protocol/index.js';
import type { Core } from '../core.js';
import type { HttpRequest, WsConnection, WsRoute } from '../http/types.js';
import { isTerminal } from '../jobs.js';
import { readEvents } from './job-log.js';
import { LIVE_PATH } from './job.js';
import type { Viewer } from './session.js';
import { mayView, viewerOf } from './session.js';

/** Events in one message. */
export const LIVE_PAGE_EVENTS = 1000;
/** Line bytes in one message (past its first event). */
export const LIVE_PAGE_BYTES = 512 * 1024;
/** Silence after which the server closes a connection (clients ping more often). */
export const LIVE_IDLE_SECONDS = 75;
/** Largest client message. */
export const LIVE_MAX_MESSAGE_BYTES = 4096;
/** Socket backlog past which sends are dropped (never reached: sends stop at the first backpressure). */
export const LIVE_MAX_BACKLOG_BYTES = 16 * 1024 * 1024;
/** How long a feed waits between checks of a job that stays quiet. */
const WAIT_MS = 25_000;
/**
 * After a job's state turns final, its closing control line ("job completed:
 * ...") commits a moment later; wait this long for it before saying done.
 */
const FINAL_GRACE_MS = 2_000;

/** Close codes of the live socket. */
export const LIVE_CLOSE = { DONE: 1000, BAD_MESSAGE: 4400, SIGN_IN: 4401, ORIGIN: 4403, NOT_FOUND: 4404 } as const;

/** Per-connection state. */
interface LiveConn {
  /** Null when the upgrade carried no valid sign-in (closed at open). */
  viewer: Viewer | null;
  originOk: boolean;
  feed: Feed | null;
  /** The last seq sent to this viewer. */
  cursor: number;
  /** A send reported backpressure; nothing more until `drain`. */
  blocked: boolean;
  doneSent: boolean;
}

/** One followed job and its viewers. */
interface Feed {
  job: JobId;
  /** The last seq read from the store (and sent to every caught-up viewer). */
  head: number;
  done: boolean;
  conns: Set<WsConnection<LiveConn>>;
  abort: AbortController;
  /**
   * The encoded pages the feed sent, keyed by the seq each starts after. A
   * viewer that fell behind resumes at a page boundary, so it is sent these
   * same bytes instead of re-reading and re-encoding the store: a hundred
   * lagging viewers cost one read, not a hundred.
   */
  pages: Map<number, { bytes: Uint8Array; next: number }>;
}

/** Pages a feed keeps for viewers that fell behind (at most LIVE_PAGE_BYTES each). */
const FEED_PAGES = 64;
/**
 * After a wake, a feed waits this long before reading, so a busy job's many
 * small batches go out as a few large messages: per-message costs (a syscall
 * and a frame per viewer) stay flat however fast the job writes.
 */
const FEED_TICK_MS = 50;

const encode = (msg: unknown): Uint8Array => Buffer.from(JSON.stringify(msg), 'utf8');

/** Whether the upgrade came from a page of this site (browsers always send Origin; other clients may not). */
function sameOrigin(headers: Record<string, string>): boolean {
  const origin = headers['origin'];
  if (origin === undefined || origin === '') return true;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  return host === headers['host'] || host === headers['x-forwarded-host'];
}

/**
 * The `/api/v1/live` WebSocket route.
 *
 * @example
 * startServer({ ..., ws: [connectRoute(core), liveRoute(core)] });
 */
export function liveRoute(core: Core): WsRoute<LiveConn> {
  const feeds = new Map<JobId, Feed>();

  function send(c: WsConnection<LiveConn>, bytes: Uint8Array, next: number): void {
    const r = c.send(bytes);
    // `backpressure`: queued, so sent; `dropped`: not sent (closed, or over the backlog limit). Either way wait for drain.
    if (r !== 'dropped') c.data.cursor = next;
    if (r !== 'ok') c.data.blocked = true;
  }

  function sendDone(c: WsConnection<LiveConn>, feed: Feed): void {
    if (c.data.doneSent) return;
    c.data.doneSent = true;
    c.send(encode({ done: true, state: core.jobs.get(feed.job)?.state ?? 'deleted' }));
    c.close(LIVE_CLOSE.DONE, 'done');
  }

  /** Sends a viewer what it lacks up to the feed's head, from the store, until caught up or blocked. */
  function catchUp(c: WsConnection<LiveConn>): void {
    const d = c.data;
    const feed = d.feed;
    if (!feed) return;
    while (!d.blocked && !c.closed && d.cursor < feed.head) {
      const cached = feed.pages.get(d.cursor);
      if (cached) {
        send(c, cached.bytes, cached.next);
        continue;
      }
      const events = readEvents(core, feed.job, d.cursor, Math.min(LIVE_PAGE_EVENTS, feed.head - d.cursor), LIVE_PAGE_BYTES);
      if (events.length === 0) break;
      const next = events.at(-1)!.seq;
      send(c, encode({ events, next }), next);
    }
    if (!d.blocked && !c.closed && feed.done && d.cursor >= feed.head) sendDone(c, feed);
  }

  /** Whether every event of an ended job is in the store: its closing control line is, or the grace passed. */
  function finalSeen(feed: Feed): boolean | number {
    const job = core.jobs.get(feed.job);
    if (!job) return true;
    if (!isTerminal(job.state)) return false;
    for (const { rec } of core.events.records(feed.job, Math.max(0, feed.head - 1))) {
      if (rec[1] === REC.CONTROL && typeof rec[3] === 'string' && rec[3].startsWith(`job ${job.state}: `)) return true;
      break;
    }
    const left = (job.endedAt ?? 0) + FINAL_GRACE_MS - core.clock.now();
    return left <= 0 ? true : left;
  }

  /** Reads what committed since the feed's head, once, and sends the same bytes to every caught-up viewer. */
  function pump(feed: Feed): void {
    for (;;) {
      const events = readEvents(core, feed.job, feed.head, LIVE_PAGE_EVENTS, LIVE_PAGE_BYTES);
      if (events.length === 0) break;
      const prev = feed.head;
      const next = events.at(-1)!.seq;
      feed.head = next;
      const bytes = encode({ events, next });
      feed.pages.set(prev, { bytes, next });
      if (feed.pages.size > FEED_PAGES) feed.pages.delete(feed.pages.keys().next().value!);
      for (const c of feed.conns) if (!c.data.blocked && c.data.cursor === prev) send(c, bytes, next);
    }
  }

  async function follow(feed: Feed): Promise<void> {
    try {
      // Check before the first wait: a job that already ended has nothing left to wake the feed.
      while (!feed.abort.signal.aborted) {
        pump(feed);
        const fin = finalSeen(feed);
        if (fin === true) {
          pump(feed);
          feed.done = true;
          for (const c of feed.conns) if (!c.data.blocked && c.data.cursor >= feed.head) sendDone(c, feed);
          break;
        }
        await core.events.wait(feed.job, feed.head, fin === false ? WAIT_MS : Math.min(WAIT_MS, fin), feed.abort.signal);
        if (!feed.abort.signal.aborted) await new Promise((r) => setTimeout(r, FEED_TICK_MS));
      }
    } catch (err) {
      core.log(`live: following job ${feed.job} failed: ${(err as Error).stack ?? String(err)}`);
      for (const c of feed.conns) c.close(1011, 'internal error');
    } finally {
      if (feeds.get(feed.job) === feed) feeds.delete(feed.job);
      // An ended job's sequencing state is rebuilt from the store when needed; do not keep it for nobody.
      if (feed.done) core.events.forget(feed.job);
    }
  }

  function feedFor(job: JobId): Feed {
    let feed = feeds.get(job);
    if (feed) return feed;
    feed = { job, head: core.events.lastSeq(job), done: false, conns: new Set(), abort: new AbortController(), pages: new Map() };
    feeds.set(job, feed);
    void follow(feed);
    return feed;
  }

  function unsubscribe(c: WsConnection<LiveConn>): void {
    const feed = c.data.feed;
    if (!feed) return;
    feed.conns.delete(c);
    c.data.feed = null;
    if (feed.conns.size === 0 && !feed.done) {
      // Take it out of the map now, so a viewer arriving before the loop notices gets a fresh feed.
      if (feeds.get(feed.job) === feed) feeds.delete(feed.job);
      feed.abort.abort();
    }
  }

  function subscribe(c: WsConnection<LiveConn>, raw: Buffer): void {
    const d = c.data;
    let msg: unknown;
    try {
      msg = JSON.parse(raw.toString('utf8'));
    } catch {
      return c.close(LIVE_CLOSE.BAD_MESSAGE, 'a message must be a JSON object in a binary frame');
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return c.close(LIVE_CLOSE.BAD_MESSAGE, 'a message must be a JSON object');
    const o = msg as Record<string, unknown>;
    if ('ping' in o) return;
    if (d.feed || d.doneSent) return c.close(LIVE_CLOSE.BAD_MESSAGE, 'one subscription per connection');
    if (typeof o.job !== 'string') return c.close(LIVE_CLOSE.BAD_MESSAGE, 'field "job" must be a job id');
    const after = o.after ?? 0;
    if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) return c.close(LIVE_CLOSE.BAD_MESSAGE, 'field "after" must be a non-negative integer');
    let id: JobId;
    try {
      id = parseJobId(o.job);
    } catch {
      return c.close(LIVE_CLOSE.BAD_MESSAGE, `field "job" ${JSON.stringify(o.job.slice(0, 30))} is not a job id`);
    }
    const job = core.jobs.get(id);
    if (!job || !mayView(core, d.viewer!, job)) return c.close(LIVE_CLOSE.NOT_FOUND, `job ${id} does not exist`);
    const feed = feedFor(id);
    // A cursor past the end would never meet the shared stream; the client drops what it already has by seq.
    d.cursor = Math.min(after, feed.head);
    d.feed = feed;
    feed.conns.add(c);
    catchUp(c);
  }

  return {
    path: LIVE_PATH,
    maxPayloadBytes: LIVE_MAX_MESSAGE_BYTES,
    idleTimeoutSeconds: LIVE_IDLE_SECONDS,
    maxBackpressureBytes: LIVE_MAX_BACKLOG_BYTES,
    create({ headers, remoteAddress }) {
      // Sessions are resolved by the same code as pages: a request with the upgrade's headers.
      const req: HttpRequest = { method: 'GET', path: LIVE_PATH, query: new URLSearchParams(), headers, body: Buffer.alloc(0), remoteAddress };
      let viewer: Viewer | null = null;
      try {
        viewer = viewerOf(core, req);
      } catch {
        viewer = null;
      }
      return { viewer, originOk: sameOrigin(headers), feed: null, cursor: 0, blocked: false, doneSent: false };
    },
    open(c) {
      // A cookie rides along on cross-site WebSocket upgrades too: refuse pages of other sites.
      if (!c.data.originOk) c.close(LIVE_CLOSE.ORIGIN, 'the Origin of this connection is not this site');
      else if (c.data.viewer === null) c.close(LIVE_CLOSE.SIGN_IN, 'sign in first');
    },
    message(c, data) {
      if (c.data.viewer === null || !c.data.originOk) return;
      subscribe(c, data);
    },
    drain(c) {
      c.data.blocked = false;
      // Not from inside the callback: uWS does not report drain again for what is sent from within it.
      setImmediate(() => catchUp(c));
    },
    close(c) {
      unsubscribe(c);
    },
  };
}
