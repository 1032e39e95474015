/**
 * The coordinator: store, scheduler, REST API, agent and factory endpoint,
 * web page. `startCoordinator` is its front door.
 *
 * @example
 * await using c = await startCoordinator({ ...DEFAULTS, port: 0, dataDir, log: console.log });
 * console.log(c.url, c.publicKeyBase64);
 */
import type { FactoryId, WorkerId } from '../protocol/index.js';
import { ed25519PrivateKey, generateSigningKeyPair, publicKeyOf } from '../protocol/index.js';
import { adminRoutes } from './api/admin.js';
import { artifactRoutes } from './api/artifacts.js';
import { BlobArchive } from './artifacts/archive.js';
import { Artifacts } from './artifacts/index.js';
import { jobRoutes } from './api/jobs.js';
import { pageRoutes } from './pages/index.js';
import { liveRoute } from './pages/live.js';
import { publicRoutes } from './api/public.js';
import type { CoordinatorConfig } from './config.js';
import { connectRoute } from './connect-endpoint.js';
import type { AgentLink, Core, FactoryLink, Identity } from './core.js';
import type { Clock } from './deadlines.js';
import { Deadlines, systemClock } from './deadlines.js';
import { errorResponse } from './errors.js';
import { EventLog } from './event-log.js';
import { startServer } from './http/index.js';
import type { RunningServer } from './http/types.js';
import { Jobs } from './jobs.js';
import { Router } from './router.js';
import { Scheduler } from './scheduler.js';
import { openStore } from './store/schema.js';
import type { Databases } from './store/schema.js';
import { Workers } from './workers.js';

export { DEFAULTS, loadConfig, configFrom, ConfigError } from './config.js';
export type { CoordinatorConfig } from './config.js';
export { createUser, createFactory, ensureTarget, issueToken } from './api/admin.js';

/** A running coordinator. */
export interface Coordinator extends AsyncDisposable {
  /** The HTTP base URL, e.g. `http://127.0.0.1:7700`. */
  readonly url: string;
  /** The WebSocket URL agents and factories dial. */
  readonly connectUrl: string;
  readonly port: number;
  /** The identity public key agents pin, base64. */
  readonly publicKeyBase64: string;
  /** Which HTTP server runs: `uws` or `node`. */
  readonly serverKind: 'uws' | 'node';
  readonly core: Core;
  /** Drains and stops: closes connections (1001), flushes the store. */
  close(): Promise<void>;
}

function loadIdentity(dbs: Databases): Identity & { seed: Uint8Array } {
  let seed = dbs.meta.get('identitySeed') as Uint8Array | undefined;
  if (!seed) {
    seed = generateSigningKeyPair().seed;
    dbs.meta.putSync('identitySeed', Buffer.from(seed));
  }
  seed = new Uint8Array(seed);
  return { publicKey: publicKeyOf(seed), key: ed25519PrivateKey(seed), seed };
}

/**
 * Opens the store, restores jobs, workers and deadlines, and starts serving.
 */
export async function startCoordinator(config: CoordinatorConfig, clock: Clock = systemClock): Promise<Coordinator> {
  const dbs = openStore(config.dataDir);
  const log = config.log;
  let core!: Core;
  const get = () => core;
  const deadlines = new Deadlines(clock, (key, err) => log(`deadline ${key} failed: ${(err as Error).stack ?? String(err)}`));
  const { seed, ...identity } = loadIdentity(dbs);
  const archive = config.archive ? new BlobArchive(config.archive) : null;
  core = {
    dbs, config, clock, deadlines, identity, events: new EventLog(dbs),
    jobs: new Jobs(get), workers: new Workers(get), scheduler: new Scheduler(get),
    artifacts: new Artifacts(get, config.dataDir, archive, seed),
    agents: new Map<WorkerId, AgentLink>(), factories: new Map<FactoryId, FactoryLink>(), log,
  };
  await core.artifacts.init();
  const active = core.jobs.load();
  core.workers.load();
  core.scheduler.load(active);
  // A job left running by a worker that no longer exists can never finish: fail it now.
  for (const j of active) {
    if (j.state === 'running' && (!j.worker || !core.workers.live.get(j.worker))) {
      await core.jobs.finish(j.id, 'failed', `its worker ${j.worker ?? '(none)'} no longer exists after a coordinator restart`);
    }
  }
  for (const j of active) if (j.state === 'waiting') await core.jobs.evaluateWaiting(j.id);
  core.jobs.startExpiry();

  let server: RunningServer | undefined;
  const router = new Router();
  publicRoutes(core, router, () => server?.kind ?? 'starting');
  jobRoutes(core, router);
  artifactRoutes(core, router);
  adminRoutes(core, router);
  pageRoutes(core, router);

  server = await startServer({
    host: config.host, port: config.port, maxBodyBytes: config.maxBodyBytes, prefer: config.server, log,
    ws: [connectRoute(core), liveRoute(core)],
    handler: async (req, signal) => {
      try {
        return await router.handle(req, signal);
      } catch (err) {
        return errorResponse(err, log);
      }
    },
  });
  core.scheduler.poke();
  const url = server.url;
  const connectUrl = config.publicUrl ?? `${url.replace(/^http/, 'ws')}/api/v1/connect`;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      core.jobs.stop();
      await server!.close();
      deadlines.close();
      await core.jobs.settled();
      await core.artifacts.archiveIdle();
      archive?.close();
      await dbs.env.flushed;
      await dbs.env.close();
    })());
  return {
    url, connectUrl, port: server.port, serverKind: server.kind, core,
    publicKeyBase64: Buffer.from(core.identity.publicKey).toString('base64'),
    close, [Symbol.asyncDispose]: close,
  };
}
