import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobFileError, parseJobFile, validateJobSet, type JobFile } from '../protocol/jobfile.js';
import { compileOutputRules, OutputRuleError, parseOutputRule } from '../protocol/output-rules.js';

// dist/test/ -> project root is two levels up; shared/ sits beside it.
const CORPUS = fileURLToPath(new URL('../../../shared/testdata/buildomat-jobs/', import.meta.url));

const repos = readdirSync(CORPUS, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function filesIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

const job = (...frontmatter: string[]): string =>
  ['#!/bin/bash', ...frontmatter.map((l) => `#: ${l}`), '', 'echo hi', ''].join('\n');
const basic = (...more: string[]): string => job('name = "build"', 'variety = "basic"', ...more);

test('the buildomat job corpus is present', () => {
  assert.ok(repos.length >= 50, `expected the corpus at ${CORPUS}`);
});

for (const repo of repos) {
  const jobsDir = join(CORPUS, repo, 'jobs');
  const histDir = join(CORPUS, repo, 'historical', 'jobs');
  for (const [dir, label] of [[jobsDir, 'jobs'], [histDir, 'historical/jobs']] as const) {
    for (const file of filesIn(dir)) {
      test(`parses the real job file ${repo}/${label}/${file}`, () => {
        const text = readFileSync(join(dir, file), 'utf8');
        const jf = parseJobFile(text, file);
        assert.ok(jf.name.length > 0);
        assert.equal(jf.variety, 'basic');
        assert.equal(jf.script, text);
        assert.equal(jf.fileName, file);
      });
    }
  }
  const jobFiles = filesIn(jobsDir);
  if (jobFiles.length > 0) {
    test(`validates ${repo}/jobs as one coherent job set`, () => {
      validateJobSet(jobFiles.map((f) => parseJobFile(readFileSync(join(jobsDir, f), 'utf8'), f)));
    });
  }
}

test('reads every setting of a real job file with dependencies and output rule prefixes', () => {
  const text = readFileSync(join(CORPUS, 'oxidecomputer__crucible', 'jobs', 'test-up-encrypted.sh'), 'utf8');
  const jf = parseJobFile(text, 'test-up-encrypted.sh');
  assert.equal(jf.name, 'test-up-encrypted');
  assert.equal(jf.target, 'helios-2.0');
  assert.equal(jf.skipClone, true);
  assert.equal(jf.rustToolchain, undefined);
  assert.deepEqual(jf.dependencies, { build: { job: 'build', copyOutputs: true } });
  assert.deepEqual(
    jf.outputRules.map((r) => [r.pattern, r.mustMatch, r.allowChange, r.ignore]),
    [
      ['/tmp/test_up*/*.txt', false, true, false],
      ['/tmp/test_up*/dsc/*.txt', false, true, false],
      ['/tmp/debug/*', false, true, false],
      ['/tmp/core.*', false, false, false],
    ],
  );
});

test('defaults target to "default" and the optional settings to empty, as buildomat does', () => {
  const jf = parseJobFile(basic(), 'b.sh');
  assert.deepEqual(
    { ...jf, script: '' },
    {
      fileName: 'b.sh', name: 'build', variety: 'basic', target: 'default', outputRules: [], skipClone: false,
      accessRepos: [], publish: [], dependencies: {}, enable: true, script: '', env: {},
    },
  );
});

test('reads an [env] table of strings, buildwire\'s one addition to the frontmatter', () => {
  assert.deepEqual(parseJobFile(basic('[env]', 'GREETING = "hi"', 'RUST_LOG = "debug"')).env, { GREETING: 'hi', RUST_LOG: 'debug' });
});

test('reads rust_toolchain as a string or a boolean, and [[publish]] tables', () => {
  const jf = parseJobFile(basic(
    'rust_toolchain = true',
    'access_repos = ["oxidecomputer/amd-apcb"]',
    '[[publish]]',
    'from_output = "/out/a.gz"',
    'series = "image"',
    'name = "a.gz"',
  ));
  assert.equal(jf.rustToolchain, true);
  assert.deepEqual(jf.accessRepos, ['oxidecomputer/amd-apcb']);
  assert.deepEqual(jf.publish, [{ fromOutput: '/out/a.gz', series: 'image', name: 'a.gz' }]);
  assert.equal(parseJobFile(basic('rust_toolchain = "1.85"')).rustToolchain, '1.85');
});

test('takes only "#:" lines before the first non-comment line, skipping plain "#" comments', () => {
  const text = ['#!/bin/bash', '# a comment', '#: name = "a"', '#:variety = "basic"', '#:#: target = "t"', '',
    '#: target = "ignored after the blank line"'].join('\n');
  const jf = parseJobFile(text);
  assert.equal(jf.name, 'a');
  assert.equal(jf.target, 't');
});

test('keeps the space after "#:" inside multi-line strings, as buildomat strips only the marker', () => {
  const jf = parseJobFile(['#!/bin/bash', '#: name = """', '#: x"""', '#: variety = "basic"'].join('\n'));
  assert.equal(jf.name, ' x');
});

test('accepts CRLF line endings like Rust str::lines', () => {
  assert.equal(parseJobFile(basic('target = "helios"').replaceAll('\n', '\r\n')).target, 'helios');
});

test('skips the variety settings of a file with enable = false, as buildomat does', () => {
  const jf = parseJobFile(basic('enable = false', 'output_rules = ["relative"]', 'bogus = 1'));
  assert.equal(jf.enable, false);
  assert.deepEqual(jf.outputRules, []);
});

const REJECTIONS: ReadonlyArray<readonly [string, string, string, string | undefined]> = [
  ['a first line that is not an interpreter line', '#: name = "x"\n', 'job file "b.sh": the first line must be an interpreter line starting with "#!", not "#: name = \\"x\\""', undefined],
  ['a missing name', job('variety = "basic"'), 'job file "b.sh": missing required key "name"', 'name'],
  ['an empty file', '', 'job file "b.sh": missing required key "name"', 'name'],
  ['a missing variety', job('name = "x"'), 'job file "b.sh": missing required key "variety"', 'variety'],
  ['a variety other than "basic"', job('name = "x"', 'variety = "fancy"'), 'job file "b.sh": variety "fancy" is not supported; use "basic"', 'variety'],
  ['a name that is not a string', job('name = 5', 'variety = "basic"'), 'job file "b.sh": name must be a string, not number 5', 'name'],
  ['an empty name', job('name = ""', 'variety = "basic"'), 'job file "b.sh": name must not be empty', 'name'],
  ['invalid TOML, naming the file line', basic('target = helios'), 'job file "b.sh": TOML front matter is invalid at line 4: invalid value', undefined],
  ['an unknown key', basic('environment = { A = "1" }'), 'job file "b.sh": unknown key "environment"; expected one of name, variety, enable, dependencies, output_rules, rust_toolchain, target, access_repos, publish, skip_clone, env', 'environment'],
  ['an env value that is not a string', basic('[env]', 'A = 1'), 'job file "b.sh": env.A must be a string, not number 1', 'env.A'],
  ['an env key that is not a variable name', basic('[env]', '"A-B" = "1"'), 'job file "b.sh": env key "A-B" must be a variable name ([A-Za-z_][A-Za-z0-9_]*)', 'env.A-B'],
  ['"disabled" as a misspelling of enable', basic('disabled = true'), 'job file "b.sh": unknown key "disabled"; use "enable" to disable a job', 'disabled'],
  ['an enable that is not a boolean', basic('enable = "no"'), 'job file "b.sh": enable must be a boolean, not string "no"', 'enable'],
  ['an output rule that is not absolute', basic('output_rules = ["/a", "/b", "foo"]'), 'job file "b.sh": output_rules[2] "foo" must start with "/"', 'output_rules[2]'],
  ['output_rules that is not an array', basic('output_rules = "/a"'), 'job file "b.sh": output_rules must be an array of strings, not string "/a"', 'output_rules'],
  ['an output rule that is not a string', basic('output_rules = [1]'), 'job file "b.sh": output_rules[0] must be a string, not number 1', 'output_rules[0]'],
  ['a rust_toolchain of the wrong type', basic('rust_toolchain = 1.5'), 'job file "b.sh": rust_toolchain must be a string or a boolean, not number 1.5', 'rust_toolchain'],
  ['an empty target', basic('target = ""'), 'job file "b.sh": target must not be empty; leave it out to use "default"', 'target'],
  ['skip_clone that is not a boolean', basic('skip_clone = "yes"'), 'job file "b.sh": skip_clone must be a boolean, not string "yes"', 'skip_clone'],
  ['an access_repos entry without an owner', basic('access_repos = ["hubris"]'), 'job file "b.sh": access_repos[0] "hubris" must name a GitHub repository as "owner/name"', 'access_repos[0]'],
  ['a dependency without a job', basic('[dependencies.build]', 'copy = true'), 'job file "b.sh": dependencies.build is missing required key "job"', 'dependencies.build.job'],
  ['a dependency job that is not a string', basic('[dependencies.build]', 'job = 3'), 'job file "b.sh": dependencies.build.job must be a string, not number 3', 'dependencies.build.job'],
  ['a publish entry with a missing key', basic('[[publish]]', 'from_output = "/a"', 'name = "a"'), 'job file "b.sh": publish[0] is missing required key "series"', 'publish[0].series'],
  ['a publish entry with an unknown key', basic('[[publish]]', 'from_output = "/a"', 'series = "s"', 'name = "a"', 'version = "1"'), 'job file "b.sh": publish[0] has unknown key "version"; expected from_output, series, name', 'publish[0].version'],
];

for (const [rule, text, message, field] of REJECTIONS) {
  test(`rejects ${rule} with BAD_JOB_FILE`, () => {
    assert.throws(() => parseJobFile(text, 'b.sh'), (e: unknown) => {
      assert.ok(e instanceof JobFileError);
      assert.equal(e.code, 'BAD_JOB_FILE');
      assert.equal(e.message, message);
      assert.equal(e.field, field);
      return true;
    });
  });
}

const named = (file: string, name: string, ...deps: string[]): JobFile =>
  parseJobFile(job(`name = "${name}"`, 'variety = "basic"', ...deps.flatMap((d) => [`[dependencies.${d}]`, `job = "${d}"`])), file);

const SET_REJECTIONS: ReadonlyArray<readonly [string, () => JobFile[], string]> = [
  ['a job name used twice', () => [named('a.sh', 'x'), named('b.sh', 'x')], 'job file "b.sh": job name "x" is also used by "a.sh"'],
  ['a dependency on a job not in the set', () => [named('a.sh', 'a', 'nope')], 'job file "a.sh": dependencies.nope.job "nope" names no job in the set'],
  ['a dependency on a disabled job', () => [named('a.sh', 'a', 'b'), parseJobFile(job('name = "b"', 'variety = "basic"', 'enable = false'), 'b.sh')], 'job file "a.sh": dependencies.b.job "b" names no job in the set (that job has enable = false)'],
  ['a job that depends on itself', () => [named('a.sh', 'a', 'a')], 'job file "a.sh": dependencies form a cycle: "a" -> "a"'],
  ['a dependency cycle through three jobs', () => [named('a.sh', 'a', 'b'), named('b.sh', 'b', 'c'), named('c.sh', 'c', 'a')], 'job file "a.sh": dependencies form a cycle: "a" -> "b" -> "c" -> "a"'],
  ['a job file name not ending in ".sh"', () => [named('a.txt', 'a')], 'job file "a.txt": job file names must end in ".sh"'],
];

for (const [rule, files, message] of SET_REJECTIONS) {
  test(`rejects a job set with ${rule}`, () => {
    assert.throws(() => validateJobSet(files()), (e: unknown) => {
      assert.ok(e instanceof JobFileError);
      assert.equal(e.code, 'BAD_JOB_FILE');
      assert.equal(e.message, message);
      return true;
    });
  });
}

test('accepts a diamond of dependencies, which is not a cycle', () => {
  validateJobSet([named('a.sh', 'a'), named('b.sh', 'b', 'a'), named('c.sh', 'c', 'a'), named('d.sh', 'd', 'b', 'c')]);
});

test('leaves disabled files out of a job set, so their names may repeat', () => {
  validateJobSet([named('a.sh', 'a'), parseJobFile(job('name = "a"', 'variety = "basic"', 'enable = false'), 'old.sh')]);
});

test('parses the output rule prefixes "=", "%", "=%", "%=" and "!"', () => {
  const flags = (s: string) => {
    const r = parseOutputRule(s);
    return [r.pattern, r.mustMatch, r.allowChange, r.ignore];
  };
  assert.deepEqual(flags('/var/log/*.log'), ['/var/log/*.log', false, false, false]);
  assert.deepEqual(flags('=/var/log/*.log'), ['/var/log/*.log', true, false, false]);
  assert.deepEqual(flags('%/var/log/*.log'), ['/var/log/*.log', false, true, false]);
  assert.deepEqual(flags('=%/var/log/*.log'), ['/var/log/*.log', true, true, false]);
  assert.deepEqual(flags('%=/var/log/*.log'), ['/var/log/*.log', true, true, false]);
  assert.deepEqual(flags('!/var/log/*.log'), ['/var/log/*.log', false, false, true]);
  assert.equal(parseOutputRule('=/a').rule, '=/a');
});

const RULE_REJECTIONS: ReadonlyArray<readonly [string, string, string]> = [
  ['that is not absolute', 'target/some/file', 'output rule "target/some/file" must start with "/"'],
  ['that is empty', '', 'output rule "" is empty'],
  ['with a prefix but no path', '=', 'output rule "=" has no path after the prefix "="'],
  ['with a relative path after its prefix', '!var/log', 'output rule "!var/log" must have "/" right after the prefix "!"'],
  ['combining "!" with "="', '!=/var/log', 'output rule "!=/var/log" combines "!" with other prefixes ("!="); "!" must stand alone'],
  ['combining "=%" with "!"', '=%!/var/log', 'output rule "=%!/var/log" combines "!" with other prefixes ("=%!"); "!" must stand alone'],
  ['repeating "="', '=%=/var/log', 'output rule "=%=/var/log" repeats the prefix "="'],
  ['repeating "!"', '!!/var/log', 'output rule "!!/var/log" repeats the prefix "!"'],
  ['with a ".." segment', '/work/../etc/passwd', 'output rule "/work/../etc/passwd" has a ".." segment; rules cannot climb out of a directory'],
  ['with a "." segment', '/work/./a', 'output rule "/work/./a" has a "." segment; write the path without it'],
  ['with an empty segment', '/work//a', 'output rule "/work//a" has an empty path segment ("//")'],
  ['with "**" inside a segment', '/work/a**', 'output rule "/work/a**" uses "**" inside a path segment; "**" must be a whole segment'],
  ['with "***"', '/work/***', 'output rule "/work/***" has "***"; use "*" or "**"'],
  ['with an unclosed character class', '/work/[ab', 'output rule "/work/[ab" has an unclosed "[" character class'],
  ['with "/" in a character class', '/work/a[/]b', 'output rule "/work/a[/]b" has a character class containing "/", which never matches'],
];

for (const [rule, text, message] of RULE_REJECTIONS) {
  test(`rejects an output rule ${rule} with BAD_OUTPUT_RULE`, () => {
    assert.throws(() => parseOutputRule(text), (e: unknown) => {
      assert.ok(e instanceof OutputRuleError);
      assert.equal(e.code, 'BAD_OUTPUT_RULE');
      assert.equal(e.message, message);
      return true;
    });
  });
}

const matcher = (...rules: string[]) => compileOutputRules(rules.map(parseOutputRule));
const selects = (rules: string[], path: string): string | undefined => matcher(...rules).matches(path)?.rule;

test('matches "*" within one directory only, never across "/"', () => {
  assert.equal(selects(['/work/*'], '/work/a.txt'), '/work/*');
  assert.equal(selects(['/work/*'], '/work/.hidden'), '/work/*');
  assert.equal(selects(['/work/*'], '/work/sub/a.txt'), undefined);
  assert.equal(selects(['/work/*'], '/other/a.txt'), undefined);
  assert.equal(selects(['/work/*.zip'], '/work/a.zip.txt'), undefined);
});

test('matches "?" as one character other than "/"', () => {
  assert.equal(selects(['/work/a?c'], '/work/abc'), '/work/a?c');
  assert.equal(selects(['/work/a?c'], '/work/ac'), undefined);
  assert.equal(selects(['/work?a'], '/work/a'), undefined);
});

test('matches a "**" segment as zero or more directories', () => {
  const rules = ['/work/**/*.tar.gz'];
  assert.equal(selects(rules, '/work/a.tar.gz'), rules[0]);
  assert.equal(selects(rules, '/work/x/y/z/a.tar.gz'), rules[0]);
  assert.equal(selects(rules, '/work/x/a.tar'), undefined);
  assert.equal(selects(rules, '/workx/a.tar.gz'), undefined);
  assert.equal(selects(['/work/**/**/out/*'], '/work/out/a'), '/work/**/**/out/*');
});

test('never matches a file with a rule ending in "**" or "/", which buildomat walks as directories only', () => {
  assert.equal(selects(['/work/**'], '/work/a.txt'), undefined);
  assert.equal(selects(['/work/out/'], '/work/out/a.txt'), undefined);
});

test('matches character classes, ranges and "[!...]" negation like the Rust glob crate', () => {
  assert.equal(selects(['/work/v[0-9].txt'], '/work/v7.txt'), '/work/v[0-9].txt');
  assert.equal(selects(['/work/v[0-9].txt'], '/work/vx.txt'), undefined);
  assert.equal(selects(['/work/v[!0-9].txt'], '/work/vx.txt'), '/work/v[!0-9].txt');
  assert.equal(selects(['/work/[]]'], '/work/]'), '/work/[]]');
  assert.equal(selects(['/work/[ab-]'], '/work/-'), '/work/[ab-]');
});

test('excludes a path matching a "!" rule even when another rule includes it', () => {
  const rules = ['/work/*', '!/work/*.tmp'];
  assert.equal(selects(rules, '/work/a.txt'), '/work/*');
  assert.equal(selects(rules, '/work/a.tmp'), undefined);
  assert.equal(selects(['!/work/*.tmp'], '/work/a.txt'), undefined);
});

test('applies "!" rules to the whole path, where "*" crosses "/" as in buildomat', () => {
  assert.equal(selects(['/tmp/**/*', '!/tmp/*.log'], '/tmp/a/b.log'), undefined);
  assert.equal(selects(['/tmp/**/*', '!/tmp/*.log'], '/tmp/a/b.txt'), '/tmp/**/*');
});

test('returns the first including rule in order, with its "=" and "%" flags', () => {
  const m = matcher('=%/work/*.log', '/work/*');
  assert.deepEqual(m.matches('/work/a.log'), { rule: '=%/work/*.log', pattern: '/work/*.log', mustMatch: true, allowChange: true, ignore: false });
  assert.equal(m.matches('/work/a.txt')?.rule, '/work/*');
});

test('allows a size change when any "%" rule matches the path', () => {
  const m = matcher('/work/*', '%/work/*.log');
  assert.equal(m.matches('/work/a.log')?.allowChange, false);
  assert.equal(m.allowsChange('/work/a.log'), true);
  assert.equal(m.allowsChange('/work/a.txt'), false);
});

test('reports "=" rules that matched no uploaded file', () => {
  const m = matcher('=/work/*.zip', '=/out/*.txt', '/work/*');
  assert.deepEqual(m.unsatisfied(['/work/a.zip', '/work/b.txt']).map((r) => r.rule), ['=/out/*.txt']);
  assert.deepEqual(m.unsatisfied(['/work/a.zip', '/out/b.txt']), []);
});

test('matches nothing for a path that is not absolute', () => {
  assert.equal(selects(['/work/*'], 'work/a'), undefined);
});

test('rejects a hand-built rule with a bad pattern when compiling, with BAD_OUTPUT_RULE', () => {
  assert.throws(
    () => compileOutputRules([{ rule: 'x', pattern: 'x', mustMatch: false, allowChange: false, ignore: false }]),
    (e: unknown) => e instanceof OutputRuleError && e.message === 'output rule "x" must start with "/"',
  );
});

test('matches in time linear in the path, even for a rule with many "*"', { timeout: 5000 }, () => {
  const rule = `/x/${'*a'.repeat(12)}b`;
  const path = `/x/${'a'.repeat(4000)}`;
  assert.equal(matcher(rule).matches(path), undefined);
  assert.equal(matcher(rule).matches(`${path}b`)?.rule, rule);
  assert.equal(matcher('/x/*', `!${rule}`).matches(path)?.rule, '/x/*');
  assert.equal(matcher(`%${rule}`).allowsChange(path), false);
});
