import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { hashSecret } from '../protocol/index.js';
import type { Coordinator } from '../coordinator/index.js';
import { ConfigError, DEFAULTS, createFactory, createUser, ensureTarget, issueToken, startCoordinator } from '../coordinator/index.js';
import { startLocalFactory } from '../factory/local/index.js';
import type { LocalFactory } from '../factory/local/index.js';
import { ApiClient } from './client.js';
import { tailJob } from './tail.js';

/** `buildwire up --help`. */
export const UP_HELP = `usage: buildwire up [--port N] [--host ADDR] [--data DIR] [--slots N] [--no-sample] [--once] [--server uws|node]

Runs the embedded default: a coordinator with its store in DIR, an admin
token in DIR/admin-token (mode 0600), a local factory with N slots, the web
page, and a sample job whose log is printed as it runs. Ctrl-C stops it all
cleanly; running it again reuses the store. Other buildwire commands find
this coordinator through DIR/cli.json.

  --port N       port to serve on (default 7700; 0 picks a free one)
  --host ADDR    address to bind (default 127.0.0.1)
  --data DIR     data directory (default ./.buildwire, or $BUILDWIRE_DATA)
  --slots N      local factory slots: workers at once (default 4)
  --no-sample    do not submit the sample job
  --once         exit after the sample job, with its result (0 = completed)
  --server S     force the HTTP server: uws (default) or node
`;

const SAMPLE_SCRIPT = `echo "hello from buildwire: job $BUILDWIRE_JOB_ID on $(uname -sm)"
echo "working in $PWD as $(id -un)"
for i in 1 2 3 4 5; do echo "step $i of 5"; sleep 0.2; done
echo "this line goes to stderr" >&2
echo done`;

function usage(msg: string): never {
  process.stderr.write(`buildwire up: ${msg}\nSee 'buildwire up --help'.\n`);
  process.exit(64);
}

function intFlag(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) usage(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
}

function readSecret(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}

/** Makes sure an admin user, the `local` target and the `local` factory exist, with their tokens in files. */
async function provision(c: Coordinator, dir: string): Promise<{ adminToken: string; factoryToken: string; adminTokenPath: string }> {
  const core = c.core;
  const adminTokenPath = join(dir, 'admin-token');
  let adminToken = readSecret(adminTokenPath);
  if (!adminToken || core.dbs.tokens.get(hashSecret(adminToken))?.kind !== 'user') {
    const existing = core.dbs.userNames.get('admin');
    adminToken = existing ? await issueToken(core, 'user', existing) : (await createUser(core, 'admin', ['admin'])).token;
    writeSecret(adminTokenPath, adminToken);
  }
  await ensureTarget(core, 'local', 'processes on the coordinator\'s own host');
  const factoryTokenPath = join(dir, 'factory-token');
  let factoryToken = readSecret(factoryTokenPath);
  if (!factoryToken || core.dbs.tokens.get(hashSecret(factoryToken))?.kind !== 'factory') {
    let id: string | undefined;
    for (const { value } of core.dbs.factories.getRange({})) if (value.name === 'local') id = value.id;
    factoryToken = id ? await issueToken(core, 'factory', id) : (await createFactory(core, 'local', ['local'])).token;
    writeSecret(factoryTokenPath, factoryToken);
  }
  return { adminToken, factoryToken, adminTokenPath };
}

/**
 * `buildwire up`: the embedded default. Resolves with the exit code.
 *
 * @example
 * process.exit(await up(['--port', '0', '--once']));
 */
export async function up(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv, allowPositionals: false, strict: true,
      options: {
        port: { type: 'string' }, host: { type: 'string' }, data: { type: 'string' }, slots: { type: 'string' },
        'no-sample': { type: 'boolean' }, once: { type: 'boolean' }, server: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  if (args.help) {
    process.stdout.write(UP_HELP);
    return 0;
  }
  const port = intFlag('port', args.port, DEFAULTS.port, 0, 65535);
  const slots = intFlag('slots', args.slots, 4, 1, 256);
  if (args.server !== undefined && args.server !== 'uws' && args.server !== 'node') usage(`--server must be uws or node, got ${JSON.stringify(args.server)}`);
  const dir = resolve(args.data ?? process.env.BUILDWIRE_DATA ?? '.buildwire');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = (l: string) => process.stderr.write(`${l}\n`);

  let c: Coordinator;
  try {
    c = await startCoordinator({ ...DEFAULTS, host: args.host ?? DEFAULTS.host, port, dataDir: join(dir, 'store'), server: (args.server as 'uws' | 'node' | undefined) ?? 'uws', log });
  } catch (err) {
    if (err instanceof ConfigError) usage(err.message);
    process.stderr.write(`buildwire up: ${(err as Error).message}\n`);
    return 1;
  }
  const { adminToken, factoryToken, adminTokenPath } = await provision(c, dir);
  writeSecret(join(dir, 'cli.json'), JSON.stringify({ url: c.url, tokenFile: adminTokenPath }));
  const factory: LocalFactory = startLocalFactory({
    url: c.connectUrl, coordinatorKey: c.core.identity.publicKey, token: factoryToken, slots,
    log: (l) => { if (!/^worker \S+: agent: (job|recycled)/.test(l)) log(`factory: ${l}`); },
  });

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    await factory.close();
    await c.close();
  })());
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(130);
    process.stderr.write('\nstopping (Ctrl-C again to force)...\n');
    void stop().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  process.stdout.write(`buildwire is up
  web page and API  ${c.url}/
  agents connect to ${c.connectUrl}
  HTTP server       ${c.serverKind === 'uws' ? 'uWebSockets.js' : 'ws + node:http (fallback)'}
  store             ${join(dir, 'store')}
  admin token       ${adminTokenPath} (mode 0600)
  local factory     ${slots} slot(s) for target "local"
try: buildwire job run --name hello --target local --script 'echo hi' --tail
`);

  let code = 0;
  if (!args['no-sample']) {
    const r = await fetch(`${c.url}/api/v1/jobs`, {
      method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sample', target: 'local', tasks: [{ name: 'sample', script: SAMPLE_SCRIPT }], tags: { source: 'buildwire-up' } }),
    });
    const job = (await r.json()) as { id: string };
    process.stdout.write(`\nsample job ${job.id}:\n`);
    code = await tailJob(new ApiClient({ url: c.url, token: adminToken, urlSource: 'buildwire up' }), job.id, { timestamps: false, json: false });
    process.stdout.write(`sample job ${code === 0 ? 'completed' : 'did not complete'}\n`);
  }
  if (args.once) {
    await stop();
    return code;
  }
  process.stdout.write(`\nserving at ${c.url}/ — press Ctrl-C to stop\n`);
  await new Promise<never>(() => {});
  return 0;
}
