/**
 * The `store` scenario's seeding child (forked by bench/store.ts). It writes
 * jobs straight into a coordinator's store while no coordinator has it open,
 * leaving exactly what the coordinator would have left after running them:
 * the same databases (opened through `openStore`, the layout's one module),
 * keys, indexes and record shapes. Users and targets are made by the
 * coordinator's own `createUser` and `ensureTarget`. Job records are
 * `Jobs.create`'s, mirrored (and checked against it at the start of every
 * seeding); what `Jobs.insert`, `transition` and `finish` then write (the
 * indexes, the final record, the control lines, the agent's batches as the
 * agent encodes them) is mirrored inside big synchronous transactions,
 * because a million jobs through the real paths (one durable transaction
 * per write) would take the whole bench budget.
 *
 * One child per store: `newId` (which `createUser` uses) keeps ids monotonic
 * within a process, so a second store's older users would get the first
 * store's newest time.
 *
 * Messages (IPC):
 * - `{op:'seed', ...SeedRequest}`: on a store no coordinator has opened,
 *   creates the users ({@link SEED_USERS}, `admin` among them) and targets
 *   ({@link SEED_TARGETS}) with the coordinator's own functions, then writes
 *   `jobs` jobs spread over the past at 8 a minute: the newest `queued` still
 *   queued, the rest ended (82% completed, 14% failed, 4% cancelled), with
 *   Zipf-like spreads of names, owners, repositories and branches. `logJobs`
 *   of them get a log of 50 to 1,000 lines, one `longLogLines` lines and one
 *   exactly `shortLogLines`. Answers `{op:'seeded', ...Seeded}`.
 * - `{op:'raw-insert', dir, n, concurrency, submit}`: `n` jobs made by
 *   `Jobs.create` and written by the real `Jobs.insert` (no HTTP),
 *   `concurrency` in flight, then removed again (untimed) so the store is as
 *   seeded. Answers `{op:'inserted', ms, n}`.
 * - `{op:'exit'}`.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { JobId, LogRecord, TaskSpec, UserId, WorkerId } from '../protocol/index.js';
import { REC, encode } from '../protocol/index.js';
import { createUser, ensureTarget } from '../coordinator/api/admin.js';
import { DEFAULTS } from '../coordinator/config.js';
import type { Core } from '../coordinator/core.js';
import type { Clock } from '../coordinator/deadlines.js';
import { Jobs } from '../coordinator/jobs.js';
import { prng } from './util.js';
import type { NewJob } from '../coordinator/jobs.js';
import type { JobRecord } from '../coordinator/store/records.js';
import { openStore } from '../coordinator/store/schema.js';
import type { Databases } from '../coordinator/store/schema.js';
import { mapLimit, nowMs } from './util.js';

/** What one submission carries over REST; the raw insert builds the same record from it. */
export interface SubmitSpec {
  name: string;
  target: string;
  script: string;
  tags: Record<string, string>;
}

/** What a seeding pass reports back. */
export interface Seeded {
  ms: number;
  jobs: number;
  /** Keys written, all databases. */
  puts: number;
  /** Event records (log lines and agent/control records) written. */
  events: number;
  /** Jobs with a log. */
  logged: number;
  /** The admin user's bearer token (only its hash is stored). */
  adminToken: string;
  counts: Record<string, number>;
  /** Bytes of the LMDB data file afterwards. */
  fileBytes: number;
  /** Ids at known places in time order (the newest, the middle, 1% from the oldest): cursors for `before`. */
  cursors: { newest: string; middle: string; deep: string };
  longLog: { job: string; lastSeq: number; batches: number };
  shortLog: { job: string; lastSeq: number };
  /** Filters to query with, chosen from what was written. */
  filters: { commonName: string; midName: string; target: string; rareTag: string; commonTag: string };
  /** Per database written: entries, B-tree depth, MiB of pages. */
  databases: Record<string, { entries: number; depth: number; mib: number }>;
}

