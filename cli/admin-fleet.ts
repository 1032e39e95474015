/**
 * `buildwire admin factory ...` and `buildwire admin worker ...`: the
 * machines jobs run on.
 */
import type { Command, Group } from './args.js';
import { JSON_FLAG, clientFor, seg, show } from './api-command.js';
import { UsageError } from './errors.js';
import { ago, err, fields, out, table } from './format.js';

interface FactoryJson {
  id: string;
  name: string;
  targets: string[];
  enabled: boolean;
  connected: boolean;
  free: number | null;
  lastContactAt: number | null;
}

interface WorkerJson {
  id: string;
  target: string;
  factory: string | null;
  persistent: boolean;
  state: string;
  job: string | null;
  instance: string | null;
  hold: boolean;
  connected: boolean;
  lastSeenAt: number | null;
  recycleReason: string | null;
  jobsRun: number;
}

const yes = (b: boolean) => (b ? 'yes' : 'no');

const factoryCreate: Command = {
  kind: 'command', api: true, args: ['NAME'],
  summary: 'create a factory and print its token (once)',
  usage: 'admin factory create NAME --target T [--target T2]... [--json]',
  description: `Creates factory NAME serving the given targets and prints its token on stdout,
once. Give the token to the factory in its environment (BUILDWIRE_FACTORY_TOKEN
for 'buildwire factory local'), never on a command line.`,
  flags: { target: { kind: 'multiple', value: 'T', help: 'a target the factory makes workers for (at least one)' }, ...JSON_FLAG },
  async run(ctx) {
    const targets = ctx.all('target');
    if (targets.length === 0) throw new UsageError("'buildwire admin factory create' needs at least one --target T", ctx.command);
    const res = await clientFor(ctx).post<FactoryJson & { token: string }>('/api/v1/factories', { name: ctx.args[0], targets });
    if (ctx.bool('json')) return show(ctx, res, () => '');
    await err(`created factory ${res.name} (${res.id}) for targets: ${res.targets.join(', ')}\n`);
    await out(`${res.token}\n`);
    await err('keep this token: it is shown only once; pass it as BUILDWIRE_FACTORY_TOKEN\n');
    return 0;
  },
};

const factoryList: Command = {
  kind: 'command', api: true, args: [],
  summary: 'list factories',
  usage: 'admin factory list [--json]',
  description: 'Lists factories: targets, whether enabled and connected, free slots, last contact.',
  flags: { ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).get<{ factories: FactoryJson[] }>('/api/v1/factories');
    const now = Date.now();
    return show(ctx, res, () =>
      res.factories.length === 0
        ? 'no factories\n'
        : table(
            ['NAME', 'ID', 'TARGETS', 'ENABLED', 'CONNECTED', 'FREE', 'LAST CONTACT'],
            res.factories.map((f) => [f.name, f.id, f.targets.join(','), yes(f.enabled), yes(f.connected), f.free === null ? '-' : String(f.free), ago(f.lastContactAt, now)]),
          ),
    );
  },
};

function factorySwitch(verb: 'enable' | 'disable'): Command {
  return {
    kind: 'command', api: true, args: ['NAME_OR_ID'], flags: { ...JSON_FLAG },
    summary: verb === 'enable' ? 'let a factory connect and take leases again' : 'stop a factory (its connection is closed; its token is refused)',
    usage: `admin factory ${verb} NAME_OR_ID [--json]`,
    description: verb === 'enable'
      ? 'Enables a disabled factory: its token is accepted again.'
      : 'Disables a factory: its connection is closed and its token refused until it is enabled.',
    async run(ctx) {
      const f = await clientFor(ctx).post<FactoryJson>(`/api/v1/factories/${seg(ctx.args[0]!)}/${verb}`);
      return show(ctx, f, () => `factory ${f.name} ${f.enabled ? 'enabled' : 'disabled'}\n`);
    },
  };
}

