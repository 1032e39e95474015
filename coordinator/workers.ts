import type { FactoryId, JobId, WorkerId } from '../protocol/index.js';
import { ProtocolError, hashSecret, newId, newSecret, sameBytes } from '../protocol/index.js';
import type { AgentLink, Core } from './core.js';
import type { WorkerRecord, WorkerState } from './store/records.js';

const MOVES: Record<WorkerState, readonly WorkerState[]> = {
  pending: ['ready', 'recycling', 'destroyed'],
  ready: ['recycling', 'destroyed'],
  recycling: ['destroyed'],
  destroyed: [],
};

/**
 * Workers: live ones in memory, mirroring the store. A worker is `pending`
 * until its agent bootstraps, `ready` while its agent may take (or runs) a
 * job, `recycling` once it is to be destroyed, then `destroyed`.
 */
export class Workers {
  readonly #core: () => Core;
  readonly live = new Map<WorkerId, WorkerRecord>();
  /** When connected agents were last heard from (connect time; written to the store on disconnect). */
  readonly lastSeen = new Map<WorkerId, number>();

  constructor(core: () => Core) {
    this.#core = core;
  }

  /** Loads live workers at start-up and re-arms their deadlines. */
  load(): void {
    const core = this.#core();
    for (const { key } of core.dbs.liveWorkers.getRange({})) {
      const w = core.dbs.workers.get(key);
      if (!w || w.state === 'destroyed') continue;
      this.live.set(w.id, w);
      if (w.state === 'pending' && w.leaseExpiresAt !== null) this.#armLease(w);
      // After a restart nobody is connected yet: a busy worker gets the usual grace to come back.
      if (w.job) this.#armLost(w, 'the coordinator restarted and its agent has not reconnected');
    }
  }

  /** A worker by id, live or not. */
  get(id: WorkerId): WorkerRecord | undefined {
    return this.live.get(id) ?? this.#core().dbs.workers.get(id);
  }

