/**
 * The job page, its log endpoints, the live-log WebSocket, the comparison
 * page and input fingerprints, over plain HTTP and WebSocket (the browser
 * tests are in web-browser.test.ts). A real coordinator on 127.0.0.1:0 with
 * a local factory runs the jobs; hostile log lines are real job output.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { createUser } from '../coordinator/index.js';
import { canonicalJson } from '../coordinator/fingerprint.js';
import { lineDiff, manifestDiff, parseManifest } from '../coordinator/pages/diff.js';
import { ansiSegments, ansiToHtml, stripAnsi } from '../web/ansi.js';
import { ansiSegments as clientAnsiSegments } from '../web/client/job.js';
import { FRAME, LiveFrameError, decodeLivePage, pageHead } from '../web/client/live-page.js';
import type { Rig } from './helpers.js';
import { api, startRig, submit, until, waitJob } from './helpers.js';

interface Page { status: number; headers: Headers; text: string; json: any; ms: number }

async function get(url: string, opts: { cookie?: string; json?: boolean } = {}): Promise<Page> {
  const headers: Record<string, string> = { accept: opts.json ? 'application/json' : 'text/html,*/*;q=0.8' };
  if (opts.cookie) headers.cookie = opts.cookie;
  const t = performance.now();
  const r = await fetch(url, { headers, redirect: 'manual' });
  const text = await r.text();
  const ms = performance.now() - t;
  let json: unknown;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json, ms };
}

