/**
 * The `web` scenario: the job page and its live log, in a real Chromium and
 * over the real WebSocket. A coordinator in its own process (temp store) and
 * the local factory (in this process; a fresh agent process per job), on
 * loopback.
 *
 * 1. A job page with a 1,000,000-line log (the job runs `seq 1 1000000`).
 *    In headless Chromium (the tests' launcher, test/fixtures/browser.ts):
 *    navigation start → the log's last line (`1000000`) in the DOM, checked
 *    each animation frame; the paint timing `first-contentful-paint`; the
 *    page's JS heap after a forced GC (CDP `Runtime.getHeapUsage`) and its
 *    DOM node count (CDP `Performance.getMetrics`); and navigation → the
 *    middle line through its permalink (`#L<seq>`, fetched by the client
 *    script). The floor is the same page for a 100-line log, measured in the
 *    same run, alternating loads, each in a fresh browser context (no cache).
 * 2. Live viewers of one busy job: the same job (a burst of 100-byte lines:
 *    300,000; quick 200,000) run alternately with no viewer and with 100
 *    (quick 20) WebSocket clients on /api/v1/live, signed in with a session
 *    cookie, subscribed before the job starts (the global hold keeps it
 *    queued meanwhile). Ingestion is timed from the coordinator committing
 *    the first output line to committing the last, with long polls on the
 *    events API (the same in both rounds). The viewers run in a child
 *    process of their own (this file, forked, at nice 19), so their CPU time
 *    is apart from the coordinator's; they behave as the page's script does
 *    (pings; reconnect with `after` after a lost connection), and each checks
 *    it received every line once, in order, up to the last seq and `done`.
 */
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import type { Browser } from 'playwright-core';
import { startLocalFactory } from '../factory/local/index.js';
import type { LocalFactory } from '../factory/local/index.js';
import { launchBrowser, SESSION_COOKIE, sessionCookie } from '../test/fixtures/browser.js';
import type { BenchContext } from './ceilings.js';
import { CoordinatorChild } from './fixture.js';
import type { CoordinatorInfo } from './fixture.js';
import { IpcChild, phase } from './proc.js';
import type { IpcMessage } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api } from './util.js';
import { fmt, median, nowMs, percentile, sleep, submitJob, tempDir, until, withTimeout } from './util.js';

const S = 'web';
/** The issue's ceiling on ingestion slowdown with 100 viewers. */
const MAX_SLOWDOWN = 0.1;
/** Bytes of each line of the busy job (like the ingest scenario's). */
const LINE_BYTES = 100;
/** How often a viewer pings, and how soon it first reconnects, as web/client/job.ts does. */
const PING_MS = 25_000;
const RECONNECT_MS = 500;
/** How long, from subscribing, the viewers of one run may take to get every line and `done`. */
const VIEWERS_MAX_WAIT_MS = 240_000;

/** Waits (bounded) for a job to end; throws unless it completed. */
async function completed(api: Api, id: string, timeoutMs: number): Promise<any> {
  const j = await until(async () => {
    const b = await api.ok('GET', `/api/v1/jobs/${id}`);
    return ['completed', 'failed', 'cancelled'].includes(b.state) ? b : undefined;
  }, timeoutMs, 100);
  if (!j) throw new Error(`job ${id} did not end within ${timeoutMs / 1000} s`);
  if (j.state !== 'completed') throw new Error(`job ${id} ended ${j.state}: ${j.reason ?? ''}`);
  return j;
}

/** A bash script printing `n` lines of exactly {@link LINE_BYTES} bytes (newline included), numbered from 1. */
function burstScript(n: number): string {
  // mawk: an 8-digit number, a space, 90 x's, the newline.
  return `awk 'BEGIN{p=sprintf("%90s",""); gsub(/ /,"x",p); for(i=1;i<=${n};i++) printf "%08d %s\\n", i, p}'`;
}

// ---------------------------------------------------------------------------
// 1. The job page with a 1,000,000-line log.

/** What one page load measured. */
interface PageLoad {
  /** ms from navigation start until the log's last line was in the DOM (checked each frame). */
  lastLineMs: number;
  /** `first-contentful-paint`, ms from navigation start. */
  fcpMs: number;
  /** `responseEnd` of the HTML, ms from navigation start. */
  htmlMs: number;
  /** Bytes of the HTML document as sent (encodedBodySize). */
  htmlBytes: number;
  /** JS heap in use after a forced GC (CDP Runtime.getHeapUsage). */
  heapBytes: number;
  /** DOM nodes (CDP Performance.getMetrics `Nodes`). */
  domNodes: number;
  /** `.ln` elements (rendered log lines). */
  lines: number;
}

