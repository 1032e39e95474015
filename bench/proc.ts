/**
 * Process plumbing for the benchmarks: CPU time and memory of any process
 * from /proc, a registry of the children this run started (so they are
 * killed, by pid, if the run dies), and a small IPC wrapper around
 * `fork()` for load-generator processes.
 */
import { execFileSync, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { nowMs, withTimeout } from './util.js';

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** CPU time and memory of one process at one moment. */
export interface ProcSample {
  pid: number;
  /** Wall clock, ms (see nowMs). */
  t: number;
  /** User + system CPU seconds since the process started (all threads, plus children it has waited for, e.g. an agent's bash tasks). */
  cpuS: number;
  /** Resident set, KiB (VmRSS). */
  rssKiB: number;
  /** Peak resident set, KiB (VmHWM). */
  hwmKiB: number;
}

/** Reads /proc/<pid>/stat and /proc/<pid>/status; undefined if the process is gone. */
export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is [0]; utime, stime, cutime, cstime are [11..14] (fields 14-17 of proc(5)).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])) / ticksPerSecond();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { pid, t: nowMs(), cpuS, rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * User + system CPU seconds of a process's main thread alone (the thread
 * whose id is the pid: a node process's JavaScript), NaN if it is gone. The
 * rest of the process's CPU is the libuv pool's file system calls, GC
 * helpers and native threads.
 */
export function mainThreadCpuS(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/**
 * Lowers the priority of every thread of `pid` (Linux nice values are per
 * thread: `setPriority(pid)` alone leaves a node process's GC and libuv
 * threads at full priority). Threads created later inherit the main
 * thread's. Returns the threads changed.
 */
export function niceAll(pid: number, nice = 19): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      setPriority(Number(tid), nice);
      n++;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return n;
}

/**
 * Pins every thread of `pid` to the given CPUs (`taskset -a -p -c`); threads
 * and children it starts later inherit the set. Throws when taskset fails.
 */
export function pinAll(pid: number, cpus: number[]): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus.join(','), String(pid)], { stdio: 'ignore' });
}

/**
 * Puts every thread of `pid` under SCHED_IDLE (`chrt -i -a -p 0`): it runs
 * only on CPU time nothing else wants, and any other task that wakes takes
 * its CPU at once (nice 19 still gets slices that delay others' wake-ups).
 * Threads it starts later inherit the policy. Throws when chrt fails.
 */
export function idleAll(pid: number): void {
  execFileSync('chrt', ['-i', '-a', '-p', '0', String(pid)], { stdio: 'ignore' });
}

/** What one process did during one phase. */
export interface ProcUsage {
  role: string;
  phase: string;
  pid: number;
  wallS: number;
  cpuS: number;
  /** cpuS / wallS: how many cores it kept busy on average. */
  cores: number;
  rssStartMiB: number;
  rssEndMiB: number;
  peakMiB: number;
  /** How many processes the row sums (0 for the whole-machine row). */
  procs: number;
  /** For the whole-machine row: iowait, steal and CPU pressure. */
  extra: string | null;
}

/** Whole-machine CPU counters. */
interface MachineSample {
  t: number;
  /** Ticks: busy (user, nice, system, irq, softirq, steal), idle, iowait, steal. */
  busy: number;
  idle: number;
  iowait: number;
  steal: number;
  /** µs during which some runnable task waited for a CPU (PSI), if available. */
  pressureUs: number;
}

function sampleMachine(): MachineSample | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    let pressureUs = NaN;
    try {
      pressureUs = Number(/^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? NaN);
    } catch {
      // No PSI on this kernel.
    }
    return { t: nowMs(), busy: user + nice + system + irq + softirq + steal, idle, iowait, steal, pressureUs };
  } catch {
    return undefined;
  }
}

/** The role name of the whole-machine row in a phase. */
export const MACHINE_ROLE = 'machine (all)';

function machineUsage(phaseName: string, a: MachineSample | undefined, b: MachineSample | undefined): ProcUsage | undefined {
  if (!a || !b) return undefined;
  const wallS = (b.t - a.t) / 1000;
  const hz = ticksPerSecond();
  const cpuS = (b.busy - a.busy) / hz;
  const per = (ticks: number) => ticks / hz / wallS;
  const pressure = (b.pressureUs - a.pressureUs) / 1e6 / wallS;
  return {
    role: MACHINE_ROLE, phase: phaseName, pid: 0, wallS, cpuS, cores: cpuS / wallS, rssStartMiB: NaN, rssEndMiB: NaN, peakMiB: NaN, procs: 0,
    extra: `iowait ${per(b.iowait - a.iowait).toFixed(2)} cores, steal ${per(b.steal - a.steal).toFixed(2)}, CPU pressure ${Number.isFinite(pressure) ? `${(pressure * 100).toFixed(0)}%` : 'n/a'} (time some task waited for a CPU)`,
  };
}

/** The difference between two samples of the same process. */
export function usageBetween(role: string, phase: string, a: ProcSample | undefined, b: ProcSample | undefined): ProcUsage | undefined {
  if (!a || !b) return undefined;
  const wallS = (b.t - a.t) / 1000;
  const cpuS = b.cpuS - a.cpuS;
  return {
    role, phase, pid: a.pid, wallS, cpuS, cores: wallS > 0 ? cpuS / wallS : NaN,
    rssStartMiB: a.rssKiB / 1024, rssEndMiB: b.rssKiB / 1024, peakMiB: b.hwmKiB / 1024, procs: 1, extra: null,
  };
}

