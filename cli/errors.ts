/**
 * The CLI's errors. Commands throw these; `main.ts` is the one place that
 * prints them (`buildwire: <message>`) and turns them into exit codes.
 *
 * Exit codes (a stable interface for scripts):
 * - 0: success (for `job tail` / `job run --tail`: the job completed)
 * - 1: an error (the coordinator refused, could not be reached, ...; or the followed job failed)
 * - 2: the followed job was cancelled
 * - 64: bad usage (unknown command or flag, missing or malformed argument), as in sysexits.h
 */

/** Exit code for bad usage (EX_USAGE). */
export const EXIT_USAGE = 64;

/**
 * An error the CLI reports in one line and exits with `exitCode`.
 *
 * @example
 * throw new CliError(`store key ${key} is secret: its value is hidden`);
 */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * Bad usage: the message names the value and the rule it broke; `command`
 * (e.g. `job run`) is used for the hint to its `--help`. Exits 64.
 *
 * @example
 * throw new UsageError(`--env ${JSON.stringify(v)} must be KEY=VALUE`, 'job run');
 */
export class UsageError extends CliError {
  readonly command: string;
  constructor(message: string, command: string) {
    super(message, EXIT_USAGE);
    this.name = 'UsageError';
    this.command = command;
  }

  /** The hint printed after the message. */
  hint(): string {
    return `run 'buildwire ${this.command ? `${this.command} ` : ''}--help' for usage`;
  }
}

/**
 * The coordinator answered with an error body `{code, message}`.
 * Printed as `<message> (<code>, HTTP <status>)`.
 *
 * @example
 * if (err instanceof ApiError && err.status === 404) ...
 */
export class ApiError extends CliError {
  readonly status: number;
  readonly code: string;
  readonly apiMessage: string;
  constructor(status: number, code: string, message: string) {
    super(`${message} (${code}, HTTP ${status})`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.apiMessage = message;
  }
}

/**
 * The coordinator could not be reached (refused, reset, timed out, unknown host).
 * `job tail` retries on these; everything else reports them and exits 1.
 *
 * @example
 * throw new ConnectionError('http://127.0.0.1:7700', 'ECONNREFUSED');
 */
export class ConnectionError extends CliError {
  readonly url: string;
  readonly reason: string;
  constructor(url: string, reason: string) {
    super(`cannot reach the coordinator at ${url} (${reason}); is it running? 'buildwire up' starts one`);
    this.name = 'ConnectionError';
    this.url = url;
    this.reason = reason;
  }
}
