/**
 * The web pages in a real browser: Debian's Chromium through playwright-core,
 * against a real coordinator with a local factory running real bash jobs.
 *
 * Every test watches its page for Content-Security-Policy violations and
 * uncaught script errors and fails on any. Screenshots of the main pages
 * (status, jobs, job, workers, factories, targets, compare, hash) are written
 * on every run to test-artifacts/screenshots/ (docs/web.md, "Screenshots").
 *
 * Selectors are the page authors' markup (web/*.ts, web/client/*.ts), kept
 * in {@link SEL} so a markup change is one edit here.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { launchBrowser, screenshot, signIn, startDropProxy, watchPage } from './fixtures/browser.js';
import type { DropProxy, PageProblems, TestBrowser } from './fixtures/browser.js';
import { startRig, submit, until, waitJob } from './helpers.js';
import type { Rig } from './helpers.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The page authors' hooks. */
const SEL = {
  /** The search-by-hash box in every page's header (web/layout.ts). */
  hashBox: 'header form.search input[name="sha256"]',
  /** The log's scrolling container on the job page (web/job.ts). */
  logBox: '#log',
  /** One rendered log line: `.ln` with `id="L<seq>"` and `data-seq` (web/log.ts). */
  logLine: '#log .ln[data-seq]',
  /** The "jump to newest" button shown while the reader is scrolled up, `data-count` new lines behind it (web/job.ts). */
  jumpNewest: '#newest',
  /** The live connection's state in `data-state`: connecting, live, reconnecting, ended, refused (web/client/job.ts). */
  liveStatus: '#live-status',
  /** The log search box, and a line that matches (web/job.ts, web/log.ts). */
  logSearch: '#log-search input[type=search]',
  searchHit: '#log .ln.hit',
  /** Output download links: through the page's session, with a `download` attribute (web/job.ts). */
  outputLink: 'a[download][href*="/outputs/"]',
} as const;

/**
 * A job that prints `n` numbered lines over about n × 50 ms, after an
 * ANSI-coloured line and before a unique needle; halfway, a burst of 400
 * lines at once (a page big enough to be sent compressed).
 */
function liveScript(n: number): string {
  return [
    String.raw`printf '\033[31mred error\033[0m then \033[1;32mbold green\033[0m and \033[44mblue background\033[0m\n'`,
    `for i in $(seq 1 ${n}); do printf 'line %03d of ${n}\\n' "$i"; [ "$i" = ${Math.floor(n / 2)} ] && seq -f 'burst %04g' 1 400; sleep 0.05; done`,
    'echo needle-7f3a9 is here',
  ].join('\n');
}

/** Log lines written by whoever controls the build, aimed at the page. */
const HOSTILE_SCRIPT = [
  String.raw`printf '%s\n' '<script>window.__pwned=1</script>'`,
  String.raw`printf '%s\n' '"><img src=x onerror="window.__pwned=1">'`,
  String.raw`printf '%s\n' "'><svg onload='window.__pwned=1'>"`,
  String.raw`printf '\033]8;;javascript:window.__pwned=1\033\\click\033]8;;\033\\\n'`,
  String.raw`printf '\033]8;;javascript:window.__pwned=1\007bel-form\033]8;;\007\n'`,
  String.raw`printf 'bad utf8: \377\376 \303\050 \355\240\200 end\n'`,
  `head -c 10485760 /dev/zero | tr '\\0' A; echo`,
  'echo after-the-long-line',
  'mkdir -p out',
  `printf x > 'out/<img src=x onerror=window.__pwned=1>.txt'`,
].join('\n');

/** One rendered log line: its seq, its text, and the classes used inside it. */
interface Shown {
  seq: number;
  text: string;
  classes: string[];
}

/** Every log line in the DOM right now, in DOM order. */
async function renderedLines(page: Page): Promise<Shown[]> {
  return page.locator(SEL.logLine).evaluateAll((els) =>
    els.map((e) => {
      const el = e as unknown as { dataset: Record<string, string>; querySelector(s: string): { textContent: string | null } | null; querySelectorAll(s: string): Iterable<{ classList: Iterable<string> }> };
      const classes = new Set<string>();
      for (const c of el.querySelectorAll('[class]')) for (const k of c.classList) classes.add(k);
      return { seq: Number(el.dataset.seq), text: el.querySelector('.tx')?.textContent ?? '', classes: [...classes] };
    }));
}

