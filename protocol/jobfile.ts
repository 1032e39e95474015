/**
 * Job files: bash scripts whose leading `#:` comment lines hold TOML, read
 * the way buildomat's `JobFile::parse_content_at_path` and its "basic"
 * variety read them.
 *
 * Frontmatter rules, all from buildomat:
 * - The first line must be an interpreter line (`#!...`).
 * - The frontmatter is the run of lines after it that start with `#`; the
 *   first line that does not (a blank line included) ends it. Of those lines,
 *   the ones starting `#:` are TOML; plain `#` comments are skipped.
 * - Every leading `#:` is stripped, and nothing else: `#: name = "x"` becomes
 *   ` name = "x"` (TOML ignores the space; a multi-line string keeps it).
 * - `name` and `variety` are required and `variety` must be `"basic"`;
 *   `target` defaults to `"default"`.
 * - A file with `enable = false` is valid but skipped: its variety settings
 *   are not examined, and a job set leaves it out.
 * - Unknown top-level keys are rejected (buildomat's basic variety uses
 *   serde's `deny_unknown_fields`), with `enabled`, `disable` and `disabled`
 *   named as misspellings of `enable`. Unknown keys inside a dependency are
 *   accepted and ignored, as buildomat carries them without reading them.
 */
import { parse, TomlError } from 'smol-toml';
import { OutputRuleError, parseOutputRule, type OutputRule } from './output-rules.js';

/**
 * One `[[publish]]` entry: after a successful run, the output at
 * `fromOutput` is published as `name` in `series`, versioned by commit.
 *
 * @example
 * const p: PublishEntry = { fromOutput: '/out/tool.gz', series: 'image', name: 'tool.gz' };
 */
export interface PublishEntry {
  readonly fromOutput: string;
  readonly series: string;
  readonly name: string;
}

/**
 * A `[dependencies.NAME]` entry: this job waits for job `job` to complete
 * and receives its outputs under `/input/NAME/`.
 *
 * @example
 * const d: JobDependency = { job: 'build', copyOutputs: true };
 */
export interface JobDependency {
  /** The `name` of the job depended on. */
  readonly job: string;
  /** Always true: buildomat's GitHub integration always copies a dependency's outputs. */
  readonly copyOutputs: boolean;
}

/**
 * A parsed job file. There is no `env` key: buildomat has none and rejects it
 * as unknown.
 *
 * @example
 * const jf: JobFile = parseJobFile(text, 'build.sh');
 * jf.name; jf.target; jf.outputRules.map((r) => r.pattern);
 */
export interface JobFile {
  /** The file name given to {@link parseJobFile}, used in error messages. */
  readonly fileName?: string;
  readonly name: string;
  /** Always `"basic"`, the only variety buildomat has. */
  readonly variety: 'basic';
  /** The target (worker image) name; `"default"` when the file gives none. */
  readonly target: string;
  /** A toolchain name such as `"stable"`, or `true` to use the repository's rust-toolchain.toml. */
  readonly rustToolchain?: string | boolean;
  readonly outputRules: readonly OutputRule[];
  /** Run in `/work` without cloning the repository (for jobs that only use dependency outputs). */
  readonly skipClone: boolean;
  /** Further GitHub repositories (`owner/name`) the job's token may read. */
  readonly accessRepos: readonly string[];
  readonly publish: readonly PublishEntry[];
  /** Keyed by dependency name, the directory under `/input/`. */
  readonly dependencies: Readonly<Record<string, JobDependency>>;
  /** False when the file says `enable = false`; such a file is not part of a job set. */
  readonly enable: boolean;
  /** The whole file text, frontmatter included. */
  readonly script: string;
  /**
   * Environment for the job's task: buildwire's one addition to buildomat's
   * frontmatter (an `[env]` table of strings). buildomat files never have it.
   */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * A rejected job file or job set. The message names the file, the offending
 * value and the rule it broke.
 *
 * @example
 * try { parseJobFile(text, 'build.sh'); } catch (e) {
 *   if (e instanceof JobFileError) console.log(e.code, e.field, e.message);
 *   // BAD_JOB_FILE output_rules[2] job file "build.sh": output_rules[2] "foo" must start with "/"
 * }
 */
export class JobFileError extends Error {
  readonly code = 'BAD_JOB_FILE' as const;
  /** The frontmatter key at fault, e.g. `output_rules[2]` or `dependencies.build.job`. */
  readonly field?: string;
  readonly fileName?: string;
  constructor(fileName: string | undefined, detail: string, field?: string) {
    super(`${fileName === undefined ? 'job file' : `job file ${JSON.stringify(fileName)}`}: ${detail}`);
    this.name = 'JobFileError';
    if (field !== undefined) this.field = field;
    if (fileName !== undefined) this.fileName = fileName;
  }
}

const GLOBAL_KEYS = ['name', 'variety', 'enable', 'dependencies'];
const BASIC_KEYS = ['output_rules', 'rust_toolchain', 'target', 'access_repos', 'publish', 'skip_clone', 'env'];
const PUBLISH_KEYS = ['from_output', 'series', 'name'];
const ENABLE_MISSPELLINGS = ['enabled', 'disable', 'disabled'];

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (typeof v === 'bigint') return `number ${v.toString()}`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return `date-time ${v.toISOString()}`;
  return 'a table';
}

