/**
 * Serving stored files over HTTP: validators, conditional requests and single
 * byte ranges (RFC 9110 sections 13 and 14), for every download URL (job
 * outputs, published and latest files, agent inputs).
 *
 * | request                                   | answer                                              |
 * |-------------------------------------------|-----------------------------------------------------|
 * | `If-None-Match` matching the ETag         | 304, no body                                        |
 * | no `Range`, a malformed one, another unit | 200, the whole file                                 |
 * | several ranges                            | 200, the whole file                                 |
 * | one satisfiable range                     | 206 with `Content-Range: bytes a-b/size`            |
 * | one unsatisfiable range                   | 416 `RANGE_NOT_SATISFIABLE`, the size in `Content-Range` |
 * | `If-Range` other than the ETag            | 200, the whole file                                 |
 * | a zero-length file                        | 200, `Content-Length: 0`, whatever the `Range`      |
 *
 * @module
 */

import type { HttpRequest, HttpResponse } from './types.js';

/** A stored file as {@link serveBlob} needs it. */
export interface BlobSource {
  /** Size in bytes. */
  size: number;
  /** SHA-256 of the bytes, 64 hex digits; it is the ETag. */
  sha256: string;
  /** `Content-Type` to send; {@link contentTypeOf} picks a safe one from a name. */
  contentType: string;
  /** Modification time in milliseconds since the epoch, sent as `Last-Modified`. */
  lastModified?: number;
  /** Name offered when the file is saved (`Content-Disposition`); omitted means none is sent. */
  fileName?: string;
  /**
   * Streams bytes `start..endInclusive` (both within the file). Called only
   * when the bytes are sent (never for HEAD or 304); the transport stops
   * iterating, which must release what `open` holds, when the client leaves.
   */
  open(start: number, endInclusive: number, signal: AbortSignal): AsyncIterable<Uint8Array>;
}

/**
 * Revalidate every time (`no-cache`), and only in the user's own cache
 * (`private`). The same URL can name other bytes later (a `latest` URL, a job
 * deleted and its path reused) and the viewer's access can be revoked, so a
 * cache must ask; with the sha256 as ETag the question costs one round trip
 * answered 304 without a body. `immutable` would be right for a job output
 * URL but wrong for the others, and this function serves them all.
 */
const CACHE_CONTROL = 'private, no-cache';
const EMPTY = new Uint8Array(0);

/**
 * Answers GET or HEAD for a stored file: `Content-Type`, `Content-Length`,
 * `ETag: "<sha256>"`, `Accept-Ranges: bytes`, `Cache-Control: private, no-cache`,
 * `X-Content-Type-Options: nosniff`, `Last-Modified` when known and
 * `Content-Disposition` when `src.fileName` is given; honours `If-None-Match`
 * (304), one `Range` (206, or 416 when unsatisfiable) and `If-Range` (see the
 * module table). The bytes are read from `src.open` only as they are sent.
 * Throws TypeError for a `src` with an invalid size, sha256 or lastModified.
 *
 * @example
 * r.add('GET', '/api/v1/jobs/:id/outputs/*path', ({ req, params, signal }) => {
 *   const o = findOutput(params.id, params.path);
 *   return serveBlob(req, { size: o.size, sha256: o.sha256, contentType: contentTypeOf(o.path),
 *     open: (start, end, sig) => blobs.read(o.sha256, start, end, sig) }, signal);
 * });
 */
export function serveBlob(req: HttpRequest, src: BlobSource, signal: AbortSignal): HttpResponse {
  checkSource(src);
  const { size } = src;
  const etag = `"${src.sha256}"`;
  const headers: Record<string, string> = {
    etag,
    'cache-control': CACHE_CONTROL,
    'x-content-type-options': 'nosniff',
  };
  // A 304 repeats only what a cache updates its stored copy with (RFC 9110 15.4.5).
  if (noneMatch(req.headers['if-none-match'], src.sha256)) return { status: 304, headers };
  headers['accept-ranges'] = 'bytes';
  const range = size === 0 ? undefined : wantedRange(req, etag, size);
  if (range === 'unsatisfiable') {
    const spec = req.headers['range'] ?? '';
    return {
      status: 416,
      headers: { ...headers, 'content-type': 'application/json', 'content-range': `bytes */${size}` },
      body: JSON.stringify({
        code: 'RANGE_NOT_SATISFIABLE',
        message: `range ${JSON.stringify(spec.slice(0, 100))} is not satisfiable: the file has ${size} bytes`,
      }),
    };
  }
  headers['content-type'] = src.contentType;
  if (src.lastModified !== undefined) headers['last-modified'] = new Date(src.lastModified).toUTCString();
  if (src.fileName !== undefined) headers['content-disposition'] = contentDisposition(src.fileName);
  if (size === 0) return { status: 200, headers, body: EMPTY };
  const [start, end, status] = range === undefined ? [0, size - 1, 200] : [range.start, range.end, 206];
  if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
  return { status, headers, length: end - start + 1, body: lazily(() => src.open(start, end, signal)) };
}

/**
 * `Content-Type` for a file name, by its last extension (case-insensitive);
 * `application/octet-stream` for anything not in the table.
 *
 * Markup is served as `text/plain`: outputs and inputs are written by build
 * scripts, i.e. by anyone who can submit a job, and an HTML, SVG or XML file
 * rendered on the coordinator's origin runs its scripts with the viewer's
 * session: it could call the API as them (stored XSS). As text it is still
 * readable in the browser. `nosniff`, sent alongside, stops browsers from
 * guessing their way back to HTML.
 *
 * @example
 * contentTypeOf('dist/app.tar.gz') // 'application/gzip'
 * contentTypeOf('report.html')     // 'text/plain; charset=utf-8'
 */
