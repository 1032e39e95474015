/**
 * Finding the coordinator and the token. Each value is taken from the first
 * place that has it:
 *
 * | value | 1. flag   | 2. environment     | 3. file written by `buildwire up`           |
 * |-------|-----------|--------------------|---------------------------------------------|
 * | URL   | `--url`   | `BUILDWIRE_URL`    | `<data>/cli.json` `url`                      |
 * | token | `--token` | `BUILDWIRE_TOKEN`  | the file named by `<data>/cli.json` `tokenFile` |
 *
 * The data directory is `--data DIR`, else `BUILDWIRE_DATA`, else `./.buildwire`.
 * `cli.json` is `{"url": "http://127.0.0.1:7700", "tokenFile": "/abs/path/admin-token"}`.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { CliError, UsageError } from './errors.js';

/** Where to reach the coordinator, and as whom. */
export interface Connection {
  /** The HTTP base URL, without a trailing slash. */
  url: string;
  token: string;
  /** Where the URL came from, for messages. */
  urlSource: string;
}

/** The flags that say where the coordinator is (all optional). */
export interface ConnectionFlags {
  url?: string | undefined;
  token?: string | undefined;
  data?: string | undefined;
}

/** The file `buildwire up` writes so that later commands find it. */
export interface CliFile {
  url: string;
  tokenFile: string;
}

/** The data directory: `--data`, else `BUILDWIRE_DATA`, else `./.buildwire`, made absolute. */
export function dataDirOf(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return resolve(cwd, flags.data ?? (env.BUILDWIRE_DATA || '.buildwire'));
}

/**
 * Reads `<dir>/cli.json`, or undefined if there is none. A file that exists
 * but is malformed is an error naming the file and the rule.
 */
export function readCliFile(dir: string): CliFile | undefined {
  const path = join(dir, 'cli.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON; it must be {"url": "...", "tokenFile": "..."}`);
  }
  const o = raw as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || typeof o.url !== 'string' || typeof o.tokenFile !== 'string') {
    throw new CliError(`${path} must be {"url": "...", "tokenFile": "..."} with both strings`);
  }
  // The brief says absolute; a relative path is read relative to the data directory, not the caller's cwd.
  return { url: o.url, tokenFile: isAbsolute(o.tokenFile) ? o.tokenFile : join(dir, o.tokenFile) };
}

/**
 * Normalizes a coordinator URL to its HTTP base: `ws(s)://host/api/v1/connect`
 * (what agents use) becomes `http(s)://host`; a trailing slash is dropped.
 *
 * @example
 * httpBaseOf('ws://127.0.0.1:7700/api/v1/connect', '--url') // 'http://127.0.0.1:7700'
 */
export function httpBaseOf(raw: string, source: string): string {
  let url = raw.trim();
  if (/^wss?:\/\//.test(url)) url = url.replace(/^ws/, 'http').replace(/\/api\/v1\/connect\/?$/, '');
  if (!/^https?:\/\/[^/\s]+/.test(url)) {
    throw new UsageError(`coordinator URL ${JSON.stringify(raw)} (from ${source}) must start with http:// or https://`, '');
  }
  return url.replace(/\/+$/, '');
}

/**
 * Resolves the URL and token, or explains every place that was looked at.
 *
 * @example
 * const conn = resolveConnection({ url: p.str('url'), token: p.str('token'), data: p.str('data') });
 */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Connection {
  const dir = dataDirOf(flags, env, cwd);
  let file: CliFile | undefined | null = null;
  const cliFile = () => (file === null ? (file = readCliFile(dir)) : file);

  let url: string;
  let urlSource: string;
  if (flags.url !== undefined) [url, urlSource] = [flags.url, '--url'];
  else if (env.BUILDWIRE_URL) [url, urlSource] = [env.BUILDWIRE_URL, 'BUILDWIRE_URL'];
  else {
    const f = cliFile();
    if (!f) {
      throw new CliError(
        `no coordinator given: pass --url URL, set BUILDWIRE_URL, or start one with 'buildwire up' (it writes ${join(dir, 'cli.json')}, which was not found)`,
      );
    }
    [url, urlSource] = [f.url, join(dir, 'cli.json')];
  }
  url = httpBaseOf(url, urlSource);

  let token: string;
  if (flags.token !== undefined) token = flags.token;
  else if (env.BUILDWIRE_TOKEN) token = env.BUILDWIRE_TOKEN;
  else {
    const f = cliFile();
    if (!f) {
      throw new CliError(`no API token given: pass --token, set BUILDWIRE_TOKEN, or use the data directory of 'buildwire up' (${join(dir, 'cli.json')} was not found)`);
    }
    try {
      token = readFileSync(f.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new CliError(`cannot read the token file ${f.tokenFile} named in ${join(dir, 'cli.json')} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (!token) throw new CliError(`the token file ${f.tokenFile} is empty`);
  }
  if (/\s/.test(token)) throw new CliError('the API token must not contain white space');
  return { url, token, urlSource };
}
