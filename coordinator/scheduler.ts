import type { JobAssignment, WorkerId } from '../protocol/index.js';
import { signAssignment } from '../protocol/index.js';
import type { AgentLink, Core } from './core.js';
import type { JobRecord, WorkerRecord } from './store/records.js';

/**
 * Matches ready jobs to idle workers, and asks factories for more workers
 * when a target has more queued jobs than idle or coming workers. Driven by
 * events (a job queued, a worker idle, a factory with capacity, the hold
 * lifted): each calls `poke()`, which runs one pass on the next microtask.
 * There is no polling loop.
 */
export class Scheduler {
  readonly #core: () => Core;
  /** Queued job ids per run target, oldest first. */
  readonly #queues = new Map<string, Set<string>>();
  /** Connected, idle, unheld workers per target. */
  readonly #idle = new Map<string, Set<WorkerId>>();
  /** Workers leased from factories whose agents have not connected yet, per target. */
  readonly #coming = new Map<string, Set<WorkerId>>();
  #scheduled = false;
  hold = false;

  constructor(core: () => Core) {
    this.#core = core;
  }

  #set<K, V>(m: Map<K, Set<V>>, k: K): Set<V> {
    let s = m.get(k);
    if (!s) m.set(k, (s = new Set()));
    return s;
  }

  /** Loads the hold flag and queued jobs at start-up. */
  load(jobs: JobRecord[]): void {
    const core = this.#core();
    this.hold = core.dbs.meta.get('hold') === true;
    for (const j of jobs.sort((a, b) => (a.id < b.id ? -1 : 1))) {
      if (j.state === 'queued') this.#set(this.#queues, j.runTarget).add(j.id);
      if (j.state === 'running') core.jobs.armRuntime(j);
    }
    for (const w of core.workers.live.values()) if (w.state === 'pending' && w.factory) this.#set(this.#coming, w.target).add(w.id);
  }

  /** Sets or lifts the global hold (no new assignments or leases while held). */
  async setHold(hold: boolean): Promise<void> {
    this.hold = hold;
    await this.#core().dbs.meta.put('hold', hold);
    if (!hold) this.poke();
  }

  /** A queued job: try to run it. */
  enqueue(job: JobRecord): void {
    this.#set(this.#queues, job.runTarget).add(job.id);
    this.poke();
  }

  /** A job left the queue some other way (cancelled). */
  dequeue(job: JobRecord): void {
    this.#queues.get(job.runTarget)?.delete(job.id);
  }

  /** A connected worker with no job. */
  workerIdle(w: WorkerRecord): void {
    this.#coming.get(w.target)?.delete(w.id);
    if (w.state !== 'ready' || w.job || w.hold) return;
    this.#set(this.#idle, w.target).add(w.id);
    this.poke();
  }

  /** A worker that cannot take a job now (busy, held, disconnected). */
  workerBusy(id: WorkerId): void {
    for (const s of this.#idle.values()) s.delete(id);
  }

  /** A worker that will never connect or take a job again. */
  workerGone(w: WorkerRecord): void {
    this.#coming.get(w.target)?.delete(w.id);
    this.workerBusy(w.id);
  }

  /** Schedules one pass. */
  poke(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      try {
        this.runOnce();
      } catch (err) {
        this.#core().log(`scheduler: pass failed: ${(err as Error).stack ?? String(err)}`);
      }
    });
  }

  /** One matching pass over targets with queued jobs. */
  runOnce(): void {
    if (this.hold) return;
    const core = this.#core();
    for (const [target, queue] of this.#queues) {
      const idle = this.#idle.get(target);
      for (const jobId of queue) {
        if (!idle || idle.size === 0) break;
        const job = core.jobs.active.get(jobId as never);
        queue.delete(jobId);
        if (!job || job.state !== 'queued') continue;
        const wid = idle.values().next().value as WorkerId;
        idle.delete(wid);
        const w = core.workers.live.get(wid);
        const link = core.agents.get(wid);
        if (!w || !link || w.job || w.hold || w.state !== 'ready') {
          queue.add(jobId);
          continue;
        }
        this.assign(job, w, link);
      }
      this.#lease(target, queue.size);
      if (queue.size === 0) this.#queues.delete(target);
    }
  }

  /** Asks factories for workers to cover queued jobs beyond those already coming. */
  #lease(target: string, queued: number): void {
    const core = this.#core();
    let need = queued - (this.#coming.get(target)?.size ?? 0);
    if (need <= 0) return;
    for (const link of core.factories.values()) {
      const f = core.dbs.factories.get(link.factory);
      if (!f?.enabled || !f.targets.includes(target)) continue;
      while (need > 0 && link.free > 0) {
        const { worker, credential } = core.workers.create(target, f.id, false);
        this.#set(this.#coming, target).add(worker.id);
        link.free--;
        need--;
        link.send({ type: 'lease', worker: worker.id, target, credential, expiresAt: worker.leaseExpiresAt! });
      }
      if (need <= 0) return;
    }
  }

  /**
   * Binds a job to a worker. The binding commits before the agent hears of
   * it, so a coordinator crash can never leave a job running unrecorded.
   */
  assign(job: JobRecord, w: WorkerRecord, link: AgentLink): void {
    const core = this.#core();
    const now = core.clock.now();
    const running = core.jobs.transition(job, 'running', { worker: w.id, assignedAt: now });
    core.workers.patch(w, { job: job.id, jobsRun: w.jobsRun + 1 });
    core.jobs.armRuntime(running);
    const redirected = job.target !== job.runTarget ? ` (target ${job.target} redirected to ${job.runTarget})` : '';
    void core.events.appendControl(job.id, `job assigned to worker ${w.id}${redirected}`, now).then(
      () => {
        if (core.agents.get(w.id) === link) this.sendAssignment(running, link);
      },
      (err) => core.log(`scheduler: could not record assignment of ${job.id}: ${String(err)}`),
    );
  }

  /** Sends (or re-sends after a reconnect) a job's signed assignment. */
  sendAssignment(job: JobRecord, link: AgentLink): void {
    const core = this.#core();
    const store: Record<string, string> = {};
    for (const { key, value } of core.dbs.jobStore.getRange({ start: [job.id, ''], end: [job.id, '\uffff'] })) store[key[1]] = value.value;
    const a: JobAssignment = {
      id: job.id, name: job.name, target: job.runTarget, worker: link.worker, tasks: job.tasks, maxRuntimeMs: job.maxRuntimeMs,
      store, buildomat: job.buildomat, issuedAt: core.clock.now(),
      outputRules: job.outputRules, maxOutputBytes: core.config.maxOutputBytes,
      inputs: core.artifacts.assignmentInputs(job), inputToken: core.artifacts.inputToken(job.id),
    };
    const { payload, sig } = signAssignment(core.identity.key, a);
    link.send({ type: 'assign', payload, sig });
    if (job.cancelRequested) link.send({ type: 'cancel', job: job.id, reason: job.reason ?? 'cancelled' });
  }

  /** Figures for the status API. */
  stats(): { queued: Record<string, number>; idle: Record<string, number>; coming: Record<string, number> } {
    const count = (m: Map<string, Set<unknown>>) => Object.fromEntries([...m].map(([k, s]) => [k, s.size]).filter(([, n]) => (n as number) > 0));
    return { queued: count(this.#queues), idle: count(this.#idle), coming: count(this.#coming) };
  }
}
