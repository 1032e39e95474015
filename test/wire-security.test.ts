/**
 * The wire under attack: a real coordinator on 127.0.0.1:0, a real local
 * factory and agent streaming a real job, and hostile peers (test/hostile-peer.ts)
 * that break each rule of the handshake, the sealed channel and ownership.
 * Every refusal is asserted exactly: the error frame's code and message, and
 * the WebSocket close code. The streaming job must come through untouched:
 * same agent connection throughout, every line exactly once.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { ClientAuth, ErrorCode, JobAssignment, SigningKeyPair } from '../protocol/index.js';
import {
  ERROR_CODES, ProtocolError, REC, SEALED_HEADER_BYTES, decodeTrusted, encode, generateSigningKeyPair, resolveLimits,
} from '../protocol/index.js';
import { HostilePeer, PeerClosedError, connectPeer } from './hostile-peer.js';
import type { ConnectOptions, PeerClose } from './hostile-peer.js';
import { allEvents, startRig, submit, until, waitJob } from './helpers.js';
import type { Api, Rig } from './helpers.js';

/** What `POST /api/v1/workers` returns for a persistent worker. */
interface NewWorker {
  id: string;
  credential: string;
  coordinatorKey: string;
}

async function createWorker(a: Api, target: string): Promise<NewWorker> {
  const r = await a.call('POST', '/api/v1/workers', { target });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as NewWorker;
}

function bootstrapAuth(w: NewWorker, kp: SigningKeyPair): ClientAuth {
  return { method: 'bootstrap', worker: w.id, credential: w.credential, seed: kp.seed, publicKey: kp.publicKey };
}

/** Asserts the coordinator refused with `code`: its error frame, then the close code and reason. */
function assertRefused(close: PeerClose, code: ErrorCode, message: string | RegExp): void {
  assert.deepEqual(
    { close: close.code, reason: close.reason, error: close.error?.code },
    { close: ERROR_CODES[code], reason: code, error: code },
    `refusal ${JSON.stringify(close)}`,
  );
  if (typeof message === 'string') assert.equal(close.error?.message, message);
  else assert.match(close.error?.message ?? '', message);
}

/** Connects, expecting the coordinator to refuse before the welcome; returns how it closed. */
async function refusedConnect(url: string, key: string, auth: ClientAuth, opts: ConnectOptions = {}): Promise<PeerClose> {
  try {
    const peer = await connectPeer(url, key, auth, opts);
    peer.terminate();
    assert.fail(`expected a refusal, got ${JSON.stringify(peer.welcome)}`);
  } catch (err) {
    if (err instanceof PeerClosedError) return err.close;
    throw err;
  }
}

/** Lines 1..N then "total N", until a marker file appears (bounded at 100,000 lines). */
function streamScript(marker: string): string {
  return [
    'i=0',
    `while [ ! -e ${JSON.stringify(marker)} ] && [ "$i" -lt 100000 ]; do`,
    '  i=$((i+1)); echo "line $i"',
    '  if (( i % 20 == 0 )); then sleep 0.02; fi',
    'done',
    'echo "total $i"',
  ].join('\n');
}

