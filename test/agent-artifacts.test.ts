/**
 * The agent's side of artifacts (docs/artifacts.md): the output scan in rule
 * space, input paths and downloads (against a real HTTP server on port 0
 * that drops connections), and the uploader against an in-process fake
 * coordinator that answers upload messages as the real one does. End-to-end
 * tests with a real coordinator live elsewhere.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { FromAgent, InputFile, JobAssignment, LogRecord, Message, PeerClientEvents } from '../protocol/index.js';
import { REC } from '../protocol/index.js';
import { runWithArtifacts } from '../agent/artifacts.js';
import { InputError, downloadInputs, httpBaseOf, inputPathProblem, prepareInputDir } from '../agent/inputs.js';
import { scanOutputs } from '../agent/outputs.js';
import type { OutputRoots, ScannedOutput } from '../agent/outputs.js';
import { Runner } from '../agent/runner.js';
import { uploadOutputs } from '../agent/uploader.js';
import type { UploadOptions } from '../agent/uploader.js';

const JOB = '01M7YJXN47H1SK50BSZ6DYDXNB';
const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A job's work and input directories in a fresh temporary directory. */
function jobDirs(): OutputRoots & { base: string } {
  const base = mkdtempSync(join(tmpdir(), 'bw-artifacts-'));
  dirs.push(base);
  const roots = { base, work: join(base, 'work'), input: join(base, 'input') };
  mkdirSync(roots.work);
  mkdirSync(roots.input);
  return roots;
}

