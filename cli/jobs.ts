/**
 * `buildwire job ...`: submit, follow, list, show and cancel jobs, use a
 * job's key/value store, and (from `job-artifacts.ts`) its outputs.
 */
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { JobFileError, parseJobFile } from '../protocol/jobfile.js';
import type { Command, CommandContext, Group } from './args.js';
import { parseKeyValue, parsePositiveInt } from './args.js';
import { JSON_FLAG, clientFor, seg, show } from './api-command.js';
import type { ApiClient } from './client.js';
import { CliError, UsageError } from './errors.js';
import { ago, duration, err, fields, isoTime, jsonText, kv, out, table } from './format.js';
import { jobArtifactCommands } from './job-artifacts.js';
import { DEPENDS_SYNTAX, parseDepends, type DeclaredDependencies, type DependencyJson } from './job-dependencies.js';
import { INPUT_NAME_RULE, hashInput, parseInputs, uploadInput, type HashedInput } from './job-inputs.js';
import { jobStoreGroup } from './job-store.js';
import { tailJob } from './tail.js';

/** A job as the API returns it (see coordinator/api/jobs.ts `jobJson`). */
export interface JobJson {
  id: string;
  name: string;
  owner: string;
  target: string;
  runTarget: string;
  state: string;
  worker: string | null;
  tags: Record<string, string>;
  outputRules: string[];
  buildomat: boolean;
  maxRuntimeMs: number;
  tasks: { name: string; script: string; env: Record<string, string>; envClear: boolean; workdir: string | null }[];
  submittedAt: number;
  assignedAt: number | null;
  endedAt: number | null;
  reason: string | null;
  cancelRequested: boolean;
  lastEvent: number;
}

const STATES = ['queued', 'waiting', 'running', 'completed', 'failed', 'cancelled'];

const TAIL_EXIT_CODES = `Exit codes:
  0   the job completed
  1   the job failed (or the command itself failed: refused, unreachable for 60 s, ...)
  2   the job was cancelled
  64  bad usage`;

const TAIL_OUTPUT = `Output: the job's stdout lines go to stdout and its stderr lines to stderr, byte
for byte. Task, job, worker and coordinator messages go to stderr, prefixed "| ",
e.g. "| task 0 (default) started", "| task 0 exited 0", "| job completed: ...".
If the coordinator restarts meanwhile, the tail retries with backoff for up to
60 s and carries on from the last event printed: no line is printed twice.`;