describe('the wire under attack, while a real agent streams a job', () => {
  let rig: Rig;
  let key: string;
  let streamJob: string;
  let streamWorker: string;
  let streamLink: unknown;
  let eventsBeforeAttacks = 0;
  let marker: string;
  const peers: HostilePeer[] = [];
  // Hostile agents register on their own target so the scheduler never hands
  // them a real job (persistent workers on `local` would compete with the agent).
  const HOSTILE = 'hostile';

  /** A worker on the hostile target, bootstrapped by a hostile peer: a valid open session. */
  async function session(): Promise<{ peer: HostilePeer; worker: NewWorker; kp: SigningKeyPair }> {
    const worker = await createWorker(rig.admin, HOSTILE);
    const kp = generateSigningKeyPair();
    const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, kp));
    peers.push(peer);
    assert.deepEqual(peer.welcome, { type: 'welcome', worker: worker.id, job: null, heartbeatMs: rig.c.core.config.heartbeatMs });
    return { peer, worker, kp };
  }

  async function attempt(auth: ClientAuth, opts: ConnectOptions = {}): Promise<PeerClose> {
    return refusedConnect(rig.c.connectUrl, key, auth, opts);
  }

  before(async () => {
    rig = await startRig({ slots: 2 });
    key = rig.c.publicKeyBase64;
    marker = join(rig.dir, 'stop-streaming');
    const t = await rig.admin.call('POST', '/api/v1/targets', { name: HOSTILE, description: 'hostile peers only' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    streamJob = await submit(rig.admin, streamScript(marker), { maxRuntimeSeconds: 300 });
    const job = await until('the streaming job to print', async () => {
      const r = await rig.admin.call('GET', `/api/v1/jobs/${streamJob}`);
      return r.body.state === 'running' && r.body.lastEvent > 20 ? r.body : undefined;
    }, 60_000);
    streamWorker = job.worker;
    streamLink = rig.c.core.agents.get(job.worker);
    assert.ok(streamLink, 'the streaming agent is connected');
    eventsBeforeAttacks = job.lastEvent;
  });

  afterEach(() => {
    for (const p of peers.splice(0)) p.terminate();
  });

  after(async () => {
    if (marker) writeFileSync(marker, '');
    await rig?.close();
  });

  describe('credentials', () => {
    test('a bootstrap credential presented a second time is refused with CREDENTIAL_USED (4008); the first session stays up', async () => {
      const { peer, worker } = await session();
      const close = await attempt(bootstrapAuth(worker, generateSigningKeyPair()));
      assertRefused(close, 'CREDENTIAL_USED', `the bootstrap credential of worker ${worker.id} was already used`);
      // The refused attempt touched nothing: the first session still answers.
      peer.sendSealed({ type: 'ping', t: 42 });
      assert.deepEqual(await peer.nextMessage('pong'), { type: 'pong', t: 42 });
      assert.equal(peer.isClosed, false);
    });

    test('two simultaneous bootstraps with one credential: exactly one is welcomed, the other gets CREDENTIAL_USED', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const results = await Promise.allSettled([
        connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair())),
        connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair())),
      ]);
      const won = results.filter((r): r is PromiseFulfilledResult<HostilePeer> => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      peers.push(...won.map((r) => r.value));
      assert.equal(won.length, 1, 'one bootstrap wins');
      assert.equal(lost.length, 1, 'one bootstrap loses');
      assert.ok(lost[0]!.reason instanceof PeerClosedError, String(lost[0]!.reason));
      assertRefused(lost[0]!.reason.close, 'CREDENTIAL_USED', `the bootstrap credential of worker ${worker.id} was already used`);
    });

    test('a bootstrap for a deleted (recycled) worker is refused with WORKER_UNKNOWN (4011)', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const r = await rig.admin.call('POST', `/api/v1/workers/${worker.id}/recycle`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.state, 'destroyed');
      const close = await attempt(bootstrapAuth(worker, generateSigningKeyPair()));
      assertRefused(close, 'WORKER_UNKNOWN', `worker ${worker.id} does not exist or was destroyed`);
    });

    test('a wrong bootstrap credential is refused with CREDENTIAL_INVALID (4010) and does not burn the real one', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const close = await attempt(bootstrapAuth({ ...worker, credential: `${worker.credential.slice(0, -2)}xx` }, generateSigningKeyPair()));
      assertRefused(close, 'CREDENTIAL_INVALID', `the bootstrap credential does not match worker ${worker.id}`);
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()));
      peers.push(peer);
      assert.equal(peer.welcome?.type, 'welcome');
    });

    test('a forged bootstrap signature is refused with BAD_SIGNATURE (4007) and does not burn the real credential', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const signer = generateSigningKeyPair();
      const claimed = generateSigningKeyPair();
      // The real credential, but a signature that does not verify with the key it claims.
      const close = await attempt({ method: 'bootstrap', worker: worker.id, credential: worker.credential, seed: signer.seed, publicKey: claimed.publicKey });
      assertRefused(close, 'BAD_SIGNATURE', `worker ${worker.id}: handshake signature does not verify with its registered key`);
      assert.notEqual(rig.c.core.workers.get(worker.id as never)?.credentialHash, null, 'the credential is not burned');
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()));
      peers.push(peer);
      assert.deepEqual(peer.welcome, { type: 'welcome', worker: worker.id, job: null, heartbeatMs: rig.c.core.config.heartbeatMs });
    });

    test('a reconnect signed with another key is refused with BAD_SIGNATURE (4007); the registered key reconnects', async () => {
      const { peer, worker, kp } = await session();
      peer.terminate();
      await peer.nextClose();
      const close = await attempt({ method: 'key', worker: worker.id, seed: generateSigningKeyPair().seed });
      assertRefused(close, 'BAD_SIGNATURE', `worker ${worker.id}: handshake signature does not verify with its registered key`);
      const again = await connectPeer(rig.c.connectUrl, key, { method: 'key', worker: worker.id, seed: kp.seed });
      peers.push(again);
      assert.equal(again.welcome?.type, 'welcome');
    });

    test('a reconnect for a worker that never bootstrapped is refused with CREDENTIAL_INVALID (4010)', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const close = await attempt({ method: 'key', worker: worker.id, seed: generateSigningKeyPair().seed });
      assertRefused(close, 'CREDENTIAL_INVALID', `worker ${worker.id} has not bootstrapped; use its bootstrap credential`);
    });

    test('a client pinning another coordinator key rejects the challenge with COORDINATOR_IMPOSTOR', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const wrongKey = Buffer.from(generateSigningKeyPair().publicKey).toString('base64');
      await assert.rejects(
        connectPeer(rig.c.connectUrl, wrongKey, bootstrapAuth(worker, generateSigningKeyPair())),
        (err: unknown) => {
          assert.ok(err instanceof ProtocolError, String(err));
          assert.equal(err.code, 'COORDINATOR_IMPOSTOR');
          assert.equal(err.closeCode, 4016);
          assert.equal(err.message, 'the coordinator\'s handshake signature does not match the pinned coordinator key');
          return true;
        },
      );
      // The client never sent its credential to the impostor: it still works against the real one.
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()));
      peers.push(peer);
      assert.equal(peer.welcome?.type, 'welcome');
    });

    test('a hello with protocol version 0 is refused with VERSION_UNSUPPORTED (4005)', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()), { version: 0, stopAfter: 'hello' });
      peers.push(peer);
      assertRefused(await peer.nextClose(), 'VERSION_UNSUPPORTED', 'protocol version 0 is older than the oldest supported (1)');
    });

    test('an agent presenting a token is refused with UNEXPECTED_MESSAGE (4017)', async () => {
      const close = await attempt({ method: 'token', token: rig.factoryToken }, { role: 'agent' });
      assertRefused(close, 'UNEXPECTED_MESSAGE', 'agents authenticate with a bootstrap credential or their key, not a token');
    });

    test('a factory with an unknown token is refused with BAD_TOKEN (4012)', async () => {
      const close = await attempt({ method: 'token', token: 'bwf_not-a-real-token' });
      assertRefused(close, 'BAD_TOKEN', 'the factory token is not known');
    });
  });

  describe('handshake order', () => {
    test('an auth sent before any hello is refused with UNEXPECTED_MESSAGE (4017)', async () => {
      const peer = await connectPeer(rig.c.connectUrl, key, { method: 'token', token: 'x' }, { stopAfter: 'socket' });
      peers.push(peer);
      peer.send(encode({ type: 'auth', method: 'token', token: rig.factoryToken }));
      assertRefused(await peer.nextClose(), 'UNEXPECTED_MESSAGE', 'expected hello, got auth');
    });

    test('a second hello instead of the auth is refused with UNEXPECTED_MESSAGE (4017)', async () => {
      const worker = await createWorker(rig.admin, HOSTILE);
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()), { stopAfter: 'challenge' });
      peers.push(peer);
      peer.send(peer.handshake!.hello());
      assertRefused(await peer.nextClose(), 'UNEXPECTED_MESSAGE', 'expected auth, got hello');
    });

    test('a first frame that is not msgpack is refused with MALFORMED_FRAME (4000)', async () => {
      const peer = await HostilePeer.open(rig.c.connectUrl);
      peers.push(peer);
      peer.send(Buffer.from([0x82, 0xa4]));
      assertRefused(await peer.nextClose(), 'MALFORMED_FRAME', /^frame of 2 bytes is not one msgpack value \(.+\)$/);
    });

    test('a hello with a low-order (all-zero) ephemeral key is refused with MALFORMED_FRAME (4000)', async () => {
      const peer = await HostilePeer.open(rig.c.connectUrl);
      peers.push(peer);
      peer.send(encode({ type: 'hello', v: 1, role: 'agent', nonce: Buffer.alloc(32, 1), ephemeral: Buffer.alloc(32) }));
      assertRefused(await peer.nextClose(), 'MALFORMED_FRAME', /^hello\.ephemeral is not a usable X25519 key \(/);
    });

    test('a newer connection for the same worker closes the older one with a sealed SUPERSEDED (4018)', async () => {
      const { peer, worker, kp } = await session();
      const newer = await connectPeer(rig.c.connectUrl, key, { method: 'key', worker: worker.id, seed: kp.seed });
      peers.push(newer);
      const close = await peer.nextClose();
      assertRefused(close, 'SUPERSEDED', `a newer connection for worker ${worker.id} replaced this one`);
      assert.ok(peer.received.at(-1)?.sealed, 'the refusal after the welcome is sealed');
      newer.sendSealed({ type: 'ping', t: 8 });
      assert.deepEqual(await newer.nextMessage('pong'), { type: 'pong', t: 8 });
    });

    test('a user\'s token does not open a factory session: BAD_TOKEN (4012)', async () => {
      const close = await attempt({ method: 'token', token: rig.admin.token });
      assertRefused(close, 'BAD_TOKEN', 'the factory token is not known');
    });

    test('a disabled factory is refused with BAD_TOKEN (4012); disabling a connected one closes it', async () => {
      const f = await rig.admin.call('POST', '/api/v1/factories', { name: 'sleeper', targets: [HOSTILE] });
      assert.equal(f.status, 201, JSON.stringify(f.body));
      const peer = await connectPeer(rig.c.connectUrl, key, { method: 'token', token: f.body.token });
      peers.push(peer);
      assert.equal(peer.welcome?.type, 'factory_welcome');
      assert.equal((await rig.admin.call('POST', '/api/v1/factories/sleeper/disable')).status, 200);
      assertRefused(await peer.nextClose(), 'BAD_TOKEN', 'factory sleeper was disabled');
      const close = await attempt({ method: 'token', token: f.body.token });
      assertRefused(close, 'BAD_TOKEN', `factory sleeper (${f.body.id}) is disabled`);
    });
  });

  describe('sealed frames', () => {
    const ping = (t: number) => encode({ type: 'ping', t });

    test('a frame with one MAC byte flipped is refused with BAD_MAC (4002)', async () => {
      const { peer } = await session();
      const frame = peer.sealRaw(ping(1));
      frame[8 + 5]! ^= 0x01;
      peer.send(frame);
      assertRefused(await peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
    });

    test('a frame with one body byte flipped is refused with BAD_MAC (4002)', async () => {
      const { peer } = await session();
      const frame = peer.sealRaw(ping(1));
      frame[frame.length - 1]! ^= 0x01;
      peer.send(frame);
      assertRefused(await peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
    });

    test('a frame whose counter was rewritten is refused with BAD_MAC, not read as a replay or a skip', async () => {
      const { peer } = await session();
      const frame = peer.sealRaw(ping(1));
      frame.writeUInt32BE(7, 4);
      peer.send(frame);
      assertRefused(await peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
    });

    test('a frame sent a second time is refused with REPLAYED_FRAME (4003)', async () => {
      const { peer } = await session();
      const frame = peer.sealRaw(ping(7));
      peer.send(frame);
      assert.deepEqual(await peer.nextMessage('pong'), { type: 'pong', t: 7 });
      peer.send(frame);
      assertRefused(await peer.nextClose(), 'REPLAYED_FRAME', 'frame counter 0 was already used (expected 1)');
    });

    test('a frame whose predecessor was never sent is refused with SKIPPED_FRAME (4004)', async () => {
      const { peer } = await session();
      peer.sealRaw(ping(1));
      const second = peer.sealRaw(ping(2));
      peer.send(second);
      assertRefused(await peer.nextClose(), 'SKIPPED_FRAME', 'frame counter 1 skips ahead of 0');
    });

    test('a frame sealed for another session is refused with BAD_MAC (4002)', async () => {
      const a = await session();
      const b = await session();
      const frame = a.peer.sealRaw(ping(3));
      b.peer.send(frame);
      assertRefused(await b.peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
      // The same bytes are a valid first frame in the session they were sealed for.
      a.peer.send(frame);
      assert.deepEqual(await a.peer.nextMessage('pong'), { type: 'pong', t: 3 });
    });

    test('the coordinator\'s own frame reflected back to it is refused with BAD_MAC (keys differ per direction)', async () => {
      const { peer } = await session();
      const welcomeFrame = peer.received.find((r) => r.sealed)!.bytes;
      peer.send(welcomeFrame);
      assertRefused(await peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
    });

    test('a sealed message of an unknown type is refused with UNKNOWN_TYPE (4001)', async () => {
      const { peer } = await session();
      peer.sendSealed({ type: 'nope' });
      assertRefused(await peer.nextClose(), 'UNKNOWN_TYPE', 'message type "nope" is not known to this protocol version');
    });

    test('a frame shorter than the 40-byte sealed header is refused with MALFORMED_FRAME (4000)', async () => {
      const { peer } = await session();
      peer.send(peer.sealRaw(ping(1)).subarray(0, SEALED_HEADER_BYTES - 1));
      assertRefused(await peer.nextClose(), 'MALFORMED_FRAME', 'sealed frame of 39 bytes is shorter than its 40-byte header plus a body');
    });

    test('a sealed body that is not msgpack is refused with MALFORMED_FRAME (4000)', async () => {
      const { peer } = await session();
      // A map of two entries whose first key is cut off.
      peer.send(peer.sealRaw(Buffer.from([0x82, 0xa4, 0x74])));
      assertRefused(await peer.nextClose(), 'MALFORMED_FRAME', /^frame of 3 bytes is not one msgpack value \(.+\)$/);
    });

    test('a sealed message that is valid but not one an agent may send is refused with UNEXPECTED_MESSAGE (4017)', async () => {
      const { peer } = await session();
      peer.sendSealed({ type: 'capacity', free: 3 });
      assertRefused(await peer.nextClose(), 'UNEXPECTED_MESSAGE', 'agents may not send capacity');
    });

    test('a text frame closes the connection with 1003', async () => {
      const { peer } = await session();
      peer.sendText('{"type":"ping","t":1}');
      const close = await peer.nextClose();
      assert.equal(close.code, 1003);
      assert.equal(close.reason, 'binary messages only');
      assert.equal(close.error, undefined);
    });

    test('an unsealed hello sent again after the session is open is refused with BAD_MAC (it carries no valid MAC)', async () => {
      const { peer } = await session();
      peer.send(peer.handshake!.hello());
      // Longer than a sealed header, so the MAC check is what fails (a shorter one would be MALFORMED_FRAME).
      assert.ok(peer.handshake!.hello().length > SEALED_HEADER_BYTES);
      assertRefused(await peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
    });
  });

  describe('ownership and sequence', () => {
    const OWNED = 'owned';
    let holder: { peer: HostilePeer; worker: NewWorker };
    let heldJob: string;

    const batch = (job: string, n: number, line: string) =>
      ({ type: 'batch', job, batch: n, recs: [[Date.now(), REC.STDOUT, 0, Buffer.from(line)]] });

    before(async () => {
      const t = await rig.admin.call('POST', '/api/v1/targets', { name: OWNED, description: 'one hostile holder' });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      const worker = await createWorker(rig.admin, OWNED);
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()));
      holder = { peer, worker };
      heldJob = await submit(rig.admin, 'echo never runs', { target: OWNED });
      const assign = await holder.peer.nextMessage('assign', 10_000);
      const a = decodeTrusted(assign.payload) as JobAssignment;
      assert.equal(a.id, heldJob);
      assert.equal(a.worker, worker.id);
    });

    after(() => holder?.peer.terminate());

    test('a worker sending a batch for a job it does not hold is refused with NOT_OWNER (4014); the job\'s events are unchanged', async () => {
      const before = await allEvents(rig.admin, heldJob);
      const { peer, worker } = await session();
      peer.sendSealed(batch(heldJob, 1, 'injected by another worker'));
      assertRefused(await peer.nextClose(), 'NOT_OWNER', `worker ${worker.id} does not hold job ${heldJob}`);
      assert.deepEqual(await allEvents(rig.admin, heldJob), before);
      // Nor can it write into the job a real agent is streaming.
      const other = await session();
      other.peer.sendSealed(batch(streamJob, 1, 'injected into the streaming job'));
      assertRefused(await other.peer.nextClose(), 'NOT_OWNER', `worker ${other.worker.id} does not hold job ${streamJob}`);
    });

    test('a factory reporting `created` for a worker it does not own is refused with NOT_OWNER (4014); the worker is unchanged', async () => {
      // A second factory: reusing rig.factoryToken would supersede the local
      // factory that runs the streaming agent, and the two would fight over the link.
      const f = await rig.admin.call('POST', '/api/v1/factories', { name: 'intruder', targets: [HOSTILE] });
      assert.equal(f.status, 201, JSON.stringify(f.body));
      const before = rig.c.core.workers.get(streamWorker as never)!;
      const peer = await connectPeer(rig.c.connectUrl, key, { method: 'token', token: f.body.token });
      peers.push(peer);
      assert.deepEqual(peer.welcome, { type: 'factory_welcome', factory: f.body.id, name: 'intruder', targets: [HOSTILE], leaseMs: rig.c.core.config.leaseMs });
      peer.sendSealed({ type: 'created', worker: streamWorker, instance: 'i-stolen' });
      assertRefused(await peer.nextClose(), 'NOT_OWNER', `factory ${f.body.id} does not own worker ${streamWorker}`);
      const after = rig.c.core.workers.get(streamWorker as never)!;
      assert.equal(after.instance, before.instance);
      assert.equal(after.leaseExpiresAt, before.leaseExpiresAt);
    });

    test('a batch that skips a number is refused with SEQUENCE_GAP (4015); the batch before it is stored once', async () => {
      const { peer } = holder;
      peer.sendSealed(batch(heldJob, 1, 'first batch from the holder'));
      assert.deepEqual(await peer.nextMessage('ack'), { type: 'ack', job: heldJob, batch: 1 });
      peer.sendSealed(batch(heldJob, 3, 'batch three, two never sent'));
      assertRefused(await peer.nextClose(), 'SEQUENCE_GAP', `batch 3 of job ${heldJob} skips ahead of 2`);
      const stdout = (await allEvents(rig.admin, heldJob)).filter((e) => e.stream === 'stdout').map((e) => e.text);
      assert.deepEqual(stdout, ['first batch from the holder']);
    });
  });

  describe('upload data frames (protocol version 3)', () => {
    test('a chunk whose bytes changed on the way passes its header MAC but the upload fails HASH_MISMATCH at upload_end; nothing is stored', async () => {
      const t = await rig.admin.call('POST', '/api/v1/targets', { name: 'tamper', description: 'one hostile uploader' });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      const worker = await createWorker(rig.admin, 'tamper');
      const peer = await connectPeer(rig.c.connectUrl, key, bootstrapAuth(worker, generateSigningKeyPair()));
      peers.push(peer);
      assert.equal(peer.channel!.dataFrames, true, 'a version 3 session sends chunks as data frames');
      const job = await submit(rig.admin, 'echo never runs', { target: 'tamper', outputRules: ['/work/out/*'] });
      assert.equal((decodeTrusted((await peer.nextMessage('assign', 10_000)).payload) as JobAssignment).id, job);
      peer.sendSealed({ type: 'batch', job, batch: 1, recs: [[Date.now(), REC.STDOUT, 0, Buffer.from('making out/a.bin')]] });
      await peer.nextMessage('ack');
      await until('the job to run', async () => (await rig.admin.call('GET', `/api/v1/jobs/${job}`)).body.state === 'running');
      const bytes = Buffer.alloc(5000, 0x61);
      const upload = '01JUPLOADTAMPERTEST0000001';
      peer.sendSealed({ type: 'upload_begin', upload, job, path: '/work/out/a.bin', size: bytes.length, mode: 0o644, mtime: Date.now() });
      assert.equal((await peer.nextMessage('upload_ready')).offset, 0);
      const frame = peer.channel!.seal({ type: 'chunk', upload, offset: 0, data: bytes });
      frame[frame.length - 10]! ^= 0xff;
      peer.send(frame);
      assert.equal((await peer.nextMessage('chunk_ack')).offset, bytes.length);
      peer.sendSealed({ type: 'upload_end', upload, size: bytes.length, sha256: createHash('sha256').update(bytes).digest(), mtime: Date.now() });
      const failed = await peer.nextMessage('upload_failed');
      assert.equal(failed.code, 'HASH_MISMATCH');
      assert.match(failed.message, /the sender declared SHA-256 [0-9a-f]{64} but the coordinator received bytes with SHA-256 [0-9a-f]{64}/);
      assert.deepEqual((await rig.admin.call('GET', `/api/v1/jobs/${job}/outputs`)).body.outputs, []);
    });
  });

  test('through all of it the real agent kept its connection and its job stored every line exactly once', async () => {
    const now = await rig.admin.call('GET', `/api/v1/jobs/${streamJob}`);
    assert.equal(now.body.state, 'running', 'the streaming job outlived the attacks');
    assert.ok(now.body.lastEvent > eventsBeforeAttacks, `events kept arriving (${eventsBeforeAttacks} → ${now.body.lastEvent})`);
    assert.equal(rig.c.core.agents.get(streamWorker as never), streamLink, 'the streaming agent was never disconnected');
    writeFileSync(marker, '');
    const job = await waitJob(rig.admin, streamJob, 60_000);
    assert.equal(job.state, 'completed', job.reason);
    const events = await allEvents(rig.admin, streamJob);
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: events.length }, (_, i) => i + 1), 'event seqs are contiguous from 1');
    const lines = events.filter((e) => e.stream === 'stdout').map((e) => e.text as string);
    const total = Number(/^total (\d+)$/.exec(lines.at(-1) ?? '')?.[1]);
    assert.ok(total > 0, `the job ended with its count: ${lines.at(-1)}`);
    assert.deepEqual(lines, [...Array.from({ length: total }, (_, i) => `line ${i + 1}`), `total ${total}`]);
  });
});

