/**
 * The CLI's artifact commands: `job run -i/--depends`, `job outputs`,
 * `job download`, `job publish`, `job delete` and `outputs find`.
 *
 * Three kinds of test, each running the compiled CLI as a child process:
 * - usage: bad values exit 64 before any request (the URL points at a closed port);
 * - a fake coordinator (node:http on 127.0.0.1:0) that plays a hostile or flaky
 *   peer: escaping output paths, a wrong ETag, a connection cut mid-download,
 *   failing chunk uploads;
 * - end to end: a real coordinator and local factory (startRig), real agents.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRig, type Rig } from './helpers.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const JOB_ID = '01J9Z3Q8W4M6T0Y2R5N7P9B1C3';
const OTHER_ID = '01J9Z3Q8W4M6T0Y2R5N7P9B1C4';
const MiB = 1024 * 1024;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  raw: Buffer;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Base environment of every run: no BUILDWIRE_* from the caller's shell. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('BUILDWIRE_')) env[k] = v;
  return env;
}

/** Runs the compiled CLI (asynchronously: a coordinator answering it may live in this process). */
function run(args: string[], o: { env: Record<string, string>; cwd: string }): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: o.env, cwd: o.cwd });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => {
      const raw = Buffer.concat(out);
      resolve({ code, stdout: raw.toString('utf8'), stderr, raw });
    });
    child.stdin.end();
  });
}

