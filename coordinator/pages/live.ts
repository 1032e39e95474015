/**
 * The live log: a WebSocket at `/api/v1/live` that follows one job's log.
 *
 * Protocol (every message is a binary frame; the coordinator's WebSocket
 * layer closes text frames with 1003). Client messages and the server's
 * `done` are UTF-8 JSON; the server's pages are page frames
 * (web/client/live-page.ts has the layout and the reader):
 *
 * | from | message | meaning |
 * |---|---|---|
 * | client | `{job, after}` | follow job `job` from the event after seq `after` (once per connection) |
 * | client | `{ping: any}` | keep-alive; ignored (the connection closes after {@link LIVE_IDLE_SECONDS} of silence) |
 * | server | page frame (byte 0 is 1 or 2) | the next events in order, as stored; `next` is the last seq sent |
 * | server | `{done: true, state}` (byte 0 is `{`) | the job ended and every event was sent; the server then closes with 1000 |
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
 * waiter per job, not per viewer), takes each new page of events once from
 * the log's in-memory tail, compresses it once on a low-priority worker
 * (live-deflate.ts), and sends the same bytes to every viewer that is
 * caught up. A viewer whose send reported backpressure gets nothing more until its
 * `drain`; it then catches up at its own cursor, page by page, and rejoins
 * the shared stream when it reaches the feed's head. Nothing is buffered per
 * viewer beyond what the socket holds.
 *
 * The stream's pages hold all that committed since the last one (up to
 * {@link LIVE_STREAM_BYTES}), so a busy job costs one send per viewer per
 * tick. Every page is read and encoded once and kept, encoded, in one
 * {@link PageCache} shared by all feeds ({@link LIVE_CACHE_BYTES}), under
 * the seq it starts after. A viewer that fell behind stopped at the end of
 * a stream page, so it catches up on the stream's own cached pages; one
 * that comes back with its own `after` (a reconnect) reads pages that end
 * on a grid (seqs that are multiples of {@link LIVE_PAGE_EVENTS}), so
 * viewers that resumed at different points soon ask for the same pages. A
 * hundred lagging viewers cost one read of the store, not a hundred.
 */
import { deflateRawSync } from 'node:zlib';
import { deflateLow } from './live-deflate.js';
import type { JobId } from '../../protocol/index.js';
import { parseJobId, REC } from '../../protocol/index.js';
import type { Core } from '../core.js';
import type { HttpRequest, WsConnection, WsRoute } from '../http/types.js';
import { isTerminal } from '../jobs.js';
import { FRAME, FRAME_HEAD } from '../../web/client/live-page.js';
import { LIVE_PATH } from './job.js';
import type { Viewer } from './session.js';
import { mayView, viewerOf } from './session.js';

/** Pages end at seqs that are multiples of this (a page holds about this many events). */
export const LIVE_PAGE_EVENTS = 1000;
/** Stored bytes in one catch-up page (past its first batch). */
export const LIVE_PAGE_BYTES = 512 * 1024;
/**
 * Stored bytes in one page of the live stream (past its first batch): all a
 * busy job wrote in one {@link FEED_TICK_MS} tick, up to this, goes out as
 * one message per viewer. Sends, not bytes, are what a viewer costs (a
 * write to its socket each): cut at the 1,000-seq grid, a job writing
 * 500,000 lines/s cost twelve sends per viewer per tick instead of one.
 */
export const LIVE_STREAM_BYTES = 1024 * 1024;
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
}

/** Encoded pages kept for viewers that fell behind, across all feeds. */
export const LIVE_CACHE_BYTES = 32 * 1024 * 1024;
/**
 * After a read that found something, a feed waits this long before reading
 * again. A line after a quiet spell goes out at once; while a job keeps
 * writing, its many small batches go out as at most 1000 / FEED_TICK_MS
 * messages a second, so per-message costs (a syscall and a frame per
 * viewer) stay flat however fast the job writes.
 */