describe('bootstrap credential expiry', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ factory: false, config: { credentialTtlMs: 200 } });
  });
  after(() => rig?.close());

  test('a bootstrap credential past credentialTtlMs is refused with CREDENTIAL_EXPIRED (4009)', async () => {
    const worker = await createWorker(rig.admin, 'local');
    const expiresAt = rig.c.core.workers.get(worker.id as never)!.credentialExpiresAt;
    await until('the credential to expire', () => Date.now() > expiresAt + 10, 5000, 20);
    const close = await refusedConnect(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()));
    assertRefused(close, 'CREDENTIAL_EXPIRED', `the bootstrap credential of worker ${worker.id} expired at ${new Date(expiresAt).toISOString()}`);
  });
});

describe('handshake timeout', () => {
  let rig: Rig;
  const peers: HostilePeer[] = [];
  before(async () => {
    rig = await startRig({ factory: false, config: { limits: resolveLimits({ handshakeTimeoutMs: 300 }) } });
  });
  afterEach(() => {
    for (const p of peers.splice(0)) p.terminate();
  });
  after(() => rig?.close());

  const message = 'handshake not finished within handshakeTimeoutMs (300 ms)';

  test('a connection that never says hello is refused with HANDSHAKE_TIMEOUT (4006)', async () => {
    const t0 = Date.now();
    const peer = await HostilePeer.open(rig.c.connectUrl);
    peers.push(peer);
    assertRefused(await peer.nextClose(3000), 'HANDSHAKE_TIMEOUT', message);
    assert.ok(Date.now() - t0 >= 250, 'not before the timeout');
  });

  test('a handshake stopped after the hello is refused with HANDSHAKE_TIMEOUT (4006)', async () => {
    const worker = await createWorker(rig.admin, 'local');
    const peer = await connectPeer(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()), { stopAfter: 'challenge' });
    peers.push(peer);
    assertRefused(await peer.nextClose(3000), 'HANDSHAKE_TIMEOUT', message);
    // The credential was never presented, so it is still good.
    const ok = await connectPeer(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()));
    peers.push(ok);
    assert.equal(ok.welcome?.type, 'welcome');
  });

  test('a finished handshake is not cut off by the handshake timeout', async () => {
    const worker = await createWorker(rig.admin, 'local');
    const peer = await connectPeer(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()));
    peers.push(peer);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(peer.isClosed, false);
    peer.sendSealed({ type: 'ping', t: 5 });
    assert.deepEqual(await peer.nextMessage('pong'), { type: 'pong', t: 5 });
  });
});

