/**
 * Argument parsing and the command tree. Each command declares its flags
 * (with their help text) and positional arguments; the parser rejects
 * anything else with a {@link UsageError} that names the value and the rule,
 * and `--help` text is generated from the same declarations, so no flag is
 * undocumented.
 */
import { UsageError } from './errors.js';

/** One flag: a switch, a value, or a value that may be repeated. */
export interface FlagDef {
  kind: 'boolean' | 'string' | 'multiple';
  /** Shown in help: `--name NAME`. */
  value?: string;
  /** A one-letter alias written `-x` (e.g. `-i` for `--input`), for flags typed often. */
  short?: string;
  help: string;
}

/** A command's flags by name (without the leading `--`). */
export type FlagSpec = Record<string, FlagDef>;

/** Parsed flags and positional arguments of one command. */
export interface Parsed {
  /** The positional arguments, in order. */
  readonly args: string[];
  /** Whether a boolean flag was given. */
  bool(name: string): boolean;
  /** A string flag's value, if given. */
  str(name: string): string | undefined;
  /** Every value of a repeated flag, in order. */
  all(name: string): string[];
}

/** What a command's `run` receives. */
export interface CommandContext extends Parsed {
  /** The command's words, e.g. `job run` (for messages). */
  readonly command: string;
  /** The raw arguments after the command words (for `up`, which parses its own). */
  readonly raw: string[];
}

/** A runnable command. */
export interface Command {
  kind: 'command';
  /** One line for the parent's list. */
  summary: string;
  /** After `buildwire `, e.g. `job show ID [--json]`. */
  usage: string;
  /** Paragraphs after the usage line. */
  description: string;
  flags: FlagSpec;
  /** Positional names; a trailing `?` marks optional, `...` a rest argument. */
  args: readonly string[];
  /** Whether it talks to the coordinator's API (adds --url, --token, --data). */
  api: boolean;
  /** Text after the flags: exit codes, examples. */
  epilogue?: string;
  /** Parses its own arguments (`up`): flags are not checked here. */
  raw?: boolean;
  /** A long-running command (a server): the process exits when `run` resolves, whatever handles remain. */
  exitWhenDone?: boolean;
  /** Help produced elsewhere (`up`): replaces the generated text. */
  helpText?: () => Promise<string>;
  run(ctx: CommandContext): Promise<number>;
}

/** A command with subcommands. */
export interface Group {
  kind: 'group';
  summary: string;
  description?: string;
  children: Record<string, Node>;
}

/** A node of the command tree. */
export type Node = Command | Group;

/** The flags every API command accepts. */
export const CONNECTION_FLAGS: FlagSpec = {
  url: { kind: 'string', value: 'URL', help: 'coordinator base URL, e.g. http://127.0.0.1:7700 (else $BUILDWIRE_URL, else <data>/cli.json)' },
  token: { kind: 'string', value: 'TOKEN', help: 'API token (else $BUILDWIRE_TOKEN, else the token file named in <data>/cli.json); prefer those: a flag shows in ps' },
  data: { kind: 'string', value: 'DIR', help: "data directory of 'buildwire up', holding cli.json (else $BUILDWIRE_DATA, else ./.buildwire)" },
};

/**
 * Parses `argv` against `spec`. Accepts `--flag value`, `--flag=value`,
 * `--` (everything after is positional) and `-` (a positional meaning stdin).
 *
 * @example
 * const p = parseArgv(['ID', '--json'], { json: { kind: 'boolean', help: '' } }, ['ID'], 'job show');
 * p.args[0]; p.bool('json');
 */
