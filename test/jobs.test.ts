import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allEvents, DIST, startRig, submit, tempDir, until, waitJob } from './helpers.js';
import type { Rig } from './helpers.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('job lifecycle on the local factory', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig({ slots: 2 });
  });
  after(() => rig.close());

  test('a job sees a clean environment with BUILDWIRE_JOB_ID and BUILDWIRE_TASK_ID, in a fresh work directory', async () => {
    process.env.BW_LEAK_CHECK = 'leaked';
    const id = await submit(rig.admin, 'echo "job=$BUILDWIRE_JOB_ID task=$BUILDWIRE_TASK_ID leak=${BW_LEAK_CHECK:-none} pwd=$PWD"; ls -A | grep -v "^.buildwire$" | wc -l', { env: { FOO: 'bar' } });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'completed', job.reason);
    const out = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
    assert.match(out[0], new RegExp(`^job=${id} task=0 leak=none pwd=.*/job-${id}$`));
    assert.equal(out[1], '0');
  });

  test('tasks run in order and the first failing task fails the job with its exit status', async () => {
    const r = await rig.admin.call('POST', '/api/v1/jobs', {
      name: 'multi', target: 'local',
      tasks: [{ name: 'one', script: 'echo one' }, { name: 'two', script: 'echo two >&2; exit 3' }, { name: 'three', script: 'echo three' }],
    });
    const job = await waitJob(rig.admin, r.body.id);
    assert.equal(job.state, 'failed');
    assert.match(job.reason, /task 1 \(two\) exited with status 3/);
    const ev = await allEvents(rig.admin, r.body.id);
    assert.deepEqual(ev.filter((e) => e.stream === 'stdout' || e.stream === 'stderr').map((e) => [e.stream, e.task, e.text]), [['stdout', 0, 'one'], ['stderr', 1, 'two']]);
    assert.deepEqual(ev.filter((e) => e.stream === 'task' && e.event.event === 'exit').map((e) => e.event.code), [0, 3]);
  });

  test('cancelling a running job kills its whole process group', async () => {
    const d = tempDir();
    try {
      const pidFile = join(d.path, 'bg.pid');
      const id = await submit(rig.admin, `sleep 300 & echo $! > ${pidFile}; echo ready; wait`);
      await until('the background process', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().length > 0);
      const bg = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(alive(bg));
      const r = await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
      assert.equal(r.status, 200);
      const job = await waitJob(rig.admin, id);
      assert.equal(job.state, 'cancelled');
      await until('the background process to die', () => !alive(bg), 15_000);
      const again = await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
      assert.equal(again.status, 409);
      assert.equal(again.body.code, 'JOB_ENDED');
    } finally {
      d.remove();
    }
  });

  test('a job past its maximum runtime is cancelled with a control message saying so', async () => {
    const id = await submit(rig.admin, 'sleep 60', { maxRuntimeSeconds: 1 });
    const job = await waitJob(rig.admin, id);
    assert.equal(job.state, 'cancelled');
    const control = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'control').map((e) => e.text).join('\n');
    assert.match(control, /exceeded its maximum runtime of 1 s/);
  });

  test('the global hold keeps jobs queued until resumed', async () => {
    assert.equal((await rig.admin.call('POST', '/api/v1/control/hold')).status, 200);
    const id = await submit(rig.admin, 'echo held');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.state, 'queued');
    assert.equal((await rig.admin.call('GET', '/api/v1/control')).body.hold, true);
    await rig.admin.call('POST', '/api/v1/control/resume');
    assert.equal((await waitJob(rig.admin, id)).state, 'completed');
  });

  test('a queued job can be cancelled before it runs', async () => {
    await rig.admin.call('POST', '/api/v1/control/hold');
    const id = await submit(rig.admin, 'echo never');
    const r = await rig.admin.call('POST', `/api/v1/jobs/${id}/cancel`);
    await rig.admin.call('POST', '/api/v1/control/resume');
    assert.equal(r.body.state, 'cancelled');
    const ev = await allEvents(rig.admin, id);
    assert.equal(ev.filter((e) => e.stream === 'stdout').length, 0);
  });

  test('a buildomat job file runs with its frontmatter name, env and the BUILDOMAT_* variables', async () => {
    const jobFile = '#!/bin/bash\n#:\n#: name = "from-file"\n#: variety = "basic"\n#: target = "local"\n#: output_rules = ["/work/out/*"]\n#:\n#: [env]\n#: GREETING = "hi"\n#:\nset -o errexit\necho "bmat=$BUILDOMAT_JOB_ID $GREETING"\n';
    const r = await rig.admin.call('POST', '/api/v1/jobs', { jobFile, jobFileName: 'build.sh' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.name, 'from-file');
    assert.deepEqual(r.body.outputRules, ['/work/out/*']);
    assert.equal((await waitJob(rig.admin, r.body.id)).state, 'completed');
    const out = (await allEvents(rig.admin, r.body.id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
    assert.deepEqual(out, [`bmat=${r.body.id} hi`]);
  });

  test('store values reach the job (secrets included) while users see secrets hidden', async () => {
    await rig.admin.call('POST', '/api/v1/control/hold');
    const id = await submit(rig.admin, 'cat "$BUILDWIRE_STORE/plain"; echo; cat "$BUILDWIRE_STORE/token"; echo');
    await rig.admin.call('PUT', `/api/v1/jobs/${id}/store/plain`, { value: 'visible' });
    await rig.admin.call('PUT', `/api/v1/jobs/${id}/store/token`, { value: 's3cret', secret: true });
    const listed = await rig.admin.call('GET', `/api/v1/jobs/${id}/store`);
    assert.deepEqual(listed.body.store.token.value, null);
    assert.equal(listed.body.store.plain.value, 'visible');
    await rig.admin.call('POST', '/api/v1/control/resume');
    assert.equal((await waitJob(rig.admin, id)).state, 'completed');
    const out = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
    assert.deepEqual(out, ['visible', 's3cret']);
  });
});

describe('liveness', () => {
  test('a silent worker (agent stopped with SIGSTOP) has its job failed within the liveness bound, with a control message', async () => {
    await using rig = await startRig({ slots: 1, config: { heartbeatMs: 300, idleTimeoutSeconds: 2, workerLostGraceMs: 1000 } });
    const id = await submit(rig.admin, 'echo up; sleep 60');
    const job = await until('the job to start', async () => {
      const r = await rig.admin.call('GET', `/api/v1/jobs/${id}`);
      return r.body.lastEvent >= 3 ? r.body : undefined;
    });
    const pid = Number(/local-pid-(\d+)/.exec(rig.c.core.workers.get(job.worker)!.instance!)![1]);
    process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const ended = await waitJob(rig.admin, id, 30_000);
      const took = Date.now() - t0;
      assert.equal(ended.state, 'failed');
      assert.ok(took < 2000 + 1000 + 3000, `failed after ${took} ms; bound is idle timeout + grace`);
      const control = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'control').map((e) => e.text).join('\n');
      assert.match(control, new RegExp(`worker ${job.worker} lost`));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal((await waitJob(rig.admin, await submit(rig.admin, 'echo next'))).state, 'completed');
  });
});