/** Builds the POST /api/v1/jobs body from `job run`'s flags. Exported for tests. */
export function jobRequest(ctx: CommandContext, readText: (path: string) => string = (p) => readFileSync(p, 'utf8')): Record<string, unknown> {
  const cmd = ctx.command;
  const script = ctx.str('script');
  const file = ctx.str('file');
  if (script !== undefined && file !== undefined) throw new UsageError('give either --script or --file, not both', cmd);
  if (script === undefined && file === undefined) throw new UsageError("'buildwire job run' needs --script TEXT or --file PATH", cmd);
  const env: Record<string, string> = {};
  for (const raw of ctx.all('env')) {
    const [k, v] = parseKeyValue(raw, '--env', cmd);
    env[k] = v;
  }
  const tags: Record<string, string> = {};
  for (const raw of ctx.all('tag')) {
    const [k, v] = parseKeyValue(raw, '--tag', cmd);
    tags[k] = v;
  }
  const maxRaw = ctx.str('max-runtime');
  const common: Record<string, unknown> = { env, tags };
  // A job file brings its own output_rules; --output-rule is for --script jobs.
  const outputRules = ctx.all('output-rule');
  if (maxRaw !== undefined) common.maxRuntimeSeconds = parsePositiveInt(maxRaw, '--max-runtime', cmd);
  const name = ctx.str('name');
  const target = ctx.str('target');

  let text = script;
  if (file !== undefined) {
    try {
      text = readText(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new UsageError(`--file ${JSON.stringify(file)} must be a readable file (${code} at ${resolve(file)})`, cmd);
    }
    // A "#:" line marks a buildomat-style job file: the coordinator parses its frontmatter.
    if (/^#:/m.test(text)) {
      if (outputRules.length > 0) throw new UsageError('--output-rule is for --script jobs; a job file gives its own output_rules', cmd);
      const jobFileName = file === '-' ? 'stdin' : basename(file);
      const dependencies = dependenciesOf(ctx, { fileName: jobFileName, dependencies: declaredDependencies(text, jobFileName) });
      return { ...common, ...dependencies, jobFile: text, jobFileName, ...(name !== undefined ? { name } : {}), ...(target !== undefined ? { target } : {}) };
    }
  }
  if (name === undefined) throw new UsageError("'buildwire job run' needs --name NAME (only a job file with #: frontmatter may leave it out)", cmd);
  if (target === undefined) throw new UsageError("'buildwire job run' needs --target T (only a job file with #: frontmatter may leave it out)", cmd);
  if (!text) throw new UsageError(`the script ${file !== undefined ? `in --file ${JSON.stringify(file)} ` : 'of --script '}must not be empty`, cmd);
  return {
    ...common, ...dependenciesOf(ctx, null), name, target, tasks: [{ name: 'default', script: text, env: {}, envClear: false }],
    ...(outputRules.length > 0 ? { outputRules } : {}),
  };
}

/**
 * The job file's `[dependencies.NAME]` entries. A file the parser refuses
 * declares none here: the coordinator refuses it too, with the full reason
 * (BAD_JOB_FILE), which is better than a second opinion from the CLI.
 */
function declaredDependencies(text: string, fileName: string): DeclaredDependencies['dependencies'] {
  try {
    return parseJobFile(text, fileName).dependencies;
  } catch (e) {
    if (e instanceof JobFileError) return {};
    throw e;
  }
}

/** `{dependencies}` from --depends (and the job file's declarations), or nothing when there are none. */
function dependenciesOf(ctx: CommandContext, declared: DeclaredDependencies | null): { dependencies?: Record<string, DependencyJson> } {
  const deps = parseDepends(ctx.all('depends'), declared, ctx.command);
  return Object.keys(deps).length > 0 ? { dependencies: deps } : {};
}

/**
 * Uploads every input of a just-submitted job. When one cannot be uploaded
 * the job is cancelled: it would otherwise wait for that input forever.
 */
async function uploadInputs(api: ApiClient, id: string, inputs: readonly HashedInput[]): Promise<void> {
  for (const input of inputs) {
    try {
      await uploadInput(api, id, input);
    } catch (e) {
      const cancelled = await api.post(`/api/v1/jobs/${seg(id)}/cancel`).then(() => true, () => false);
      const what = cancelled ? `job ${id} was cancelled, as it would wait for the input forever` : `job ${id} still waits for it; 'buildwire job cancel ${id}' ends it`;
      throw new CliError(`${(e as Error).message}; ${what}`);
    }
  }
}

function jobTable(jobs: JobJson[]): string {
  if (jobs.length === 0) return 'no jobs\n';
  const now = Date.now();
  return table(
    ['ID', 'NAME', 'TARGET', 'STATE', 'SUBMITTED', 'DURATION'],
    jobs.map((j) => [
      j.id, j.name, j.runTarget === j.target ? j.target : `${j.target}->${j.runTarget}`, j.state + (j.cancelRequested && j.endedAt === null ? ' (cancelling)' : ''),
      ago(j.submittedAt, now), j.assignedAt !== null ? duration((j.endedAt ?? now) - j.assignedAt) : '-',
    ]),
  );
}

function jobDetails(j: JobJson): string {
  const now = Date.now();
  const head = fields([
    ['id', j.id], ['name', j.name], ['state', j.state + (j.cancelRequested && j.endedAt === null ? ' (cancel requested)' : '')],
    ['target', j.runTarget === j.target ? j.target : `${j.target} (redirected to ${j.runTarget})`],
    ['owner', j.owner], ['worker', j.worker ?? '-'], ['submitted', `${isoTime(j.submittedAt)} (${ago(j.submittedAt, now)})`],
    ['assigned', isoTime(j.assignedAt)], ['ended', isoTime(j.endedAt)],
    ['ran for', j.assignedAt !== null ? duration((j.endedAt ?? now) - j.assignedAt) : undefined],
    ['reason', j.reason ?? undefined], ['max runtime', duration(j.maxRuntimeMs)], ['tags', kv(j.tags)],
    ['job file', j.buildomat ? 'yes (buildomat-style)' : undefined],
    ['output rules', j.outputRules.length > 0 ? j.outputRules.join(' ') : undefined], ['events', String(j.lastEvent)],
  ]);
  const tasks = j.tasks.map((t, i) => {
    const env = Object.keys(t.env).length > 0 ? `  env: ${kv(t.env)}${t.envClear ? ' (cleared first)' : ''}\n` : '';
    const script = t.script.replace(/\n$/, '').split('\n').map((l) => `    ${l}`).join('\n');
    return `task ${i} (${t.name})${t.workdir ? ` in ${t.workdir}` : ''}:\n${env}${script}\n`;
  });
  return `${head}\n${tasks.join('\n')}`;
}

const run: Command = {
  kind: 'command', api: true, args: [],
  summary: 'submit a job (and optionally follow it)',
  usage: 'job run --name NAME --target T (--script TEXT | --file PATH) [-i NAME=FILE]... [--depends NAME=JOBID[,OPTS]]... [--env K=V]... [--tag K=V]... [--output-rule RULE]... [--max-runtime SECONDS] [--tail] [--timestamps] [--json]',
  description: `Submits a job of one task, "default", that runs a bash script. Prints the new job's
id (or its JSON with --json).

--file PATH reads the script from a file ("-" for stdin). A file with a line
starting with "#:" is a buildomat-style job file: the coordinator reads its
name, target and output rules from the #: TOML frontmatter; --name and --target
then override the frontmatter.

-i NAME=FILE uploads FILE as input NAME: the job waits until every input is
uploaded, then finds it at $BUILDWIRE_INPUT/NAME (/input/NAME on a machine of
its own). Uploads resume after a dropped connection; if one fails for good the
job is cancelled. Progress shows on stderr when it is a terminal.

--depends ${DEPENDS_SYNTAX}
makes the job wait for job JOBID to end. It then runs if that job completed
(no-on-completed: it fails instead) or, with on-failed, if it failed or was
cancelled. With copy, that job's outputs appear at
$BUILDWIRE_INPUT/NAME/<path without its leading "/">. A job file's
[dependencies.NAME] entries each need a --depends NAME=JOBID (they name a job
by its name; this gives the id); for those, copy is the default (no-copy turns
it off).

With --tail, the id goes to stderr ("| job ID submitted") and the command
follows the job like 'buildwire job tail', exiting with the job's result.`,
  flags: {
    name: { kind: 'string', value: 'NAME', help: 'job name (1 to 128 printable characters)' },
    target: { kind: 'string', value: 'T', help: 'target to run on, e.g. local' },
    script: { kind: 'string', value: 'TEXT', help: 'the bash script to run' },
    file: { kind: 'string', value: 'PATH', help: 'read the script or job file from PATH ("-": stdin)' },
    env: { kind: 'multiple', value: 'K=V', help: 'environment variable for the task' },
    tag: { kind: 'multiple', value: 'K=V', help: 'tag on the job' },
    'output-rule': { kind: 'multiple', value: 'RULE', help: 'upload the files RULE selects after the tasks (buildomat rules: =must-match, %may-change, !exclude; /work/ is the work directory)' },
    input: { kind: 'multiple', short: 'i', value: 'NAME=FILE', help: `upload FILE as input NAME (${INPUT_NAME_RULE}); FILE is a regular file` },
    depends: { kind: 'multiple', value: 'NAME=JOBID[,OPTS]', help: 'wait for job JOBID; OPTS: copy, no-copy, on-failed, no-on-completed (see above)' },
    'max-runtime': { kind: 'string', value: 'SECONDS', help: 'cancel the job after it ran this long (default: the coordinator\'s limit)' },
    tail: { kind: 'boolean', help: 'follow the job until it ends; exit 0 completed, 1 failed, 2 cancelled' },
    timestamps: { kind: 'boolean', help: 'with --tail: prefix each line with its ISO time' },
    ...JSON_FLAG,
  },
  epilogue: `${TAIL_EXIT_CODES.replace('Exit codes:', 'Exit codes (with --tail; without it 0 means submitted):')}

Examples:
  buildwire job run --name hello --target local --script 'echo hello' --tail
  buildwire job run --file .github/buildomat/jobs/build.sh --env RUST_LOG=debug
  buildwire job run --name unpack --target local -i src=src.tar.gz --script 'tar xzf "$BUILDWIRE_INPUT/src"'
  buildwire job run --file test.sh --depends build=01J9Z3Q8W4M6T0Y2R5N7P9B1C3`,
  async run(ctx) {
    const inputs = parseInputs(ctx.all('input'), ctx.command);
    const body = jobRequest(ctx, readScript);
    const deps = (body.dependencies ?? {}) as Record<string, DependencyJson>;
    // Both become names under /input: an input file and a dependency's directory cannot share one.
    const clash = inputs.find((i) => Object.hasOwn(deps, i.name));
    if (clash) throw new UsageError(`${JSON.stringify(clash.name)} is both an --input and a --depends name; both live under /input, so they need different names`, ctx.command);
    if (inputs.length > 0) body.inputs = inputs.map((i) => i.name);
    // Hashed before submitting: an unreadable file should not leave a job waiting for it.
    const hashed: HashedInput[] = [];
    for (const i of inputs) hashed.push(await hashInput(i));
    const api = clientFor(ctx);
    const job = await api.post<JobJson>('/api/v1/jobs', body);
    if (ctx.bool('tail')) await err(`| job ${job.id} (${job.name}) submitted to target ${job.runTarget}\n`);
    await uploadInputs(api, job.id, hashed);
    if (!ctx.bool('tail')) {
      await out(ctx.bool('json') ? jsonText(job) : `${job.id}\n`);
      return 0;
    }
    return tailJob(api, job.id, { timestamps: ctx.bool('timestamps'), json: ctx.bool('json') });
  },
};

// `--file -`: the script comes from stdin (fd 0, read to its end).
function readScript(path: string): string {
  return readFileSync(path === '-' ? 0 : path, 'utf8');
}

const tail: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: "follow a job's output until it ends",
  usage: 'job tail ID [--timestamps] [--json]',
  description: `Prints a job's events from the start, then follows it until it ends.
Interrupting the tail (Ctrl-C) stops following; the job goes on.

${TAIL_OUTPUT}`,
  flags: {
    timestamps: { kind: 'boolean', help: 'prefix each line with its ISO time' },
    json: { kind: 'boolean', help: 'print one event JSON per line on stdout ({seq,time,stream,task,text?,base64?,partial?,event?})' },
  },
  epilogue: TAIL_EXIT_CODES,
  run: (ctx) => tailJob(clientFor(ctx), ctx.args[0]!, { timestamps: ctx.bool('timestamps'), json: ctx.bool('json') }),
};

