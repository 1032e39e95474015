/**
 * Finding a job's output files: the walk that applies output rules
 * (protocol/output-rules.ts) to the file system, in "rule space".
 *
 * Rules name absolute paths as the job sees them. `/work/...` and
 * `/input/...` are the job's own work and input directories, wherever this
 * host keeps them (a shared host gives each job its own); any other absolute
 * path is taken literally. Results are named by their rule-space path, so
 * the coordinator records `/work/out/a.tar.gz` whatever the host path was.
 */
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OutputRule, OutputRuleMatcher } from '../protocol/index.js';
import { compileOutputRules, parseOutputRule } from '../protocol/index.js';

/** The job's real directories behind the rule-space prefixes `/work/` and `/input/`. */
export interface OutputRoots {
  work: string;
  input: string;
}

/** One file selected by the rules, as it was when the scan saw it. */
export interface ScannedOutput {
  /** Rule-space path, e.g. `/work/out/a.tar.gz`: what the coordinator records. */
  path: string;
  /** Where the bytes are on this host (a symlink's target, for a symlink inside the job's directories). */
  hostPath: string;
  size: number;
  /** Permission bits (`mode & 0o7777`). */
  mode: number;
  /** Modification time in whole milliseconds, compared again after the upload. */
  mtime: number;
  /** Some `%` rule matches the path: a change during upload is a note, not a failure. */
  allowChange: boolean;
}

/** What {@link scanOutputs} found. */
export interface ScanResult {
  /** Selected files, sorted by rule-space path. */
  files: ScannedOutput[];
  /** Refusals that fail the job (a symlink out of the job's directories, an unparsable rule, a walk over its bound). */
  errors: string[];
  /** Things worth a WORKER line that do not fail the job (an unreadable directory). */
  notes: string[];
  /** `=` rules that matched no selected file. */
  unsatisfied: OutputRule[];
  /** The compiled rules, for later checks (e.g. `=` rules against what was actually uploaded). */
  matcher: OutputRuleMatcher | null;
}

/** Limits of a scan. */
export interface ScanOptions {
  /**
   * Most directory entries the walk looks at, over all rules. A rule like
   * `/**\/*.log` would otherwise walk the whole machine.
   */
  maxEntries?: number;
}

/** Default {@link ScanOptions.maxEntries}. */
export const DEFAULT_MAX_SCAN_ENTRIES = 100_000;