async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A fake coordinator: `handle` answers every request; it is closed by the returned function. */
async function fakeCoordinator(handle: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    Promise.resolve(handle(req, res)).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { code: 'TEST_BUG', message: String(e) });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, server, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** A job file (bash with #: TOML frontmatter) for the local target. */
function jobFile(name: string, frontmatter: string[], script: string[]): string {
  return ['#!/bin/bash', '#:', `#: name = "${name}"`, '#: variety = "basic"', '#: target = "local"', ...frontmatter.map((l) => `#: ${l}`), '', 'set -o errexit', ...script, ''].join('\n');
}

describe('buildwire job run -i/--depends and the artifact commands: usage (no coordinator contacted)', () => {
  let work: string;
  let env: Record<string, string>;
  const cli = (args: string[]) => run(args, { env, cwd: work });
  const RUN = ['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true'];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bw-cli-art-usage-'));
    writeFileSync(join(work, 'in.txt'), 'input\n');
    mkdirSync(join(work, 'adir'));
    // A closed port: any request would fail with exit 1, so exit 64 proves the check came first.
    env = { ...cleanEnv(), BUILDWIRE_URL: `http://127.0.0.1:${await closedPort()}`, BUILDWIRE_TOKEN: 'unused' };
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const usage = async (args: string[], message: string, command = 'job run') => {
    const r = await cli(args);
    assert.equal(r.code, 64, r.stderr);
    assert.equal(r.stderr, `buildwire: ${message}\nrun 'buildwire ${command} --help' for usage\n`);
  };

  it('rejects an input name with "/", ".", "..", an empty name, a space or 129 characters, naming the value and the rule', async () => {
    const rule = 'names are 1 to 128 of letters, digits, ".", "_", "-", and not "." or ".."';
    await usage([...RUN, '-i', 'a/b=in.txt'], `--input "a/b=in.txt": the input name "a/b" must not contain "/" (${rule})`);
    await usage([...RUN, '-i', '..=in.txt'], `--input "..=in.txt": the input name ".." must not be ".." (${rule})`);
    await usage([...RUN, '--input', '.=in.txt'], `--input ".=in.txt": the input name "." must not be "." (${rule})`);
    await usage([...RUN, '-i', '=in.txt'], `--input "=in.txt": the input name "" must not be empty (${rule})`);
    await usage([...RUN, '-i', 'a b=in.txt'], `--input "a b=in.txt": the input name "a b" contains " " (${rule})`);
    const long = 'n'.repeat(129);
    await usage([...RUN, '-i', `${long}=in.txt`], `--input "${long}=in.txt": the input name "${long}" is 129 characters long, more than 128 (${rule})`);
  });

  it('accepts a 128-character input name with every allowed character class (and then needs the coordinator)', async () => {
    const name = `aZ0._-${'n'.repeat(122)}`;
    const r = await cli([...RUN, '-i', `${name}=in.txt`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot reach the coordinator/);
  });

  it('rejects -i without "=", a missing file, a directory and a name given twice', async () => {
    await usage([...RUN, '-i', 'in.txt'], '--input "in.txt" must be NAME=FILE');
    await usage([...RUN, '-i', 'src='], '--input "src=" needs a FILE after "="');
    await usage([...RUN, '-i', 'src=nope.tgz'], `--input "src=nope.tgz": "nope.tgz" must be a readable regular file (ENOENT at ${join(work, 'nope.tgz')})`);
    await usage([...RUN, '-i', 'src=adir'], '--input "src=adir": "adir" must be a regular file, not a directory');
    await usage([...RUN, '-i', 'src=in.txt', '-i', 'src=in.txt'], '--input "src" is given twice: each input needs a name of its own');
  });

  it('refuses short flags that are not declared, naming the ones that are', async () => {
    const r = await cli([...RUN, '-x', 'y']);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /^buildwire: unknown flag "-x": flags are written --name or -i \(known: /);
  });

  it('rejects malformed --depends values: no "=", a bad job id, an unknown or contradicting option, a bad or repeated name', async () => {
    await usage([...RUN, '--depends', 'build'], '--depends "build" must be NAME=JOBID[,copy][,on-failed][,no-on-completed]');
    await usage([...RUN, '--depends', 'build=123'], `--depends "build=123": "123" is not a job id (a 26-character ULID, as 'buildwire job run' prints)`);
    await usage([...RUN, '--depends', `build=${JOB_ID},copy,fast`], `--depends "build=${JOB_ID},copy,fast": unknown option "fast" (known: copy, no-copy, on-completed, no-on-completed, on-failed, no-on-failed)`);
    await usage([...RUN, '--depends', `build=${JOB_ID},copy,no-copy`], `--depends "build=${JOB_ID},copy,no-copy": options copy and no-copy contradict each other`);
    await usage([...RUN, '--depends', `a/b=${JOB_ID}`], `--depends "a/b=${JOB_ID}": the dependency name "a/b" must not contain "/" (names are 1 to 128 of letters, digits, ".", "_", "-", and not "." or "..")`);
    await usage([...RUN, '--depends', `b=${JOB_ID}`, '--depends', `b=${OTHER_ID}`], '--depends "b" is given twice: each dependency needs a name of its own');
  });

  it('refuses an input and a dependency of the same name: both live under /input', async () => {
    await usage([...RUN, '-i', 'b=in.txt', '--depends', `b=${JOB_ID}`], '"b" is both an --input and a --depends name; both live under /input, so they need different names');
  });

  it('exits 64 naming each job file dependency that --depends does not map to a job id, and the job it names', async () => {
    const file = join(work, 'test.sh');
    writeFileSync(file, jobFile('tests', ['[dependencies.build]', 'job = "build-linux"', '[dependencies.docs]', 'job = "make-docs"'], ['true']));
    await usage(['job', 'run', '--file', file], 'job file "test.sh" declares dependencies "build" (on job "build-linux"), "docs" (on job "make-docs") that --depends does not map to a job id; give --depends build=JOBID for each');
    await usage(['job', 'run', '--file', file, '--depends', `build=${JOB_ID}`], 'job file "test.sh" declares dependency "docs" (on job "make-docs") that --depends does not map to a job id; give --depends docs=JOBID');
  });

  it('checks job download usage: PATH or --all (not both, not neither), no -o with --all, no "." or ".." in PATH', async () => {
    await usage(['job', 'download', JOB_ID], "'buildwire job download' needs PATH (an output path, see 'buildwire job outputs ID') or --all DIR", 'job download');
    await usage(['job', 'download', JOB_ID, '/work/a', '--all', 'd'], 'give either PATH ("/work/a") or --all DIR, not both', 'job download');
    await usage(['job', 'download', JOB_ID, '--all', 'd', '-o', 'f'], '-o/--output names the file of one PATH; with --all DIR each output goes to DIR/<its path>', 'job download');
    await usage(['job', 'download', JOB_ID, '/work/../etc/passwd'], 'PATH "/work/../etc/passwd" must not have "." or ".." segments: outputs are named by plain paths such as /work/out/a.tar.gz', 'job download');
    await usage(['job', 'download', JOB_ID, '/'], 'PATH "/" has no file name to save as; give -o FILE', 'job download');
  });

  it('checks job publish flags: each is required and series, version and name are one path segment', async () => {
    await usage(['job', 'publish', JOB_ID, '--from', '/work/a', '--series', 's', '--name', 'n'], "'buildwire job publish' needs --version V (not empty)", 'job publish');
    await usage(['job', 'publish', JOB_ID, '--from', '/work/a', '--series', 'a/b', '--version', '1', '--name', 'n'], '--series "a/b" must be one path segment: no "/"', 'job publish');
  });

  it('checks that outputs find is given 64 hex digits', async () => {
    await usage(['outputs', 'find', 'abc'], 'SHA256 "abc" must be 64 hex digits', 'outputs find');
  });

  it('answers --help for every new command with its usage line', async () => {
    for (const [words, line] of [
      [['job', 'outputs'], 'job outputs ID [--json]'],
      [['job', 'download'], 'job download ID PATH [-o FILE] | job download ID --all DIR'],
      [['job', 'publish'], 'job publish ID --from PATH --series S --version V --name N [--json]'],
      [['job', 'delete'], 'job delete ID [--json]'],
      [['outputs', 'find'], 'outputs find SHA256 [--json]'],
    ] as const) {
      const r = await cli([...words, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.startsWith(`Usage: buildwire ${line}\n`), r.stdout.slice(0, 120));
    }
    const runHelp = await cli(['job', 'run', '--help']);
    assert.match(runHelp.stdout, /\n {2}-i, --input NAME=FILE \(repeatable\) +upload FILE as input NAME/);
    assert.match(runHelp.stdout, /\n {2}--depends NAME=JOBID\[,OPTS\] \(repeatable\) +wait for job JOBID/);
  });
});

describe('buildwire against a fake coordinator (hostile and flaky peers)', () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'bw-cli-art-fake-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));
  const cli = (url: string, args: string[], cwd = work) => run(args, { env: { ...cleanEnv(), BUILDWIRE_URL: url, BUILDWIRE_TOKEN: 'tok' }, cwd });
  const fresh = (name: string) => {
    const d = join(work, name);
    mkdirSync(d, { recursive: true });
    return d;
  };

  it('download --all refuses an output path with ".." before writing anything, naming the path', async () => {
    const good = Buffer.from('fine\n');
    const fake = await fakeCoordinator((req, res) => {
      if (req.url === `/api/v1/jobs/${JOB_ID}/outputs`) {
        return sendJson(res, 200, { outputs: [
          { path: '/work/a.txt', size: good.length, mode: 0o644, mtime: 0, sha256: sha256(good), committedAt: 0 },
          { path: '/work/../../escape.txt', size: 1, mode: 0o644, mtime: 0, sha256: '0'.repeat(64), committedAt: 0 },
        ] });
      }
      res.writeHead(200, { etag: `"${sha256(good)}"`, 'content-length': good.length });
      res.end(good);
    });
    try {
      const dir = fresh('escape');
      const r = await cli(fake.url, ['job', 'download', JOB_ID, '--all', 'escape']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'buildwire: refusing output path "/work/../../escape.txt": it has a ".." segment, so it would not stay inside escape; nothing was downloaded\n');
      assert.deepEqual(readdirSync(dir), []);
      assert.deepEqual(readdirSync(work).filter((n) => n.includes('escape.txt')), []);
    } finally {
      await fake.close();
    }
  });

  it('download --all refuses a path that is empty without its leading "/" and two paths that land on one file', async () => {
    let outputs: unknown[] = [];
    const fake = await fakeCoordinator((_req, res) => sendJson(res, 200, { outputs }));
    try {
      fresh('odd');
      outputs = [{ path: '//', size: 0, mode: 0o644, mtime: 0, sha256: sha256(Buffer.alloc(0)), committedAt: 0 }];
      const a = await cli(fake.url, ['job', 'download', JOB_ID, '--all', 'odd']);
      assert.equal(a.code, 1);
      assert.equal(a.stderr, 'buildwire: refusing output path "//": it is empty without its leading "/", so it would not stay inside odd; nothing was downloaded\n');
      outputs = ['/work/x', '//work/x'].map((path) => ({ path, size: 0, mode: 0o644, mtime: 0, sha256: sha256(Buffer.alloc(0)), committedAt: 0 }));
      const b = await cli(fake.url, ['job', 'download', JOB_ID, '--all', 'odd']);
      assert.equal(b.code, 1);
      assert.equal(b.stderr, `buildwire: outputs "/work/x" and "//work/x" would both be written to ${join(work, 'odd', 'work', 'x')}; nothing was downloaded\n`);
    } finally {
      await fake.close();
    }
  });

  it('a SHA-256 that does not match the ETag exits 1 and leaves neither the file nor a temporary file', async () => {
    const bytes = randomBytes(100_000);
    const fake = await fakeCoordinator((_req, res) => {
      res.writeHead(200, { etag: `"${'a'.repeat(64)}"`, 'content-length': bytes.length });
      res.end(bytes);
    });
    try {
      const dir = fresh('mismatch');
      const r = await cli(fake.url, ['job', 'download', JOB_ID, '/work/out/x.bin'], dir);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `buildwire: SHA-256 mismatch for /api/v1/jobs/${JOB_ID}/outputs/work/out/x.bin: the coordinator says ${'a'.repeat(64)}, the 100000 bytes received hash to ${sha256(bytes)}; nothing was written to ${join(dir, 'x.bin')}\n`);
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      await fake.close();
    }
  });

  it('an existing file is replaced only by verified bytes', async () => {
    const bytes = Buffer.from('new contents\n');
    let etag = 'b'.repeat(64);
    const fake = await fakeCoordinator((_req, res) => {
      res.writeHead(200, { etag: `"${etag}"`, 'content-length': bytes.length });
      res.end(bytes);
    });
    try {
      const dir = fresh('replace');
      writeFileSync(join(dir, 'keep.txt'), 'old\n');
      assert.equal((await cli(fake.url, ['job', 'download', JOB_ID, '/work/keep.txt'], dir)).code, 1);
      assert.equal(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'old\n');
      etag = sha256(bytes);
      const ok = await cli(fake.url, ['job', 'download', JOB_ID, '/work/keep.txt'], dir);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, `${join(dir, 'keep.txt')} (13 B, sha256 ${etag} verified)\n`);
      assert.equal(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'new contents\n');
      assert.deepEqual(readdirSync(dir), ['keep.txt']);
    } finally {
      await fake.close();
    }
  });

  it('resumes a download cut off mid-body with Range from the bytes already written, percent-encoding the path', async () => {
    const bytes = randomBytes(3 * MiB + 17);
    const seen: { url: string; range: string | undefined }[] = [];
    const fake = await fakeCoordinator((req, res) => {
      seen.push({ url: req.url!, range: req.headers.range });
      const etag = `"${sha256(bytes)}"`;
      if (seen.length === 1) {
        res.writeHead(200, { etag, 'content-length': bytes.length });
        res.write(bytes.subarray(0, MiB + 5), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
      }
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1]);
      res.writeHead(206, { etag, 'content-length': bytes.length - from, 'content-range': `bytes ${from}-${bytes.length - 1}/${bytes.length}` });
      res.end(bytes.subarray(from));
    });
    try {
      const dir = fresh('resume');
      const r = await cli(fake.url, ['job', 'download', JOB_ID, '/work/out dir/x#1.bin', '-o', 'got.bin'], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readFileSync(join(dir, 'got.bin')).equals(bytes));
      assert.equal(seen.length, 2);
      assert.equal(seen[0]!.url, `/api/v1/jobs/${JOB_ID}/outputs/work/out%20dir/x%231.bin`);
      assert.equal(seen[0]!.range, undefined);
      assert.match(seen[1]!.range ?? '', /^bytes=\d+-$/);
      assert.ok(Number(/\d+/.exec(seen[1]!.range!)![0]) > 0, 'the resume starts past zero');
      assert.deepEqual(readdirSync(dir), ['got.bin']);
    } finally {
      await fake.close();
    }
  });

  it('starts over when the peer ignores Range on a resume, and -o - writes the verified bytes to stdout', async () => {
    const bytes = randomBytes(2 * MiB + 3);
    let n = 0;
    const fake = await fakeCoordinator((_req, res) => {
      n++;
      res.writeHead(200, { etag: `"${sha256(bytes)}"`, 'content-length': bytes.length });
      if (n === 1 || n === 3) res.write(bytes.subarray(0, MiB), () => setTimeout(() => res.socket?.destroy(), 50));
      else res.end(bytes);
    });
    try {
      const dir = fresh('norange');
      const a = await cli(fake.url, ['job', 'download', JOB_ID, '/work/x.bin'], dir);
      assert.equal(a.code, 0, a.stderr);
      assert.ok(readFileSync(join(dir, 'x.bin')).equals(bytes));
      const b = await cli(fake.url, ['job', 'download', JOB_ID, '/work/x.bin', '-o', '-'], dir);
      assert.equal(b.code, 0, b.stderr);
      assert.ok(b.raw.equals(bytes), 'stdout holds the file once, with the resent prefix skipped');
    } finally {
      await fake.close();
    }
  });

  it('uploads an input in chunks of at most 8 MiB, resumes from the begin offset after a 503 and a lost answer, then commits', async () => {
    const file = join(work, 'big.bin');
    const bytes = randomBytes(17 * MiB + 5);
    writeFileSync(file, bytes);
    let received = Buffer.alloc(0);
    const puts: { offset: number; length: number; type: string | undefined }[] = [];
    const begins: unknown[] = [];
    let jobBody: any;
    let committed = false;
    const fake = await fakeCoordinator(async (req, res) => {
      const url = new URL(req.url!, 'http://x');
      const data = await body(req);
      if (req.method === 'POST' && url.pathname === '/api/v1/jobs') {
        jobBody = JSON.parse(data.toString());
        return sendJson(res, 201, { id: JOB_ID, name: 'x', runTarget: 'local', state: 'waiting' });
      }
      const base = `/api/v1/jobs/${JOB_ID}/inputs/big.bin`;
      if (req.method === 'POST' && url.pathname === base) {
        begins.push(JSON.parse(data.toString()));
        return sendJson(res, 200, { offset: received.length });
      }
      if (req.method === 'PUT' && url.pathname === base) {
        const offset = Number(url.searchParams.get('offset'));
        puts.push({ offset, length: data.length, type: req.headers['content-type'] });
        if (puts.length === 2) return sendJson(res, 503, { code: 'UNAVAILABLE', message: 'try again' });
        if (offset !== received.length) return sendJson(res, 409, { code: 'BAD_OFFSET', message: `expected ${received.length}` });
        received = Buffer.concat([received, data]);
        // The chunk is kept but the answer is lost: the CLI must learn the offset from begin.
        if (puts.length === 3) return void res.socket?.destroy();
        return sendJson(res, 200, { offset: received.length });
      }
      if (req.method === 'POST' && url.pathname === `${base}/commit`) {
        committed = true;
        return sendJson(res, 200, { name: 'big.bin', size: received.length, sha256: sha256(received) });
      }
      sendJson(res, 404, { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` });
    });
    try {
      const r = await cli(fake.url, ['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true', '-i', `big.bin=${file}`, '--depends', `prior=${OTHER_ID},on-failed`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${JOB_ID}\n`);
      assert.equal(r.stderr, '', 'no progress lines when stderr is not a terminal');
      assert.deepEqual(jobBody.inputs, ['big.bin']);
      assert.deepEqual(jobBody.dependencies, { prior: { job: OTHER_ID, copyOutputs: false, onCompleted: true, onFailed: true } });
      assert.ok(received.equals(bytes), 'the coordinator received the file exactly');
      assert.ok(committed);
      assert.ok(puts.every((p) => p.length <= 8 * MiB && p.type === 'application/octet-stream'), JSON.stringify(puts));
      assert.deepEqual(begins[0], { size: bytes.length, sha256: sha256(bytes) });
      assert.ok(begins.length >= 3, `begin asked again after each failure: ${begins.length}`);
      assert.deepEqual(puts.map((p) => p.offset), [0, 8 * MiB, 8 * MiB, 16 * MiB]);
    } finally {
      await fake.close();
    }
  });

  it('sends a job file with its declared dependencies copied by default, and no-copy turns that off', async () => {
    const bodies: any[] = [];
    const fake = await fakeCoordinator(async (req, res) => {
      bodies.push(JSON.parse((await body(req)).toString()));
      sendJson(res, 201, { id: JOB_ID, name: 'tests', runTarget: 'local', state: 'waiting' });
    });
    try {
      const file = join(work, 'deps.sh');
      const text = jobFile('tests', ['[dependencies.build]', 'job = "build-linux"'], ['true']);
      writeFileSync(file, text);
      const a = await cli(fake.url, ['job', 'run', '--file', file, '--depends', `build=${JOB_ID}`, '--depends', `extra=${OTHER_ID},no-on-completed`]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(bodies[0].jobFile, text);
      assert.equal(bodies[0].jobFileName, 'deps.sh');
      assert.deepEqual(bodies[0].dependencies, {
        build: { job: JOB_ID, copyOutputs: true, onCompleted: true, onFailed: false },
        extra: { job: OTHER_ID, copyOutputs: false, onCompleted: false, onFailed: false },
      });
      assert.equal(bodies[0].inputs, undefined);
      const b = await cli(fake.url, ['job', 'run', '--file', file, '--depends', `build=${JOB_ID},no-copy`]);
      assert.equal(b.code, 0, b.stderr);
      assert.deepEqual(bodies[1].dependencies, { build: { job: JOB_ID, copyOutputs: false, onCompleted: true, onFailed: false } });
    } finally {
      await fake.close();
    }
  });

  it('cancels the job and exits 1 naming the input when the coordinator refuses a chunk for good', async () => {
    const file = join(work, 'small.bin');
    writeFileSync(file, 'abc');
    let cancelled = false;
    const fake = await fakeCoordinator(async (req, res) => {
      const url = new URL(req.url!, 'http://x');
      await body(req);
      if (url.pathname === '/api/v1/jobs') return sendJson(res, 201, { id: JOB_ID, name: 'x', runTarget: 'local', state: 'waiting' });
      if (url.pathname === `/api/v1/jobs/${JOB_ID}/cancel`) {
        cancelled = true;
        return sendJson(res, 200, { id: JOB_ID, state: 'cancelled' });
      }
      if (req.method === 'POST') return sendJson(res, 200, { offset: 0 });
      sendJson(res, 413, { code: 'OUTPUT_TOO_LARGE', message: 'input src is 3 bytes, over the per-file limit of 2 bytes (max_output_bytes)' });
    });
    try {
      const r = await cli(fake.url, ['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true', '-i', `src=${file}`]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `buildwire: uploading input src from ${file} failed: input src is 3 bytes, over the per-file limit of 2 bytes (max_output_bytes) (OUTPUT_TOO_LARGE, HTTP 413); job ${JOB_ID} was cancelled, as it would wait for the input forever\n`);
      assert.ok(cancelled);
    } finally {
      await fake.close();
    }
  });
});

describe('buildwire artifacts end to end (real coordinator, local factory, agents)', () => {
  let rig: Rig;
  let work: string;
  let env: Record<string, string>;
  const cli = (args: string[], cwd = work) => run(args, { env, cwd });
  const ok = async (args: string[], cwd = work): Promise<Result> => {
    const r = await cli(args, cwd);
    assert.equal(r.code, 0, `buildwire ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    return r;
  };
  const fresh = (name: string) => {
    const d = join(work, name);
    mkdirSync(d, { recursive: true });
    return d;
  };

  before(async () => {
    rig = await startRig({ slots: 2 });
    work = mkdtempSync(join(tmpdir(), 'bw-cli-art-e2e-'));
    env = { ...cleanEnv(), BUILDWIRE_URL: rig.c.url, BUILDWIRE_TOKEN: rig.admin.token };
  });
  after(async () => {
    await rig.close();
    rmSync(work, { recursive: true, force: true });
  });

  const blob = randomBytes(3 * MiB + 123);
  const note = Buffer.from('a note\n');
  let producer = '';

  it('job run -i uploads inputs the script reads at $BUILDWIRE_INPUT/NAME; job outputs lists what the rules matched', { timeout: 120_000 }, async () => {
    writeFileSync(join(work, 'blob.bin'), blob);
    writeFileSync(join(work, 'note.txt'), note);
    const file = join(work, 'produce.sh');
    writeFileSync(file, jobFile('producer', ['output_rules = ["=/work/out/*", "/work/logs/**/*.txt"]'], [
      'mkdir -p out logs/deep',
      'cp "$BUILDWIRE_INPUT/blob" out/blob.bin',
      'cp "$BUILDWIRE_INPUT/note" "$BUILDWIRE_WORK/logs/deep/note.txt"',
      'sha256sum "$BUILDWIRE_INPUT/blob" | cut -d" " -f1',
    ]));
    const r = await ok(['job', 'run', '--file', file, '-i', 'blob=blob.bin', '--input', `note=${join(work, 'note.txt')}`, '--tail']);
    assert.equal(r.stdout, `${sha256(blob)}\n`);
    producer = /\| job (\w{26}) \(producer\) submitted/.exec(r.stderr)?.[1] ?? '';
    assert.match(producer, /^\w{26}$/, r.stderr);

    const listed = JSON.parse((await ok(['job', 'outputs', producer, '--json'])).stdout) as { outputs: { path: string; size: number; sha256: string }[] };
    assert.deepEqual(listed.outputs.map((o) => [o.path, o.size, o.sha256]), [
      ['/work/logs/deep/note.txt', note.length, sha256(note)],
      ['/work/out/blob.bin', blob.length, sha256(blob)],
    ]);
    const table = (await ok(['job', 'outputs', producer])).stdout;
    assert.match(table, /^PATH +SIZE +BYTES +SHA256\n/);
    assert.match(table, new RegExp(`\\n/work/out/blob\\.bin +3\\.0 MiB +${blob.length} +${sha256(blob)}\\n`));
    assert.match(table, new RegExp(`\\n/work/logs/deep/note\\.txt +7 B +7 +${sha256(note)}\\n`));
  });

  it('job download writes one output beside the cwd (or to -o, or stdout) after checking its SHA-256', { timeout: 60_000 }, async () => {
    assert.ok(producer, 'needs the producer job');
    const dir = fresh('one');
    const r = await ok(['job', 'download', producer, '/work/out/blob.bin'], dir);
    assert.equal(r.stdout, `${join(dir, 'blob.bin')} (3.0 MiB, sha256 ${sha256(blob)} verified)\n`);
    assert.ok(readFileSync(join(dir, 'blob.bin')).equals(blob));
    await ok(['job', 'download', producer, 'work/logs/deep/note.txt', '-o', 'renamed.txt'], dir);
    assert.ok(readFileSync(join(dir, 'renamed.txt')).equals(note));
    const piped = await ok(['job', 'download', producer, '/work/out/blob.bin', '-o', '-'], dir);
    assert.ok(piped.raw.equals(blob));
    assert.deepEqual(readdirSync(dir).sort(), ['blob.bin', 'renamed.txt']);
    const missing = await cli(['job', 'download', producer, '/work/out/nope.bin'], dir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^buildwire: .*nope\.bin.* \(NOT_FOUND, HTTP 404\)\n$/);
    assert.deepEqual(readdirSync(dir).sort(), ['blob.bin', 'renamed.txt']);
  });

  it('job download --all DIR fetches every output to DIR/<path>, each verified', { timeout: 60_000 }, async () => {
    assert.ok(producer, 'needs the producer job');
    const r = await ok(['job', 'download', producer, '--all', 'everything']);
    const root = join(work, 'everything');
    assert.equal(r.stdout, `${join(root, 'work/logs/deep/note.txt')}\n${join(root, 'work/out/blob.bin')}\n`);
    assert.ok(readFileSync(join(root, 'work/out/blob.bin')).equals(blob));
    assert.ok(readFileSync(join(root, 'work/logs/deep/note.txt')).equals(note));
    assert.match(r.stderr, /\| 2 outputs of job \w{26} \(3\.0 MiB\) downloaded to .*everything, each sha256 verified\n/);
  });

  it('outputs find lists the job and path that produced some bytes', async () => {
    assert.ok(producer, 'needs the producer job');
    const found = JSON.parse((await ok(['outputs', 'find', sha256(blob).toUpperCase(), '--json'])).stdout) as { outputs: { job: string; path: string; name: string }[] };
    assert.deepEqual(found.outputs.map((o) => [o.job, o.name, o.path]), [[producer, 'producer', '/work/out/blob.bin']]);
    const table = (await ok(['outputs', 'find', sha256(note)])).stdout;
    assert.match(table, new RegExp(`^JOB +NAME +TARGET +STATE +PATH +SIZE\\n${producer} +producer +local +completed +/work/logs/deep/note\\.txt +7 B\\n$`));
    const none = await ok(['outputs', 'find', 'f'.repeat(64)]);
    assert.equal(none.stdout, `no outputs have sha256 ${'f'.repeat(64)}\n`);
  });

  it('job publish prints an absolute public URL that serves the bytes without a token; other bytes under that name are a 409', { timeout: 60_000 }, async () => {
    assert.ok(producer, 'needs the producer job');
    const args = ['job', 'publish', producer, '--from', '/work/out/blob.bin', '--series', 'tools', '--version', '1.0.0', '--name', 'blob.bin'];
    const r = await ok(args);
    const url = r.stdout.trim();
    assert.equal(url, `${rig.c.url}/public/file/admin/tools/1.0.0/blob.bin`);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(blob));
    const again = await ok([...args, '--json']);
    assert.equal((JSON.parse(again.stdout) as { url: string }).url, url, 'publishing the same bytes again is a no-op');
    const conflict = await cli(['job', 'publish', producer, '--from', '/work/logs/deep/note.txt', '--series', 'tools', '--version', '1.0.0', '--name', 'blob.bin']);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /^buildwire: .+ \(PUBLISH_CONFLICT, HTTP 409\)\n$/);
  });

  it('--depends NAME=ID,copy gives the next job the outputs at $BUILDWIRE_INPUT/NAME/work/...; a job file dependency copies by default', { timeout: 120_000 }, async () => {
    assert.ok(producer, 'needs the producer job');
    const plain = await ok(['job', 'run', '--name', 'consumer', '--target', 'local', '--depends', `prod=${producer},copy`, '--tail',
      '--script', 'sha256sum "$BUILDWIRE_INPUT/prod/work/out/blob.bin" | cut -d" " -f1; cat "$BUILDWIRE_INPUT/prod/work/logs/deep/note.txt"']);
    assert.equal(plain.stdout, `${sha256(blob)}\n${note.toString()}`);

    const file = join(work, 'consume.sh');
    writeFileSync(file, jobFile('consumer-file', ['[dependencies.build]', 'job = "producer"'], ['cat "$BUILDWIRE_INPUT/build/work/logs/deep/note.txt"']));
    const viaFile = await ok(['job', 'run', '--file', file, '--depends', `build=${producer}`, '--tail']);
    assert.equal(viaFile.stdout, note.toString());
  });

  it('--depends with no-on-completed fails the job when the dependency completed', { timeout: 120_000 }, async () => {
    assert.ok(producer, 'needs the producer job');
    const r = await cli(['job', 'run', '--name', 'never', '--target', 'local', '--script', 'echo ran', '--depends', `prod=${producer},no-on-completed`, '--tail']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`dependency prod \\(job ${producer}\\) completed and on_completed is false`));
  });

  it('job delete removes an ended job and its outputs; a job that has not ended is refused with 409', { timeout: 120_000 }, async () => {
    const done = (await ok(['job', 'run', '--name', 'short-lived', '--target', 'local', '--script', 'true', '--tail'])).stderr;
    const id = /\| job (\w{26}) /.exec(done)?.[1] ?? '';
    assert.equal((await ok(['job', 'delete', id])).stdout, `job ${id} deleted\n`);
    const gone = await cli(['job', 'outputs', id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /\(NOT_FOUND, HTTP 404\)\n$/);

    const running = (await ok(['job', 'run', '--name', 'lingers', '--target', 'local', '--script', 'sleep 60'])).stdout.trim();
    const refused = await cli(['job', 'delete', running]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\(JOB_NOT_ENDED, HTTP 409\)\n$/);
    await ok(['job', 'cancel', running]);
  });

  it('job run --script --output-rule uploads what the rules select; an "=" rule matching nothing fails the job', { timeout: 120_000 }, async () => {
    const r = await ok(['job', 'run', '--name', 'rules', '--target', 'local', '--output-rule', '=/work/out/*.txt', '--output-rule', '!/work/out/skip.txt',
      '--script', 'mkdir -p out; echo a > out/a.txt; echo s > out/skip.txt', '--tail']);
    const id = /\| job (\w{26}) /.exec(r.stderr)?.[1] ?? '';
    const listed = JSON.parse((await ok(['job', 'outputs', id, '--json'])).stdout) as { outputs: { path: string }[] };
    assert.deepEqual(listed.outputs.map((o) => o.path), ['/work/out/a.txt']);
    const missing = await cli(['job', 'run', '--name', 'rules', '--target', 'local', '--output-rule', '=/work/dist/*', '--script', 'true', '--tail']);
    assert.equal(missing.code, 1);
  });
});
