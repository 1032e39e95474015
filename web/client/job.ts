/**
 * The job page's log: paging, live follow, search, timestamps, permalinks.
 *
 * The server renders one page of lines (the last, or the one around a
 * permalink). This script keeps a window of at most MAX_LINES contiguous
 * lines in the DOM: scrolling to the top loads the page before it, to the
 * bottom the page after it, and lines beyond the window are removed, so a
 * log of a million lines costs the browser what a few thousand do.
 *
 * While the job runs it follows `/api/v1/live` (page frames read by
 * ./live-page.js, see coordinator/pages/live.ts). On a dropped connection it
 * reconnects with backoff and `after` = the last seq received; lines are
 * placed by seq, so none is shown twice or skipped. A reader who scrolled up
 * is not moved: new lines wait behind "jump to newest (N new)".
 *
 * Log text only ever reaches the page through `textContent`; colours come
 * from a fixed set of class names. Like status.ts, this declares the little
 * DOM it uses instead of `/// <reference lib="dom" />`, which would replace
 * Node's `fetch` types for the whole program. It exports `ansiSegments`, a
 * copy of web/ansi.ts's (client scripts import only each other), so the
 * tests can run the same cases through both.
 *
 * Hooks for tests and scripts: `#live-status[data-state]` is `connecting`, `live`,
 * `reconnecting`, `ended` or `refused`; `#newest[data-count]` is the number
 * of lines waiting behind "jump to newest".
 */
import { FRAME, LiveFrameError, decodeLivePage, pageHead } from './live-page.js';

/** A run of text and its classes. */
export interface AnsiSegment {
  text: string;
  cls: string;
}

// eslint-disable-next-line no-control-regex
const ESCAPE = /(?:\x1b\[|\x9b)([0-?]*)[ -/]*([@-~])?|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]?|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** Splits a line into coloured runs; the same rules as web/ansi.ts. */
export function ansiSegments(line: string): AnsiSegment[] {
  const out: AnsiSegment[] = [];
  let bold = false;
  let fg = -1;
  let bg = -1;
  let last = 0;
  const push = (text: string): void => {
    if (text === '') return;
    const c: string[] = [];
    if (bold) c.push('ansi-bold');
    if (fg >= 0) c.push(`ansi-fg${fg}`);
    if (bg >= 0) c.push(`ansi-bg${bg}`);
    const cls = c.join(' ');
    const prev = out[out.length - 1];
    if (prev && prev.cls === cls) prev.text += text;
    else out.push({ text, cls });
  };
  const sgr = (params: string): void => {
    if (/[<-?]/.test(params)) return;
    const ps = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]!;
      if (p === 0) {
        bold = false;
        fg = -1;
        bg = -1;
      } else if (p === 1) bold = true;
      else if (p === 22) bold = false;
      else if (p >= 30 && p <= 37) fg = p - 30;
      else if (p >= 90 && p <= 97) fg = p - 90 + 8;
      else if (p === 39) fg = -1;
      else if (p >= 40 && p <= 47) bg = p - 40;
      else if (p === 49) bg = -1;
      else if (p === 38 || p === 48) i += ps[i + 1] === 5 ? 2 : ps[i + 1] === 2 ? 4 : 1;
    }
  };
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(line); m !== null; m = ESCAPE.exec(line)) {
    push(line.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] === 'm') sgr(m[1] ?? '');
  }
  push(line.slice(last));
  return out;
}

