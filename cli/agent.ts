/**
 * `buildwire agent run`: the agent, in two modes.
 *
 * - Started by a factory (the default): configured by the environment, like
 *   `buildwire-agent run` (BUILDWIRE_URL, BUILDWIRE_COORDINATOR_KEY,
 *   BUILDWIRE_WORKER_ID, BUILDWIRE_BOOTSTRAP, ...).
 * - `--persistent --target T`: a machine you run yourself. The first start
 *   registers a persistent worker with the admin token (POST /api/v1/workers)
 *   and spends its bootstrap credential at once; the state directory then
 *   keeps the agent's own key (agent-state.json) and the public facts needed
 *   to reconnect (persistent.json: URL, worker id, target, the pinned
 *   coordinator key). Nothing else secret is saved, so later starts need no
 *   token.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AgentOptions } from '../agent/index.js';
import type { Command, CommandContext } from './args.js';
import { clientFor } from './api-command.js';
import { CliError, UsageError } from './errors.js';
import { logLine, onSignals, parseCoordinatorKey } from './servers.js';

/** What `--persistent` keeps beside the agent's key: public facts only. */
export interface PersistentFile {
  v: 1;
  /** The coordinator's HTTP base URL. */
  url: string;
  worker: string;
  target: string;
  /** The coordinator's public key, base64, pinned at registration. */
  coordinatorKey: string;
}

const PERSISTENT_FILE = 'persistent.json';
const DEFAULT_STATE = '.buildwire-agent';

/** Reads `<dir>/persistent.json`, or undefined if there is none. */
export function readPersistent(dir: string): PersistentFile | undefined {
  const p = join(dir, PERSISTENT_FILE);
  if (!existsSync(p)) return undefined;
  let f: PersistentFile;
  try {
    f = JSON.parse(readFileSync(p, 'utf8')) as PersistentFile;
  } catch (err) {
    throw new CliError(`cannot read ${p}: ${(err as Error).message}`);
  }
  if (!f || f.v !== 1 || typeof f.worker !== 'string' || typeof f.url !== 'string' || typeof f.coordinatorKey !== 'string') {
    throw new CliError(`${p} is not a version-1 persistent worker file; move it away to register a new worker`);
  }
  return f;
}

function writePersistent(dir: string, f: PersistentFile): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = join(dir, PERSISTENT_FILE);
  writeFileSync(`${p}.tmp`, `${JSON.stringify(f, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${p}.tmp`, p);
}

function envInt(name: string, cmd: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UsageError(`${name} ${JSON.stringify(v)} must be a non-negative whole number`, cmd);
  return Number(v);
}

function needEnv(name: string, what: string, cmd: string): string {
  const v = process.env[name];
  if (!v) throw new UsageError(`the environment variable ${name} must hold ${what} (or use --persistent --target T)`, cmd);
  return v;
}

/** The agent's connect URL for an http(s) or ws(s) URL, or a usage error naming it. */
async function connectOf(url: string, cmd: string): Promise<string> {
  const { connectUrlOf } = await import('../agent/main.js');
  try {
    return connectUrlOf(url);
  } catch {
    throw new UsageError(`coordinator URL ${JSON.stringify(url)} must start with http://, https://, ws:// or wss://`, cmd);
  }
}

/** The options of a factory-started agent, from the environment and flags. */
async function fromEnvironment(ctx: CommandContext, stateDir: string): Promise<Omit<AgentOptions, 'workRoot'>> {
  const cmd = ctx.command;
  const url = ctx.str('url') ?? needEnv('BUILDWIRE_URL', "the coordinator's URL", cmd);
  const coordinatorKey = parseCoordinatorKey(needEnv('BUILDWIRE_COORDINATOR_KEY', "the coordinator's public key", cmd), 'BUILDWIRE_COORDINATOR_KEY', cmd);
  const worker = needEnv('BUILDWIRE_WORKER_ID', "this worker's id", cmd);
  const credential = process.env.BUILDWIRE_BOOTSTRAP;
  // The credential is single-use; keep it out of anything the tasks inherit.
  delete process.env.BUILDWIRE_BOOTSTRAP;
  return { url: await connectOf(url, cmd), coordinatorKey, worker, stateDir, ...(credential ? { credential } : {}) };
}

