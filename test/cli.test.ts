/**
 * The `buildwire` command against a real coordinator started in this process
 * (127.0.0.1:0, temporary store). The CLI runs as a child process, exactly
 * as scripts run it, and the tests assert on its output and exit codes.
 * No agent or factory runs here: jobs stay queued (running jobs are covered
 * by the end-to-end tests).
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createUser, DEFAULTS, ensureTarget, startCoordinator, type Coordinator } from '../coordinator/index.js';
import { EventPrinter, type EventJson } from '../cli/tail.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Base environment of every run: no BUILDWIRE_* from the caller's shell. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('BUILDWIRE_')) env[k] = v;
  return env;
}

/** Runs the compiled CLI (never synchronously: the coordinator answering it lives in this process). */
function run(args: string[], o: { env?: Record<string, string>; input?: string; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: o.env ?? cleanEnv(), cwd: o.cwd ?? tmpdir() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(o.input ?? '');
  });
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('buildwire CLI', () => {
  let c: Coordinator;
  let dataDir: string;
  let work: string;
  let token: string;
  let env: Record<string, string>;
  /** Runs the CLI as the admin user. */
  const cli = (args: string[], o: { env?: Record<string, string>; input?: string } = {}) => run(args, { env: { ...env, ...o.env }, cwd: work, ...(o.input !== undefined ? { input: o.input } : {}) });
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await cli([...args, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };
  const submit = async (name: string, extra: string[] = []): Promise<string> => {
    const r = await cli(['job', 'run', '--name', name, '--target', 'local', '--script', 'echo hi', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'bw-cli-store-'));
    work = mkdtempSync(join(tmpdir(), 'bw-cli-cwd-'));
    c = await startCoordinator({ ...DEFAULTS, port: 0, dataDir, log: () => {} });
    ({ token } = await createUser(c.core, 'root', ['admin']));
    await ensureTarget(c.core, 'local', 'this host');
    env = { ...cleanEnv(), BUILDWIRE_URL: c.url, BUILDWIRE_TOKEN: token };
  });

  after(async () => {
    await c.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  describe('usage', () => {
    it('exits 64 naming the value and the rule when --env has no "="', async () => {
      const r = await cli(['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true', '--env', 'NOEQUALS']);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /^buildwire: --env "NOEQUALS" must be KEY=VALUE with a non-empty KEY\nrun 'buildwire job run --help' for usage\n$/);
    });

    it('exits 64 naming an unknown flag and listing the known ones', async () => {
      const r = await cli(['job', 'list', '--bogus']);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /unknown flag --bogus for 'buildwire job list' \(known: --state, --all, --limit, --json, --url, --token, --data\)/);
    });

    it('exits 64 naming a missing positional argument', async () => {
      const r = await cli(['job', 'store', 'get', '01J9Z3Q8W4M6T0Y2R5N7P9B1C3']);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /'buildwire job store get' needs KEY/);
    });

    it('exits 64 naming an unknown command and the known ones', async () => {
      const r = await cli(['admin', 'frobnicate']);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /unknown command "frobnicate" for 'buildwire admin' \(known: user, target, factory, worker, control\)/);
    });

    it('exits 64 naming an unreadable --file and its error code', async () => {
      const r = await cli(['job', 'run', '--name', 'x', '--target', 'local', '--file', 'no-such-job.sh']);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /--file "no-such-job.sh" must be a readable file \(ENOENT at .*no-such-job.sh\)/);
    });

    it('exits 64 for a flag missing its value, a zero --max-runtime, and --script with --file', async () => {
      const a = await cli(['job', 'run', '--name']);
      assert.equal(a.code, 64);
      assert.match(a.stderr, /flag --name needs a value \(NAME\)/);
      const b = await cli(['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true', '--max-runtime', '0']);
      assert.equal(b.code, 64);
      assert.match(b.stderr, /--max-runtime "0" must be a positive whole number/);
      const d = await cli(['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true', '--file', 'x.sh']);
      assert.equal(d.code, 64);
      assert.match(d.stderr, /give either --script or --file, not both/);
    });

    it('checks usage before contacting the coordinator (64 even when it is unreachable)', async () => {
      const r = await cli(['job', 'run', '--name', 'x', '--target', 'local', '--script', 'true', '--tag', '=v'], { env: { BUILDWIRE_URL: 'http://127.0.0.1:1' } });
      assert.equal(r.code, 64);
      assert.match(r.stderr, /--tag "=v" must be KEY=VALUE/);
    });

    it('keeps the factory token off the command line: factory local needs BUILDWIRE_FACTORY_TOKEN', async () => {
      const r = await cli(['factory', 'local', '--url', c.url, '--coordinator-key', c.publicKeyBase64]);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /BUILDWIRE_FACTORY_TOKEN must hold the factory token/);
      const t = await cli(['factory', 'local', '--url', c.url, '--coordinator-key', c.publicKeyBase64, '--token', 'x']);
      assert.equal(t.code, 64);
      assert.match(t.stderr, /unknown flag --token for 'buildwire factory local'/);
    });

    it('exits 64 when agent run lacks its environment, or --persistent lacks --target on a first start', async () => {
      const state = join(work, 'agent-state-usage');
      const a = await cli(['agent', 'run', '--state', state], { env: { BUILDWIRE_URL: c.url } });
      assert.equal(a.code, 64);
      assert.match(a.stderr, /the environment variable BUILDWIRE_COORDINATOR_KEY must hold the coordinator's public key/);
      const b = await cli(['agent', 'run', '--persistent', '--state', state]);
      assert.equal(b.code, 64);
      assert.match(b.stderr, /'buildwire agent run --persistent' needs --target T on its first start/);
      const d = await cli(['coordinator']);
      assert.equal(d.code, 64);
      assert.match(d.stderr, /'buildwire coordinator' needs --config FILE/);
    });

    it('answers --help with exit 0 and a usage line for every command and subcommand', async () => {
      // Walk the tree through the help texts themselves, so a command missing from its group's list is caught too.
      const seen: string[] = [];
      const walk = async (path: string[]): Promise<void> => {
        const r = await cli([...path, '--help']);
        assert.equal(r.code, 0, `${path.join(' ')}: ${r.stderr}`);
        assert.ok(r.stdout.startsWith(`Usage: buildwire ${path.length > 0 ? `${path.join(' ')} ` : ''}`), `${path.join(' ')} --help: ${r.stdout.slice(0, 80)}`);
        seen.push(path.join(' '));
        const list = /\nCommands:\n((?: {2}\S.*\n)+)/.exec(r.stdout)?.[1];
        if (!list) return;
        const names = list.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[0]!);
        // `up` is written elsewhere (cli/up.ts); its help is tested below.
        await Promise.all(names.filter((n) => n !== 'up').map((n) => walk([...path, n])));
      };
      await walk([]);
      for (const cmd of ['job run', 'job tail', 'job list', 'job show', 'job cancel', 'job store list', 'job store get', 'job store put',
        'admin user create', 'admin user list', 'admin user grant', 'admin user revoke', 'admin target create', 'admin target list',
        'admin target redirect', 'admin factory create', 'admin factory list', 'admin factory enable', 'admin factory disable',
        'admin worker list', 'admin worker create', 'admin worker hold', 'admin worker release', 'admin worker recycle',
        'admin control hold', 'admin control resume', 'admin control status', 'agent run', 'coordinator', 'factory local']) {
        assert.ok(seen.includes(cmd), `no help reached for ${cmd}`);
      }
      const viaHelp = await cli(['help', 'job', 'store', 'put']);
      assert.equal(viaHelp.code, 0);
      assert.match(viaHelp.stdout, /^Usage: buildwire job store put ID KEY VALUE \[--secret\]/);
    });

    it('documents the tail exit codes 0 completed, 1 failed, 2 cancelled in job tail --help', async () => {
      const r = await cli(['job', 'tail', '--help']);
      assert.match(r.stdout, /0 {3}the job completed\n {2}1 {3}the job failed.*\n {2}2 {3}the job was cancelled\n {2}64 {2}bad usage/);
    });

    it('prints up --help from cli/up.ts when it exists', { skip: !existsSync(fileURLToPath(new URL('../cli/up.js', import.meta.url))) && 'cli/up.ts is not written yet' }, async () => {
      const r = await cli(['up', '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.length > 0);
    });

    it('prints the package version for --version', async () => {
      const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
      const r = await cli(['--version']);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `buildwire ${pkg.version}\n`);
    });
  });

  describe('errors from the coordinator', () => {
    it('prints a 401 as "<message> (UNAUTHORIZED, HTTP 401)" and exits 1 for a wrong token', async () => {
      const r = await cli(['job', 'list'], { env: { BUILDWIRE_TOKEN: 'bwu_not-a-real-token' } });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'buildwire: the token is not known (UNAUTHORIZED, HTTP 401)\n');
    });

    it('prints a 404 for a well-formed but unknown job id', async () => {
      const r = await cli(['job', 'show', '01J9Z3Q8W4M6T0Y2R5N7P9B1C3']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'buildwire: job 01J9Z3Q8W4M6T0Y2R5N7P9B1C3 does not exist (NOT_FOUND, HTTP 404)\n');
    });

    it('prints a 400 for a malformed job id', async () => {
      const r = await cli(['job', 'show', 'not-an-id']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'buildwire: job id "not-an-id" is not a 26-character ULID (BAD_REQUEST, HTTP 400)\n');
    });

    it('prints a 403 when a user without the admin privilege runs an admin command', async () => {
      const { token: plain } = await createUser(c.core, 'plain', []);
      const r = await cli(['admin', 'user', 'list'], { env: { BUILDWIRE_TOKEN: plain } });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'buildwire: user plain lacks the "admin" privilege (FORBIDDEN, HTTP 403)\n');
    });

    it('says it cannot reach the coordinator at the URL when the connection is refused', async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      const r = await cli(['job', 'list'], { env: { BUILDWIRE_URL: url } });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `buildwire: cannot reach the coordinator at ${url} (connection refused); is it running? 'buildwire up' starts one\n`);
    });
  });

  describe('admin', () => {
    it('user create prints the token once on stdout; the token works; list, grant and revoke show privileges', async () => {
      const r = await cli(['admin', 'user', 'create', 'alice', '--privilege', 'read-all']);
      assert.equal(r.code, 0, r.stderr);
      const newToken = r.stdout.trim();
      assert.match(newToken, /^\S{20,}$/);
      assert.match(r.stderr, /created user alice \(\w{26}\) with privileges: read-all\n/);
      assert.match(r.stderr, /keep this token: it is shown only once/);
      const asAlice = await cli(['job', 'list', '--all'], { env: { BUILDWIRE_TOKEN: newToken } });
      assert.equal(asAlice.code, 0, asAlice.stderr);

      const list = await cli(['admin', 'user', 'list']);
      assert.match(list.stdout, /^NAME +ID +PRIVILEGES +CREATED\n/);
      assert.match(list.stdout, /\nalice +\w{26} +read-all +\d{4}-/);
      assert.ok(!list.stdout.includes(newToken), 'the token is never shown again');

      const grant = await cli(['admin', 'user', 'grant', 'alice', 'deploy']);
      assert.equal(grant.stdout, 'user alice now has privileges: read-all, deploy\n');
      const revoke = await cli(['admin', 'user', 'revoke', 'alice', 'read-all']);
      assert.equal(revoke.stdout, 'user alice now has privileges: deploy\n');
      const users = await json<{ users: { name: string; privileges: string[] }[] }>(['admin', 'user', 'list']);
      assert.deepEqual(users.users.find((u) => u.name === 'alice')?.privileges, ['deploy']);

      const dup = await cli(['admin', 'user', 'create', 'alice']);
      assert.equal(dup.code, 1);
      assert.equal(dup.stderr, 'buildwire: user alice already exists (USER_EXISTS, HTTP 409)\n');
    });

    it('target create, redirect and list: the redirect shows, --clear removes it, TO with --clear is bad usage', async () => {
      assert.equal((await cli(['admin', 'target', 'create', 'old-os', '--description', 'retiring'])).stdout, 'created target old-os\n');
      assert.equal((await cli(['admin', 'target', 'create', 'new-os', '--privilege', 'os-users'])).stdout, 'created target new-os (needs privilege os-users)\n');
      const red = await cli(['admin', 'target', 'redirect', 'old-os', 'new-os']);
      assert.equal(red.stdout, 'target old-os now redirects to new-os\n');
      const list = await cli(['admin', 'target', 'list']);
      assert.match(list.stdout, /\nold-os +new-os +- +retiring\n/);
      assert.match(list.stdout, /\nnew-os +- +os-users +-\n/);

      const loop = await cli(['admin', 'target', 'redirect', 'new-os', 'old-os']);
      assert.equal(loop.code, 1);
      assert.match(loop.stderr, /would make a redirect loop \(BAD_REQUEST, HTTP 400\)/);
      const both = await cli(['admin', 'target', 'redirect', 'old-os', 'new-os', '--clear']);
      assert.equal(both.code, 64);
      const neither = await cli(['admin', 'target', 'redirect', 'old-os']);
      assert.equal(neither.code, 64);
      assert.match(neither.stderr, /needs TO \(a target\) or --clear/);

      // A job sent to the redirected target is placed on the new one.
      const id = (await cli(['job', 'run', '--name', 'redirected', '--target', 'old-os', '--script', 'true'])).stdout.trim();
      const job = await json<{ target: string; runTarget: string }>(['job', 'show', id]);
      assert.deepEqual([job.target, job.runTarget], ['old-os', 'new-os']);
      await cli(['job', 'cancel', id]);

      assert.equal((await cli(['admin', 'target', 'redirect', 'old-os', '--clear'])).stdout, 'target old-os no longer redirects\n');
      const targets = await json<{ targets: { name: string; redirect: string | null }[] }>(['admin', 'target', 'list']);
      assert.equal(targets.targets.find((t) => t.name === 'old-os')?.redirect, null);
    });

    it('factory create prints its token; list shows it enabled; disable turns it off; --target is required', async () => {
      const r = await cli(['admin', 'factory', 'create', 'lab', '--target', 'local', '--target', 'new-os']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.trim(), /^\S{20,}$/);
      assert.match(r.stderr, /created factory lab \(\w{26}\) for targets: local, new-os/);
      const list = await cli(['admin', 'factory', 'list']);
      assert.match(list.stdout, /\nlab +\w{26} +local,new-os +yes +no +- +-\n/);
      const dis = await cli(['admin', 'factory', 'disable', 'lab']);
      assert.equal(dis.stdout, 'factory lab disabled\n');
      const f = await json<{ factories: { name: string; enabled: boolean }[] }>(['admin', 'factory', 'list']);
      assert.equal(f.factories.find((x) => x.name === 'lab')?.enabled, false);
      assert.equal((await cli(['admin', 'factory', 'enable', 'lab'])).stdout, 'factory lab enabled\n');

      const none = await cli(['admin', 'factory', 'create', 'lab2']);
      assert.equal(none.code, 64);
      assert.match(none.stderr, /needs at least one --target T/);
      const unknown = await cli(['admin', 'factory', 'create', 'lab3', '--target', 'nope']);
      assert.equal(unknown.code, 1);
      assert.equal(unknown.stderr, 'buildwire: target "nope" does not exist (UNKNOWN_TARGET, HTTP 400)\n');
    });

    it('worker create prints id, credential and coordinator key; list, hold, release and recycle act on it', async () => {
      const r = await cli(['admin', 'worker', 'create', '--target', 'local']);
      assert.equal(r.code, 0, r.stderr);
      const m = /^worker: +(\w{26})\ncredential: +(\S+)\ncoordinator key: +(\S+)\n$/.exec(r.stdout);
      assert.ok(m, r.stdout);
      assert.equal(m[3], c.publicKeyBase64);
      const id = m[1]!;
      const list = await cli(['admin', 'worker', 'list']);
      assert.match(list.stdout, new RegExp(`\\n${id} +local +pending +- +persistent +no +no +0 +-\\n`));
      assert.match((await cli(['admin', 'worker', 'hold', id])).stdout, /, held\n$/);
      assert.doesNotMatch((await cli(['admin', 'worker', 'release', id])).stdout, /held/);
      assert.equal((await cli(['admin', 'worker', 'recycle', id])).code, 0);
      const all = await json<{ workers: { id: string }[] }>(['admin', 'worker', 'list', '--all']);
      assert.ok(all.workers.some((w) => w.id === id));
    });

    it('control hold and resume toggle assignment, and status reports it', async () => {
      assert.equal((await cli(['admin', 'control', 'hold'])).stdout, 'assignment is held: no new jobs are assigned\n');
      assert.match((await cli(['admin', 'control', 'status'])).stdout, /^hold: +yes/);
      assert.equal((await cli(['admin', 'control', 'resume'])).stdout, 'assignment is running\n');
      assert.equal((await json<{ hold: boolean }>(['admin', 'control', 'status'])).hold, false);
    });
  });

  describe('jobs', () => {
    it('job run prints the id; with no agent the job stays queued and list, show and --json show it', async () => {
      const id = await submit('hello world', ['--env', 'GREETING=hi=there', '--tag', 'branch=main', '--max-runtime', '600']);
      assert.match(id, ULID);
      const list = await json<{ jobs: { id: string; state: string }[] }>(['job', 'list']);
      assert.equal(list.jobs.find((j) => j.id === id)?.state, 'queued');
      const table = await cli(['job', 'list', '--state', 'queued']);
      assert.match(table.stdout, new RegExp(`\\n${id} +hello world +local +queued +`));
      const job = await json<{ state: string; tags: Record<string, string>; maxRuntimeMs: number; tasks: { name: string; script: string; env: Record<string, string> }[] }>(['job', 'show', id]);
      assert.equal(job.state, 'queued');
      assert.deepEqual(job.tags, { branch: 'main' });
      assert.equal(job.maxRuntimeMs, 600_000);
      assert.deepEqual(job.tasks.map((t) => [t.name, t.script, t.env]), [['default', 'echo hi', { GREETING: 'hi=there' }]]);
      const shown = await cli(['job', 'show', id]);
      assert.match(shown.stdout, /^id: +\w{26}\nname: +hello world\nstate: +queued\n/);
      assert.match(shown.stdout, /\ntask 0 \(default\):\n {2}env: GREETING=hi=there\n {4}echo hi\n/);
    });

    it('job cancel ends a queued job as cancelled; cancelling again is a 409', async () => {
      const id = await submit('to-cancel');
      assert.equal((await cli(['job', 'cancel', id])).stdout, `job ${id} cancelled\n`);
      assert.equal((await json<{ state: string }>(['job', 'show', id])).state, 'cancelled');
      const again = await cli(['job', 'cancel', id]);
      assert.equal(again.code, 1);
      assert.equal(again.stderr, `buildwire: job ${id} already ended (cancelled) (JOB_ENDED, HTTP 409)\n`);
    });

    it('job tail replays the events of an ended job, control lines on stderr prefixed "| ", and exits 2 for cancelled', async () => {
      const id = await submit('tail-me');
      await cli(['job', 'cancel', id]);
      const r = await cli(['job', 'tail', id]);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, '| job cancelled: cancelled by root\n');
      const ts = await cli(['job', 'tail', id, '--timestamps']);
      assert.match(ts.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \| job cancelled: cancelled by root\n$/);
      const js = await cli(['job', 'tail', id, '--json']);
      assert.equal(js.code, 2);
      const events = js.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; stream: string; text: string });
      assert.deepEqual(events.map((e) => [e.seq, e.stream, e.text]), [[1, 'control', 'job cancelled: cancelled by root']]);
    });

    it('job run --tail follows a job until it ends and exits 2 when it is cancelled meanwhile', async () => {
      const child = spawn(process.execPath, [MAIN, 'job', 'run', '--name', 'follow', '--target', 'local', '--script', 'true', '--tail'], { env, cwd: work });
      let stderr = '';
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      const submitted = new Promise<string>((resolve) => {
        child.stderr.setEncoding('utf8').on('data', (s: string) => {
          stderr += s;
          const m = /\| job (\w{26}) \(follow\) submitted to target local\n/.exec(stderr);
          if (m) resolve(m[1]!);
        });
      });
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      const id = await submitted;
      // The tail is now long-polling; a cancel must wake it at once, not after the 25 s wait.
      const t0 = Date.now();
      assert.equal((await cli(['job', 'cancel', id])).code, 0);
      assert.equal(await exited, 2);
      assert.ok(Date.now() - t0 < 10_000, `tail took ${Date.now() - t0} ms to notice`);
      assert.equal(stdout, '');
      assert.match(stderr, /\| job cancelled: cancelled by root\n$/);
    });

    it('job run --file sends a #: job file for the coordinator to parse; flags override its name', async () => {
      const file = join(work, 'build.sh');
      writeFileSync(file, '#!/bin/bash\n#:\n#: name = "from-frontmatter"\n#: variety = "basic"\n#: target = "local"\n#: output_rules = ["/out/*"]\n\necho built\n');
      const id = (await cli(['job', 'run', '--file', file])).stdout.trim();
      const job = await json<{ name: string; target: string; buildomat: boolean; outputRules: string[] }>(['job', 'show', id]);
      assert.deepEqual([job.name, job.target, job.buildomat, job.outputRules], ['from-frontmatter', 'local', true, ['/out/*']]);
      const over = (await cli(['job', 'run', '--file', file, '--name', 'renamed'])).stdout.trim();
      assert.equal((await json<{ name: string }>(['job', 'show', over])).name, 'renamed');

      const plain = join(work, 'plain.sh');
      writeFileSync(plain, 'echo plain\n');
      const noName = await cli(['job', 'run', '--file', plain, '--target', 'local']);
      assert.equal(noName.code, 64);
      assert.match(noName.stderr, /needs --name NAME \(only a job file with #: frontmatter may leave it out\)/);
      const pid = (await cli(['job', 'run', '--file', plain, '--name', 'plain', '--target', 'local'])).stdout.trim();
      const pj = await json<{ buildomat: boolean; tasks: { script: string }[] }>(['job', 'show', pid]);
      assert.deepEqual([pj.buildomat, pj.tasks[0]?.script], [false, 'echo plain\n']);

      const bad = join(work, 'bad.sh');
      writeFileSync(bad, '#!/bin/bash\n#: name = "x"\n');
      const refused = await cli(['job', 'run', '--file', bad]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /\(BAD_JOB_FILE, HTTP 400\)\n$/);
      for (const j of [id, over, pid]) await cli(['job', 'cancel', j]);
    });

    it('job store put, get and list: a secret is never printed and get says it is hidden', async () => {
      const id = await submit('with-store');
      assert.equal((await cli(['job', 'store', 'put', id, 'VERSION', '1.2.3'])).stdout, `set VERSION on job ${id}\n`);
      assert.equal((await cli(['job', 'store', 'put', id, 'API_KEY', '-', '--secret'], { input: 's3cr3t\n' })).stdout, `set API_KEY on job ${id} (secret)\n`);
      assert.equal((await cli(['job', 'store', 'get', id, 'VERSION'])).stdout, '1.2.3\n');
      const secret = await cli(['job', 'store', 'get', id, 'API_KEY']);
      assert.equal(secret.code, 1);
      assert.equal(secret.stdout, '');
      assert.equal(secret.stderr, `buildwire: store key API_KEY of job ${id} is secret: its value is hidden and cannot be read back\n`);
      const list = await cli(['job', 'store', 'list', id]);
      assert.match(list.stdout, /^KEY +VALUE +UPDATED\n/);
      assert.match(list.stdout, /\nAPI_KEY +<secret> +\d{4}-/);
      assert.match(list.stdout, /\nVERSION +"1\.2\.3" +\d{4}-/);
      assert.ok(!list.stdout.includes('s3cr3t'));
      const js = await json<{ store: Record<string, { value: string | null; secret: boolean }> }>(['job', 'store', 'list', id]);
      assert.deepEqual(js.store.API_KEY && [js.store.API_KEY.value, js.store.API_KEY.secret], [null, true]);
      const missing = await cli(['job', 'store', 'get', id, 'NOPE']);
      assert.equal(missing.stderr, `buildwire: job ${id} has no store key "NOPE" (NOT_FOUND, HTTP 404)\n`);
      await cli(['job', 'cancel', id]);
    });
  });

  describe('finding the coordinator', () => {
    const noEnv = () => cleanEnv();

    it('reads the URL and token file from <--data>/cli.json when neither flags nor environment give them', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'bw-cli-data-'));
      try {
        writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o600 });
        writeFileSync(join(dir, 'cli.json'), JSON.stringify({ url: c.url, tokenFile: join(dir, 'admin-token') }));
        const r = await run(['admin', 'user', 'list', '--data', dir], { env: noEnv(), cwd: work });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /\nroot +/);
        const viaEnv = await run(['job', 'list'], { env: { ...noEnv(), BUILDWIRE_DATA: dir }, cwd: work });
        assert.equal(viaEnv.code, 0, viaEnv.stderr);
        // A flag wins over the file.
        const flag = await run(['--token', 'wrong', 'job', 'list', '--data', dir], { env: noEnv(), cwd: work });
        assert.equal(flag.stderr, 'buildwire: the token is not known (UNAUTHORIZED, HTTP 401)\n');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('uses ./.buildwire/cli.json by default', async () => {
      const cwd = mkdtempSync(join(tmpdir(), 'bw-cli-default-'));
      try {
        mkdirSync(join(cwd, '.buildwire'));
        writeFileSync(join(cwd, '.buildwire', 'admin-token'), token);
        writeFileSync(join(cwd, '.buildwire', 'cli.json'), JSON.stringify({ url: c.url, tokenFile: join(cwd, '.buildwire', 'admin-token') }));
        const r = await run(['admin', 'control', 'status'], { env: noEnv(), cwd });
        assert.equal(r.code, 0, r.stderr);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });

    it('names the cli.json it looked for when nothing says where the coordinator is', async () => {
      const dir = join(tmpdir(), 'bw-cli-nowhere');
      const r = await run(['job', 'list', '--data', dir], { env: noEnv(), cwd: work });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `buildwire: no coordinator given: pass --url URL, set BUILDWIRE_URL, or start one with 'buildwire up' (it writes ${dir}/cli.json, which was not found)\n`);
    });

    it('names the token file when cli.json points at one that cannot be read', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'bw-cli-data-'));
      try {
        writeFileSync(join(dir, 'cli.json'), JSON.stringify({ url: c.url, tokenFile: join(dir, 'gone') }));
        const r = await run(['job', 'list', '--data', dir], { env: noEnv(), cwd: work });
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `buildwire: cannot read the token file ${join(dir, 'gone')} named in ${join(dir, 'cli.json')} (ENOENT)\n`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

// The restart happens inside this process, on the same port. Under uWS, re-listening there fails
// while the old server's closed connections linger (FIN-WAIT) in the same process; a new process
// binds at once. The node fallback server re-listens fine, and the CLI side is the same either way.
const RESTART_SERVER = 'node' as const;

describe('job tail across a coordinator restart', () => {
  // 120 s: a slow CI host once took more than 60; each step below is bounded and names itself.
  it('retries from the last event and prints every line once', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bw-cli-restart-'));
    let c = await startCoordinator({ ...DEFAULTS, port: 0, dataDir, log: () => {}, server: RESTART_SERVER });
    let child: ChildProcess | undefined;
    try {
      const { token } = await createUser(c.core, 'root', ['admin']);
      await ensureTarget(c.core, 'local', 'this host');
      const env = { ...cleanEnv(), BUILDWIRE_URL: c.url, BUILDWIRE_TOKEN: token };
      const id = (await run(['job', 'run', '--name', 'restart', '--target', 'local', '--script', 'true'], { env })).stdout.trim();
      await c.core.events.appendControl(id as never, 'before the restart');
      const tail = spawn(process.execPath, [MAIN, 'job', 'tail', id], { env });
      child = tail;
      let stderr = '';
      tail.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      let closed = false;
      const exited = new Promise<number | null>((resolve) => tail.on('close', (code) => ((closed = true), resolve(code))));
      // Fails at once, with what the tail printed, if the tail exits first or 40 s pass.
      const seen = (re: RegExp) => new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 40_000;
        const check = () => {
          if (re.test(stderr)) return resolve();
          if (closed || Date.now() > deadline) return reject(new Error(`${closed ? 'the tail exited' : '40 s passed'} before ${re}; its stderr: ${stderr}`));
          setTimeout(check, 20);
        };
        check();
      });
      await seen(/\| before the restart\n/);
      const port = c.port;
      await c.close();
      await seen(/\| lost the coordinator at http:\/\/127\.0\.0\.1:\d+ \(\w+\); retrying from event 2 for up to 60 s\n/);
      c = await startCoordinator({ ...DEFAULTS, port, dataDir, log: () => {}, server: RESTART_SERVER });
      await c.core.events.appendControl(id as never, 'after the restart');
      await seen(/\| after the restart\n/);
      await c.core.jobs.cancel(id as never, 'the test is over');
      assert.equal(await exited, 2);
      assert.equal(stderr.match(/before the restart/g)?.length, 1, stderr);
      assert.equal(stderr.match(/after the restart/g)?.length, 1, stderr);
      assert.match(stderr, /\| reconnected to the coordinator after \d+ s\n/);
      assert.match(stderr, /\| job cancelled: the test is over\n$/);
    } finally {
      child?.kill('SIGKILL');
      await c.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('EventPrinter', () => {
  const capture = () => {
    const s = new PassThrough();
    const parts: Buffer[] = [];
    s.on('data', (b: Buffer) => parts.push(b));
    return { s, bytes: () => Buffer.concat(parts) };
  };
  const ev = (seq: number, stream: EventJson['stream'], more: Partial<EventJson>): EventJson => ({ seq, time: Date.UTC(2026, 0, 2, 3, 4, 5, 6), stream, task: 0, ...more });

  it('sends stdout lines to stdout and stderr lines to stderr, writing non-UTF-8 lines from their exact bytes', async () => {
    const out = capture();
    const err = capture();
    const p = new EventPrinter({ timestamps: false, json: false, stdout: out.s, stderr: err.s });
    await p.print(ev(1, 'task', { event: { event: 'start', name: 'build' } }));
    await p.print(ev(2, 'stdout', { text: 'hello' }));
    await p.print(ev(3, 'stderr', { text: 'warning' }));
    await p.print(ev(4, 'stdout', { text: '\ufffd\ufffd', base64: Buffer.from([0xff, 0xfe, 0x41]).toString('base64') }));
    await p.print(ev(5, 'task', { event: { event: 'exit', code: 3, signal: null } }));
    await p.print(ev(6, 'task', { task: 1, event: { event: 'exit', code: null, signal: 'SIGKILL' } }));
    await p.print(ev(7, 'worker', { text: 'uploading outputs' }));
    await p.print(ev(8, 'job', { event: { result: 'failed', reason: 'task 0 exited 3' } }));
    await p.print(ev(9, 'control', { text: 'job failed: task 0 exited 3' }));
    assert.deepEqual(out.bytes(), Buffer.concat([Buffer.from('hello\n'), Buffer.from([0xff, 0xfe, 0x41]), Buffer.from('\n')]));
    assert.equal(err.bytes().toString(), [
      '| task 0 (build) started', 'warning', '| task 0 exited 3', '| task 1 killed by SIGKILL', '| worker: uploading outputs',
      '| agent: job failed: task 0 exited 3', '| job failed: task 0 exited 3', '',
    ].join('\n'));
  });

  it('joins partial pieces without a newline and stamps only the start of a line with --timestamps', async () => {
    const out = capture();
    const err = capture();
    const p = new EventPrinter({ timestamps: true, json: false, stdout: out.s, stderr: err.s });
    await p.print(ev(1, 'stdout', { text: 'a long ', partial: true }));
    await p.print(ev(2, 'stdout', { text: 'line' }));
    await p.print(ev(3, 'stderr', { text: 'no newline at the end', partial: true }));
    await p.print(ev(4, 'control', { text: 'job completed: all tasks exited 0' }));
    const t = '2026-01-02T03:04:05.006Z';
    assert.equal(out.bytes().toString(), `${t} a long line\n`);
    assert.equal(err.bytes().toString(), `${t} no newline at the end\n${t} | job completed: all tasks exited 0\n`);
  });

  it('prints one event JSON per line on stdout with --json', async () => {
    const out = capture();
    const err = capture();
    const p = new EventPrinter({ timestamps: false, json: true, stdout: out.s, stderr: err.s });
    const e = ev(1, 'stderr', { text: 'x', partial: true });
    await p.print(e);
    assert.deepEqual(JSON.parse(out.bytes().toString()), e);
    assert.equal(err.bytes().length, 0);
  });
});