describe('persistent agents', () => {
  function startAgent(url: string, worker: string, key: string, credential: string | null, state: string) {
    const child = spawn(process.execPath, [join(DIST, 'agent', 'main.js'), 'run'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        PATH: process.env.PATH!, BUILDWIRE_URL: url, BUILDWIRE_COORDINATOR_KEY: key, BUILDWIRE_WORKER_ID: worker,
        BUILDWIRE_AGENT_STATE: join(state, 'state'), BUILDWIRE_WORK_ROOT: join(state, 'work'), BUILDWIRE_BACKOFF_CAP_MS: '500',
        ...(credential ? { BUILDWIRE_BOOTSTRAP: credential } : {}),
      },
    });
    let err = '';
    child.stderr!.on('data', (b) => (err += b.toString()));
    return { child, stderr: () => err };
  }

  test('a persistent agent runs jobs one after another, and after a restart mid-job reports failure instead of re-running', async () => {
    await using rig = await startRig({ factory: false, config: { workerLostGraceMs: 10_000 } });
    await rig.c.core.dbs.targets.put('box', { v: 1, name: 'box', description: '', redirect: null, privilege: null, createdAt: Date.now() });
    const w = await rig.admin.call('POST', '/api/v1/workers', { target: 'box' });
    assert.equal(w.status, 201);
    const d = tempDir();
    let agent = startAgent(rig.c.url, w.body.id, w.body.coordinatorKey, w.body.credential, d.path);
    try {
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await submit(rig.admin, `echo run ${i}; ls -A | grep -vc '^.buildwire$' || true`, { target: 'box' }));
      for (const id of ids) assert.equal((await waitJob(rig.admin, id)).state, 'completed');
      for (const id of ids) {
        const out = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
        assert.equal(out[1], '0', 'each job starts in an empty work directory');
      }
      const counter = join(d.path, 'runs');
      const id = await submit(rig.admin, `echo x >> ${counter}; echo started; sleep 60`, { target: 'box' });
      await until('the job to start', async () => (await rig.admin.call('GET', `/api/v1/jobs/${id}`)).body.lastEvent >= 3);
      agent.child.kill('SIGKILL');
      await new Promise((r) => agent.child.on('exit', r));
      agent = startAgent(rig.c.url, w.body.id, w.body.coordinatorKey, null, d.path);
      const job = await waitJob(rig.admin, id, 30_000);
      assert.equal(job.state, 'failed');
      assert.match(job.reason, /agent restarted mid-job/);
      assert.equal(readFileSync(counter, 'utf8'), 'x\n', 'the task ran once, not again after the restart');
      const next = await submit(rig.admin, 'echo after restart', { target: 'box' });
      assert.equal((await waitJob(rig.admin, next)).state, 'completed');
      // The burned credential cannot be used again by anyone.
      assert.equal(rig.c.core.workers.get(w.body.id)!.credentialHash, null);
    } finally {
      agent.child.kill('SIGKILL');
      d.remove();
    }
  });
});

