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
  /** Hidden from anonymous readers of the web pages (when `anonymous_read` is on). */
  private?: boolean;
  /** Named inputs the job waits for (absent on records written before artifacts). */
  inputs?: string[];
  /** Jobs this one waits for, by dependency name. */
  dependencies?: Record<string, DependencySpec>;
  /** `[[publish]]` entries applied when the job completes. */
  publish?: PublishSpec[];
  /** SHA-256 hex of the bearer token the job's agent downloads inputs with (set at assignment). */
  inputTokenHash?: string | null;
}

/** A dependency on a prior job, as buildomat defines it. */
export interface DependencySpec {
  job: JobId;
  /** Copy the prior job's outputs to `/input/NAME/...`. */
  copyOutputs: boolean;
  /** Run if the prior job completed (default true). */
  onCompleted: boolean;
  /** Run if the prior job failed or was cancelled (default false). */
  onFailed: boolean;
}

/** A publish directive from a job file. */
export interface PublishSpec {
  fromOutput: string;
  series: string;
  name: string;
}

/** One committed output file of a job. Key [JobId, path]. */
export interface OutputRecord {
  v: 1;
  path: string;
  size: number;
  mode: number;
  /** Modification time on the worker, ms. */
  mtime: number;
  sha256: string;
  committedAt: number;
}

/** One named input of a job. Key [JobId, name]. `sha256` is null until committed. */
export interface InputRecord {
  v: 1;
  name: string;
  size: number | null;
  sha256: string | null;
  committedAt: number | null;
}

/** A stored blob. Key: SHA-256 hex. */
export interface BlobRecord {
  v: 1;
  size: number;
  /** Outputs, inputs and published files pointing at it. */
  refs: number;
  /** A copy is in the blob directory. */
  local: boolean;
  /** A copy is in the S3 archive. */
  archived: boolean;
  createdAt: number;
}

/** An upload in progress (or just committed). Key: upload id. */
export interface UploadRecord {
  v: 1;
  id: string;
  job: JobId;
  /** `output`: from the job's agent over its WebSocket; `input`: from the owner over REST. */
  kind: 'output' | 'input';
  /** Output path (rule space) or input name. */
  path: string;
  /** Declared size. */
  size: number;
  mode: number;
  mtime: number;
  /** Bytes fsynced in the part file. */
  durable: number;
  state: 'open' | 'committed';
  /** Set once committed. */
  sha256: string | null;
  /** The declared SHA-256 (inputs declare it at the start). */
  expectSha256: string | null;
  createdAt: number;
}

/** A published file. Key [owner name, series, version, name]. */
export interface PublishedRecord {
  v: 1;
  job: JobId;
  path: string;
  sha256: string;
  size: number;
  publishedAt: number;

}

/** A signed-in web session. Key: SHA-256 hex of the session id in the cookie. */
export interface SessionRecord {
  v: 1;
  user: UserId;
  /** Random; admin forms must echo it (CSRF). */
  csrf: string;
  createdAt: number;
  expiresAt: number;
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
