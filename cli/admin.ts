/**
 * `buildwire admin ...`: users and privileges, targets, the global hold.
 * Factories and workers are in `admin-fleet.ts`. Every command needs a
 * token with the `admin` privilege (listing targets and the hold status
 * need only a valid token).
 */
import type { Command, Group } from './args.js';
import { UsageError } from './errors.js';
import { JSON_FLAG, clientFor, seg, show } from './api-command.js';
import { err, fields, isoTime, kv, out, table } from './format.js';
import { factoryGroup, workerGroup } from './admin-fleet.js';

interface UserJson {
  id: string;
  name: string;
  privileges: string[];
  createdAt?: number;
}

interface TargetJson {
  name: string;
  description: string;
  redirect: string | null;
  privilege: string | null;
  createdAt: number;
}

const PRIV_NOTE = `Privileges are 1 to 64 of [a-z0-9._:-]. "admin" may do everything; "read-all"
may see every user's jobs; a target may require a privilege of its own.`;

const privs = (p: string[]) => (p.length > 0 ? p.join(', ') : '-');

const userCreate: Command = {
  kind: 'command', api: true, args: ['NAME'],
  summary: 'create a user and print its token (once)',
  usage: 'admin user create NAME [--privilege P]... [--json]',
  description: `Creates user NAME and prints its API token on stdout. The token is shown only
this once (the coordinator keeps only its hash): keep it somewhere safe.

${PRIV_NOTE}`,
  flags: { privilege: { kind: 'multiple', value: 'P', help: 'a privilege to grant' }, ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).post<UserJson & { token: string }>('/api/v1/users', { name: ctx.args[0], privileges: ctx.all('privilege') });
    if (ctx.bool('json')) return show(ctx, res, () => '');
    await err(`created user ${res.name} (${res.id}) with privileges: ${privs(res.privileges)}\n`);
    await out(`${res.token}\n`);
    await err('keep this token: it is shown only once and cannot be recovered\n');
    return 0;
  },
};

const userList: Command = {
  kind: 'command', api: true, args: [],
  summary: 'list users',
  usage: 'admin user list [--json]',
  description: 'Lists users with their ids and privileges.',
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).get<{ users: UserJson[] }>('/api/v1/users');
    return show(ctx, res, () => table(['NAME', 'ID', 'PRIVILEGES', 'CREATED'], res.users.map((u) => [u.name, u.id, privs(u.privileges), isoTime(u.createdAt)])));
  },
};

function privilegeCommand(verb: 'grant' | 'revoke'): Command {
  return {
    kind: 'command', api: true, args: ['NAME', 'PRIV'],
    summary: verb === 'grant' ? 'give a user a privilege' : 'take a privilege from a user',
    usage: `admin user ${verb} NAME PRIV [--json]`,
    description: `${verb === 'grant' ? 'Grants' : 'Revokes'} privilege PRIV ${verb === 'grant' ? 'to' : 'from'} user NAME (a name or a user id).\n\n${PRIV_NOTE}`,
    flags: { ...JSON_FLAG },
    async run(ctx) {
      const res = await clientFor(ctx).post<UserJson>(`/api/v1/users/${seg(ctx.args[0]!)}/${verb}`, { privilege: ctx.args[1] });
      return show(ctx, res, () => `user ${res.name} now has privileges: ${privs(res.privileges)}\n`);
    },
  };
}

const targetCreate: Command = {
  kind: 'command', api: true, args: ['NAME'],
  summary: 'create a target',
  usage: 'admin target create NAME [--description D] [--privilege P] [--json]',
  description: `Creates target NAME (1 to 64 of [a-z0-9._-], starting with a letter or digit).
Jobs name a target; factories and persistent workers serve targets.`,
  flags: {
    description: { kind: 'string', value: 'D', help: 'what runs there, in words' },
    privilege: { kind: 'string', value: 'P', help: 'only users with privilege P may submit jobs to it' },
    ...JSON_FLAG,
  },
  async run(ctx) {
    const body: Record<string, unknown> = { name: ctx.args[0] };
    if (ctx.str('description') !== undefined) body.description = ctx.str('description');
    if (ctx.str('privilege') !== undefined) body.privilege = ctx.str('privilege');
    const t = await clientFor(ctx).post<TargetJson>('/api/v1/targets', body);
    return show(ctx, t, () => `created target ${t.name}${t.privilege ? ` (needs privilege ${t.privilege})` : ''}\n`);
  },
};

