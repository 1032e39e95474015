/**
 * The web pages over plain HTTP (no browser): sign-in and sessions, access
 * rules (signed out, anonymous read, private jobs), the JSON contract, the
 * CSP and its nonces, escaping of hostile names and tags, admin buttons and
 * CSRF, the search by hash and the Atom feeds. A real coordinator on
 * 127.0.0.1:0 with a local factory runs the jobs the pages show.
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { hashSecret } from '../protocol/index.js';
import type { Api, Rig } from './helpers.js';
import { api, startRig, submit, waitJob } from './helpers.js';

const HOSTILE_NAME = '<script>alert(1)</script>';
const HOSTILE_TAG = '"><img src=x onerror=alert(1)>';

interface Page { status: number; headers: Headers; text: string; json: any }

/** A GET (or POST) as a browser or script would send it; redirects are returned, not followed. */
async function get(url: string, opts: { cookie?: string; accept?: string; token?: string; method?: string; form?: Record<string, string> } = {}): Promise<Page> {
  const headers: Record<string, string> = { accept: opts.accept ?? 'text/html,application/xhtml+xml,*/*;q=0.8' };
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  }
  const r = await fetch(url, { method: opts.method ?? (opts.form ? 'POST' : 'GET'), headers, redirect: 'manual', ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

const asJson = { accept: 'application/json' };

/** Signs in with a user token; returns the cookie pair and the session's CSRF token (read from the sign-out form). */
async function login(url: string, token: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const r = await get(`${url}/login`, { form: { token, next: '/' } });
  assert.equal(r.status, 303, r.text);
  const setCookie = r.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0]!;
  const page = await get(`${url}/jobs`, { cookie });
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1];
  assert.ok(csrf, 'the signed-in page has a sign-out form with the CSRF token');
  return { cookie, csrf, setCookie };
}

/** Every inline <script> and <style> tag of a page, and whether each carries `nonce`. */
function tagsWithoutNonce(html: string, nonce: string): string[] {
  return [...html.matchAll(/<(script|style)\b[^>]*>/gi)].map((m) => m[0]).filter((t) => !t.includes(`nonce="${nonce}"`));
}

/**
 * A small XML well-formedness check (enough for the feeds): every tag closes
 * in order, attribute values are quoted, and text holds no bare `<` or a `&`
 * that does not start an entity. Returns the element names in document order.
 */