async function login(url: string, token: string): Promise<string> {
  const r = await fetch(`${url}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, next: '/' }).toString(),
  });
  assert.equal(r.status, 303);
  return (r.headers.get('set-cookie') ?? '').split(';')[0]!;
}

/** The text of the rendered log lines (`span.tx` contents, tags removed, entities kept). */
function renderedLines(html: string): string[] {
  return [...html.matchAll(/<span class="tx">(.*?)<\/span>(?:<span class="trunc">|<\/div>)/g)].map((m) => m[1]!.replace(/<[^>]*>/g, ''));
}

/** A live-log client: every message it got (pages as `{events, next}`), and how the socket closed. */
interface LiveClient {
  ws: WebSocket;
  messages: any[];
  closed: Promise<{ code: number; reason: string }>;
}

/**
 * Follows /api/v1/live as the page's script does: JSON messages parsed,
 * page frames inflated and read with web/client/live-page.js, dropping what
 * it already has. Checks each page moves `next` forward.
 */
function live(url: string, opts: { cookie?: string; origin?: string; first?: unknown; text?: string } = {}): LiveClient {
  const headers: Record<string, string> = {};
  if (opts.cookie) headers.cookie = opts.cookie;
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/live`, { headers, ...(opts.origin ? { origin: opts.origin } : {}) });
  const messages: any[] = [];
  const after = (opts.first as { after?: unknown } | undefined)?.after;
  let received = typeof after === 'number' ? after : 0;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    assert.ok(isBinary, 'the server sends binary frames only');
    if (data[0] === FRAME.JSON) return void messages.push(JSON.parse(data.toString('utf8')));
    const { kind, next, body } = pageHead(data);
    const events = decodeLivePage(kind === FRAME.DEFLATED ? inflateRawSync(body) : body, received);
    assert.ok(next > received, `a page ends past what was already sent (next ${next}, had ${received})`);
    assert.equal(events.at(-1)?.seq, next, 'a page holds events up to its next');
    received = next;
    messages.push({ events, next });
  });
  ws.on('open', () => {
    if (opts.text !== undefined) ws.send(opts.text);
    else if (opts.first !== undefined) ws.send(Buffer.from(JSON.stringify(opts.first)));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  return { ws, messages, closed };
}

const eventsOf = (c: LiveClient) => c.messages.flatMap((m) => m.events ?? []);

/** Whether an event is a job's closing control line (`job completed: ...`), always its last. */
const isFinalLine = (e: any) => e?.stream === 'control' && /^job (completed|failed|cancelled): /.test(e.text);

/**
 * The seq of a job's closing line, once it is committed. (A job's state turns
 * final a moment before that line commits, so `waitJob`'s `lastEvent` can be
 * one short.)
 */
async function finalSeq(rig: Rig, id: string): Promise<number> {
  return until(`job ${id}'s closing line`, async () => {
    const { body: j } = await rig.admin.call('GET', `/api/v1/jobs/${id}`);
    const { body } = await rig.admin.call('GET', `/api/v1/jobs/${id}/events?after=${Math.max(0, j.lastEvent - 1)}`);
    const last = body.events.at(-1);
    return ['completed', 'failed', 'cancelled'].includes(j.state) && isFinalLine(last) ? (last.seq as number) : undefined;
  });
}

/**
 * Waits until every job of the rig has written its closing line, then a
 * moment more. Why: the coordinator's job end goes on reading the store after
 * that line (uploads, dependents), and a store closed under such a read makes
 * lmdb throw from a timer after the test ("Attempt to reset an invalid read
 * txn"); Coordinator.close does not wait for it.
 */
async function settle(rig: Rig): Promise<void> {
  const { body } = await rig.admin.call('GET', '/api/v1/jobs?all=1&limit=1000');
  for (const j of body.jobs) await finalSeq(rig, j.id);
  await new Promise((r) => setTimeout(r, 100));
}

describe('ANSI colours', () => {
  const CASES: [string, { text: string; cls: string }[]][] = [
    ['plain', [{ text: 'plain', cls: '' }]],
    ['\x1b[1;31mred bold\x1b[0m plain', [{ text: 'red bold', cls: 'ansi-bold ansi-fg1' }, { text: ' plain', cls: '' }]],
    ['\x1b[92mbright\x1b[39m \x1b[44mbg\x1b[m', [{ text: 'bright', cls: 'ansi-fg10' }, { text: ' ', cls: '' }, { text: 'bg', cls: 'ansi-bg4' }]],
    ['\x1b[38;5;196mx\x1b[38;2;1;2;3;32my', [{ text: 'x', cls: '' }, { text: 'y', cls: 'ansi-fg2' }]],
    ['\x1b]8;;javascript:alert(1)\x1b\\click\x1b]8;;\x1b\\', [{ text: 'click', cls: '' }]],
    ['\x1b]8;;javascript:alert(1)\x07click\x1b]8;;\x07', [{ text: 'click', cls: '' }]],
    ['a\x1b[2Jb\x1b[10;1Hc\x1b(Bd\x1b7e\x9b31mf\x9d0;title\x9cg', [{ text: 'abcde', cls: '' }, { text: 'fg', cls: 'ansi-fg1' }]],
    ['tab\there\rcr\x07bell\x00nul', [{ text: 'tab\therecrbellnul', cls: '' }]],
    ['\x1b[?25l\x1b[>4;2mhidden cursor', [{ text: 'hidden cursor', cls: '' }]],
    ['unterminated \x1b]8;;javascript:alert(1)', [{ text: 'unterminated ', cls: '' }]],
  ];

  test('parses SGR colours into class runs and drops every other escape sequence, on the server and in the client script alike', () => {
    for (const [input, want] of CASES) {
      assert.deepEqual(ansiSegments(input), want, JSON.stringify(input));
      assert.deepEqual(clientAnsiSegments(input), want, `client: ${JSON.stringify(input)}`);
    }
  });

  test('renders runs as escaped spans with fixed class names, never styles or links from the input', () => {
    assert.equal(ansiToHtml('\x1b[1;31m<b>"x"</b>\x1b[0m&'), '<span class="ansi-bold ansi-fg1">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</span>&amp;');
    const html = ansiToHtml('\x1b]8;;javascript:alert(1)\x1b\\<a href="javascript:alert(1)">x</a>\x1b]8;;\x1b\\');
    assert.doesNotMatch(html, /<a|style=/);
    assert.equal(stripAnsi('\x1b[31merror\x1b[0m: \x1b]0;t\x07done'), 'error: done');
  });
});

describe('diffs', () => {
  test('a line diff keeps the common head and tail and folds long unchanged runs', () => {
    assert.deepEqual(lineDiff('a\nb\nc', 'a\nB\nc'), [{ op: ' ', text: 'a' }, { op: '-', text: 'b' }, { op: '+', text: 'B' }, { op: ' ', text: 'c' }]);
    const long = Array.from({ length: 50 }, (_, i) => `l${i}`);
    const d = lineDiff(long.join('\n'), [...long.slice(0, 25), 'new', ...long.slice(25)].join('\n'))!;
    assert.deepEqual(d.filter((x) => x.op === '+'), [{ op: '+', text: 'new' }]);
    assert.ok(d.some((x) => x.op === '…'), 'unchanged runs are folded');
  });

  test('a line diff too large for the LCS bound answers null instead of taking the time', () => {
    const a = Array.from({ length: 3000 }, (_, i) => `a${i}`).join('\n');
    const b = Array.from({ length: 3000 }, (_, i) => `b${i}`).join('\n');
    assert.equal(lineDiff(a, b), null);
  });

  test('manifests read KEY=VALUE, KEY: VALUE and package lines, and diff into added, removed and changed', () => {
    const a = parseManifest('# comment\nCC=gcc-12\nOS: debian\nzlib1g 1.2.13\nsame=1\n');
    const b = parseManifest('CC=gcc-13\nOS: debian\nlibssl3 3.0.11\nsame=1\n');
    assert.deepEqual(manifestDiff(a, b), {
      added: [{ key: 'libssl3', a: null, b: '3.0.11' }],
      removed: [{ key: 'zlib1g', a: '1.2.13', b: null }],
      changed: [{ key: 'CC', a: 'gcc-12', b: 'gcc-13' }],
    });
    assert.equal(parseManifest('zlib1g 1.2\nlibc6 2.36').kind, 'packages');
  });

  test('canonical JSON sorts keys at every depth and has no whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: [2, { d: 'x', c: null }] }), '{"a":[2,{"c":null,"d":"x"}],"b":1}');
  });
});

