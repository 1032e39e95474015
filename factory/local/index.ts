/**
 * The local factory: each worker is an agent process on this host, in its
 * own temporary directory, one job per worker. It speaks the same factory
 * protocol as the cloud factories: token, leases, create, destroy.
 *
 * @example
 * const f = startLocalFactory({ url, coordinatorKey, token, slots: 4 });
 * await f.close();
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lease, Message, ProtocolError } from '../../protocol/index.js';
import { PeerClient } from '../../protocol/index.js';

/** How a local factory runs. */
export interface LocalFactoryOptions {
  /** The coordinator's connect URL. */
  url: string;
  coordinatorKey: Uint8Array;
  /** The factory token (from `buildwire admin factory create`). */
  token: string;
  /** How many workers may run at once. */
  slots: number;
  /** Parent directory of worker directories (default: the OS temp dir). */
  workRoot?: string;
  /** The command that starts an agent (default: this Node running dist/agent/main.js). */
  agentCommand?: string[];
  /** Extra environment for agents (e.g. BUILDWIRE_UID). */
  agentEnv?: Record<string, string>;
  /** Time between SIGTERM and SIGKILL when destroying a worker. */
  killGraceMs?: number;
  log?: (line: string) => void;
}

interface Slot {
  worker: string;
  dir: string;
  child: ChildProcess;
  destroyRequested: boolean;
}

/** A running local factory. */
export interface LocalFactory extends AsyncDisposable {
  readonly client: PeerClient;
  /** Workers running now. */
  running(): number;
  /** Resolves when the factory stops; rejects on a fatal refusal. */
  readonly done: Promise<void>;
  close(): Promise<void>;
}

const AGENT_MAIN = fileURLToPath(new URL('../../agent/main.js', import.meta.url));

/** Starts a local factory and dials the coordinator. */
export function startLocalFactory(o: LocalFactoryOptions): LocalFactory {
  if (!Number.isSafeInteger(o.slots) || o.slots < 1) throw new RangeError(`slots must be a positive integer, got ${o.slots}`);
  const log = o.log ?? ((l: string) => process.stderr.write(`factory: ${l}\n`));
  const slots = new Map<string, Slot>();
  const client = new PeerClient({ url: o.url, coordinatorKey: o.coordinatorKey, role: 'factory', auth: () => ({ method: 'token', token: o.token }), log });
  let closing = false;
  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => ((resolveDone = res), (rejectDone = rej)));
  done.catch(() => {});

  const capacity = () => client.send({ type: 'capacity', free: closing ? 0 : Math.max(0, o.slots - slots.size) });

  function create(lease: Lease): void {
    if (slots.size >= o.slots || closing) {
      client.send({ type: 'lease_failed', worker: lease.worker, reason: `no free slot (${slots.size} of ${o.slots} in use)` });
      return;
    }
    const dir = mkdtempSync(join(o.workRoot ?? tmpdir(), 'buildwire-worker-'));
    const [cmd, ...args] = o.agentCommand ?? [process.execPath, AGENT_MAIN];
    let child: ChildProcess;
    try {
      child = spawn(cmd!, [...args, 'run'], {
        cwd: dir, stdio: ['ignore', 'ignore', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin', ...o.agentEnv,
          BUILDWIRE_URL: o.url, BUILDWIRE_COORDINATOR_KEY: Buffer.from(o.coordinatorKey).toString('base64'),
          BUILDWIRE_WORKER_ID: lease.worker, BUILDWIRE_BOOTSTRAP: lease.credential,
          BUILDWIRE_AGENT_STATE: join(dir, 'state'), BUILDWIRE_WORK_ROOT: join(dir, 'work'),
          // Agents share this host: each job's inputs go beside its work directory, never /input.
          BUILDWIRE_INPUT_DIR: 'shared',
        },
      });
    } catch (err) {
      removeDir(dir, log);
      client.send({ type: 'lease_failed', worker: lease.worker, reason: `could not start an agent: ${(err as Error).message}` });
      return;
    }
    const slot: Slot = { worker: lease.worker, dir, child, destroyRequested: false };
    slots.set(lease.worker, slot);
    child.stderr!.setEncoding('utf8');
    let tail = '';
    child.stderr!.on('data', (s: string) => {
      tail = (tail + s).slice(-4000);
      for (const line of s.split('\n')) if (line) log(`worker ${lease.worker}: ${line}`);
    });
    child.on('error', (err) => log(`worker ${lease.worker}: ${err.message}`));
    child.on('exit', (code, signal) => {
      slots.delete(lease.worker);
      removeDir(dir, log);
      if (!slot.destroyRequested && code !== 0) log(`worker ${lease.worker}: agent exited with ${signal ?? code}`);
      client.send({ type: 'destroyed', worker: lease.worker });
      capacity();
      if (closing && slots.size === 0) resolveDone();
    });
    client.send({ type: 'created', worker: lease.worker, instance: `local-pid-${child.pid}` });
    capacity();
  }

  function destroy(worker: string): void {
    const slot = slots.get(worker);
    if (!slot) {
      // Nothing here by that name (already gone): say so, so the coordinator can close its books.
      client.send({ type: 'destroyed', worker });
      return;
    }
    if (slot.destroyRequested) return;
    slot.destroyRequested = true;
    slot.child.kill('SIGTERM');
    setTimeout(() => slot.child.kill('SIGKILL'), o.killGraceMs ?? 5_000).unref();
  }

  client.on('open', (w: Message) => {
    if (w.type !== 'factory_welcome') return;
    log(`connected as factory ${w.name} for ${w.targets.join(', ')} with ${o.slots} slot(s)`);
    client.send({ type: 'inventory', instances: [...slots.values()].map((s) => ({ worker: s.worker, instance: `local-pid-${s.child.pid}` })) });
    capacity();
  });
  client.on('message', (msg: Message) => {
    switch (msg.type) {
      case 'lease':
        create(msg);
        return;
      case 'destroy':
        destroy(msg.worker);
        return;
      case 'renewed':
      case 'pong':
        return;
      default:
        log(`unexpected ${msg.type} from the coordinator`);
    }
  });
  client.on('fatal', (err: ProtocolError) => {
    log(`refused by the coordinator: ${err.code}: ${err.message}`);
    void close().then(() => rejectDone(err));
  });
  client.start();

  async function close(): Promise<void> {
    if (closing) return done.catch(() => {});
    closing = true;
    capacity();
    for (const s of slots.values()) destroy(s.worker);
    if (slots.size === 0) resolveDone();
    await done.catch(() => {});
    client.close();
  }

  return { client, running: () => slots.size, done, close, [Symbol.asyncDispose]: close };
}

/**
 * Removes a worker's directory. A process a job left behind (outside its
 * process group) may still be writing there; that must not take the
 * factory down, so retry briefly, then log and leave it.
 */
function removeDir(dir: string, log: (l: string) => void): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    log(`could not remove ${dir}: ${(err as Error).message}`);
  }
}