const GLOB_CHARS = /[*?[]/;

/** Maps a rule-space path to this host. */
export function hostPathOf(rulePath: string, roots: OutputRoots): string {
  for (const [prefix, root] of [['/work', roots.work], ['/input', roots.input]] as const) {
    if (rulePath === prefix) return root;
    if (rulePath.startsWith(`${prefix}/`)) return join(root, rulePath.slice(prefix.length + 1));
  }
  return rulePath;
}

/** Whether `p` is `dir` or below it (both already resolved). */
function isWithin(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Walks the file system for the files the output rules select, from the
 * static prefix of each rule (the directories before its first glob
 * segment), never through a symlinked directory. A selected symlink is
 * uploaded as the file it points to if that resolves inside the job's work
 * or input directory, and refused (an error naming both) otherwise; one
 * pointing at a directory or at nothing is skipped, as buildomat skips
 * non-files. Never throws for file-system trouble: that becomes an error or
 * a note.
 *
 * @example
 * const r = await scanOutputs(['/work/out/*', '!/work/out/*.tmp', '=/work/out/*.tar.gz'], { work: '/tmp/w/job-1', input: '/tmp/w/job-1-input' });
 * r.files[0]?.path;        // '/work/out/a.tar.gz' (host file /tmp/w/job-1/out/a.tar.gz)
 * r.unsatisfied;           // [] unless no .tar.gz was found
 */
export async function scanOutputs(rules: readonly string[], roots: OutputRoots, opts: ScanOptions = {}): Promise<ScanResult> {
  const result: ScanResult = { files: [], errors: [], notes: [], unsatisfied: [], matcher: null };
  let parsed: OutputRule[];
  try {
    parsed = rules.map(parseOutputRule);
    result.matcher = compileOutputRules(parsed);
  } catch (err) {
    // The coordinator checks rules at submit time; this is a mismatch between versions, and fails loudly.
    result.errors.push(`bad output rule: ${(err as Error).message}`);
    return result;
  }
  const matcher = result.matcher;
  const walk = new Walk(roots, matcher, opts.maxEntries ?? DEFAULT_MAX_SCAN_ENTRIES, result);
  await walk.resolveRoots();
  for (const rule of parsed) {
    if (rule.ignore || walk.overBound) continue;
    await walk.rule(rule.pattern);
  }
  result.files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  result.unsatisfied = matcher.unsatisfied(result.files.map((f) => f.path));
  return result;
}

/** One scan's walking state, shared by all rules so overlapping rules walk a directory once. */
class Walk {
  readonly #roots: OutputRoots;
  readonly #matcher: OutputRuleMatcher;
  readonly #max: number;
  readonly #out: ScanResult;
  /** Rule-space directory -> the most levels below it already walked. */
  readonly #walked = new Map<string, number>();
  readonly #selected = new Set<string>();
  #entries = 0;
  #real: string[] = [];
  overBound = false;

  constructor(roots: OutputRoots, matcher: OutputRuleMatcher, max: number, out: ScanResult) {
    this.#roots = roots;
    this.#matcher = matcher;
    this.#max = max;
    this.#out = out;
  }

  /** The job's directories as realpath sees them, so symlink targets compare like with like. */
  async resolveRoots(): Promise<void> {
    for (const r of [this.#roots.work, this.#roots.input]) {
      this.#real.push(await realpath(r).catch(() => r));
    }
  }

  /** Walks from the static prefix of one include pattern. */
  async rule(pattern: string): Promise<void> {
    const segments = pattern.slice(1).split('/');
    const firstGlob = segments.findIndex((s) => GLOB_CHARS.test(s));
    // A rule without globs names one file: check its directories, then that entry alone.
    const staticCount = firstGlob < 0 ? segments.length - 1 : firstGlob;
    const rest = segments.slice(staticCount);
    const depth = rest.includes('**') ? Infinity : rest.length;
    let dir = '/';
    // Every directory of the prefix below the mapped root is checked: a symlinked one is not descended.
    for (const seg of segments.slice(0, staticCount)) {
      if (seg === '') return;
      dir = dir === '/' ? `/${seg}` : `${dir}/${seg}`;
      if (dir === '/work' || dir === '/input') continue;
      const st = await this.#lstat(dir);
      if (!st?.isDirectory()) {
        if (st?.isSymbolicLink()) this.#out.notes.push(`output rule ${JSON.stringify(pattern)}: ${dir} is a symlink; directories reached through a symlink are not searched`);
        return;
      }
    }
    if (firstGlob >= 0) {
      await this.#dir(dir, depth);
      return;
    }
    const path = pattern;
    const st = await this.#lstat(path);
    if (st) await this.#consider(path, st, 0);
  }

  /** lstat in rule space; the job's own roots are followed (they are ours, wherever they live). */
  #lstat(path: string): Promise<Stats | null> {
    const host = hostPathOf(path, this.#roots);
    return (path === '/work' || path === '/input' ? stat(host) : lstat(host)).catch(() => null);
  }

  async #consider(path: string, st: Stats, depth: number): Promise<void> {
    if (st.isDirectory()) await this.#dir(path, depth);
    else if ((st.isFile() || st.isSymbolicLink()) && !this.#selected.has(path) && this.#matcher.matches(path)) {
      this.#selected.add(path);
      await this.#select(path, st);
    }
  }

  async #dir(dir: string, depth: number): Promise<void> {
    if (depth <= 0 || this.overBound) return;
    if ((this.#walked.get(dir) ?? 0) >= depth) return;
    this.#walked.set(dir, depth);
    const host = hostPathOf(dir, this.#roots);
    let entries: Dirent[];
    try {
      entries = await readdir(host, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.#out.notes.push(`could not read directory ${dir} while looking for outputs: ${code ?? (err as Error).message}`);
      return;
    }
    const names = entries.map((e) => e.name);
    // In rule space, "/" always holds the job's work and input directories, wherever they really are.
    if (dir === '/') for (const n of ['work', 'input']) if (!names.includes(n)) names.push(n);
    names.sort();
    for (const name of names) {
      if (++this.#entries > this.#max) {
        this.overBound = true;
        this.#out.errors.push(`output rules matched more than ${this.#max} directory entries (stopped in ${dir}); narrow the rules`);
        return;
      }
      const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
      const st = await this.#lstat(path);
      // Gone since readdir: nothing to upload.
      if (st) await this.#consider(path, st, depth - 1);
    }
  }

  async #select(path: string, st: Stats): Promise<void> {
    let hostPath = hostPathOf(path, this.#roots);
    let target = st;
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = await realpath(hostPath);
        target = await stat(real);
      } catch {
        this.#out.notes.push(`${path} is a symlink to nothing; not uploaded`);
        return;
      }
      if (!this.#real.some((r) => isWithin(real, r))) {
        this.#out.errors.push(`${path} is a symlink to ${real}, outside the job's work and input directories; refused`);
        return;
      }
      if (!target.isFile()) return;
      hostPath = real;
    }
    this.#out.files.push({
      path, hostPath, size: target.size, mode: target.mode & 0o7777, mtime: Math.trunc(target.mtimeMs),
      allowChange: this.#matcher.allowsChange(path),
    });
  }
}
