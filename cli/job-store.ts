/**
 * `buildwire job store ...`: a job's key/value store. Secret values are
 * write-only: the API never returns them, and `get` says so instead of
 * printing nothing.
 */
import type { Command, Group } from './args.js';
import { JSON_FLAG, clientFor, readStdin, seg, show } from './api-command.js';
import { CliError } from './errors.js';
import { isoTime, out, table } from './format.js';

interface StoreValue {
  value: string | null;
  secret: boolean;
  updatedAt: number;
}

const KEY_RULE = 'Keys are 1 to 100 of [A-Za-z0-9_], not starting with a digit.';

const list: Command = {
  kind: 'command', api: true, args: ['ID'],
  summary: "list a job's store keys",
  usage: 'job store list ID [--json]',
  description: "Lists a job's store: keys, values (secret ones shown as <secret>) and when each was set.",
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).get<{ store: Record<string, StoreValue> }>(`/api/v1/jobs/${seg(ctx.args[0]!)}/store`);
    return show(ctx, res, () => {
      const rows = Object.entries(res.store).map(([k, v]) => [k, v.secret ? '<secret>' : JSON.stringify(v.value), isoTime(v.updatedAt)]);
      return rows.length === 0 ? 'the store is empty\n' : table(['KEY', 'VALUE', 'UPDATED'], rows);
    });
  },
};

const get: Command = {
  kind: 'command', api: true, args: ['ID', 'KEY'],
  summary: 'print one store value',
  usage: 'job store get ID KEY [--json]',
  description: `Prints the value of KEY in job ID's store, followed by a newline.
A secret value cannot be read back: the command says so and exits 1.`,
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const [id, key] = [ctx.args[0]!, ctx.args[1]!];
    const v = await clientFor(ctx).get<StoreValue & { key: string }>(`/api/v1/jobs/${seg(id)}/store/${seg(key)}`);
    if (ctx.bool('json')) return show(ctx, v, () => '');
    if (v.secret || v.value === null) throw new CliError(`store key ${key} of job ${id} is secret: its value is hidden and cannot be read back`);
    await out(`${v.value}\n`);
    return 0;
  },
};

const put: Command = {
  kind: 'command', api: true, args: ['ID', 'KEY', 'VALUE'],
  summary: 'set one store value',
  usage: 'job store put ID KEY VALUE [--secret]',
  description: `Sets KEY in job ID's store. VALUE "-" reads the value from stdin, less one trailing newline
(use it for secrets: a value on the command line shows in ps and shell history).
${KEY_RULE}`,
  flags: {
    secret: { kind: 'boolean', help: 'store the value as a secret: given to the job, never shown again' },
    ...JSON_FLAG,
  },
  async run(ctx) {
    const [id, key, raw] = [ctx.args[0]!, ctx.args[1]!, ctx.args[2]!];
    const value = raw === '-' ? (await readStdin()).replace(/\r?\n$/, '') : raw;
    const res = await clientFor(ctx).put<{ key: string; secret: boolean }>(`/api/v1/jobs/${seg(id)}/store/${seg(key)}`, { value, secret: ctx.bool('secret') });
    return show(ctx, res, () => `set ${res.key} on job ${id}${res.secret ? ' (secret)' : ''}\n`);
  },
};

/** The `job store` command group. */
export const jobStoreGroup: Group = {
  kind: 'group',
  summary: "read and write a job's key/value store",
  description: `A job's key/value store. ${KEY_RULE}`,
  children: { list, get, put },
};
