import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIST, tempDir, until } from './helpers.js';

const CLI = join(DIST, 'cli', 'main.js');

function cli(args: string[], env: Record<string, string> = {}) {
  const env0 = { ...process.env };
  delete env0.BUILDWIRE_URL;
  delete env0.BUILDWIRE_TOKEN;
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...env0, ...env }, timeout: 120_000 });
}

test('buildwire up runs the sample job to completion, writes a 0600 admin token, and reuses its store on the next start', () => {
  const d = tempDir();
  try {
    const first = cli(['up', '--port', '0', '--data', d.path, '--once']);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /buildwire is up/);
    assert.match(first.stdout, /step 5 of 5/);
    assert.match(first.stdout, /sample job completed/);
    assert.match(first.stderr, /this line goes to stderr/, 'stderr lines go to stderr');
    const tokenPath = join(d.path, 'admin-token');
    assert.equal(statSync(tokenPath).mode & 0o777, 0o600);
    const token = readFileSync(tokenPath, 'utf8');
    const second = cli(['up', '--port', '0', '--data', d.path, '--once', '--no-sample']);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(readFileSync(tokenPath, 'utf8'), token, 'the same admin token is kept');
  } finally {
    d.remove();
  }
});

test('right after buildwire up, job run --tail needs no flags but --data, prints the lines and exits 0; Ctrl-C stops up cleanly', async () => {
  const d = tempDir();
  const up = spawn(process.execPath, [CLI, 'up', '--port', '0', '--data', d.path, '--no-sample'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout!.on('data', (b) => (out += b.toString()));
  up.stderr!.on('data', () => {});
  try {
    await until('up to serve', () => out.includes('press Ctrl-C'), 60_000);
    const run = cli(['job', 'run', '--data', d.path, '--name', 'hello', '--target', 'local', '--script', 'for i in $(seq 1 5); do echo line $i; sleep 0.1; done', '--tail']);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'line 1\nline 2\nline 3\nline 4\nline 5\n');
    const failing = cli(['job', 'run', '--data', d.path, '--name', 'bad', '--target', 'local', '--script', 'echo oops >&2; exit 4', '--tail']);
    assert.equal(failing.status, 1);
    assert.match(failing.stderr, /oops/);
    const list = cli(['job', 'list', '--data', d.path, '--json']);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).jobs.map((j: { name: string; state: string }) => [j.name, j.state]), [['bad', 'failed'], ['hello', 'completed']]);
  } finally {
    const exited = new Promise<number | null>((r) => up.on('exit', (code) => r(code)));
    up.kill('SIGINT');
    assert.equal(await exited, 0, 'a first SIGINT drains and exits 0');
    d.remove();
  }
});
