#!/usr/bin/env node
/**
 * `buildwire`: the command's front door. Walks the command tree by words
 * (`job store get`), answers `--help` at every level, parses the command's
 * flags, runs it, and is the one place that turns errors into messages and
 * exit codes:
 *
 * - 0 success; 1 an error (refused, unreachable, or a followed job failed);
 *   2 a followed job was cancelled; 64 bad usage (sysexits EX_USAGE).
 *
 * @example
 * buildwire job run --name hello --target local --script 'echo hi' --tail
 */
import { readFileSync } from 'node:fs';
import { adminGroup } from './admin.js';
import { agentGroup } from './agent.js';
import type { Command, Group, Node } from './args.js';
import { CONNECTION_FLAGS, commandHelp, groupHelp, parseArgv } from './args.js';
import { CliError, EXIT_USAGE, UsageError } from './errors.js';
import { outputsGroup } from './job-artifacts.js';
import { jobGroup } from './jobs.js';
import { coordinatorCommand, factoryGroup } from './servers.js';

/** `buildwire up`, written in `up.ts`; loaded only when used (it starts everything). */
const upCommand: Command = {
  kind: 'command', api: false, raw: true, args: [], flags: {}, exitWhenDone: true,
  summary: 'run everything here: coordinator, local factory, web page (store in ./.buildwire)',
  usage: 'up [...]',
  description: "Starts the embedded default. See 'buildwire up --help'.",
  helpText: async () => (await import('./up.js')).UP_HELP,
  run: async (ctx) => (await import('./up.js')).up(ctx.raw),
};

/** The command tree. */
export const ROOT: Group = {
  kind: 'group',
  summary: 'a self-hosted build service',
  description: `buildwire is a self-hosted build service: a coordinator keeps jobs, logs and
credentials; agents dial out to it and run jobs; factories make agents on demand.
'buildwire up' starts all of it on this machine.`,
  children: {
    job: jobGroup,
    outputs: outputsGroup,
    admin: adminGroup,
    agent: agentGroup,
    coordinator: coordinatorCommand,
    factory: factoryGroup,
    up: upCommand,
  },
};

const ROOT_EPILOGUE = `Also:
  buildwire help COMMAND...   the same as COMMAND --help
  buildwire --version         print the version

API commands find the coordinator from --url/--token, else $BUILDWIRE_URL and
$BUILDWIRE_TOKEN, else the cli.json that 'buildwire up' writes in its data
directory (--data DIR, else $BUILDWIRE_DATA, else ./.buildwire). These three
flags may also come before the command.

Exit codes: 0 success; 1 error; 2 a followed job was cancelled (1: it failed);
64 bad usage.
`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function helpOf(path: string[], node: Node): Promise<string> {
  if (node.kind === 'group') return groupHelp(path.join(' '), node) + (path.length === 0 ? `\n${ROOT_EPILOGUE}` : '');
  return node.helpText ? await node.helpText() : commandHelp(node);
}

/** Finds the node named by `words`, or a usage error naming the first unknown word. */
function lookup(words: readonly string[]): { node: Node; path: string[]; rest: string[] } {
  let node: Node = ROOT;
  const path: string[] = [];
  let i = 0;
  while (node.kind === 'group' && i < words.length && !words[i]!.startsWith('-')) {
    const w = words[i]!;
    const child: Node | undefined = Object.hasOwn(node.children, w) ? node.children[w] : undefined;
    if (!child) {
      const where = path.length > 0 ? `'buildwire ${path.join(' ')}'` : 'buildwire';
      throw new UsageError(`unknown command ${JSON.stringify(w)} for ${where} (known: ${Object.keys(node.children).join(', ')})`, path.join(' '));
    }
    node = child;
    path.push(w);
    i++;
  }
  return { node, path, rest: words.slice(i) };
}

/** Splits leading `--url/--token/--data` (allowed before the command) from the rest. */
function leadingConnectionFlags(argv: string[]): { global: string[]; rest: string[] } {
  const global: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const tok = argv[i]!;
    const name = /^--([a-z-]+)(=|$)/.exec(tok)?.[1];
    if (!name || !Object.hasOwn(CONNECTION_FLAGS, name)) break;
    if (tok.includes('=')) {
      global.push(tok);
      i++;
    } else {
      if (argv[i + 1] === undefined) throw new UsageError(`flag --${name} needs a value`, '');
      global.push(tok, argv[i + 1]!);
      i += 2;
    }
  }
  return { global, rest: argv.slice(i) };
}

/**
 * Runs the command line `argv` (without `node` and the script) and resolves
 * with the exit code. Output goes to stdout/stderr.
 */
export async function run(argv: string[]): Promise<{ code: number; exitWhenDone: boolean }> {
  const { global, rest } = leadingConnectionFlags(argv);
  const first = rest[0];
  if (first === '--version' || first === '-V') {
    process.stdout.write(`buildwire ${version()}\n`);
    return { code: 0, exitWhenDone: false };
  }
  if (first === 'help') {
    const { node, path, rest: extra } = lookup(rest.slice(1));
    if (extra.length > 0) throw new UsageError(`'buildwire help' takes command words only, got ${JSON.stringify(extra[0])}`, '');
    process.stdout.write(await helpOf(path, node));
    return { code: 0, exitWhenDone: false };
  }
  const { node, path, rest: args } = lookup(rest);
  const command = path.join(' ');
  const beforeDashes = args.indexOf('--') < 0 ? args : args.slice(0, args.indexOf('--'));
  if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) {
    process.stdout.write(await helpOf(path, node));
    return { code: 0, exitWhenDone: false };
  }
  if (node.kind === 'group') {
    const next = args[0];
    if (next !== undefined) throw new UsageError(`unknown flag ${JSON.stringify(next)} for 'buildwire${command ? ` ${command}` : ''}': a command is expected first`, command);
    process.stderr.write(await helpOf(path, node));
    throw new UsageError(`'buildwire${command ? ` ${command}` : ''}' needs a command (one of: ${Object.keys(node.children).join(', ')})`, command);
  }
  if (global.length > 0 && !node.api && !node.raw) throw new UsageError(`flags ${global.filter((g) => g.startsWith('--')).join(' ')} apply to API commands, not 'buildwire ${command}'`, command);
  const all = [...global, ...args];
  const parsed = node.raw
    ? { args: [], bool: () => false, str: () => undefined, all: () => [] }
    : parseArgv(all, node.api ? { ...node.flags, ...CONNECTION_FLAGS } : node.flags, node.args, command);
  const code = await node.run({ ...parsed, command, raw: all });
  return { code, exitWhenDone: node.exitWhenDone === true };
}

function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`buildwire: ${err.message}\n${err.hint()}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof CliError) {
    process.stderr.write(`buildwire: ${err.message}\n`);
    return err.exitCode;
  }
  // Anything else is a bug in buildwire: show where.
  process.stderr.write(`buildwire: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}

// A reader that goes away (`buildwire job tail ID | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

let exitWhenDone = false;
try {
  const res = await run(process.argv.slice(2));
  exitWhenDone = res.exitWhenDone;
  process.exitCode = res.code;
} catch (err) {
  process.exitCode = report(err);
  exitWhenDone = true;
}
// Servers leave handles (sockets, timers) behind on purpose; everything else ends by itself so piped output is flushed.
if (exitWhenDone) process.exit(process.exitCode);
