/**
 * The bench's side of a coordinator child process (bench/coordinator-process.ts):
 * start it on a store and port, read its info line, sample its CPU and
 * memory, SIGKILL it and start it again on the same store and port.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sampleProc, track, waitExit } from './proc.js';
import type { ProcSample } from './proc.js';
import { startLocalFactory } from '../factory/local/index.js';
import type { LocalFactory } from '../factory/local/index.js';
import { Api, until, withTimeout } from './util.js';

const ENTRY = fileURLToPath(new URL('./coordinator-process.js', import.meta.url));

/** What the child prints once it serves. */
export interface CoordinatorInfo {
  url: string;
  port: number;
  publicKey: string;
  connectUrl: string;
  serverKind: string;
  adminToken?: string;
  factoryToken?: string;
}

/** Memory figures the child reports after a forced GC. */
export interface CoordinatorMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/**
 * A coordinator child process. The port is fixed at the first start
 * (below the ephemeral range, so a restart can bind it again) unless
 * `port` is given.
 *
 * @example
 * const c = new CoordinatorChild(dir); await c.start(); ... await c.stop();
 */
export class CoordinatorChild {
  child: ChildProcess | null = null;
  info: CoordinatorInfo | null = null;
  adminToken = '';
  factoryToken = '';
  port: number;
  /** The tail of the child's stderr (its log). */
  log = '';
  /** Log lines seen, in total. */
  logLines = 0;
  #lineWaiters: ((line: string) => boolean)[] = [];

  /** `nodeArgs`: extra node flags for the child (e.g. `--cpu-prof`). */
  constructor(readonly dataDir: string, readonly config: Record<string, unknown> = {}, port?: number, readonly nodeArgs: string[] = []) {
    // 20000-31999: below the kernel's ephemeral range (32768-60999), so no client socket can hold it.
    this.port = port ?? 20_000 + Math.floor(Math.random() * 12_000);
  }

  /** The current child's pid (it changes on a restart). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The REST client with the admin token from the first start. */
  get api(): Api {
    return new Api(this.info!.url, this.adminToken);
  }

  /** Starts the child and waits (bounded) for its info line. */
  async start(timeoutMs = 30_000): Promise<CoordinatorInfo> {
    const child = track(spawn(process.execPath, ['--expose-gc', ...this.nodeArgs, ENTRY], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BW_DATA: this.dataDir, BW_PORT: String(this.port), BW_CONFIG: JSON.stringify(this.config) },
    }));
    this.child = child;
    child.stderr!.on('data', (b: Buffer) => {
      const s = b.toString();
      this.log = (this.log + s).slice(-8000);
      this.logLines += s.split('\n').length - 1;
    });
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.#lineWaiters = this.#lineWaiters.filter((w) => !w(line));
      }
    });
    const first = new Promise<string>((resolve, reject) => {
      this.#lineWaiters.push((l) => (resolve(l), true));
      child.once('exit', (code, sig) => reject(new Error(`coordinator exited (${sig ?? code}) before serving: ${this.log.slice(-2000)}`)));
    });
    const info = JSON.parse(await withTimeout(first, timeoutMs, 'the coordinator to start')) as CoordinatorInfo;
    this.info = info;
    this.port = info.port;
    if (info.adminToken) this.adminToken = info.adminToken;
    if (info.factoryToken) this.factoryToken = info.factoryToken;
    return info;
  }

  /** CPU and memory from /proc. */
  sample(): ProcSample | undefined {
    return this.pid ? sampleProc(this.pid) : undefined;
  }

  /** Forces a GC in the child and returns its memory figures (bounded wait). */
  async memory(timeoutMs = 10_000): Promise<CoordinatorMemory | undefined> {
    const child = this.child;
    if (!child?.pid) return undefined;
    const p = new Promise<CoordinatorMemory>((resolve) => {
      this.#lineWaiters.push((l) => {
        if (!l.startsWith('{"mem"')) return false;
        resolve((JSON.parse(l) as { mem: CoordinatorMemory }).mem);
        return true;
      });
    });
    process.kill(child.pid, 'SIGUSR2');
    try {
      return await withTimeout(p, timeoutMs, 'the coordinator memory report');
    } catch {
      return undefined;
    }
  }

  /** SIGKILL, and wait for the exit. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = waitExit(child, 10_000);
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }

  /** SIGTERM (a clean close), then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = waitExit(child, graceMs);
    process.kill(child.pid, 'SIGTERM');
    await exited;
  }
}

/**
 * The local factory in this process, connected to a coordinator child (two
 * slots, work under `workRoot`); waits (bounded) until it is connected.
 */
export async function startBenchFactory(coord: CoordinatorChild, info: CoordinatorInfo, workRoot: string): Promise<LocalFactory> {
  const flog: string[] = [];
  const factory = startLocalFactory({
    url: info.connectUrl, coordinatorKey: new Uint8Array(Buffer.from(info.publicKey, 'base64')), token: coord.factoryToken, slots: 2,
    workRoot, killGraceMs: 1000, log: (l) => flog.length < 200 && flog.push(l),
  });
  if (!(await until(() => flog.some((l) => l.startsWith('connected as factory')), 20_000))) {
    await factory.close();
    throw new Error(`the local factory did not connect: ${flog.slice(-3).join(' | ')}`);
  }
  return factory;
}
