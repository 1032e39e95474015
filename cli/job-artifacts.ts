/**
 * A job's artifacts from the command line: `job outputs`, `job download`,
 * `job publish`, `job delete`, and `outputs find` (which jobs produced some
 * bytes). The contract is docs/artifacts.md.
 */
import { mkdir } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Command, Group } from './args.js';
import { JSON_FLAG, clientFor, seg, show } from './api-command.js';
import { downloadOutput, outputDestination, outputUrlPath } from './download.js';
import { CliError, UsageError } from './errors.js';
import { humanBytes, jsonText, out, table } from './format.js';

/** One output as `GET /api/v1/jobs/ID/outputs` lists it. */
export interface OutputJson {
  path: string;
  size: number;
  mode: number;
  mtime: number;
  sha256: string;
  committedAt: number;
}

/** One row of `GET /api/v1/outputs?sha256=HEX`. */
export interface FoundOutputJson {
  job: string;
  name: string;
  target: string;
  state: string;
  path: string;
  size: number;
  sha256: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

const outputs: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: "list a job's outputs",
  usage: 'job outputs ID [--json]',
  description: `Lists the files job ID produced (its output rules' matches), in path order: path,
size (in binary units and exact bytes) and SHA-256.`,
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).get<{ outputs: OutputJson[] }>(`/api/v1/jobs/${seg(ctx.args[0]!)}/outputs`);
    return show(ctx, res, () => (res.outputs.length === 0
      ? `job ${ctx.args[0]} has no outputs\n`
      : table(['PATH', 'SIZE', 'BYTES', 'SHA256'], res.outputs.map((o) => [o.path, humanBytes(o.size), String(o.size), o.sha256]))));
  },
};

const download: Command = {
  kind: 'command', api: true, args: ['ID', 'PATH?'],
  summary: "download a job's output (or all of them)",
  usage: 'job download ID PATH [-o FILE] | job download ID --all DIR',
  description: `Downloads output PATH of job ID (a path as 'buildwire job outputs' lists it,
e.g. /work/out/app.tar.gz) to FILE, by default the last part of PATH in the current
directory; "-o -" writes it to stdout. With --all DIR, downloads every output
to DIR/<path without its leading "/">, creating directories; an output path that
would land outside DIR (a ".." segment) is refused before anything is written.

Every file is checked against the SHA-256 the coordinator sends (its ETag). It is
written to a temporary file beside FILE and renamed only when it matches, so a
mismatch or an interruption leaves no file (an existing FILE is replaced only by
verified bytes). A dropped connection is resumed where it stopped, a few times.
With "-o -" the bytes reach stdout before they can be checked: a mismatch still
exits 1.`,
  flags: {
    output: { kind: 'string', short: 'o', value: 'FILE', help: 'write to FILE ("-": stdout) instead of ./<last part of PATH>' },
    all: { kind: 'string', value: 'DIR', help: 'download every output under DIR (instead of PATH)' },
  },
  epilogue: `Examples:
  buildwire job download 01J9Z3Q8W4M6T0Y2R5N7P9B1C3 /work/out/app.tar.gz
  buildwire job download 01J9Z3Q8W4M6T0Y2R5N7P9B1C3 /work/out/app.tar.gz -o - | tar xz
  buildwire job download 01J9Z3Q8W4M6T0Y2R5N7P9B1C3 --all ./artifacts`,
  async run(ctx) {
    const [id, path] = [ctx.args[0]!, ctx.args[1]];
    const all = ctx.str('all');
    const output = ctx.str('output');
    if (all !== undefined && path !== undefined) throw new UsageError(`give either PATH (${JSON.stringify(path)}) or --all DIR, not both`, ctx.command);
    if (all !== undefined && output !== undefined) throw new UsageError('-o/--output names the file of one PATH; with --all DIR each output goes to DIR/<its path>', ctx.command);
    if (all === '') throw new UsageError('--all needs a directory, e.g. --all ./artifacts', ctx.command);
    if (all !== undefined) return downloadAll(ctx, id, all);
    if (path === undefined) throw new UsageError("'buildwire job download' needs PATH (an output path, see 'buildwire job outputs ID') or --all DIR", ctx.command);
    if (path.replace(/^\/+/, '').split('/').some((s) => s === '.' || s === '..')) {
      throw new UsageError(`PATH ${JSON.stringify(path)} must not have "." or ".." segments: outputs are named by plain paths such as /work/out/a.tar.gz`, ctx.command);
    }
    let dest: string | null;
    if (output === '-') dest = null;
    else if (output !== undefined && output !== '') dest = resolve(output);
    else if (output === '') throw new UsageError('-o/--output needs a file name ("-" for stdout)', ctx.command);
    else {
      const name = basename(path.replace(/\/+$/, ''));
      if (name === '' || name === '.' || name === '..') throw new UsageError(`PATH ${JSON.stringify(path)} has no file name to save as; give -o FILE`, ctx.command);
      dest = resolve(name);
    }
    const api = clientFor(ctx);
    const got = await downloadOutput(api, outputUrlPath(id, path), dest, { label: basename(path) });
    if (dest !== null) await out(`${dest} (${humanBytes(got.size)}, sha256 ${got.sha256} verified)\n`);
    return 0;
  },
};