/**
 * Opens `/job/ID` in a fresh context and measures it, timing until `want`
 * is in the DOM: a line with that text among the last 20 `.ln` lines (the
 * log's last output line), or, with `seq`, the permalinked line `#L<seq>`
 * (the page is opened at `#L<seq>`, which the client script loads).
 */
async function loadJobPage(browser: Browser, baseUrl: string, cookie: string, id: string, want: { text: string } | { seq: number }): Promise<PageLoad> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    await context.addCookies([{ name: SESSION_COOKIE, value: cookie, url: baseUrl, httpOnly: true, sameSite: 'Lax' }]);
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.goto(`${baseUrl}/job/${id}${'seq' in want ? `#L${want.seq}` : ''}`, { waitUntil: 'commit', timeout: 120_000 });
    const handle = await page.waitForFunction((w: { text: string } | { seq: number }) => {
      const g = globalThis as any;
      if ('seq' in w) return g.document.getElementById(`L${w.seq}`) ? g.performance.now() : 0;
      const lines = g.document.querySelectorAll('.ln');
      for (let i = lines.length - 1; i >= 0 && i >= lines.length - 20; i--) {
        const tx = lines[i].querySelector('.tx');
        if (tx && tx.textContent === w.text) return g.performance.now();
      }
      return 0;
    }, want, { polling: 'raf', timeout: 120_000 });
    const lastLineMs = (await handle.jsonValue()) as number;
    // FCP is reported after the paint; give it a moment.
    const timing = await page.waitForFunction(() => {
      const p = (globalThis as any).performance;
      const fcp = p.getEntriesByName('first-contentful-paint')[0];
      const nav = p.getEntriesByType('navigation')[0];
      return fcp && nav ? { fcp: fcp.startTime as number, html: nav.responseEnd as number, bytes: nav.encodedBodySize as number } : null;
    }, undefined, { polling: 50, timeout: 30_000 });
    const t = (await timing.jsonValue()) as { fcp: number; html: number; bytes: number };
    // Let the client script settle (live connection, timers), then GC and measure.
    await sleep(500);
    await cdp.send('HeapProfiler.enable');
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = await cdp.send('Runtime.getHeapUsage');
    const metrics = await cdp.send('Performance.getMetrics');
    const nodes = metrics.metrics.find((m) => m.name === 'Nodes')?.value ?? NaN;
    const lines = await page.locator('.ln').count();
    return { lastLineMs, fcpMs: t.fcp, htmlMs: t.html, htmlBytes: t.bytes, heapBytes: heap.usedSize, domNodes: nodes, lines };
  } finally {
    await context.close();
  }
}