/**
 * Samples several processes at once and returns a function that closes the
 * phase. Processes sharing a role (four agents) are summed into one line;
 * a last row covers the whole machine (other people's processes too).
 */
export function phase(name: string, procs: { role: string; pid: number | undefined }[]): () => ProcUsage[] {
  const m0 = sampleMachine();
  const start = procs.map((p) => (p.pid ? sampleProc(p.pid) : undefined));
  return () => {
    const m1 = sampleMachine();
    const byRole = new Map<string, ProcUsage>();
    procs.forEach((p, i) => {
      const u = p.pid ? usageBetween(p.role, name, start[i], sampleProc(p.pid)) : undefined;
      if (!u) return;
      const prev = byRole.get(p.role);
      if (!prev) {
        byRole.set(p.role, u);
        return;
      }
      const cpuS = prev.cpuS + u.cpuS;
      const wallS = Math.max(prev.wallS, u.wallS);
      byRole.set(p.role, {
        ...prev, cpuS, wallS, cores: wallS > 0 ? cpuS / wallS : NaN, rssStartMiB: prev.rssStartMiB + u.rssStartMiB,
        rssEndMiB: prev.rssEndMiB + u.rssEndMiB, peakMiB: prev.peakMiB + u.peakMiB, procs: prev.procs + 1,
      });
    });
    const machine = machineUsage(name, m0, m1);
    return machine ? [...byRole.values(), machine] : [...byRole.values()];
  };
}

const children = new Set<ChildProcess>();

/** Remembers a child so it is killed (by its pid) if this process exits first. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kills every tracked child still running (SIGKILL, one by one, by pid). */
export function killTracked(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Waits for a child to exit, killing it by pid with SIGKILL after `graceMs`. */
export function waitExit(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A message between the bench and a load-generator child: an object with an `op`. */
export type IpcMessage = { op: string } & Record<string, unknown>;

/**
 * A forked child speaking IPC messages `{ op, ... }`. `waitFor(op)`
 * resolves with the next message of that op (or rejects if the child
 * exits first); other messages go to `onMessage`.
 */
export class IpcChild {
  readonly child: ChildProcess;
  readonly #waiters = new Map<string, { resolve: (m: IpcMessage) => void; reject: (e: Error) => void }[]>();
  readonly #queued = new Map<string, IpcMessage[]>();
  #stderr = '';
  onMessage: (m: IpcMessage) => void = () => {};
  /** Every `{op:'error'}` message the child sent. */
  readonly errors: string[] = [];
  readonly #errorListeners = new Set<(message: string) => void>();

  /** Forks `dist/bench/<entry>` with the given extra node flags. */
  constructor(entry: string, execArgv: string[] = []) {
    const path = fileURLToPath(new URL(entry, import.meta.url));
    this.child = track(fork(path, [], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
    // Children never own our stdout (--json-only keeps it for the JSON): keep both streams' tails.
    for (const s of [this.child.stdout!, this.child.stderr!]) {
      s.on('data', (b: Buffer) => {
        this.#stderr = (this.#stderr + b.toString()).slice(-8000);
      });
    }
    this.child.on('message', (m: IpcMessage) => {
      if (m.op === 'error') {
        this.errors.push(String(m.message));
        for (const l of this.#errorListeners) l(String(m.message));
        return;
      }
      const ws = this.#waiters.get(m.op);
      if (ws && ws.length > 0) ws.shift()!.resolve(m);
      else if (m.op === 'progress' || m.op === 'log') this.onMessage(m);
      else this.#queued.set(m.op, [...(this.#queued.get(m.op) ?? []), m]);
    });
    this.child.on('exit', (code, signal) => {
      for (const list of this.#waiters.values()) {
        for (const w of list) w.reject(new Error(`${entry} exited (${signal ?? code}) before answering; stderr: ${this.#stderr.slice(-1500)}`));
      }
      this.#waiters.clear();
    });
  }

  /** The child's pid (for /proc sampling). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The tail of the child's stderr. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Sends one message if the IPC channel is still open. */
  send(m: IpcMessage): void {
    if (this.child.connected) this.child.send(m);
  }

  /** The next message with this op. */
  waitFor(op: string): Promise<IpcMessage> {
    const q = this.#queued.get(op);
    if (q && q.length > 0) return Promise.resolve(q.shift()!);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.reject(new Error(`child exited; stderr: ${this.#stderr.slice(-1500)}`));
    return new Promise((resolve, reject) => this.#waiters.set(op, [...(this.#waiters.get(op) ?? []), { resolve, reject }]));
  }

  /** The next message with this op, failing on the child's first error report or after `timeoutMs`. */
  async expect(op: string, timeoutMs: number, what: string): Promise<IpcMessage> {
    if (this.errors.length > 0) throw new Error(`${what}: ${this.errors[0]}`);
    let listener: ((message: string) => void) | undefined;
    const failed = new Promise<never>((_, reject) => {
      listener = (message) => reject(new Error(`${what}: ${message}`));
      this.#errorListeners.add(listener);
    });
    try {
      return await withTimeout(Promise.race([this.waitFor(op), failed]), timeoutMs, what);
    } finally {
      this.#errorListeners.delete(listener!);
    }
  }

  /** Asks the child to exit, then kills it by pid if it does not within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.send({ op: 'exit' });
    await waitExit(this.child, graceMs);
  }
}
