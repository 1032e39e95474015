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
  parts: string[];
  route: Route;
}

/**
 * A small router: `/api/v1/jobs/:id/events` patterns, exact segments,
 * 404 for unknown paths and 405 for known paths with another method.
 *
 * @example
 * router.add('GET', '/api/v1/jobs/:id', ({ params }) => json(200, getJob(params.id)));
 */
export class Router {
  readonly #entries: Entry[] = [];

  add(method: string, pattern: string, route: Route): void {
    this.#entries.push({ method, parts: pattern.split('/').filter(Boolean), route });
  }

  async handle(req: HttpRequest, signal: AbortSignal): Promise<HttpResponse> {
    const segs = req.path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const e of this.#entries) {
      const params = match(e.parts, segs);
      if (!params) continue;
      pathMatched = true;
      if (e.method !== req.method && !(e.method === 'GET' && req.method === 'HEAD')) continue;
      return await e.route({ req, params, signal });
    }
    if (pathMatched) throw new MethodNotAllowed(req.method, req.path);
    throw new NotFound(`no such path: ${req.path.slice(0, 200)}`);
  }
}

function match(parts: string[], segs: string[]): Record<string, string> | undefined {
  if (parts.length !== segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const s = segs[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        throw new BadRequest(`path segment ${JSON.stringify(s.slice(0, 100))} is not valid percent-encoding`);
      }
    } else if (p !== s) return undefined;
  }
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