/** Rust's `str::lines`: split on "\n", drop a "\r" before it, no empty last line. */
function rustLines(text: string): string[] {
  if (text === '') return [];
  const parts = text.split('\n');
  if (parts.at(-1) === '') parts.pop();
  return parts.map((l, i) => (i < parts.length - 1 || text.endsWith('\n')) && l.endsWith('\r') ? l.slice(0, -1) : l);
}

/** Lifts the TOML out of the file; `lineNumbers[i]` is the file line of TOML line i + 1. */
function extractFrontmatter(text: string, fail: (d: string, f?: string) => JobFileError) {
  const lines = rustLines(text);
  if (lines.length > 0 && !lines[0]!.startsWith('#!')) {
    throw fail(`the first line must be an interpreter line starting with "#!", not ${JSON.stringify(lines[0])}`);
  }
  const toml: string[] = [];
  const lineNumbers: number[] = [];
  for (let i = 1; i < lines.length && lines[i]!.startsWith('#'); i++) {
    let line = lines[i]!;
    if (!line.startsWith('#:')) continue;
    while (line.startsWith('#:')) line = line.slice(2);
    toml.push(line);
    lineNumbers.push(i + 1);
  }
  return { toml: toml.join('\n'), lineNumbers };
}

/**
 * Parses a job file the way buildomat does (see the module comment for the
 * rules) and checks every setting's type and value.
 *
 * @param text The whole file.
 * @param fileName Used in error messages, e.g. `"build.sh"`.
 * @throws JobFileError naming the file, the key and what is wrong.
 * @example
 * const jf = parseJobFile([
 *   '#!/bin/bash',
 *   '#: name = "build"',
 *   '#: variety = "basic"',
 *   '#: target = "helios-2.0"',
 *   '#: output_rules = ["=/work/out/*.tar.gz"]',
 *   '',
 *   'make',
 * ].join('\n'), 'build.sh');
 * jf.outputRules[0]?.mustMatch; // true
 */