function put(root: string, rel: string, content: string | Buffer): string {
  const p = join(root, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const paths = (files: ScannedOutput[]): string[] => files.map((f) => f.path);

/** Waits for a condition that events in this process will make true; fails after a bound rather than hanging. */
async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// ---- scanOutputs ----

test('"/work/" in a rule means the job\'s work directory, and "*" never crosses "/"', async () => {
  const r = jobDirs();
  put(r.work, 'out/a.txt', 'a');
  put(r.work, 'out/sub/b.txt', 'b');
  const scan = await scanOutputs(['/work/out/*'], r);
  assert.deepEqual(paths(scan.files), ['/work/out/a.txt']);
  assert.equal(scan.files[0]!.hostPath, join(r.work, 'out/a.txt'));
  assert.equal(scan.files[0]!.size, 1);
  assert.equal(scan.files[0]!.mtime, Math.trunc(statSync(join(r.work, 'out/a.txt')).mtimeMs));
  assert.deepEqual(scan.errors, []);
});

test('"**" matches any depth of directories, zero included', async () => {
  const r = jobDirs();
  put(r.work, 'a.log', '');
  put(r.work, 'x/y/b.log', '');
  put(r.work, 'x/c.txt', '');
  const scan = await scanOutputs(['/work/**/*.log'], r);
  assert.deepEqual(paths(scan.files), ['/work/a.log', '/work/x/y/b.log']);
});

test('"!" rules exclude files other rules select', async () => {
  const r = jobDirs();
  put(r.work, 'out/a.tar.gz', '');
  put(r.work, 'out/b.tmp', '');
  const scan = await scanOutputs(['/work/out/*', '!/work/out/*.tmp'], r);
  assert.deepEqual(paths(scan.files), ['/work/out/a.tar.gz']);
});

test('an "=" rule that matches no file is reported unsatisfied', async () => {
  const r = jobDirs();
  put(r.work, 'out/a.txt', '');
  const scan = await scanOutputs(['/work/out/*', '=/work/out/*.tar.gz'], r);
  assert.deepEqual(scan.unsatisfied.map((u) => u.rule), ['=/work/out/*.tar.gz']);
  const ok = await scanOutputs(['=/work/out/*.txt'], r);
  assert.deepEqual(ok.unsatisfied, []);
});

test('a file matched by any "%" rule may change; others may not', async () => {
  const r = jobDirs();
  put(r.work, 'out/a.log', '');
  put(r.work, 'out/b.bin', '');
  const scan = await scanOutputs(['/work/out/*', '%/work/out/*.log'], r);
  assert.deepEqual(scan.files.map((f) => [f.path, f.allowChange]), [['/work/out/a.log', true], ['/work/out/b.bin', false]]);
});

test('"/input/" in a rule means the job\'s input directory; a rule without globs names one file', async () => {
  const r = jobDirs();
  put(r.input, 'dep/a.txt', 'x');
  put(r.work, 'exact.txt', 'y');
  put(r.work, 'other.txt', 'z');
  const scan = await scanOutputs(['/input/dep/*', '/work/exact.txt'], r);
  assert.deepEqual(paths(scan.files), ['/input/dep/a.txt', '/work/exact.txt']);
  assert.equal(scan.files[0]!.hostPath, join(r.input, 'dep/a.txt'));
});

test('a matched symlink to a file inside the work directory is uploaded as that file', async () => {
  const r = jobDirs();
  const target = put(r.work, 'real/data.bin', 'twelve bytes');
  mkdirSync(join(r.work, 'out'));
  symlinkSync('../real/data.bin', join(r.work, 'out/link.bin'));
  const scan = await scanOutputs(['/work/out/*'], r);
  assert.deepEqual(scan.errors, []);
  assert.equal(scan.files.length, 1);
  assert.equal(scan.files[0]!.path, '/work/out/link.bin');
  assert.equal(scan.files[0]!.size, 12);
  assert.equal(scan.files[0]!.hostPath, target);
});

test('a matched symlink pointing outside the work and input directories is refused, naming both ends', async () => {
  const r = jobDirs();
  const outside = put(r.base, 'secret.txt', 'no');
  mkdirSync(join(r.work, 'out'));
  symlinkSync(outside, join(r.work, 'out/leak.txt'));
  const scan = await scanOutputs(['/work/out/*'], r);
  assert.deepEqual(scan.files, []);
  assert.deepEqual(scan.errors, [`/work/out/leak.txt is a symlink to ${outside}, outside the job's work and input directories; refused`]);
});

test('directories reached through a symlink are never descended, in the walk or in a rule\'s prefix', async () => {
  const r = jobDirs();
  put(r.work, 'real/a.txt', '');
  symlinkSync(join(r.work, 'real'), join(r.work, 'linked'));
  const walk = await scanOutputs(['/work/**/*.txt'], r);
  assert.deepEqual(paths(walk.files), ['/work/real/a.txt']);
  const prefix = await scanOutputs(['/work/linked/*'], r);
  assert.deepEqual(prefix.files, []);
  assert.match(prefix.notes.join('\n'), /\/work\/linked is a symlink; directories reached through a symlink are not searched/);
});

test('the walk stops with an error after maxEntries directory entries', async () => {
  const r = jobDirs();
  for (let i = 0; i < 20; i++) put(r.work, `d/${i}.txt`, '');
  const scan = await scanOutputs(['/work/**/*.txt'], r, { maxEntries: 10 });
  assert.equal(scan.errors.length, 1);
  assert.match(scan.errors[0]!, /^output rules matched more than 10 directory entries \(stopped in \/work\/d\); narrow the rules$/);
});

// ---- inputs ----

test('input paths that are absolute or contain ".." or empty segments are refused before anything is fetched', async () => {
  assert.equal(inputPathProblem('dep/work/out/a.txt'), null);
  assert.equal(inputPathProblem('/etc/passwd'), 'is absolute');
  assert.equal(inputPathProblem('a/../../b'), 'has a ".." segment');
  assert.equal(inputPathProblem('a//b'), 'has an empty segment');
  assert.equal(inputPathProblem('a/'), 'has an empty segment');
  assert.equal(inputPathProblem(''), 'is empty');
  const r = jobDirs();
  const good: InputFile = { path: 'ok', sha256: sha(Buffer.from('x')), size: 1, mode: 0o644, url: '/never' };
  await assert.rejects(
    downloadInputs([good, { ...good, path: '../escape' }], { httpBase: 'http://127.0.0.1:9', token: 't', dir: r.input }),
    (err: Error) => err instanceof InputError && err.message === 'input path "../escape" has a ".." segment; refused',
  );
  assert.equal(existsSync(join(r.input, 'ok')), false, 'nothing is downloaded when any path is refused');
});

test('the HTTP base comes from the connect URL: ws to http, wss to https, a proxy prefix kept', () => {
  assert.equal(httpBaseOf('ws://127.0.0.1:8080/api/v1/connect'), 'http://127.0.0.1:8080');
  assert.equal(httpBaseOf('wss://ci.example.com/bw/api/v1/connect'), 'https://ci.example.com/bw');
});

test('a "shared" input directory is per job beside the work root; an explicit one must be empty or left over from this agent', () => {
  const r = jobDirs();
  const shared = prepareInputDir('shared', r.work, r.base, JOB);
  assert.equal(shared.path, join(r.work, `job-${JOB}-input`));
  assert.ok(statSync(shared.path).isDirectory());
  shared.remove();
  assert.equal(existsSync(shared.path), false);

  const explicit = prepareInputDir(r.input, r.work, r.base, JOB);
  assert.equal(explicit.path, r.input);
  put(r.input, 'from-a-job-that-crashed.txt', '');
  const again = prepareInputDir(r.input, r.work, r.base, JOB);
  assert.deepEqual(readdirSync(again.path), [], 'left over from this agent (its marker says so): emptied and reused');
  again.remove();
  assert.ok(existsSync(r.input), 'an explicit directory is emptied, not removed');

  put(r.input, 'stranger.txt', '');
  assert.throws(() => prepareInputDir(r.input, r.work, r.base, JOB), { message: `input directory ${r.input} cannot be used: it is not empty` });
});

test('a download resumes with a Range request after the connection drops, then is verified, chmodded and renamed into place', async (t) => {
  const body = Buffer.alloc(300_000, 7);
  body.write('start');
  const seen: Array<{ auth: string | undefined; range: string | undefined }> = [];
  const server = createServer((req, res) => {
    seen.push({ auth: req.headers.authorization, range: req.headers.range });
    if (req.headers.authorization !== 'Bearer tok') {
      res.writeHead(401).end();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (!m) {
      // First request: promise everything, send a part, and drop the connection.
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 100_000), () => res.destroy());
      return;
    }
    const from = Number(m[1]);
    res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
    res.end(body.subarray(from));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const r = jobDirs();
  const file: InputFile = { path: 'dep/work/out/a.bin', sha256: sha(body), size: body.length, mode: 0o4755, url: '/api/v1/agent/jobs/J/inputs/x' };
  const lines: string[] = [];
  await downloadInputs([file], { httpBase: base, token: 'tok', dir: r.input, backoffBaseMs: 1, backoffCapMs: 5, log: (l) => lines.push(l) });
  const dest = join(r.input, 'dep/work/out/a.bin');
  assert.ok(readFileSync(dest).equals(body));
  assert.equal(statSync(dest).mode & 0o7777, 0o755, 'permission bits only: no setuid from an upload');
  assert.equal(existsSync(`${dest}.part`), false);
  assert.equal(seen.length, 2);
  assert.match(seen[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(seen[1]!.range!)![0]) > 0, 'the second request resumes past byte 0');
  assert.match(lines.join('\n'), /retrying from byte \d+/);

  await assert.rejects(
    downloadInputs([{ ...file, path: 'b' }], { httpBase: base, token: 'wrong', dir: r.input }),
    { message: 'input b: GET /api/v1/agent/jobs/J/inputs/x answered 401 Unauthorized' },
  );
  await assert.rejects(
    downloadInputs([{ ...file, path: 'c', sha256: sha(Buffer.from('other')) }], { httpBase: base, token: 'tok', dir: r.input, backoffBaseMs: 1 }),
    { message: `input c: downloaded ${body.length} bytes with sha256 ${sha(body)}, expected ${body.length} bytes with sha256 ${sha(Buffer.from('other'))}` },
  );
  assert.equal(existsSync(join(r.input, 'c')), false, 'a file that fails verification is not left in place');
});

// ---- uploader ----

/**
 * A fake coordinator behind a fake connection: answers upload_begin,
 * chunk, upload_end and upload_abort as docs/artifacts.md says, and lets a
 * test drop and restore the connection, hold acks, or corrupt an upload.
 */
class FakeLink extends EventEmitter<PeerClientEvents> {
  isOpen = true;
  bufferedAmount = 0;
  autoAck = true;
  /** Answer the next upload_end with HASH_MISMATCH whatever it says. */
  corruptNext = false;
  readonly sent: FromAgent[] = [];
  readonly parts = new Map<string, Buffer>();
  readonly committed = new Map<string, { path: string; sha256: string }>();
  readonly aborted: string[] = [];
  readonly protocolErrors: string[] = [];
  onChunk: ((offset: number, length: number) => void) | null = null;
  #paths = new Map<string, string>();
  #session = 0;

  send(msg: Message): boolean {
    if (!this.isOpen) return false;
    this.sent.push(msg as FromAgent);
    const session = this.#session;
    // The coordinator answers later, as over a socket; answers to a dropped session are lost.
    setImmediate(() => {
      if (session === this.#session) this.#handle(msg as FromAgent);
    });
    return true;
  }

  drop(): void {
    this.isOpen = false;
    this.#session++;
    this.emit('disconnected', 'test drop');
  }

  /** Reconnects with only `durable` bytes of each part kept, as after a coordinator restart. */
  reconnect(durable: number): void {
    for (const [id, b] of this.parts) this.parts.set(id, b.subarray(0, Math.min(durable, b.length)));
    this.isOpen = true;
    this.emit('open', { type: 'welcome', worker: 'w', job: null, heartbeatMs: 10_000 });
  }

  reply(msg: Message): void {
    if (this.isOpen) this.emit('message', msg);
  }

  chunks(): Array<{ upload: string; offset: number; length: number }> {
    return this.sent.flatMap((m) => (m.type === 'chunk' ? [{ upload: m.upload, offset: m.offset, length: m.data.length }] : []));
  }

  #handle(msg: FromAgent): void {
    switch (msg.type) {
      case 'upload_begin': {
        this.#paths.set(msg.upload, msg.path);
        if (this.committed.has(msg.upload)) return this.reply({ type: 'upload_done', upload: msg.upload, sha256: Buffer.from(this.committed.get(msg.upload)!.sha256, 'hex') });
        if (!this.parts.has(msg.upload)) this.parts.set(msg.upload, Buffer.alloc(0));
        return this.reply({ type: 'upload_ready', upload: msg.upload, offset: this.parts.get(msg.upload)!.length });
      }
      case 'chunk': {
        const part = this.parts.get(msg.upload);
        if (!part || part.length !== msg.offset) {
          this.protocolErrors.push(`chunk at ${msg.offset} of ${msg.upload}, holding ${part?.length}`);
          return;
        }
        const next = Buffer.concat([part, msg.data]);
        this.parts.set(msg.upload, next);
        this.onChunk?.(msg.offset, msg.data.length);
        if (this.autoAck) this.reply({ type: 'chunk_ack', upload: msg.upload, offset: next.length });
        return;
      }
      case 'upload_end': {
        const part = this.parts.get(msg.upload) ?? Buffer.alloc(0);
        const digest = createHash('sha256').update(part).digest();
        if (this.corruptNext || !digest.equals(Buffer.from(msg.sha256)) || part.length !== msg.size) {
          this.corruptNext = false;
          this.parts.delete(msg.upload);
          return this.reply({ type: 'upload_failed', upload: msg.upload, code: 'HASH_MISMATCH', message: 'the bytes received do not hash to the sha256 given' });
        }
        this.committed.set(msg.upload, { path: this.#paths.get(msg.upload)!, sha256: digest.toString('hex') });
        return this.reply({ type: 'upload_done', upload: msg.upload, sha256: digest });
      }
      case 'upload_abort':
        this.aborted.push(msg.upload);
        this.parts.delete(msg.upload);
        return;
      default:
        return;
    }
  }
}

function uploadOpts(link: FakeLink, extra: Partial<UploadOptions> = {}): UploadOptions & { lines: string[] } {
  const lines: string[] = [];
  return { link, job: JOB, maxOutputBytes: 1 << 30, log: (l) => lines.push(l), lines, ...extra };
}

async function scanned(content: Buffer, rule = '/work/out/*'): Promise<{ roots: OutputRoots; files: ScannedOutput[]; host: string }> {
  const roots = jobDirs();
  const host = put(roots.work, 'out/a.bin', content);
  const scan = await scanOutputs([rule], roots);
  return { roots, files: scan.files, host };
}

test('the uploader keeps a 16 MiB window of 1 MiB chunks in flight before the first ack, never stop-and-wait', async () => {
  const body = Buffer.alloc(20 * 1024 * 1024, 1);
  const { files } = await scanned(body);
  const link = new FakeLink();
  link.autoAck = false;
  const opts = uploadOpts(link);
  const done = uploadOutputs(files, opts);
  await until('a full window', () => link.chunks().length === 16);
  // Give the uploader every chance to overrun the window before the first ack.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(link.chunks().length, 16, 'exactly 16 chunks (16 MiB) unacknowledged, then it waits');
  assert.ok(link.chunks().every((c) => c.length === 1024 * 1024));
  link.autoAck = true;
  const id = link.chunks()[0]!.upload;
  link.reply({ type: 'chunk_ack', upload: id, offset: link.parts.get(id)!.length });
  const r = await done;
  assert.deepEqual(r.failures, []);
  assert.deepEqual(r.committed.map((c) => [c.path, c.size, c.sha256]), [['/work/out/a.bin', body.length, sha(body)]]);
  assert.equal(link.chunks().length, 20);
});

test('after a reconnect the upload resumes under the same id from the coordinator\'s durable offset, without re-hashing', async () => {
  const body = Buffer.from(Array.from({ length: 10 * 1024 }, (_, i) => i % 251));
  const { files } = await scanned(body);
  const link = new FakeLink();
  let dropped = false;
  link.onChunk = (offset) => {
    if (offset === 4 * 1024 && !dropped) {
      dropped = true;
      link.drop();
      setImmediate(() => link.reconnect(2 * 1024));
    }
  };
  const r = await uploadOutputs(files, uploadOpts(link, { chunkBytes: 1024, windowBytes: 4 * 1024 }));
  assert.deepEqual(r.failures, []);
  assert.equal(r.committed[0]!.sha256, sha(body));
  const begins = link.sent.filter((m) => m.type === 'upload_begin');
  assert.equal(begins.length, 2);
  assert.equal(new Set(begins.map((b) => b.upload)).size, 1, 'the same upload id both times');
  const afterResume = link.sent.slice(link.sent.indexOf(begins[1]!) + 1).find((m) => m.type === 'chunk');
  assert.equal(afterResume?.type === 'chunk' ? afterResume.offset : -1, 2 * 1024, 'sending starts again at the durable offset');
  assert.deepEqual(link.protocolErrors, []);
});

test('a file whose mtime changed during upload fails naming the file and both times, with upload_abort and no upload_end', async () => {
  const { files, host } = await scanned(Buffer.alloc(4096, 2));
  const link = new FakeLink();
  const was = files[0]!.mtime;
  link.onChunk = () => utimesSync(host, new Date(was + 5000), new Date(was + 5000));
  const r = await uploadOutputs(files, uploadOpts(link, { chunkBytes: 1024 }));
  assert.deepEqual(r.committed, []);
  const now = Math.trunc(statSync(host).mtimeMs);
  assert.deepEqual(r.failures, [`/work/out/a.bin changed during upload: mtime ${new Date(was).toISOString()} → ${new Date(now).toISOString()}`]);
  assert.equal(link.aborted.length, 1);
  assert.equal(link.sent.some((m) => m.type === 'upload_end'), false);
});

test('a "%" rule lets a file whose mtime changed be uploaded as read, with a WORKER note', async () => {
  const body = Buffer.alloc(4096, 2);
  const { files, host } = await scanned(body, '%/work/out/*');
  const link = new FakeLink();
  const was = files[0]!.mtime;
  link.onChunk = () => utimesSync(host, new Date(was + 5000), new Date(was + 5000));
  const opts = uploadOpts(link, { chunkBytes: 1024 });
  const r = await uploadOutputs(files, opts);
  assert.deepEqual(r.failures, []);
  assert.equal(r.committed[0]!.sha256, sha(body));
  assert.equal(r.committed[0]!.mtime, Math.trunc(statSync(host).mtimeMs), 'upload_end carries the mtime after the read');
  assert.match(opts.lines.join('\n'), /^\/work\/out\/a\.bin changed during upload \(mtime .*\); uploaded the 4096 bytes read \(a % rule allows this\)$/m);
});

test('a file appended to during upload fails without a "%" rule, naming the old and new size', async () => {
  const { files, host } = await scanned(Buffer.alloc(100, 3));
  const link = new FakeLink();
  // Once: both 64-byte chunks may be on their way before the uploader looks again.
  let appended = false;
  link.onChunk = () => {
    if (!appended) appendFileSync(host, Buffer.alloc(100, 4));
    appended = true;
  };
  const r = await uploadOutputs(files, uploadOpts(link, { chunkBytes: 64 }));
  assert.equal(r.failures.length, 1);
  assert.match(r.failures[0]!, /^\/work\/out\/a\.bin changed during upload: size 100 → 200(, mtime .*)?$/);
  assert.equal(link.aborted.length, 1);
});

test('a file over maxOutputBytes is refused before any message is sent, naming its size and the limit', async () => {
  const { files } = await scanned(Buffer.alloc(2048));
  const link = new FakeLink();
  const r = await uploadOutputs(files, uploadOpts(link, { maxOutputBytes: 1000 }));
  assert.deepEqual(r.failures, ['/work/out/a.bin is 2048 bytes, over the coordinator\'s limit of 1000 bytes per output file']);
  assert.deepEqual(link.sent, []);
});

test('HASH_MISMATCH from the coordinator retries the file once from scratch under a new upload id', async () => {
  const body = Buffer.alloc(3000, 9);
  const { files } = await scanned(body);
  const link = new FakeLink();
  link.corruptNext = true;
  const opts = uploadOpts(link, { chunkBytes: 1024 });
  const r = await uploadOutputs(files, opts);
  assert.deepEqual(r.failures, []);
  const ids = new Set(link.sent.filter((m) => m.type === 'upload_begin').map((m) => m.upload));
  assert.equal(ids.size, 2);
  assert.equal(r.committed[0]!.sha256, sha(body));
  assert.match(opts.lines.join('\n'), /uploading it again from the start/);
});

test('a coordinator refusal fails the file with the coordinator\'s code and message', async () => {
  const { files } = await scanned(Buffer.alloc(10));
  const link = new FakeLink();
  const send = link.send.bind(link);
  link.send = (msg) => {
    if (msg.type !== 'upload_begin') return send(msg);
    setImmediate(() => link.reply({ type: 'upload_failed', upload: msg.upload, code: 'QUOTA_EXCEEDED', message: 'the artifact store is full (max_artifact_bytes)' }));
    return true;
  };
  const r = await uploadOutputs(files, uploadOpts(link));
  assert.deepEqual(r.failures, ['/work/out/a.bin: the coordinator refused the upload: QUOTA_EXCEEDED: the artifact store is full (max_artifact_bytes)']);
});

test('a "%" file that vanished during upload is skipped with a WORKER note; without "%" it fails', async () => {
  for (const rule of ['%/work/out/*', '/work/out/*']) {
    const { files, host } = await scanned(Buffer.alloc(4096), rule);
    const link = new FakeLink();
    link.onChunk = () => rmSync(host, { force: true });
    const opts = uploadOpts(link, { chunkBytes: 1024 });
    const r = await uploadOutputs(files, opts);
    assert.deepEqual(r.committed, []);
    if (rule.startsWith('%')) {
      assert.deepEqual([r.skipped, r.failures], [['/work/out/a.bin'], []]);
      assert.match(opts.lines.join('\n'), /\/work\/out\/a\.bin vanished during upload; skipped/);
    } else {
      assert.deepEqual(r.failures, ['/work/out/a.bin vanished during upload']);
    }
    assert.equal(link.aborted.length, 1);
  }
});

// ---- the job around the tasks ----

test('outputs are uploaded after a failed task, tasks see BUILDWIRE_INPUT, and an unsatisfied "=" rule joins the reason', async () => {
  const roots = jobDirs();
  const link = new FakeLink();
  const recs: LogRecord[] = [];
  const job: JobAssignment = {
    id: JOB, name: 'j', target: 'local', worker: 'w', maxRuntimeMs: 60_000, store: {}, buildomat: false, issuedAt: 0,
    tasks: [{ name: 'build', script: 'mkdir -p out && printf %s "$BUILDWIRE_INPUT" > out/input.txt && exit 3', env: {}, envClear: false }],
    outputRules: ['/work/out/*', '=/work/out/*.tar.gz'], maxOutputBytes: 1 << 20,
  };
  const runner = new Runner({ workdir: roots.work, inputDir: roots.input, maxLineBytes: 1 << 20, killGraceMs: 1000, emit: (r) => recs.push(r) });
  const lines: string[] = [];
  const end = await runWithArtifacts(runner, { job, link, httpBase: 'http://127.0.0.1:9', roots, worker: (l) => lines.push(l), signal: new AbortController().signal });
  assert.deepEqual(end, { result: 'failed', reason: 'task 0 (build) exited with status 3; outputs: output rule "=/work/out/*.tar.gz" matched no file' });
  assert.deepEqual([...link.committed.values()].map((c) => c.path), ['/work/out/input.txt']);
  assert.equal(readFileSync(join(roots.work, 'out/input.txt'), 'utf8'), roots.input);
  const digest = sha(Buffer.from(roots.input));
  assert.ok(lines.includes(`uploaded /work/out/input.txt (${roots.input.length} bytes, sha256 ${digest.slice(0, 12)}…)`), lines.join('\n'));
  assert.ok(recs.some((r) => r[1] === REC.TASK));
});

test('a cancelled job uploads nothing', async () => {
  const roots = jobDirs();
  put(roots.work, 'out/a.txt', 'a');
  const link = new FakeLink();
  const job: JobAssignment = {
    id: JOB, name: 'j', target: 'local', worker: 'w', maxRuntimeMs: 60_000, store: {}, buildomat: false, issuedAt: 0,
    tasks: [{ name: 'wait', script: 'sleep 30', env: {}, envClear: false }], outputRules: ['/work/out/*'],
  };
  let started!: () => void;
  const taskStarted = new Promise<void>((r) => (started = r));
  const runner = new Runner({ workdir: roots.work, maxLineBytes: 1 << 20, killGraceMs: 1000, emit: (r) => r[1] === REC.TASK && started() });
  const ac = new AbortController();
  const ending = runWithArtifacts(runner, { job, link, httpBase: 'http://127.0.0.1:9', roots, worker: () => {}, signal: ac.signal });
  await taskStarted;
  runner.cancel('by the test');
  ac.abort('by the test');
  const end = await ending;
  assert.deepEqual(end, { result: 'failed', reason: 'cancelled: by the test' });
  assert.deepEqual(link.sent, []);
});
