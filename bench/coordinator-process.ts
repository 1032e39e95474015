/**
 * A coordinator in its own process, so its CPU time and memory can be read
 * from /proc apart from the load generators'. Reads BW_DATA, BW_PORT and
 * BW_CONFIG (JSON overrides of the config). On a fresh store it creates an
 * admin user, the targets `bench` and `local`, and a local factory. Prints
 * one JSON line `{url, port, publicKey, connectUrl, serverKind, adminToken?,
 * factoryToken?}`. On SIGUSR2 it runs a full GC (when started with
 * --expose-gc) and prints `{"mem": process.memoryUsage()}`. SIGTERM closes.
 */
import { DEFAULTS, createFactory, createUser, ensureTarget, startCoordinator } from '../coordinator/index.js';

// Installed before anything is announced: the bench may signal as soon as it reads the info line.
process.on('SIGUSR2', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  // A second pass after a turn lets weak references and finalizers settle.
  setTimeout(() => {
    gc?.();
    process.stdout.write(JSON.stringify({ mem: process.memoryUsage(), gc: gc !== undefined }) + '\n');
  }, 50);
});

const c = await startCoordinator({
  ...DEFAULTS,
  port: Number(process.env.BW_PORT ?? 0),
  dataDir: process.env.BW_DATA!,
  log: (l) => process.stderr.write(`${l}\n`),
  ...(JSON.parse(process.env.BW_CONFIG ?? '{}') as object),
});
const out: Record<string, unknown> = { url: c.url, port: c.port, publicKey: c.publicKeyBase64, connectUrl: c.connectUrl, serverKind: c.serverKind };
if (!c.core.dbs.userNames.get('admin')) {
  out.adminToken = (await createUser(c.core, 'admin', ['admin'])).token;
  await ensureTarget(c.core, 'bench', 'benchmark agents');
  await ensureTarget(c.core, 'local', 'this host, through the local factory');
  out.factoryToken = (await createFactory(c.core, 'local', ['local'])).token;
}
process.on('SIGTERM', () => void c.close().then(() => process.exit(0)));
process.stdout.write(JSON.stringify(out) + '\n');