/** The options of a persistent agent: registers on first start, resumes later. */
async function persistent(ctx: CommandContext, stateDir: string): Promise<Omit<AgentOptions, 'workRoot'>> {
  const cmd = ctx.command;
  const { readState } = await import('../agent/state.js');
  const target = ctx.str('target');
  const saved = readPersistent(stateDir);
  let state;
  try {
    state = readState(stateDir);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (saved) {
    if (target !== undefined && target !== saved.target) {
      throw new UsageError(`--target ${target} does not match worker ${saved.worker} in ${stateDir}, which serves target ${saved.target}; use another --state to register a new worker`, cmd);
    }
    if (state && state.worker === saved.worker && state.bootstrapped) {
      return { url: await connectOf(ctx.str('url') ?? saved.url, cmd), coordinatorKey: parseCoordinatorKey(saved.coordinatorKey, join(stateDir, PERSISTENT_FILE), cmd), worker: saved.worker, stateDir };
    }
    // Registered but never bootstrapped (a crash before the first connect): the credential was not kept, so register afresh.
    logLine(`worker ${saved.worker} in ${stateDir} never finished bootstrapping; registering a new worker`);
  } else if (state) {
    throw new UsageError(`${stateDir} holds the key of worker ${state.worker}, which was not registered with --persistent; use another --state`, cmd);
  }
  const t = target ?? saved?.target;
  if (t === undefined) throw new UsageError("'buildwire agent run --persistent' needs --target T on its first start", cmd);
  const api = clientFor(ctx);
  if (saved) await api.post(`/api/v1/workers/${encodeURIComponent(saved.worker)}/recycle`).catch(() => undefined);
  const res = await api.post<{ id: string; credential: string; coordinatorKey: string }>('/api/v1/workers', { target: t });
  writePersistent(stateDir, { v: 1, url: api.url, worker: res.id, target: t, coordinatorKey: res.coordinatorKey });
  if (state) {
    // The old key belongs to the abandoned worker; runAgent makes a new one.
    rmSync(join(stateDir, 'agent-state.json'), { force: true });
  }
  logLine(`registered persistent worker ${res.id} for target ${t}; its key is kept in ${stateDir}`);
  return { url: await connectOf(api.url, cmd), coordinatorKey: parseCoordinatorKey(res.coordinatorKey, 'the coordinator', cmd), worker: res.id, credential: res.credential, stateDir };
}

/** `buildwire agent run`. */
const agentRun: Command = {
  kind: 'command', api: true, args: [], exitWhenDone: true,
  summary: 'run an agent (as a factory starts it, or as a persistent worker)',
  usage: 'agent run [--persistent --target T] [--state DIR] [--work DIR]',
  description: `Runs an agent: it dials out to the coordinator, runs the jobs it is given, and
streams their output.

Without --persistent it is configured like 'buildwire-agent run', by the
environment (secrets never go on a command line):
  BUILDWIRE_URL              the coordinator's URL (or --url)
  BUILDWIRE_COORDINATOR_KEY  the coordinator's public key, base64
  BUILDWIRE_WORKER_ID        this worker's id
  BUILDWIRE_BOOTSTRAP        the single-use bootstrap credential (first start only)
  BUILDWIRE_UID, BUILDWIRE_GID  run tasks as this user (when started as root)

With --persistent --target T, the first start registers a persistent worker
for target T using an admin token (--url/--token/--data as for other commands)
and keeps the agent's own key in the state directory; later starts with the
same --state reconnect with that key and need no token.`,
  flags: {
    persistent: { kind: 'boolean', help: 'register (first start) or resume a persistent worker' },
    target: { kind: 'string', value: 'T', help: 'with --persistent: the target this machine serves' },
    state: { kind: 'string', value: 'DIR', help: `where the agent keeps its key and job state (default ./${DEFAULT_STATE})` },
    work: { kind: 'string', value: 'DIR', help: 'where job directories are made (default: beside the state directory, <state>-work)' },
  },
  epilogue: `Exit codes: the agent's: 0 after it was recycled or stopped, 2 when the coordinator
refused it for good (e.g. a spent credential); 1 on an error, 64 on bad usage,
130 after a second signal. The first SIGINT/SIGTERM stops it.`,
  async run(ctx) {
    const cmd = ctx.command;
    if (!ctx.bool('persistent') && ctx.str('target') !== undefined) throw new UsageError('--target is for --persistent workers (a factory-started agent gets its target from its worker)', cmd);
    const stateDir = resolve(ctx.str('state') ?? process.env.BUILDWIRE_AGENT_STATE ?? DEFAULT_STATE);
    // Not inside the state directory: that one is 0700, and tasks may run as another user (BUILDWIRE_UID).
    const workRoot = resolve(ctx.str('work') ?? process.env.BUILDWIRE_WORK_ROOT ?? `${stateDir}-work`);
    const base = ctx.bool('persistent') ? await persistent(ctx, stateDir) : await fromEnvironment(ctx, stateDir);
    const uid = envInt('BUILDWIRE_UID', cmd);
    const gid = envInt('BUILDWIRE_GID', cmd);
    const { runAgent } = await import('../agent/index.js');
    let agent;
    try {
      // Same meaning as buildwire-agent's BUILDWIRE_INPUT_DIR (docs/configuration.md): auto, shared or an absolute path.
      const inputDir = process.env.BUILDWIRE_INPUT_DIR;
      if (inputDir !== undefined && inputDir !== '' && inputDir !== 'auto' && inputDir !== 'shared' && !inputDir.startsWith('/')) {
        throw new UsageError(`BUILDWIRE_INPUT_DIR must be auto, shared or an absolute path, got ${JSON.stringify(inputDir)}`, cmd);
      }
      agent = runAgent({
        ...base, workRoot, log: (l) => logLine(`agent: ${l}`), ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}),
        ...(inputDir ? { inputDir } : {}),
      });
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    onSignals(() => agent.stop());
    return agent.done;
  },
};

/** The `agent` command group. */
export const agentGroup = {
  kind: 'group' as const,
  summary: 'run an agent',
  children: { run: agentRun },
};
