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

  /** DELETE, returning the parsed JSON body (undefined when the answer has none). */
  delete<T>(path: string, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('DELETE', path, undefined, o);
  }

  /**
   * PUT raw bytes as `application/octet-stream` (input chunks), returning the
   * parsed JSON answer.
   *
   * @example
   * const { offset } = await api.putBytes<{ offset: number }>(`/api/v1/jobs/${id}/inputs/src`, chunk, { offset: 0 });
   */
  putBytes<T>(path: string, bytes: Uint8Array, query: Query, o: RequestOptions = {}): Promise<T> {
    return this.#send<T>('PUT', path, { bytes, contentType: 'application/octet-stream' }, { ...o, query });
  }

  /**
   * One request. Resolves with the JSON body of a 2xx answer; rejects with
   * ApiError for an error answer and ConnectionError when there is no answer.
   */
  request<T>(method: string, path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.#send<T>(method, path, body === undefined ? undefined : { bytes: Buffer.from(JSON.stringify(body)), contentType: 'application/json' }, o);
  }

  /**
   * A GET whose body the caller streams (downloads). Resolves with the
   * Response of a 2xx answer once its headers are in; rejects like
   * {@link ApiClient.request} otherwise. The caller owns `signal`: a download
   * may take far longer than {@link REQUEST_TIMEOUT_MS}, so it watches for a
   * stalled body itself.
   *
   * @example
   * const res = await api.open(`/api/v1/jobs/${id}/outputs/out/a.tgz`, { range: 'bytes=100-' }, ac.signal);
   */
  async open(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    const headersTimeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        headers: { ...headers, authorization: `Bearer ${this.#token}` },
        signal: AbortSignal.any([signal, headersTimeout]),
      });
    } catch (err) {
      throw this.#networkError(err, REQUEST_TIMEOUT_MS);
    }
    if (res.ok) return res;
    let text = '';
    try {
      text = await res.text();
    } catch (err) {
      throw this.#networkError(err, REQUEST_TIMEOUT_MS);
    }
    throw this.#errorOf(res.status, 'GET', path, text);
  }

  /** An absolute URL for a path (or URL) the coordinator returned, e.g. a published file's `url`. */
  absolute(pathOrUrl: string): string {
    return new URL(pathOrUrl, this.url.endsWith('/') ? this.url : `${this.url}/`).toString();
  }

  async #send<T>(method: string, path: string, body: { bytes: Uint8Array; contentType: string } | undefined, o: RequestOptions): Promise<T> {
    const target = new URL(this.url + path);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) target.searchParams.set(k, String(v));
    const timeoutMs = o.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = body.contentType;
    let res: Response;
    let text: string;
    try {
      res = await fetch(target, {
        method, headers, signal: AbortSignal.timeout(timeoutMs),
        ...(body !== undefined ? { body: body.bytes } : {}),
      });
      text = await res.text();
    } catch (err) {
      throw this.#networkError(err, timeoutMs);
    }
    if (!res.ok) throw this.#errorOf(res.status, method, path, text);
    try {
      return (text.length > 0 ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new CliError(`the coordinator at ${this.url} answered ${method} ${path} with HTTP ${res.status} and a body that is not JSON: ${JSON.stringify(text.slice(0, 120))}`);
    }
  }

  /** The error for a non-2xx answer: the body's `{code, message}` when it has them. */
  #errorOf(status: number, method: string, path: string, text: string): ApiError {
    let e: { code?: unknown; message?: unknown } | undefined;
    try {
      e = text.length > 0 ? (JSON.parse(text) as typeof e) : undefined;
    } catch {
      e = undefined;
    }
    if (e && typeof e.code === 'string' && typeof e.message === 'string') return new ApiError(status, e.code, e.message);
    return new ApiError(status, 'HTTP_ERROR', `${method} ${path} failed`);
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