async function downloadAll(ctx: Parameters<Command['run']>[0], id: string, dir: string): Promise<number> {
  const api = clientFor(ctx);
  const res = await api.get<{ outputs: OutputJson[] }>(`/api/v1/jobs/${seg(id)}/outputs`);
  // Every destination is checked before the first byte is written: a hostile path refuses the lot.
  const plan = res.outputs.map((o) => ({ o, dest: outputDestination(dir, o.path) }));
  const seen = new Map<string, string>();
  for (const { o, dest } of plan) {
    const other = seen.get(dest);
    if (other !== undefined) throw new CliError(`outputs ${JSON.stringify(other)} and ${JSON.stringify(o.path)} would both be written to ${dest}; nothing was downloaded`);
    seen.set(dest, o.path);
  }
  let bytes = 0;
  for (const { o, dest } of plan) {
    await mkdir(dirname(dest), { recursive: true });
    const got = await downloadOutput(api, outputUrlPath(id, o.path), dest, { expectSha256: o.sha256, label: o.path });
    bytes += got.size;
    await out(`${dest}\n`);
  }
  process.stderr.write(`| ${plan.length} output${plan.length === 1 ? '' : 's'} of job ${id} (${humanBytes(bytes)}) downloaded to ${resolve(dir)}, each sha256 verified\n`);
  return 0;
}

const publish: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: 'publish an output at a public URL',
  usage: 'job publish ID --from PATH --series S --version V --name N [--json]',
  description: `Publishes output PATH of job ID as /public/file/<owner>/S/V/N, served without
sign-in, and prints its URL. Publishing the same name again with the same bytes
changes nothing; with other bytes it is refused (PUBLISH_CONFLICT, exit 1).`,
  flags: {
    from: { kind: 'string', value: 'PATH', help: 'the output to publish, as listed by job outputs (e.g. /work/out/app.tar.gz)' },
    series: { kind: 'string', value: 'S', help: 'the series, e.g. image' },
    version: { kind: 'string', value: 'V', help: 'the version, e.g. a commit hash' },
    name: { kind: 'string', value: 'N', help: 'the published file name' },
    json: { kind: 'boolean', help: 'print {"url": ...} (the URL made absolute) instead of the URL' },
  },
  async run(ctx) {
    const body: Record<string, string> = {};
    for (const [flag, field] of [['from', 'fromOutput'], ['series', 'series'], ['version', 'version'], ['name', 'name']] as const) {
      const v = ctx.str(flag);
      if (v === undefined || v === '') throw new UsageError(`'buildwire job publish' needs --${flag} ${publish.flags[flag]!.value} (not empty)`, ctx.command);
      // Series, version and name are one segment each of /public/file/<owner>/<series>/<version>/<name>.
      if (flag !== 'from' && v.includes('/')) throw new UsageError(`--${flag} ${JSON.stringify(v)} must be one path segment: no "/"`, ctx.command);
      body[field] = v;
    }
    const api = clientFor(ctx);
    const res = await api.post<{ url: string }>(`/api/v1/jobs/${seg(ctx.args[0]!)}/publish`, body);
    const url = api.absolute(res.url);
    await out(ctx.bool('json') ? jsonText({ ...res, url }) : `${url}\n`);
    return 0;
  },
};

const deleteCmd: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: 'delete an ended job and its outputs',
  usage: 'job delete ID [--json]',
  description: `Deletes job ID with its log, inputs and outputs; stored bytes no other job or
published file uses are freed. Only an ended job can be deleted (cancel it
first); deleting needs to own the job or the admin privilege.`,
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const id = ctx.args[0]!;
    const res = await clientFor(ctx).delete<unknown>(`/api/v1/jobs/${seg(id)}`);
    return show(ctx, res ?? { id, deleted: true }, () => `job ${id} deleted\n`);
  },
};

const find: Command = {
  kind: 'command', api: true, args: ['SHA256'],
  summary: 'find the jobs that produced some bytes',
  usage: 'outputs find SHA256 [--json]',
  description: `Lists every output (that you may see) whose SHA-256 is SHA256, newest job first:
job id, job name, target, job state, path and size. SHA256 is 64 hex digits,
e.g. from 'sha256sum FILE'.`,
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const hex = ctx.args[0]!.toLowerCase();
    if (!SHA256_HEX.test(hex)) throw new UsageError(`SHA256 ${JSON.stringify(ctx.args[0])} must be 64 hex digits`, ctx.command);
    const res = await clientFor(ctx).get<{ outputs: FoundOutputJson[] }>('/api/v1/outputs', { sha256: hex });
    return show(ctx, res, () => (res.outputs.length === 0
      ? `no outputs have sha256 ${hex}\n`
      : table(['JOB', 'NAME', 'TARGET', 'STATE', 'PATH', 'SIZE'], res.outputs.map((o) => [o.job, o.name, o.target, o.state, o.path, humanBytes(o.size)]))));
  },
};

/** The artifact commands of the `job` group. */
export const jobArtifactCommands = { outputs, download, publish, delete: deleteCmd } satisfies Record<string, Command>;

/** The `outputs` command group: outputs across jobs. */
export const outputsGroup: Group = {
  kind: 'group',
  summary: 'find outputs across jobs by their bytes',
  description: "Outputs across jobs. A job's own outputs: 'buildwire job outputs ID'.",
  children: { find },
};
