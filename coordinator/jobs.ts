import type { JobId, WorkerId } from '../protocol/index.js';
import { compileOutputRules, newId, parseOutputRule } from '../protocol/index.js';
import { PublishConflict, PublishMissing } from './artifacts/index.js';
import type { Core } from './core.js';
import type { JobRecord, JobState } from './store/records.js';
import { TERMINAL_JOB_STATES } from './store/records.js';

/** What a submission carries once validated: the job record's own fields. */
export type NewJob = Pick<JobRecord, 'name' | 'owner' | 'target' | 'runTarget' | 'tasks' | 'outputRules' | 'tags' | 'buildomat' | 'maxRuntimeMs'>
  & Partial<Pick<JobRecord, 'inputs' | 'dependencies' | 'publish' | 'private'>>;

/** How often the expiry pass runs when `job_retention_days` is set. */
const EXPIRY_PERIOD_MS = 3600_000;

/** Allowed moves between job states; anything else is a bug. */
const MOVES: Record<JobState, readonly JobState[]> = {
  waiting: ['queued', 'failed', 'cancelled'],
  queued: ['running', 'failed', 'cancelled'],
  running: ['completed', 'failed', 'cancelled'],
  completed: [],
  failed: [],
  cancelled: [],
};

/** Whether a state is final. */
export function isTerminal(s: JobState): boolean {
  return TERMINAL_JOB_STATES.includes(s);
}

/**
 * Jobs: the active ones live in memory (mirroring the store) so the
 * scheduler never scans; finished ones are read from the store on demand.
 * Every state change goes through `transition`.
 */
export class Jobs {
  readonly #core: () => Core;
  readonly active = new Map<JobId, JobRecord>();
  #expiryTimer: NodeJS.Timeout | null = null;
  /** Set while the coordinator shuts down: late agent messages must not touch a closing store. */
  #stopped = false;
  /**
   * Jobs just moved to a final state whose record has not committed yet: a
   * store read would still return the old state (lmdb-js shows a write only
   * once committed), and a live follower deciding whether to wait must see the
   * new one.
   */
  readonly #ending = new Map<JobId, JobRecord>();
  /** Endings in progress, so shutdown can wait for them before the store closes. */
  readonly #finishing = new Map<JobId, Promise<void>>();

  constructor(core: () => Core) {
    this.#core = core;
  }

  /** Loads active jobs at start-up (one pass over the small active index). */
  load(): JobRecord[] {
    const { dbs } = this.#core();
    for (const { key } of dbs.activeJobs.getRange({})) {
      const j = dbs.jobs.get(key);
      if (j && !isTerminal(j.state)) this.active.set(j.id, j);
    }
    return [...this.active.values()];
  }

  /** A job by id, active or not. */
  get(id: JobId): JobRecord | undefined {
    return this.active.get(id) ?? this.#ending.get(id) ?? this.#core().dbs.jobs.get(id);
  }

  /** Creates a queued job record (not yet written; see `insert`). */
  create(n: NewJob): JobRecord {
    const now = this.#core().clock.now();
    return {
      v: 1, id: newId<JobId>(now), name: n.name, owner: n.owner, target: n.target, runTarget: n.runTarget, tasks: n.tasks,
      outputRules: n.outputRules, tags: n.tags, buildomat: n.buildomat, maxRuntimeMs: n.maxRuntimeMs,
      // A job with inputs to upload or jobs to wait for starts waiting; `evaluateWaiting` queues it.
      state: (n.inputs?.length ?? 0) > 0 || Object.keys(n.dependencies ?? {}).length > 0 ? 'waiting' : 'queued',
      worker: null, submittedAt: now, assignedAt: null, endedAt: null, reason: null, cancelRequested: false,
      ...(n.inputs?.length ? { inputs: n.inputs } : {}),
      ...(n.dependencies && Object.keys(n.dependencies).length > 0 ? { dependencies: n.dependencies } : {}),
      ...(n.publish?.length ? { publish: n.publish } : {}),
      ...(n.private ? { private: true } : {}),
    };
  }