describe('the job page', () => {
  let rig: Rig;
  let url: string;
  let cookie: string;
  let bobCookie: string;
  let bobToken: string;
  let hostile: string;

  before(async () => {
    rig = await startRig({ slots: 4 });
    url = rig.c.url;
    cookie = await login(url, rig.admin.token);
    bobToken = (await createUser(rig.c.core, 'bob', [])).token;
    bobCookie = await login(url, bobToken);
    hostile = await submit(rig.admin, [
      'mkdir -p out; echo hello > out/a.txt',
      "printf '<script>alert(1)</script>\\n'",
      `printf '"><img src=x onerror=alert(1)>\\n'`,
      "printf '\\033]8;;javascript:alert(1)\\033\\\\click me\\033]8;;\\033\\\\\\n'",
      "printf '\\033[1;31mred bold\\033[0m plain\\n'",
      "printf 'caf\\351 au lait\\n'",
      "head -c 10485760 /dev/zero | tr '\\0' A; echo",
      'echo to-stderr >&2',
      'echo after-the-long-line',
      'echo "$((6 * 7))-computed"',
    ].join('\n'), { name: 'hostile <b>"job"</b>', tags: { note: '"><img src=x onerror=alert(2)>' }, outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, hostile);
  });
  after(async () => {
    await settle(rig);
    await rig.close();
  });

  test('renders name, state, target, owner, tags, timeline, outputs with SHA-256 and download links, all escaped', async () => {
    const p = await get(`${url}/job/${hostile}`, { cookie });
    assert.equal(p.status, 200);
    const csp = p.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self' 'nonce-/);
    assert.match(p.text, /<h1>hostile &lt;b&gt;&quot;job&quot;&lt;\/b&gt; <span class="badge ok">OK<\/span><\/h1>/);
    assert.match(p.text, /&quot;&gt;&lt;img src=x onerror=alert\(2\)&gt;/);
    assert.match(p.text, /<th>owner<\/th><td>admin<\/td>/);
    assert.match(p.text, /task 0 main/);
    const sha = (await rig.admin.call('GET', `/api/v1/jobs/${hostile}/outputs`)).body.outputs[0].sha256 as string;
    assert.match(p.text, new RegExp(`<a href="/job/${hostile}/outputs/work/out/a.txt" download>/work/out/a.txt</a>.*<code>${sha}</code>`));
    const dl = await fetch(`${url}/job/${hostile}/outputs/work/out/a.txt`, { headers: { cookie } });
    assert.equal(dl.status, 200);
    assert.equal(await dl.text(), 'hello\n');
    assert.equal(dl.headers.get('etag'), `"${sha}"`);
    // No inline handlers and no script without the nonce.
    const nonce = /'nonce-([^']+)'/.exec(csp)![1]!;
    assert.doesNotMatch(p.text, /<[a-z][^>]*\son[a-z]+\s*=/i);
    for (const tag of p.text.matchAll(/<script\b[^>]*>/g)) assert.ok(tag[0].includes(`nonce="${nonce}"`), tag[0]);
  });

  test('hostile log lines are escaped or stripped, a 10 MB line is cut with a marker, invalid UTF-8 shows U+FFFD, and the page still renders', async () => {
    const p = await get(`${url}/job/${hostile}`, { cookie });
    assert.equal(p.status, 200);
    assert.ok(p.text.length < 1024 * 1024, `page is ${p.text.length} bytes`);
    const shown = renderedLines(p.text);
    assert.ok(shown.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(shown.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(shown.includes('click me'), 'the OSC 8 link text stays, the link goes');
    assert.doesNotMatch(p.text, /javascript:/);
    assert.doesNotMatch(p.text, /<script>alert|<img src=x/);
    assert.match(p.text, /<span class="ansi-bold ansi-fg1">red bold<\/span> plain/);
    assert.ok(shown.includes('caf\ufffd au lait'));
    assert.match(p.text, /<span class="trunc">line truncated \(4194304 bytes, 4\.0 MiB\), see <a href="\/job\/[0-9A-Z]{26}\/log\.txt">the raw log<\/a><\/span>/);
    assert.match(p.text, /class="ln s-stderr[^"]*"[^>]*>.*?to-stderr/);
    assert.match(p.text, /class="ln s-control"/);
    assert.match(p.text, /class="ln s-task sep"/);
    assert.ok(shown.includes('after-the-long-line'));
  });

  test('the JSON answer has the job, timeline, outputs, fingerprint and reproducibility, and no log lines', async () => {
    const p = await get(`${url}/job/${hostile}`, { cookie, json: true });
    assert.equal(p.status, 200);
    const d = p.json;
    assert.equal(d.job.id, hostile);
    assert.equal(d.job.ownerName, 'admin');
    assert.equal(d.job.state, 'completed');
    assert.deepEqual(d.timeline.tasks.map((t: any) => [t.index, t.name, t.code, t.signal]), [[0, 'main', 0, null]]);
    assert.equal(d.outputs[0].path, '/work/out/a.txt');
    assert.equal(d.outputs[0].apiUrl, `/api/v1/jobs/${hostile}/outputs/work/out/a.txt`);
    assert.match(d.reproducibility.fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(d.reproducibility.main.path, '/work/out/a.txt');
    assert.ok(d.log.lastSeq > 5);
    assert.equal(p.text.includes('42-computed'), false, 'no log text in the JSON');
    assert.ok((await get(`${url}/job/${hostile}`, { cookie })).text.includes('42-computed'), 'the HTML has it');
  });

  test('the raw log downloads whole through the session, the 10 MB line included', async () => {
    const r = await fetch(`${url}/job/${hostile}/log.txt`, { headers: { cookie } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const body = Buffer.from(await r.arrayBuffer());
    assert.ok(body.includes(Buffer.from(`${'A'.repeat(1000)}`)));
    assert.ok(body.length > 10 * 1024 * 1024);
    assert.ok(body.includes(Buffer.from('caf\xe9 au lait', 'latin1')), 'the raw log keeps the exact bytes');
  });

  test('the store shows keys and a secret mark, never values', async () => {
    const id = await submit(rig.admin, 'echo x');
    await waitJob(rig.admin, id);
    await rig.admin.call('PUT', `/api/v1/jobs/${id}/store/PUBLIC_KEY`, { value: 'visible-value-123' });
    await rig.admin.call('PUT', `/api/v1/jobs/${id}/store/TOKEN`, { value: 'hunter2-secret', secret: true });
    const p = await get(`${url}/job/${id}`, { cookie });
    assert.match(p.text, /<code>TOKEN<\/code> <span class="tag">secret<\/span>/);
    assert.match(p.text, /<code>PUBLIC_KEY<\/code>/);
    assert.doesNotMatch(p.text, /hunter2-secret|visible-value-123/);
    const j = await get(`${url}/job/${id}`, { cookie, json: true });
    assert.deepEqual(j.json.store.map((s: any) => [s.key, s.secret]), [['PUBLIC_KEY', false], ['TOKEN', true]]);
    assert.doesNotMatch(j.text, /hunter2-secret|visible-value-123/);
  });

  test('dependencies link both ways', async () => {
    const first = await submit(rig.admin, 'echo first', { name: 'first' });
    await waitJob(rig.admin, first);
    const second = await submit(rig.admin, 'echo second', { name: 'second', dependencies: { base: { job: first } } });
    await waitJob(rig.admin, second);
    const a = await get(`${url}/job/${first}`, { cookie, json: true });
    assert.deepEqual(a.json.dependents.map((r: any) => r.id), [second]);
    const b = await get(`${url}/job/${second}`, { cookie });
    assert.match(b.text, new RegExp(`<b>base</b>: <a href="/job/${first}">first</a>`));
    const a2 = await get(`${url}/job/${first}`, { cookie });
    assert.match(a2.text, new RegExp(`<a href="/job/${second}">second</a>`));
  });

  test('another user\'s job is 404 on the page, events, search, raw log, outputs and comparison', async () => {
    for (const path of [`/job/${hostile}`, `/job/${hostile}/events`, `/job/${hostile}/search?q=x`, `/job/${hostile}/log.txt`, `/job/${hostile}/outputs/work/out/a.txt`, `/compare/${hostile}/${hostile}`]) {
      const p = await get(url + path, { cookie: bobCookie, json: true });
      assert.equal(p.status, 404, path);
      assert.equal(p.json.code, 'NOT_FOUND', path);
    }
    const mine = await submit(api(url, bobToken), 'echo bob');
    assert.equal((await get(`${url}/compare/${mine}/${hostile}`, { cookie: bobCookie, json: true })).status, 404, 'one visible job is not enough');
    assert.equal((await get(`${url}/job/not-an-id`, { cookie, json: true })).status, 400);
  });
});

describe('a long log', () => {
  let rig: Rig;
  let url: string;
  let cookie: string;
  let id: string;
  let last: number;

  before(async () => {
    rig = await startRig();
    url = rig.c.url;
    cookie = await login(url, rig.admin.token);
    id = await submit(rig.admin, 'seq 1 200000');
    await waitJob(rig.admin, id, 120_000);
    last = await finalSeq(rig, id);
  });
  after(async () => {
    await settle(rig);
    await rig.close();
  });

  test('the first views of a 200,000-line job read its timeline once, in slices that leave the coordinator answering meanwhile', async () => {
    // The timeline pass over 200,000 records takes a while; other requests must not wait for it.
    const views = Promise.all([1, 2, 3].map(() => get(`${url}/job/${id}`, { cookie, json: true })));
    const t = performance.now();
    const ping = await get(`${url}/job/${id}/events?after=0&limit=1`, { json: true, cookie });
    const pingMs = performance.now() - t;
    const pages = await views;
    assert.equal(ping.status, 200);
    for (const p of pages) assert.deepEqual(p.json.timeline.tasks.map((x: any) => [x.index, x.name, x.code]), [[0, 'main', 0]]);
    const passMs = Math.min(...pages.map((p) => p.ms));
    assert.ok(passMs > 50, `the timeline pass over 200,000 records takes a while (${passMs.toFixed(0)} ms), or this test proves nothing`);
    assert.ok(pingMs < passMs / 2, `a small request (${pingMs.toFixed(0)} ms) was answered long before the timeline pass ended (${passMs.toFixed(0)} ms)`);
  });

  test('the page of a 200,000-line job renders only its last page, under 1 MB', async () => {
    const p = await get(`${url}/job/${id}`, { cookie });
    assert.equal(p.status, 200);
    assert.ok(p.text.length < 1024 * 1024, `page is ${p.text.length} bytes`);
    const shown = renderedLines(p.text);
    assert.ok(shown.length <= 500 && shown.length > 400, `${shown.length} lines`);
    assert.ok(shown.includes('200000'));
    assert.ok(!shown.includes('1000'), 'early lines are not rendered');
    assert.match(p.text, new RegExp(`data-last="${last}"`));
    const again = await get(`${url}/job/${id}`, { cookie });
    assert.ok(again.ms < 2000, `the page took ${Math.round(again.ms)} ms`);
  });

  test('a permalink page (?from=SEQ) renders the lines around that seq', async () => {
    const p = await get(`${url}/job/${id}?from=100000`, { cookie });
    assert.match(p.text, /id="L100000"/);
    assert.match(p.text, /id="older">\d+ earlier lines/);
    assert.match(p.text, /id="later">\d+ later lines/);
  });

  test('the events endpoint pages by after and limit and says when it is done', async () => {
    const a = await get(`${url}/job/${id}/events?after=0&limit=500`, { cookie, json: true });
    assert.equal(a.json.events.length, 500);
    assert.deepEqual(a.json.events.map((e: any) => e.seq), Array.from({ length: 500 }, (_, i) => i + 1));
    assert.equal(a.json.next, 500);
    assert.equal(a.json.done, false);
    const z = await get(`${url}/job/${id}/events?after=${last - 3}&limit=500`, { cookie, json: true });
    assert.deepEqual(z.json.events.map((e: any) => e.seq), [last - 2, last - 1, last]);
    assert.equal(z.json.done, true);
    assert.equal((await get(`${url}/job/${id}/events?limit=0`, { cookie, json: true })).status, 400);
  });

  test('search answers matching seqs and text, scans a bounded slice per request, and continues from its cursor', async () => {
    const hit = await get(`${url}/job/${id}/search?q=199999&after=160000`, { cookie, json: true });
    assert.equal(hit.status, 200);
    assert.deepEqual(hit.json.matches.map((m: any) => m.text), ['199999']);
    const seq = hit.json.matches[0].seq;
    const page = await get(`${url}/job/${id}/events?after=${seq - 1}&limit=1`, { cookie, json: true });
    assert.equal(page.json.events[0].text, '199999');
    const miss = await get(`${url}/job/${id}/search?q=no-such-text&after=0`, { cookie, json: true });
    assert.deepEqual(miss.json.matches, []);
    assert.equal(miss.json.next, 50_000);
    assert.equal(miss.json.done, false);
    let cursor = 0;
    let rounds = 0;
    for (let done = false; !done; rounds++) {
      const r = await get(`${url}/job/${id}/search?q=no-such-text&after=${cursor}`, { cookie, json: true });
      cursor = r.json.next;
      done = r.json.done;
    }
    assert.equal(cursor, last);
    assert.equal(rounds, Math.ceil(last / 50_000));
    assert.equal((await get(`${url}/job/${id}/search?q=`, { cookie, json: true })).status, 400);
  });
});

describe('live page frames (web/client/live-page.ts)', () => {
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number', mapsAsObjects: true });
  /** A body of stored batches, as the coordinator frames them. */
  const body = (batches: [number, unknown][]): Buffer => Buffer.concat(batches.map(([first, b]) => {
    const m = packr.pack(b);
    const h = Buffer.alloc(12);
    h.writeDoubleBE(first, 0);
    h.writeUInt32BE(m.length, 8);
    return Buffer.concat([h, m]);
  }));

  test('reads every value msgpackr writes for the log, with seqs from each batch\'s first, dropping what the reader has', () => {
    const time = 1_763_720_000_123;
    const taskEvent = { event: 'exited', name: 'build', code: -1, signal: null, big: 2 ** 40, neg: -(2 ** 40), f: 1.5, ok: true, no: false, list: [1, 'two', [3]], n: -33, u16: 60_000, i16: -30_000 };
    const recs = [
      [time, 0, 0, Buffer.from('plain \u00e9 line')],
      [time + 1, 1 | 0x10, 1, Buffer.from([0x66, 0xff, 0xfe])],
      [time + 2, 2, 1, taskEvent],
      [time + 3, 6, 0, 'job completed: '.padEnd(300, 'x')],
    ];
    const b = body([[7, { type: 'batch', job: '01J', batch: 2, recs: recs.slice(0, 2) }], [9, { type: 'batch', job: '01J', batch: 0, recs: recs.slice(2) }]]);
    const all = decodeLivePage(b, 0);
    assert.deepEqual(all.map((e) => e.seq), [7, 8, 9, 10]);
    assert.deepEqual(all[0], { seq: 7, time, stream: 'stdout', task: 0, text: 'plain \u00e9 line' });
    assert.deepEqual(all[1], { seq: 8, time: time + 1, stream: 'stderr', task: 1, text: 'f\ufffd\ufffd', partial: true });
    assert.deepEqual({ ...(all[2]!.event as object) }, taskEvent);
    assert.equal(all[2]!.stream, 'task');
    assert.equal(all[3]!.text, 'job completed: '.padEnd(300, 'x'));
    assert.deepEqual(decodeLivePage(b, 8).map((e) => e.seq), [9, 10], 'seqs up to after are dropped');
  });

  test('cuts lines past 64 KiB for display and says how long they were', () => {
    const long = Buffer.alloc(70_000, 0x61);
    long.write('\u00e9', 65_535);
    const [e] = decodeLivePage(body([[1, { recs: [[1, 0, 0, long]] }]]), 0);
    assert.equal(e!.truncated, 70_000);
    assert.equal(e!.text!.length, 65_535, 'cut before the 2-byte character that straddles the limit');
  });

  test('a malformed frame is an error that names the rule, never a wrong line', () => {
    const good = body([[1, { recs: [[1, 0, 0, Buffer.from('x')]] }]]);
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 5), /batch header at byte 0 runs past the end/],
      [good.subarray(0, good.length - 1), /says \d+ bytes, \d+ are left/],
      [body([[1, { other: 1 }]]), /has no "recs" array/],
      [body([[1, { recs: [[1, 0]] }]]), /record 1 is not \[time, kind, task, data\]/],
      [Buffer.concat([good.subarray(0, 8), Buffer.from([0, 0, 0, 1, 0xc1])]), /msgpack type 0xc1 at byte 0/],
      [Buffer.concat([good.subarray(0, 8), Buffer.from([0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff])]), /runs past the end/],
    ];
    for (const [b, re] of cases) assert.throws(() => decodeLivePage(b, 0), (err: Error) => err instanceof LiveFrameError && re.test(err.message), String(re));
    assert.throws(() => pageHead(Buffer.from([1, 2, 3])), /at least 9 bytes/);
    assert.throws(() => pageHead(Buffer.alloc(9, 7)), /frame kind 7 is not a page/);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    assert.throws(() => decodeLivePage(body([[1, { recs: [[1, 3, 0, deep]] }]]), 0), /nesting deeper than 64/);
  });
});

