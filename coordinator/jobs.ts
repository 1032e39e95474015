import type { JobId, WorkerId } from '../protocol/index.js';
import { newId } from '../protocol/index.js';
import type { Core } from './core.js';
import type { JobRecord, JobState } from './store/records.js';
import { TERMINAL_JOB_STATES } from './store/records.js';

/** What a submission carries once validated: the job record's own fields. */
export type NewJob = Pick<JobRecord, 'name' | 'owner' | 'target' | 'runTarget' | 'tasks' | 'outputRules' | 'tags' | 'buildomat' | 'maxRuntimeMs'>;

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
    return this.active.get(id) ?? this.#core().dbs.jobs.get(id);
  }

  /** Creates a queued job record (not yet written; see `insert`). */
  create(n: NewJob): JobRecord {
    const now = this.#core().clock.now();
    return {
      v: 1, id: newId<JobId>(now), name: n.name, owner: n.owner, target: n.target, runTarget: n.runTarget, tasks: n.tasks,
      outputRules: n.outputRules, tags: n.tags, buildomat: n.buildomat, maxRuntimeMs: n.maxRuntimeMs, state: 'queued',
      worker: null, submittedAt: now, assignedAt: null, endedAt: null, reason: null, cancelRequested: false,
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
    });
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
    } else {
      this.active.set(job.id, next);
    }
    dbs.jobs.put(job.id, next);
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
  async finish(jobId: JobId, to: 'completed' | 'failed' | 'cancelled', reason: string): Promise<void> {
    const core = this.#core();
    const job = this.active.get(jobId);
    if (!job) return;
    const done = this.transition(job, to, { reason });
    core.deadlines.cancel(`runtime:${jobId}`);
    await core.events.appendControl(jobId, `job ${to}: ${reason}`);
    core.events.wake(jobId);
    if (done.worker) core.workers.jobEnded(done.worker, jobId);
    core.events.forget(jobId);
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