// The DOM this script uses (see the header for why it is not the DOM lib).
interface El {
  id: string; className: string; textContent: string | null; hidden: boolean; disabled: boolean; value: string; scrollTop: number;
  readonly scrollHeight: number; readonly clientHeight: number; readonly childElementCount: number;
  readonly firstElementChild: El | null; readonly lastElementChild: El | null;
  readonly classList: { add(c: string): void; remove(c: string): void };
  getAttribute(name: string): string | null;
  setAttribute(name: string, value: string): void;
  append(...nodes: El[]): void; prepend(...nodes: El[]): void; before(...nodes: El[]): void; after(...nodes: El[]): void; remove(): void;
  querySelector(sel: string): El | null;
  querySelectorAll(sel: string): ArrayLike<El>;
  scrollIntoView(opts?: { block: string }): void;
  addEventListener(type: string, f: (ev: { preventDefault(): void }) => void, opts?: { passive: boolean }): void;
}
interface Doc { getElementById(id: string): El | null; createElement(tag: string): El }
interface Sock {
  binaryType: string;
  send(data: Uint8Array): void;
  close(): void;
  onopen: (() => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
}
interface Browser {
  document?: Doc;
  location: { hash: string; protocol: string; host: string; pathname: string; search: string };
  history: { replaceState(state: unknown, title: string, url: string): void };
  WebSocket: new (url: string) => Sock;
  localStorage?: { getItem(k: string): string | null; setItem(k: string, v: string): void };
  setTimeout(f: () => void, ms: number): number;
  setInterval(f: () => void, ms: number): number;
  clearInterval(id: number): void;
  addEventListener(type: string, f: () => void): void;
}

/** What the page's data attributes and the page endpoints carry (see web/log.ts). */
interface LogEvent {
  seq: number;
  time: number;
  stream: string;
  task: number;
  text?: string;
  event?: { event?: string; name?: string; code?: number | null; signal?: string | null; result?: string; reason?: string };
  partial?: boolean;
  truncated?: number;
}
interface Match {
  seq: number;
  stream: string;
  text: string;
}

const w = globalThis as unknown as Browser;
if (w.document) start(w.document);

function start(doc: Doc): void {
  const PAGE = 500;
  const MAX_LINES = 5000;
  const DISPLAY_MAX = 64 * 1024;
  const PENDING_MAX = 10_000;
  const NEAR_PX = 40;
  const log = doc.getElementById('log');
  const lines = doc.getElementById('lines');
  if (!log || !lines) return;
  const attr = (k: string): string => log.getAttribute(`data-${k}`) ?? '';
  const num = (k: string): number => Number(attr(k)) || 0;
  const jobId = attr('job');
  const t0 = num('t0');
  const urls = { events: attr('events'), search: attr('search'), raw: attr('raw'), ws: attr('ws') };
  /** Seq range in the DOM (0, 0: none) and the highest seq known to exist. */
  let first = num('first-shown');
  let last = num('last-shown');
  let known = Math.max(num('last'), last);
  let absolute = w.localStorage?.getItem('bw-abs-times') === '1';
  let loading = false;
  let pending: LogEvent[] = [];
  let pendingLost = false;
  let newCount = 0;

  const newest = doc.getElementById('newest');
  const liveStatus = doc.getElementById('live-status');

  // ---- rendering (the same markup as web/log.ts) ----

  function pad(n: number, wdt = 2): string {
    return String(n).padStart(wdt, '0');
  }
  function timeText(t: number): string {
    if (absolute) {
      const d = new Date(t);
      return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    }
    const dt = t - t0;
    const ms = Math.abs(dt);
    const s = Math.floor(ms / 1000);
    const h = Math.floor(s / 3600);
    return `${dt < 0 ? '-' : '+'}${h > 0 ? `${h}:` : ''}${pad(Math.floor(s / 60) % 60, h > 0 ? 2 : 1)}:${pad(s % 60)}.${pad(ms % 1000, 3)}`;
  }
  function recordText(e: LogEvent): string {
    const ev = e.event ?? {};
    if (e.stream === 'task') {
      if (ev.event === 'start') return `task ${e.task} ${JSON.stringify(String(ev.name ?? ''))} started`;
      return `task ${e.task} ${ev.signal ? `killed by signal ${String(ev.signal)}` : `exited ${String(ev.code)}`}`;
    }
    return `job ${String(ev.result ?? 'ended')}${ev.reason ? `: ${String(ev.reason)}` : ''}`;
  }
  function el(tag: string, cls: string, text?: string): El {
    const x = doc.createElement(tag);
    if (cls) x.className = cls;
    if (text !== undefined) x.textContent = text;
    return x;
  }
  function lineEl(e: LogEvent): El {
    const sep = e.stream === 'task' || e.stream === 'job';
    const row = el('div', `ln s-${e.stream.replace(/[^a-z]/g, '')}${sep ? ' sep' : ''}${e.partial ? ' partial' : ''}`);
    row.id = `L${e.seq}`;
    row.setAttribute('data-seq', String(e.seq));
    const a = el('a', 'lno', String(e.seq));
    a.setAttribute('href', `#L${e.seq}`);
    const ts = el('time', 'ts', timeText(e.time));
    ts.setAttribute('data-t', String(e.time));
    const tx = el('span', 'tx');
    if (sep) tx.textContent = recordText(e);
    else for (const s of ansiSegments((e.text ?? '').slice(0, DISPLAY_MAX))) tx.append(s.cls ? el('span', s.cls, s.text) : el('span', '', s.text));
    row.append(a, ts, tx);
    const cut = e.truncated ?? ((e.text ?? '').length > DISPLAY_MAX ? (e.text ?? '').length : undefined);
    if (cut !== undefined) {
      const m = el('span', 'trunc', `line truncated (${cut} bytes), see `);
      const raw = el('a', '', 'the raw log');
      raw.setAttribute('href', urls.raw);
      m.append(raw);
      row.append(m);
    }
    return row;
  }

  function nearBottom(): boolean {
    return log!.scrollHeight - log!.scrollTop - log!.clientHeight < NEAR_PX;
  }
  /** Lines that exist but are neither in the window nor waiting behind the "newest" button. */
  function serverGap(): number {
    return known - last - (pendingLost ? 0 : pending.length);
  }
  /** Whether the window (with the lines waiting behind the button) reaches the newest line. */
  function atEnd(): boolean {
    return serverGap() <= 0;
  }

  /** The notes above and below the window saying how many lines are not loaded. */
  function updateNotes(): void {
    let older = doc.getElementById('older');
    if (first > 1) {
      if (!older) {
        older = el('div', 'logmore');
        older.id = 'older';
        lines!.before(older);
      }
      older.textContent = `${first - 1} earlier lines: scroll up to load them`;
    } else older?.remove();
    let later = doc.getElementById('later');
    const gap = serverGap();
    if (gap > 0) {
      if (!later) {
        later = el('div', 'logmore');
        later.id = 'later';
        lines!.after(later);
      }
      later.textContent = `${gap} later lines: scroll down to load them`;
    } else later?.remove();
    const count = doc.getElementById('event-count');
    if (count) count.textContent = String(known);
    if (newest) {
      newest.hidden = newCount === 0;
      newest.textContent = `jump to newest (${newCount} new)`;
      newest.setAttribute('data-count', String(newCount));
    }
  }

  function append(events: LogEvent[]): void {
    const add: El[] = [];
    for (const e of events) {
      // Contiguous by seq: an old line is already here, and a line past a gap waits for the gap.
      if (last !== 0 && e.seq !== last + 1) continue;
      if (first === 0) first = e.seq;
      add.push(lineEl(e));
      last = e.seq;
    }
    if (add.length === 0) return;
    lines!.append(...add);
    let removed = 0;
    while (lines!.childElementCount > MAX_LINES) {
      const top = lines!.firstElementChild!;
      removed += 1;
      top.remove();
    }
    if (removed > 0) first = Number(lines!.firstElementChild?.getAttribute('data-seq') ?? last);
    known = Math.max(known, last);
  }

  function prepend(events: LogEvent[]): void {
    const older = events.filter((e) => e.seq < first);
    if (older.length === 0) return;
    const before = log!.scrollHeight;
    lines!.prepend(...older.map(lineEl));
    first = older[0]!.seq;
    // Keep what the reader looks at in place.
    log!.scrollTop += log!.scrollHeight - before;
    if (lines!.childElementCount <= MAX_LINES) return;
    while (lines!.childElementCount > MAX_LINES) lines!.lastElementChild!.remove();
    last = Number(lines!.lastElementChild?.getAttribute('data-seq') ?? first);
    // Lines waiting behind the button no longer follow the window: they will be loaded again.
    if (pending.length > 0) {
      pending = [];
      pendingLost = true;
    }
  }

  async function fetchEvents(after: number, limit: number): Promise<{ events: LogEvent[]; next: number; done: boolean }> {
    const res = await fetch(`${urls.events}?after=${after}&limit=${limit}`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return (await res.json()) as { events: LogEvent[]; next: number; done: boolean };
  }

  /** Events `from..to` (inclusive), in as many requests as the server's page size needs. */
  async function fetchRange(from: number, to: number): Promise<LogEvent[]> {
    const out: LogEvent[] = [];
    let after = from - 1;
    while (after < to) {
      const page = await fetchEvents(after, Math.min(PAGE, to - after));
      if (page.events.length === 0) break;
      out.push(...page.events.filter((e) => e.seq <= to));
      after = page.events[page.events.length - 1]!.seq;
    }
    return out;
  }

  /** Bumped when the window is replaced: a page load that started before must not touch the new window. */
  let generation = 0;
  async function guarded(f: (current: () => boolean) => Promise<void>, exclusive = true): Promise<void> {
    if (exclusive && loading) return;
    if (exclusive) loading = true;
    const g = exclusive ? generation : ++generation;
    try {
      await f(() => g === generation);
    } catch (err) {
      setStatus(`could not load lines: ${(err as Error).message}`);
    } finally {
      if (exclusive) loading = false;
      updateNotes();
    }
  }

  const loadOlder = () => guarded(async (current) => {
    if (first <= 1) return;
    const events = await fetchRange(Math.max(1, first - PAGE), first - 1);
    if (current()) prepend(events);
  });
  const loadNewer = () => guarded(async (current) => {
    if (serverGap() <= 0) return;
    const events = await fetchRange(last + 1, last + PAGE);
    if (!current()) return;
    append(events);
    if (last >= known) {
      newCount = 0;
      pendingLost = false;
    }
  });

  /** Replaces the window with the page holding `seq` (or the last page, for seq 0) and shows it; wins over loads in flight. */
  const showAround = (seq: number) => guarded(async (current) => {
    const from = seq === 0 ? Math.max(1, known - PAGE + 1) : Math.max(1, seq - 50);
    const events = await fetchRange(from, from + PAGE - 1);
    if (!current()) return;
    lines!.textContent = '';
    first = 0;
    last = 0;
    pending = [];
    pendingLost = false;
    newCount = 0;
    append(events);
    revealLine(seq);
  }, false);

  function revealLine(seq: number): void {
    for (const x of Array.from(lines!.querySelectorAll('.hit'))) x.classList.remove('hit');
    const target = seq === 0 ? null : doc.getElementById(`L${seq}`);
    if (target) {
      target.classList.add('hit');
      target.scrollIntoView({ block: 'center' });
    } else log!.scrollTop = log!.scrollHeight;
  }

  function jumpTo(seq: number): void {
    if (seq >= first && seq <= last && first > 0) revealLine(seq);
    else void showAround(seq);
  }

  function jumpToNewest(): void {
    if (atEnd() && !pendingLost && last + pending.length >= known) {
      append(pending);
      pending = [];
      newCount = 0;
      updateNotes();
      log!.scrollTop = log!.scrollHeight;
    } else void showAround(0);
  }

  log.addEventListener('scroll', () => {
    if (log.scrollTop < NEAR_PX && first > 1) void loadOlder();
    else if (nearBottom()) {
      if (pending.length > 0 && atEnd()) jumpToNewest();
      else if (serverGap() > 0) void loadNewer();
    }
  }, { passive: true });
  newest?.addEventListener('click', () => jumpToNewest());

  // ---- timestamps ----

  const tsToggle = doc.getElementById('ts-toggle');
  function renderTimes(): void {
    for (const t of Array.from(lines!.querySelectorAll('time.ts'))) t.textContent = timeText(Number(t.getAttribute('data-t')));
    if (tsToggle) tsToggle.textContent = absolute ? 'relative times' : 'absolute times';
  }
  tsToggle?.addEventListener('click', () => {
    absolute = !absolute;
    w.localStorage?.setItem('bw-abs-times', absolute ? '1' : '0');
    renderTimes();
  });
  if (absolute) renderTimes();

  // ---- search ----

  const form = doc.getElementById('log-search');
  const input = form?.querySelector('input[name=q]') ?? null;
  const prevBtn = doc.getElementById('search-prev');
  const nextBtn = doc.getElementById('search-next');
  const statusEl = doc.getElementById('search-status');
  let matches: Match[] = [];
  let current = -1;
  let searchGen = 0;
  function setStatus(text: string): void {
    if (statusEl) statusEl.textContent = text;
  }
  function showMatch(i: number): void {
    if (i < 0 || i >= matches.length) return;
    current = i;
    const m = matches[i]!;
    setStatus(`match ${i + 1} of ${matches.length}${searching ? '+' : ''} (line ${m.seq})`);
    w.history.replaceState(null, '', `#L${m.seq}`);
    jumpTo(m.seq);
    if (prevBtn) prevBtn.disabled = i === 0;
    if (nextBtn) nextBtn.disabled = i >= matches.length - 1;
  }
  let searching = false;
  async function search(q: string): Promise<void> {
    const gen = ++searchGen;
    matches = [];
    current = -1;
    searching = true;
    let after = 0;
    // The server scans a bounded slice per request; keep asking until the end, or enough matches.
    for (let round = 0; round < 1000 && gen === searchGen; round++) {
      setStatus(`searching… (line ${after} of ${known})`);
      const res = await fetch(`${urls.search}?q=${encodeURIComponent(q)}&after=${after}`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (!res.ok) {
        searching = false;
        setStatus(`search failed: HTTP ${res.status}`);
        return;
      }
      const page = (await res.json()) as { matches: Match[]; next: number; done: boolean };
      if (gen !== searchGen) return;
      matches.push(...page.matches);
      if (current === -1 && matches.length > 0) showMatch(0);
      after = page.next;
      if (page.done || matches.length >= 10_000) break;
    }
    searching = false;
    if (matches.length === 0) setStatus(`no match for ${JSON.stringify(q)}`);
    else showMatch(Math.max(current, 0));
  }
  form?.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = input?.value.trim() ?? '';
    if (q) void search(q);
  });
  prevBtn?.addEventListener('click', () => showMatch(current - 1));
  nextBtn?.addEventListener('click', () => showMatch(current + 1));

  // ---- permalinks ----

  function followHash(): void {
    const m = /^#L(\d+)$/.exec(w.location.hash);
    if (m) jumpTo(Number(m[1]));
  }
  w.addEventListener('hashchange', followHash);
  if (/^#L\d+$/.test(w.location.hash)) followHash();
  else if (attr('live') === '1' || first > 1) log.scrollTop = log.scrollHeight;

  // ---- live ----

  let received = known;
  let attempt = 0;
  let ended = attr('live') !== '1';
  function setLive(state: 'live' | 'reconnecting' | 'ended' | 'refused', text: string): void {
    if (!liveStatus) return;
    liveStatus.className = `live ${state === 'live' ? 'on' : 'off'}`;
    liveStatus.setAttribute('data-state', state);
    liveStatus.textContent = text;
  }
  /** A deflate-raw body, inflated by the browser. */
  async function inflate(body: Uint8Array): Promise<Uint8Array> {
    const g = globalThis as unknown as {
      Blob: new (parts: Uint8Array[]) => { stream(): { pipeThrough(t: unknown): unknown } };
      DecompressionStream: new (format: string) => unknown;
      Response: new (body: unknown) => { arrayBuffer(): Promise<ArrayBuffer> };
    };
    const stream = new g.Blob([body]).stream().pipeThrough(new g.DecompressionStream('deflate-raw'));
    return new Uint8Array(await new g.Response(stream).arrayBuffer());
  }
  function onLive(events: LogEvent[]): void {
    const fresh = events.filter((e) => e.seq > received);
    if (fresh.length === 0) return;
    received = fresh[fresh.length - 1]!.seq;
    const wasEnd = atEnd();
    known = Math.max(known, received);
    if (wasEnd && pending.length === 0 && nearBottom()) {
      append(fresh);
      log!.scrollTop = log!.scrollHeight;
    } else {
      newCount += fresh.length;
      if (wasEnd && !pendingLost) {
        pending.push(...fresh);
        // Past this many, the lines are loaded again from the server when wanted.
        if (pending.length > PENDING_MAX) {
          pending = [];
          pendingLost = true;
        }
      }
    }
    updateNotes();
  }
  function connect(): void {
    if (ended) return;
    const ws = new w.WebSocket(`${w.location.protocol === 'https:' ? 'wss:' : 'ws:'}//${w.location.host}${urls.ws}`);
    ws.binaryType = 'arraybuffer';
    let ping = 0;
    ws.onopen = () => {
      attempt = 0;
      setLive('live', 'live');
      ws.send(new TextEncoder().encode(JSON.stringify({ job: jobId, after: received })));
      ping = w.setInterval(() => ws.send(new TextEncoder().encode('{"ping":1}')), 25_000);
    };
    // Frames are handled one after another: a compressed page is inflated asynchronously.
    let chain = Promise.resolve();
    const handle = async (frame: Uint8Array): Promise<void> => {
      if (frame[0] !== FRAME.JSON) {
        const { kind, body } = pageHead(frame);
        onLive(decodeLivePage(kind === FRAME.DEFLATED ? await inflate(body) : body, received) as LogEvent[]);
        return;
      }
      const msg = JSON.parse(new TextDecoder().decode(frame)) as { done?: boolean; state?: string };
      if (msg.done) {
        ended = true;
        setLive('ended', `ended (${msg.state ?? ''})`);
        // The state, times and outputs above were rendered while the job ran: offer the final page.
        if (liveStatus) {
          const again = el('a', '', 'reload for the outputs');
          again.setAttribute('href', `${w.location.pathname}${w.location.search}`);
          liveStatus.append(el('span', '', ' · '), again);
        }
      }
    };
    ws.onmessage = (ev) => {
      const frame = new Uint8Array(ev.data as ArrayBuffer);
      chain = chain.then(() => handle(frame)).catch((err: Error) => {
        // A frame this script cannot read would leave a gap: stop following and say so.
        ended = true;
        setLive('refused', `live log stopped: ${err instanceof LiveFrameError ? err.message : String(err)}; reload the page`);
        ws.close();
      });
    };
    ws.onclose = (ev) => {
      w.clearInterval(ping);
      if (ended) return;
      // 44xx: the server refused (not signed in, no such job, bad message): retrying cannot help.
      if (ev.code >= 4400 && ev.code < 4500) {
        ended = true;
        setLive('refused', `not following (code ${ev.code}); reload the page`);
        return;
      }
      const delay = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt = Math.min(attempt + 1, 10);
      setLive('reconnecting', `reconnecting in ${Math.round(delay / 1000)} s`);
      w.setTimeout(connect, delay);
    };
  }
  connect();
  updateNotes();
}