export function parseJobFile(text: string, fileName?: string): JobFile {
  const fail = (detail: string, field?: string): JobFileError => new JobFileError(fileName, detail, field);
  const { toml, lineNumbers } = extractFrontmatter(text, fail);

  let doc: Table;
  try {
    doc = parse(toml) as Table;
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    const fileLine = lineNumbers[e.line - 1];
    const what = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    throw fail(`TOML front matter is invalid${fileLine === undefined ? '' : ` at line ${fileLine}`}: ${what}`);
  }

  const str = (key: string, v: unknown): string => {
    if (typeof v !== 'string') throw fail(`${key} must be a string, not ${describe(v)}`, key);
    return v;
  };
  const bool = (key: string, v: unknown): boolean => {
    if (typeof v !== 'boolean') throw fail(`${key} must be a boolean, not ${describe(v)}`, key);
    return v;
  };
  const stringArray = (key: string, v: unknown): string[] => {
    if (!Array.isArray(v)) throw fail(`${key} must be an array of strings, not ${describe(v)}`, key);
    return v.map((item, i) => str(`${key}[${i}]`, item));
  };

  for (const key of ['name', 'variety']) {
    if (doc[key] === undefined) throw fail(`missing required key "${key}"`, key);
  }
  const name = str('name', doc.name);
  if (name === '') throw fail('name must not be empty', 'name');
  const variety = str('variety', doc.variety);
  if (variety !== 'basic') throw fail(`variety ${JSON.stringify(variety)} is not supported; use "basic"`, 'variety');
  const enable = doc.enable === undefined ? true : bool('enable', doc.enable);
  const dependencies = parseDependencies(doc.dependencies, fail);

  const base = { ...(fileName === undefined ? {} : { fileName }), name, variety: 'basic' as const, dependencies, enable, script: text, env: {} as Record<string, string> };
  if (!enable) {
    return { ...base, target: 'default', outputRules: [], skipClone: false, accessRepos: [], publish: [] };
  }

  for (const key of Object.keys(doc)) {
    if (ENABLE_MISSPELLINGS.includes(key)) throw fail(`unknown key "${key}"; use "enable" to disable a job`, key);
    if (!GLOBAL_KEYS.includes(key) && !BASIC_KEYS.includes(key)) {
      throw fail(`unknown key "${key}"; expected one of ${[...GLOBAL_KEYS, ...BASIC_KEYS].join(', ')}`, key);
    }
  }

  const outputRules = doc.output_rules === undefined ? [] : stringArray('output_rules', doc.output_rules).map((r, i) => {
    try {
      return parseOutputRule(r);
    } catch (e) {
      if (!(e instanceof OutputRuleError)) throw e;
      throw fail(`output_rules[${i}] ${JSON.stringify(r)} ${e.reason}`, `output_rules[${i}]`);
    }
  });

  const rt = doc.rust_toolchain;
  if (rt !== undefined && typeof rt !== 'string' && typeof rt !== 'boolean') {
    throw fail(`rust_toolchain must be a string or a boolean, not ${describe(rt)}`, 'rust_toolchain');
  }

  const target = doc.target === undefined ? 'default' : str('target', doc.target);
  if (target === '') throw fail('target must not be empty; leave it out to use "default"', 'target');

  const accessRepos = doc.access_repos === undefined ? [] : stringArray('access_repos', doc.access_repos);
  accessRepos.forEach((repo, i) => {
    if (!/^[^/\s]+\/[^/\s]+$/.test(repo)) {
      throw fail(`access_repos[${i}] ${JSON.stringify(repo)} must name a GitHub repository as "owner/name"`, `access_repos[${i}]`);
    }
  });

  return {
    ...base,
    target,
    ...(rt === undefined ? {} : { rustToolchain: rt }),
    outputRules,
    skipClone: doc.skip_clone === undefined ? false : bool('skip_clone', doc.skip_clone),
    accessRepos,
    publish: parsePublish(doc.publish, fail),
    env: parseEnv(doc.env, fail),
  };
}

function parseEnv(v: unknown, fail: (d: string, f?: string) => JobFileError): Record<string, string> {
  if (v === undefined) return {};
  if (!isTable(v)) throw fail(`env must be a table of strings, not ${describe(v)}`, 'env');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw fail(`env key ${JSON.stringify(k)} must be a variable name ([A-Za-z_][A-Za-z0-9_]*)`, `env.${k}`);
    if (typeof val !== 'string') throw fail(`env.${k} must be a string, not ${describe(val)}`, `env.${k}`);
    out[k] = val;
  }
  return out;
}