// Both HTTP servers, since backpressure and drain come from the transport.
for (const server of ['uws', 'node'] as const) describe(`the live log (${server} server)`, () => {
  let rig: Rig;
  let url: string;
  let cookie: string;

  before(async () => {
    rig = await startRig({ config: { server } });
    assert.equal(rig.c.serverKind, server);
    url = rig.c.url;
    cookie = await login(url, rig.admin.token);
  });
  after(async () => {
    await settle(rig);
    await rig.close();
  });

  test('delivers every line of a running job exactly once, and resumes after a reconnect without gaps or duplicates', async () => {
    const id = await submit(rig.admin, 'for i in $(seq 1 400); do echo "line $i"; [ $((i % 20)) = 0 ] && sleep 0.1; done; true');
    const one = live(url, { cookie, first: { job: id, after: 0 } });
    await until('100 lines over the first connection', () => eventsOf(one).filter((e) => e.stream === 'stdout').length >= 100);
    one.ws.close();
    await one.closed;
    const got = eventsOf(one);
    const resume = got.at(-1).seq;
    const two = live(url, { cookie, first: { job: id, after: resume } });
    const end = await two.closed;
    assert.equal(end.code, 1000);
    assert.deepEqual(two.messages.at(-1), { done: true, state: 'completed' });
    const all = [...got, ...eventsOf(two)];
    assert.deepEqual(all.map((e) => e.seq), Array.from({ length: all.length }, (_, i) => i + 1), 'seqs are contiguous from 1, each once');
    assert.deepEqual(all.filter((e) => e.stream === 'stdout').map((e) => e.text), Array.from({ length: 400 }, (_, i) => `line ${i + 1}`));
    assert.ok(isFinalLine(all.at(-1)), 'the last event before done is the job\'s closing line');
  });

  test('many viewers of one job each get every line once', async () => {
    const id = await submit(rig.admin, 'for i in $(seq 1 200); do echo "v $i"; [ $((i % 50)) = 0 ] && sleep 0.1; done; true');
    const viewers = Array.from({ length: 20 }, (_, k) => live(url, { cookie, first: { job: id, after: 0 } }));
    const ends = await Promise.all(viewers.map((v) => v.closed));
    for (const [k, v] of viewers.entries()) {
      assert.equal(ends[k]!.code, 1000);
      const seqs = eventsOf(v).map((e) => e.seq);
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `viewer ${k}`);
      assert.equal(eventsOf(v).filter((e) => e.stream === 'stdout').length, 200, `viewer ${k}`);
    }
  });

  test('a viewer that stops reading is skipped until it drains, then catches up from the store in order, once each', async () => {
    // About 24 MB of lines: far more than the socket buffers hold while the slow viewer reads nothing.
    const id = await submit(rig.admin, `awk 'BEGIN { s = sprintf("%1000s", ""); for (i = 1; i <= 24000; i++) print i s }'`);
    const slow = live(url, { cookie, first: { job: id, after: 0 } });
    await new Promise((r) => slow.ws.once('open', r));
    slow.ws.pause();
    const fast = live(url, { cookie, first: { job: id, after: 0 } });
    assert.equal((await fast.closed).code, 1000);
    await waitJob(rig.admin, id);
    assert.ok(slow.messages.length === 0, 'nothing was read while paused');
    slow.ws.resume();
    assert.equal((await slow.closed).code, 1000);
    for (const c of [fast, slow]) {
      const seqs = eventsOf(c).map((e) => e.seq);
      assert.ok(seqs.every((s, i) => s === i + 1), 'contiguous from 1, each once');
      assert.ok(isFinalLine(eventsOf(c).at(-1)));
      assert.equal(eventsOf(c).filter((e) => e.stream === 'stdout').length, 24_000);
      assert.deepEqual(c.messages.at(-1), { done: true, state: 'completed' });
    }
  });

  test('following an ended job sends its events from after, then done', async () => {
    const id = await submit(rig.admin, 'echo a; echo b');
    await waitJob(rig.admin, id);
    const c = live(url, { cookie, first: { job: id, after: 2 } });
    assert.equal((await c.closed).code, 1000);
    const seqs = eventsOf(c).map((e) => e.seq);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 3));
    assert.ok(isFinalLine(eventsOf(c).at(-1)));
    assert.deepEqual(c.messages.at(-1), { done: true, state: 'completed' });
  });

  test('refuses with close codes: 4401 signed out, 4403 another site, 4404 a job not visible, 4400 a bad message, 1003 a text frame', async () => {
    const id = await submit(rig.admin, 'echo x');
    await waitJob(rig.admin, id);
    const bob = await createUser(rig.c.core, 'bob-live', []);
    const bobCookie = await login(url, bob.token);
    assert.equal((await live(url, { first: { job: id, after: 0 } }).closed).code, 4401);
    assert.equal((await live(url, { cookie, origin: 'https://evil.example', first: { job: id, after: 0 } }).closed).code, 4403);
    assert.equal((await live(url, { cookie, origin: url, first: { job: id, after: 0 } }).closed).code, 1000, 'the own origin is fine');
    const hidden = await live(url, { cookie: bobCookie, first: { job: id, after: 0 } }).closed;
    assert.deepEqual(hidden, { code: 4404, reason: `job ${id} does not exist` });
    assert.equal((await live(url, { cookie, first: { job: 'nope', after: 0 } }).closed).code, 4400);
    assert.equal((await live(url, { cookie, first: { job: id, after: -1 } }).closed).code, 4400);
    assert.equal((await live(url, { cookie, first: [1, 2] }).closed).code, 4400);
    assert.equal((await live(url, { cookie, text: JSON.stringify({ job: id, after: 0 }) }).closed).code, 1003);
  });
});

