/**
 * The message catalogue. Every WebSocket message is one msgpack value whose
 * `type` discriminates the union below. Handshake messages travel in the
 * clear (they set up the keys); everything after travels sealed (counter +
 * MAC, see channel.ts). See docs/protocol.md for the sequence diagrams.
 */

/** Which kind of peer is dialling in. */
export type Role = 'agent' | 'factory';

// ---- handshake (unsealed) ----

/** First message from a dialling peer. */
export interface Hello {
  type: 'hello';
  /** Highest protocol version the client speaks. */
  v: number;
  role: Role;
  /** 32 random bytes. */
  nonce: Uint8Array;
  /** The client's ephemeral X25519 public key (32 bytes). */
  ephemeral: Uint8Array;
}

/** The coordinator's answer: its nonce, its ephemeral key, and its identity signature over the transcript. */
export interface Challenge {
  type: 'challenge';
  /** The version both sides will speak. */
  v: number;
  nonce: Uint8Array;
  ephemeral: Uint8Array;
  /** Ed25519 signature by the coordinator's identity key over the transcript. */
  sig: Uint8Array;
}

/** Proof of who the client is, sent after verifying the challenge. */
export type Auth =
  | {
      type: 'auth';
      method: 'bootstrap';
      worker: string;
      /** The single-use bootstrap credential the factory passed to the machine. */
      credential: string;
      /** The agent's new Ed25519 public key, remembered for reconnects. */
      key: Uint8Array;
      /** Agent signature over the transcript. */
      sig: Uint8Array;
    }
  | { type: 'auth'; method: 'key'; worker: string; sig: Uint8Array }
  | { type: 'auth'; method: 'token'; token: string };

/** A refusal, sent in the clear during the handshake or sealed afterwards, just before closing. */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

// ---- log records ----

/** Record kinds inside a batch. The low bits are the kind; {@link REC_PARTIAL} is a flag. */
export const REC = {
  STDOUT: 0,
  STDERR: 1,
  /** A task started or exited; data is a {@link TaskEvent}. */
  TASK: 2,
  /** The job ended on the agent; data is a {@link JobEnd}. Always the last record of a job. */
  JOB: 3,
  /** Text from the machine's console (lab machines). */
  CONSOLE: 4,
  /** Text from the agent itself about the job (not from the task). */
  WORKER: 5,
  /** Text from the coordinator; never sent by agents. */
  CONTROL: 6,
} as const;
/** Set on a line piece that was not ended by a newline: a longer line continues in the next record, or output ended without one. */
export const REC_PARTIAL = 0x10;
/** Mask for the kind part of a record's `k`. */
export const REC_KIND_MASK = 0x0f;

/** What a TASK record carries. */
export type TaskEvent =
  | { event: 'start'; name: string }
  | { event: 'exit'; code: number | null; signal: string | null };

/** What a JOB record carries. */
export interface JobEnd {
  result: 'completed' | 'failed';
  reason?: string;
}

/**
 * One record: `[time ms, kind|flags, task index, data]`. A tuple keeps
 * msgpack small on the hottest path. Line data is raw bytes (never decoded),
 * so output that is not UTF-8 is stored exactly.
 */
export type LogRecord = [t: number, k: number, task: number, data: Uint8Array | TaskEvent | JobEnd | string];

// ---- sealed: coordinator -> agent ----

/** First sealed message to an agent. */
export interface Welcome {
  type: 'welcome';
  worker: string;
  /** The job this worker holds, if any, and the batch number the coordinator expects next. */
  job: { id: string; nextBatch: number } | null;
  /** How often to send `ping` when otherwise idle. */
  heartbeatMs: number;
}

/** A task of an assignment, as buildomat defines tasks. */
export interface TaskSpec {
  name: string;
  script: string;
  env: Record<string, string>;
  envClear: boolean;
  workdir?: string;
  uid?: number;
  gid?: number;
}

/** A job handed to a worker. Signed by the coordinator's identity key. */
export interface JobAssignment {
  id: string;
  name: string;
  target: string;
  worker: string;
  tasks: TaskSpec[];
  /** Longest the job may run before the coordinator cancels it. */
  maxRuntimeMs: number;
  /** The job's store at assignment time, secret values included (the job may see them; users may not). */
  store: Record<string, string>;
  /** Whether to set the BUILDOMAT_* variables too (job files written for buildomat). */
  buildomat: boolean;
  issuedAt: number;
  /** Output rules as written (`=`, `%`, `!` prefixes); files matching them are uploaded after the tasks. Absent from version 1 assignments. */
  outputRules?: string[];
  /** Largest single output file the coordinator accepts; larger ones fail the job before any byte is sent. */
  maxOutputBytes?: number;
  /** Files to place under the job's input directory before the first task runs (named inputs and dependency outputs). */
  inputs?: InputFile[];
  /** Bearer token for downloading this job's inputs over HTTP; valid while the job runs. */
  inputToken?: string;
}

/** One file to download before the tasks run. */
export interface InputFile {
  /** Path under the input directory, `/`-separated, never absolute and never containing `..`: `NAME` or `DEP/work/out/a.txt`. */
  path: string;
  /** Lower-case hex SHA-256; the agent verifies the bytes against it. */
  sha256: string;
  size: number;
  mode: number;
  /** Where to GET the bytes, relative to the coordinator's HTTP base: `/api/v1/agent/jobs/ID/inputs/SHA256`. */
  url: string;
}

/** A job for the agent: `payload` is the packed {@link JobAssignment}, `sig` the identity signature over it. */
export interface Assign {
  type: 'assign';
  payload: Uint8Array;
  sig: Uint8Array;
}

/** The coordinator has durably stored batch `batch` of `job`. */
export interface Ack {
  type: 'ack';
  job: string;
  batch: number;
}