async function bigLogPage(ctx: BenchContext, r: ScenarioResult, api: Api, info: CoordinatorInfo, cookie: string, coord: CoordinatorChild): Promise<void> {
  const bigLines = 1_000_000;
  const smallLines = 100;
  const reps = ctx.quick ? 2 : 3;
  ctx.log(`web: generating a ${fmt(bigLines)}-line log and a ${smallLines}-line one`);
  const t0 = nowMs();
  const big = await submitJob(api, 'local', `seq 1 ${bigLines}`, 'web-big-log');
  const small = await submitJob(api, 'local', `seq 1 ${smallLines}`, 'web-small-log');
  const bigJob = await completed(api, big, 300_000);
  await completed(api, small, 60_000);
  r.notes.push(`1,000,000-line job: ${fmt(bigJob.lastEvent)} events stored in ${fmt((nowMs() - t0) / 1000, 1)} s (seq 1 ${bigLines} through the local factory)`);

  let browser: Browser | undefined;
  try {
    browser = await launchBrowser();
    const loads: { big: PageLoad[]; small: PageLoad[]; bigMid: PageLoad[]; smallMid: PageLoad[] } = { big: [], small: [], bigMid: [], smallMid: [] };
    // Permalinks to the middle line; output lines start after the "job assigned" and task start records.
    const firstOut = ((await api.ok('GET', `/api/v1/jobs/${big}/events?after=0&limit=10`)).events as { seq: number; stream: string }[]).find((e) => e.stream === 'stdout')!.seq;
    const mid = (n: number) => ({ seq: firstOut + n / 2 - 1 });
    // One untimed load of each first (the coordinator's and Chromium's caches and JIT), then alternate.
    await loadJobPage(browser, info.url, cookie, small, { text: String(smallLines) });
    await loadJobPage(browser, info.url, cookie, big, { text: String(bigLines) });
    const end = phase('job page, 1M-line log', [{ role: 'coordinator', pid: coord.pid }]);
    for (let i = 0; i < reps; i++) {
      loads.small.push(await loadJobPage(browser, info.url, cookie, small, { text: String(smallLines) }));
      loads.big.push(await loadJobPage(browser, info.url, cookie, big, { text: String(bigLines) }));
      loads.smallMid.push(await loadJobPage(browser, info.url, cookie, small, mid(smallLines)));
      loads.bigMid.push(await loadJobPage(browser, info.url, cookie, big, mid(bigLines)));
    }
    r.processes.push(...end());
    const med = (xs: PageLoad[], k: keyof PageLoad) => median(xs.map((x) => x[k]));
    const floor = (k: keyof PageLoad, what: string) => ({ value: med(loads.small, k), what });
    r.figures.push(
      figure(S, '1M-line log: nav → last line in DOM', med(loads.big, 'lastLineMs'), 'ms', 'lower', {
        ceiling: floor('lastLineMs', 'ms, same page with a 100-line log'),
        note: `median of ${reps} cold loads (${loads.big.map((x) => fmt(x.lastLineMs, 0)).join(', ')} ms); HTML responseEnd ${fmt(med(loads.big, 'htmlMs'), 0)} ms vs ${fmt(med(loads.small, 'htmlMs'), 0)} ms`,
      }),
      figure(S, '1M-line log: nav → permalinked middle line', med(loads.bigMid, 'lastLineMs'), 'ms', 'lower', {
        ceiling: { value: med(loads.smallMid, 'lastLineMs'), what: 'ms, middle line of the 100-line log' },
        note: `/job/ID#L${mid(bigLines).seq}: the server renders the last page, the client script fetches the page around the line; JS heap ${fmt(med(loads.bigMid, 'heapBytes') / 2 ** 20, 2)} MiB`,
      }),
      figure(S, '1M-line log: first-contentful-paint', med(loads.big, 'fcpMs'), 'ms', 'lower', { ceiling: floor('fcpMs', 'ms, 100-line log') }),
      figure(S, '1M-line log: page JS heap (after GC)', med(loads.big, 'heapBytes') / 2 ** 20, 'MiB', 'lower', {
        ceiling: { value: med(loads.small, 'heapBytes') / 2 ** 20, what: 'MiB, 100-line log' },
      }),
      figure(S, '1M-line log: DOM nodes', med(loads.big, 'domNodes'), 'nodes', 'lower', {
        ceiling: floor('domNodes', 'nodes, 100-line log'),
        note: `${fmt(med(loads.big, 'lines'), 0)} log lines rendered (vs ${fmt(med(loads.small, 'lines'), 0)}); HTML ${fmt(med(loads.big, 'htmlBytes') / 1024, 0)} KiB vs ${fmt(med(loads.small, 'htmlBytes') / 1024, 0)} KiB`,
      }),
    );
  } finally {
    await browser?.close();
  }
}

// ---------------------------------------------------------------------------
// 2. Live viewers of a busy job.

/** What one viewer saw of a job. */
interface ViewerResult {
  /** Output lines received (seqs in [firstSeq, lastSeq]). */
  lines: number;
  /** The highest seq received. */
  lastSeq: number;
  /** Events whose seq was not the previous one + 1 (a gap, a repeat, or out of order). */
  disorder: number;
  /** When seq `lastSeq` of the lines arrived (nowMs), or null. */
  lastLineAt: number | null;
  /** Whether the server said `done` and closed with 1000. */
  done: boolean;
  /** Connections lost without `done` (each followed by a reconnect), with their close codes. */
  reconnects: number;
  closeCodes: number[];
  /** Why it stopped early, if it did. */
  error: string | null;
}

/**
 * One live viewer, as web/client/job.ts behaves: a WebSocket on
 * /api/v1/live with the session cookie and the Origin a page of this site
 * sends, following `job` from its first event (coordinator/pages/live.ts
 * has the protocol: binary frames of JSON; `{job, after}` once; `{events,
 * next}` pages; `{done}` then close 1000), pinging every 25 s, and after a
 * connection lost without `done` reconnecting with `after` = the last seq
 * received (the page's backoff starts at 0.5 s). Resolves `ready` once first
 * subscribed and `done` when it got `done`, was refused (44xx), or gave up.
 */
