import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BlobArchive } from '../coordinator/artifacts/archive.js';
import { ensureTarget } from '../coordinator/index.js';
import { startLocalFactory } from '../factory/local/index.js';
import type { WorkerId } from '../protocol/index.js';
import { parseJobFile, ProtocolError } from '../protocol/index.js';
import { startS3rver } from './fixtures/s3.js';
import { allEvents, api, CoordinatorProcess, startRig, submit, tempDir, until, waitJob } from './helpers.js';
import type { Api, Rig } from './helpers.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Every blob file under a store's data directory. */
function blobFiles(dataDir: string): string[] {
  const root = join(dataDir, 'blobs');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) => readdirSync(join(root, d)));
}

/** Part files of uploads in progress. */
function partFiles(dataDir: string): string[] {
  const root = join(dataDir, 'uploads');
  return existsSync(root) ? readdirSync(root) : [];
}

async function download(a: Api, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const r = await fetch(a.url + path, { headers: { authorization: `Bearer ${a.token}`, ...headers } });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}

async function outputs(a: Api, id: string): Promise<any[]> {
  const r = await a.call('GET', `/api/v1/jobs/${id}/outputs`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.outputs;
}

const controlLines = async (a: Api, id: string) => (await allEvents(a, id)).filter((e) => e.stream === 'control' || e.stream === 'worker').map((e) => e.text as string);

describe('outputs', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ slots: 2 });
  });
  after(() => rig.close());
  const store = () => join(rig.dir, 'store');

  test('uploads the files the rules select, with path, size, mode, mtime and SHA-256, and excludes "!" matches', async () => {
    const id = await submit(rig.admin, [
      'mkdir -p out/sub logs', 'printf hello > out/a.txt', 'head -c 3000000 /dev/urandom > out/sub/b.bin', 'chmod 0755 out/sub/b.bin',
      'echo skip > out/c.tmp', 'echo log > logs/x.log', 'touch -d "2020-01-02T03:04:05Z" out/a.txt', 'sha256sum out/sub/b.bin',
    ].join('\n'), { outputRules: ['/work/out/**/*', '!/work/out/*.tmp', '/work/logs/*.log'] });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'completed', job.reason);
    const outs = await outputs(rig.admin, id);
    assert.deepEqual(outs.map((o) => o.path), ['/work/logs/x.log', '/work/out/a.txt', '/work/out/sub/b.bin']);
    const a = outs.find((o) => o.path === '/work/out/a.txt');
    assert.equal(a.size, 5);
    assert.equal(a.sha256, sha256(Buffer.from('hello')));
    assert.equal(a.mtime, Date.parse('2020-01-02T03:04:05Z'));
    const b = outs.find((o) => o.path === '/work/out/sub/b.bin');
    assert.equal(b.mode & 0o777, 0o755);
    const printed = (await allEvents(rig.admin, id)).find((e) => e.stream === 'stdout' && / out\/sub\/b.bin$/.test(e.text)).text.split(' ')[0];
    assert.equal(b.sha256, printed);
    const got = await download(rig.admin, `/api/v1/jobs/${id}/outputs/work/out/sub/b.bin`);
    assert.equal(got.status, 200);
    assert.equal(got.body.length, 3_000_000);
    assert.equal(sha256(got.body), printed);
    assert.equal(got.headers.get('etag'), `"${printed}"`);
    assert.equal(got.headers.get('content-length'), '3000000');
    const part = await download(rig.admin, `/api/v1/jobs/${id}/outputs/work/out/sub/b.bin`, { range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, got.body.subarray(100, 200));
    const same = await download(rig.admin, `/api/v1/jobs/${id}/outputs/work/out/sub/b.bin`, { 'if-none-match': `"${printed}"` });
    assert.equal(same.status, 304);
  });

  test('uploads outputs of a failed job too', async () => {
    const id = await submit(rig.admin, 'echo partial > report.txt; exit 4', { outputRules: ['/work/report.txt'] });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'failed');
    assert.match(job.reason, /exited with status 4/);
    assert.deepEqual((await outputs(rig.admin, id)).map((o) => o.path), ['/work/report.txt']);
  });

  test('fails the job when an "=" rule matches no file, naming the rule', async () => {
    const id = await submit(rig.admin, 'echo nothing', { outputRules: ['=/work/dist/*.tar.gz'] });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'failed');
    assert.match(job.reason, /=\/work\/dist\/\*\.tar\.gz/);
  });

  test('refuses a symlink pointing outside the work directory, naming it, and uploads one pointing inside', async () => {
    const id = await submit(rig.admin, 'mkdir -p out; echo real > real.txt; ln -s "$PWD/real.txt" out/inside; ln -s /etc/passwd out/outside', { outputRules: ['/work/out/*'] });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'failed');
    assert.match((await controlLines(rig.admin, id)).join('\n'), /\/work\/out\/outside.*\/etc\/passwd/);
    const outs = await outputs(rig.admin, id);
    assert.deepEqual(outs.map((o) => o.path), ['/work/out/inside']);
    assert.equal(outs[0].sha256, sha256(Buffer.from('real\n')));
  });

  /** Starts, from the job, a writer outside the task's process group (it outlives the task and runs during the upload); the test kills it. */
  const writer = (pids: string, name: string, action: string) =>
    `setsid bash -c 'for i in $(seq 1 1500); do ${action}; sleep 0.002; done' > /dev/null 2>&1 < /dev/null & echo $! > ${join(pids, name)}`;
  const killWriters = (pids: string) => {
    for (const f of readdirSync(pids)) {
      try { process.kill(Number(readFileSync(join(pids, f), 'utf8')), 'SIGKILL'); } catch { /* already ended */ }
    }
  };

  test('a file appended to by a background process during its upload fails the job without "%" and passes with "%"', async () => {
    const pids = tempDir('bw-writers-');
    try {
      const script = (name: string) => ['head -c 48000000 /dev/zero > grow.bin', writer(pids.path, name, 'echo more >> grow.bin'), 'sleep 0.1'].join('\n');
      const strict = await submit(rig.admin, script('w1'), { outputRules: ['/work/grow.bin'] });
      const relaxed = await submit(rig.admin, script('w2'), { outputRules: ['%/work/grow.bin'] });
      const [s, r] = await Promise.all([waitJob(rig.admin, strict), waitJob(rig.admin, relaxed)]);
      assert.equal(s.state, 'failed');
      assert.match(s.reason, /\/work\/grow\.bin changed during upload: size/);
      assert.equal(r.state, 'completed', r.reason);
      assert.equal((await outputs(rig.admin, relaxed)).length, 1);
      assert.deepEqual(await outputs(rig.admin, strict), []);
    } finally {
      killWriters(pids.path);
      pids.remove();
    }
  });

  test('a file whose mtime alone changes during its upload fails the job without "%"', async () => {
    const pids = tempDir('bw-writers-');
    try {
      const id = await submit(rig.admin, ['head -c 48000000 /dev/zero > touched.bin', writer(pids.path, 'w', 'touch touched.bin'), 'sleep 0.1'].join('\n'), { outputRules: ['/work/touched.bin'] });
      const job = await waitJob(rig.admin, id);
      assert.equal(job.state, 'failed');
      assert.match(job.reason, /\/work\/touched\.bin changed during upload: mtime/);
    } finally {
      killWriters(pids.path);
      pids.remove();
    }
  });

  test('two jobs producing the same bytes share one blob; deleting a job frees only blobs nothing else references', async () => {
    const before = new Set(blobFiles(store()));
    const script = 'printf "shared-bytes-%s" 42 > same.txt; printf "%s" "$BUILDWIRE_JOB_ID" > own.txt';
    const a = await submit(rig.admin, script, { outputRules: ['/work/*.txt'] });
    const b = await submit(rig.admin, script, { outputRules: ['/work/*.txt'] });
    for (const id of [a, b]) assert.equal((await waitJob(rig.admin, id)).state, 'completed');
    const shared = sha256(Buffer.from('shared-bytes-42'));
    const added = blobFiles(store()).filter((f) => !before.has(f));
    assert.equal(added.filter((f) => f === shared).length, 1);
    assert.equal(added.length, 3, 'one shared blob and one own.txt per job');
    const running = await rig.admin.call('DELETE', `/api/v1/jobs/${a}`);
    assert.equal(running.status, 200, JSON.stringify(running.body));
    assert.equal(running.body.freedBlobs, 1);
    assert.ok(blobFiles(store()).includes(shared), 'still referenced by the other job');
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${a}`)).status, 404);
    const got = await download(rig.admin, `/api/v1/jobs/${b}/outputs/work/same.txt`);
    assert.equal(got.body.toString(), 'shared-bytes-42');
    assert.equal((await rig.admin.call('DELETE', `/api/v1/jobs/${b}`)).body.freedBlobs, 2);
    assert.ok(!blobFiles(store()).includes(shared));
  });

  test('refuses to delete a job that has not ended, with 409 JOB_NOT_ENDED', async () => {
    const id = await submit(rig.admin, 'sleep 30');
    const r = await rig.admin.call('DELETE', `/api/v1/jobs/${id}`);
    assert.equal(r.status, 409);
    assert.equal(r.body.code, 'JOB_NOT_ENDED');
    await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
    await waitJob(rig.admin, id);
  });

  test('finds every job that produced given bytes, and serves stable "latest" URLs per job name', async () => {
    const body = `findme-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const id = await submit(rig.admin, `printf %s ${body} > found.txt`, { name: 'hash-finder', outputRules: ['/work/found.txt'] });
      assert.equal((await waitJob(rig.admin, id)).state, 'completed');
      ids.push(id);
    }
    const r = await rig.admin.call('GET', `/api/v1/outputs?sha256=${sha256(Buffer.from(body))}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.outputs.map((o: any) => o.job), [...ids].reverse());
    assert.equal((await rig.admin.call('GET', '/api/v1/outputs?sha256=xyz')).status, 400);
    const latest = await fetch(`${rig.c.url}/job/hash-finder/latest`, { headers: { authorization: `Bearer ${rig.admin.token}` }, redirect: 'manual' });
    assert.equal(latest.status, 302);
    assert.equal(latest.headers.get('location'), `/job/${ids[1]}`);
    const file = await download(rig.admin, '/job/hash-finder/latest/work/found.txt');
    assert.equal(file.body.toString(), body);
    assert.equal((await download(rig.admin, '/job/no-such-name/latest')).status, 404);
  });

  test('publishes an output at a stable public URL, refuses other bytes under the same name with 409, and accepts the same bytes again', async () => {
    const v = `v${Date.now()}`;
    const a = await submit(rig.admin, 'printf one > tool.gz', { outputRules: ['/work/tool.gz'] });
    const b = await submit(rig.admin, 'printf two > tool.gz', { outputRules: ['/work/tool.gz'] });
    for (const id of [a, b]) assert.equal((await waitJob(rig.admin, id)).state, 'completed');
    const spec = { fromOutput: '/work/tool.gz', series: 'tools', version: v, name: 'tool.gz' };
    const p = await rig.admin.call('POST', `/api/v1/jobs/${a}/publish`, spec);
    assert.equal(p.status, 201, JSON.stringify(p.body));
    assert.equal(p.body.url, `/public/file/admin/tools/${v}/tool.gz`);
    const pub = await fetch(rig.c.url + p.body.url);
    assert.equal(pub.status, 200);
    assert.equal(Buffer.from(await pub.arrayBuffer()).toString(), 'one');
    const again = await rig.admin.call('POST', `/api/v1/jobs/${a}/publish`, spec);
    assert.equal(again.status, 201);
    const clash = await rig.admin.call('POST', `/api/v1/jobs/${b}/publish`, spec);
    assert.equal(clash.status, 409);
    assert.equal(clash.body.code, 'PUBLISH_CONFLICT');
    const missing = await rig.admin.call('POST', `/api/v1/jobs/${a}/publish`, { ...spec, fromOutput: '/work/nope' });
    assert.equal(missing.status, 404);
    assert.equal((await rig.admin.call('POST', `/api/v1/jobs/${a}/publish`, { ...spec, name: '../x' })).status, 400);
  });

  test('a job file\'s [[publish]] entry naming no output fails the job with a control line naming it', async () => {
    const jobFile = ['#!/bin/bash', '#: name = "pub"', '#: variety = "basic"', '#: target = "local"', '#: output_rules = ["/work/out/*"]',
      '#:', '#: [[publish]]', '#: from_output = "/work/out/missing.gz"', '#: series = "s"', '#: name = "missing.gz"', '', 'mkdir -p out; echo x > out/present'].join('\n');
    const r = await rig.admin.call('POST', '/api/v1/jobs', { jobFile });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const job = await waitJob(rig.admin, r.body.id);
    assert.equal(job.state, 'failed');
    assert.match(job.reason, /publish: .*no output "\/work\/out\/missing\.gz"/);
  });

  test('the agent\'s connection cut at half of a 256 MiB upload resumes, and the file commits with the right SHA-256 and no extra blob', async () => {
    const blobsBefore = blobFiles(store()).length;
    const id = await submit(rig.admin, 'head -c 268435456 /dev/urandom > big.bin; sha256sum big.bin', { outputRules: ['/work/big.bin'] });
    const worker = await until('the job to run', async () => {
      const r = await rig.admin.call('GET', `/api/v1/jobs/${id}`);
      return r.body.state === 'running' ? (r.body.worker as WorkerId) : undefined;
    });
    await until('half the upload to arrive', () => [...rig.c.core.artifacts.uploads.active.values()].some((u) => u.rec.job === id && u.received >= 128 * 1024 * 1024), 120_000, 5);
    rig.c.core.agents.get(worker)!.close(new ProtocolError('GOING_AWAY', 'test cuts the connection mid-upload'));
    const job = await waitJob(rig.admin, id, 180_000);
    assert.equal(job.state, 'completed', job.reason);
    const printed = (await allEvents(rig.admin, id)).find((e) => e.stream === 'stdout').text.split(' ')[0];
    const [o] = await outputs(rig.admin, id);
    assert.equal(o.size, 268435456);
    assert.equal(o.sha256, printed);
    assert.equal(createHash('sha256').update(readFileSync(join(store(), 'blobs', printed.slice(0, 2), printed))).digest('hex'), printed);
    assert.equal(blobFiles(store()).length, blobsBefore + 1);
    assert.deepEqual(partFiles(store()), []);
    await rig.admin.call('DELETE', `/api/v1/jobs/${id}`);
  });
});

describe('output limits and quota', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ slots: 1, config: { maxOutputBytes: 1024 * 1024, maxArtifactBytes: 3 * 1024 * 1024 } });
  });
  after(() => rig.close());

  test('a file over max_output_bytes fails the job before any byte is sent, naming the file and the limit', async () => {
    const id = await submit(rig.admin, 'head -c 2000000 /dev/zero > huge.bin', { outputRules: ['/work/huge.bin'] });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'failed');
    assert.match(job.reason, /\/work\/huge\.bin.*2000000 bytes.*1048576/);
    assert.deepEqual(partFiles(join(rig.dir, 'store')), []);
  });

  test('an upload past max_artifact_bytes fails with QUOTA_EXCEEDED and leaves earlier outputs and the store intact', async () => {
    const first = await submit(rig.admin, 'head -c 900000 /dev/urandom > a.bin; head -c 900000 /dev/urandom > b.bin', { outputRules: ['/work/*.bin'] });
    assert.equal((await waitJob(rig.admin, first)).state, 'completed');
    const second = await submit(rig.admin, 'for n in 1 2 3; do head -c 900000 /dev/urandom > $n.bin; done', { outputRules: ['/work/*.bin'] });
    const job = await waitJob(rig.admin, second);
    assert.equal(job.state, 'failed');
    assert.match(job.reason, /QUOTA_EXCEEDED|max_artifact_bytes/);
    assert.deepEqual(partFiles(join(rig.dir, 'store')), []);
    const outs = await outputs(rig.admin, first);
    for (const o of outs) {
      const got = await download(rig.admin, `/api/v1/jobs/${first}/outputs${o.path}`);
      assert.equal(sha256(got.body), o.sha256);
    }
    const used = rig.c.core.artifacts.blobs.usedBytes();
    assert.ok(used <= 3 * 1024 * 1024, `blob bytes ${used} stay under the cap`);
  });
});

describe('inputs and dependencies', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ slots: 2 });
  });
  after(() => rig.close());

  async function uploadInput(a: Api, id: string, name: string, data: Buffer, chunk = 1 << 20): Promise<any> {
    const begin = await a.call('POST', `/api/v1/jobs/${id}/inputs/${name}`, { size: data.length, sha256: sha256(data) });
    assert.equal(begin.status, 200, JSON.stringify(begin.body));
    let at = begin.body.offset as number;
    while (at < data.length) {
      const r = await fetch(`${a.url}/api/v1/jobs/${id}/inputs/${name}?offset=${at}`, {
        method: 'PUT', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/octet-stream' }, body: data.subarray(at, at + chunk),
      });
      const body = await r.json() as any;
      assert.equal(r.status, 200, JSON.stringify(body));
      at = body.offset;
    }
    return a.call('POST', `/api/v1/jobs/${id}/inputs/${name}/commit`);
  }

  test('a job with inputs waits until they are committed, then sees them under $BUILDWIRE_INPUT', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 'abc');
    const id = await submit(rig.admin, 'sha256sum "$BUILDWIRE_INPUT/data" | cut -d" " -f1; cat "$BUILDWIRE_INPUT/note"', { inputs: ['data', 'note'] });
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.state, 'waiting');
    const c1 = await uploadInput(rig.admin, id, 'data', data);
    assert.equal(c1.status, 200, JSON.stringify(c1.body));
    assert.equal(c1.body.sha256, sha256(data));
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.state, 'waiting');
    assert.equal((await uploadInput(rig.admin, id, 'note', Buffer.from('hi there'))).status, 200);
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'completed', job.reason);
    const out = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
    assert.deepEqual(out, [sha256(data), 'hi there']);
  });

  test('an input upload resumes from the offset the coordinator reports, and a wrong SHA-256 is refused at commit with 409 HASH_MISMATCH', async () => {
    const id = await submit(rig.admin, 'true', { inputs: ['x'] });
    const data = Buffer.alloc(2 << 20, 7);
    const b1 = await rig.admin.call('POST', `/api/v1/jobs/${id}/inputs/x`, { size: data.length, sha256: sha256(data) });
    assert.equal(b1.body.offset, 0);
    await fetch(`${rig.admin.url}/api/v1/jobs/${id}/inputs/x?offset=0`, { method: 'PUT', headers: { authorization: `Bearer ${rig.admin.token}` }, body: data.subarray(0, 1 << 20) });
    const b2 = await rig.admin.call('POST', `/api/v1/jobs/${id}/inputs/x`, { size: data.length, sha256: sha256(data) });
    assert.equal(b2.body.offset, 1 << 20);
    const gap = await fetch(`${rig.admin.url}/api/v1/jobs/${id}/inputs/x?offset=5`, { method: 'PUT', headers: { authorization: `Bearer ${rig.admin.token}` }, body: data.subarray(0, 10) });
    assert.equal(gap.status, 409);
    assert.match(((await gap.json()) as any).message, /offset 5 does not continue the upload, which holds 1048576 bytes/);
    // The owner swaps the file: a different declared hash starts over, and the bytes then do not match what was declared.
    const wrong = await rig.admin.call('POST', `/api/v1/jobs/${id}/inputs/x`, { size: 4, sha256: sha256(Buffer.from('abcd')) });
    assert.equal(wrong.body.offset, 0);
    await fetch(`${rig.admin.url}/api/v1/jobs/${id}/inputs/x?offset=0`, { method: 'PUT', headers: { authorization: `Bearer ${rig.admin.token}` }, body: Buffer.from('wxyz') });
    const commit = await rig.admin.call('POST', `/api/v1/jobs/${id}/inputs/x/commit`);
    assert.equal(commit.status, 409);
    assert.equal(commit.body.code, 'HASH_MISMATCH');
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.state, 'waiting');
    await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
  });

  test('a running job\'s input token fetches only that job\'s inputs: another hash is 404, a wrong token 401', async () => {
    const data = Buffer.from('token-guarded input');
    const id = await submit(rig.admin, 'sleep 20', { inputs: ['x'] });
    assert.equal((await uploadInput(rig.admin, id, 'x', data)).status, 200);
    await until('the job to run', async () => (await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.state === 'running');
    const token = rig.c.core.artifacts.inputToken(id as never);
    const get = (sha: string, tok: string) => fetch(`${rig.c.url}/api/v1/agent/jobs/${id}/inputs/${sha}`, { headers: { authorization: `Bearer ${tok}` } });
    const ok = await get(sha256(data), token);
    assert.equal(ok.status, 200);
    assert.equal(Buffer.from(await ok.arrayBuffer()).toString(), 'token-guarded input');
    assert.equal((await get(sha256(Buffer.from('something else')), token)).status, 404);
    assert.equal((await get(sha256(data), `${token.slice(0, -2)}xx`)).status, 401);
    await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
    await waitJob(rig.admin, id);
  });

  test('refuses input names with "/" or "..", and undeclared inputs, with clear messages', async () => {
    for (const bad of ['a/b', '..', '.', '']) {
      const r = await rig.admin.call('POST', '/api/v1/jobs', { name: 't', target: 'local', tasks: [{ script: 'true' }], inputs: [bad] });
      assert.equal(r.status, 400, bad);
      assert.equal(r.body.code, 'BAD_INPUT_NAME');
    }
    const id = await submit(rig.admin, 'true', { inputs: ['one'] });
    const r = await rig.admin.call('POST', `/api/v1/jobs/${id}/inputs/two`, { size: 1, sha256: sha256(Buffer.from('a')) });
    assert.equal(r.status, 404);
    assert.match(r.body.message, /declares no input "two" \(it declares: one\)/);
    await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
  });

  test('a dependency with copied outputs waits for the prior job and sees its files under $BUILDWIRE_INPUT/NAME/<path>, verified', async () => {
    const prior = await submit(rig.admin, 'sleep 1; mkdir -p out; head -c 5000000 /dev/urandom > out/lib.a; sha256sum out/lib.a | cut -d" " -f1', { outputRules: ['/work/out/*'] });
    const dep = await submit(rig.admin, 'sha256sum "$BUILDWIRE_INPUT/build/work/out/lib.a" | cut -d" " -f1', { dependencies: { build: { job: prior, copyOutputs: true } } });
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${dep}`)).body.state, 'waiting');
    const p = await waitJob(rig.admin, prior);
    assert.equal(p.state, 'completed');
    const d = await waitJob(rig.admin, dep);
    assert.equal(d.state, 'completed', d.reason);
    const first = (await allEvents(rig.admin, prior)).find((e) => e.stream === 'stdout').text;
    const second = (await allEvents(rig.admin, dep)).find((e) => e.stream === 'stdout').text;
    assert.equal(second, first);
  });

  test('a dependency that failed fails the dependent job with a control line naming it, unless on_failed is set', async () => {
    const prior = await submit(rig.admin, 'exit 1');
    const strict = await submit(rig.admin, 'echo ran', { dependencies: { setup: { job: prior } } });
    const lenient = await submit(rig.admin, 'echo ran', { dependencies: { setup: { job: prior, onFailed: true } } });
    const s = await waitJob(rig.admin, strict);
    assert.equal(s.state, 'failed');
    assert.equal(s.reason, `dependency setup (job ${prior}) failed and on_failed is false`);
    assert.ok((await controlLines(rig.admin, strict)).some((l) => l.includes(`dependency setup (job ${prior}) failed`)));
    assert.equal((await waitJob(rig.admin, lenient)).state, 'completed');
    const done = await submit(rig.admin, 'true');
    await waitJob(rig.admin, done);
    const onlyFailed = await submit(rig.admin, 'echo ran', { dependencies: { x: { job: done, onCompleted: false, onFailed: true } } });
    const o = await waitJob(rig.admin, onlyFailed);
    assert.equal(o.state, 'failed');
    assert.match(o.reason, /completed and on_completed is false/);
  });

  test('a dependency must name an existing job, so no cycle can be built; a job file\'s dependencies must each be mapped', async () => {
    const r = await rig.admin.call('POST', '/api/v1/jobs', { name: 't', target: 'local', tasks: [{ script: 'true' }], dependencies: { a: { job: '01ARZ3NDEKTSV4RRFFQ69G5FAV' } } });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'UNKNOWN_JOB');
    const jobFile = ['#!/bin/bash', '#: name = "test"', '#: variety = "basic"', '#: target = "local"', '#:', '#: [dependencies.build]', '#: job = "build"', '', 'true'].join('\n');
    const u = await rig.admin.call('POST', '/api/v1/jobs', { jobFile });
    assert.equal(u.status, 400);
    assert.equal(u.body.code, 'UNMAPPED_DEPENDENCY');
    assert.match(u.body.message, /dependency "build" \(on job "build"\)/);
  });
});