describe('persistent agents under a queue', () => {
  test('a persistent agent given its next job before it has closed the last one runs every queued job', async () => {
    await using rig = await startRig({ factory: false });
    await rig.c.core.dbs.targets.put('box', { v: 1, name: 'box', description: '', redirect: null, privilege: null, createdAt: Date.now() });
    const w = await rig.admin.call('POST', '/api/v1/workers', { target: 'box' });
    const d = tempDir();
    const child = spawn(process.execPath, [join(DIST, 'agent', 'main.js'), 'run'], {
      stdio: 'ignore',
      env: {
        PATH: process.env.PATH!, BUILDWIRE_URL: rig.c.url, BUILDWIRE_COORDINATOR_KEY: w.body.coordinatorKey, BUILDWIRE_WORKER_ID: w.body.id,
        BUILDWIRE_BOOTSTRAP: w.body.credential, BUILDWIRE_AGENT_STATE: join(d.path, 'state'), BUILDWIRE_WORK_ROOT: join(d.path, 'work'),
      },
    });
    try {
      const ids = await Promise.all(Array.from({ length: 300 }, (_, i) => submit(rig.admin, `echo ${i}`, { target: 'box' })));
      for (const id of ids) assert.equal((await waitJob(rig.admin, id, 60_000)).state, 'completed');
    } finally {
      child.kill('SIGKILL');
      d.remove();
    }
  });
});

describe('fallback server', () => {
  test('with the ws + node:http server a job runs end to end', async () => {
    await using rig = await startRig({ config: { server: 'node' } });
    assert.equal(rig.c.serverKind, 'node');
    const id = await submit(rig.admin, 'for i in 1 2 3; do echo $i; done');
    assert.equal((await waitJob(rig.admin, id)).state, 'completed');
    const out = (await allEvents(rig.admin, id)).filter((e) => e.stream === 'stdout').map((e) => e.text);
    assert.deepEqual(out, ['1', '2', '3']);
  });
});
