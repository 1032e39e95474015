import { open } from 'lmdb';
import type { Database, RootDatabase } from 'lmdb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type {
  BlobRecord, FactoryRecord, SessionRecord, InputRecord, JobRecord, OutputRecord, PublishedRecord, StoreValue, TargetRecord, TokenRecord, UploadRecord, UserRecord,
  WorkerRecord,
} from './records.js';

/**
 * The store's whole layout, in one place. Bump SCHEMA_VERSION and append
 * an upgrade step whenever a database or record layout changes; steps run
 * once, in order, when the store is opened. Never edit a step that shipped.
 */
export const SCHEMA_VERSION = 3;

/** The named databases. Keys are in comments. */
export interface Databases {
  env: RootDatabase;
  /** string → any: schemaVersion, identitySeed */
  meta: Database<unknown, string>;
  /** JobId → JobRecord */
  jobs: Database<JobRecord, string>;
  /** [owner UserId, JobId] → 1: a user's jobs, newest last */
  jobsByOwner: Database<number, [string, string]>;
  /** JobId → 1 for every job not in a terminal state (what a restart must look at) */
  activeJobs: Database<number, string>;
  /** [JobId, first event seq] → packed batch (binary, the agent's own bytes) */
  events: Database<Buffer, [string, number]>;
  /** [JobId, key] → StoreValue */
  jobStore: Database<StoreValue, [string, string]>;
  /** WorkerId → WorkerRecord */
  workers: Database<WorkerRecord, string>;
  /** WorkerId → 1 for workers not destroyed */
  liveWorkers: Database<number, string>;
  /** UserId → UserRecord */
  users: Database<UserRecord, string>;
  /** user name → UserId */
  userNames: Database<string, string>;
  /** SHA-256 hex of a token → TokenRecord */
  tokens: Database<TokenRecord, string>;
  /** target name → TargetRecord */
  targets: Database<TargetRecord, string>;
  /** FactoryId → FactoryRecord */
  factories: Database<FactoryRecord, string>;
  /** [JobId, output path] → OutputRecord */
  outputs: Database<OutputRecord, [string, string]>;
  /** [sha256 hex, JobId, output path] → 1: who produced these bytes */
  outputsByHash: Database<number, [string, string, string]>;
  /** [JobId, input name] → InputRecord */
  inputs: Database<InputRecord, [string, string]>;
  /** sha256 hex → BlobRecord */
  blobs: Database<BlobRecord, string>;
  /** upload id → UploadRecord */
  uploads: Database<UploadRecord, string>;
  /** [JobId, upload id] → 1: a job's uploads, to clean up when it ends */
  uploadsByJob: Database<number, [string, string]>;
  /** [prior JobId, dependent JobId] → 1: who waits for a job */
  dependents: Database<number, [string, string]>;
  /** [owner name, series, version, name] → PublishedRecord */
  published: Database<PublishedRecord, [string, string, string, string]>;
  /** [job name, target or "", JobId] → 1 for completed jobs: "latest" lookups read the last key */
  completedByName: Database<number, [string, string, string]>;
  /** sha256 hex → 1: blobs waiting to be copied to the archive */
  archiveQueue: Database<number, string>;
  /** SHA-256 hex of a web session id → SessionRecord */
  sessions: Database<SessionRecord, string>;
}

type Upgrade = (dbs: Databases) => void;

/** Upgrade step N brings a store from version N-1 to N. Append only. */
const UPGRADES: Upgrade[] = [
  // 0 → 1: the first layout; nothing to convert.
  () => {},
  // 1 → 2: artifacts (outputs, inputs, blobs, uploads, dependencies, publishing); new databases start empty.
  () => {},
  // 2 → 3: web sessions; the new database starts empty.
  () => {},
];

/**
 * Opens (creating if needed) the store under `dir` and runs any upgrade
 * steps. Refuses a store written by a newer buildwire.
 *
 * @example
 * const dbs = openStore('./.buildwire/store');
 */
export function openStore(dir: string): Databases {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const env = open({ path: join(dir, 'lmdb'), maxDbs: 32, mapSize: 2 ** 36, compression: false });
  const structured = { useRecords: false } as const;
  const dbs: Databases = {
    env,
    meta: env.openDB({ name: 'meta', ...structured }),
    jobs: env.openDB({ name: 'jobs', ...structured }),
    jobsByOwner: env.openDB({ name: 'jobs-by-owner', ...structured }),
    activeJobs: env.openDB({ name: 'active-jobs', ...structured }),
    events: env.openDB({ name: 'events', encoding: 'binary' }),
    jobStore: env.openDB({ name: 'job-store', ...structured }),
    workers: env.openDB({ name: 'workers', ...structured }),
    liveWorkers: env.openDB({ name: 'live-workers', ...structured }),
    users: env.openDB({ name: 'users', ...structured }),
    userNames: env.openDB({ name: 'user-names', ...structured }),
    tokens: env.openDB({ name: 'tokens', ...structured }),
    targets: env.openDB({ name: 'targets', ...structured }),
    factories: env.openDB({ name: 'factories', ...structured }),
    outputs: env.openDB({ name: 'outputs', ...structured }),
    outputsByHash: env.openDB({ name: 'outputs-by-hash', ...structured }),
    inputs: env.openDB({ name: 'inputs', ...structured }),
    blobs: env.openDB({ name: 'blobs', ...structured }),
    uploads: env.openDB({ name: 'uploads', ...structured }),
    uploadsByJob: env.openDB({ name: 'uploads-by-job', ...structured }),
    dependents: env.openDB({ name: 'dependents', ...structured }),
    published: env.openDB({ name: 'published', ...structured }),
    completedByName: env.openDB({ name: 'completed-by-name', ...structured }),
    archiveQueue: env.openDB({ name: 'archive-queue', ...structured }),
    sessions: env.openDB({ name: 'sessions', ...structured }),
  };
  const current = (dbs.meta.get('schemaVersion') as number | undefined) ?? 0;
  if (current > SCHEMA_VERSION) {
    throw new Error(`store at ${dir} has schema version ${current}, newer than this buildwire understands (${SCHEMA_VERSION})`);
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    env.transactionSync(() => {
      UPGRADES[v]!(dbs);
      dbs.meta.putSync('schemaVersion', v + 1);
    });
  }
  return dbs;
}
