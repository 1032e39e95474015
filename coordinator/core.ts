import type { KeyObject } from 'node:crypto';
import type { FactoryId, ProtocolError, ToAgent, ToFactory, WorkerId } from '../protocol/index.js';
import type { Artifacts } from './artifacts/index.js';
import type { CoordinatorConfig } from './config.js';
import type { Clock, Deadlines } from './deadlines.js';
import type { EventLog } from './event-log.js';
import type { Jobs } from './jobs.js';
import type { Scheduler } from './scheduler.js';
import type { Databases } from './store/schema.js';
import type { Workers } from './workers.js';

/** A connected, authenticated agent. */
export interface AgentLink {
  readonly worker: WorkerId;
  send(msg: ToAgent): void;
  close(err: ProtocolError): void;
}

/** A connected, authenticated factory. */
export interface FactoryLink {
  readonly factory: FactoryId;
  /** How many more workers it said it can create. */
  free: number;
  send(msg: ToFactory): void;
  close(err: ProtocolError): void;
}

/** The coordinator's identity key. */
export interface Identity {
  readonly publicKey: Uint8Array;
  readonly key: KeyObject;
}

/**
 * What every part of the coordinator shares. Built once in index.ts; the
 * parts reach each other through it rather than importing one another's state.
 */
export interface Core {
  readonly dbs: Databases;
  readonly config: CoordinatorConfig;
  readonly clock: Clock;
  readonly deadlines: Deadlines;
  readonly identity: Identity;
  readonly events: EventLog;
  readonly jobs: Jobs;
  readonly workers: Workers;
  readonly scheduler: Scheduler;
  readonly artifacts: Artifacts;
  readonly agents: Map<WorkerId, AgentLink>;
  readonly factories: Map<FactoryId, FactoryLink>;
  log(line: string): void;
}
