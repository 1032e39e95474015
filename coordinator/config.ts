import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import type { Limits } from '../protocol/index.js';
import { DEFAULT_LIMITS, resolveLimits } from '../protocol/index.js';
import type { ArchiveConfig } from './artifacts/archive.js';
import { ArchiveConfigError, parseArchiveConfig } from './artifacts/archive.js';

/** Everything a coordinator is started with. See docs/configuration.md. */
export interface CoordinatorConfig {
  /** Address to bind. Loopback by default; set 0.0.0.0 behind a TLS proxy. */
  host: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Where the store lives. */
  dataDir: string;
  /** The URL agents and factories dial (ws:// or wss://); defaults to the bound address. */
  publicUrl: string | null;
  limits: Limits;
  /** How often idle agents and factories ping. */
  heartbeatMs: number;
  /** A connection with no traffic for this long is closed. */
  idleTimeoutSeconds: number;
  /** How long a worker with a running job may stay disconnected before the job fails. */
  workerLostGraceMs: number;
  /** How long a factory has to get an agent connected before its lease expires (renewable). */
  leaseMs: number;
  /** How long a bootstrap credential stays valid. */
  credentialTtlMs: number;
  /** A job's maximum runtime unless it asks for less. */
  maxRuntimeMs: number;
  /** Largest REST request body. */
  maxBodyBytes: number;
  /** Longest a live-follow request waits for new events. */
  maxWaitMs: number;
  /** Which HTTP server to run: uWebSockets.js unless it cannot load, or forced. */
  server: 'uws' | 'node';
  /** Largest single output file an agent may upload. */
  maxOutputBytes: number;
  /** Cap on stored artifact bytes (blobs plus uploads in progress); 0: no cap beyond the disk. */
  maxArtifactBytes: number;
  /** Ended jobs older than this many days are deleted with their logs and files; 0 keeps them. */
  jobRetentionDays: number;
  /** S3-compatible archive for blobs, or null. */
  archive: ArchiveConfig | null;
  /** Whether the web pages may be read without signing in (private jobs stay hidden). */
  anonymousRead: boolean;
  log: (line: string) => void;
}

/** Defaults. Liveness: idle timeout 30 s + grace 20 s keeps a silent worker's job failing within 60 s. */
export const DEFAULTS: Omit<CoordinatorConfig, 'dataDir' | 'log'> = {
  host: '127.0.0.1',
  port: 7700,
  publicUrl: null,
  limits: DEFAULT_LIMITS,
  heartbeatMs: 10_000,
  idleTimeoutSeconds: 30,
  workerLostGraceMs: 20_000,
  leaseMs: 5 * 60_000,
  credentialTtlMs: 15 * 60_000,
  maxRuntimeMs: 6 * 3600_000,
  maxBodyBytes: 16 * 1024 * 1024,
  maxWaitMs: 30_000,
  server: 'uws',
  maxOutputBytes: 1024 * 1024 * 1024,
  maxArtifactBytes: 0,
  jobRetentionDays: 0,
  archive: null,
  anonymousRead: false,
};

const KEYS: Record<string, 'string' | 'int' | 'bool' | 'limits' | 'archive'> = {
  host: 'string', port: 'int', data_dir: 'string', public_url: 'string', heartbeat_ms: 'int', idle_timeout_seconds: 'int',
  worker_lost_grace_ms: 'int', lease_ms: 'int', credential_ttl_ms: 'int', max_runtime_ms: 'int', max_body_bytes: 'int',
  max_wait_ms: 'int', server: 'string', limits: 'limits', max_output_bytes: 'int', max_artifact_bytes: 'int', job_retention_days: 'int',
  archive: 'archive', anonymous_read: 'bool',
};

/** A config file problem, naming the file, key and rule. */
export class ConfigError extends Error {}

/**
 * Reads a TOML config file (keys in snake_case, see docs/configuration.md)
 * onto the defaults. Unknown keys and wrong types are errors, not ignored.
 *
 * @example
 * const cfg = loadConfig('/etc/buildwire/coordinator.toml', log);
 */
export function loadConfig(path: string, log: (l: string) => void): CoordinatorConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${path}: not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  return configFrom(raw, path, log);
}