const FEED_TICK_MS = 25;

/** One page frame: the events after the seq it is cached under, up to `next`. */
interface Page {
  bytes: Uint8Array;
  next: number;
}

/** Bodies at least this long are sent compressed (deflate-raw, level 1): once per page, however many viewers. */
export const LIVE_DEFLATE_MIN_BYTES = 1024;

/** A page's body: the stored batches, each after its first seq and length (web/client/live-page.ts). */
function pageBody(batches: { first: number; bytes: Buffer }[]): Buffer {
  let size = 0;
  for (const b of batches) size += 12 + b.bytes.length;
  const body = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const b of batches) {
    body.writeDoubleBE(b.first, pos);
    body.writeUInt32BE(b.bytes.length, pos + 8);
    b.bytes.copy(body, pos + 12);
    pos += 12 + b.bytes.length;
  }
  return body;
}

/** A page frame: kind, `next`, then the body as it is or compressed. */
function frameOf(kind: number, next: number, payload: Uint8Array): Uint8Array {
  const frame = Buffer.allocUnsafe(FRAME_HEAD + payload.length);
  frame[0] = kind;
  frame.writeDoubleBE(next, 1);
  frame.set(payload, FRAME_HEAD);
  return frame;
}

/** A page frame, compressed here when worth it (pages a viewer catches up with: rare, and it waits for them). */
function pageFrame(batches: { first: number; bytes: Buffer }[], next: number): Uint8Array {
  const body = pageBody(batches);
  return body.length >= LIVE_DEFLATE_MIN_BYTES ? frameOf(FRAME.DEFLATED, next, deflateRawSync(body, { level: 1 })) : frameOf(FRAME.RECORDS, next, body);
}

/**
 * A page frame of the live stream, compressed when worth it on the
 * low-priority worker (live-deflate.ts): when ingestion keeps the
 * coordinator's cores busy, the viewers wait, not the build.
 */
async function streamFrame(batches: { first: number; bytes: Buffer }[], next: number): Promise<Uint8Array> {
  const body = pageBody(batches);
  return body.length >= LIVE_DEFLATE_MIN_BYTES ? frameOf(FRAME.DEFLATED, next, await deflateLow(body)) : frameOf(FRAME.RECORDS, next, body);
}

/**
 * Encoded pages by job and the seq each starts after, least recently used
 * first out once they hold more than `budget` bytes. Any page starting after
 * a viewer's cursor is the right next message for it, whoever read it.
 */
export class PageCache {
  readonly #pages = new Map<string, Page>();
  #bytes = 0;

  constructor(readonly budget: number) {}

  get(job: JobId, start: number): Page | undefined {
    const key = `${job}:${start}`;
    const page = this.#pages.get(key);
    if (page) {
      // Refresh its place: a page many viewers are reaching stays.
      this.#pages.delete(key);
      this.#pages.set(key, page);
    }
    return page;
  }

  set(job: JobId, start: number, page: Page): void {
    const key = `${job}:${start}`;
    const old = this.#pages.get(key);
    if (old) this.#bytes -= old.bytes.length;
    this.#pages.delete(key);
    this.#pages.set(key, page);
    this.#bytes += page.bytes.length;
    for (const [k, p] of this.#pages) {
      if (this.#bytes <= this.budget || k === key) break;
      this.#pages.delete(k);
      this.#bytes -= p.bytes.length;
    }
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }
}

/** The first grid seq after `seq`: where a page starting after `seq` ends at the latest. */
const gridEnd = (seq: number): number => (Math.floor(seq / LIVE_PAGE_EVENTS) + 1) * LIVE_PAGE_EVENTS;

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
  const cache = new PageCache(LIVE_CACHE_BYTES);

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

