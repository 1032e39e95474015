/**
 * The Buildbot side of `npm run bench:buildbot`: Debian's buildbot 3.7
 * (installed with apt-get when missing), a temporary master and worker on
 * 127.0.0.1, builds started with `buildbot sendchange`, and what each build
 * did read from the master's own database by `watch.py` (Debian ships no
 * web UI, so there is no REST API to ask; see watch.py).
 *
 * @example
 * const bb = await BuildbotMaster.start(dir, { script, stepName: 'burst', log });
 * const w = await bb.watch(180_000); await bb.trigger(); const seen = await w.done;
 * const record = await bb.inspect(seen.id); await bb.stop();
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { track, waitExit } from '../proc.js';
import { nowMs, sleep } from '../util.js';

/** The Debian packages the bench needs, and what apt-get may take to fetch them. */
const PACKAGES = ['buildbot', 'buildbot-worker'];
const APT_TIMEOUT_MS = 15 * 60_000;
/** Bounds on Buildbot's own commands (each one starts a Python interpreter and Twisted). */
const COMMAND_TIMEOUT_MS = 120_000;
const START_TIMEOUT_MS = 90_000;
/** Grace for a clean twistd shutdown (SIGTERM) before SIGKILL. */
const STOP_GRACE_MS = 20_000;
/** How often watch.py reads the master's database during a build. */
export const POLL_MS = 25;

/** Source files read at run time: tsc compiles only .ts, so these stay in the source tree. */
const SOURCE_DIR = fileURLToPath(new URL('../../../bench/buildbot/', import.meta.url));
const MASTER_CFG = join(SOURCE_DIR, 'master.cfg');
const WATCH_PY = join(SOURCE_DIR, 'watch.py');

const WORKER = 'bench-worker';
const BUILDER = 'burst';
/** PBChangeSource's documented default credentials, which `buildbot sendchange` also defaults to. */
const CHANGE_AUTH = { user: 'change', password: 'changepw' };

/** Runs a command with a bound and no shell; resolves with its stdout and stderr, rejects with them on failure. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    track(execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? COMMAND_TIMEOUT_MS, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')}… failed: ${err.message.split('\n')[0]}\n${(stdout + stderr).slice(-2000)}`));
      else resolve({ out: stdout, err: stderr });
    }));
  });
}

/** Whether a command is on PATH. */
async function have(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`], { timeoutMs: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes sure `buildbot` and `buildbot-worker` exist, installing Debian's
 * packages when either is missing. Returns the version line `buildbot
 * --version` prints. Throws, naming the packages, if apt-get fails.
 */
export async function ensureBuildbot(log: (l: string) => void): Promise<string> {
  const missing = [];
  for (const p of PACKAGES) if (!(await have(p))) missing.push(p);
  if (missing.length > 0) {
    log(`buildbot: ${missing.join(' and ')} missing; running apt-get update && apt-get install -y ${PACKAGES.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      await run('apt-get', ['update'], { env, timeoutMs: APT_TIMEOUT_MS });
      await run('apt-get', ['install', '-y', ...PACKAGES], { env, timeoutMs: APT_TIMEOUT_MS });
    } catch (err) {
      throw new Error(`could not install the Debian packages ${PACKAGES.join(' and ')} (apt-get install -y ${PACKAGES.join(' ')}; it needs root and Debian's apt): ${(err as Error).message}`);
    }
    for (const p of PACKAGES) if (!(await have(p))) throw new Error(`apt-get installed ${PACKAGES.join(' and ')} but \`${p}\` is still not on PATH`);
  }
  const v = (await run('buildbot', ['--version'])).out;
  return v.split('\n').find((l) => l.startsWith('Buildbot version'))?.trim() ?? v.trim();
}