  /** Writes a new job and its indexes; resolves once they are committed (only then is a submission accepted). */
  async insert(job: JobRecord): Promise<void> {
    const { dbs } = this.#core();
    this.active.set(job.id, job);
    await dbs.env.transaction(() => {
      dbs.jobs.put(job.id, job);
      dbs.jobsByOwner.put([job.owner, job.id], 1);
      dbs.activeJobs.put(job.id, 1);
      for (const name of job.inputs ?? []) dbs.inputs.put([job.id, name], { v: 1, name, size: null, sha256: null, committedAt: null });
      for (const dep of Object.values(job.dependencies ?? {})) dbs.dependents.put([dep.job, job.id], 1);
    });
  }

  /**
   * Moves a waiting job on once it can: every input committed and every
   * dependency ended. A dependency that ended the wrong way (buildomat's
   * on_completed / on_failed) fails the job, naming it.
   */
  async evaluateWaiting(jobId: JobId): Promise<void> {
    const core = this.#core();
    const job = this.active.get(jobId);
    if (!job || job.state !== 'waiting' || this.#stopped) return;
    for (const [name, dep] of Object.entries(job.dependencies ?? {})) {
      const prior = this.get(dep.job);
      if (!prior) {
        await this.finish(jobId, 'failed', `dependency ${name} (job ${dep.job}) no longer exists`);
        return;
      }
      if (!isTerminal(prior.state)) return;
      if (prior.state === 'completed' && !dep.onCompleted) {
        await this.finish(jobId, 'failed', `dependency ${name} (job ${dep.job}) completed and on_completed is false`);
        return;
      }
      if (prior.state !== 'completed' && !dep.onFailed) {
        await this.finish(jobId, 'failed', `dependency ${name} (job ${dep.job}) ${prior.state === 'cancelled' ? 'was cancelled' : 'failed'} and on_failed is false`);
        return;
      }
    }
    for (const name of job.inputs ?? []) if (!core.dbs.inputs.get([jobId, name])?.sha256) return;
    const queued = this.transition(job, 'queued');
    await core.events.appendControl(jobId, 'inputs and dependencies are ready; job queued');
    core.scheduler.enqueue(queued);
  }

  /** Re-checks the jobs waiting for `prior`, which just ended. */
  async #wakeDependents(prior: JobId): Promise<void> {
    const { dbs } = this.#core();
    for (const { key } of [...dbs.dependents.getRange({ start: [prior, ''], end: [prior, '\uffff'] })]) {
      await this.evaluateWaiting(key[1] as JobId);
    }
  }