describe('coordinator crash mid-upload', () => {
  test('kill -9 of the coordinator at half of a 256 MiB upload: the agent resumes from the durable offset and the file commits with the right SHA-256', async () => {
    const dir = tempDir('bw-upload-crash-');
    const data = join(dir.path, 'store');
    const proc = new CoordinatorProcess(data, { workerLostGraceMs: 60_000 });
    const first = await proc.start();
    const admin = api(first.url, first.adminToken!);
    const factory = startLocalFactory({
      url: first.url.replace(/^http/, 'ws') + '/api/v1/connect', coordinatorKey: new Uint8Array(Buffer.from(proc.publicKey, 'base64')),
      token: first.factoryToken!, slots: 1, workRoot: dir.path, log: () => {},
    });
    try {
      const id = await submit(admin, 'head -c 268435456 /dev/urandom > big.bin; sha256sum big.bin', { outputRules: ['/work/big.bin'] });
      await until('half the upload to reach the coordinator\'s disk', () => partFiles(data).some((f) => statSync(join(data, 'uploads', f)).size >= 128 * 1024 * 1024), 120_000, 5);
      await proc.kill9();
      await proc.start();
      const job = await waitJob(admin, id, 180_000);
      assert.equal(job.state, 'completed', job.reason);
      const printed = (await allEvents(admin, id)).find((e) => e.stream === 'stdout').text.split(' ')[0];
      const [o] = await outputs(admin, id);
      assert.equal(o.size, 268435456);
      assert.equal(o.sha256, printed);
      assert.deepEqual(blobFiles(data), [printed]);
      assert.deepEqual(partFiles(data), []);
      const got = await download(admin, `/api/v1/jobs/${id}/outputs/work/big.bin`, { range: 'bytes=268435400-' });
      assert.equal(got.status, 206);
      assert.equal(got.body.length, 56);
    } finally {
      await factory.close();
      await proc.stop();
      dir.remove();
    }
  });
});

