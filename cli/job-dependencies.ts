/**
 * `job run --depends NAME=JOBID[,copy][,on-failed][,no-on-completed]`: the
 * `dependencies` map of a job submission (docs/artifacts.md, "Dependencies").
 * A job file names the jobs it depends on by job name; `--depends` maps each
 * of those names to the id of an existing job, and every one must be mapped.
 */
import type { JobDependency } from '../protocol/jobfile.js';
import { isUlid } from '../protocol/ids.js';
import { UsageError } from './errors.js';
import { INPUT_NAME_RULE, inputNameProblem } from './job-inputs.js';

/** One entry of the `dependencies` map of `POST /api/v1/jobs`. */
export interface DependencyJson {
  job: string;
  copyOutputs: boolean;
  onCompleted: boolean;
  onFailed: boolean;
}

/** The syntax, for messages and help. */
export const DEPENDS_SYNTAX = 'NAME=JOBID[,copy][,on-failed][,no-on-completed]';

// Each option sets one field; the "no-" forms exist so a job file's default (copy) can be turned off too.
const OPTIONS: Record<string, [keyof Omit<DependencyJson, 'job'>, boolean]> = {
  copy: ['copyOutputs', true],
  'no-copy': ['copyOutputs', false],
  'on-completed': ['onCompleted', true],
  'no-on-completed': ['onCompleted', false],
  'on-failed': ['onFailed', true],
  'no-on-failed': ['onFailed', false],
};

/** A job file's declared dependencies and its name, for the "not mapped" message. */
export interface DeclaredDependencies {
  fileName: string;
  dependencies: Readonly<Record<string, JobDependency>>;
}

/**
 * Builds the `dependencies` map from every `--depends` value. Defaults:
 * `onCompleted` true, `onFailed` false, `copyOutputs` true for a dependency
 * the job file declares (as buildomat always copies those) and false
 * otherwise. Every dependency `declared` by the job file must be given.
 * Throws a UsageError naming the value and the rule.
 *
 * @example
 * parseDepends(['build=01J9Z3Q8W4M6T0Y2R5N7P9B1C3,copy'], null, 'job run')
 * // { build: { job: '01J9Z3Q8W4M6T0Y2R5N7P9B1C3', copyOutputs: true, onCompleted: true, onFailed: false } }
 */
export function parseDepends(raws: readonly string[], declared: DeclaredDependencies | null, command: string): Record<string, DependencyJson> {
  const out: Record<string, DependencyJson> = {};
  for (const raw of raws) {
    const eq = raw.indexOf('=');
    if (eq < 0) throw new UsageError(`--depends ${JSON.stringify(raw)} must be ${DEPENDS_SYNTAX}`, command);
    const name = raw.slice(0, eq);
    const problem = inputNameProblem(name);
    if (problem) throw new UsageError(`--depends ${JSON.stringify(raw)}: the dependency name ${JSON.stringify(name)} ${problem} (${INPUT_NAME_RULE})`, command);
    if (Object.hasOwn(out, name)) throw new UsageError(`--depends ${JSON.stringify(name)} is given twice: each dependency needs a name of its own`, command);
    const [job = '', ...opts] = raw.slice(eq + 1).split(',');
    if (!isUlid(job)) throw new UsageError(`--depends ${JSON.stringify(raw)}: ${JSON.stringify(job)} is not a job id (a 26-character ULID, as 'buildwire job run' prints)`, command);
    const dep: DependencyJson = { job, copyOutputs: declared !== null && Object.hasOwn(declared.dependencies, name), onCompleted: true, onFailed: false };
    const set = new Map<string, string>();
    for (const opt of opts) {
      const o = Object.hasOwn(OPTIONS, opt) ? OPTIONS[opt] : undefined;
      if (!o) throw new UsageError(`--depends ${JSON.stringify(raw)}: unknown option ${JSON.stringify(opt)} (known: ${Object.keys(OPTIONS).join(', ')})`, command);
      const [field, value] = o;
      const earlier = set.get(field);
      if (earlier !== undefined && earlier !== opt) throw new UsageError(`--depends ${JSON.stringify(raw)}: options ${earlier} and ${opt} contradict each other`, command);
      set.set(field, opt);
      dep[field] = value;
    }
    out[name] = dep;
  }
  if (declared !== null) {
    const missing = Object.entries(declared.dependencies).filter(([name]) => !Object.hasOwn(out, name));
    if (missing.length > 0) {
      const list = missing.map(([name, d]) => `"${name}" (on job ${JSON.stringify(d.job)})`).join(', ');
      const first = missing[0]![0];
      throw new UsageError(
        `job file ${JSON.stringify(declared.fileName)} declares ${missing.length === 1 ? 'dependency' : 'dependencies'} ${list} that --depends does not map to a job id; give --depends ${first}=JOBID${missing.length === 1 ? '' : ' for each'}`,
        command,
      );
    }
  }
  return out;
}