describe('anonymous read', () => {
  let rig: Rig;
  let url: string;
  let open: string;
  let hidden: string;

  before(async () => {
    rig = await startRig({ config: { anonymousRead: true } });
    url = rig.c.url;
    open = await submit(rig.admin, 'echo open-line', { name: 'open' });
    hidden = await submit(rig.admin, 'echo hidden-line', { name: 'hidden', private: true });
    await waitJob(rig.admin, open);
    await waitJob(rig.admin, hidden);
  });
  after(async () => {
    await settle(rig);
    await rig.close();
  });

  test('an anonymous reader follows a job that is not private, over HTTP and the live socket', async () => {
    assert.equal((await get(`${url}/job/${open}`)).status, 200);
    assert.equal((await get(`${url}/job/${open}/events`, { json: true })).status, 200);
    const c = live(url, { first: { job: open, after: 0 } });
    assert.equal((await c.closed).code, 1000);
    assert.ok(eventsOf(c).some((e) => e.text === 'open-line'));
  });

  test('a private job is 404 to an anonymous reader on every page and 4404 on the live socket', async () => {
    for (const path of [`/job/${hidden}`, `/job/${hidden}/events`, `/job/${hidden}/search?q=hidden`, `/job/${hidden}/log.txt`, `/compare/${open}/${hidden}`]) {
      assert.equal((await get(url + path, { json: true })).status, 404, path);
    }
    assert.equal((await live(url, { first: { job: hidden, after: 0 } }).closed).code, 4404);
    const p = await get(`${url}/job/${open}`, { json: true });
    assert.deepEqual(p.json.reproducibility.reproducedBy, { sameInputs: [], differentInputs: [] });
  });
});

