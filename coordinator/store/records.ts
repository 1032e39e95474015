import type { FactoryId, JobId, TaskSpec, UserId, WorkerId } from '../../protocol/index.js';

/**
 * Stored record types. Every record carries `v` (its layout version) so an
 * upgrade step can tell old from new; see schema.ts.
 */

/** A job's stage. `queued`: waiting for a worker; `waiting`: for inputs or dependencies. */
export type JobState = 'queued' | 'waiting' | 'running' | 'completed' | 'failed' | 'cancelled';
/** Terminal job states. */
export const TERMINAL_JOB_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

/** A job. */
export interface JobRecord {
  v: 1;
  id: JobId;
  name: string;
  owner: UserId;
  /** The target asked for. */
  target: string;
  /** The target it runs on, after redirects. */
  runTarget: string;
  tasks: TaskSpec[];
  /** Output rules as written (kept for the artifacts work). */
  outputRules: string[];
  tags: Record<string, string>;
  /** Whether the job came from a buildomat job file (sets BUILDOMAT_* variables). */
  buildomat: boolean;
  maxRuntimeMs: number;
  state: JobState;
  worker: WorkerId | null;
  submittedAt: number;
  assignedAt: number | null;
  endedAt: number | null;
  /** Why the job ended as it did, in words. */
  reason: string | null;
  cancelRequested: boolean;
}

/** A worker's stage. */
export type WorkerState = 'pending' | 'ready' | 'recycling' | 'destroyed';

/** A worker: one agent on one machine (ephemeral) or a registered box (persistent). */
export interface WorkerRecord {
  v: 1;
  id: WorkerId;
  target: string;
  factory: FactoryId | null;
  persistent: boolean;
  state: WorkerState;
  job: JobId | null;
  /** SHA-256 of the bootstrap credential until it is burned. */
  credentialHash: string | null;
  credentialExpiresAt: number;
  /** The agent's Ed25519 public key once it bootstrapped. */
  agentKey: Uint8Array | null;
  instance: string | null;
  /** When the factory's lease runs out if the agent has not connected. */
  leaseExpiresAt: number | null;
  hold: boolean;
  createdAt: number;
  bootstrappedAt: number | null;
  lastSeenAt: number | null;
  recycleReason: string | null;
  jobsRun: number;
}

/** A person or program using the REST API. */
export interface UserRecord {
  v: 1;
  id: UserId;
  name: string;
  privileges: string[];
  createdAt: number;
}

/** What a stored token hash points to. */
export interface TokenRecord {
  v: 1;
  kind: 'user' | 'factory';
  id: string;
  createdAt: number;
}

/** A target: a kind of machine jobs ask for. */
export interface TargetRecord {
  v: 1;
  name: string;
  description: string;
  /** Jobs for this target run on that one instead. */
  redirect: string | null;
  /** A privilege a user needs to submit jobs here (null: anyone). */
  privilege: string | null;
  createdAt: number;
}

/** A factory: something that creates and destroys workers. */
export interface FactoryRecord {
  v: 1;
  id: FactoryId;
  name: string;
  targets: string[];
  enabled: boolean;
  createdAt: number;
  lastContactAt: number | null;
}

/** One key of a job's store. */
export interface StoreValue {
  v: 1;
  value: string;
  secret: boolean;
  updatedAt: number;
}
