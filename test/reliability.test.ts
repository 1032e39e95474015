import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ProtocolError } from '../protocol/index.js';
import type { WorkerId } from '../protocol/index.js';
import { startLocalFactory } from '../factory/local/index.js';
import { CoordinatorProcess, allEvents, api, startRig, stdoutBytes, submit, tempDir, until, waitJob } from './helpers.js';
import type { Rig } from './helpers.js';

// 200,000 lines: numbered lines, an empty line every 1,000, three 1 MiB
// lines, and bytes that are not UTF-8. The test runs the same script with
// bash to know the exact bytes the job must have stored.
const BIG_SCRIPT = `
awk 'BEGIN {
  for (i = 1; i <= 199990; i++) {
    if (i % 1000 == 0) print ""; else print "line " i " of the big log, padded to look like real build output";
  }
}'
for k in 1 2 3; do head -c 1048576 /dev/zero | tr '\\0' "$k"; echo; done
printf 'bad utf-8: \\xff\\xfe\\xc3\\x28 end\\n'
printf '\\x80\\x81\\x82\\n'
printf 'latin-1 caf\\xe9\\n'
printf 'CRLF line\\r\\n'
printf '\\n\\n'
printf 'no newline at the end'
`;

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('log durability', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ slots: 2 });
  });
  after(() => rig.close());

  test('stores 200,000 lines with empty, 1 MiB and non-UTF-8 lines exactly once, in order', async () => {
    const expected = execFileSync('bash', ['-c', BIG_SCRIPT], { maxBuffer: 64 << 20 });
    const id = await submit(rig.admin, BIG_SCRIPT);
    const job = await waitJob(rig.admin, id, 120_000);
    assert.equal(job.state, 'completed', job.reason);
    const events = await allEvents(rig.admin, id);
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'event seqs are contiguous from 1');
    const got = stdoutBytes(events);
    assert.equal(got.length, expected.length);
    assert.equal(sha(got), sha(expected));
    const lines = events.filter((e) => e.stream === 'stdout');
    assert.equal(lines.length, 200_000, 'one event per line');
    assert.ok(lines.some((e) => e.base64 !== undefined), 'non-UTF-8 lines carry their exact bytes');
    assert.equal(lines.filter((e) => e.text?.length === 1 << 20).length, 3, 'the three 1 MiB lines arrive whole');
    // The raw log download has the same stdout bytes in it.
    const raw = await fetch(`${rig.admin.url}/api/v1/jobs/${id}/log`, { headers: { authorization: `Bearer ${rig.admin.token}` } });
    assert.equal(raw.status, 200);
    const rawBytes = Buffer.from(await raw.arrayBuffer());
    assert.ok(rawBytes.includes(expected.subarray(0, 4096)));
  });

  test('an events page holds at most about 8 MiB of lines, and paging by next returns every line once', async () => {
    const id = await submit(rig.admin, 'for i in $(seq 1 20); do head -c 1048576 /dev/zero | tr "\\0" x; echo; done');
    assert.equal((await waitJob(rig.admin, id)).state, 'completed');
    const first = await rig.admin.call('GET', `/api/v1/jobs/${id}/events?after=0&limit=100000`);
    const bigLines = first.body.events.filter((e: { stream: string }) => e.stream === 'stdout').length;
    assert.ok(bigLines >= 1 && bigLines <= 8, `first page carried ${bigLines} MiB lines`);
    assert.equal(first.body.done, false);
    const lines = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout');
    assert.equal(lines.length, 20);
    assert.ok(lines.every((e) => e.text.length === 1 << 20));
  });

  test('a dropped agent connection mid-job loses and repeats no line', async () => {
    const n = 30_000;
    const id = await submit(rig.admin, `for i in $(seq 1 ${n}); do echo "line $i"; if (( i % 3000 == 0 )); then sleep 0.2; fi; done`);
    const worker = await until('the job to be running', async () => {
      const r = await rig.admin.call('GET', `/api/v1/jobs/${id}`);
      return r.body.state === 'running' && r.body.lastEvent > 100 ? (r.body.worker as WorkerId) : undefined;
    });
    for (let drop = 0; drop < 3; drop++) {
      const link = await until('the agent to be connected', () => rig.c.core.agents.get(worker));
      link.close(new ProtocolError('GOING_AWAY', 'test drops the connection'));
      await new Promise((r) => setTimeout(r, 300));
    }
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'completed', job.reason);
    const lines = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
    assert.deepEqual(lines, Array.from({ length: n }, (_, i) => `line ${i + 1}`));
  });

  test('an agent killed with SIGKILL fails its job with a control message, its worker is recycled, and the next job runs', async () => {
    const id = await submit(rig.admin, 'echo started; sleep 60');
    const job = await until('the job to print', async () => {
      const r = await rig.admin.call('GET', `/api/v1/jobs/${id}`);
      return r.body.lastEvent >= 3 ? r.body : undefined;
    });
    const w = rig.c.core.workers.get(job.worker)!;
    const pid = Number(/local-pid-(\d+)/.exec(w.instance ?? '')?.[1]);
    assert.ok(pid > 0, `instance ${w.instance} names the agent's pid`);
    process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    const ended = await waitJob(rig.admin, id, 60_000);
    assert.ok(Date.now() - t0 < 60_000);
    assert.equal(ended.state, 'failed');
    const control = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'control').map((e) => e.text as string);
    assert.ok(control.some((t) => t.includes(job.worker)), `a control message names the worker: ${control.join(' | ')}`);
    await until('the worker to be destroyed', () => rig.c.core.workers.get(job.worker)?.state === 'destroyed');
    const next = await submit(rig.admin, 'echo next');
    assert.equal((await waitJob(rig.admin, next)).state, 'completed');
  });
});

describe('coordinator crash', () => {
  test('kill -9 of the coordinator mid-stream: the agent reconnects and every line is stored exactly once', async () => {
    const dir = tempDir('bw-crash-');
    const proc = new CoordinatorProcess(join(dir.path, 'store'), { workerLostGraceMs: 30_000 });
    const first = await proc.start();
    const admin = api(first.url, first.adminToken!);
    const factory = startLocalFactory({
      url: first.url.replace(/^http/, 'ws') + '/api/v1/connect', coordinatorKey: new Uint8Array(Buffer.from(proc.publicKey, 'base64')),
      token: first.factoryToken!, slots: 1, workRoot: dir.path, log: () => {},
    });
    try {
      const n = 40_000;
      const id = await submit(admin, `for i in $(seq 1 ${n}); do echo "line $i"; if (( i % 2000 == 0 )); then sleep 0.15; fi; done`);
      await until('lines to stream', async () => (await admin.call('GET', `/api/v1/jobs/${id}`)).body.lastEvent > 2000);
      await proc.kill9();
      await new Promise((r) => setTimeout(r, 500));
      await proc.start();
      const job = await waitJob(admin, id, 90_000);
      assert.equal(job.state, 'completed', job.reason);
      const events = await allEvents(admin, id);
      assert.deepEqual(events.map((e) => e.seq), Array.from({ length: events.length }, (_, i) => i + 1));
      const lines = events.filter((e) => e.stream === 'stdout').map((e) => e.text);
      assert.deepEqual(lines, Array.from({ length: n }, (_, i) => `line ${i + 1}`));
    } finally {
      await factory.close();
      await proc.stop();
      dir.remove();
    }
  });
});