  #write(w: WorkerRecord): WorkerRecord {
    const { dbs } = this.#core();
    if (w.state === 'destroyed') {
      this.live.delete(w.id);
      dbs.liveWorkers.remove(w.id);
    } else {
      this.live.set(w.id, w);
      dbs.liveWorkers.put(w.id, 1);
    }
    dbs.workers.put(w.id, w);
    return w;
  }

  #move(w: WorkerRecord, to: WorkerState, patch: Partial<WorkerRecord> = {}): WorkerRecord {
    if (w.state !== to && !MOVES[w.state].includes(to)) throw new TypeError(`worker ${w.id}: ${w.state} → ${to} is not a lifecycle move`);
    return this.#write({ ...w, ...patch, state: to });
  }

  /** Updates fields without a state move. */
  patch(w: WorkerRecord, patch: Partial<WorkerRecord>): WorkerRecord {
    return this.#write({ ...w, ...patch });
  }

  /**
   * A new worker with a single-use bootstrap credential (returned once; only
   * its hash is stored). Factory workers get a lease deadline.
   */
  create(target: string, factory: FactoryId | null, persistent: boolean): { worker: WorkerRecord; credential: string } {
    const core = this.#core();
    const now = core.clock.now();
    const credential = newSecret('bwb');
    const w: WorkerRecord = {
      v: 1, id: newId<WorkerId>(now), target, factory, persistent, state: 'pending', job: null,
      credentialHash: hashSecret(credential), credentialExpiresAt: now + core.config.credentialTtlMs, agentKey: null, instance: null,
      leaseExpiresAt: factory ? now + core.config.leaseMs : null, hold: false, createdAt: now, bootstrappedAt: null, lastSeenAt: null,
      recycleReason: null, jobsRun: 0,
    };
    this.#write(w);
    if (factory) this.#armLease(w);
    return { worker: w, credential };
  }

  #armLease(w: WorkerRecord): void {
    const core = this.#core();
    core.deadlines.set(`lease:${w.id}`, w.leaseExpiresAt!, () => {
      const cur = this.live.get(w.id);
      if (cur?.state === 'pending') this.recycle(cur, 'lease expired before its agent connected');
    });
  }

  /** Extends a pending worker's lease (the factory is still booting it). */
  renewLease(w: WorkerRecord): WorkerRecord {
    const core = this.#core();
    const next = this.patch(w, { leaseExpiresAt: core.clock.now() + core.config.leaseMs });
    this.#armLease(next);
    return next;
  }

  /**
   * Checks a bootstrap credential and burns it, remembering the agent's key.
   * The write commits before the agent is welcomed, so a credential replayed
   * after a crash is still refused.
   */
  async bootstrap(id: WorkerId, credential: string, agentKey: Uint8Array): Promise<WorkerRecord> {
    const core = this.#core();
    const w = this.live.get(id);
    if (!w) throw new ProtocolError('WORKER_UNKNOWN', `worker ${id} does not exist or was destroyed`);
    if (w.credentialHash === null) throw new ProtocolError('CREDENTIAL_USED', `the bootstrap credential of worker ${id} was already used`);
    if (core.clock.now() > w.credentialExpiresAt) throw new ProtocolError('CREDENTIAL_EXPIRED', `the bootstrap credential of worker ${id} expired at ${new Date(w.credentialExpiresAt).toISOString()}`);
    if (!sameBytes(Buffer.from(hashSecret(credential)), Buffer.from(w.credentialHash))) {
      throw new ProtocolError('CREDENTIAL_INVALID', `the bootstrap credential does not match worker ${id}`);
    }
    const next = this.#move(w, w.state === 'pending' ? 'ready' : w.state, {
      credentialHash: null, agentKey: new Uint8Array(agentKey), bootstrappedAt: core.clock.now(), leaseExpiresAt: null,
    });
    core.deadlines.cancel(`lease:${id}`);
    // Wait for the write above; writing `next` again here could undo a recycle that lands meanwhile.
    await core.dbs.workers.committed;
    return next;
  }

  /** The agent key of a worker that may reconnect, or a coded refusal. */
  keyOf(id: WorkerId): Uint8Array {
    const w = this.live.get(id);
    if (!w) throw new ProtocolError('WORKER_UNKNOWN', `worker ${id} does not exist or was destroyed`);
    if (!w.agentKey) throw new ProtocolError('CREDENTIAL_INVALID', `worker ${id} has not bootstrapped; use its bootstrap credential`);
    if (w.state === 'recycling') throw new ProtocolError('WORKER_RECYCLED', `worker ${id} is being recycled: ${w.recycleReason ?? ''}`);
    return w.agentKey;
  }

  /** An authenticated agent connected: replace any older link, resume its job or offer it work. */
  connected(link: AgentLink): void {
    const core = this.#core();
    if (!this.live.has(link.worker)) {
      link.close(new ProtocolError('WORKER_UNKNOWN', `worker ${link.worker} does not exist or was destroyed`));
      return;
    }
    const old = core.agents.get(link.worker);
    if (old && old !== link) old.close(new ProtocolError('SUPERSEDED', `a newer connection for worker ${link.worker} replaced this one`));
    core.agents.set(link.worker, link);
    core.deadlines.cancel(`lost:${link.worker}`);
    // Kept in memory, written on disconnect: a reconnect storm should not cost a store write per agent.
    this.lastSeen.set(link.worker, core.clock.now());
    const w = this.live.get(link.worker)!;
    link.send({
      type: 'welcome', worker: w.id, heartbeatMs: core.config.heartbeatMs,
      job: w.job ? { id: w.job, nextBatch: core.events.nextBatch(w.job) } : null,
    });
    if (w.job) {
      const job = core.jobs.active.get(w.job);
      if (job) core.scheduler.sendAssignment(job, link);
    } else {
      core.scheduler.workerIdle(w);
    }
  }

  /** An agent's connection closed. A busy worker gets a grace period to come back. */
  disconnected(link: AgentLink): void {
    const core = this.#core();
    if (core.agents.get(link.worker) !== link) return;
    core.agents.delete(link.worker);
    this.lastSeen.delete(link.worker);
    core.scheduler.workerBusy(link.worker);
    const w = this.live.get(link.worker);
    if (!w) return;
    this.patch(w, { lastSeenAt: core.clock.now() });
    if (w.job) this.#armLost(w, 'its agent disconnected and did not reconnect');
  }

  #armLost(w: WorkerRecord, why: string): void {
    const core = this.#core();
    const graceS = Math.round(core.config.workerLostGraceMs / 1000);
    core.deadlines.set(`lost:${w.id}`, core.clock.now() + core.config.workerLostGraceMs, () => {
      const cur = this.live.get(w.id);
      if (!cur?.job || core.agents.has(w.id)) return;
      const job = cur.job;
      void core.jobs.workerLost(job, w.id, `worker ${w.id} lost: ${why} within ${graceS} s`).then(() => {
        // An ephemeral machine that went silent is not trusted with another job; a persistent
        // box keeps its registration and takes the next job when its agent is back.
        const again = this.live.get(w.id);
        if (again && again.state !== 'recycling' && !again.persistent) this.recycle(again, `worker lost during job ${job}`);
      });
    });
  }

  /** A job on this worker ended: ephemeral workers are recycled, persistent ones take the next job. */
  jobEnded(id: WorkerId, job: JobId): void {
    const core = this.#core();
    let w = this.live.get(id);
    if (!w || w.job !== job) return;
    core.deadlines.cancel(`lost:${id}`);
    w = this.patch(w, { job: null });
    if (!w.persistent) {
      this.recycle(w, `job ${job} finished`);
      return;
    }
    if (core.agents.has(id)) core.scheduler.workerIdle(w);
  }

  /**
   * Retires a worker: its agent is told to exit and its factory to destroy
   * the machine. Persistent workers need no factory and are destroyed at once.
   */
  recycle(w: WorkerRecord, reason: string): void {
    const core = this.#core();
    if (w.state === 'recycling' || w.state === 'destroyed') return;
    core.scheduler.workerBusy(w.id);
    core.scheduler.workerGone(w);
    const link = core.agents.get(w.id);
    link?.send({ type: 'recycle', reason });
    if (w.job) void core.jobs.workerLost(w.job, w.id, `worker ${w.id} recycled: ${reason}`);
    const next = this.#move(w, w.factory ? 'recycling' : 'destroyed', { recycleReason: reason, credentialHash: null });
    core.deadlines.cancel(`lease:${w.id}`);
    if (next.factory) core.factories.get(next.factory)?.send({ type: 'destroy', worker: w.id, instance: w.instance });
    // No factory will report a persistent worker destroyed: end its connection now.
    else link?.close(new ProtocolError('WORKER_RECYCLED', `worker ${w.id} was recycled: ${reason}`));
    core.scheduler.poke();
  }

  /** The factory reports the machine is gone. */
  destroyed(w: WorkerRecord): void {
    const core = this.#core();
    if (w.state === 'destroyed') return;
    if (w.state !== 'recycling') {
      this.recycle(w, 'its factory destroyed the machine');
      w = this.live.get(w.id) ?? w;
    }
    if (w.state !== 'destroyed') this.#move(w, 'destroyed');
    core.agents.get(w.id)?.close(new ProtocolError('WORKER_RECYCLED', `worker ${w.id} was destroyed`));
    core.scheduler.poke();
  }

  /** Admin hold: a held worker takes no new job. */
  setHold(w: WorkerRecord, hold: boolean): WorkerRecord {
    const core = this.#core();
    const next = this.patch(w, { hold });
    if (hold) core.scheduler.workerBusy(w.id);
    else if (!next.job && core.agents.has(w.id)) core.scheduler.workerIdle(next);
    return next;
  }
}