  /**
   * The page after `start` for a viewer catching up: from the cache, else
   * read once, encoded and kept, ending by `upTo`, at the grid line after
   * `start` and after {@link LIVE_PAGE_BYTES} of lines. Null when nothing
   * is there.
   */
  function pageAfter(job: JobId, start: number, upTo: number): Page | null {
    const cached = cache.get(job, start);
    if (cached && cached.next <= upTo) return cached;
    const raw = core.events.rawBatches(job, start, upTo, LIVE_PAGE_BYTES, gridEnd(start));
    if (!raw) return null;
    const page = { bytes: pageFrame(raw.batches, raw.next), next: raw.next };
    cache.set(job, start, page);
    return page;
  }

  /**
   * The live stream's next page: all that committed after `start`, up to
   * {@link LIVE_STREAM_BYTES}, from the log's in-memory tail when it holds
   * it. Kept in the cache: viewers that fell behind catch up on it.
   */
  async function streamPage(job: JobId, start: number): Promise<Page | null> {
    const cached = cache.get(job, start);
    if (cached) return cached;
    const raw = core.events.tailBatches(job, start, LIVE_STREAM_BYTES) ?? core.events.rawBatches(job, start, Number.MAX_SAFE_INTEGER, LIVE_STREAM_BYTES);
    if (!raw) return null;
    const page = { bytes: await streamFrame(raw.batches, raw.next), next: raw.next };
    cache.set(job, start, page);
    return page;
  }

  /** Sends a viewer what it lacks up to the feed's head, page by page, until caught up or blocked. */
  function catchUp(c: WsConnection<LiveConn>): void {
    const d = c.data;
    const feed = d.feed;
    if (!feed) return;
    while (!d.blocked && !c.closed && d.cursor < feed.head) {
      const page = pageAfter(feed.job, d.cursor, feed.head);
      if (!page) break;
      send(c, page.bytes, page.next);
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

  /**
   * Reads what committed since the feed's head, once, and sends the same
   * bytes to every caught-up viewer. Only this loop moves the head, and only
   * once a page is encoded, so a viewer behind the head catches up on pages
   * already in the cache.
   */
  async function pump(feed: Feed): Promise<void> {
    while (!feed.abort.signal.aborted) {
      const prev = feed.head;
      const page = await streamPage(feed.job, prev);
      if (!page) break;
      feed.head = page.next;
      for (const c of feed.conns) if (!c.data.blocked && c.data.cursor === prev) send(c, page.bytes, page.next);
    }
  }

  async function follow(feed: Feed): Promise<void> {
    try {
      // Check before the first wait: a job that already ended has nothing left to wake the feed.
      while (!feed.abort.signal.aborted) {
        const before = feed.head;
        await pump(feed);
        const fin = finalSeen(feed);
        if (fin === true) {
          await pump(feed);
          feed.done = true;
          for (const c of feed.conns) if (!c.data.blocked && c.data.cursor >= feed.head) sendDone(c, feed);
          break;
        }
        if (feed.head > before) await new Promise((r) => setTimeout(r, FEED_TICK_MS));
        await core.events.wait(feed.job, feed.head, fin === false ? WAIT_MS : Math.min(WAIT_MS, fin), feed.abort.signal);
      }
    } catch (err) {
      core.log(`live: following job ${feed.job} failed: ${(err as Error).stack ?? String(err)}`);
      for (const c of feed.conns) c.close(1011, 'internal error');
    } finally {
      core.events.keepTail(feed.job, false);
      if (feeds.get(feed.job) === feed) feeds.delete(feed.job);
      // An ended job's sequencing state is rebuilt from the store when needed; do not keep it for nobody.
      if (feed.done) core.events.forget(feed.job);
    }
  }

  function feedFor(job: JobId): Feed {
    let feed = feeds.get(job);
    if (feed) return feed;
    feed = { job, head: core.events.lastSeq(job), done: false, conns: new Set(), abort: new AbortController() };
    feeds.set(job, feed);
    core.events.keepTail(job, true);
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
