/**
 * Serving stored files: serveBlob's validators, conditions and ranges,
 * contentTypeOf, the router's `*name` wildcard, and downloads end to end
 * against both transport implementations.
 */

import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync, type ReadStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BadRequest, MethodNotAllowed, NotFound, errorResponse } from '../coordinator/errors.js';
import { startServer, type HttpRequest, type HttpResponse, type RunningServer } from '../coordinator/http/index.js';
import { contentTypeOf, serveBlob, type BlobSource } from '../coordinator/http/ranges.js';
import { Router, json } from '../coordinator/router.js';

const BYTES = randomBytes(10_000);
const SHA = createHash('sha256').update(BYTES).digest('hex');
const ETAG = `"${SHA}"`;
const MODIFIED = Date.UTC(2030, 0, 2, 3, 4, 5);
const NEVER = new AbortController().signal;

function get(headers: Record<string, string> = {}, method = 'GET', path = '/f'): HttpRequest {
  return { method, path, query: new URLSearchParams(), headers, body: Buffer.alloc(0), remoteAddress: '127.0.0.1' };
}

/** A source over `bytes` that records each open() and yields 1000-byte chunks. */
function memory(bytes: Buffer, extra: Partial<BlobSource> = {}): BlobSource & { opened: [number, number][] } {
  const opened: [number, number][] = [];
  return {
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    contentType: 'application/octet-stream',
    opened,
    async *open(start, end) {
      opened.push([start, end]);
      for (let i = start; i <= end; i += 1000) yield bytes.subarray(i, Math.min(i + 1000, end + 1));
    },
    ...extra,
  };
}

async function bodyOf(r: HttpResponse): Promise<Buffer> {
  const b = r.body;
  if (b === undefined) return Buffer.alloc(0);
  if (typeof b === 'string') return Buffer.from(b);
  if (b instanceof Uint8Array) return Buffer.from(b);
  const parts: Uint8Array[] = [];
  for await (const c of b) parts.push(c);
  return Buffer.concat(parts);
}

/** Asserts a 200 with the whole file. */
async function assertWhole(r: HttpResponse, src: ReturnType<typeof memory>): Promise<void> {
  assert.equal(r.status, 200);
  assert.equal(r.headers?.['content-range'], undefined);
  assert.equal(r.length, src.size);
  assert.ok((await bodyOf(r)).equals(BYTES));
}

