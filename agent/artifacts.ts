/**
 * A job's life around its tasks: inputs downloaded before the first task,
 * outputs scanned and uploaded after the last (whether the tasks succeeded
 * or failed, but not when the job was cancelled), and the job's result
 * adjusted for what went wrong. docs/artifacts.md is the contract.
 */
import type { JobAssignment, JobEnd } from '../protocol/index.js';
import { InputError, downloadInputs } from './inputs.js';
import type { OutputRoots } from './outputs.js';
import { scanOutputs } from './outputs.js';
import type { Runner } from './runner.js';
import type { UploadLink } from './uploader.js';
import { uploadOutputs } from './uploader.js';

/** The coordinator's default `max_output_bytes`, for an assignment that does not say. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 ** 3;

/** The protocol caps a JOB record's reason at 4096 characters; a reason quoting a long path stays well inside. */
const MAX_REASON_CHARS = 1000;

/** What the artifact steps of one job need. */
export interface ArtifactContext {
  job: JobAssignment;
  /** The agent's connection, for uploads. */
  link: UploadLink;
  /** The coordinator's HTTP base, for input downloads. */
  httpBase: string;
  /** The job's real work and input directories (rule-space `/work` and `/input`). */
  roots: OutputRoots;
  /** Writes a WORKER line into the job's log. */
  worker: (line: string) => void;
  /** Aborted when the job is cancelled or the agent stops. */
  signal: AbortSignal;
  /** The tasks' user, who should own the inputs. */
  owner?: { uid: number; gid: number };
}

const cut = (s: string): string => (s.length > MAX_REASON_CHARS ? `${s.slice(0, MAX_REASON_CHARS - 1)}…` : s);
const cancelled = (signal: AbortSignal): JobEnd => ({ result: 'failed', reason: `cancelled: ${String(signal.reason)}` });

/**
 * Runs a job end to end: inputs, tasks, outputs. Resolves with the JOB
 * record's result; a failed download or upload fails the job, naming the
 * first problem (each problem is also a WORKER line).
 *
 * @example
 * const end = await runWithArtifacts(runner, { job: a, link: client, httpBase, roots, worker, signal });
 * outbox.push([Date.now(), REC.JOB, 0, end]);
 */
export async function runWithArtifacts(runner: Runner, ctx: ArtifactContext): Promise<JobEnd> {
  const inputProblem = await fetchInputs(ctx);
  if (inputProblem !== null) return ctx.signal.aborted ? cancelled(ctx.signal) : { result: 'failed', reason: cut(inputProblem) };
  const res = await runner.run(ctx.job);
  if (res.reason.startsWith('cancelled')) return res;
  const problems = await collectOutputs(ctx);
  if (problems.length === 0) return res;
  if (ctx.signal.aborted) return cancelled(ctx.signal);
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more output problem(s))` : '';
  // The tasks' own failure comes first: it is usually why the outputs are missing too.
  return { result: 'failed', reason: cut(res.result === 'failed' ? `${res.reason}; outputs: ${first}${more}` : `outputs: ${first}${more}`) };
}

/**
 * Downloads the job's inputs into its input directory. Resolves with null,
 * or the reason the job fails (also written as a WORKER line).
 *
 * @example
 * const problem = await fetchInputs(ctx); // 'input dep/a.txt: GET … answered 404 Not Found'
 */
export async function fetchInputs(ctx: ArtifactContext): Promise<string | null> {
  const inputs = ctx.job.inputs ?? [];
  if (inputs.length === 0) return null;
  if (ctx.job.inputToken === undefined) {
    const reason = `the assignment lists ${inputs.length} input(s) but no token to download them with`;
    ctx.worker(reason);
    return reason;
  }
  try {
    await downloadInputs(inputs, {
      httpBase: ctx.httpBase, token: ctx.job.inputToken, dir: ctx.roots.input, signal: ctx.signal, log: ctx.worker,
      ...(ctx.owner ? { owner: ctx.owner } : {}),
    });
  } catch (err) {
    const reason = err instanceof InputError ? err.message : `input download failed: ${(err as Error).message}`;
    ctx.worker(reason);
    return reason;
  }
  const bytes = inputs.reduce((n, f) => n + f.size, 0);
  ctx.worker(`downloaded ${inputs.length} input file(s) (${bytes} bytes) into ${ctx.roots.input}`);
  return null;
}

/**
 * Scans for the job's outputs and uploads them, writing a WORKER line per
 * uploaded file (as it commits) and per problem. Resolves with the problems: refused
 * files, failed uploads and `=` rules that matched nothing.
 *
 * @example
 * const problems = await collectOutputs(ctx); // ['/work/out/a.bin changed during upload: size 100 → 200']
 */
export async function collectOutputs(ctx: ArtifactContext): Promise<string[]> {
  const rules = ctx.job.outputRules ?? [];
  if (rules.length === 0) return [];
  const scan = await scanOutputs(rules, ctx.roots);
  for (const note of scan.notes) ctx.worker(note);
  const up = await uploadOutputs(scan.files, {
    link: ctx.link, job: ctx.job.id, maxOutputBytes: ctx.job.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES, log: ctx.worker, signal: ctx.signal,
  });
  const problems = [...scan.errors, ...up.failures];
  // Checked against what was uploaded or tried: a `%` file that vanished does not satisfy an `=` rule,
  // and a file that failed is a problem of its own already.
  const tried = scan.files.map((f) => f.path).filter((p) => !up.skipped.includes(p));
  for (const rule of scan.matcher?.unsatisfied(tried) ?? []) problems.push(`output rule ${JSON.stringify(rule.rule)} matched no file`);
  for (const p of problems) ctx.worker(p);
  return problems;
}