export function parseArgv(argv: readonly string[], spec: FlagSpec, argNames: readonly string[], command: string): Parsed {
  const values = new Map<string, string[]>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith('-') || tok === '-') {
      args.push(tok);
      continue;
    }
    let name: string;
    let eq: number;
    if (tok.startsWith('--')) {
      eq = tok.indexOf('=');
      name = tok.slice(2, eq < 0 ? undefined : eq);
    } else {
      // Only a declared one-letter alias, alone (`-i VALUE`): bundles like `-xv` and `-iVALUE` are refused rather than guessed at.
      const alias = Object.entries(spec).find(([, d]) => d.short !== undefined && `-${d.short}` === tok);
      if (!alias) throw new UsageError(`unknown flag ${JSON.stringify(tok)}: flags are written --name${shorts(spec)} (known: ${known(spec)})`, command);
      name = alias[0];
      eq = -1;
    }
    const def = spec[name];
    if (!def) throw new UsageError(`unknown flag --${name} for 'buildwire ${command}' (known: ${known(spec)})`, command);
    let value: string;
    if (def.kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`flag --${name} takes no value, got ${JSON.stringify(tok.slice(eq + 1))}`, command);
      value = '';
    } else if (eq >= 0) {
      value = tok.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag --${name} needs a value (${def.value ?? 'VALUE'})`, command);
      // `--name --target x` is far more often a forgotten value than a name starting with "--".
      if (next.startsWith('--') && next.length > 2) {
        throw new UsageError(`flag --${name} needs a value (${def.value ?? 'VALUE'}), got the flag ${next}; write --${name}=${next} if that is the value`, command);
      }
      value = next;
      i++;
    }
    const list = values.get(name) ?? [];
    if (list.length > 0 && def.kind !== 'multiple') throw new UsageError(`flag --${name} may be given only once`, command);
    list.push(value);
    values.set(name, list);
  }
  checkPositionals(args, argNames, command);
  return {
    args,
    bool: (n) => values.has(n),
    str: (n) => values.get(n)?.[0],
    all: (n) => values.get(n) ?? [],
  };
}

function shorts(spec: FlagSpec): string {
  const list = Object.values(spec).filter((d) => d.short !== undefined).map((d) => `-${d.short}`);
  return list.length > 0 ? ` or ${list.join(', ')}` : '';
}

function known(spec: FlagSpec): string {
  const names = Object.keys(spec).map((n) => `--${n}`);
  return names.length > 0 ? names.join(', ') : 'none';
}

function checkPositionals(args: string[], names: readonly string[], command: string): void {
  const required = names.filter((n) => !n.endsWith('?') && !n.endsWith('...'));
  const rest = names.some((n) => n.endsWith('...'));
  if (args.length < required.length) {
    const missing = required.slice(args.length);
    throw new UsageError(`'buildwire ${command}' needs ${missing.join(' ')}${missing.length === 1 ? '' : ' (in that order)'}`, command);
  }
  if (!rest && args.length > names.length) {
    const extra = args[names.length]!;
    throw new UsageError(`unexpected argument ${JSON.stringify(extra)}: 'buildwire ${command}' takes ${names.length === 0 ? 'no arguments' : names.join(' ')}`, command);
  }
}

/**
 * Parses `KEY=VALUE` (for `--env` and `--tag`), or a usage error naming the value.
 *
 * @example
 * parseKeyValue('CI=1', '--env', 'job run') // ['CI', '1']
 */
export function parseKeyValue(raw: string, flag: string, command: string): [string, string] {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new UsageError(`${flag} ${JSON.stringify(raw)} must be KEY=VALUE with a non-empty KEY`, command);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}

/**
 * Parses a positive whole number flag value, or a usage error naming it.
 *
 * @example
 * parsePositiveInt('600', '--max-runtime', 'job run') // 600
 */
export function parsePositiveInt(raw: string, flag: string, command: string): number {
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} ${JSON.stringify(raw)} must be a positive whole number`, command);
  return n;
}

/** Help text for a command, generated from its declarations. */
export function commandHelp(cmd: Command): string {
  const lines = [`Usage: buildwire ${cmd.usage}`, '', cmd.description.trim(), ''];
  const section = (title: string, spec: FlagSpec) => {
    const rows = Object.entries(spec).map(([n, d]) => [`${d.short !== undefined ? `-${d.short}, ` : ''}--${n}${d.value ? ` ${d.value}` : ''}${d.kind === 'multiple' ? ' (repeatable)' : ''}`, d.help] as const);
    if (rows.length === 0) return;
    const w = Math.max(...rows.map(([l]) => l.length));
    lines.push(`${title}:`, ...rows.map(([l, h]) => `  ${l.padEnd(w)}  ${h}`), '');
  };
  section('Flags', { ...cmd.flags, help: { kind: 'boolean', help: 'show this help' } });
  if (cmd.api) section('Coordinator', CONNECTION_FLAGS);
  if (cmd.epilogue) lines.push(cmd.epilogue.trim(), '');
  return lines.join('\n');
}

/** Help text for a group: its subcommands and their summaries. */
export function groupHelp(path: string, g: Group): string {
  const entries = Object.entries(g.children);
  const w = Math.max(...entries.map(([n]) => n.length));
  const lines = [`Usage: buildwire ${path ? `${path} ` : ''}COMMAND ...`, ''];
  if (g.description) lines.push(g.description.trim(), '');
  lines.push('Commands:', ...entries.map(([n, c]) => `  ${n.padEnd(w)}  ${c.summary}`), '');
  lines.push(`Run 'buildwire ${path ? `${path} ` : ''}COMMAND --help' for a command's flags.`, '');
  return lines.join('\n');
}
