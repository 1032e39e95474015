#!/usr/bin/env node
/**
 * `buildwire-agent run`: the agent's own small entry point, for machine
 * images that carry only the agent. Everything secret comes from the
 * environment, never the command line (it would show in `ps`):
 *
 *   BUILDWIRE_URL              ws(s)://coordinator/api/v1/connect (or the http(s) base URL)
 *   BUILDWIRE_COORDINATOR_KEY  the coordinator's public key, base64
 *   BUILDWIRE_WORKER_ID        this worker's id
 *   BUILDWIRE_BOOTSTRAP        the single-use bootstrap credential (first start)
 *   BUILDWIRE_AGENT_STATE      where the agent keeps its key (default ./agent-state)
 *   BUILDWIRE_WORK_ROOT        where job directories go (default ./work)
 *   BUILDWIRE_INPUT_DIR        where a job's input files go: `auto` (default: /input when the agent can
 *                              create it, else beside the job's work directory), `shared` (always beside
 *                              it: several agents on one host), or an absolute path (must be empty)
 *   BUILDWIRE_UID, BUILDWIRE_GID  run tasks as this user (when started as root)
 */
import { isAbsolute, resolve } from 'node:path';
import { runAgent } from './index.js';

/** Turns an http(s) base URL into the connect URL; leaves ws(s) URLs alone. */
export function connectUrlOf(url: string): string {
  if (/^wss?:\/\//.test(url)) return url;
  if (/^https?:\/\//.test(url)) return `${url.replace(/^http/, 'ws').replace(/\/+$/, '')}/api/v1/connect`;
  throw new Error(`BUILDWIRE_URL ${JSON.stringify(url)} must start with ws://, wss://, http:// or https://`);
}

function need(name: string): string {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`buildwire-agent: ${name} must be set\n`);
    process.exit(64);
  }
  return v;
}

function intEnv(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`buildwire-agent: ${name} must be a non-negative integer, got ${JSON.stringify(v)}\n`);
    process.exit(64);
  }
  return n;
}

async function main(): Promise<void> {
  const [cmd] = process.argv.slice(2);
  if (cmd !== 'run') {
    process.stderr.write('usage: buildwire-agent run   (configured by BUILDWIRE_* environment variables; see docs/configuration.md)\n');
    process.exit(cmd === '--help' || cmd === '-h' ? 0 : 64);
  }
  const key = Buffer.from(need('BUILDWIRE_COORDINATOR_KEY'), 'base64');
  if (key.length !== 32) {
    process.stderr.write(`buildwire-agent: BUILDWIRE_COORDINATOR_KEY must be 32 bytes of base64, got ${key.length} bytes\n`);
    process.exit(64);
  }
  const inputDir = process.env.BUILDWIRE_INPUT_DIR || 'auto';
  if (inputDir !== 'auto' && inputDir !== 'shared' && !isAbsolute(inputDir)) {
    process.stderr.write(`buildwire-agent: BUILDWIRE_INPUT_DIR must be auto, shared or an absolute path, got ${JSON.stringify(inputDir)}\n`);
    process.exit(64);
  }
  const uid = intEnv('BUILDWIRE_UID');
  const gid = intEnv('BUILDWIRE_GID');
  const credential = process.env.BUILDWIRE_BOOTSTRAP;
  // The credential is single-use; keep it out of anything the tasks inherit.
  delete process.env.BUILDWIRE_BOOTSTRAP;
  const agent = runAgent({
    url: connectUrlOf(need('BUILDWIRE_URL')), coordinatorKey: new Uint8Array(key), worker: need('BUILDWIRE_WORKER_ID'),
    ...(credential ? { credential } : {}),
    stateDir: resolve(process.env.BUILDWIRE_AGENT_STATE ?? 'agent-state'), workRoot: resolve(process.env.BUILDWIRE_WORK_ROOT ?? 'work'), inputDir,
    ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}),
    ...(intEnv('BUILDWIRE_BACKOFF_CAP_MS') !== undefined ? { backoffCapMs: intEnv('BUILDWIRE_BACKOFF_CAP_MS')! } : {}),
  });
  let signals = 0;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (++signals > 1) process.exit(130);
      agent.stop();
    });
  }
  process.exit(await agent.done);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/agent/main.js')) {
  main().catch((err: Error) => {
    process.stderr.write(`buildwire-agent: ${err.message}\n`);
    process.exit(1);
  });
}