/** A Zipf-like pick of 0..n-1 (weight 1/(i+1)): a few names, owners, repos dominate, as in real use. */
function zipf(n: number): (r: number) => number {
  const cum: number[] = [];
  let s = 0;
  for (let i = 0; i < n; i++) cum.push((s += 1 / (i + 1)));
  return (r) => {
    const x = r * s;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Log-uniform in [lo, hi): waits, runtimes and log lengths spread over orders of magnitude. */
function logUniform(r: number, lo: number, hi: number): number {
  return Math.exp(Math.log(lo) + r * (Math.log(hi) - Math.log(lo)));
}

const VERBS = ['build', 'test', 'lint', 'package', 'docs', 'check', 'clippy', 'fmt', 'image', 'release', 'deploy', 'bench'];
const VARIANTS = ['', ' (illumos)', ' (linux)', ' (helios)', '-debug', '-release', ' (omnios)'];
const REPOS = ['omicron', 'propolis', 'crucible', 'dendrite', 'maghemite', 'opte', 'hubris', 'buildomat', 'progenitor', 'dropshot', 'helios', 'illumos-gate', 'console', 'oxide.rs', 'sled-agent', 'falcon'];
const STEPS = [
  'cargo --version', 'rustc --version', 'ptime -m cargo build --release --locked', 'ptime -m cargo test --locked --no-fail-fast',
  'cargo clippy --all-targets -- --deny warnings', 'mkdir -p /work/out && cp target/release/app /work/out/', 'gmake -j8 setup && gmake -j8 all',
  'banner "$(uname -n)"', 'pfexec pkg install -v /developer/gcc13', 'tar -C /work -czf /work/out/app.tar.gz app',
];

/**
 * One script per job name, 150 B to ~2.5 KB: the same name runs the same
 * script, and a job file (buildomat) is stored whole as its one task's script.
 */
function scriptFor(name: string, target: string, jobFile: boolean, steps: number): string {
  const body = ['set -o errexit', 'set -o pipefail', 'set -o xtrace', ...Array.from({ length: steps }, (_, i) => STEPS[i % STEPS.length]!)].join('\n');
  if (!jobFile) return `${body}\n`;
  return [
    '#!/bin/bash', '#:', `#: name = ${JSON.stringify(name)}`, '#: variety = "basic"', `#: target = ${JSON.stringify(target)}`,
    '#: rust_toolchain = "1.78.0"', '#: output_rules = [', '#:   "/work/out/*",', '#: ]', '#:', body, '',
  ].join('\n');
}

/** The fields the REST route fills for a plain `{name, target, tasks:[{name, script}], tags}` body (coordinator/api/jobs.ts). */
export function newJobFromSubmit(s: SubmitSpec, owner: UserId): NewJob {
  const task: TaskSpec = { name: 'main', script: s.script, env: {}, envClear: false };
  return {
    name: s.name, owner, target: s.target, runTarget: s.target, tasks: [task], outputRules: [], tags: s.tags, buildomat: false,
    maxRuntimeMs: DEFAULTS.maxRuntimeMs, inputs: [], dependencies: {}, publish: [], private: false,
  };
}

/**
 * A core offering only the databases and a clock we set: all that
 * `Jobs.create`, `Jobs.insert`, `createUser` and `ensureTarget` read. Should
 * one of them ever read more, seeding fails loudly (undefined) instead of
 * writing records the coordinator would not.
 */
function stubCore(dbs: Databases, clock: Clock): Core {
  const core: Pick<Core, 'dbs' | 'clock'> = { dbs, clock };
  return core as Core;
}

function jobsOn(dbs: Databases, clock: Clock): Jobs {
  const core = stubCore(dbs, clock);
  return new Jobs(() => core);
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID laid out as `newId` lays it out (48 bits of ms, 80 random bits), its random part from the seeded PRNG. */
function seededId<T extends string>(t: number, rand: () => number): T {
  let time = '';
  for (let i = 0, x = t; i < 10; i++, x = Math.floor(x / 32)) time = CROCKFORD[x % 32]! + time;
  let tail = '';
  for (let i = 0; i < 16; i++) tail += CROCKFORD[Math.floor(rand() * 32)]!;
  return (time + tail) as T;
}

/**
 * The record `Jobs.create` makes for a job with no inputs, dependencies or
 * publishing, with the id given. Mirrored rather than called for each job:
 * `Jobs.create` draws its id from crypto randomness, a system call of about
 * 7 µs here, seven seconds for a million jobs. {@link checkMirror} holds the
 * mirror to the real thing at the start of every seeding.
 */
function jobRecord(n: NewJob, id: JobId, now: number): JobRecord {
  return {
    v: 1, id, name: n.name, owner: n.owner, target: n.target, runTarget: n.runTarget, tasks: n.tasks,
    outputRules: n.outputRules, tags: n.tags, buildomat: n.buildomat, maxRuntimeMs: n.maxRuntimeMs,
    state: 'queued', worker: null, submittedAt: now, assignedAt: null, endedAt: null, reason: null, cancelRequested: false,
  };
}

/** Throws if {@link jobRecord} no longer makes what `Jobs.create` makes (same fields, order and values but the id). */
function checkMirror(dbs: Databases, sample: NewJob, at: number): void {
  const real = jobsOn(dbs, { now: () => at }).create(sample);
  const mine = jobRecord(sample, real.id, at);
  if (JSON.stringify(real) !== JSON.stringify(mine)) {
    throw new Error(`store-seed.ts's jobRecord no longer matches Jobs.create; update it:\n  Jobs.create: ${JSON.stringify(real)}\n  jobRecord:   ${JSON.stringify(mine)}`);
  }
}

/** A commit hash's worth of seeded hex. */
function hex40(rand: () => number): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0');
  return s;
}

/** A pool of ~100-byte build output lines (bytes, as the agent stores them). */
function linePool(rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 512; i++) {
    const k = Math.floor(rand() * 900);
    const forms = [
      `   Compiling crate-${k} v0.${k % 17}.${k % 5} (/work/oxidecomputer/${REPOS[k % REPOS.length]}/crates/crate-${k})`,
      `test tests::case_${k}_${i} ... ok (${(rand() * 900).toFixed(1)} ms) in module integration::suite_${k % 40}`,
      `+ gcc -O2 -Wall -fPIC -c src/module_${k}.c -o build/obj/module_${k}.o -I include -I /usr/include/libxml2`,
      `warning: unused variable: \`value_${k}\` --> src/lib/part_${k % 60}.rs:${k}:${i % 80} (#[warn(unused_variables)])`,
    ];
    out.push(Buffer.from(forms[i % forms.length]!));
  }
  return out;
}

/** Users in the order they were created, which is also how many jobs each owns (most to fewest): a CI bot first. */
export const SEED_USERS = ['github-app', 'nightly', 'dev-01', 'admin', ...Array.from({ length: 37 }, (_, i) => `dev-${String(i + 2).padStart(2, '0')}`)];
/** Targets: the two a fresh bench coordinator has (coordinator-process.ts) and four more, as a real deployment has. */
export const SEED_TARGETS = ['bench', 'local', 'helios-2.0', 'ubuntu-22.04', 'omnios-r151046', 'lab-gimlet'];

/**
 * Creates the users and targets, through the coordinator's own
 * `createUser` and `ensureTarget`, dated `at`. Returns the admin's token.
 */
async function initStore(dbs: Databases, at: number): Promise<string> {
  const core = stubCore(dbs, { now: () => at });
  let token = '';
  for (const name of SEED_USERS) {
    const made = await createUser(core, name, name === 'admin' ? ['admin'] : []);
    if (name === 'admin') token = made.token;
  }
  for (const t of SEED_TARGETS) await ensureTarget(core, t, `seeded by the store benchmark`);
  return token;
}

/** What the seed message asks for. */
export interface SeedRequest {
  dir: string;
  jobs: number;
  /** The newest this many stay queued. */
  queued: number;
  /** Jobs with a log of 50 to 1,000 lines, spread evenly. */
  logJobs: number;
  longLogLines: number;
  shortLogLines: number;
  /** PRNG seed: the same seed writes the same names, owners, states and filters. */
  seed: number;
}

/** Seeds a store; see the file comment. */
async function seed(m: SeedRequest): Promise<Seeded> {
  const t0 = nowMs();
  const dbs = openStore(m.dir);
  const rand = prng(m.seed);
  // 8 jobs a minute up to an hour ago: ULIDs carry the submission time, so the list order is the time order.
  const spacing = 7_500;
  const start = Date.now() - 3600_000 - m.jobs * spacing;
  // Users and targets are made before the first job, as a real deployment makes them.
  const adminToken = await initStore(dbs, start - 2 * 86_400_000);
  const workerIds = Array.from({ length: 4096 }, (_, i) => seededId<WorkerId>(start - 86_400_000 + i, rand));
  const owners = [...dbs.users.getRange({})].map(({ value }) => value);
  const targets = [...SEED_TARGETS];
  const pickOwner = zipf(owners.length);
  const names = VERBS.flatMap((v) => VARIANTS.map((x) => `${v}${x}`));
  // Shuffled once (seeded), so the most frequent names are not all "build"; after this, names[k] is the k-th most frequent.
  for (let i = names.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [names[i], names[j]] = [names[j]!, names[i]!];
  }
  const pickName = zipf(names.length);
  const pickRepo = zipf(REPOS.length);
  const BRANCHES = 3000;
  const pickBranch = zipf(BRANCHES);
  const lines = linePool(rand);
  const nameTarget = names.map((_, i) => targets[i % targets.length]!);
  const scripts = names.map((n, i) => scriptFor(n, nameTarget[i]!, i % 2 === 0, 2 + (i * 7) % 16));
  const commits = REPOS.map(() => hex40(rand));
  const owners0 = owners[0]!;
  checkMirror(dbs, { name: names[0]!, owner: owners0.id, target: targets[0]!, runTarget: targets[0]!, tasks: [{ name: 'main', script: 'true', env: {}, envClear: false }], outputRules: [], tags: {}, buildomat: false, maxRuntimeMs: DEFAULTS.maxRuntimeMs }, start - 86_400_000);

  const longAt = m.longLogLines > 0 ? Math.floor(m.jobs * 0.9) : -1;
  const shortAt = Math.floor(m.jobs * 0.9) - 1;
  const logEvery = m.logJobs > 0 ? Math.max(1, Math.floor(m.jobs / m.logJobs)) : 0;
  const counts: Record<string, number> = { completed: 0, failed: 0, cancelled: 0, queued: 0 };
  const ids: string[] = [];
  let puts = 0;
  let events = 0;
  let logged = 0;
  let longLog = { job: '', lastSeq: 0, batches: 0 };
  let shortLog = { job: '', lastSeq: 0 };

  /** Agent batches of `n` output lines (1 to 400 per batch, as a build's output arrives) after a task start record, ending with `end`. */
  const agentBatches = (job: JobId, task: string, firstSeq: number, n: number, t: number, end: LogRecord[]): { seq: number; batches: number } => {
    let seq = firstSeq;
    let batch = 1;
    let left = n;
    let recs: LogRecord[] = [[t, REC.TASK, 0, { event: 'start', name: task }]];
    for (;;) {
      const take = Math.min(left, 1 + Math.floor(rand() * 400));
      for (let i = 0; i < take; i++) recs.push([t, REC.STDOUT, 0, lines[Math.floor(rand() * lines.length)]!]);
      left -= take;
      if (left === 0) recs.push(...end);
      // As the agent's Outbox encodes a batch; the coordinator stores those bytes as they came.
      dbs.events.putSync([job, seq], encode({ type: 'batch', job, batch, recs }));
      puts++;
      events += recs.length;
      seq += recs.length;
      batch++;
      recs = [];
      if (left === 0) return { seq, batches: batch - 1 };
    }
  };
  const control = (job: JobId, seq: number, t: number, text: string) => {
    // As EventLog.appendControl stores it: a batch of one CONTROL record, agent batch number 0.
    dbs.events.putSync([job, seq], encode({ type: 'batch', job, batch: 0, recs: [[t, REC.CONTROL, 0, text]] }));
    puts++;
    events++;
  };

  const CHUNK = 10_000;
  for (let from = 0; from < m.jobs; from += CHUNK) {
    dbs.env.transactionSync(() => {
      for (let i = from; i < Math.min(m.jobs, from + CHUNK); i++) {
        const now = start + i * spacing + Math.floor(rand() * spacing);
        const ni = pickName(rand());
        const owner = owners[pickOwner(rand())]!;
        const branch = rand() < 0.55 ? 'main' : `feature-${pickBranch(rand())}`;
        const repo = pickRepo(rand());
        // A push starts several jobs on one commit: a repository's commit changes every few jobs.
        if (rand() < 0.3) commits[repo] = hex40(rand);
        const tags: Record<string, string> = { repo: `oxidecomputer/${REPOS[repo]!}`, branch, commit: commits[repo]! };
        if (branch !== 'main') tags.pr = String(1 + Math.floor(rand() * 9000));
        const jobFile = ni % 2 === 0;
        const created = jobRecord({
          name: names[ni]!, owner: owner.id, target: nameTarget[ni]!, runTarget: nameTarget[ni]!,
          tasks: [{ name: jobFile ? 'default' : 'main', script: scripts[ni]!, env: jobFile ? {} : { CI: 'true' }, envClear: false }],
          outputRules: jobFile ? ['/work/out/*'] : [], tags, buildomat: jobFile, maxRuntimeMs: DEFAULTS.maxRuntimeMs,
        }, seededId<JobId>(now, rand), now);
        ids.push(created.id);
        // Jobs.insert: the record, its owner index, and the active index while it has not ended.
        dbs.jobsByOwner.putSync([created.owner, created.id], 1);
        puts++;
        if (i >= m.jobs - m.queued) {
          dbs.jobs.putSync(created.id, created);
          dbs.activeJobs.putSync(created.id, 1);
          puts += 2;
          counts.queued!++;
          continue;
        }
        // Its end: transition() writes the final record (and drops the active index, never written
        // here); finish() stores a control line first and, when completed, the name index.
        const r = rand();
        const to: 'completed' | 'failed' | 'cancelled' = i === longAt || i === shortAt ? 'completed' : r < 0.82 ? 'completed' : r < 0.96 ? 'failed' : 'cancelled';
        const cancelledQueued = to === 'cancelled' && rand() < 0.5;
        const assignedAt = cancelledQueued ? null : now + Math.round(logUniform(rand(), 200, 600_000));
        const endedAt = (assignedAt ?? now) + Math.round(logUniform(rand(), 5_000, 3_000_000));
        const worker = assignedAt === null ? null : workerIds[Math.floor(rand() * workerIds.length)]!;
        let reason: string;
        if (to === 'completed') reason = 'all 1 task(s) exited 0';
        else if (to === 'cancelled') reason = `cancelled by ${owner.name}`;
        else reason = rand() < 0.9 ? `task 0 (${created.tasks[0]!.name}) exited with status 1` : `its worker ${worker ?? '(none)'} no longer exists after a coordinator restart`;
        const done: JobRecord = {
          ...created, worker, assignedAt, state: to, reason, endedAt,
          // Cancelling a running job records the request first (Jobs.update) and ends it once the agent stops.
          ...(to === 'cancelled' && !cancelledQueued ? { cancelRequested: true } : {}),
        };
        dbs.jobs.putSync(created.id, done);
        puts++;
        if (to === 'completed') {
          dbs.completedByName.putSync([done.name, done.runTarget, done.id], 1);
          dbs.completedByName.putSync([done.name, '', done.id], 1);
          puts += 2;
        }
        counts[to]!++;
        // Logs for a few thousand jobs only: a log for every job would cost the budget of the whole scenario (see README).
        const lineCount = i === longAt ? m.longLogLines : i === shortAt ? m.shortLogLines : logEvery > 0 && i % logEvery === 0 ? Math.round(logUniform(rand(), 50, 1000)) : 0;
        if (lineCount === 0) continue;
        logged++;
        let seq = 1;
        if (assignedAt !== null) {
          control(created.id, seq++, assignedAt, `job assigned to worker ${worker}`);
          const end: LogRecord[] = [
            [endedAt, REC.TASK, 0, { event: 'exit', code: to === 'completed' ? 0 : 1, signal: null }],
            [endedAt, REC.JOB, 0, to === 'completed' ? { result: 'completed', reason } : { result: 'failed', reason: to === 'cancelled' ? `cancelled: ${reason}` : reason }],
          ];
          const b = agentBatches(created.id, created.tasks[0]!.name, seq, lineCount, assignedAt, end);
          seq = b.seq;
          if (i === longAt) longLog = { job: created.id, lastSeq: 0, batches: b.batches };
        }
        control(created.id, seq, endedAt, `job ${to}: ${reason}`);
        if (i === shortAt) shortLog = { job: created.id, lastSeq: seq };
        if (i === longAt) longLog.lastSeq = seq;
      }
    });
  }
  const ms = nowMs() - t0;
  const databases: Seeded['databases'] = {};
  for (const name of ['jobs', 'jobsByOwner', 'activeJobs', 'completedByName', 'events'] as const) {
    const st = dbs[name].getStats() as { pageSize: number; treeDepth: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number; entryCount: number };
    databases[name] = { entries: st.entryCount, depth: st.treeDepth, mib: ((st.treeBranchPageCount + st.treeLeafPageCount + st.overflowPages) * st.pageSize) / 2 ** 20 };
  }
  await dbs.env.close();
  return {
    ms, jobs: m.jobs, puts, events, logged, counts, adminToken, fileBytes: statSync(join(m.dir, 'lmdb', 'data.mdb')).size,
    cursors: { newest: ids.at(-1) ?? '', middle: ids[Math.floor(ids.length / 2)] ?? '', deep: ids[Math.floor(ids.length * 0.01)] ?? '' },
    longLog, shortLog,
    // By construction, so the small and the big store are queried with the same filters.
    filters: { commonName: names[0]!, midName: names[10]!, target: nameTarget[1]!, rareTag: `branch=feature-${BRANCHES - 10}`, commonTag: 'branch=main' },
    databases,
  };
}

/** The raw ceiling of a submission: the coordinator's own create + insert, no HTTP; see the file comment. */
async function rawInsert(m: { dir: string; n: number; concurrency: number; submit: SubmitSpec }): Promise<{ ms: number; n: number }> {
  const dbs = openStore(m.dir);
  const admin = dbs.userNames.get('admin') as UserId | undefined;
  if (!admin) throw new Error(`store at ${m.dir} has no admin user`);
  const jobs = jobsOn(dbs, { now: () => Date.now() });
  const made: string[] = [];
  const t0 = nowMs();
  await mapLimit(Array.from({ length: m.n }, (_, i) => i), m.concurrency, async () => {
    const job = jobs.create(newJobFromSubmit(m.submit, admin));
    made.push(job.id);
    await jobs.insert(job);
  });
  const ms = nowMs() - t0;
  dbs.env.transactionSync(() => {
    for (const id of made) {
      dbs.jobs.removeSync(id);
      dbs.jobsByOwner.removeSync([admin, id]);
      dbs.activeJobs.removeSync(id);
    }
  });
  await dbs.env.close();
  return { ms, n: m.n };
}

function send(m: Record<string, unknown>): void {
  process.send?.(m);
}

process.on('message', (m: { op: string } & Record<string, any>) => {
  const fail = (err: unknown) => send({ op: 'error', message: (err as Error).stack ?? String(err) });
  switch (m.op) {
    case 'seed':
      seed(m as never).then((r) => send({ op: 'seeded', ...r }), fail);
      return;
    case 'raw-insert':
      rawInsert(m as never).then((r) => send({ op: 'inserted', ...r }), fail);
      return;
    case 'exit':
      process.exit(0);
  }
});