/** The numbers of the numbered lines in `lines`, in order. */
function numbersIn(lines: readonly { text: string }[], of: number): number[] {
  const re = new RegExp(`^line (\\d{3}) of ${of}$`);
  return lines.flatMap(({ text }) => {
    const m = re.exec(text);
    return m ? [Number(m[1])] : [];
  });
}

type Box = { scrollTop: number; clientHeight: number; scrollHeight: number };

/** Whether the log is scrolled to its end (within 2 px). */
const atBottom = (page: Page) => page.locator(SEL.logBox).evaluate((b) => {
  const el = b as unknown as Box;
  return el.scrollTop + el.clientHeight >= el.scrollHeight - 2;
});

/**
 * Scrolls the log from its top (loading earlier pages until there are none)
 * to its end (loading later ones), one screen at a time, and returns every
 * line seen, by seq. Fails on a snapshot with a repeated or decreasing seq
 * (a line rendered twice, or out of order), or on one seq shown with two
 * different texts.
 */
async function collectWholeLog(page: Page): Promise<Map<number, Shown>> {
  const seen = new Map<number, Shown>();
  const box = page.locator(SEL.logBox);
  const snapshot = async () => {
    const lines = await renderedLines(page);
    for (let i = 1; i < lines.length; i++) {
      assert.ok(lines[i]!.seq > lines[i - 1]!.seq, `the log shows seq ${lines[i]!.seq} after seq ${lines[i - 1]!.seq}: lines must be in order, each once`);
    }
    for (const l of lines) {
      const prev = seen.get(l.seq);
      assert.ok(prev === undefined || prev.text === l.text, `seq ${l.seq} shown as ${JSON.stringify(prev?.text)} and then ${JSON.stringify(l.text)}`);
      seen.set(l.seq, l);
    }
  };
  // Up to the first line: the page loads earlier lines as the reader reaches the top.
  for (let step = 0; step < 5000; step++) {
    await box.evaluate((b) => ((b as unknown as Box).scrollTop = 0));
    await page.waitForTimeout(50);
    await snapshot();
    if (await page.locator('#older').count() === 0 && await box.evaluate((b) => (b as unknown as Box).scrollTop === 0)) break;
  }
  // Down, a screen at a time; at the end, wait for later pages to come.
  let stillAtEnd = 0;
  for (let step = 0; step < 20_000; step++) {
    await page.waitForTimeout(step === 0 ? 0 : 25);
    await snapshot();
    if (await atBottom(page)) {
      if (await page.locator('#later').count() === 0 && ++stillAtEnd >= 3) return seen;
      await page.waitForTimeout(100);
    } else stillAtEnd = 0;
    await box.evaluate((b) => {
      const el = b as unknown as Box;
      el.scrollTop += Math.max(1, el.clientHeight - 20);
    });
  }
  throw new Error('the log never reached its end while scrolling');
}

/** The job's stored events (all of them; these jobs are small). */
async function storedEvents(rig: Rig, id: string): Promise<{ seq: number; stream: string; text?: string }[]> {
  const r = await rig.admin.call('GET', `/api/v1/jobs/${id}/events?after=0&limit=100000`);
  assert.equal(r.status, 200);
  return r.body.events;
}

