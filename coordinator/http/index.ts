/**
 * Entry point of the coordinator's transport layer: {@link startServer} picks
 * uWebSockets.js when its native addon loads and falls back to `ws` +
 * `node:http` otherwise. Both implement the same {@link RunningServer} contract.
 *
 * @module
 */

import { createNodeServer } from './node-server.js';
import { checkRoutes, type RunningServer, type ServerOptions } from './types.js';
import { createUwsServer, type UwsServer } from './uws-server.js';

export type * from './types.js';
/** Serving stored files (validators, conditional requests, byte ranges, safe content types). */
export { contentTypeOf, serveBlob, type BlobSource } from './ranges.js';

/**
 * Starts an HTTP + WebSocket server on `opts.host:opts.port`.
 *
 * Tries uWebSockets.js unless `opts.prefer === 'node'`; if loading the addon or
 * creating the app throws, serves with `ws` + `node:http` instead. Calls
 * `opts.log` once with the implementation in use and why. Rejects with an
 * Error naming `host:port` when the address cannot be bound (the fallback is
 * not tried then), and on invalid WebSocket routes.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? (() => {});
  checkRoutes(opts.ws);
  let why = 'prefer=node';
  if (opts.prefer !== 'node') {
    let created: { server: UwsServer; version: string } | undefined;
    try {
      created = createUwsServer(opts);
    } catch (err) {
      why = `uWebSockets.js did not load (${err instanceof Error ? err.message : String(err)})`;
    }
    if (created) {
      const server = await created.server.listen();
      log(`http: serving with uWebSockets.js ${created.version} on ${server.url}`);
      return server;
    }
  }
  const server = await createNodeServer(opts).listen();
  log(`http: ${why}; serving with ws + node:http on ${server.url}`);
  return server;
}