function viewer(wsUrl: string, cookie: string, job: string, firstSeq: number, lastSeq: number): { ready: Promise<void>; done: Promise<ViewerResult>; giveUp(why: string): void; close(): void } {
  const res: ViewerResult = { lines: 0, lastSeq: 0, disorder: 0, lastLineAt: null, done: false, reconnects: 0, closeCodes: [], error: null };
  const origin = new URL(wsUrl.replace(/^ws/, 'http')).origin;
  let ws: WebSocket | null = null;
  let stopped = false;
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res1, rej1) => ((readyResolve = res1), (readyReject = rej1)));
  let finish!: () => void;
  const done = new Promise<ViewerResult>((resolve) => (finish = () => resolve(res)));
  const connect = () => {
    const sock = new WebSocket(wsUrl, { headers: { cookie: `${SESSION_COOKIE}=${cookie}`, origin }, perMessageDeflate: false });
    ws = sock;
    let ping: NodeJS.Timeout | undefined;
    sock.on('open', () => {
      sock.send(Buffer.from(JSON.stringify({ job, after: res.lastSeq })));
      // As the page does: the server closes a connection it has not heard from in 75 s.
      ping = setInterval(() => sock.send(Buffer.from('{"ping":1}')), PING_MS);
      readyResolve();
    });
    sock.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as { events?: { seq: number }[]; done?: boolean };
      if (m.done) res.done = true;
      for (const e of m.events ?? []) {
        if (e.seq !== res.lastSeq + 1) res.disorder++;
        if (e.seq > res.lastSeq) res.lastSeq = e.seq;
        if (e.seq >= firstSeq && e.seq <= lastSeq) res.lines++;
        if (e.seq === lastSeq) res.lastLineAt = nowMs();
      }
    });
    sock.on('error', (e) => readyReject(e));
    sock.on('close', (code, reason) => {
      clearInterval(ping);
      if (res.done || stopped) return finish();
      if (code >= 4400 && code < 4500) {
        res.error ??= `refused: ${code} ${reason.toString()}`;
        return finish();
      }
      res.reconnects++;
      res.closeCodes.push(code);
      setTimeout(() => {
        if (stopped) finish();
        else connect();
      }, RECONNECT_MS);
    });
  };
  connect();
  const giveUp = (why: string) => {
    stopped = true;
    res.error ??= why;
    ws?.terminate();
  };
  return { ready, done, giveUp, close: () => giveUp('closed') };
}

/** The viewers' child process: `{op:'watch', ...}` → `ready` → `done`. Runs when this file is the main module. */
async function viewersChild(): Promise<void> {
  let open: ReturnType<typeof viewer>[] = [];
  process.on('message', (m: IpcMessage) => {
    void (async () => {
      try {
        if (m.op === 'exit') {
          for (const v of open) v.close();
          process.exit(0);
        }
        if (m.op !== 'watch') return;
        const { url, cookie, job, n, firstSeq, lastSeq, maxWaitMs } = m as unknown as { url: string; cookie: string; job: string; n: number; firstSeq: number; lastSeq: number; maxWaitMs: number };
        open = Array.from({ length: n }, () => viewer(url, cookie, job, firstSeq, lastSeq));
        await Promise.all(open.map((v) => v.ready));
        process.send!({ op: 'ready' });
        // Bounded: a viewer the server stopped feeding would otherwise wait forever (it pings).
        const timer = setTimeout(() => {
          for (const v of open) v.giveUp(`no done after ${maxWaitMs / 1000} s`);
        }, maxWaitMs);
        const results = await Promise.all(open.map((v) => v.done));
        clearTimeout(timer);
        open = [];
        process.send!({ op: 'done', results });
      } catch (err) {
        process.send!({ op: 'error', message: (err as Error).stack ?? String(err) });
      }
    })();
  });
}