const targetList: Command = {
  kind: 'command', api: true, args: [],
  summary: 'list targets',
  usage: 'admin target list [--json]',
  description: 'Lists targets with their redirects, required privileges and descriptions.',
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).get<{ targets: TargetJson[] }>('/api/v1/targets');
    return show(ctx, res, () =>
      table(['NAME', 'REDIRECT', 'PRIVILEGE', 'DESCRIPTION'], res.targets.map((t) => [t.name, t.redirect ?? '-', t.privilege ?? '-', t.description || '-'])),
    );
  },
};

const targetRedirect: Command = {
  kind: 'command', api: true, args: ['NAME', 'TO?'],
  summary: "send a target's jobs to another target",
  usage: 'admin target redirect NAME (TO | --clear) [--json]',
  description: `Makes jobs submitted to NAME run on target TO (e.g. to retire an image); --clear
removes the redirect. Redirect loops are refused.`,
  flags: { clear: { kind: 'boolean', help: 'remove the redirect' }, ...JSON_FLAG },
  async run(ctx) {
    const [name, to] = ctx.args;
    if (to !== undefined && ctx.bool('clear')) throw new UsageError('give either TO or --clear, not both', ctx.command);
    if (to === undefined && !ctx.bool('clear')) throw new UsageError("'buildwire admin target redirect' needs TO (a target) or --clear", ctx.command);
    const t = await clientFor(ctx).post<TargetJson>(`/api/v1/targets/${seg(name!)}/redirect`, { to: to ?? null });
    return show(ctx, t, () => (t.redirect ? `target ${t.name} now redirects to ${t.redirect}\n` : `target ${t.name} no longer redirects\n`));
  },
};

interface ControlJson {
  hold: boolean;
  queued?: Record<string, number>;
  idle?: Record<string, number>;
  coming?: Record<string, number>;
}

function controlCommand(verb: 'hold' | 'resume' | 'status'): Command {
  const what = {
    hold: 'stop assigning new jobs to workers (running jobs go on)',
    resume: 'start assigning jobs again after a hold',
    status: 'show whether assignment is held, and queue sizes per target',
  }[verb];
  return {
    kind: 'command', api: true, args: [], flags: { ...JSON_FLAG },
    summary: what,
    usage: `admin control ${verb} [--json]`,
    description: `${what[0]!.toUpperCase()}${what.slice(1)}.`,
    async run(ctx) {
      const api = clientFor(ctx);
      const res = verb === 'status' ? await api.get<ControlJson>('/api/v1/control') : await api.post<ControlJson>(`/api/v1/control/${verb}`);
      return show(ctx, res, () =>
        verb === 'status'
          ? fields([
              ['hold', res.hold ? 'yes: no new jobs are assigned' : 'no'],
              ['queued', kv(num(res.queued))], ['idle workers', kv(num(res.idle))], ['workers coming', kv(num(res.coming))],
            ])
          : `assignment is ${res.hold ? 'held: no new jobs are assigned' : 'running'}\n`,
      );
    },
  };
}

function num(m: Record<string, number> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, String(v)]));
}

/** The `admin` command group. */
export const adminGroup: Group = {
  kind: 'group',
  summary: 'users, targets, factories, workers, hold/resume (needs the admin privilege)',
  children: {
    user: {
      kind: 'group', summary: 'create users and manage their privileges',
      children: { create: userCreate, list: userList, grant: privilegeCommand('grant'), revoke: privilegeCommand('revoke') },
    },
    target: {
      kind: 'group', summary: 'create, list and redirect targets',
      children: { create: targetCreate, list: targetList, redirect: targetRedirect },
    },
    factory: factoryGroup,
    worker: workerGroup,
    control: {
      kind: 'group', summary: 'hold or resume job assignment',
      children: { hold: controlCommand('hold'), resume: controlCommand('resume'), status: controlCommand('status') },
    },
  },
};