export function contentTypeOf(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  // A leading dot (`.bashrc`) starts a name, not an extension.
  if (dot <= 0) return OCTET_STREAM;
  return TYPES.get(name.slice(dot + 1).toLowerCase()) ?? OCTET_STREAM;
}

const OCTET_STREAM = 'application/octet-stream';
const TEXT = 'text/plain; charset=utf-8';
const TYPES = new Map<string, string>([
  ...['txt', 'log', 'md', 'csv', 'json', 'html', 'htm', 'xhtml', 'xml', 'svg', 'yaml', 'yml', 'toml', 'sh']
    .map((ext): [string, string] => [ext, TEXT]),
  ['gz', 'application/gzip'],
  ['tgz', 'application/gzip'],
  ['tar', 'application/x-tar'],
  ['zip', 'application/zip'],
  ['xz', 'application/x-xz'],
  ['zst', 'application/zstd'],
  ['bz2', 'application/x-bzip2'],
  ['iso', 'application/x-iso9660-image'],
  ['img', OCTET_STREAM],
  ['png', 'image/png'],
  ['jpg', 'image/jpeg'],
  ['jpeg', 'image/jpeg'],
  ['gif', 'image/gif'],
  ['webp', 'image/webp'],
  ['pdf', 'application/pdf'],
  ['wasm', 'application/wasm'],
]);

function checkSource(src: BlobSource): void {
  if (!Number.isSafeInteger(src.size) || src.size < 0) throw new TypeError(`blob size must be a non-negative safe integer, got ${src.size}`);
  if (!/^[0-9a-f]{64}$/i.test(src.sha256)) throw new TypeError(`blob sha256 must be 64 hex digits, got ${JSON.stringify(String(src.sha256).slice(0, 80))}`);
  if (src.lastModified !== undefined && !Number.isFinite(new Date(src.lastModified).getTime())) {
    throw new TypeError(`blob lastModified must be a time in milliseconds, got ${src.lastModified}`);
  }
}

/** Opens the source on the first read, so a body that is closed unread (HEAD, client gone) never opens it. */
async function* lazily(open: () => AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  yield* open();
}

/** One list element of If-None-Match: an entity tag (weak or strong), or an empty element. */
const TAG_ELEMENT = /\s*(?:W\/)?"([^"]*)"\s*(?:,|$)|\s*,/y;

/**
 * True when an If-None-Match value matches our tag: `*`, or any listed tag
 * whose opaque part is the sha256 (weak comparison, RFC 9110 13.1.2). A value
 * that stops parsing counts only the tags before that point.
 */
function noneMatch(value: string | undefined, sha256: string): boolean {
  if (value === undefined) return false;
  if (value.trim() === '*') return true;
  TAG_ELEMENT.lastIndex = 0;
  while (TAG_ELEMENT.lastIndex < value.length) {
    const m = TAG_ELEMENT.exec(value);
    if (!m) return false;
    if (m[1] === sha256) return true;
  }
  return false;
}

/** One byte-range-spec: `first-last`, `first-` (last undefined) or `-suffix` (first undefined). */
interface RangeSpec { first: number | undefined; last: number | undefined }

/**
 * The byte range a request asks for and may have: undefined means "send the
 * whole file" (no Range, or one to ignore), else one range within the file or
 * `'unsatisfiable'`.
 */
function wantedRange(req: HttpRequest, etag: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const value = req.headers['range'];
  if (value === undefined) return undefined;
  // If-Range holds only for a strong match: a weak tag or a date could cover other bytes (RFC 9110 13.1.5).
  const ifRange = req.headers['if-range'];
  if (ifRange !== undefined && ifRange.trim() !== etag) return undefined;
  const specs = parseRanges(value);
  // Several ranges would need a multipart/byteranges body; clients that resume
  // or seek ask for one, and answering many overlapping small ranges is a known
  // amplification attack, so RFC 9110 14.2 lets us ignore them: the whole file.
  if (specs?.length !== 1) return undefined;
  const { first, last } = specs[0]!;
  if (first === undefined) {
    if (last === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - last!), end: size - 1 };
  }
  if (first >= size) return 'unsatisfiable';
  return { start: first, end: Math.min(last ?? size - 1, size - 1) };
}

/**
 * Parses `bytes=a-b, c-, -n`; undefined for another unit or any malformed
 * spec (`a-b` with b < a included), which RFC 9110 14.2 lets a server ignore.
 * Numbers too large for exact arithmetic still compare correctly with any size.
 */
function parseRanges(value: string): RangeSpec[] | undefined {
  const m = /^\s*bytes=(.*)$/is.exec(value);
  if (!m) return undefined;
  const specs: RangeSpec[] = [];
  for (const part of m[1]!.split(',')) {
    const t = part.trim();
    if (t === '') continue; // list syntax allows empty elements (RFC 9110 5.6.1)
    const r = /^(\d*)-(\d*)$/.exec(t);
    if (!r || (r[1] === '' && r[2] === '')) return undefined;
    const first = r[1] === '' ? undefined : Number(r[1]);
    const last = r[2] === '' ? undefined : Number(r[2]);
    if (first !== undefined && last !== undefined && last < first) return undefined;
    specs.push({ first, last });
  }
  return specs.length > 0 ? specs : undefined;
}

/**
 * `inline` with the name: the types above are safe to show, and a browser
 * showing a log is what a viewer usually wants; saving still uses the name.
 * `filename` is an ASCII fallback, `filename*` the exact name (RFC 6266).
 */
function contentDisposition(name: string): string {
  const wellFormed = name.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  // `%` too: some browsers percent-decode the plain filename parameter.
  const fallback = wellFormed.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const exact = encodeURIComponent(wellFormed).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `inline; filename="${fallback}"; filename*=UTF-8''${exact}`;
}