/** A free TCP port on 127.0.0.1 (free when asked; Buildbot binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Waits (bounded) for a line matching `re` in a twistd.log, failing early if `child` exits. */
async function waitForLog(path: string, re: RegExp, child: ChildProcess, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (re.test(text)) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: the process exited (${child.signalCode ?? child.exitCode}); ${path} ends: ${text.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; ${path} ends: ${text.slice(-2000)}`);
    await sleep(100);
  }
}

/** What the bench saw of one build, each moment stamped on arrival (nowMs). */
export interface BuildObserved {
  /** The build's id in the database. */
  id: number;
  /** When the buildset (the accepted change) appeared. */
  triggeredAt: number;
  /** When the build's complete_at appeared. */
  completedAt: number;
  /** Every change of the step's stdio log's num_lines, as seen. */
  lines: { t: number; n: number }[];
}

/** A watch.py process following the next build. */
export interface BuildWatch {
  pid: number | undefined;
  /** Resolves once the build completed (watch.py still runs, so its CPU time can be read); rejects after the time allowed. */
  done: Promise<BuildObserved>;
  /** Ends watch.py (after `done`, or to give up after a failed trigger). */
  close(): Promise<void>;
}

/** The master's records of one build (watch.py inspect). */
export interface BuildRecord {
  build: { id: number; number: number; startedAt: number; completeAt: number | null; results: number | null };
  step: { startedAt: number; completeAt: number | null; results: number | null };
  log: { id: number; numLines: number; complete: number; chunks: number; storedBytes: number; header: number; stdout: number; trailer: number; wrong: number; firstWrong: unknown } | null;
}

/** A running master and worker in a temporary directory. */
export class BuildbotMaster {
  readonly masterDir: string;
  readonly workerDir: string;
  master: ChildProcess | null = null;
  worker: ChildProcess | null = null;

  private constructor(readonly dir: string, readonly stepName: string, readonly pbPort: number) {
    this.masterDir = join(dir, 'master');
    this.workerDir = join(dir, 'worker');
  }

  /**
   * Creates a master and a worker under `dir` (`buildbot create-master`,
   * `buildbot-worker create-worker`, default options), writes the bench's
   * master.cfg beside the generated sample, and starts both in the
   * foreground (so they are this process's children, tracked and killed by
   * pid if the run dies). Resolves once the worker is attached.
   */
  static async start(dir: string, o: { script: string; stepName: string; log: (l: string) => void }): Promise<BuildbotMaster> {
    const bb = new BuildbotMaster(dir, o.stepName, await freePort());
    // A small, fixed environment: the worker lists its whole environment in each step's log header.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };
    mkdirSync(dir, { recursive: true });
    // Both create commands exit 0 even when they failed (a Twisted traceback on stderr), so check what they made.
    const made = (path: string, what: string, res: { out: string; err: string }) => {
      if (!existsSync(path)) throw new Error(`${what} did not create ${path}: ${(res.out + res.err).slice(-2000)}`);
    };
    made(join(bb.masterDir, 'state.sqlite'), 'buildbot create-master', await run('buildbot', ['create-master', bb.masterDir], { env }));
    copyFileSync(MASTER_CFG, join(bb.masterDir, 'master.cfg'));
    const password = randomBytes(12).toString('hex');
    writeFileSync(join(bb.masterDir, 'bench.json'), JSON.stringify({
      pbPort: bb.pbPort, workerName: WORKER, workerPassword: password, changeUser: CHANGE_AUTH.user, changePassword: CHANGE_AUTH.password,
      builderName: BUILDER, stepName: o.stepName, script: o.script,
    }, null, 2));
    await run('buildbot', ['checkconfig', bb.masterDir], { env });
    made(join(bb.workerDir, 'buildbot.tac'), 'buildbot-worker create-worker', await run('buildbot-worker', ['create-worker', bb.workerDir, `127.0.0.1:${bb.pbPort}`, WORKER, password], { env }));
    const masterLog = join(bb.masterDir, 'twistd.log');
    bb.master = track(spawn('buildbot', ['start', '--nodaemon', bb.masterDir], { env, stdio: 'ignore' }));
    await waitForLog(masterLog, /BuildMaster is running/, bb.master, START_TIMEOUT_MS, 'the Buildbot master to start');
    bb.worker = track(spawn('buildbot-worker', ['start', '--nodaemon', bb.workerDir], { env, stdio: 'ignore' }));
    await waitForLog(masterLog, new RegExp(`Worker ${WORKER} attached to ${BUILDER}`), bb.worker, START_TIMEOUT_MS, 'the Buildbot worker to attach');
    o.log(`buildbot: master on 127.0.0.1:${bb.pbPort} (PB), worker attached, ${dir}`);
    return bb;
  }

  /** The master's SQLite database. */
  get db(): string {
    return join(this.masterDir, 'state.sqlite');
  }

  /**
   * Starts watch.py on the database and resolves once it knows the newest
   * build, so the next build started is the one it follows. It reads the
   * database every {@link POLL_MS} ms until that build completes or
   * `timeoutMs` passes.
   */
  async watch(timeoutMs: number): Promise<BuildWatch> {
    const watcher = track(spawn('python3', [WATCH_PY, 'watch', this.db, this.stepName, String(POLL_MS), String(timeoutMs / 1000)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let err = '';
    watcher.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    const seen: BuildObserved = { id: 0, triggeredAt: NaN, completedAt: NaN, lines: [] };
    let readyResolve!: () => void;
    const ready = new Promise<void>((r) => (readyResolve = r));
    let completeResolve!: () => void;
    const complete = new Promise<void>((r) => (completeResolve = r));
    let buf = '';
    watcher.stdout!.on('data', (b: Buffer) => {
      // Stamped on arrival: watch.py writes each line the moment it sees the change.
      const t = nowMs();
      buf += b.toString();
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const ev = JSON.parse(buf.slice(0, nl)) as { ev: string; id?: number; n?: number };
        buf = buf.slice(nl + 1);
        if (ev.ev === 'ready') readyResolve();
        else if (ev.ev === 'buildset') seen.triggeredAt = t;
        else if (ev.ev === 'build') seen.id = ev.id!;
        else if (ev.ev === 'lines') seen.lines.push({ t, n: ev.n! });
        else if (ev.ev === 'complete') {
          seen.completedAt = t;
          completeResolve();
        }
      }
    });
    const exited = new Promise<number | null>((resolve) => watcher.once('exit', (code) => resolve(code)));
    await Promise.race([ready, exited.then((c) => Promise.reject(new Error(`watch.py exited (${c}) before it was ready: ${err}`)))]);
    const done = Promise.race([
      complete.then(() => seen),
      exited.then((code) => {
        throw new Error(`build ${seen.id || '(none)'} did not complete within ${timeoutMs / 1000} s (watch.py exit ${code}${err ? `: ${err.slice(-500)}` : ''}); master log ends: ${this.#logTail()}`);
      }),
    ]);
    // A caller that gives up on `done` (a failed trigger) must not leave an unhandled rejection behind.
    done.catch(() => {});
    const close = async () => {
      watcher.stdin!.end();
      // Before completion watch.py is still polling and does not read its stdin.
      if (!Number.isFinite(seen.completedAt) && watcher.exitCode === null && watcher.signalCode === null) watcher.kill('SIGKILL');
      await waitExit(watcher, 5000);
    };
    return { pid: watcher.pid, done, close };
  }

  /**
   * Starts a build with `buildbot sendchange` (a change on branch master,
   * which the scheduler turns into a build at once). `script`, when given,
   * goes as the change property of that name and replaces the configured
   * script for that build.
   */
  async trigger(script?: string): Promise<void> {
    const args = ['sendchange', '--master', `127.0.0.1:${this.pbPort}`, '--auth', `${CHANGE_AUTH.user}:${CHANGE_AUTH.password}`, '--who', 'bench', '--branch', 'master', '--comments', 'bench'];
    if (script !== undefined) args.push('--property', `script:${script}`);
    await run('buildbot', args);
  }

  /** What the master recorded of build `id` (watch.py inspect). */
  async inspect(id: number): Promise<BuildRecord> {
    return JSON.parse((await run('python3', [WATCH_PY, 'inspect', this.db, String(id), this.stepName])).out) as BuildRecord;
  }

  /** One build, from trigger to the master's records, bounded by `timeoutMs`; for the untimed warm-up. */
  async build(timeoutMs: number, script?: string): Promise<{ seen: BuildObserved; record: BuildRecord }> {
    const w = await this.watch(timeoutMs);
    try {
      await this.trigger(script);
      const seen = await w.done;
      return { seen, record: await this.inspect(seen.id) };
    } finally {
      await w.close();
    }
  }

  #logTail(): string {
    try {
      return readFileSync(join(this.masterDir, 'twistd.log'), 'utf8').slice(-1500);
    } catch {
      return '(no twistd.log)';
    }
  }

  /** Stops the worker, then the master: SIGTERM (twistd's clean shutdown), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    for (const c of [this.worker, this.master]) {
      if (!c?.pid || c.exitCode !== null || c.signalCode !== null) continue;
      const exited = waitExit(c, STOP_GRACE_MS);
      process.kill(c.pid, 'SIGTERM');
      await exited;
    }
  }
}