function parseXmlish(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const re = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(body)) !== null) {
    pos = re.lastIndex;
    if (m[5] !== undefined) {
      assert.doesNotMatch(m[5], /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/, `bare & in text ${JSON.stringify(m[5].slice(0, 80))}`);
      continue;
    }
    const [, close, name = '', , selfClose] = m;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes what it should`);
    else {
      names.push(name);
      if (!selfClose) stack.push(name);
    }
  }
  assert.equal(pos, body.length, `unparsable XML near ${JSON.stringify(body.slice(pos, pos + 80))}`);
  assert.deepEqual(stack, [], 'every element is closed');
  return names;
}

describe('web pages, signed in (anonymous read off)', () => {
  let rig: Rig;
  let url: string;
  let user: Api;
  let hostile: string;
  before(async () => {
    rig = await startRig({ slots: 2 });
    url = rig.c.url;
    const u = await rig.admin.call('POST', '/api/v1/users', { name: 'bob', privileges: [] });
    user = api(url, u.body.token);
    hostile = await submit(rig.admin, 'echo hi', { name: HOSTILE_NAME, tags: { [HOSTILE_NAME]: HOSTILE_TAG, kind: 'x' } });
    await waitJob(rig.admin, hostile);
  });
  after(() => rig.close());

  test('redirects a signed-out browser to /login?next=PATH and answers a JSON reader 401 SIGN_IN_REQUIRED', async () => {
    for (const path of ['/', '/jobs?state=failed', '/workers', '/factories', '/targets', '/hash']) {
      const r = await get(url + path);
      assert.equal(r.status, 303, path);
      assert.equal(r.headers.get('location'), `/login?next=${encodeURIComponent(path)}`);
      const j = await get(url + path, asJson);
      assert.equal(j.status, 401);
      assert.equal(j.json.code, 'SIGN_IN_REQUIRED');
    }
  });

  test('signing in with a user token sets an HttpOnly, SameSite=Lax, Path=/ cookie and redirects to next', async () => {
    const r = await get(`${url}/login`, { form: { token: rig.admin.token, next: '/jobs?state=completed' } });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), '/jobs?state=completed');
    const c = r.headers.get('set-cookie')!;
    assert.match(c, /^bw_session=[A-Za-z0-9_-]{43};/);
    assert.match(c, /; HttpOnly/);
    assert.match(c, /; SameSite=Lax/);
    assert.match(c, /; Path=\//);
    assert.doesNotMatch(c, /Secure/, 'no Secure flag over plain http');
    const page = await get(`${url}/`, { cookie: c.split(';')[0]! });
    assert.equal(page.status, 200);
    assert.match(page.text, /admin/);
  });

  test('marks the cookie Secure when the request came through an https proxy (X-Forwarded-Proto)', async () => {
    const r = await fetch(`${url}/login`, {
      method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' },
      body: new URLSearchParams({ token: rig.admin.token }).toString(),
    });
    await r.text();
    assert.match(r.headers.get('set-cookie')!, /; Secure/);
  });

  test('a wrong token gets the form again with 401 and a clear message, and no cookie', async () => {
    const r = await get(`${url}/login`, { form: { token: 'bwu_nope', next: '/' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('set-cookie'), null);
    assert.match(r.text, /That token is not a known user token/);
    assert.match(r.text, /<form method="post" action="\/login">/);
  });

  test('after sign-in only same-site paths are followed: //host, /\\host and absolute URLs go to /', async () => {
    for (const next of ['//evil.example/', '/\\evil.example', 'https://evil.example/', 'javascript:alert(1)']) {
      const r = await get(`${url}/login`, { form: { token: rig.admin.token, next } });
      assert.equal(r.headers.get('location'), '/', next);
    }
  });

  test('an expired session is refused (the viewer is sent to sign in again)', async () => {
    const { cookie } = await login(url, rig.admin.token);
    const key = hashSecret(cookie.split('=')[1]!);
    const s = rig.c.core.dbs.sessions.get(key)!;
    await rig.c.core.dbs.sessions.put(key, { ...s, expiresAt: Date.now() - 1 });
    const r = await get(`${url}/`, { cookie });
    assert.equal(r.status, 303);
    assert.match(r.headers.get('location')!, /^\/login\?next=/);
  });

  test('sign-out needs the CSRF token (403 without), then deletes the session and clears the cookie', async () => {
    const { cookie, csrf } = await login(url, rig.admin.token);
    const bad = await get(`${url}/logout`, { cookie, form: { csrf: 'x'.repeat(32) } });
    assert.equal(bad.status, 403);
    assert.match(bad.text, /does not match your session/);
    const ok = await get(`${url}/logout`, { cookie, form: { csrf } });
    assert.equal(ok.status, 303);
    assert.match(ok.headers.get('set-cookie')!, /^bw_session=;.*Max-Age=0/);
    assert.equal((await get(`${url}/`, { cookie })).status, 303, 'the old cookie no longer signs in');
  });

  test('every page answers Accept: application/json with its documented data', async () => {
    const { cookie } = await login(url, rig.admin.token);
    const status = await get(`${url}/`, { cookie, ...asJson });
    assert.equal(status.status, 200);
    assert.equal(status.headers.get('buildwire-page-version'), '1');
    for (const k of ['now', 'hold', 'admin', 'counts', 'workers', 'active', 'recent', 'factories', 'hours']) assert.ok(k in status.json, k);
    assert.equal(status.json.hours.length, 24);
    const recent = status.json.recent.find((j: any) => j.id === hostile);
    assert.equal(recent.name, HOSTILE_NAME);
    assert.equal(recent.state, 'completed');
    assert.equal(recent.waitedMs, recent.assignedAt - recent.submittedAt);
    assert.equal(recent.ranForMs, recent.endedAt - recent.assignedAt);
    assert.equal(status.json.factories[0].name, 'local');
    const jobs = await get(`${url}/jobs?limit=5`, { cookie, ...asJson });
    assert.deepEqual(Object.keys(jobs.json).sort(), ['filters', 'jobs', 'limit', 'next', 'scanLimited', 'scanned']);
    for (const [path, key] of [['/workers', 'workers'], ['/factories', 'factories'], ['/targets', 'targets'], ['/hash', 'outputs']] as const) {
      const r = await get(url + path, { cookie, ...asJson });
      assert.equal(r.status, 200, path);
      assert.ok(Array.isArray(r.json[key]), `${path} has ${key}[]`);
    }
    const targets = await get(`${url}/targets`, { cookie, ...asJson });
    assert.equal(targets.json.targets[0].name, 'local');
  });

  test('a Bearer user token reads the pages like a session does (for scripts)', async () => {
    const r = await get(`${url}/jobs`, { token: rig.admin.token, ...asJson });
    assert.equal(r.status, 200);
    assert.ok(r.json.jobs.some((j: any) => j.id === hostile));
    const bad = await get(`${url}/jobs`, { token: 'bwu_nope', ...asJson });
    assert.equal(bad.status, 401);
  });

  test('every HTML page sends a strict CSP with a fresh nonce, and every <script> and <style> carries that nonce', async () => {
    const { cookie } = await login(url, rig.admin.token);
    const seen = new Set<string>();
    for (const path of ['/', '/jobs', '/workers', '/factories', '/targets', '/hash', `/hash?sha256=${'0'.repeat(64)}`, '/login', '/hash?sha256=zz']) {
      const r = await get(url + path, { cookie });
      const csp = r.headers.get('content-security-policy')!;
      const nonce = /'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
      assert.ok(nonce, `${path} has a nonce in its CSP`);
      assert.equal(csp, `default-src 'none'; script-src 'self' 'nonce-${nonce}'; style-src 'self' 'nonce-${nonce}'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`);
      assert.ok(!seen.has(nonce), 'a nonce is never reused');
      seen.add(nonce);
      assert.deepEqual(tagsWithoutNonce(r.text, nonce), [], path);
      assert.match(r.text, /<style nonce="/);
      assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('referrer-policy'), 'same-origin');
      assert.equal(r.headers.get('cache-control'), 'no-store');
      // Quoted attribute values are dropped first: escaped text may say "onerror=" harmlessly.
      const handlers = [...r.text.matchAll(/<[a-z][^>]*>/gi)].map((m) => m[0].replace(/"[^"]*"/g, '""')).filter((t) => /\son[a-z]+=/i.test(t));
      assert.deepEqual(handlers, [], `${path} has no inline event handlers`);
    }
  });

  test('hostile job names and tags appear only escaped, on every page and in the feeds', async () => {
    const { cookie } = await login(url, rig.admin.token);
    const pages = ['/', '/jobs', '/jobs?tag=kind%3Dx', `/jobs?name=${encodeURIComponent(HOSTILE_NAME)}`, '/feeds/jobs.atom', `/feeds/job/${encodeURIComponent(HOSTILE_NAME)}.atom`];
    for (const path of pages) {
      const r = await get(url + path, { cookie });
      assert.equal(r.status, 200, path);
      assert.ok(!r.text.includes(HOSTILE_NAME), `${path} never has the raw name`);
      assert.ok(!r.text.includes('<img'), `${path} never has a raw <img`);
      assert.ok(!r.text.includes('"><img'), `${path} never breaks out of an attribute`);
      assert.ok(r.text.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), `${path} shows the name escaped`);
      if (!path.startsWith('/feeds')) assert.ok(r.text.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'), `${path} shows the tag escaped`);
    }
    const filtered = await get(`${url}/jobs?name=${encodeURIComponent(HOSTILE_NAME)}`, { cookie, ...asJson });
    assert.deepEqual(filtered.json.jobs.map((j: any) => j.id), [hostile]);
    assert.equal(filtered.json.jobs[0].tags[HOSTILE_NAME], HOSTILE_TAG, 'JSON carries the bytes as they are');
  });

  test('/jobs lists newest first in pages (before=ID) and filters by state, target and tag', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await submit(rig.admin, 'exit 0', { name: 'pager', tags: { n: String(i) } }));
    for (const id of ids) await waitJob(rig.admin, id);
    const p1 = await get(`${url}/jobs?name=pager&limit=2`, { token: rig.admin.token, ...asJson });
    assert.deepEqual(p1.json.jobs.map((j: any) => j.id), [ids[2], ids[1]]);
    assert.equal(p1.json.next, ids[1]);
    const p2 = await get(`${url}/jobs?name=pager&limit=2&before=${p1.json.next}`, { token: rig.admin.token, ...asJson });
    assert.deepEqual(p2.json.jobs.map((j: any) => j.id), [ids[0]]);
    assert.equal(p2.json.next, null);
    const tagged = await get(`${url}/jobs?tag=n%3D1`, { token: rig.admin.token, ...asJson });
    assert.deepEqual(tagged.json.jobs.map((j: any) => j.id), [ids[1]]);
    const failed = await get(`${url}/jobs?state=failed&target=local`, { token: rig.admin.token, ...asJson });
    assert.deepEqual(failed.json.jobs, []);
  });

  test('bad query values are 400 pages naming the value and the rule, unknown paths 404, never 500', async () => {
    const { cookie } = await login(url, rig.admin.token);
    const bad = await get(`${url}/hash?sha256=${encodeURIComponent('<b>zz')}`, { cookie });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /query parameter &quot;sha256&quot; must be 64 hexadecimal digits/);
    assert.match(bad.text, /&lt;b&gt;zz/);
    assert.match(bad.headers.get('content-type')!, /^text\/html/);
    const badJson = await get(`${url}/hash?sha256=abc`, { cookie, ...asJson });
    assert.equal(badJson.status, 400);
    assert.deepEqual(badJson.json, { code: 'BAD_REQUEST', message: 'query parameter "sha256" must be 64 hexadecimal digits (a SHA-256), got "abc"' });
    assert.equal((await get(`${url}/jobs?before=nope`, { cookie })).status, 400);
    assert.equal((await get(`${url}/jobs?state=sleeping`, { cookie })).status, 400);
    assert.equal((await get(`${url}/jobs?tag=novalue`, { cookie })).status, 400);
    assert.equal((await get(`${url}/jobs?limit=0`, { cookie })).status, 400);
    assert.equal((await get(`${url}/feeds/job/x.rss`, { cookie })).status, 400);
    const unknownWorker = await get(`${url}/workers/01ARZ3NDEKTSV4RRFFQ69G5FAV/hold`, { cookie, form: { csrf: (await login(url, rig.admin.token)).csrf } });
    assert.equal(unknownWorker.status, 403, 'a CSRF token from another session is refused');
  });

  test('/static/status.js is served as JavaScript with no-cache; other names are 404', async () => {
    const r = await fetch(`${url}/static/status.js`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.match(await r.text(), /getElementById\('live'\)/);
    const again = await fetch(`${url}/static/status.js`, { headers: { 'if-none-match': r.headers.get('etag')! } });
    assert.equal(again.status, 304);
    for (const p of ['/static/nope.js', '/static/Status.js', '/static/..%2Fweb-pages.test.js', '/static/status.js.map']) {
      assert.equal((await fetch(url + p)).status, 404, p);
    }
  });

  test('/job/NAME/latest redirects to the job page', async () => {
    const r = await fetch(`${url}/job/pager/latest`, { headers: { authorization: `Bearer ${rig.admin.token}` }, redirect: 'manual' });
    assert.equal(r.status, 302);
    assert.match(r.headers.get('location')!, /^\/job\/[0-9A-Z]{26}$/);
  });

  test('a user without read-all sees only their own jobs on the pages', async () => {
    const own = await submit(user, 'exit 0', { name: 'bobs' });
    await waitJob(user, own);
    const r = await get(`${url}/jobs`, { token: user.token, ...asJson });
    assert.deepEqual(r.json.jobs.map((j: any) => j.id), [own]);
    const s = await get(`${url}/`, { token: user.token, ...asJson });
    assert.deepEqual(s.json.recent.map((j: any) => j.id), [own]);
  });
});

describe('admin buttons', () => {
  let rig: Rig;
  let url: string;
  let bobToken: string;
  let worker: string;
  before(async () => {
    rig = await startRig({ factory: false });
    url = rig.c.url;
    bobToken = (await rig.admin.call('POST', '/api/v1/users', { name: 'bob', privileges: ['read-all'] })).body.token;
    worker = (await rig.admin.call('POST', '/api/v1/workers', { target: 'local' })).body.id;
  });
  after(() => rig.close());

  test('an admin sees hold, recycle and global-hold buttons, each a POST form carrying the CSRF token', async () => {
    const { cookie, csrf } = await login(url, rig.admin.token);
    const r = await get(`${url}/workers`, { cookie });
    assert.match(r.text, new RegExp(`<form class="inline" method="post" action="/workers/${worker}/hold"><input type="hidden" name="csrf" value="${csrf}">`));
    assert.match(r.text, new RegExp(`action="/workers/${worker}/recycle"`));
    assert.match(r.text, /action="\/control\/hold"/);
  });

  test('an admin POST without the CSRF token is 403 and changes nothing', async () => {
    const { cookie } = await login(url, rig.admin.token);
    for (const path of [`/workers/${worker}/hold`, '/control/hold']) {
      const r = await get(url + path, { cookie, form: {} });
      assert.equal(r.status, 403, path);
      assert.match(r.text, /the form has no &quot;csrf&quot; field/);
    }
    assert.equal(rig.c.core.workers.get(worker as never)!.hold, false);
    assert.equal(rig.c.core.scheduler.hold, false);
  });

  test('an admin POST with the CSRF token holds and releases a worker and the global hold, then goes back', async () => {
    const { cookie, csrf } = await login(url, rig.admin.token);
    const held = await get(`${url}/workers/${worker}/hold`, { cookie, form: { csrf } });
    assert.equal(held.status, 303);
    assert.equal(held.headers.get('location'), '/workers');
    assert.equal(rig.c.core.workers.get(worker as never)!.hold, true);
    assert.equal((await get(`${url}/workers/${worker}/release`, { cookie, form: { csrf } })).status, 303);
    assert.equal(rig.c.core.workers.get(worker as never)!.hold, false);
    assert.equal((await get(`${url}/control/hold`, { cookie, form: { csrf } })).status, 303);
    assert.equal(rig.c.core.scheduler.hold, true);
    const page = await get(`${url}/`, { cookie });
    assert.match(page.text, /The global hold is set/);
    assert.equal((await get(`${url}/control/release`, { cookie, form: { csrf } })).status, 303);
    assert.equal(rig.c.core.scheduler.hold, false);
    assert.equal((await get(`${url}/workers/${worker}/explode`, { cookie, form: { csrf } })).status, 404);
    assert.equal((await get(`${url}/workers/not-an-id/hold`, { cookie, form: { csrf } })).status, 400);
  });

  test('a viewer without admin sees no buttons and gets 403 on POST, even with a valid CSRF token', async () => {
    const { cookie, csrf } = await login(url, bobToken);
    for (const path of ['/', '/workers']) {
      const r = await get(url + path, { cookie });
      assert.equal(r.status, 200);
      assert.doesNotMatch(r.text, /action="\/(workers|control)\//, `${path} shows no admin form`);
      assert.doesNotMatch(r.text, />(Hold|Recycle|Set the global hold)</);
    }
    const r = await get(`${url}/workers/${worker}/recycle`, { cookie, form: { csrf } });
    assert.equal(r.status, 403);
    assert.match(r.text, /lacks the &quot;admin&quot; privilege/);
    const j = await get(`${url}/control/hold`, { cookie, form: { csrf }, ...asJson });
    assert.equal(j.status, 403);
    assert.equal(j.json.code, 'FORBIDDEN');
    assert.equal(rig.c.core.workers.get(worker as never)!.state !== 'recycling', true);
    assert.equal(rig.c.core.scheduler.hold, false);
  });

  test('a form POST that is not application/x-www-form-urlencoded is a 400', async () => {
    const { cookie } = await login(url, rig.admin.token);
    const r = await fetch(`${url}/control/hold`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}', redirect: 'manual' });
    assert.equal(r.status, 400);
  });
});

describe('anonymous read', () => {
  let rig: Rig;
  let url: string;
  let pub: string;
  let priv: string;
  const bytes = `same-bytes-${Date.now()}`;
  const sha = createHash('sha256').update(bytes).digest('hex');
  before(async () => {
    rig = await startRig({ slots: 2, config: { anonymousRead: true } });
    url = rig.c.url;
    const script = `printf %s '${bytes}' > out.txt; exit 1`;
    pub = await submit(rig.admin, script, { name: 'public-build', outputRules: ['/work/out.txt'] });
    priv = await submit(rig.admin, script, { name: 'secret-build', outputRules: ['/work/out.txt'], private: true });
    await waitJob(rig.admin, pub);
    await waitJob(rig.admin, priv);
  });
  after(() => rig.close());

  test('an anonymous reader sees non-private jobs only, on the pages and in JSON', async () => {
    const home = await get(`${url}/`);
    assert.equal(home.status, 200);
    assert.match(home.text, /public-build/);
    assert.doesNotMatch(home.text, /secret-build/);
    assert.match(home.text, /Sign in/);
    const jobs = await get(`${url}/jobs`, asJson);
    assert.deepEqual(jobs.json.jobs.map((j: any) => j.id), [pub]);
    const status = await get(`${url}/`, asJson);
    assert.deepEqual(status.json.recent.map((j: any) => j.id), [pub]);
    assert.equal(status.json.admin, false);
    const byName = await get(`${url}/jobs?name=secret-build`, asJson);
    assert.deepEqual(byName.json.jobs, []);
  });

  test('the search by hash lists only the outputs an anonymous reader may see, with job and download links', async () => {
    const r = await get(`${url}/hash?sha256=${sha.toUpperCase()}`, asJson);
    assert.equal(r.json.sha256, sha);
    assert.deepEqual(r.json.outputs.map((o: any) => [o.job.id, o.path, o.size, o.url, o.download]), [[pub, '/work/out.txt', bytes.length, `/api/v1/jobs/${pub}/outputs/work/out.txt`, `/job/${pub}/outputs/work/out.txt`]]);
    const html = await get(`${url}/hash?sha256=${sha}`);
    assert.match(html.text, new RegExp(`href="/job/${pub}"`));
    assert.match(html.text, new RegExp(`href="/job/${pub}/outputs/work/out.txt" download`));
    const file = await fetch(`${url}/job/${pub}/outputs/work/out.txt`);
    assert.equal(file.status, 200, 'the browser download link works for an anonymous reader');
    assert.equal(await file.text(), bytes);
    assert.doesNotMatch(html.text, new RegExp(priv));
    const admin = await get(`${url}/hash?sha256=${sha}`, { token: rig.admin.token, ...asJson });
    assert.deepEqual(admin.json.outputs.map((o: any) => o.job.id).sort(), [pub, priv].sort(), 'the owner sees both');
  });

  test('feeds are valid Atom and never show private jobs to anonymous readers', async () => {
    for (const path of ['/feeds/jobs.atom', '/feeds/failures.atom', '/feeds/job/secret-build.atom', '/feeds/job/public-build.atom']) {
      const r = await get(url + path, { accept: 'application/atom+xml' });
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('content-type'), 'application/atom+xml; charset=utf-8');
      assert.match(r.text, /^<\?xml version="1.0" encoding="utf-8"\?>\n<feed xmlns="http:\/\/www.w3.org\/2005\/Atom">/);
      const names = parseXmlish(r.text);
      assert.equal(names[0], 'feed');
      for (const required of ['id', 'title', 'updated', 'author']) assert.ok(names.includes(required), `${path} has <${required}>`);
      assert.ok(!r.text.includes(priv), `${path} hides the private job`);
      assert.doesNotMatch(r.text, /<title>[A-Z]+ secret-build<\/title>/, `${path} has no entry for the private job`);
    }
    const all = await get(`${url}/feeds/failures.atom`);
    const entries = all.text.split('<entry>').slice(1);
    assert.equal(entries.length, 1);
    assert.match(entries[0]!, new RegExp(`<id>http://127\\.0\\.0\\.1:\\d+/job/${pub}</id>`));
    assert.match(entries[0]!, /<title>FAIL public-build<\/title>/);
    for (const el of ['id', 'title', 'updated', 'published', 'author', 'summary']) assert.match(entries[0]!, new RegExp(`<${el}[ >]`), el);
    const own = await get(`${url}/feeds/job/secret-build.atom`, { token: rig.admin.token });
    assert.equal(own.text.split('<entry>').length - 1, 1, 'the owner sees the private job in the feed');
    const json = await get(`${url}/feeds/jobs.atom`, asJson);
    assert.deepEqual(json.json.entries.map((e: any) => e.job), [pub]);
  });

  test('an anonymous reader may not press admin buttons (403)', async () => {
    const r = await get(`${url}/control/hold`, { form: { csrf: 'x' } });
    assert.equal(r.status, 403);
    assert.equal(rig.c.core.scheduler.hold, false);
  });
});

describe('feeds with anonymous read off', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ factory: false });
  });
  after(() => rig.close());

  test('a feed without a token or session is 401 (feed readers cannot follow a sign-in form)', async () => {
    const r = await get(`${rig.c.url}/feeds/jobs.atom`, { accept: 'application/atom+xml' });
    assert.equal(r.status, 401);
    const ok = await get(`${rig.c.url}/feeds/jobs.atom`, { token: rig.admin.token });
    assert.equal(ok.status, 200);
    parseXmlish(ok.text);
  });
});