  /**
   * What a job that its agent reports completed still needs from the
   * coordinator's side: every `=` output rule matched by a committed output,
   * and every `[[publish]]` entry naming an output. Returns the problems.
   */
  async #completionProblems(job: JobRecord): Promise<string[]> {
    const core = this.#core();
    const problems: string[] = [];
    const outputs = core.artifacts.outputsOf(job.id);
    try {
      const matcher = compileOutputRules(job.outputRules.map(parseOutputRule));
      for (const r of matcher.unsatisfied(outputs.map((o) => o.path))) problems.push(`output rule ${JSON.stringify(r.rule)} matched no file`);
    } catch (err) {
      problems.push(`output rules: ${(err as Error).message}`);
    }
    if (job.publish?.length) {
      const owner = core.dbs.users.get(job.owner)?.name ?? job.owner;
      const version = job.tags.commit ?? job.id;
      for (const p of job.publish) {
        try {
          await core.artifacts.publish(job, owner, p.fromOutput, p.series, version, p.name);
          await core.events.appendControl(job.id, `published ${p.fromOutput} as /public/file/${owner}/${p.series}/${version}/${p.name}`);
        } catch (err) {
          if (err instanceof PublishMissing || err instanceof PublishConflict) problems.push(`publish: ${err.message}`);
          else throw err;
        }
      }
    }
    return problems;
  }

  /**
   * The one place a job changes state. Throws TypeError on a move the
   * lifecycle forbids (a bug in our code, never a client's fault).
   */
  transition(job: JobRecord, to: JobState, patch: Partial<Pick<JobRecord, 'worker' | 'reason' | 'assignedAt'>> = {}): JobRecord {
    if (!MOVES[job.state].includes(to)) throw new TypeError(`job ${job.id}: ${job.state} → ${to} is not a lifecycle move`);
    const { dbs, clock, events } = this.#core();
    const next: JobRecord = { ...job, ...patch, state: to };
    if (isTerminal(to)) {
      next.endedAt = clock.now();
      this.active.delete(job.id);
      dbs.activeJobs.remove(job.id);
      this.#ending.set(job.id, next);
    } else {
      this.active.set(job.id, next);
    }
    const written = dbs.jobs.put(job.id, next);
    if (isTerminal(to)) {
      void written.finally(() => {
        if (this.#ending.get(job.id) === next) this.#ending.delete(job.id);
        events.wake(job.id);
      });
    }
    events.wake(job.id);
    return next;
  }

  /** Writes a change that is not a state move (cancel requested, etc.). */
  update(job: JobRecord, patch: Partial<JobRecord>): JobRecord {
    const next = { ...job, ...patch };
    if (!isTerminal(next.state)) this.active.set(job.id, next);
    this.#core().dbs.jobs.put(job.id, next);
    return next;
  }

  /**
   * Ends a job: writes the final state and a control line saying why, and
   * frees its worker (recycled if ephemeral, idle again if persistent).
   */
  finish(jobId: JobId, to: 'completed' | 'failed' | 'cancelled', reason: string): Promise<void> {
    // One ending per job: a second report (agent end record and worker loss at once) waits for the first.
    const running = this.#finishing.get(jobId);
    if (running) return running;
    const p = this.#finish(jobId, to, reason).finally(() => this.#finishing.delete(jobId));
    this.#finishing.set(jobId, p);
    return p;
  }

  async #finish(jobId: JobId, to: 'completed' | 'failed' | 'cancelled', reason: string): Promise<void> {
    const core = this.#core();
    let job = this.active.get(jobId);
    if (!job || this.#stopped) return;
    if (to === 'completed') {
      const problems = await this.#completionProblems(job);
      for (const p of problems) await core.events.appendControl(jobId, p);
      if (problems.length > 0) {
        to = 'failed';
        reason = problems[0]!;
      }
    }
    // The closing line is stored before the state turns final, so a reader who sees a final
    // state (the events API's `done`, the live log) has every event of the job already.
    await core.events.appendControl(jobId, `job ${to}: ${reason}`);
    job = this.active.get(jobId);
    if (!job) return;
    const done = this.transition(job, to, { reason });
    if (to === 'completed') {
      void core.dbs.env.transaction(() => {
        core.dbs.completedByName.put([done.name, done.runTarget, done.id], 1);
        core.dbs.completedByName.put([done.name, '', done.id], 1);
      });
    }
    core.deadlines.cancel(`runtime:${jobId}`);
    core.events.wake(jobId);
    if (done.worker) core.workers.jobEnded(done.worker, jobId);
    core.events.forget(jobId);
    if (this.#stopped) return;
    await core.artifacts.uploads.dropJob(jobId).catch((err) => core.log(`job ${jobId}: could not drop its uploads: ${String(err)}`));
    await this.#wakeDependents(jobId);
  }

  /**
   * Deletes an ended job: its record, log, store, outputs and inputs, and
   * the blobs nothing else references. Published files keep their bytes.
   */
  async delete(job: JobRecord): Promise<{ freedBlobs: number }> {
    if (!isTerminal(job.state)) throw new TypeError(`job ${job.id} is ${job.state}; only ended jobs are deleted`);
    const core = this.#core();
    const { dbs } = core;
    const freed: string[] = [];
    await core.artifacts.uploads.dropJob(job.id);
    await dbs.env.transaction(() => {
      core.artifacts.dropJobFilesInTxn(job, freed);
      for (const { key } of dbs.events.getRange({ start: [job.id, 0], end: [job.id, Number.MAX_SAFE_INTEGER] })) dbs.events.remove(key);
      for (const { key } of dbs.jobStore.getRange({ start: [job.id, ''], end: [job.id, '\uffff'] })) dbs.jobStore.remove(key);
      for (const dep of Object.values(job.dependencies ?? {})) dbs.dependents.remove([dep.job, job.id]);
      dbs.completedByName.remove([job.name, job.runTarget, job.id]);
      dbs.completedByName.remove([job.name, '', job.id]);
      dbs.jobsByOwner.remove([job.owner, job.id]);
      dbs.jobs.remove(job.id);
    });
    core.events.forget(job.id);
    this.#ending.delete(job.id);
    return { freedBlobs: await core.artifacts.blobs.collect(freed) };
  }

  /**
   * One expiry pass: deletes jobs that ended more than `job_retention_days`
   * ago. Job ids sort by submission time, so the pass reads only the old end
   * of the table.
   */
  async expireOnce(): Promise<number> {
    const core = this.#core();
    const days = core.config.jobRetentionDays;
    if (days <= 0) return 0;
    const cutoff = core.clock.now() - days * 86_400_000;
    const end = newId<JobId>(Math.max(0, cutoff));
    let n = 0;
    for (const { value } of [...core.dbs.jobs.getRange({ end, limit: 10_000 })]) {
      if (isTerminal(value.state) && value.endedAt !== null && value.endedAt < cutoff) {
        await this.delete(value);
        n++;
      }
    }
    return n;
  }

  /** Starts the hourly expiry loop (a no-op when retention is unlimited). */
  startExpiry(): void {
    const core = this.#core();
    if (core.config.jobRetentionDays <= 0 || this.#expiryTimer) return;
    const pass = () => {
      this.expireOnce().then(
        (n) => n > 0 && core.log(`expiry: deleted ${n} job(s) older than ${core.config.jobRetentionDays} day(s)`),
        (err) => core.log(`expiry: pass failed (next in an hour): ${(err as Error).stack ?? String(err)}`),
      );
    };
    this.#expiryTimer = setInterval(pass, EXPIRY_PERIOD_MS);
    this.#expiryTimer.unref();
    pass();
  }

  /** Stops the expiry loop and, for shutdown, any further state change. */
  stop(): void {
    this.#stopped = true;
    this.stopExpiry();
  }

  /** Resolves when the job endings already in progress have finished (shutdown, before the store closes). */
  async settled(): Promise<void> {
    while (this.#finishing.size > 0) await Promise.allSettled([...this.#finishing.values()]);
  }

  /** Stops the expiry loop. */
  stopExpiry(): void {
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    this.#expiryTimer = null;
  }

  /** Fails or cancels a running job whose worker is gone. */
  workerLost(jobId: JobId, worker: WorkerId, why: string): Promise<void> {
    const job = this.active.get(jobId);
    if (!job || job.worker !== worker) return Promise.resolve();
    return this.finish(jobId, job.cancelRequested ? 'cancelled' : 'failed', why);
  }

  /**
   * Cancels a job. Queued or waiting: at once. Running: asks the agent to
   * kill the task's process group; the agent's final record ends the job.
   */
  async cancel(jobId: JobId, why: string): Promise<JobRecord> {
    const core = this.#core();
    let job = this.active.get(jobId);
    if (!job) return this.get(jobId)!;
    if (job.state === 'queued' || job.state === 'waiting') {
      core.scheduler.dequeue(job);
      await this.finish(jobId, 'cancelled', why);
      return this.get(jobId)!;
    }
    if (job.cancelRequested) return job;
    job = this.update(job, { cancelRequested: true, reason: why });
    await core.events.appendControl(jobId, `cancel requested: ${why}`);
    const link = job.worker ? core.agents.get(job.worker) : undefined;
    link?.send({ type: 'cancel', job: jobId, reason: why });
    return job;
  }

  /** Arms the maximum-runtime deadline of a running job. */
  armRuntime(job: JobRecord): void {
    const core = this.#core();
    if (job.assignedAt === null) return;
    core.deadlines.set(`runtime:${job.id}`, job.assignedAt + job.maxRuntimeMs, () => {
      void this.cancel(job.id, `job exceeded its maximum runtime of ${Math.round(job.maxRuntimeMs / 1000)} s`);
    });
  }
}
