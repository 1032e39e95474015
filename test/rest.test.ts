/**
 * The REST API's refusals against a real coordinator on 127.0.0.1:0: malformed
 * input is a 400 that names the field, unknown ids are 404, missing or wrong
 * tokens 401, missing privileges 403, and one user never sees another's jobs
 * without `read-all`. Every response of the file is kept, and the last test
 * asserts that none was a 500.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { startRig } from './helpers.js';
import type { Api, Rig } from './helpers.js';

interface Seen {
  method: string;
  path: string;
  status: number;
  body: unknown;
}

/** Every response this file received. */
const seen: Seen[] = [];

/** An Api that records every response into `seen`. */
function recorded(a: Api): Api {
  return {
    url: a.url, token: a.token,
    async call(method, path, body, token) {
      const r = await a.call(method, path, body, token);
      seen.push({ method, path, status: r.status, body: r.body });
      return r;
    },
  };
}

type Reply = Awaited<ReturnType<Api['call']>>;

/** Asserts an error response: status, stable code, and the message (exact, or a pattern). */
function assertError(r: Reply, status: number, code: string, message: string | RegExp): void {
  assert.deepEqual({ status: r.status, code: r.body?.code }, { status, code }, JSON.stringify(r.body));
  if (typeof message === 'string') assert.equal(r.body.message, message);
  else assert.match(r.body.message, message);
}

const MISSING_JOB = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
const MISSING_WORKER = '01ARZ3NDEKTSV4RRFFQ69G5FAW';
const task = (script = 'echo hi') => [{ name: 'main', script }];