describe('frame size limit', () => {
  let rig: Rig;
  const peers: HostilePeer[] = [];
  const maxFrameBytes = 1 << 20;
  before(async () => {
    rig = await startRig({ factory: false, config: { limits: resolveLimits({ maxFrameBytes, maxBatchBytes: 512 << 10, maxLineBytes: 256 << 10 }) } });
  });
  afterEach(() => {
    for (const p of peers.splice(0)) p.terminate();
  });
  after(() => rig?.close());

  async function open(): Promise<HostilePeer> {
    const worker = await createWorker(rig.admin, 'local');
    const peer = await connectPeer(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()));
    peers.push(peer);
    return peer;
  }

  test('a frame one byte larger than maxFrameBytes closes the connection with 1009', async () => {
    const peer = await open();
    peer.send(Buffer.alloc(maxFrameBytes + 1, 0x61));
    const close = await peer.nextClose();
    assert.equal(close.code, 1009);
  });

  test('a frame of exactly maxFrameBytes passes the size limit (and then fails its MAC)', async () => {
    const peer = await open();
    peer.send(Buffer.alloc(maxFrameBytes, 0x61));
    assertRefused(await peer.nextClose(), 'BAD_MAC', 'frame 0 failed its MAC check');
  });
});

describe('worker lifecycle against connected peers', () => {
  let rig: Rig;
  const peers: HostilePeer[] = [];
  before(async () => {
    rig = await startRig({ factory: false });
  });
  afterEach(() => {
    for (const p of peers.splice(0)) p.terminate();
  });
  after(() => rig?.close());

  test('recycling a connected persistent worker tells its agent and closes the connection with WORKER_RECYCLED (4019)', async () => {
    const worker = await createWorker(rig.admin, 'local');
    const peer = await connectPeer(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()));
    peers.push(peer);
    const r = await rig.admin.call('POST', `/api/v1/workers/${worker.id}/recycle`);
    assert.equal(r.status, 200);
    assert.deepEqual(await peer.nextMessage('recycle'), { type: 'recycle', reason: 'recycled by an administrator' });
    assertRefused(await peer.nextClose(2000), 'WORKER_RECYCLED', new RegExp(`worker ${worker.id}`));
    const listed = await rig.admin.call('GET', '/api/v1/workers?all=1');
    const w = listed.body.workers.find((x: { id: string }) => x.id === worker.id);
    assert.deepEqual({ state: w.state, connected: w.connected }, { state: 'destroyed', connected: false });
  });

  test('a worker recycled while its bootstrap commits is refused with a coded error and leaves no trace', async () => {
    const worker = await createWorker(rig.admin, 'local');
    const workers = rig.c.core.workers;
    const bootstrap = workers.bootstrap.bind(workers);
    // Stands in for an administrator's recycle (or a factory's `destroyed`) landing
    // while the bootstrap's LMDB write is in flight: the same interleaving, made certain.
    workers.bootstrap = (id, credential, agentKey) => {
      const committing = bootstrap(id, credential, agentKey);
      const w = workers.live.get(id);
      if (w) workers.recycle(w, 'recycled by an administrator');
      return committing;
    };
    let close: PeerClose;
    try {
      close = await refusedConnect(rig.c.connectUrl, rig.c.publicKeyBase64, bootstrapAuth(worker, generateSigningKeyPair()));
    } finally {
      workers.bootstrap = bootstrap;
    }
    assert.ok(close.error?.code === 'WORKER_UNKNOWN' || close.error?.code === 'WORKER_RECYCLED', JSON.stringify(close));
    assert.equal(close.code, ERROR_CODES[close.error.code]);
    assert.deepEqual([...workers.live.keys()].filter((k) => typeof k !== 'string'), [], 'no worker without an id is live');
    const page = await fetch(`${rig.c.url}/`);
    assert.equal(page.status, 200, 'the status page still renders');
  });
});

