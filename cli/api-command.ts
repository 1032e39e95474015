/**
 * Helpers shared by the commands that talk to the coordinator's API.
 */
import type { CommandContext } from './args.js';
import { ApiClient } from './client.js';
import { resolveConnection } from './config.js';
import { UsageError } from './errors.js';
import { jsonText, out } from './format.js';

/** The API client for a command, from its --url/--token/--data flags, the environment, or cli.json. */
export function clientFor(ctx: CommandContext): ApiClient {
  try {
    return new ApiClient(resolveConnection({ url: ctx.str('url'), token: ctx.str('token'), data: ctx.str('data') }));
  } catch (err) {
    // resolveConnection does not know which command it serves; give its usage errors the right hint.
    if (err instanceof UsageError) throw new UsageError(err.message, ctx.command);
    throw err;
  }
}

/** A path segment made from user input (a name or id), percent-encoded. */
export function seg(s: string): string {
  return encodeURIComponent(s);
}

/** The `--json` flag, shared by every command that prints a response. */
export const JSON_FLAG = { json: { kind: 'boolean', help: "print the API's JSON response instead of text" } } as const;

/**
 * Prints `value` as JSON when `--json` was given, else the text `human()` makes.
 *
 * @example
 * await show(ctx, res, () => table(['NAME'], res.users.map((u) => [u.name])));
 */
export async function show(ctx: CommandContext, value: unknown, human: () => string): Promise<number> {
  await out(ctx.bool('json') ? jsonText(value) : human());
  return 0;
}

/** Reads all of stdin as text (for `-` arguments). */
export async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}