describe('web pages in Chromium', () => {
  let browser: TestBrowser;
  let rig: Rig;
  let context: BrowserContext;
  let page: Page;
  let problems: PageProblems;
  const logs: string[] = [];

  before(async () => {
    browser = await launchBrowser();
    rig = await startRig({ slots: 4, logs });
  });
  after(async () => {
    await browser?.close();
    await rig?.close();
  });
  beforeEach(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    await signIn(context, rig.c.url, rig.admin.token);
    page = await context.newPage();
    problems = await watchPage(page);
  });
  afterEach(async () => {
    await context?.close();
    assert.deepEqual(problems.csp, [], 'the page must not trip its Content-Security-Policy');
    assert.deepEqual(problems.errors, [], 'the page scripts must not throw');
  });

  const url = (path: string) => rig.c.url + path;
  const open = async (path: string, base = rig.c.url) => {
    const r = await page.goto(base + path);
    assert.equal(r?.status(), 200, `GET ${path} answered ${r?.status()}`);
    return r!;
  };

  test('signs in through the /login form and lands on the status page with a session cookie', async () => {
    const fresh = await browser.newContext();
    try {
      await signIn(fresh, rig.c.url, rig.admin.token, 'form');
      const cookie = (await fresh.cookies(rig.c.url)).find((c) => c.name === 'bw_session')!;
      assert.equal(cookie.httpOnly, true, 'the session cookie is HttpOnly');
      assert.notEqual(cookie.sameSite, 'None', 'the session cookie is SameSite');
    } finally {
      await fresh.close();
    }
    const anon = await browser.newContext();
    try {
      const p = await anon.newPage();
      await p.goto(url('/jobs'));
      assert.equal(new URL(p.url()).pathname, '/login', 'a page without a session sends the reader to /login');
    } finally {
      await anon.close();
    }
  });

  test('the status, jobs, workers, factories and targets pages render (screenshots)', async () => {
    await submit(rig.admin, 'echo status-page-job', { name: 'status-page-job' }).then((id) => waitJob(rig.admin, id));
    for (const [path, name] of [['/', 'status'], ['/jobs', 'jobs'], ['/workers', 'workers'], ['/factories', 'factories'], ['/targets', 'targets']] as const) {
      await open(path);
      await page.locator(SEL.hashBox).waitFor();
      await screenshot(page, name);
    }
    await open('/jobs');
    assert.ok(await page.locator('a[href^="/job/"]').count() > 0, 'the jobs page links each job to its page');
  });

  test('the job page follows the log live, keeps a scrolled-up reader in place behind "jump to newest", and after a dropped connection shows every seq once, in order', async () => {
    const N = 240;
    const id = await submit(rig.admin, liveScript(N), { name: 'live-log' });
    await using proxy: DropProxy = await startDropProxy(rig.c.url);
    await until('the job to print its first lines', async () => (await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.lastEvent > 5, 30_000);
    // The kinds of the live frames the page gets (byte 0: 1 records, 2 compressed records, `{` JSON).
    const kinds = new Map<number, number>();
    page.on('websocket', (ws) => ws.on('framereceived', (f) => {
      const b = typeof f.payload === 'string' ? Buffer.from(f.payload) : f.payload;
      kinds.set(b[0]!, (kinds.get(b[0]!) ?? 0) + 1);
    }));
    await open(`/job/${id}`, proxy.url);
    const liveState = () => page.locator(SEL.liveStatus).getAttribute('data-state');
    await until('the live connection to be up', async () => (await liveState()) === 'live', 10_000);

    // Lines arrive while we watch.
    const first = await until('20 numbered lines on the page', async () => {
      const n = numbersIn(await renderedLines(page), N);
      return n.length >= 20 ? n : undefined;
    }, 20_000);
    await until('more lines to arrive live', async () => numbersIn(await renderedLines(page), N).at(-1)! > first.at(-1)! + 5, 10_000);
    assert.ok(await atBottom(page), 'a reader at the end follows new lines');
    await screenshot(page, 'job-live');

    // Scroll up: arriving lines wait behind "jump to newest", the view stays put.
    const log = page.locator(SEL.logBox);
    await until('the log to be taller than its box', () => log.evaluate((b) => (b as unknown as Box).scrollHeight > (b as unknown as Box).clientHeight + 300), 15_000);
    await log.evaluate((b) => ((b as unknown as Box).scrollTop = 0));
    const jump = page.locator(SEL.jumpNewest);
    await jump.waitFor({ state: 'visible', timeout: 10_000 });
    const lastInDom = async () => (await renderedLines(page)).at(-1)!.seq;
    const heldAt = await lastInDom();
    await until('10 new lines waiting behind the button', async () => Number(/\((\d+) new\)/.exec(await jump.innerText())?.[1] ?? 0) >= 10, 10_000);
    assert.equal(await lastInDom(), heldAt, 'new lines wait behind the button instead of being added under the reader');
    // Both read in one turn of the page: lines keep arriving between two separate reads.
    const [count, label] = await jump.evaluate((b) => [(b as unknown as { getAttribute(n: string): string }).getAttribute('data-count'), (b as unknown as { innerText: string }).innerText]);
    const waiting = Number(count);
    assert.ok(waiting >= 10 && label.includes(`(${waiting} new)`), `data-count says how many wait (${waiting}: ${label})`);
    assert.equal(await log.evaluate((b) => (b as unknown as Box).scrollTop), 0, 'arriving lines must not scroll a reader who scrolled up');
    await screenshot(page, 'job-scrolled-up');
    await jump.click();
    await jump.waitFor({ state: 'hidden', timeout: 10_000 });
    await until('the log to be at its newest line again', () => atBottom(page), 5_000);

    // Drop the live connection for 1.5 s while the job keeps printing; the page reconnects and resumes.
    const wsBefore = proxy.websockets.length;
    assert.ok(wsBefore >= 1, `the page follows the log over a WebSocket (${JSON.stringify(proxy.websockets)})`);
    const jobNow = async () => (await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body as { state: string; lastEvent: number };
    const atDrop = await jobNow();
    await proxy.drop(1500);
    await until('the page to open a new live connection', () => proxy.websockets.length > wsBefore, 20_000);
    await until('the page to say it is live again', async () => (await liveState()) === 'live', 10_000);
    const atReconnect = await jobNow();
    // Otherwise the drop proved nothing: lines must have been missed, and more must still come live.
    assert.ok(atReconnect.lastEvent > atDrop.lastEvent + 10, `lines were committed while the page was disconnected (${atDrop.lastEvent} → ${atReconnect.lastEvent})`);
    assert.equal(atReconnect.state, 'running', 'the job still runs after the reconnect');

    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'completed', job.reason);
    const stored = await storedEvents(rig, id);
    const lastSeq = stored.at(-1)!.seq;
    await until('the last event on the page', async () => (await renderedLines(page)).some((l) => l.seq === lastSeq), 20_000);
    await screenshot(page, 'job');
    await until('the page to say the job ended', async () => (await liveState()) === 'ended', 10_000);
    assert.ok((kinds.get(1) ?? 0) > 0 && (kinds.get(2) ?? 0) > 0 && kinds.get(0x7b) === 1, `plain and compressed pages, then one JSON done (frames by kind: ${JSON.stringify([...kinds])})`);

    // Contiguous: every seq 1..last exactly once, in order, with the stored text; each numbered line once.
    const all = await collectWholeLog(page);
    const seqs = [...all.keys()].sort((x, y) => x - y);
    assert.deepEqual(seqs, stored.map((e) => e.seq), 'the page shows every stored event once');
    assert.deepEqual(seqs, Array.from({ length: lastSeq }, (_, i) => i + 1), 'seqs 1..last, no gap');
    for (const e of stored) {
      if (e.stream === 'stdout') assert.equal(all.get(e.seq)!.text, e.text!.replace(/\x1b\[[0-9;]*m/g, ''), `seq ${e.seq} shows its stored text`);
    }
    const lines = [...all.values()];
    assert.deepEqual(numbersIn(lines, N), Array.from({ length: N }, (_, i) => i + 1), 'every numbered line exactly once, in order');
    const red = lines.find((l) => l.text.includes('red error'))!;
    assert.ok(red.classes.includes('ansi-fg1') && red.classes.includes('ansi-bold') && red.classes.includes('ansi-bg4'), `ANSI colours are rendered as classes (got ${red.classes.join(' ')})`);
  });

  test('searching the log highlights the matching line and scrolls it into view', async () => {
    const N = 400;
    const id = await submit(rig.admin, `for i in $(seq 1 ${N}); do printf 'line %03d of ${N}\\n' "$i"; done; echo needle-7f3a9 is here`, { name: 'search-log' });
    await waitJob(rig.admin, id);
    await open(`/job/${id}`);
    // The page opens at the newest lines; the match is far above them.
    await page.locator(SEL.logSearch).fill('LINE 017 of 400');
    await page.locator(SEL.logSearch).press('Enter');
    const hit = page.locator(SEL.searchHit).filter({ hasText: 'line 017 of 400' });
    await hit.first().waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await hit.count(), 1, 'one line matches (case-insensitive)');
    assert.ok(await hit.first().evaluate((el) => {
      const r = (el as unknown as { getBoundingClientRect(): { top: number; bottom: number } }).getBoundingClientRect();
      const box = (globalThis as any).document.querySelector('#log').getBoundingClientRect();
      return r.top >= box.top && r.bottom <= box.bottom;
    }), 'the matching line is scrolled into the log\'s view');
    await screenshot(page, 'job-search');
    // A second query moves the highlight.
    await page.locator(SEL.logSearch).fill('needle-7f3a9');
    await page.locator(SEL.logSearch).press('Enter');
    await page.locator(SEL.searchHit).filter({ hasText: 'needle-7f3a9' }).first().waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await page.locator(SEL.searchHit).filter({ hasText: 'line 017 of 400' }).count(), 0, 'the old match is no longer highlighted');
  });

  test('an output downloads through its link with the SHA-256 the outputs API lists', async () => {
    const id = await submit(rig.admin, 'mkdir -p out; head -c 300000 /dev/urandom > out/artifact.bin', { name: 'download-me', outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, id);
    const outs = (await rig.admin.call('GET', `/api/v1/jobs/${id}/outputs`)).body.outputs as { path: string; sha256: string; size: number }[];
    const artifact = outs.find((o) => o.path === '/work/out/artifact.bin');
    assert.ok(artifact, 'the job has its output');
    await open(`/job/${id}`);
    const link = page.locator(SEL.outputLink).filter({ hasText: 'artifact.bin' }).first();
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), link.click()]);
    assert.equal(download.suggestedFilename(), 'artifact.bin');
    const bytes = readFileSync(await download.path());
    assert.equal(bytes.length, artifact.size);
    assert.equal(sha256(bytes), artifact.sha256, 'the downloaded bytes hash to the SHA-256 the outputs API lists');
  });

  test('the comparison page tells identical outputs from different ones and diffs a package manifest (screenshot)', async () => {
    const script = (extra: string, gcc: string) => `mkdir -p out; echo same > out/same.txt; echo ${extra} > out/differs.txt; printf 'gcc ${gcc}\\nmake 4.3\\n' > out/system-packages`;
    const a = await submit(rig.admin, script('one', '12.2'), { name: 'compare-me', outputRules: ['/work/out/*'] });
    const b = await submit(rig.admin, script('two', '12.3'), { name: 'compare-me', outputRules: ['/work/out/*'] });
    await Promise.all([waitJob(rig.admin, a), waitJob(rig.admin, b)]);
    await open(`/compare/${a}/${b}`);
    const text = await page.locator('main').innerText();
    assert.ok(text.includes(a) && text.includes(b), 'the comparison names both jobs');
    const row = (path: string) => page.locator('main tr', { has: page.locator('code', { hasText: path }) });
    assert.equal(await row('/work/out/same.txt').getAttribute('class'), 'out-identical');
    assert.equal(await row('/work/out/differs.txt').getAttribute('class'), 'out-different');
    assert.equal(await row('/work/out/system-packages').getAttribute('class'), 'out-different');
    const changed = await page.locator('main table.m-changed').innerText();
    assert.ok(changed.includes('gcc') && changed.includes('12.2') && changed.includes('12.3') && !changed.includes('make'), `the manifest diff names the changed package only (${JSON.stringify(changed)})`);
    await screenshot(page, 'compare');
  });

  test('the search-by-hash box leads to the hash page listing the job with those bytes (screenshot)', async () => {
    const id = await submit(rig.admin, 'mkdir -p out; echo hash-me-42 > out/hashed.txt', { name: 'hash-target', outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, id);
    const hex = sha256(Buffer.from('hash-me-42\n'));
    await open('/');
    await page.locator(SEL.hashBox).fill(hex);
    await Promise.all([page.waitForURL((u) => u.pathname === '/hash', { timeout: 10_000 }), page.locator(SEL.hashBox).press('Enter')]);
    assert.equal(new URL(page.url()).searchParams.get('sha256'), hex);
    await page.locator(`main a[href="/job/${id}"]`).first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'hash');
    await page.locator(`main a[href="/job/${id}"]`).first().click();
    await page.waitForURL((u) => u.pathname === `/job/${id}`);
  });

  test('hostile log lines, job names and output paths execute nothing, make no javascript: link, and the page still renders', async () => {
    const name = 'hostile<script>window.__pwned=1</script>';
    const id = await submit(rig.admin, HOSTILE_SCRIPT, { name, outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, id, 120_000);
    const pwned = () => page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned);
    const noJavascriptLinks = async (where: string) => {
      assert.equal(await pwned(), undefined, `${where}: nothing may run from the log, the job's name or an output's path`);
      assert.equal(await page.locator('a[href^="javascript:" i], [href*="javascript:" i], [src*="javascript:" i]').count(), 0, `${where}: no javascript: link`);
      assert.equal(await page.locator('main img, main svg:not(.chart), main script').count(), 0, `${where}: no element made from log text`);
    };
    for (const path of [`/job/${id}`, '/jobs', '/', `/hash?sha256=${sha256(Buffer.from('x'))}`]) {
      await open(path);
      await noJavascriptLinks(path);
    }
    await open(`/job/${id}`);
    assert.equal(await page.locator('main h1').evaluate((h) => (h as unknown as { firstChild: { textContent: string } }).firstChild.textContent.trim()), name, 'the job\'s name shows as text');
    const all = [...(await collectWholeLog(page)).values()];
    const line = (start: string) => all.find((l) => l.text.startsWith(start));
    assert.equal(line('<script>')?.text, '<script>window.__pwned=1</script>', 'a <script> line shows as text');
    assert.equal(line('">')?.text, '"><img src=x onerror="window.__pwned=1">', 'an attribute-breaking line shows as text');
    assert.equal(line("'>")?.text, "'><svg onload='window.__pwned=1'>");
    assert.ok(all.some((l) => l.text === 'click'), 'an OSC 8 hyperlink (ST form) shows only its text');
    assert.ok(all.some((l) => l.text === 'bel-form'), 'an OSC 8 hyperlink (BEL form) shows only its text');
    const bad = line('bad utf8:');
    assert.ok(bad && bad.text.endsWith(' end'), `a line of invalid UTF-8 renders (${JSON.stringify(bad?.text)})`);
    const long = all.filter((l) => l.text.startsWith('AAAA'));
    assert.ok(long.length >= 1 && long.every((l) => l.text.length <= 64 * 1024), 'the 10 MB line is shown cut');
    assert.ok(long.some((l) => l.classes.includes('trunc')), 'a cut line says so');
    assert.ok(all.some((l) => l.text === 'after-the-long-line'), 'the page renders past a 10 MB line');
    await noJavascriptLinks('the job page after scrolling the whole log');

    // Click around: permalinks, the time switch, the search (and its next/previous), an output link.
    for (const l of (await page.locator(`${SEL.logLine} a.lno`).all()).slice(0, 8)) await l.click();
    await page.locator('#ts-toggle').click();
    await page.locator('#ts-toggle').click();
    await page.locator(SEL.logSearch).fill('pwned');
    await page.locator(SEL.logSearch).press('Enter');
    await page.locator(SEL.searchHit).first().waitFor({ timeout: 10_000 });
    for (const b of ['#search-next', '#search-prev']) if (await page.locator(b).isEnabled()) await page.locator(b).click();
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), page.locator(SEL.outputLink).first().click()]);
    assert.equal(readFileSync(await download.path()).toString(), 'x', 'the output with a hostile name downloads as bytes');
    await page.waitForTimeout(300);
    await noJavascriptLinks('the job page after clicking around');
    await screenshot(page, 'job-hostile');
  });
});