function parseDependencies(v: unknown, fail: (d: string, f?: string) => JobFileError): Record<string, JobDependency> {
  if (v === undefined) return {};
  if (!isTable(v)) throw fail(`dependencies must be a table, not ${describe(v)}`, 'dependencies');
  return Object.fromEntries(
    Object.entries(v).map(([depName, dep]) => {
      const key = `dependencies.${depName}`;
      if (!isTable(dep)) throw fail(`${key} must be a table, not ${describe(dep)}`, key);
      if (dep.job === undefined) throw fail(`${key} is missing required key "job"`, `${key}.job`);
      if (typeof dep.job !== 'string') throw fail(`${key}.job must be a string, not ${describe(dep.job)}`, `${key}.job`);
      if (dep.job === '') throw fail(`${key}.job must not be empty`, `${key}.job`);
      return [depName, { job: dep.job, copyOutputs: true }];
    }),
  );
}

function parsePublish(v: unknown, fail: (d: string, f?: string) => JobFileError): PublishEntry[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw fail(`publish must be an array of tables ([[publish]]), not ${describe(v)}`, 'publish');
  return v.map((entry: unknown, i) => {
    const key = `publish[${i}]`;
    if (!isTable(entry)) throw fail(`${key} must be a table, not ${describe(entry)}`, key);
    for (const k of Object.keys(entry)) {
      if (!PUBLISH_KEYS.includes(k)) {
        throw fail(`${key} has unknown key "${k}"; expected ${PUBLISH_KEYS.join(', ')}`, `${key}.${k}`);
      }
    }
    const field = (k: string): string => {
      const value = entry[k];
      if (value === undefined) throw fail(`${key} is missing required key "${k}"`, `${key}.${k}`);
      if (typeof value !== 'string') throw fail(`${key}.${k} must be a string, not ${describe(value)}`, `${key}.${k}`);
      return value;
    };
    return { fromOutput: field('from_output'), series: field('series'), name: field('name') };
  });
}

/**
 * Checks that job files form a coherent set, as buildomat's `JobFileSet`
 * does for one commit: file names end in `.sh` (when known), job names are
 * unique, every dependency names a job in the set, and dependencies have no
 * cycle. Disabled files (`enable = false`) are left out first, so depending
 * on one is an error.
 *
 * @throws JobFileError naming the file at fault.
 * @example
 * validateJobSet([parseJobFile(buildText, 'build.sh'), parseJobFile(testText, 'test.sh')]);
 */
export function validateJobSet(files: readonly JobFile[]): void {
  const fail = (jf: JobFile, detail: string, field?: string): JobFileError =>
    new JobFileError(jf.fileName, detail, field);
  const active = files.filter((jf) => jf.enable);
  const byName = new Map<string, JobFile>();
  for (const jf of active) {
    if (jf.fileName !== undefined && !jf.fileName.endsWith('.sh')) {
      throw fail(jf, 'job file names must end in ".sh"');
    }
    const other = byName.get(jf.name);
    if (other !== undefined) {
      const where = other.fileName === undefined ? 'another file' : JSON.stringify(other.fileName);
      throw fail(jf, `job name ${JSON.stringify(jf.name)} is also used by ${where}`, 'name');
    }
    byName.set(jf.name, jf);
  }

  for (const jf of active) {
    for (const [depName, dep] of Object.entries(jf.dependencies)) {
      if (byName.has(dep.job)) continue;
      const disabled = files.some((f) => !f.enable && f.name === dep.job);
      throw fail(
        jf,
        `dependencies.${depName}.job ${JSON.stringify(dep.job)} names no job in the set` +
          (disabled ? ' (that job has enable = false)' : ''),
        `dependencies.${depName}.job`,
      );
    }
  }

  // Depth-first search; a job met again while still on the stack closes a cycle.
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    const at = stack.indexOf(name);
    if (at >= 0) {
      const cycle = [...stack.slice(at), name].map((n) => JSON.stringify(n)).join(' -> ');
      throw fail(byName.get(name)!, `dependencies form a cycle: ${cycle}`, 'dependencies');
    }
    if (done.has(name)) return;
    stack.push(name);
    for (const dep of Object.values(byName.get(name)!.dependencies)) visit(dep.job);
    stack.pop();
    done.add(name);
  };
  for (const jf of active) visit(jf.name);
}