describe('serveBlob', () => {
  it('a plain GET is 200 with the whole file, its type, ETag "<sha256>", Accept-Ranges, Cache-Control and nosniff', async () => {
    const src = memory(BYTES, { contentType: 'application/gzip' });
    const r = serveBlob(get(), src, NEVER);
    assert.deepEqual(r.headers, {
      etag: ETAG,
      'cache-control': 'private, no-cache',
      'x-content-type-options': 'nosniff',
      'accept-ranges': 'bytes',
      'content-type': 'application/gzip',
    });
    await assertWhole(r, src);
    assert.deepEqual(src.opened, [[0, BYTES.length - 1]]);
  });

  it('Last-Modified is sent as an IMF-fixdate when known; Content-Disposition only when a file name is given', () => {
    const r = serveBlob(get(), memory(BYTES, { lastModified: MODIFIED, fileName: 'résumé "final" 100%.txt' }), NEVER);
    assert.equal(r.headers?.['last-modified'], 'Wed, 02 Jan 2030 03:04:05 GMT');
    assert.equal(r.headers?.['content-disposition'],
      `inline; filename="r_sum_ _final_ 100_.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%20100%25.txt`);
    assert.equal(serveBlob(get(), memory(BYTES), NEVER).headers?.['content-disposition'], undefined);
  });

  it('the file is opened only when its body is read, so HEAD and a closed body never open it', async () => {
    const src = memory(BYTES);
    const r = serveBlob(get({}, 'HEAD'), src, NEVER);
    assert.equal(r.length, BYTES.length);
    const it = (r.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    await it.return?.();
    assert.deepEqual(src.opened, []);
  });

  it('open() gets the abort signal of the request', async () => {
    const ac = new AbortController();
    let got: AbortSignal | undefined;
    const src = memory(BYTES, { async *open(_s, _e, signal) { got = signal; yield BYTES; } });
    await bodyOf(serveBlob(get(), src, ac.signal));
    assert.equal(got, ac.signal);
  });

  for (const [range, start, end] of [
    ['bytes=0-0', 0, 0],
    ['bytes=100-1099', 100, 1099],
    ['bytes=9000-', 9000, 9999],
    ['bytes=9000-20000', 9000, 9999],
    ['bytes=-10', 9990, 9999],
    ['bytes=-20000', 0, 9999],
    ['BYTES=5-6', 5, 6],
    ['bytes=, 5-6 ,', 5, 6],
    ['bytes=0-99999999999999999999999', 0, 9999],
  ] as const) {
    it(`Range ${JSON.stringify(range)} is 206 with bytes ${start}-${end} and Content-Range, reading only those bytes`, async () => {
      const src = memory(BYTES);
      const r = serveBlob(get({ range }), src, NEVER);
      assert.equal(r.status, 206);
      assert.equal(r.headers?.['content-range'], `bytes ${start}-${end}/${BYTES.length}`);
      assert.equal(r.headers?.['content-type'], 'application/octet-stream');
      assert.equal(r.length, end - start + 1);
      assert.ok((await bodyOf(r)).equals(BYTES.subarray(start, end + 1)));
      assert.deepEqual(src.opened, [[start, end]]);
    });
  }

  for (const range of ['bytes=10000-', 'bytes=10000-10005', 'bytes=99999999999999999999-', 'bytes=-0']) {
    it(`an unsatisfiable Range ${JSON.stringify(range)} is 416 RANGE_NOT_SATISFIABLE with Content-Range bytes */size, naming the range and the size`, async () => {
      const src = memory(BYTES);
      const r = serveBlob(get({ range }), src, NEVER);
      assert.equal(r.status, 416);
      assert.equal(r.headers?.['content-range'], `bytes */${BYTES.length}`);
      assert.equal(r.headers?.['content-type'], 'application/json');
      assert.equal(r.headers?.['x-content-type-options'], 'nosniff');
      assert.deepEqual(JSON.parse((await bodyOf(r)).toString()), {
        code: 'RANGE_NOT_SATISFIABLE',
        message: `range ${JSON.stringify(range)} is not satisfiable: the file has ${BYTES.length} bytes`,
      });
      assert.deepEqual(src.opened, []);
    });
  }

  it('several ranges are answered 200 with the whole file (no multipart/byteranges)', async () => {
    for (const range of ['bytes=0-0,5-9', 'bytes=0-1, -5', 'bytes=0-1,20000-']) {
      await assertWhole(serveBlob(get({ range }), memory(BYTES), NEVER), memory(BYTES));
    }
  });

  it('a malformed Range or another unit is ignored (RFC 9110 14.2): 200 with the whole file', async () => {
    for (const range of ['bytes=5-2', 'bytes=abc', 'bytes=', 'bytes=-', 'bytes=1-2-3', 'bytes = 0-1', 'bytes 0-1', 'items=0-1', '0-1', 'bytes=0x10-']) {
      const r = serveBlob(get({ range }), memory(BYTES), NEVER);
      assert.equal(r.status, 200, range);
      await assertWhole(r, memory(BYTES));
    }
  });

  it('If-None-Match matching the ETag (exact, W/, *, or in a list) is 304 without a body or representation headers', () => {
    for (const inm of [ETAG, `W/${ETAG}`, '*', ` "a", W/"b" ,${ETAG}`, `"x",,${ETAG}`]) {
      const src = memory(BYTES, { lastModified: MODIFIED, fileName: 'f.txt' });
      const r = serveBlob(get({ 'if-none-match': inm, range: 'bytes=0-1' }), src, NEVER);
      assert.equal(r.status, 304, inm);
      assert.equal(r.body, undefined);
      assert.equal(r.length, undefined);
      assert.deepEqual(r.headers, { etag: ETAG, 'cache-control': 'private, no-cache', 'x-content-type-options': 'nosniff' });
      assert.deepEqual(src.opened, []);
    }
  });

  it('If-None-Match with other tags, or a list that stops parsing before ours, is served in full', async () => {
    for (const inm of ['"other"', `"${SHA.toUpperCase()}"`, SHA, `"x" junk ${ETAG}`, '"*"']) {
      const r = serveBlob(get({ 'if-none-match': inm }), memory(BYTES), NEVER);
      assert.equal(r.status, 200, inm);
      await assertWhole(r, memory(BYTES));
    }
  });

  it('If-Range with the ETag honours the Range; a weak tag, another tag or a date gets 200 with the whole file', async () => {
    assert.equal(serveBlob(get({ range: 'bytes=0-1', 'if-range': ETAG }), memory(BYTES), NEVER).status, 206);
    const dated = memory(BYTES, { lastModified: MODIFIED });
    for (const ifRange of [`W/${ETAG}`, '"other"', new Date(MODIFIED).toUTCString()]) {
      const r = serveBlob(get({ range: 'bytes=0-1', 'if-range': ifRange }), dated, NEVER);
      assert.equal(r.status, 200, ifRange);
      await assertWhole(r, memory(BYTES));
    }
  });

  it('a zero-length file is 200 with length 0, whatever the Range, and is never opened', async () => {
    const src = memory(Buffer.alloc(0));
    for (const range of [undefined, 'bytes=0-0', 'bytes=-1', 'bytes=5-']) {
      const r = serveBlob(get(range === undefined ? {} : { range }), src, NEVER);
      assert.equal(r.status, 200);
      assert.equal(r.headers?.['content-range'], undefined);
      assert.equal((await bodyOf(r)).length, 0);
    }
    assert.deepEqual(src.opened, []);
  });

  it('a source with an invalid size, sha256 or lastModified is our bug: TypeError at once', () => {
    assert.throws(() => serveBlob(get(), memory(BYTES, { size: -1 }), NEVER), { name: 'TypeError', message: 'blob size must be a non-negative safe integer, got -1' });
    assert.throws(() => serveBlob(get(), memory(BYTES, { sha256: 'abc"' }), NEVER), { name: 'TypeError', message: 'blob sha256 must be 64 hex digits, got "abc\\""' });
    assert.throws(() => serveBlob(get(), memory(BYTES, { lastModified: Number.NaN }), NEVER), { name: 'TypeError', message: 'blob lastModified must be a time in milliseconds, got NaN' });
  });
});

describe('contentTypeOf', () => {
  it('text files are text/plain; charset=utf-8', () => {
    for (const p of ['a.txt', 'build.log', 'README.md', 'dir/NOTES.TXT', 'data.json']) assert.equal(contentTypeOf(p), 'text/plain; charset=utf-8', p);
  });

  it('HTML, XML and SVG are text/plain so that an uploaded page never renders on our origin', () => {
    for (const p of ['index.html', 'x.HTM', 'a.xhtml', 'feed.xml', 'icon.svg']) assert.equal(contentTypeOf(p), 'text/plain; charset=utf-8', p);
  });

  it('archives, images and other binaries get their type from the last extension', () => {
    const table: Record<string, string> = {
      'out/app.tar.gz': 'application/gzip', 'a.tgz': 'application/gzip', 'a.tar': 'application/x-tar', 'a.zip': 'application/zip',
      'a.xz': 'application/x-xz', 'a.zst': 'application/zstd', 'a.bz2': 'application/x-bzip2', 'os.iso': 'application/x-iso9660-image',
      'disk.img': 'application/octet-stream', 'p.png': 'image/png', 'p.JPG': 'image/jpeg', 'p.jpeg': 'image/jpeg', 'p.gif': 'image/gif',
      'doc.pdf': 'application/pdf', 'm.wasm': 'application/wasm',
    };
    for (const [p, t] of Object.entries(table)) assert.equal(contentTypeOf(p), t, p);
  });

  it('unknown or missing extensions, dotfiles and dots in directory names are application/octet-stream', () => {
    for (const p of ['Makefile', 'a.unknownext', '.bashrc', 'conf.d/settings', 'trailing.', '']) assert.equal(contentTypeOf(p), 'application/octet-stream', p);
  });
});

describe('Router wildcard', () => {
  const ok = (tag: string) => ({ params }: { params: Record<string, string> }) => json(200, { tag, params });
  const router = new Router();
  router.add('GET', '/api/v1/jobs/:id/outputs', ok('list'));
  router.add('GET', '/api/v1/jobs/:id/outputs/*path', ok('file'));
  router.add('GET', '/api/v1/jobs/:id', ok('job'));
  const route = async (path: string, method = 'GET'): Promise<{ tag: string; params: Record<string, string> }> =>
    JSON.parse((await router.handle(get({}, method, path), NEVER)).body as string);

  it('*name takes the rest of the path, each segment percent-decoded, joined with "/"', async () => {
    assert.deepEqual(await route('/api/v1/jobs/J1/outputs/dir/sub%20dir/file%23.txt'), { tag: 'file', params: { id: 'J1', path: 'dir/sub dir/file#.txt' } });
    assert.deepEqual(await route('/api/v1/jobs/J1/outputs/a'), { tag: 'file', params: { id: 'J1', path: 'a' } });
    assert.deepEqual(await route('/api/v1/jobs/J1/outputs/..a/b.c/...'), { tag: 'file', params: { id: 'J1', path: '..a/b.c/...' } });
  });

  it('*name needs at least one segment: the bare prefix (with or without "/") goes to the exact route', async () => {
    assert.equal((await route('/api/v1/jobs/J1/outputs')).tag, 'list');
    assert.equal((await route('/api/v1/jobs/J1/outputs/')).tag, 'list');
  });

  it('exact patterns still match only paths of their length', async () => {
    assert.deepEqual(await route('/api/v1/jobs/J%201'), { tag: 'job', params: { id: 'J 1' } });
    await assert.rejects(route('/api/v1/jobs/J1/other'), (e) => e instanceof NotFound && e.message === 'no such path: /api/v1/jobs/J1/other');
  });

  it('HEAD is served by the GET wildcard route; another method is 405', async () => {
    assert.equal((await route('/api/v1/jobs/J1/outputs/a', 'HEAD')).tag, 'file');
    await assert.rejects(route('/api/v1/jobs/J1/outputs/a', 'DELETE'), MethodNotAllowed);
  });

  for (const [path, message] of [
    ['a//b', 'path "a//b" has an empty segment (segment 2); a file path has no empty, "." or ".." segments'],
    ['a/b/', 'path "a/b/" has an empty segment (segment 3); a file path has no empty, "." or ".." segments'],
    ['a/./b', 'path "a/./b" has a "." segment (segment 2); a file path has no empty, "." or ".." segments'],
    ['..', 'path ".." has a ".." segment (segment 1); a file path has no empty, "." or ".." segments'],
    ['a/../../etc/passwd', 'path "a/../../etc/passwd" has a ".." segment (segment 2); a file path has no empty, "." or ".." segments'],
    ['%2e%2E/x', 'path "%2e%2E/x" has a ".." segment (segment 1); a file path has no empty, "." or ".." segments'],
    ['a/..%2F..%2Fsecret', 'path segment "..%2F..%2Fsecret" encodes a "/"; a file path separates its segments with a plain "/"'],
    ['a/%zz', 'path segment "%zz" is not valid percent-encoding'],
  ] as const) {
    it(`a wildcard rest ${JSON.stringify(path)} is 400 BAD_REQUEST naming it`, async () => {
      await assert.rejects(route(`/api/v1/jobs/J1/outputs/${path}`), (e) => {
        assert.ok(e instanceof BadRequest);
        assert.equal(e.message, message);
        return true;
      });
    });
  }

  it('a wildcard that is not the last segment, or has no name, is refused when the route is added', () => {
    const message = (p: string): string => `route pattern ${JSON.stringify(p)}: a wildcard must be the last segment and named, like /files/*path`;
    assert.throws(() => new Router().add('GET', '/a/*p/b', ok('x')), { name: 'TypeError', message: message('/a/*p/b') });
    assert.throws(() => new Router().add('GET', '/a/*', ok('x')), { name: 'TypeError', message: message('/a/*') });
  });
});

for (const kind of ['uws', 'node'] as const) {
  describe(`downloads end to end (${kind})`, () => {
    const SIZE = 8 * 1024 * 1024 + 123; // several reads and socket buffers' worth
    const dir = mkdtempSync(join(tmpdir(), 'bw-downloads-'));
    const file = join(dir, 'blob');
    const data = randomBytes(SIZE);
    const sha = createHash('sha256').update(data).digest('hex');
    const opens: [number, number][] = [];
    const streams: ReadStream[] = [];
    const logs: string[] = [];
    let server: RunningServer;

    before(async () => {
      writeFileSync(file, data);
      const router = new Router();
      router.add('GET', '/files/*path', ({ req, params, signal }) => {
        if (params.path !== 'dist/app.tar.gz') throw new NotFound(`no file ${params.path}`);
        return serveBlob(req, {
          size: SIZE, sha256: sha, contentType: contentTypeOf(params.path), fileName: 'app.tar.gz', lastModified: MODIFIED,
          open: (start, end, sig) => {
            opens.push([start, end]);
            const s = createReadStream(file, { start, end, signal: sig, highWaterMark: 256 * 1024 });
            streams.push(s);
            return s;
          },
        }, signal);
      });
      server = await startServer({
        host: '127.0.0.1', port: 0, maxBodyBytes: 1024, ws: [], prefer: kind, log: (l) => logs.push(l),
        handler: async (req, signal) => {
          try {
            return await router.handle(req, signal);
          } catch (err) {
            return errorResponse(err, (l) => logs.push(l));
          }
        },
      });
    });
    after(async () => {
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const url = (): string => `${server.url}/files/dist/app.tar.gz`;

    it('GET streams the whole file with Content-Length, type from the name, ETag and Last-Modified', { timeout: 30_000 }, async () => {
      const r = await fetch(url());
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-length'), String(SIZE));
      assert.equal(r.headers.get('transfer-encoding'), null);
      assert.equal(r.headers.get('content-type'), 'application/gzip');
      assert.equal(r.headers.get('etag'), `"${sha}"`);
      assert.equal(r.headers.get('accept-ranges'), 'bytes');
      assert.equal(r.headers.get('last-modified'), 'Wed, 02 Jan 2030 03:04:05 GMT');
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('content-disposition'), `inline; filename="app.tar.gz"; filename*=UTF-8''app.tar.gz`);
      const got = Buffer.from(await r.arrayBuffer());
      assert.equal(createHash('sha256').update(got).digest('hex'), sha);
    });

    it('Range requests get 206 with exactly the asked bytes and Content-Range', { timeout: 30_000 }, async () => {
      for (const [range, start, end] of [['bytes=0-99', 0, 99], ['bytes=5000000-', 5_000_000, SIZE - 1], ['bytes=-1000', SIZE - 1000, SIZE - 1]] as const) {
        const r = await fetch(url(), { headers: { range } });
        assert.equal(r.status, 206, range);
        assert.equal(r.headers.get('content-range'), `bytes ${start}-${end}/${SIZE}`);
        assert.equal(r.headers.get('content-length'), String(end - start + 1));
        assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(start, end + 1)), range);
      }
    });

    it('If-None-Match with the ETag is 304 with no body, and the file is not opened', async () => {
      const before = opens.length;
      const r = await fetch(url(), { headers: { 'if-none-match': `W/"${sha}"` } });
      assert.equal(r.status, 304);
      assert.equal(r.headers.get('etag'), `"${sha}"`);
      assert.equal(r.headers.get('content-length'), null);
      assert.equal((await r.arrayBuffer()).byteLength, 0);
      assert.equal(opens.length, before);
    });

    it('an unsatisfiable Range is 416 with Content-Range bytes */size and RANGE_NOT_SATISFIABLE', async () => {
      const r = await fetch(url(), { headers: { range: `bytes=${SIZE}-` } });
      assert.equal(r.status, 416);
      assert.equal(r.headers.get('content-range'), `bytes */${SIZE}`);
      assert.deepEqual(await r.json(), { code: 'RANGE_NOT_SATISFIABLE', message: `range "bytes=${SIZE}-" is not satisfiable: the file has ${SIZE} bytes` });
    });

    it('HEAD gets the headers of the GET (Content-Length, ETag, Content-Range for a range) and no body, without opening the file', async () => {
      const before = opens.length;
      const whole = await fetch(url(), { method: 'HEAD' });
      assert.equal(whole.status, 200);
      assert.equal(whole.headers.get('content-length'), String(SIZE));
      assert.equal(whole.headers.get('etag'), `"${sha}"`);
      assert.equal((await whole.arrayBuffer()).byteLength, 0);
      const part = await fetch(url(), { method: 'HEAD', headers: { range: 'bytes=10-19' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-length'), '10');
      assert.equal(part.headers.get('content-range'), `bytes 10-19/${SIZE}`);
      assert.equal(opens.length, before);
    });

    it('a client that leaves mid-download closes the file stream, and the server keeps serving', { timeout: 30_000 }, async () => {
      const ac = new AbortController();
      const r = await fetch(url(), { signal: ac.signal });
      const reader = r.body!.getReader();
      await reader.read();
      ac.abort();
      await reader.closed.catch(() => {});
      const opened = streams.at(-1)!;
      for (let i = 0; i < 100 && !opened.closed; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(opened.closed, 'the file stream of the abandoned download is still open');
      const again = await fetch(url(), { headers: { range: 'bytes=0-9' } });
      assert.ok(Buffer.from(await again.arrayBuffer()).equals(data.subarray(0, 10)));
      assert.deepEqual(logs.filter((l) => l.includes('connection aborted') || l.includes('failed')), []);
    });

    it('a ".." in the wildcard path is 400 naming it, never a lookup', async () => {
      // fetch() and URL parsing would resolve the dots themselves, so this path goes out raw.
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: server.port, path: '/files/dist/../../etc/passwd', agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => { body += c.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(r.status, 400);
      assert.deepEqual(JSON.parse(r.body), {
        code: 'BAD_REQUEST',
        message: 'path "dist/../../etc/passwd" has a ".." segment (segment 2); a file path has no empty, "." or ".." segments',
      });
    });
  });
}