const workerList: Command = {
  kind: 'command', api: true, args: [],
  summary: 'list workers',
  usage: 'admin worker list [--all] [--json]',
  description: 'Lists live workers (with --all, also destroyed ones, newest 1000).',
  flags: { all: { kind: 'boolean', help: 'include destroyed workers' }, ...JSON_FLAG },
  async run(ctx) {
    const res = await clientFor(ctx).get<{ workers: WorkerJson[] }>('/api/v1/workers', { all: ctx.bool('all') ? 1 : undefined });
    const now = Date.now();
    return show(ctx, res, () =>
      res.workers.length === 0
        ? 'no workers\n'
        : table(
            ['ID', 'TARGET', 'STATE', 'JOB', 'KIND', 'CONNECTED', 'HOLD', 'JOBS', 'LAST SEEN'],
            res.workers.map((w) => [
              w.id, w.target, w.state, w.job ?? '-', w.persistent ? 'persistent' : `factory ${w.factory ?? '?'}`,
              yes(w.connected), yes(w.hold), String(w.jobsRun), ago(w.lastSeenAt, now),
            ]),
          ),
    );
  },
};

const workerCreate: Command = {
  kind: 'command', api: true, args: [],
  summary: 'register a persistent worker and print its bootstrap credential',
  usage: 'admin worker create --target T [--json]',
  description: `Registers a persistent worker (a machine you run yourself) for target T and
prints its worker id, its single-use bootstrap credential and the coordinator's
public key. Start the agent with them in its environment:
  BUILDWIRE_URL=... BUILDWIRE_COORDINATOR_KEY=... BUILDWIRE_WORKER_ID=... \\
  BUILDWIRE_BOOTSTRAP=... buildwire agent run
('buildwire agent run --persistent --target T' does all of this for you.)`,
  flags: { target: { kind: 'string', value: 'T', help: 'the target the worker serves' }, ...JSON_FLAG },
  async run(ctx) {
    const target = ctx.str('target');
    if (target === undefined) throw new UsageError("'buildwire admin worker create' needs --target T", ctx.command);
    const res = await clientFor(ctx).post<WorkerJson & { credential: string; coordinatorKey: string }>('/api/v1/workers', { target });
    if (ctx.bool('json')) return show(ctx, res, () => '');
    await out(fields([['worker', res.id], ['credential', res.credential], ['coordinator key', res.coordinatorKey]]));
    await err('the credential works once and expires soon: start the agent with it now (BUILDWIRE_BOOTSTRAP), and keep it off command lines\n');
    return 0;
  },
};

function workerAction(verb: 'hold' | 'release' | 'recycle'): Command {
  const what = {
    hold: 'keep a worker from taking new jobs',
    release: 'let a held worker take jobs again',
    recycle: 'destroy a worker once its current job (if any) ends',
  }[verb];
  return {
    kind: 'command', api: true, args: ['ID'], flags: { ...JSON_FLAG },
    summary: what,
    usage: `admin worker ${verb} ID [--json]`,
    description: `${what[0]!.toUpperCase()}${what.slice(1)}.`,
    async run(ctx) {
      const w = await clientFor(ctx).post<WorkerJson>(`/api/v1/workers/${seg(ctx.args[0]!)}/${verb}`);
      return show(ctx, w, () => `worker ${w.id}: state ${w.state}${w.hold ? ', held' : ''}${w.recycleReason ? ` (${w.recycleReason})` : ''}\n`);
    },
  };
}

/** The `admin factory` command group. */
export const factoryGroup: Group = {
  kind: 'group', summary: 'create, list, enable and disable factories',
  children: { create: factoryCreate, list: factoryList, enable: factorySwitch('enable'), disable: factorySwitch('disable') },
};

/** The `admin worker` command group. */
export const workerGroup: Group = {
  kind: 'group', summary: 'list, register, hold, release and recycle workers',
  children: { list: workerList, create: workerCreate, hold: workerAction('hold'), release: workerAction('release'), recycle: workerAction('recycle') },
};
