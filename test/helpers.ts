/**
 * Shared test fixtures: a real coordinator on 127.0.0.1:0 with a temporary
 * store (in this process, or as a child process that can be killed with
 * SIGKILL), a real local factory, and small REST helpers. Tests await
 * events (job states, log lines) with bounded polling, never fixed sleeps.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Coordinator, CoordinatorConfig } from '../coordinator/index.js';
import { DEFAULTS, createFactory, createUser, ensureTarget, startCoordinator } from '../coordinator/index.js';
import { startLocalFactory } from '../factory/local/index.js';
import type { LocalFactory } from '../factory/local/index.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DIST = join(ROOT, 'dist');

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = 'bw-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A minimal REST client bound to a coordinator and a token. */
export interface Api {
  url: string;
  token: string;
  call(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any; headers: Headers }>;
}

export function api(url: string, token: string): Api {
  return {
    url, token,
    async call(method, path, body, tok = token) {
      const headers: Record<string, string> = {};
      if (tok) headers.authorization = `Bearer ${tok}`;
      let payload: string | undefined;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = typeof body === 'string' ? body : JSON.stringify(body);
      }
      const r = await fetch(url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
      const text = await r.text();
      let parsed: unknown = text;
      try { parsed = JSON.parse(text); } catch { /* not JSON */ }
      return { status: r.status, body: parsed, headers: r.headers };
    },
  };
}

/** Polls `check` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function until<T>(what: string, check: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A coordinator, an admin, the `local` target and (optionally) a local factory. */
export interface Rig extends AsyncDisposable {
  c: Coordinator;
  admin: Api;
  factory: LocalFactory | null;
  factoryToken: string;
  dir: string;
  close(): Promise<void>;
}

export async function startRig(opts: { slots?: number; config?: Partial<CoordinatorConfig>; factory?: boolean; logs?: string[] } = {}): Promise<Rig> {
  const dir = tempDir('bw-rig-');
  const logs = opts.logs ?? [];
  const c = await startCoordinator({ ...DEFAULTS, port: 0, dataDir: join(dir.path, 'store'), log: (l) => logs.push(l), ...opts.config });
  const { token } = await createUser(c.core, 'admin', ['admin']);
  await ensureTarget(c.core, 'local', 'test host');
  const f = await createFactory(c.core, 'local', ['local']);
  const factory = opts.factory === false ? null : startLocalFactory({
    url: c.connectUrl, coordinatorKey: c.core.identity.publicKey, token: f.token, slots: opts.slots ?? 2,
    workRoot: dir.path, log: (l) => logs.push(`factory: ${l}`), killGraceMs: 1000,
  });
  const close = async () => {
    await factory?.close();
    await c.close();
    dir.remove();
  };
  return { c, admin: api(c.url, token), factory, factoryToken: f.token, dir: dir.path, close, [Symbol.asyncDispose]: close };
}

/** Submits a one-task job and returns its id. */
export async function submit(a: Api, script: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await a.call('POST', '/api/v1/jobs', { name: 'test', target: 'local', tasks: [{ name: 'main', script }], ...extra });
  if (r.status !== 201) throw new Error(`submit failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id as string;
}

/** Waits for a job to reach a terminal state and returns it. */
export async function waitJob(a: Api, id: string, timeoutMs = 60_000): Promise<any> {
  return until(`job ${id} to end`, async () => {
    const r = await a.call('GET', `/api/v1/jobs/${id}`);
    return ['completed', 'failed', 'cancelled'].includes(r.body.state) ? r.body : undefined;
  }, timeoutMs, 100);
}

/** Every event of a job, paged. */
export async function allEvents(a: Api, id: string): Promise<any[]> {
  const out: any[] = [];
  let after = 0;
  for (let page = 0; page < 10_000; page++) {
    const r = await a.call('GET', `/api/v1/jobs/${id}/events?after=${after}&limit=50000`);
    if (r.status !== 200) throw new Error(`events: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body.events);
    if (r.body.events.length === 0) return out;
    after = r.body.next;
  }
  return out;
}

/** The exact stdout bytes of a job, rebuilt from its events. */
export function stdoutBytes(events: any[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of events) {
    if (e.stream !== 'stdout') continue;
    parts.push(e.base64 !== undefined ? Buffer.from(e.base64, 'base64') : Buffer.from(e.text, 'utf8'));
    if (!e.partial) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** A coordinator in a child process, so a test can SIGKILL it and start it again on the same store and port. */
export class CoordinatorProcess {
  child: ChildProcess | null = null;
  url = '';
  port = 0;
  publicKey = '';
  readonly dataDir: string;
  readonly config: Record<string, unknown>;

  constructor(dataDir: string, config: Record<string, unknown> = {}) {
    this.dataDir = dataDir;
    this.config = config;
  }

  async start(): Promise<{ url: string; adminToken?: string; factoryToken?: string }> {
    // A fixed port below the ephemeral range: with port 0 the kernel may hand the dead
    // coordinator's port to a reconnecting client's socket, and the restart could not bind.
    if (this.port === 0) this.port = 20_000 + Math.floor(Math.random() * 10_000);
    const child = spawn(process.execPath, [join(DIST, 'test', 'fixtures', 'coordinator-process.js')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BW_DATA: this.dataDir, BW_PORT: String(this.port), BW_CONFIG: JSON.stringify(this.config) },
    });
    this.child = child;
    let err = '';
    child.stderr!.on('data', (b) => (err = (err + b.toString()).slice(-4000)));
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (b) => {
        buf += b.toString();
        const nl = buf.indexOf('\n');
        if (nl !== -1) resolve(buf.slice(0, nl));
      });
      child.on('exit', (code) => reject(new Error(`coordinator process exited with ${code}: ${err}`)));
    });
    const info = JSON.parse(line) as { url: string; port: number; publicKey: string; adminToken?: string; factoryToken?: string };
    this.url = info.url;
    this.port = info.port;
    this.publicKey = info.publicKey;
    return info;
  }

  kill9(): Promise<void> {
    const child = this.child!;
    return new Promise((resolve) => {
      child.on('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const child = this.child;
    await new Promise<void>((resolve) => {
      child.on('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}
