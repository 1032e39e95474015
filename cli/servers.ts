/**
 * The long-running commands: `buildwire coordinator` and `buildwire factory
 * local` (`buildwire agent run` is in `agent.ts`). Their modules are imported
 * only when the command runs, so that `buildwire job list` does not load
 * LMDB or uWebSockets.js.
 *
 * Shutdown is graceful, then forceful: the first SIGINT/SIGTERM drains and
 * closes; a second exits at once with 130.
 */
import { resolve } from 'node:path';
import type { Command } from './args.js';
import { parsePositiveInt } from './args.js';
import { CliError, UsageError } from './errors.js';
import { out } from './format.js';

/** Exit code after a second signal forced the process down. */
export const EXIT_FORCED = 130;

/**
 * Calls `graceful` on the first SIGINT/SIGTERM and exits with 130 on the second.
 *
 * @example
 * onSignals(() => agent.stop());
 */
export function onSignals(graceful: (signal: string) => void): void {
  let count = 0;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (++count > 1) {
        process.stderr.write(`buildwire: second ${sig}: exiting now\n`);
        process.exit(EXIT_FORCED);
      }
      process.stderr.write(`buildwire: ${sig}: shutting down (send it again to exit at once)\n`);
      graceful(sig);
    });
  }
}

/** A log line on stderr with its time. */
export function logLine(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/**
 * Decodes a base64 ed25519 public key (32 bytes), or a usage error naming where it came from.
 *
 * @example
 * parseCoordinatorKey(process.env.BUILDWIRE_COORDINATOR_KEY!, 'BUILDWIRE_COORDINATOR_KEY', 'agent run')
 */
export function parseCoordinatorKey(raw: string, source: string, command: string): Uint8Array {
  const key = /^[A-Za-z0-9+/]+=*$/.test(raw.trim()) ? Buffer.from(raw.trim(), 'base64') : Buffer.alloc(0);
  if (key.length !== 32) throw new UsageError(`${source} must be the coordinator's public key: 32 bytes in base64, got ${key.length} bytes from ${JSON.stringify(raw.slice(0, 60))}`, command);
  return new Uint8Array(key);
}

const coordinator: Command = {
  kind: 'command', api: false, args: [], exitWhenDone: true,
  summary: 'run a coordinator from a config file',
  usage: 'coordinator --config FILE',
  description: `Runs a coordinator (HTTP API, web page, agent and factory endpoint) configured by
a TOML file (keys in snake_case; see docs/configuration.md), e.g.:
  port = 7700
  data_dir = "/var/lib/buildwire"
  public_url = "wss://ci.example.com/api/v1/connect"
Prints its URL, the URL agents dial, its public key, and which HTTP server runs
(uws, or the node fallback). 'buildwire up' runs one with defaults instead.
The first SIGINT/SIGTERM closes it gracefully; a second exits at once.`,
  flags: { config: { kind: 'string', value: 'FILE', help: 'the TOML config file' } },
  epilogue: 'Exit codes: 0 after a graceful stop, 1 on an error, 64 on a bad config or usage, 130 after a second signal.',
  async run(ctx) {
    const path = ctx.str('config');
    if (path === undefined) throw new UsageError("'buildwire coordinator' needs --config FILE", ctx.command);
    const { loadConfig, startCoordinator, ConfigError } = await import('../coordinator/index.js');
    let cfg;
    try {
      cfg = loadConfig(resolve(path), logLine);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message, ctx.command);
      throw err;
    }
    let c;
    try {
      c = await startCoordinator(cfg);
    } catch (err) {
      throw new CliError(`cannot start the coordinator: ${(err as Error).message}`);
    }
    await out(`buildwire coordinator listening on ${c.url} (server: ${c.serverKind})\nagents and factories dial ${c.connectUrl}\ncoordinator key: ${c.publicKeyBase64}\n`);
    const closed = new Promise<void>((done) => onSignals(() => void c.close().then(done, (err: Error) => {
      logLine(`close failed: ${err.message}`);
      process.exit(1);
    })));
    await closed;
    logLine('coordinator stopped');
    return 0;
  },
};

const factoryLocal: Command = {
  kind: 'command', api: false, args: [], exitWhenDone: true,
  summary: 'run a local factory: agents as processes on this host',
  usage: 'factory local --url URL --coordinator-key BASE64 [--slots N] [--work DIR]',
  description: `Runs a factory whose workers are agent processes on this host, one job each.
Its token comes from the environment variable BUILDWIRE_FACTORY_TOKEN (made by
'buildwire admin factory create'), never from a flag: secrets stay off command
lines. The first SIGINT/SIGTERM destroys its workers and stops; a second exits at once.`,
  flags: {
    url: { kind: 'string', value: 'URL', help: "the coordinator's URL (http(s):// base or ws(s)://.../api/v1/connect)" },
    'coordinator-key': { kind: 'string', value: 'BASE64', help: "the coordinator's public key (printed by 'buildwire coordinator')" },
    slots: { kind: 'string', value: 'N', help: 'how many workers may run at once (default 4)' },
    work: { kind: 'string', value: 'DIR', help: "parent of the workers' directories (default: the OS temp dir)" },
  },
  epilogue: 'Exit codes: 0 after a stop, 1 when the coordinator refuses the factory, 64 on bad usage, 130 after a second signal.',
  async run(ctx) {
    const cmd = ctx.command;
    const url = ctx.str('url');
    if (url === undefined) throw new UsageError("'buildwire factory local' needs --url URL", cmd);
    const keyRaw = ctx.str('coordinator-key');
    if (keyRaw === undefined) throw new UsageError("'buildwire factory local' needs --coordinator-key BASE64", cmd);
    const coordinatorKey = parseCoordinatorKey(keyRaw, '--coordinator-key', cmd);
    const slotsRaw = ctx.str('slots');
    const slots = slotsRaw !== undefined ? parsePositiveInt(slotsRaw, '--slots', cmd) : 4;
    const token = process.env.BUILDWIRE_FACTORY_TOKEN;
    if (!token) throw new UsageError('the environment variable BUILDWIRE_FACTORY_TOKEN must hold the factory token (secrets are not taken as flags)', cmd);
    delete process.env.BUILDWIRE_FACTORY_TOKEN;
    const { connectUrlOf } = await import('../agent/main.js');
    const { startLocalFactory } = await import('../factory/local/index.js');
    let connectUrl: string;
    try {
      connectUrl = connectUrlOf(url);
    } catch {
      throw new UsageError(`--url ${JSON.stringify(url)} must start with http://, https://, ws:// or wss://`, cmd);
    }
    const work = ctx.str('work');
    const f = startLocalFactory({ url: connectUrl, coordinatorKey, token, slots, log: logLine, ...(work !== undefined ? { workRoot: resolve(work) } : {}) });
    onSignals(() => void f.close());
    try {
      await f.done;
    } catch (err) {
      throw new CliError(`the coordinator refused the factory: ${(err as Error).message}`);
    }
    return 0;
  },
};

/** `buildwire coordinator`. */
export const coordinatorCommand = coordinator;

/** The `factory` command group. */
export const factoryGroup = {
  kind: 'group' as const,
  summary: 'run a factory',
  children: { local: factoryLocal },
};
