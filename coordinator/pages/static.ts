import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NotFound } from '../errors.js';
import type { Router } from '../router.js';

/** Only plain script names: nothing that could climb out of the client folder. */
const NAME_RE = /^[a-z-]+\.js$/;

/**
 * Serves the compiled client scripts, `/static/NAME.js` from
 * `dist/web/client/NAME.js` (found relative to this compiled module, so it
 * works wherever dist/ is). `no-cache` plus an ETag: browsers revalidate and
 * get a 304 until the script changes with a new build.
 */
export function staticRoutes(r: Router): void {
  const dir = new URL('../../web/client/', import.meta.url);
  r.add('GET', '/static/:file', async ({ req, params }) => {
    const name = params.file!;
    if (!NAME_RE.test(name)) throw new NotFound(`no such script ${JSON.stringify(name.slice(0, 80))} (script names are [a-z-]+.js)`);
    let body: Buffer;
    try {
      body = await readFile(new URL(name, dir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`no such script ${name}`);
      throw err;
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    const headers = { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache', etag, 'x-content-type-options': 'nosniff' };
    if (req.headers['if-none-match'] === etag) return { status: 304, headers };
    return { status: 200, headers, body };
  });
}