describe('comparison and reproducibility', () => {
  let rig: Rig;
  let url: string;
  let cookie: string;
  const build = (cc: string, extra = '') => [
    'mkdir -p out', `printf 'CC=${cc}\\nOS=debian\\nMAKEFLAGS=-j4\\n' > out/build-environment`,
    'echo same-bytes > out/same.txt', `echo ${cc} > out/differs.txt`, extra,
  ].join('\n');

  before(async () => {
    rig = await startRig({ slots: 4 });
    url = rig.c.url;
    cookie = await login(url, rig.admin.token);
  });
  after(async () => {
    await settle(rig);
    await rig.close();
  });

  test('compare shows identical and different outputs, the script diff and a manifest diff of the one changed key', async () => {
    const a = await submit(rig.admin, build('gcc-12'), { name: 'cmp', outputRules: ['/work/out/*'] });
    const b = await submit(rig.admin, build('gcc-13'), { name: 'cmp', outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, a);
    await waitJob(rig.admin, b);
    const p = await get(`${url}/compare/${a}/${b}`, { cookie, json: true });
    assert.equal(p.status, 200);
    const d = p.json;
    const status = Object.fromEntries(d.outputs.map((o: any) => [o.path, o.status]));
    assert.deepEqual(status, { '/work/out/build-environment': 'different', '/work/out/differs.txt': 'different', '/work/out/same.txt': 'identical' });
    assert.equal(d.sameFingerprint, false);
    assert.deepEqual(d.manifests.map((m: any) => [m.path, m.status, m.changed, m.added, m.removed]), [
      ['/work/out/build-environment', 'compared', [{ key: 'CC', a: 'gcc-12', b: 'gcc-13' }], [], []],
    ]);
    assert.equal(d.scripts.length, 1);
    assert.deepEqual(d.scripts[0].diff.filter((l: any) => l.op === '-' || l.op === '+').map((l: any) => l.op), ['-', '+', '-', '+']);
    const html = await get(`${url}/compare/${a}/${b}`, { cookie });
    assert.equal(html.status, 200);
    assert.match(html.text, /<code>CC<\/code><\/td><td><code>gcc-12<\/code> → <code>gcc-13<\/code>/);
    assert.match(html.text, /st-identical/);
  });

  test('compare names the environment, inputs and target that differ', async () => {
    const a = await submit(rig.admin, 'echo hi', { name: 'envs', env: { MODE: 'debug', KEEP: '1' } });
    const b = await submit(rig.admin, 'echo hi', { name: 'envs', env: { MODE: 'release', KEEP: '1', EXTRA: 'x' } });
    await waitJob(rig.admin, a);
    await waitJob(rig.admin, b);
    const d = (await get(`${url}/compare/${a}/${b}`, { cookie, json: true })).json;
    assert.deepEqual(d.tasks, [{ task: 0, field: 'env.EXTRA', a: null, b: 'x' }, { task: 0, field: 'env.MODE', a: 'debug', b: 'release' }]);
    assert.deepEqual(d.scripts, []);
    assert.deepEqual(d.fields, []);
  });

  test('the fingerprint is the same for identical jobs and changes with the script', async () => {
    const script = 'mkdir -p out; echo stable > out/result.txt';
    const a = await submit(rig.admin, script, { name: 'fp', outputRules: ['/work/out/*'] });
    const b = await submit(rig.admin, script, { name: 'fp', outputRules: ['/work/out/*'] });
    const c = await submit(rig.admin, `${script}; true`, { name: 'fp', outputRules: ['/work/out/*'] });
    for (const id of [a, b, c]) await waitJob(rig.admin, id);
    const fp = async (id: string) => (await get(`${url}/job/${id}`, { cookie, json: true })).json.reproducibility;
    const [ra, rb, rc] = [await fp(a), await fp(b), await fp(c)];
    assert.equal(ra.fingerprint, rb.fingerprint);
    assert.notEqual(ra.fingerprint, rc.fingerprint);
    // b's main output has the same bytes as a's (same inputs) and c's (different inputs).
    assert.deepEqual(rb.reproducedBy.sameInputs.map((r: any) => r.id), [a]);
    assert.deepEqual(rb.reproducedBy.differentInputs.map((r: any) => r.id), [c]);
    assert.deepEqual(rb.notReproducible, []);
    const html = await get(`${url}/job/${b}`, { cookie });
    assert.match(html.text, /reproduced by 2 jobs<\/b> \(1 with the same inputs, 1 with different inputs\)/);
  });

  test('a job with the same fingerprint but another main output is flagged NOT REPRODUCIBLE, with a link to the comparison', async () => {
    const script = 'mkdir -p out; date +%s%N > out/stamp; echo small > out/s';
    const a = await submit(rig.admin, script, { name: 'unrepro', outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, a);
    const b = await submit(rig.admin, script, { name: 'unrepro', outputRules: ['/work/out/*'] });
    await waitJob(rig.admin, b);
    const d = (await get(`${url}/job/${b}`, { cookie, json: true })).json.reproducibility;
    assert.equal(d.main.path, '/work/out/stamp');
    assert.deepEqual(d.notReproducible.map((x: any) => [x.job.id, x.path]), [[a, '/work/out/stamp']]);
    const html = await get(`${url}/job/${b}`, { cookie });
    assert.match(html.text, /<b>NOT REPRODUCIBLE<\/b>/);
    assert.match(html.text, new RegExp(`<a href="/compare/${b}/${a}">compare</a>`));
    const main = await submit(rig.admin, script, { name: 'unrepro', outputRules: ['/work/out/*'], tags: { main: 'work/out/s' } });
    await waitJob(rig.admin, main);
    const m = (await get(`${url}/job/${main}`, { cookie, json: true })).json.reproducibility;
    assert.equal(m.main.chosenBy, 'tag');
    assert.equal(m.main.path, '/work/out/s');
  });
});
