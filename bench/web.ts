/**
 * The `web` scenario: the job page in a real Chromium. A coordinator in its
 * own process (temp store) and the local factory (in this process; a fresh
 * agent process per job), on loopback.
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
 *
 * Live viewers of a busy job are the `fanout` scenario (fanout.ts).
 */
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import type { LocalFactory } from '../factory/local/index.js';
import { launchBrowser, SESSION_COOKIE, sessionCookie } from '../test/fixtures/browser.js';
import type { BenchContext } from './ceilings.js';
import { CoordinatorChild, startBenchFactory } from './fixture.js';
import type { CoordinatorInfo } from './fixture.js';
import { phase } from './proc.js';
import { addBottlenecks, figure, newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import type { Api } from './util.js';
import { fmt, jobCompleted, median, nowMs, sleep, submitJob, tempDir, withTimeout } from './util.js';

const S = 'web';


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
  const reps = ctx.quick ? 1 : 3;
  ctx.log(`web: generating a ${fmt(bigLines)}-line log and a ${smallLines}-line one`);
  const t0 = nowMs();
  const big = await submitJob(api, 'local', `seq 1 ${bigLines}`, 'web-big-log');
  const small = await submitJob(api, 'local', `seq 1 ${smallLines}`, 'web-small-log');
  const bigJob = await jobCompleted(api, big, 300_000);
  await jobCompleted(api, small, 60_000);
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
    // The big job's first view also makes the coordinator read its task timeline (a pass over the whole log, once per job).
    const firstView = await loadJobPage(browser, info.url, cookie, big, { text: String(bigLines) });
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
      figure(S, '1M-line log: first view ever, nav → last line', firstView.lastLineMs, 'ms', 'lower', {
        ceiling: floor('lastLineMs', 'ms, 100-line log'),
        note: `the coordinator reads the job's task timeline on its first view (the whole log, in slices that leave other requests served); later views take the cached timeline (HTML responseEnd ${fmt(firstView.htmlMs, 0)} ms)`,
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

/** Runs the web scenario: the 1M-line job page in Chromium. */
export async function runWeb(ctx: BenchContext): Promise<ScenarioResult> {
  const r = newResult(S);
  const dir = tempDir('bw-bench-web-');
  const coord = new CoordinatorChild(join(dir.path, 'store'));
  let factory: LocalFactory | undefined;
  try {
    const info = await coord.start();
    factory = await startBenchFactory(coord, info, dir.path);
    const cookie = await withTimeout(sessionCookie(info.url, coord.adminToken), 10_000, 'sign-in');
    try {
      await bigLogPage(ctx, r, coord.api, info, cookie, coord);
    } catch (err) {
      r.errors.push(`job page: ${(err as Error).message}`);
      ctx.log(`web job page: ${(err as Error).stack ?? String(err)}`);
    }
  } finally {
    await factory?.close();
    await coord.stop();
    dir.remove();
  }
  addBottlenecks(r);
  return r;
}