const list: Command = {
  kind: 'command', api: true, args: [],
  summary: 'list jobs, newest first',
  usage: 'job list [--state S] [--all] [--limit N] [--json]',
  description: 'Lists your jobs, newest first (with --all, everyone\'s: needs the read-all privilege).',
  flags: {
    state: { kind: 'string', value: 'S', help: `only jobs in state S: ${STATES.join(', ')}` },
    all: { kind: 'boolean', help: "every user's jobs (needs the read-all or admin privilege)" },
    limit: { kind: 'string', value: 'N', help: 'at most N jobs (1 to 1000; default 100)' },
    ...JSON_FLAG,
  },
  async run(ctx) {
    const state = ctx.str('state');
    if (state !== undefined && !STATES.includes(state)) throw new UsageError(`--state ${JSON.stringify(state)} must be one of ${STATES.join(', ')}`, ctx.command);
    const lim = ctx.str('limit');
    const limit = lim !== undefined ? parsePositiveInt(lim, '--limit', ctx.command) : undefined;
    if (limit !== undefined && limit > 1000) throw new UsageError(`--limit ${limit} must be at most 1000`, ctx.command);
    const res = await clientFor(ctx).get<{ jobs: JobJson[] }>('/api/v1/jobs', { state, limit, all: ctx.bool('all') ? 1 : undefined });
    return show(ctx, res, () => jobTable(res.jobs));
  },
};

const showCmd: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: "show a job's details and tasks",
  usage: 'job show ID [--json]',
  description: "Shows a job: state, target, times, reason, tags and its tasks' scripts.",
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const job = await clientFor(ctx).get<JobJson>(`/api/v1/jobs/${seg(ctx.args[0]!)}`);
    return show(ctx, job, () => jobDetails(job));
  },
};

const cancel: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: 'cancel a job',
  usage: 'job cancel ID [--json]',
  description: `Cancels a job. A queued job ends at once; a running one is asked to stop
(its task's processes are killed) and ends when the agent confirms.`,
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const job = await clientFor(ctx).post<JobJson>(`/api/v1/jobs/${seg(ctx.args[0]!)}/cancel`);
    return show(ctx, job, () => (job.state === 'cancelled' ? `job ${job.id} cancelled\n` : `job ${job.id}: cancel requested (state ${job.state})\n`));
  },
};

/** The `job` command group. */
export const jobGroup: Group = {
  kind: 'group',
  summary: 'submit, follow, list, show, cancel and delete jobs; use their stores and outputs',
  children: { run, tail, list, show: showCmd, cancel, ...jobArtifactCommands, store: jobStoreGroup },
};
