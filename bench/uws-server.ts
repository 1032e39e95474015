/**
 * A raw uWebSockets.js server in its own process, for ceilings: it answers
 * every binary message with a 1-byte ack (checking what `send` returns) and
 * otherwise holds connections idle. No handshake, no MAC, no msgpack, no
 * store: what the coordinator's transport could do at best on this host.
 *
 * IPC: sends `{op:'ready', port}` once listening; answers `{op:'mem'}` with
 * `{op:'mem', rss, heapUsed, external, connections}` after a forced GC (start
 * it with --expose-gc), and `{op:'stats'}` with message/drop counters.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as U from '@trufflesuite/uws-js-unofficial';

// The package entry would silently fall back to a JS imitation if the addon
// did not load; load the addon itself, as the coordinator does, so a failure shows.
const require = createRequire(import.meta.url);
const pkgFile = require.resolve('@trufflesuite/uws-js-unofficial/package.json');
const version = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { version: string }).version;
const uws = require(join(dirname(pkgFile), 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`)) as typeof U;

const ACK = new Uint8Array([1]);
let connections = 0;
let messages = 0;
let bytes = 0;
let backpressured = 0;
let dropped = 0;

const app = uws.App().ws<Record<string, never>>('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 32 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  open: () => {
    connections++;
  },
  message: (ws, msg) => {
    messages++;
    bytes += msg.byteLength;
    const r = ws.send(ACK, true, false);
    if (r === 0) backpressured++;
    else if (r === 2) dropped++;
  },
  close: () => {
    connections--;
  },
});

app.listen('127.0.0.1', 0, (ls) => {
  if (!ls) {
    process.stderr.write('uws-server: could not listen\n');
    process.exit(1);
  }
  process.send!({ op: 'ready', port: uws.us_socket_local_port(ls as unknown as U.us_socket), version });
});

process.on('message', (m: { op: string }) => {
  if (m.op === 'mem') {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    setTimeout(() => {
      gc?.();
      const mu = process.memoryUsage();
      process.send!({ op: 'mem', rss: mu.rss, heapUsed: mu.heapUsed, external: mu.external, connections });
    }, 50);
  } else if (m.op === 'stats') {
    process.send!({ op: 'stats', messages, bytes, backpressured, dropped, connections });
  } else if (m.op === 'exit') {
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