/** One timed run of the busy job; with `viewers`, they watch it. */
async function busyRun(
  api: Api, coord: CoordinatorChild, total: number, layout: { first: number }, viewers: IpcChild | null, n: number, wsUrl: string, cookie: string,
): Promise<{ ms: number; coordCpuS: number; startAt: number; endAt: number; job: string; results: ViewerResult[]; lastEvent: number }> {
  await api.ok('POST', '/api/v1/control/hold');
  const job = await submitJob(api, 'local', burstScript(total), 'web-busy');
  const first = layout.first;
  const last = first + total - 1;
  let results: ViewerResult[] = [];
  let done: Promise<IpcMessage> | undefined;
  if (viewers) {
    viewers.send({ op: 'watch', url: wsUrl, cookie, job, n, firstSeq: first, lastSeq: last, maxWaitMs: VIEWERS_MAX_WAIT_MS });
    await viewers.expect('ready', 60_000, `${n} viewers to subscribe`);
    done = viewers.expect('done', VIEWERS_MAX_WAIT_MS + 30_000, `${n} viewers to receive every line`);
  }
  // Long polls: each answers as soon as an event after `after` is committed.
  const committed = async (after: number): Promise<number> => {
    for (let i = 0; i < 100; i++) {
      const b = await api.ok('GET', `/api/v1/jobs/${job}/events?after=${after}&limit=1&wait=30`);
      if (b.events.length > 0) return nowMs();
      if (b.done) throw new Error(`job ${job} ended before event ${after + 1}`);
    }
    throw new Error(`event ${after + 1} of job ${job} never came`);
  };
  const firstAt = committed(first - 1);
  await api.ok('POST', '/api/v1/control/resume');
  const startAt = await firstAt;
  const cpu0 = coord.sample();
  const endAt = await committed(last - 1);
  const cpu1 = coord.sample();
  await completed(api, job, 120_000);
  if (done) results = (await done).results as ViewerResult[];
  // Read after the viewers' `done`: the job's closing control line commits just after its state turns final.
  const lastEvent = (await api.ok('GET', `/api/v1/jobs/${job}`)).lastEvent as number;
  return { ms: endAt - startAt, coordCpuS: cpu0 && cpu1 ? cpu1.cpuS - cpu0.cpuS : NaN, startAt, endAt, job, results, lastEvent };
}