describe('REST API refusals', () => {
  let rig: Rig;
  let admin: Api;
  const maxBodyBytes = 64 * 1024;

  before(async () => {
    rig = await startRig({ factory: false, config: { maxBodyBytes } });
    admin = recorded(rig.admin);
  });
  after(() => rig?.close());

  async function newUser(name: string, privileges: string[] = []): Promise<{ id: string; api: Api }> {
    const r = await admin.call('POST', '/api/v1/users', { name, privileges });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return { id: r.body.id, api: recorded({ ...rig.admin, token: r.body.token, call: (m, p, b, t = r.body.token) => rig.admin.call(m, p, b, t) }) };
  }

  async function submitAs(a: Api, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await a.call('POST', '/api/v1/jobs', { name: 'job', target: 'local', tasks: task(), ...extra });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  }

  describe('malformed input is 400 naming the field', () => {
    test('a job id in the path that is not a ULID is 400 naming the id', async () => {
      assertError(await admin.call('GET', '/api/v1/jobs/not-an-id'), 400, 'BAD_REQUEST', 'job id "not-an-id" is not a 26-character ULID');
      assertError(await admin.call('GET', '/api/v1/jobs/not-an-id/events'), 400, 'BAD_REQUEST', 'job id "not-an-id" is not a 26-character ULID');
      assertError(await admin.call('POST', '/api/v1/jobs/not-an-id/cancel'), 400, 'BAD_REQUEST', 'job id "not-an-id" is not a 26-character ULID');
    });

    test('a worker id in the path that is not a ULID is 400 naming the id', async () => {
      assertError(await admin.call('POST', '/api/v1/workers/w1/hold'), 400, 'BAD_REQUEST', 'worker id "w1" is not a 26-character ULID');
    });

    test('a path segment that is not valid percent-encoding is 400', async () => {
      assertError(await admin.call('GET', '/api/v1/jobs/%ZZ'), 400, 'BAD_REQUEST', 'path segment "%ZZ" is not valid percent-encoding');
    });

    test('a body that is not JSON is 400', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', '{"name":'), 400, 'BAD_REQUEST', /^request body is not valid JSON: /);
    });

    test('an empty body is 400', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', ''), 400, 'BAD_REQUEST', 'request body must be a JSON object, got an empty body');
    });

    test('a JSON body that is not an object is 400', async () => {
      for (const body of ['[1,2]', 'null', '"text"', '42']) {
        assertError(await admin.call('POST', '/api/v1/jobs', body), 400, 'BAD_REQUEST', 'request body must be a JSON object');
      }
    });

    test('a job without `name` is 400 naming "name"', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { target: 'local', tasks: task() }), 400, 'BAD_REQUEST', 'field "name" must be a string and is missing');
    });

    test('a `name` of the wrong type or shape is 400 naming "name"', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 7, target: 'local', tasks: task() }), 400, 'BAD_REQUEST', 'field "name" must be a string, got number');
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 'a\u0007b', target: 'local', tasks: task() }), 400, 'BAD_REQUEST',
        'field "name" "a\\u0007b" must be 1 to 128 printable characters, not starting or ending with a space');
      assertError(await admin.call('POST', '/api/v1/jobs', { name: ' lead', target: 'local', tasks: task() }), 400, 'BAD_REQUEST',
        'field "name" " lead" must be 1 to 128 printable characters, not starting or ending with a space');
    });

    test('a wrong-typed `tasks[0].script` is 400 naming "tasks[0].script"', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'local', tasks: [{ script: 5 }] }), 400, 'BAD_REQUEST', 'field "tasks[0].script" must be a non-empty string');
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'local', tasks: [{ script: 'x' }, { script: '' }] }), 400, 'BAD_REQUEST', 'field "tasks[1].script" must be a non-empty string');
    });

    test('malformed task fields are 400 naming the task and field', async () => {
      const post = (t: unknown) => admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'local', tasks: [t] });
      assertError(await post({ script: 'x', env: { A: 1 } }), 400, 'BAD_REQUEST', 'field "tasks[0].env" must be a string, got number');
      assertError(await post({ script: 'x', uid: -1 }), 400, 'BAD_REQUEST', 'field "tasks[0].uid" must be an integer from 0 to 2147483648, got -1');
      assertError(await post({ script: 'x', envClear: 'yes' }), 400, 'BAD_REQUEST', 'field "tasks[0].envClear" must be a boolean, got string');
      assertError(await post(null), 400, 'BAD_REQUEST', 'field "tasks[0]" must be an object');
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'local', tasks: [] }), 400, 'BAD_REQUEST', 'field "tasks" must be an array of 1 to 100 tasks');
    });

    test('an unknown target is 400 UNKNOWN_TARGET naming the target; a malformed one is 400 naming it', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'nope', tasks: task() }), 400, 'UNKNOWN_TARGET', 'target "nope" does not exist');
      assertError(await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'Not A Target', tasks: task() }), 400, 'BAD_REQUEST',
        'target "Not A Target" must be 1 to 64 of [a-z0-9._-], starting with a letter or digit');
      assertError(await admin.call('POST', '/api/v1/workers', { target: 'nope' }), 400, 'UNKNOWN_TARGET', 'target nope does not exist');
    });

    test('a bad `state` query is 400 naming the parameter and the value', async () => {
      assertError(await admin.call('GET', '/api/v1/jobs?state=bogus'), 400, 'BAD_REQUEST',
        'query parameter "state" must be one of queued, waiting, running, completed, failed, cancelled, got "bogus"');
    });

    test('bad numeric queries are 400 naming the parameter', async () => {
      assertError(await admin.call('GET', '/api/v1/jobs?limit=0'), 400, 'BAD_REQUEST', 'query parameter "limit" must be an integer from 1 to 1000, got "0"');
      const id = await submitAs(admin);
      assertError(await admin.call('GET', `/api/v1/jobs/${id}/events?after=-1`), 400, 'BAD_REQUEST',
        'query parameter "after" must be an integer from 0 to 9007199254740991, got "-1"');
      assertError(await admin.call('GET', `/api/v1/jobs/${id}/events?wait=soon`), 400, 'BAD_REQUEST', 'query parameter "wait" must be an integer from 0 to 30, got "soon"');
      assertError(await admin.call('GET', '/api/v1/jobs?before=yesterday'), 400, 'BAD_REQUEST', 'job id "yesterday" is not a 26-character ULID');
    });

    test('a bad store key is 400 naming the key', async () => {
      const id = await submitAs(admin);
      const rule = 'must be 1 to 100 of [A-Za-z0-9_], not starting with a digit';
      assertError(await admin.call('GET', `/api/v1/jobs/${id}/store/1bad`), 400, 'BAD_REQUEST', `store key "1bad" ${rule}`);
      assertError(await admin.call('PUT', `/api/v1/jobs/${id}/store/bad-key`, { value: 'v' }), 400, 'BAD_REQUEST', `store key "bad-key" ${rule}`);
      assertError(await admin.call('PUT', `/api/v1/jobs/${id}/store/good_key`, { value: 5 }), 400, 'BAD_REQUEST', 'field "value" must be a string, got number');
      assertError(await admin.call('PUT', `/api/v1/jobs/${id}/store/good_key`, { value: 'v', secret: 'yes' }), 400, 'BAD_REQUEST', 'field "secret" must be a boolean, got string');
    });

    test('a bad output rule is 400 BAD_OUTPUT_RULE naming its position and the rule', async () => {
      const r = await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'local', tasks: task(), outputRules: ['/work/ok/*', 'work/*.txt'] });
      assertError(r, 400, 'BAD_OUTPUT_RULE', 'field "outputRules[1]": output rule "work/*.txt" must start with "/"');
      const r2 = await admin.call('POST', '/api/v1/jobs', { name: 'a', target: 'local', tasks: task(), outputRules: ['!=/work/x'] });
      assertError(r2, 400, 'BAD_OUTPUT_RULE', /^field "outputRules\[0\]": output rule "!=\/work\/x" combines "!" with other prefixes/);
    });

    test('malformed admin input is 400 naming the field', async () => {
      assertError(await admin.call('POST', '/api/v1/workers', {}), 400, 'BAD_REQUEST', 'field "target" must be a string and is missing');
      assertError(await admin.call('POST', '/api/v1/users', { name: 'Bad Name' }), 400, 'BAD_REQUEST', 'user name "Bad Name" must be 1 to 64 of [a-z0-9._-], starting with a letter or digit');
      assertError(await admin.call('POST', '/api/v1/users', { name: 'carol', privileges: ['NOT OK'] }), 400, 'BAD_REQUEST', 'privilege "NOT OK" must be 1 to 64 of [a-z0-9._:-]');
      assertError(await admin.call('POST', '/api/v1/factories', { name: 'f2', targets: [] }), 400, 'BAD_REQUEST', 'field "targets" must name at least one target');
      assertError(await admin.call('POST', '/api/v1/factories', { name: 'f2', targets: ['nope'] }), 400, 'UNKNOWN_TARGET', 'target "nope" does not exist');
      assertError(await admin.call('POST', '/api/v1/targets/local/redirect', { to: 'local' }), 400, 'BAD_REQUEST', 'redirecting local to local would make a redirect loop');
    });

    test('a malformed factory name is 400 naming the name', async () => {
      const r = await admin.call('POST', '/api/v1/factories', { name: 'Bad Name', targets: ['local'] });
      assertError(r, 400, 'BAD_REQUEST', 'factory name "Bad Name" must be 1 to 64 of [a-z0-9._-], starting with a letter or digit');
    });

    test('a body over maxBodyBytes is 413 PAYLOAD_TOO_LARGE', async () => {
      const big = JSON.stringify({ name: 'big', target: 'local', tasks: task('x'.repeat(maxBodyBytes)) });
      assertError(await admin.call('POST', '/api/v1/jobs', big), 413, 'PAYLOAD_TOO_LARGE', `request body exceeds ${maxBodyBytes} bytes`);
      // The same coordinator still answers the next request normally.
      assert.equal((await admin.call('GET', '/api/v1/whoami')).status, 200);
    });
  });

  describe('unknown things are 404', () => {
    test('a well-formed job id that does not exist is 404 naming it', async () => {
      for (const path of [`/api/v1/jobs/${MISSING_JOB}`, `/api/v1/jobs/${MISSING_JOB}/events`, `/api/v1/jobs/${MISSING_JOB}/log`, `/api/v1/jobs/${MISSING_JOB}/store`]) {
        assertError(await admin.call('GET', path), 404, 'NOT_FOUND', `job ${MISSING_JOB} does not exist`);
      }
      assertError(await admin.call('POST', `/api/v1/jobs/${MISSING_JOB}/cancel`), 404, 'NOT_FOUND', `job ${MISSING_JOB} does not exist`);
    });

    test('an unknown worker is 404 naming it', async () => {
      for (const verb of ['hold', 'release', 'recycle']) {
        assertError(await admin.call('POST', `/api/v1/workers/${MISSING_WORKER}/${verb}`), 404, 'NOT_FOUND', `worker ${MISSING_WORKER} does not exist`);
      }
    });

    test('an unknown factory name is 404 naming it', async () => {
      assertError(await admin.call('POST', '/api/v1/factories/no-such-factory/disable'), 404, 'NOT_FOUND', 'factory "no-such-factory" does not exist');
    });

    test('an unknown user or target is 404 naming it', async () => {
      assertError(await admin.call('POST', '/api/v1/users/nobody/grant', { privilege: 'read-all' }), 404, 'NOT_FOUND', 'user "nobody" does not exist');
      assertError(await admin.call('POST', '/api/v1/targets/nowhere/redirect', { to: 'local' }), 404, 'NOT_FOUND', 'target nowhere does not exist');
    });

    test('an unknown path is 404 and a known path with another method is 405', async () => {
      assertError(await admin.call('GET', '/api/v1/nothing-here'), 404, 'NOT_FOUND', 'no such path: /api/v1/nothing-here');
      assertError(await admin.call('DELETE', '/api/v1/jobs'), 405, 'METHOD_NOT_ALLOWED', 'DELETE is not allowed on /api/v1/jobs');
    });
  });

  describe('authentication and privileges', () => {
    test('no token is 401', async () => {
      for (const path of ['/api/v1/whoami', '/api/v1/jobs', `/api/v1/jobs/${MISSING_JOB}`, '/api/v1/users']) {
        assertError(await admin.call('GET', path, undefined, null), 401, 'UNAUTHORIZED', 'a valid token is required (Authorization: Bearer TOKEN)');
      }
    });

    test('a wrong token is 401', async () => {
      assertError(await admin.call('GET', '/api/v1/jobs', undefined, 'bwu_not-a-token'), 401, 'UNAUTHORIZED', 'the token is not known');
      // A factory's token is not a user's token.
      assertError(await admin.call('GET', '/api/v1/jobs', undefined, rig.factoryToken), 401, 'UNAUTHORIZED', 'the token is not known');
    });

    test('a non-admin user gets 403 on admin routes', async () => {
      const { api } = await newUser('dave');
      const forbidden = 'user dave lacks the "admin" privilege';
      const calls: [string, string, unknown?][] = [
        ['GET', '/api/v1/users'], ['POST', '/api/v1/users', { name: 'eve' }], ['POST', '/api/v1/users/dave/grant', { privilege: 'admin' }],
        ['GET', '/api/v1/factories'], ['POST', '/api/v1/factories', { name: 'f9', targets: ['local'] }], ['POST', '/api/v1/factories/local/disable'],
        ['GET', '/api/v1/workers'], ['POST', '/api/v1/workers', { target: 'local' }], ['POST', `/api/v1/workers/${MISSING_WORKER}/recycle`],
        ['POST', '/api/v1/targets', { name: 'mine' }], ['POST', '/api/v1/targets/local/redirect', { to: null }], ['POST', '/api/v1/control/hold'],
      ];
      for (const [method, path, body] of calls) assertError(await api.call(method, path, body), 403, 'FORBIDDEN', forbidden);
      // Routes any user may call still work for them.
      assert.equal((await api.call('GET', '/api/v1/whoami')).status, 200);
      assert.equal((await api.call('GET', '/api/v1/targets')).status, 200);
    });

    test('a target that names a privilege is 403 for a user without it', async () => {
      const t = await admin.call('POST', '/api/v1/targets', { name: 'guarded', privilege: 'guarded-use' });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      const { api } = await newUser('frank');
      assertError(await api.call('POST', '/api/v1/jobs', { name: 'a', target: 'guarded', tasks: task() }), 403, 'FORBIDDEN', 'target guarded requires the "guarded-use" privilege');
    });
  });

  describe('job visibility', () => {
    let alice: { id: string; api: Api };
    let bob: { id: string; api: Api };
    let aliceJob: string;
    let bobJob: string;

    before(async () => {
      alice = await newUser('alice');
      bob = await newUser('bob');
      aliceJob = await submitAs(alice.api, { name: 'alice-job' });
      bobJob = await submitAs(bob.api, { name: 'bob-job' });
    });

    test('a user lists only their own jobs', async () => {
      const a = await alice.api.call('GET', '/api/v1/jobs');
      assert.equal(a.status, 200);
      assert.deepEqual(a.body.jobs.map((j: { id: string }) => j.id), [aliceJob]);
      const b = await bob.api.call('GET', '/api/v1/jobs');
      assert.deepEqual(b.body.jobs.map((j: { id: string }) => j.id), [bobJob]);
    });

    test('another user\'s job answers 404, exactly like a job that does not exist', async () => {
      for (const suffix of ['', '/events', '/log', '/store', '/store/some_key']) {
        assertError(await bob.api.call('GET', `/api/v1/jobs/${aliceJob}${suffix}`), 404, 'NOT_FOUND', `job ${aliceJob} does not exist`);
      }
      assertError(await bob.api.call('POST', `/api/v1/jobs/${aliceJob}/cancel`), 404, 'NOT_FOUND', `job ${aliceJob} does not exist`);
      assertError(await bob.api.call('PUT', `/api/v1/jobs/${aliceJob}/store/k`, { value: 'v' }), 404, 'NOT_FOUND', `job ${aliceJob} does not exist`);
      assert.equal((await alice.api.call('GET', `/api/v1/jobs/${aliceJob}`)).status, 200, 'the owner sees it');
    });

    test('a submitted job is in its owner\'s list as soon as the submission is answered', async () => {
      const carol = await newUser('carol');
      const missed: string[] = [];
      for (let i = 0; i < 30; i++) {
        const id = await submitAs(carol.api, { name: `carol-${i}` });
        const listed = await carol.api.call('GET', '/api/v1/jobs?limit=1');
        if (listed.body.jobs[0]?.id !== id) missed.push(id);
      }
      assert.deepEqual(missed, [], `${missed.length} of 30 submissions were not listed right after their 201`);
    });

    test('the job list pages with next, each job once, newest first; queued, waiting and running jobs are listed from memory', async () => {
      const dave = await newUser('pager');
      assert.equal((await admin.call('POST', '/api/v1/control/hold')).status, 200);
      try {
        const ids: string[] = [];
        for (let i = 0; i < 12; i++) ids.push(await submitAs(dave.api, { name: `dave-${i}` }));
        const seen: string[] = [];
        let before: string | null = null;
        for (let page = 0; page < 10; page++) {
          const r = await dave.api.call('GET', `/api/v1/jobs?limit=5${before ? `&before=${before}` : ''}`);
          assert.equal(r.status, 200);
          seen.push(...r.body.jobs.map((j: { id: string }) => j.id));
          before = r.body.next;
          if (before === null) break;
        }
        assert.deepEqual(seen, [...ids].reverse());
        const queued = await dave.api.call('GET', `/api/v1/jobs?state=queued&limit=4&before=${ids[10]}`);
        assert.deepEqual(queued.body.jobs.map((j: { id: string }) => j.id), [ids[9], ids[8], ids[7], ids[6]]);
        assert.equal(queued.body.next, ids[6], 'more queued jobs follow');
        const rest = await dave.api.call('GET', `/api/v1/jobs?state=queued&limit=100&before=${ids[6]}`);
        assert.deepEqual(rest.body, { jobs: (await Promise.all(ids.slice(0, 6).reverse().map(async (id) => (await dave.api.call('GET', `/api/v1/jobs/${id}`)).body))), next: null });
        assert.deepEqual((await dave.api.call('GET', '/api/v1/jobs?state=completed')).body, { jobs: [], next: null });
      } finally {
        await admin.call('POST', '/api/v1/control/resume');
      }
    });

    test('listing all jobs without read-all is 403', async () => {
      assertError(await bob.api.call('GET', '/api/v1/jobs?all=1'), 403, 'FORBIDDEN', 'user bob lacks the "read-all" privilege needed for all=1');
    });

    test('a user granted read-all sees and lists other users\' jobs but may not cancel them', async () => {
      const g = await admin.call('POST', '/api/v1/users/bob/grant', { privilege: 'read-all' });
      assert.equal(g.status, 200, JSON.stringify(g.body));
      const shown = await bob.api.call('GET', `/api/v1/jobs/${aliceJob}`);
      assert.equal(shown.status, 200);
      assert.equal(shown.body.owner, alice.id);
      const all = await bob.api.call('GET', '/api/v1/jobs?all=1');
      assert.equal(all.status, 200);
      const ids = all.body.jobs.map((j: { id: string }) => j.id);
      assert.ok(ids.includes(aliceJob) && ids.includes(bobJob), JSON.stringify(ids));
      assertError(await bob.api.call('POST', `/api/v1/jobs/${aliceJob}/cancel`), 403, 'FORBIDDEN', `only the owner or an admin may cancel job ${aliceJob}`);
      assertError(await bob.api.call('PUT', `/api/v1/jobs/${aliceJob}/store/k`, { value: 'v' }), 403, 'FORBIDDEN', `only the owner or an admin may change job ${aliceJob}'s store`);
      // Revoked, the job is invisible again.
      assert.equal((await admin.call('POST', '/api/v1/users/bob/revoke', { privilege: 'read-all' })).status, 200);
      assertError(await bob.api.call('GET', `/api/v1/jobs/${aliceJob}`), 404, 'NOT_FOUND', `job ${aliceJob} does not exist`);
    });
  });

  describe('job files', () => {
    const jobFile = (...frontmatter: string[]) => ['#!/bin/bash', ...frontmatter.map((l) => `#: ${l}`), '', 'set -o errexit', 'echo built', ''].join('\n');

    test('a job file with frontmatter is accepted and takes its name, target and output rules from it', async () => {
      const text = jobFile('name = "from-file"', 'variety = "basic"', 'target = "local"', 'output_rules = ["=/work/out/*.tar.gz", "!/work/out/*.tmp"]');
      const r = await admin.call('POST', '/api/v1/jobs', { jobFile: text, jobFileName: 'build.sh' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.name, 'from-file');
      assert.equal(r.body.target, 'local');
      assert.equal(r.body.buildomat, true);
      assert.deepEqual(r.body.outputRules, ['=/work/out/*.tar.gz', '!/work/out/*.tmp']);
      assert.equal(r.body.tasks.length, 1);
      assert.equal(r.body.tasks[0].script, text);
      const shown = await admin.call('GET', `/api/v1/jobs/${r.body.id}`);
      assert.equal(shown.body.name, 'from-file');
    });

    test('a name given beside the job file overrides the file\'s', async () => {
      const r = await admin.call('POST', '/api/v1/jobs', { name: 'override', jobFile: jobFile('name = "from-file"', 'variety = "basic"', 'target = "local"') });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.name, 'override');
    });

    test('a bad job file is 400 BAD_JOB_FILE naming the file and the problem', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { jobFile: jobFile('name = "x"'), jobFileName: 'build.sh' }), 400, 'BAD_JOB_FILE',
        'job file "build.sh": missing required key "variety"');
      assertError(await admin.call('POST', '/api/v1/jobs', { jobFile: 'echo no interpreter line\n' }), 400, 'BAD_JOB_FILE',
        'job file "job file": the first line must be an interpreter line starting with "#!", not "echo no interpreter line"');
      assertError(await admin.call('POST', '/api/v1/jobs', { jobFile: jobFile('name = "x"', 'variety = "basic"', 'output_rules = ["work/x"]'), jobFileName: 'b.sh' }), 400, 'BAD_JOB_FILE',
        /^job file "b\.sh": output_rules\[0\]/);
    });

    test('a job file together with tasks is 400', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { jobFile: jobFile('name = "x"', 'variety = "basic"'), tasks: task() }), 400, 'BAD_REQUEST',
        'fields "jobFile" and "tasks" cannot both be given');
    });

    test('a job file without a target means target "default", which is 400 UNKNOWN_TARGET when it does not exist', async () => {
      assertError(await admin.call('POST', '/api/v1/jobs', { jobFile: jobFile('name = "x"', 'variety = "basic"') }), 400, 'UNKNOWN_TARGET', 'target "default" does not exist');
    });
  });

  test('no response in this file was a 500', () => {
    assert.ok(seen.length > 100, `responses were recorded (${seen.length})`);
    const fives = seen.filter((s) => s.status >= 500);
    assert.deepEqual(fives, [], 'no request may cause a 500');
  });
});