/** Stop the job's tasks now. */
export interface Cancel {
  type: 'cancel';
  job: string;
  reason: string;
}

/** The worker is done with; the agent exits. */
export interface Recycle {
  type: 'recycle';
  reason: string;
}

/** Liveness. Either side may send `ping`; the other answers `pong` with the same `t`. */
export interface Ping {
  type: 'ping';
  t: number;
}
/** Answer to {@link Ping}. */
export interface Pong {
  type: 'pong';
  t: number;
}

// ---- sealed: agent -> coordinator ----

/** Numbered log batch. Batch numbers start at 1 per job and have no gaps. */
export interface Batch {
  type: 'batch';
  job: string;
  batch: number;
  recs: LogRecord[];
}

// ---- sealed: factory <-> coordinator ----

/** First sealed message to a factory. */
export interface FactoryWelcome {
  type: 'factory_welcome';
  factory: string;
  name: string;
  targets: string[];
  /** How long a lease lasts unless renewed. */
  leaseMs: number;
}

/** The factory's spare capacity, sent on connect and whenever it changes. */
export interface Capacity {
  type: 'capacity';
  /** How many more workers it could create now. */
  free: number;
}

/** Create a machine for this worker and start an agent on it with this credential. */
export interface Lease {
  type: 'lease';
  worker: string;
  target: string;
  credential: string;
  expiresAt: number;
}

/** The factory created a machine for a lease. */
export interface Created {
  type: 'created';
  worker: string;
  instance: string;
}

/** Keep a lease alive while a slow machine boots. */
export interface Renew {
  type: 'renew';
  worker: string;
}

/** The lease's new expiry. */
export interface Renewed {
  type: 'renewed';
  worker: string;
  expiresAt: number;
}

/** The factory could not create the machine. */
export interface LeaseFailed {
  type: 'lease_failed';
  worker: string;
  reason: string;
}

/** Destroy this worker's machine. */
export interface Destroy {
  type: 'destroy';
  worker: string;
  instance: string | null;
}

/** The factory destroyed a machine. */
export interface Destroyed {
  type: 'destroyed';
  worker: string;
}

/** On connect: what the factory has running, so the coordinator can repair drift. */
export interface Inventory {
  type: 'inventory';
  instances: { worker: string; instance: string }[];
}

// ---- sealed: uploads of output files (agent -> coordinator, version 2) ----

/**
 * Starts (or, with the same `upload` id after a reconnect, resumes) the
 * upload of one output file. `size` and `mtime` are what the agent's scan
 * saw. The coordinator answers {@link UploadReady} with the offset to send
 * from, or {@link UploadFailed}.
 */
export interface UploadBegin {
  type: 'upload_begin';
  /** Chosen by the agent (a ULID); names this upload across reconnects. */
  upload: string;
  job: string;
  /** Absolute path as the output rules see it, e.g. `/work/out/a.tar.gz`. */
  path: string;
  size: number;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
  /** Modification time at the scan, in ms. */
  mtime: number;
}

/** Bytes `[offset, offset + data.length)` of an upload. At most `maxChunkBytes`. */
export interface Chunk {
  type: 'chunk';
  upload: string;
  offset: number;
  data: Uint8Array;
}

/** All bytes sent: commit if the coordinator holds exactly `size` bytes whose SHA-256 is `sha256`. */
export interface UploadEnd {
  type: 'upload_end';
  upload: string;
  size: number;
  sha256: Uint8Array;
  /** Modification time after the read (differs from the scan's only for `%` files). */
  mtime: number;
}

/** The agent gives up on an upload (the file changed or vanished); the coordinator discards its bytes. */
export interface UploadAbort {
  type: 'upload_abort';
  upload: string;
  reason: string;
}

/** Send from `offset`: the bytes before it are durably written (0 for a new upload). */
export interface UploadReady {
  type: 'upload_ready';
  upload: string;
  offset: number;
}

/** The coordinator has written bytes up to `offset` (flow control: the agent keeps a window of chunks beyond it). */
export interface ChunkAck {
  type: 'chunk_ack';
  upload: string;
  offset: number;
}

/** The file is committed (also the answer to a repeated `upload_end` of a committed upload). */
export interface UploadDone {
  type: 'upload_done';
  upload: string;
  sha256: Uint8Array;
}

/** The coordinator refused or could not store the upload; `code` is stable (docs/errors.md). */
export interface UploadFailed {
  type: 'upload_failed';
  upload: string;
  code: 'OUTPUT_TOO_LARGE' | 'QUOTA_EXCEEDED' | 'DISK_FULL' | 'HASH_MISMATCH' | 'SIZE_MISMATCH' | 'BAD_PATH' | 'NOT_RUNNING' | 'STORE_ERROR';
  message: string;
}

/** Messages the coordinator sends to agents. */
export type ToAgent = Welcome | Assign | Ack | Cancel | Recycle | Ping | Pong | ErrorMessage | UploadReady | ChunkAck | UploadDone | UploadFailed;
/** Messages agents send to the coordinator. */
export type FromAgent = Batch | Ping | Pong | UploadBegin | Chunk | UploadEnd | UploadAbort;
/** Messages the coordinator sends to factories. */
export type ToFactory = FactoryWelcome | Lease | Renewed | Destroy | Ping | Pong | ErrorMessage;
/** Messages factories send to the coordinator. */
export type FromFactory = Capacity | Created | Renew | LeaseFailed | Destroyed | Inventory | Ping | Pong;
/** Any message on the wire. */
export type Message = Hello | Challenge | Auth | ToAgent | FromAgent | ToFactory | FromFactory;
/** The `type` strings. */
export type MessageType = Message['type'];
