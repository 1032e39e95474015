import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { LogRecord } from '../protocol/index.js';
import { REC, REC_PARTIAL, decodeTrusted } from '../protocol/index.js';
import { LineSplitter, Outbox } from '../agent/outbox.js';

function sink() {
  const sent: number[] = [];
  let connected = true;
  return {
    sent,
    set connected(v: boolean) { connected = v; },
    sendEncoded(body: Uint8Array) {
      if (!connected) return false;
      sent.push((decodeTrusted(body) as { batch: number }).batch);
      return true;
    },
  };
}

const line = (n: number): LogRecord => [0, REC.STDOUT, 0, Buffer.alloc(n, 120)];

test('the outbox never has more than maxUnackedBytes in flight, sends in order as acks free the window, and pauses the producer', () => {
  const s = sink();
  let paused = 0, resumed = 0;
  const out = new Outbox('01M7YJXN47H1SK50BSZ6DYDXNB', s, { maxUnackedBytes: 3000, flushBytes: 1, onPause: () => paused++, onResume: () => resumed++ });
  for (let i = 0; i < 6; i++) out.push(line(900));
  assert.deepEqual(s.sent, [1, 2, 3], 'three ~950-byte batches fit in 3000 bytes; the rest wait');
  assert.equal(out.paused, true);
  assert.equal(paused, 1);
  out.ack(2);
  assert.deepEqual(s.sent, [1, 2, 3, 4, 5]);
  out.ack(5);
  assert.deepEqual(s.sent, [1, 2, 3, 4, 5, 6]);
  assert.equal(out.paused, false);
  assert.equal(resumed, 1);
});

test('after a reconnect the outbox drops what the coordinator stored and resends the rest in order', () => {
  const s = sink();
  const out = new Outbox('01M7YJXN47H1SK50BSZ6DYDXNB', s, { maxUnackedBytes: 1 << 20, flushBytes: 1 });
  for (let i = 0; i < 3; i++) out.push(line(10));
  s.connected = false;
  for (let i = 0; i < 2; i++) out.push(line(10));
  assert.deepEqual(s.sent, [1, 2, 3]);
  s.connected = true;
  out.resume(3);
  assert.deepEqual(s.sent, [1, 2, 3, 3, 4, 5], 'batch 3 was not stored: it goes again, then 4 and 5');
});

test('a line longer than maxLineBytes is split into partial pieces and output without a final newline ends partial', () => {
  const recs: LogRecord[] = [];
  const split = new LineSplitter(REC.STDOUT, 0, 4, (r) => recs.push(r));
  split.write(Buffer.from('abcdefghij\nxy'));
  split.write(Buffer.from('z\n12345'));
  split.end();
  const pieces = recs.map(([, k, , d]) => [(d as Buffer).toString(), (k & REC_PARTIAL) !== 0]);
  assert.deepEqual(pieces, [['abcd', true], ['efgh', true], ['ij', false], ['xyz', false], ['1234', true], ['5', true]]);
  const rebuilt = recs.map(([, k, , d]) => (d as Buffer).toString() + (k & REC_PARTIAL ? '' : '\n')).join('');
  assert.equal(rebuilt, 'abcdefghij\nxyz\n12345');
});
