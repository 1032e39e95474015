/**
 * Compression for the live log's pages, off the coordinator's main thread
 * and below it in priority.
 *
 * Compressing a page costs more than everything else the live log does
 * (about 0.4 µs per line of build output at deflate level 1, against about
 * 1 µs for the coordinator to take the line in at all), and it is done for
 * viewers, who can wait. So it runs on one worker thread whose nice value is
 * 19 (Linux's nice is per thread): when the coordinator's cores are busy
 * with ingestion, the viewers' pages come later, instead of the build
 * slowing down. With cores to spare it costs nothing but the copy of each
 * page's body to the worker.
 *
 * One worker per process, started at the first page and not holding the
 * process open. If it cannot start or fails, pages are compressed on the
 * calling thread, as before.
 */
import { setPriority } from 'node:os';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { deflateRawSync } from 'node:zlib';

/** The deflate options of a page: level 1, the fastest (on the bench's build log: 6.4× smaller, against level 6's 8.3×, in about a quarter of the time). */
const OPTIONS = { level: 1 } as const;

interface Request {
  id: number;
  body: Uint8Array;
}

interface Reply {
  id: number;
  out?: Uint8Array;
  error?: string;
}

let worker: Worker | null = null;
let broken = false;
let nextId = 1;
const waiting = new Map<number, { resolve: (b: Buffer) => void; body: Uint8Array }>();

/** The worker failed: from now on, and for whatever was in flight, compress here (no page is lost). */
function fail(): void {
  broken = true;
  worker = null;
  for (const [id, w] of waiting) {
    waiting.delete(id);
    w.resolve(deflateRawSync(w.body, OPTIONS));
  }
}

function start(): Worker | null {
  if (worker || broken) return worker;
  try {
    const w = new Worker(new URL(import.meta.url));
    w.unref();
    w.on('message', (m: Reply) => {
      const entry = waiting.get(m.id);
      if (!entry) return;
      waiting.delete(m.id);
      entry.resolve(m.out ? Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength) : deflateRawSync(entry.body, OPTIONS));
      if (waiting.size === 0) w.unref();
    });
    w.on('error', () => fail());
    w.on('exit', () => {
      if (worker === w) fail();
    });
    worker = w;
  } catch {
    fail();
  }
  return worker;
}

/**
 * Compresses `body` (deflate-raw, level 1) on the low-priority worker. The
 * body is copied to the worker (a memcpy: about 1% of compressing it) and
 * kept here until the answer, so a worker that dies loses nothing.
 */
export function deflateLow(body: Buffer): Promise<Buffer> {
  const w = start();
  if (!w) return Promise.resolve(deflateRawSync(body, OPTIONS));
  const id = nextId++;
  return new Promise((resolve) => {
    try {
      w.postMessage({ id, body } satisfies Request);
    } catch {
      resolve(deflateRawSync(body, OPTIONS));
      return;
    }
    waiting.set(id, { resolve, body });
    if (waiting.size === 1) w.ref();
  });
}

// The worker's side: this same file, loaded by `new Worker`.
if (!isMainThread && parentPort) {
  try {
    // Zero means the calling thread on Linux: this worker only, not the coordinator's main thread.
    setPriority(0, 19);
  } catch {
    // Not allowed here: it still keeps the main thread free.
  }
  const port = parentPort;
  port.on('message', (m: Request) => {
    try {
      const out = deflateRawSync(m.body, OPTIONS);
      port.postMessage({ id: m.id, out } satisfies Reply);
    } catch (err) {
      port.postMessage({ id: m.id, error: String(err) } satisfies Reply);
    }
  });
}