/** Applies snake_case settings onto the defaults (used by loadConfig and tests). */
export function configFrom(raw: Record<string, unknown>, where: string, log: (l: string) => void): CoordinatorConfig {
  const cfg: CoordinatorConfig = { ...DEFAULTS, dataDir: './.buildwire', log };
  for (const [k, v] of Object.entries(raw)) {
    const kind = KEYS[k];
    if (!kind) throw new ConfigError(`${where}: unknown key "${k}" (known: ${Object.keys(KEYS).join(', ')})`);
    if (kind === 'string' && typeof v !== 'string') throw new ConfigError(`${where}: "${k}" must be a string, got ${JSON.stringify(v)}`);
    if (kind === 'bool' && typeof v !== 'boolean') throw new ConfigError(`${where}: "${k}" must be true or false, got ${JSON.stringify(v)}`);
    if (kind === 'int' && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new ConfigError(`${where}: "${k}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
  }
  const s = (k: string) => raw[k] as string | undefined;
  const n = (k: string) => raw[k] as number | undefined;
  if (s('host') !== undefined) cfg.host = s('host')!;
  if (n('port') !== undefined) {
    if (n('port')! > 65535) throw new ConfigError(`${where}: "port" must be from 0 to 65535, got ${n('port')}`);
    cfg.port = n('port')!;
  }
  if (s('data_dir') !== undefined) cfg.dataDir = s('data_dir')!;
  if (s('public_url') !== undefined) {
    if (!/^wss?:\/\//.test(s('public_url')!)) throw new ConfigError(`${where}: "public_url" must start with ws:// or wss://, got ${JSON.stringify(s('public_url'))}`);
    cfg.publicUrl = s('public_url')!;
  }
  const ints: [string, keyof CoordinatorConfig][] = [
    ['heartbeat_ms', 'heartbeatMs'], ['idle_timeout_seconds', 'idleTimeoutSeconds'], ['worker_lost_grace_ms', 'workerLostGraceMs'],
    ['lease_ms', 'leaseMs'], ['credential_ttl_ms', 'credentialTtlMs'], ['max_runtime_ms', 'maxRuntimeMs'], ['max_body_bytes', 'maxBodyBytes'], ['max_wait_ms', 'maxWaitMs'],
    ['max_output_bytes', 'maxOutputBytes'], ['max_artifact_bytes', 'maxArtifactBytes'], ['job_retention_days', 'jobRetentionDays'],
  ];
  for (const [key, field] of ints) if (n(key) !== undefined) (cfg as unknown as Record<string, number>)[field] = n(key)!;
  if (s('server') !== undefined) {
    if (s('server') !== 'uws' && s('server') !== 'node') throw new ConfigError(`${where}: "server" must be "uws" or "node", got ${JSON.stringify(s('server'))}`);
    cfg.server = s('server') as 'uws' | 'node';
  }
  if (raw.limits !== undefined) {
    if (typeof raw.limits !== 'object' || raw.limits === null) throw new ConfigError(`${where}: [limits] must be a table`);
    const map: Record<string, keyof Limits> = {
      max_frame_bytes: 'maxFrameBytes', max_batch_records: 'maxBatchRecords', max_batch_bytes: 'maxBatchBytes', max_line_bytes: 'maxLineBytes',
      handshake_timeout_ms: 'handshakeTimeoutMs', max_unacked_bytes: 'maxUnackedBytes', max_chunk_bytes: 'maxChunkBytes',
    };
    const over: Record<string, number> = {};
    for (const [k, v] of Object.entries(raw.limits as Record<string, unknown>)) {
      const f = map[k];
      if (!f) throw new ConfigError(`${where}: unknown key "limits.${k}" (known: ${Object.keys(map).join(', ')})`);
      if (typeof v !== 'number') throw new ConfigError(`${where}: "limits.${k}" must be an integer, got ${JSON.stringify(v)}`);
      over[f] = v;
    }
    try {
      cfg.limits = resolveLimits(over);
    } catch (err) {
      throw new ConfigError(`${where}: [limits]: ${(err as Error).message}`);
    }
  }
  if (raw.anonymous_read !== undefined) cfg.anonymousRead = raw.anonymous_read as boolean;
  if (raw.archive !== undefined) {
    try {
      cfg.archive = parseArchiveConfig(raw.archive, where);
    } catch (err) {
      if (err instanceof ArchiveConfigError) throw new ConfigError(err.message);
      throw err;
    }
  }
  if (cfg.maxOutputBytes < 1) throw new ConfigError(`${where}: "max_output_bytes" must be at least 1, got ${cfg.maxOutputBytes}`);
  if (cfg.heartbeatMs >= cfg.idleTimeoutSeconds * 1000) {
    throw new ConfigError(`${where}: heartbeat_ms (${cfg.heartbeatMs}) must be shorter than idle_timeout_seconds (${cfg.idleTimeoutSeconds} s)`);
  }
  return cfg;
}
