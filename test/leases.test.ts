import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Message } from '../protocol/index.js';
import { PeerClient } from '../protocol/index.js';
import { startRig, submit, until } from './helpers.js';

/** A factory that takes leases and never starts an agent: the coordinator's lease expiry must clean up. */
function idleFactory(url: string, key: Uint8Array, token: string) {
  const got: Message[] = [];
  const client = new PeerClient({ url, coordinatorKey: key, role: 'factory', auth: () => ({ method: 'token', token }) });
  client.on('open', () => {
    client.send({ type: 'inventory', instances: [] });
    client.send({ type: 'capacity', free: 1 });
  });
  client.on('message', (m: Message) => got.push(m));
  client.start();
  return { client, got };
}

test('a lease whose agent never connects expires: the worker is recycled, the factory told to destroy it, and the job leased again', async () => {
  await using rig = await startRig({ factory: false, config: { leaseMs: 600 } });
  const f = idleFactory(rig.c.connectUrl, rig.c.core.identity.publicKey, rig.factoryToken);
  try {
    const id = await submit(rig.admin, 'echo never runs');
    const first = await until('a lease', () => f.got.find((m) => m.type === 'lease'));
    assert.ok(first.type === 'lease');
    f.client.send({ type: 'created', worker: first.worker, instance: 'i-1' });
    const destroy = await until('the destroy', () => f.got.find((m) => m.type === 'destroy' && m.worker === first.worker), 10_000);
    assert.deepEqual(destroy, { type: 'destroy', worker: first.worker, instance: 'i-1' });
    assert.equal(rig.c.core.workers.get(first.worker as never)?.recycleReason, 'lease expired before its agent connected');
    f.client.send({ type: 'destroyed', worker: first.worker });
    f.client.send({ type: 'capacity', free: 1 });
    const second = await until('a second lease', () => f.got.find((m) => m.type === 'lease' && m.worker !== first.worker), 10_000);
    assert.ok(second.type === 'lease');
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.state, 'queued');
    // Renewing keeps a slow boot's lease alive past its first expiry.
    f.client.send({ type: 'renew', worker: second.worker });
    const renewed = await until('renewed', () => f.got.find((m) => m.type === 'renewed' && m.worker === second.worker));
    assert.ok(renewed.type === 'renewed' && renewed.expiresAt > second.expiresAt);
    assert.equal(rig.c.core.workers.get(second.worker as never)?.state, 'pending');
    await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
  } finally {
    f.client.close();
  }
});

test('a factory reconnecting without a worker it was running has that worker destroyed (inventory repairs drift)', async () => {
  await using rig = await startRig({ factory: false });
  const f = idleFactory(rig.c.connectUrl, rig.c.core.identity.publicKey, rig.factoryToken);
  try {
    await submit(rig.admin, 'echo x');
    const lease = await until('a lease', () => f.got.find((m) => m.type === 'lease'));
    assert.ok(lease.type === 'lease');
    f.client.send({ type: 'created', worker: lease.worker, instance: 'i-9' });
    await until('the instance to be recorded', () => rig.c.core.workers.get(lease.worker as never)?.instance === 'i-9');
    f.client.dropConnection();
    await until('the worker to be destroyed after the reconnect', () => rig.c.core.workers.get(lease.worker as never)?.state === 'destroyed', 15_000);
    // An instance the coordinator does not know is destroyed on sight.
    f.client.send({ type: 'inventory', instances: [{ worker: '01M7YJXN47H1SK50BSZ6DYDXNB', instance: 'i-orphan' }] });
    const d = await until('a destroy for the orphan', () => f.got.find((m) => m.type === 'destroy' && m.instance === 'i-orphan'));
    assert.equal(d.type, 'destroy');
  } finally {
    f.client.close();
  }
});
