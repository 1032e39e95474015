import type { HttpRequest, HttpResponse } from './http/types.js';
import { BadRequest, MethodNotAllowed, NotFound } from './errors.js';

/** What a route handler gets: the request, its path parameters, and an abort signal. */
export interface RouteContext {
  req: HttpRequest;
  params: Record<string, string>;
  signal: AbortSignal;
}

/** A route handler. */
export type Route = (ctx: RouteContext) => Promise<HttpResponse> | HttpResponse;

interface Entry {
  method: string;
  /** Pattern segments before the wildcard (all of them when there is none). */
  parts: string[];
  /** Name of the trailing `*name` segment, if the pattern has one. */
  rest: string | undefined;
  route: Route;
}

/**
 * A small router: `/api/v1/jobs/:id/events` patterns, exact segments, an
 * optional trailing `*name` wildcard, 404 for unknown paths and 405 for known
 * paths with another method. `HEAD` is served by the `GET` route.
 *
 * `:name` takes one percent-decoded segment. `*name` takes one or more: the
 * rest of the path, each segment percent-decoded, joined with `/`. A rest that
 * could climb out of where it is looked up (an empty, `.` or `..` segment, or
 * a segment hiding a `/` as `%2F`) is a 400 naming it, never a lookup.
 *
 * @example
 * router.add('GET', '/api/v1/jobs/:id', ({ params }) => json(200, getJob(params.id)));
 * router.add('GET', '/api/v1/jobs/:id/outputs/*path', ({ params }) => download(params.id, params.path));
 */
export class Router {
  readonly #entries: Entry[] = [];

  /** Adds a route; throws TypeError for a `*` segment that is not last or has no name. */
  add(method: string, pattern: string, route: Route): void {
    const parts = pattern.split('/').filter(Boolean);
    const star = parts.findIndex((p) => p.startsWith('*'));
    if (star >= 0 && (star !== parts.length - 1 || parts[star] === '*')) {
      throw new TypeError(`route pattern ${JSON.stringify(pattern)}: a wildcard must be the last segment and named, like /files/*path`);
    }
    const rest = star >= 0 ? parts.pop()?.slice(1) : undefined;
    this.#entries.push({ method, parts, rest, route });
  }

  async handle(req: HttpRequest, signal: AbortSignal): Promise<HttpResponse> {
    // Empty segments are dropped for exact patterns (`/a//b/` is `/a/b`); a
    // wildcard rest keeps them so that it can refuse them.
    const raw = (req.path.startsWith('/') ? req.path.slice(1) : req.path).split('/');
    const segs = raw.filter(Boolean);
    let pathMatched = false;
    for (const e of this.#entries) {
      const params = e.rest === undefined ? match(e.parts, segs) : matchRest(e.parts, e.rest, raw);
      if (!params) continue;
      pathMatched = true;
      if (e.method !== req.method && !(e.method === 'GET' && req.method === 'HEAD')) continue;
      return await e.route({ req, params, signal });
    }
    if (pathMatched) throw new MethodNotAllowed(req.method, req.path);
    throw new NotFound(`no such path: ${req.path.slice(0, 200)}`);
  }
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new BadRequest(`path segment ${JSON.stringify(s.slice(0, 100))} is not valid percent-encoding`);
  }
}

function match(parts: string[], segs: string[]): Record<string, string> | undefined {
  if (parts.length !== segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const s = segs[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = decodeSegment(s);
    else if (p !== s) return undefined;
  }
  return params;
}

/** Matches `parts` against the leading non-empty segments of `raw`, and the rest (one or more) to `*rest`. */
function matchRest(parts: string[], rest: string, raw: string[]): Record<string, string> | undefined {
  let i = 0;
  const head: string[] = [];
  while (head.length < parts.length && i < raw.length) {
    const s = raw[i++]!;
    if (s !== '') head.push(s);
  }
  const tail = raw.slice(i);
  // `prefix` and `prefix/` name the prefix itself (the exact routes' business), not a file in it.
  if (head.length !== parts.length || tail.length === 0 || (tail.length === 1 && tail[0] === '')) return undefined;
  const params = match(parts, head);
  if (!params) return undefined;
  const shown = JSON.stringify(tail.join('/').slice(0, 200));
  const decoded = tail.map((s, n) => {
    const d = decodeSegment(s);
    if (d === '' || d === '.' || d === '..') {
      throw new BadRequest(`path ${shown} has ${d === '' ? 'an empty' : `a "${d}"`} segment (segment ${n + 1}); a file path has no empty, "." or ".." segments`);
    }
    // Joined with '/', a decoded '/' would make segments that the check above never saw.
    if (d.includes('/')) throw new BadRequest(`path segment ${JSON.stringify(s.slice(0, 100))} encodes a "/"; a file path separates its segments with a plain "/"`);
    return d;
  });
  params[rest] = decoded.join('/');
  return params;
}

/** A JSON response. @example json(201, { id }) */
export function json(status: number, body: unknown): HttpResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/**
 * Parses a JSON object body, 400 naming the problem otherwise.
 *
 * @example
 * const body = readJson(req); const name = str(body, 'name');
 */
export function readJson(req: HttpRequest): Record<string, unknown> {
  if (req.body.length === 0) throw new BadRequest('request body must be a JSON object, got an empty body');
  let v: unknown;
  try {
    v = JSON.parse(req.body.toString('utf8'));
  } catch (err) {
    throw new BadRequest(`request body is not valid JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadRequest('request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** A required string field. @example str(body, 'name', { max: 64 }) */
export function str(body: Record<string, unknown>, field: string, opts: { max?: number; optional?: false } = {}): string {
  const v = body[field];
  if (typeof v !== 'string') throw new BadRequest(`field "${field}" must be a string${v === undefined ? ' and is missing' : `, got ${typeof v}`}`);
  const max = opts.max ?? 1 << 20;
  if (v.length > max) throw new BadRequest(`field "${field}" must be at most ${max} characters, got ${v.length}`);
  return v;
}

/** An optional string field. */
export function optStr(body: Record<string, unknown>, field: string, max = 1 << 20): string | undefined {
  return body[field] === undefined || body[field] === null ? undefined : str(body, field, { max });
}

/** An optional boolean field. */
export function optBool(body: Record<string, unknown>, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new BadRequest(`field "${field}" must be a boolean, got ${typeof v}`);
  return v;
}

/** An optional non-negative integer field within bounds. */
export function optInt(body: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new BadRequest(`field "${field}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** An optional map of string to string. */
export function optStringMap(body: Record<string, unknown>, field: string, maxKeys = 256): Record<string, string> | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new BadRequest(`field "${field}" must be an object of strings`);
  const out: Record<string, string> = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > maxKeys) throw new BadRequest(`field "${field}" must have at most ${maxKeys} keys`);
  for (const [k, val] of entries) {
    if (typeof val !== 'string') throw new BadRequest(`field "${field}.${k}" must be a string, got ${typeof val}`);
    out[k] = val;
  }
  return out;
}

/** An optional array of strings. */
export function optStringArray(body: Record<string, unknown>, field: string, max = 256): string[] | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > max || v.some((x) => typeof x !== 'string')) {
    throw new BadRequest(`field "${field}" must be an array of at most ${max} strings`);
  }
  return v as string[];
}

/** A query parameter as a bounded integer. */
export function queryInt(req: HttpRequest, name: string, dflt: number, min: number, max: number): number {
  const raw = req.query.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new BadRequest(`query parameter "${name}" must be an integer from ${min} to ${max}, got ${JSON.stringify(raw.slice(0, 40))}`);
  return n;
}
