import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What an agent keeps on disk: its identity (so it can reconnect after a
 * crash without a bearer secret) and the job it started (so a restarted
 * agent reports that job failed instead of running its tasks again).
 */
export interface AgentState {
  v: 1;
  worker: string;
  /** The agent's Ed25519 seed, base64. */
  seed: string;
  publicKey: string;
  /** Whether the coordinator accepted our bootstrap (then the credential is burned). */
  bootstrapped: boolean;
  /** A job whose tasks this agent (or a previous run of it) started. */
  startedJob: string | null;
}

/** Reads the state file, or undefined if there is none. */
export function readState(dir: string): AgentState | undefined {
  const p = join(dir, 'agent-state.json');
  if (!existsSync(p)) return undefined;
  const s = JSON.parse(readFileSync(p, 'utf8')) as AgentState;
  if (s.v !== 1 || typeof s.worker !== 'string' || typeof s.seed !== 'string') throw new Error(`agent state file ${p} is not a version-1 state file`);
  return s;
}

/** Writes the state file atomically (write, fsync by rename), mode 0600. */
export function writeState(dir: string, s: AgentState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = join(dir, 'agent-state.json');
  writeFileSync(`${p}.tmp`, JSON.stringify(s), { mode: 0o600, flush: true } as never);
  renameSync(`${p}.tmp`, p);
}
