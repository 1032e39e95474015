/**
 * The live log's hot path below the socket: the event log's in-memory tail
 * (coordinator/event-log.ts), which the live log reads instead of the store
 * and which must answer exactly what the store would, or nothing; and the
 * low-priority compression worker (coordinator/pages/live-deflate.ts).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { EventLog, TAIL_MAX_BYTES } from '../coordinator/event-log.js';
import { deflateLow } from '../coordinator/pages/live-deflate.js';
import { openStore } from '../coordinator/store/schema.js';
import type { Databases } from '../coordinator/store/schema.js';
import type { JobId, LogRecord } from '../protocol/index.js';
import { REC, encode, parseJobId } from '../protocol/index.js';

const JOB_A = parseJobId('01J9Z3Q8W4M6T0Y2R5N7P9B1C3');
const JOB_B = parseJobId('01J9Z3Q8W4M6T0Y2R5N7P9B1C4');

/** Appends agent batch `batch` of `lines` stdout lines of `size` bytes. */
async function agentBatch(log: EventLog, job: JobId, batch: number, lines: number, size = 10): Promise<void> {
  const recs: LogRecord[] = Array.from({ length: lines }, (_, i) => [1_700_000_000_000 + i, REC.STDOUT, 0, Buffer.alloc(size, 97 + (i % 26))]);
  assert.equal(log.classify(job, batch).kind, 'new');
  await log.appendAgentBatch(job, batch, encode({ type: 'batch', job, batch, recs }), lines);
}

/** The batches as comparable values: first seqs and hex bytes. */
const shape = (r: { batches: { first: number; bytes: Buffer }[]; next: number } | null) =>
  r && { next: r.next, batches: r.batches.map((b) => [b.first, Buffer.from(b.bytes).toString('hex')]) };

describe('the event log\'s tail', () => {
  let dir: string;
  let dbs: Databases;
  let log: EventLog;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bw-event-log-'));
    dbs = openStore(join(dir, 'store'));
    log = new EventLog(dbs);
  });
  after(async () => {
    await dbs.env.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('answers what the store answers for every position it holds, and null for positions before it', async () => {
    await log.appendControl(JOB_A, 'before anyone follows');
    await agentBatch(log, JOB_A, 1, 5);
    const before = log.lastSeq(JOB_A);
    assert.equal(log.tailBatches(JOB_A, before, 1 << 20), null, 'no tail is kept until a follower asks');
    log.keepTail(JOB_A, true);
    await agentBatch(log, JOB_A, 2, 7);
    await log.appendControl(JOB_A, 'in between');
    await agentBatch(log, JOB_A, 3, 3);
    const last = log.lastSeq(JOB_A);
    assert.equal(last, before + 11);
    for (let after = before; after < last; after++) {
      assert.deepEqual(shape(log.tailBatches(JOB_A, after, 1 << 20)), shape(log.rawBatches(JOB_A, after, Number.MAX_SAFE_INTEGER, 1 << 20)), `after ${after}`);
    }
    assert.equal(log.tailBatches(JOB_A, before - 1, 1 << 20), null, 'a seq committed before the follower came is read from the store');
    assert.equal(log.tailBatches(JOB_A, last, 1 << 20), null, 'nothing after the last commit');
  });

  test('stops after the batch that passes maxBytes, as the store read does', async () => {
    const from = log.lastSeq(JOB_A);
    for (let b = 4; b < 8; b++) await agentBatch(log, JOB_A, b, 10, 100);
    const tail = log.tailBatches(JOB_A, from, 1500);
    assert.deepEqual(shape(tail), shape(log.rawBatches(JOB_A, from, Number.MAX_SAFE_INTEGER, 1500)));
    assert.equal(tail!.batches.length, 1, 'one batch of ~1.1 KB, then the next would pass 1,500 bytes');
  });

  test('holds at most TAIL_MAX_BYTES: a follower that fell further behind reads the store', async () => {
    log.keepTail(JOB_B, true);
    const start = log.lastSeq(JOB_B);
    const lines = 1000;
    const size = 1024;
    const batches = Math.ceil((TAIL_MAX_BYTES * 1.5) / (lines * size));
    for (let b = 1; b <= batches; b++) await agentBatch(log, JOB_B, b, lines, size);
    assert.equal(log.tailBatches(JOB_B, start, 1 << 20), null, 'the oldest batches left the tail');
    const recent = log.lastSeq(JOB_B) - lines;
    assert.deepEqual(shape(log.tailBatches(JOB_B, recent, 1 << 30)), shape(log.rawBatches(JOB_B, recent, Number.MAX_SAFE_INTEGER, 1 << 30)));
  });

  test('a follower that arrives while a batch commits gets that batch from the store, the ones after from the tail', async () => {
    const job = parseJobId('01J9Z3Q8W4M6T0Y2R5N7P9B1C5');
    await log.appendControl(job, 'first');
    const before = log.lastSeq(job);
    const recs: LogRecord[] = [[1, REC.STDOUT, 0, Buffer.from('in flight')]];
    assert.equal(log.classify(job, 1).kind, 'new');
    const inFlight = log.appendAgentBatch(job, 1, encode({ type: 'batch', job, batch: 1, recs }), 1);
    log.keepTail(job, true);
    await inFlight;
    await agentBatch(log, job, 2, 3);
    assert.equal(log.tailBatches(job, before, 1 << 20), null, 'the batch in flight is not in the tail');
    const fromStore = log.rawBatches(job, before, Number.MAX_SAFE_INTEGER, 10);
    assert.equal(fromStore!.next, before + 1, 'the store answers the batch in flight');
    assert.deepEqual(shape(log.tailBatches(job, before + 1, 1 << 20)), shape(log.rawBatches(job, before + 1, Number.MAX_SAFE_INTEGER, 1 << 20)));
    log.keepTail(job, false);
  });

  test('goes when the last follower stops, and the job\'s state can then be forgotten', async () => {
    log.keepTail(JOB_B, true);
    log.keepTail(JOB_B, false);
    const last = log.lastSeq(JOB_B);
    await agentBatch(log, JOB_B, log.nextBatch(JOB_B), 2);
    assert.notEqual(log.tailBatches(JOB_B, last, 1 << 20), null, 'one follower is still there');
    log.keepTail(JOB_B, false);
    assert.equal(log.tailBatches(JOB_B, last, 1 << 20), null);
    log.forget(JOB_B);
    assert.equal(log.lastSeq(JOB_B), last + 2, 'read back from the store');
  });
});

describe('the live log\'s compression worker', () => {
  test('answers each page with its own bytes compressed, many at once, from a thread at nice 19 beside the main one at 0', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => Buffer.from(`page ${i}: ${'build output line\n'.repeat(200 + i * 37)}`));
    const out = await Promise.all(bodies.map((b) => deflateLow(b)));
    for (const [i, o] of out.entries()) assert.ok(inflateRawSync(o).equals(bodies[i]!), `page ${i}`);
    const nice = (task: string) => Number(readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    const tasks = readdirSync('/proc/self/task');
    assert.equal(nice(String(process.pid)), 0, 'the main thread keeps its priority');
    assert.ok(tasks.some((t) => nice(t) === 19), 'one thread (the worker) runs at nice 19');
  });
});