describe('the real buildomat job files', () => {
  test('every enabled job file in the corpus is accepted by the coordinator with its output rules, dependencies and publish entries', async () => {
    await using rig = await startRig({ factory: false });
    const corpus = fileURLToPath(new URL('../../../shared/testdata/buildomat-jobs/', import.meta.url));
    // Nothing runs: no factory serves these targets. A finished job stands in for every dependency.
    const prior = await submit(rig.admin, 'true');
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else if (e.name.endsWith('.sh')) files.push(join(d, e.name));
      }
    };
    walk(corpus);
    assert.ok(files.length > 50, `found ${files.length} job files`);
    let accepted = 0;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      let jf;
      try {
        jf = parseJobFile(text, f);
      } catch {
        continue; // files the parser refuses are covered by jobfile.test.ts
      }
      if (!jf.enable) continue;
      await ensureTarget(rig.c.core, jf.target, 'corpus target');
      const dependencies = Object.fromEntries(Object.keys(jf.dependencies).map((n) => [n, { job: prior }]));
      const r = await rig.admin.call('POST', '/api/v1/jobs', { jobFile: text, jobFileName: f, dependencies });
      assert.equal(r.status, 201, `${f}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body.outputRules, jf.outputRules.map((o) => o.rule));
      assert.deepEqual(Object.keys(r.body.dependencies), Object.keys(jf.dependencies));
      assert.equal(r.body.publish.length, jf.publish.length);
      accepted++;
    }
    assert.ok(accepted > 50, `accepted ${accepted}`);
  });
});

describe('S3 archive', () => {
  test('committed blobs are copied to the bucket and removed locally; downloads, ranges and dependency inputs are served from the archive', async () => {
    await using s3 = await startS3rver();
    const archive = s3.config('bw-archive', { removeLocal: true });
    const setup = new BlobArchive(archive);
    await setup.ensureBucket();
    setup.close();
    await using rig = await startRig({ slots: 1, config: { archive } });
    const store = join(rig.dir, 'store');
    const id = await submit(rig.admin, 'head -c 3000000 /dev/urandom > a.bin; sha256sum a.bin | cut -d" " -f1', { outputRules: ['/work/a.bin'] });
    assert.equal((await waitJob(rig.admin, id)).state, 'completed');
    const printed = (await allEvents(rig.admin, id)).find((e) => e.stream === 'stdout').text;
    await rig.c.core.artifacts.archiveIdle();
    await until('the blob to be archived and removed locally', () => {
      const b = rig.c.core.artifacts.blobs.get(printed);
      return b?.archived === true && b.local === false;
    });
    assert.ok(!blobFiles(store).includes(printed), 'the local copy is gone');
    const check = new BlobArchive(archive);
    assert.equal(await check.has(printed), true);
    check.close();
    const whole = await download(rig.admin, `/api/v1/jobs/${id}/outputs/work/a.bin`);
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), printed);
    const part = await download(rig.admin, `/api/v1/jobs/${id}/outputs/work/a.bin`, { range: 'bytes=1000-1999' });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, whole.body.subarray(1000, 2000));
    const dep = await submit(rig.admin, 'sha256sum "$BUILDWIRE_INPUT/prior/work/a.bin" | cut -d" " -f1', { dependencies: { prior: { job: id, copyOutputs: true } } });
    const d = await waitJob(rig.admin, dep);
    assert.equal(d.state, 'completed', d.reason);
    assert.equal((await allEvents(rig.admin, dep)).find((e) => e.stream === 'stdout').text, printed);
    assert.equal((await rig.admin.call('DELETE', `/api/v1/jobs/${id}`)).body.freedBlobs, 1);
    const gone = new BlobArchive(archive);
    assert.equal(await gone.has(printed), false, 'deleting the only job removes the archived copy');
    gone.close();
  });
});