async function liveViewers(ctx: BenchContext, r: ScenarioResult, api: Api, info: CoordinatorInfo, cookie: string, coord: CoordinatorChild): Promise<void> {
  const total = ctx.quick ? 200_000 : 300_000;
  const n = ctx.quick ? 20 : 100;
  const rounds = ctx.quick ? 2 : 3;
  const wsUrl = `${info.url.replace(/^http/, 'ws')}/api/v1/live`;
  // Untimed warm-up (JIT, LMDB growth, the agent's first start), which also shows where output lines start.
  const warm = await submitJob(api, 'local', burstScript(1000), 'web-busy-warm');
  await completed(api, warm, 60_000);
  const ev = await api.ok('GET', `/api/v1/jobs/${warm}/events?after=0&limit=50`);
  const firstOut = (ev.events as { seq: number; stream: string }[]).find((e) => e.stream === 'stdout');
  if (!firstOut) throw new Error('the warm-up job printed no stdout line');
  const layout = { first: firstOut.seq };
  ctx.log(`web: busy job of ${fmt(total)} lines of ${LINE_BYTES} B, ${rounds} rounds without and with ${n} live viewers`);

  const viewers = new IpcChild('./web.js');
  // Real viewers are browsers on other machines. Here their WebSocket clients share this host's
  // cores with the coordinator, so they run at the lowest priority: they take what the
  // coordinator leaves, rather than slowing it down with work that is not the coordinator's.
  try {
    if (viewers.pid) setPriority(viewers.pid, 19);
  } catch (err) {
    r.notes.push(`could not lower the viewers' priority: ${(err as Error).message}`);
  }
  try {
    const without: number[] = [];
    const withV: number[] = [];
    const lags: number[] = [];
    const cpuWithout: number[] = [];
    const cpuWith: number[] = [];
    const codes = new Map<number, number>();
    let reconnects = 0;
    let complete = 0;
    const problems: string[] = [];
    for (let i = 0; i < rounds; i++) {
      for (const watched of [false, true]) {
        const end = phase(watched ? `busy job, ${n} viewers` : 'busy job, no viewer', [
          { role: 'coordinator', pid: coord.pid }, { role: 'viewers', pid: viewers.pid }, { role: 'bench (+factory, agent)', pid: process.pid },
        ]);
        const run = await busyRun(api, coord, total, layout, watched ? viewers : null, n, wsUrl, cookie);
        const usage = end();
        if (i === rounds - 1) r.processes.push(...usage);
        (watched ? withV : without).push(total / (run.ms / 1000));
        (watched ? cpuWith : cpuWithout).push(run.coordCpuS);
        if (!watched) continue;
        for (const v of run.results) {
          if (v.lines === total && v.lastSeq === run.lastEvent && v.disorder === 0 && v.done && !v.error) complete++;
          else if (problems.length < 5) problems.push(`round ${i + 1}: ${v.lines} lines, last seq ${v.lastSeq} of ${run.lastEvent}, ${v.disorder} out of order${v.done ? '' : ', no done'}${v.error ? `, ${v.error}` : ''}`);
          if (v.lastLineAt !== null) lags.push(v.lastLineAt - run.endAt);
          reconnects += v.reconnects;
          for (const c of v.closeCodes) codes.set(c, (codes.get(c) ?? 0) + 1);
        }
      }
    }
    const base = median(without);
    const watchedRate = median(withV);
    const slowdown = 1 - watchedRate / base;
    r.figures.push(
      figure(S, `ingestion, no viewer`, base, 'lines/s', 'higher', { note: `median of ${rounds}: ${without.map((x) => fmt(x)).join(', ')} lines/s of ${LINE_BYTES} B` }),
      figure(S, `ingestion with ${n} live viewers`, watchedRate, 'lines/s', 'higher', {
        ceiling: { value: base, what: 'lines/s with no viewer (same job)' },
        note: `median of ${rounds}: ${withV.map((x) => fmt(x)).join(', ')} lines/s`,
      }),
      figure(S, `slowdown with ${n} viewers`, slowdown * 100, '%', 'lower', { target: { op: '<', value: MAX_SLOWDOWN * 100 } }),
      figure(S, `coordinator CPU per 100k lines, ${n} viewers`, (median(cpuWith) / total) * 1e5, 'CPU s', 'lower', {
        ceiling: { value: (median(cpuWithout) / total) * 1e5, what: 'CPU s with no viewer' },
        note: `from first to last line committed; ${fmt(((median(cpuWith) - median(cpuWithout)) / total / n) * 1e9, 0)} ns of coordinator CPU per line per viewer`,
      }),
      figure(S, 'viewers that received every line', complete, 'viewers', 'higher', {
        ceiling: { value: n * rounds, what: `viewers (${n} × ${rounds} rounds)` }, target: { op: '>=', value: n * rounds },
        note: `${problems.length ? problems.join('; ') : `each got all ${fmt(total)} lines, in order, up to the last seq, and done`}; `
          + `${reconnects === 0 ? 'no connection lost' : `${reconnects} connection(s) lost and resumed (close codes ${[...codes].map(([c, k]) => `${c} ×${k}`).join(', ')})`}`,
      }),
      figure(S, 'last line: committed → at the viewer', percentile(lags, 0.5), 'ms p50', 'lower', { note: `p99 ${fmt(percentile(lags, 0.99), 1)} ms, max ${fmt(Math.max(...lags), 1)} ms` }),
    );
  } finally {
    await viewers.stop();
  }
}

/** Runs the web scenario: the 1M-line job page in Chromium, then live viewers of a busy job. */
export async function runWeb(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult(S);
  const dir = tempDir('bw-bench-web-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  let factory: LocalFactory | undefined;
  try {
    const info = await coord.start();
    const flog: string[] = [];
    factory = startLocalFactory({
      url: info.connectUrl, coordinatorKey: new Uint8Array(Buffer.from(info.publicKey, 'base64')), token: coord.factoryToken, slots: 2,
      workRoot: dir.path, killGraceMs: 1000, log: (l) => flog.length < 200 && flog.push(l),
    });
    if (!(await until(() => flog.some((l) => l.startsWith('connected as factory')), 20_000))) throw new Error(`the local factory did not connect: ${flog.slice(-3).join(' | ')}`);
    const cookie = await withTimeout(sessionCookie(info.url, coord.adminToken), 10_000, 'sign-in');
    for (const [name, part] of [['job page', bigLogPage], ['live viewers', liveViewers]] as const) {
      try {
        await part(ctx, r, coord.api, info, cookie, coord);
      } catch (err) {
        r.errors.push(`${name}: ${(err as Error).message}`);
        ctx.log(`web ${name}: ${(err as Error).stack ?? String(err)}`);
      }
    }
  } finally {
    await factory?.close();
    await coord.stop();
    dir.remove();
  }
  addBottlenecks(r);
  return r;
}

// Forked by the scenario (IpcChild('./web.js')) as the viewers' process.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void viewersChild();