describe('a factory touching workers it does not own', () => {
  // A rig without a running local factory, so the hostile peer can use the
  // rig's own factory token without superseding a real factory's connection.
  let rig: Rig;
  const peers: HostilePeer[] = [];
  before(async () => {
    rig = await startRig({ factory: false });
  });
  afterEach(() => {
    for (const p of peers.splice(0)) p.terminate();
  });
  after(() => rig?.close());

  for (const type of ['created', 'renew', 'lease_failed', 'destroyed'] as const) {
    test(`a factory sending \`${type}\` for a worker it does not own is refused with NOT_OWNER (4014); the worker is unchanged`, async () => {
      const worker = await createWorker(rig.admin, 'local');
      const before = rig.c.core.workers.get(worker.id as never)!;
      const peer = await connectPeer(rig.c.connectUrl, rig.c.publicKeyBase64, { method: 'token', token: rig.factoryToken });
      peers.push(peer);
      assert.equal(peer.welcome?.type, 'factory_welcome');
      const factoryId = (peer.welcome as { factory: string }).factory;
      const msg = type === 'created' ? { type, worker: worker.id, instance: 'i-stolen' }
        : type === 'lease_failed' ? { type, worker: worker.id, reason: 'pretend' }
          : { type, worker: worker.id };
      peer.sendSealed(msg);
      assertRefused(await peer.nextClose(), 'NOT_OWNER', `factory ${factoryId} does not own worker ${worker.id}`);
      assert.deepEqual(rig.c.core.workers.get(worker.id as never), before);
      assert.equal(rig.c.core.workers.live.has(worker.id as never), true, 'the worker is still live');
    });
  }
});
