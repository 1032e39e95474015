import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobAssignment, LogRecord, TaskSpec } from '../protocol/index.js';
import { REC } from '../protocol/index.js';
import { LineSplitter } from './outbox.js';

/** How the runner runs a job's tasks. */
export interface RunnerOptions {
  /** The job's fresh work directory. */
  workdir: string;
  /** The job's input directory, given to tasks as BUILDWIRE_INPUT. */
  inputDir?: string;
  /** Default user and group for tasks (when the agent runs as root). */
  uid?: number;
  gid?: number;
  maxLineBytes: number;
  /** Time between SIGTERM and SIGKILL on cancel. */
  killGraceMs: number;
  emit: (rec: LogRecord) => void;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The environment a task sees: a clean one (nothing inherited from the
 * agent) plus the job's identifiers, then the task's own variables.
 */
export function taskEnvironment(job: JobAssignment, task: TaskSpec, index: number, workdir: string, storeDir: string, inputDir?: string): Record<string, string> {
  const ids: Record<string, string> = {
    BUILDWIRE_JOB_ID: job.id, BUILDWIRE_TASK_ID: String(index), BUILDWIRE_JOB_NAME: job.name, BUILDWIRE_TARGET: job.target,
    BUILDWIRE_WORKER_ID: job.worker, BUILDWIRE_WORK: workdir, BUILDWIRE_STORE: storeDir, CI: 'true',
  };
  // Where inputs are: /input on a machine of its own, a per-job directory on a shared host.
  if (inputDir !== undefined) ids.BUILDWIRE_INPUT = inputDir;
  if (job.buildomat) Object.assign(ids, { BUILDOMAT_JOB_ID: job.id, BUILDOMAT_TASK_ID: String(index), BUILDOMAT: '1' });
  const base: Record<string, string> = task.envClear
    ? {}
    : { PATH: DEFAULT_PATH, HOME: workdir, USER: process.env.USER ?? 'build', LOGNAME: process.env.USER ?? 'build', LANG: 'C.UTF-8', TZ: 'UTC', TERM: 'dumb' };
  return { ...base, ...ids, ...task.env };
}

/**
 * Runs a job's tasks in order with bash, each in its own process group so a
 * cancel reaches every process it started. Stops at the first task that
 * fails. Emits TASK start/exit records and the lines of stdout and stderr.
 */
export class Runner {
  readonly #o: RunnerOptions;
  #child: ChildProcess | null = null;
  #cancelled: string | null = null;
  #paused = false;
  #killTimer: NodeJS.Timeout | null = null;

  constructor(opts: RunnerOptions) {
    this.#o = opts;
  }

  /** Runs every task; resolves with the job's result. */
  async run(job: JobAssignment): Promise<{ result: 'completed' | 'failed'; reason: string }> {
    const { workdir } = this.#o;
    const meta = join(workdir, '.buildwire');
    const storeDir = join(meta, 'store');
    mkdirSync(storeDir, { recursive: true, mode: 0o700 });
    for (const [k, v] of Object.entries(job.store)) writeFileSync(join(storeDir, k), v, { mode: 0o600 });
    if (this.#o.uid !== undefined) {
      for (const d of [workdir, meta, storeDir]) chownSync(d, this.#o.uid, this.#o.gid ?? this.#o.uid);
      for (const k of Object.keys(job.store)) chownSync(join(storeDir, k), this.#o.uid, this.#o.gid ?? this.#o.uid);
    }
    for (let i = 0; i < job.tasks.length; i++) {
      if (this.#cancelled) break;
      const task = job.tasks[i]!;
      const script = join(meta, `task-${i}.sh`);
      writeFileSync(script, task.script, { mode: 0o644 });
      chmodSync(script, 0o644);
      this.#o.emit([Date.now(), REC.TASK, i, { event: 'start', name: task.name }]);
      const { code, signal } = await this.#runTask(job, task, i, script, storeDir);
      this.#o.emit([Date.now(), REC.TASK, i, { event: 'exit', code, signal }]);
      if (this.#cancelled) return { result: 'failed', reason: `cancelled: ${this.#cancelled}` };
      if (code !== 0) {
        return { result: 'failed', reason: signal ? `task ${i} (${task.name}) was killed by ${signal}` : `task ${i} (${task.name}) exited with status ${code}` };
      }
    }
    if (this.#cancelled) return { result: 'failed', reason: `cancelled: ${this.#cancelled}` };
    return { result: 'completed', reason: `all ${job.tasks.length} task(s) exited 0` };
  }

  #runTask(job: JobAssignment, task: TaskSpec, i: number, script: string, storeDir: string): Promise<{ code: number | null; signal: string | null }> {
    const cwd = task.workdir ?? this.#o.workdir;
    const uid = task.uid ?? this.#o.uid;
    const gid = task.gid ?? this.#o.gid ?? uid;
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn('/bin/bash', [script], {
          cwd, env: taskEnvironment(job, task, i, this.#o.workdir, storeDir, this.#o.inputDir), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
          ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}),
        });
      } catch (err) {
        this.#o.emit([Date.now(), REC.WORKER, i, Buffer.from(`could not start task ${i}: ${(err as Error).message}`)]);
        resolve({ code: 127, signal: null });
        return;
      }
      this.#child = child;
      const out = new LineSplitter(REC.STDOUT, i, this.#o.maxLineBytes, this.#o.emit);
      const err = new LineSplitter(REC.STDERR, i, this.#o.maxLineBytes, this.#o.emit);
      let open = 2;
      let exit: { code: number | null; signal: string | null } | null = null;
      const finish = () => {
        if (open > 0 || !exit) return;
        this.#child = null;
        if (this.#killTimer) clearTimeout(this.#killTimer);
        resolve(exit);
      };
      child.stdout!.on('data', (b: Buffer) => out.write(b));
      child.stderr!.on('data', (b: Buffer) => err.write(b));
      child.stdout!.on('close', () => { out.end(); open--; finish(); });
      child.stderr!.on('close', () => { err.end(); open--; finish(); });
      if (this.#paused) this.pause();
      child.on('error', (e) => {
        this.#o.emit([Date.now(), REC.WORKER, i, Buffer.from(`task ${i}: ${e.message}`)]);
        exit ??= { code: 127, signal: null };
        finish();
      });
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        // Background processes the task left behind hold the pipes open; they belong to the job, so end them.
        try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* group already gone */ }
        finish();
      });
    });
  }

  /** Stops reading the task's pipes (the outbox is full). */
  pause(): void {
    this.#paused = true;
    this.#child?.stdout?.pause();
    this.#child?.stderr?.pause();
  }

  /** Reads the pipes again. */
  resume(): void {
    this.#paused = false;
    this.#child?.stdout?.resume();
    this.#child?.stderr?.resume();
  }

  /** Cancels: SIGTERM to the task's process group, SIGKILL after the grace period. */
  cancel(reason: string): void {
    if (this.#cancelled) return;
    this.#cancelled = reason;
    const child = this.#child;
    if (!child?.pid) return;
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
    this.#killTimer = setTimeout(() => {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, this.#o.killGraceMs);
    this.#killTimer.unref();
  }
}
