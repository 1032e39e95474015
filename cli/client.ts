/**
 * The HTTP client of the coordinator's REST API (`/api/v1`). It sends the
 * token as `Authorization: Bearer TOKEN`, and turns `{code, message}` error
 * bodies into {@link ApiError} and network failures into {@link ConnectionError}.
 *
 * @example
 * const api = new ApiClient(resolveConnection({}));
 * const { jobs } = await api.get<{ jobs: JobJson[] }>('/api/v1/jobs', { limit: 20 });
 */
import type { Connection } from './config.js';
import { ApiError, CliError, ConnectionError } from './errors.js';

/** How long an ordinary request may take before it counts as a lost connection. */
export const REQUEST_TIMEOUT_MS = 60_000;

/** Query parameters; undefined ones are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Options of one request. */
export interface RequestOptions {
  query?: Query;
  /** Overrides {@link REQUEST_TIMEOUT_MS} (long polls wait longer). */
  timeoutMs?: number;
}

// Error codes undici reports (in err.cause.code) when the coordinator is not there or went away.
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/** The REST client. One per command. */
export class ApiClient {
  readonly url: string;
  readonly #token: string;

  constructor(conn: Connection) {
    this.url = conn.url;
    this.#token = conn.token;
  }

  /** GET, returning the parsed JSON body. */
  get<T>(path: string, query?: Query, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', path, undefined, query ? { ...o, query } : o);
  }

  /** POST a JSON body (`{}` when none is given). */
  post<T>(path: string, body: unknown = {}, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, body, o);
  }

  /** PUT a JSON body. */
  put<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('PUT', path, body, o);
  }

  /**
   * One request. Resolves with the JSON body of a 2xx answer; rejects with
   * ApiError for an error answer and ConnectionError when there is no answer.
   */
  async request<T>(method: string, path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    const target = new URL(this.url + path);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) target.searchParams.set(k, String(v));
    const timeoutMs = o.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(target, {
        method, headers, signal: AbortSignal.timeout(timeoutMs),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      text = await res.text();
    } catch (err) {
      throw this.#networkError(err, timeoutMs);
    }
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      throw new CliError(`the coordinator at ${this.url} answered ${method} ${path} with HTTP ${res.status} and a body that is not JSON: ${JSON.stringify(text.slice(0, 120))}`);
    }
    if (res.ok) return parsed as T;
    const e = parsed as { code?: unknown; message?: unknown } | undefined;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') throw new ApiError(res.status, e.code, e.message);
    throw new ApiError(res.status, 'HTTP_ERROR', `${method} ${path} failed`);
  }

  #networkError(err: unknown, timeoutMs: number): CliError {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError') return new ConnectionError(this.url, `no answer within ${Math.round(timeoutMs / 1000)} s`);
    const code = e.cause?.code;
    if (e.cause?.message === 'bad port') return new CliError(`cannot use ${this.url}: fetch refuses that port (it is on the "bad ports" list); use another port`);
    if (code && NETWORK_CODES.has(code)) return new ConnectionError(this.url, code === 'ECONNREFUSED' ? 'connection refused' : code);
    // fetch reports every transport failure as TypeError('fetch failed'); treat unknown causes as unreachable too.
    if (e instanceof TypeError && e.message === 'fetch failed') return new ConnectionError(this.url, e.cause?.message ?? code ?? 'fetch failed');
    return new CliError(`request to ${this.url} failed: ${e.message}`);
  }
}
