/**
 * Output rules: which files a job uploads when it finishes, with buildomat's
 * syntax and matching semantics.
 *
 * A rule is an absolute glob with optional prefixes: `=` (must match at least
 * one uploaded file), `%` (the file may change size while uploading), both
 * (`=%` or `%=`), or `!` alone (never upload what matches). buildomat's server
 * parses the prefixes; its agent expands the globs with the Rust `glob` crate,
 * whose semantics are reproduced here:
 *
 * - Selecting files walks the file system one path segment at a time, so `*`,
 *   `?` and `[...]` never cross `/`, and a `**` segment stands for zero or
 *   more directories. A rule ending in `**` or `/` selects only directories,
 *   and so uploads nothing (buildomat skips non-files).
 * - The `!`, `%` and `=` checks match the whole path as one string, where
 *   `*`, `?` and `[...]` do cross `/`: `!/tmp/*.log` also excludes
 *   `/tmp/a/b.log`.
 */

/**
 * A parsed output rule.
 *
 * @example
 * const r: OutputRule = parseOutputRule('=%/work/*.log');
 * // { rule: '=%/work/*.log', pattern: '/work/*.log', mustMatch: true, allowChange: true, ignore: false }
 */
export interface OutputRule {
  /** The rule as written, prefixes included. */
  readonly rule: string;
  /** The absolute glob, without prefixes. */
  readonly pattern: string;
  /** `=`: the job fails unless some uploaded file matches. */
  readonly mustMatch: boolean;
  /** `%`: a matching file may change size during upload (a warning, not a failure). */
  readonly allowChange: boolean;
  /** `!`: matching files are never uploaded, whatever other rules say. */
  readonly ignore: boolean;
}

/**
 * A rejected output rule. `reason` is the broken rule without the rule text,
 * so a job-file error can name the rule's position instead.
 *
 * @example
 * try { parseOutputRule('work/*'); } catch (e) {
 *   if (e instanceof OutputRuleError) console.log(e.code, e.reason); // BAD_OUTPUT_RULE must start with "/"
 * }
 */
export class OutputRuleError extends Error {
  readonly code = 'BAD_OUTPUT_RULE' as const;
  /** The rule text as given. */
  readonly rule: string;
  /** What is wrong, e.g. `must start with "/"`. */
  readonly reason: string;
  constructor(rule: string, reason: string) {
    super(`output rule ${JSON.stringify(rule)} ${reason}`);
    this.name = 'OutputRuleError';
    this.rule = rule;
    this.reason = reason;
  }
}

type Token =
  | { readonly t: 'char'; readonly c: string }
  | { readonly t: 'any' }
  | { readonly t: 'seq' }
  | { readonly t: 'rec' }
  | { readonly t: 'class'; readonly negated: boolean; readonly items: ReadonlyArray<readonly [string, string]> };

/** Mirrors glob's `Pattern::new`; throws a reason string instead of a position. */
function tokenize(pattern: string): Token[] {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  let i = 0;
  while (i < chars.length) {
    const c = chars[i]!;
    if (c === '?') {
      tokens.push({ t: 'any' });
      i += 1;
    } else if (c === '*') {
      const start = i;
      while (chars[i] === '*') i += 1;
      const count = i - start;
      if (count > 2) throw new Error(`has "${'*'.repeat(count)}"; use "*" or "**"`);
      if (count === 1) {
        tokens.push({ t: 'seq' });
        continue;
      }
      const before = start === 0 ? '/' : chars[start - 1];
      const after = chars[i];
      if (before !== '/' || (after !== undefined && after !== '/')) {
        throw new Error('uses "**" inside a path segment; "**" must be a whole segment');
      }
      // glob swallows the "/" after "**", and collapses "**/**/" into one.
      if (after === '/') i += 1;
      if (tokens.at(-1)?.t !== 'rec') tokens.push({ t: 'rec' });
    } else if (c === '[') {
      // glob's bracket rules: "]" right after "[" or "[!" is a member, and
      // an unclosed "[" is an error rather than a literal.
      const negated = chars[i + 1] === '!';
      const first = i + (negated ? 2 : 1);
      const close = chars.indexOf(']', first + 1);
      if (first >= chars.length || close < 0) throw new Error('has an unclosed "[" character class');
      const body = chars.slice(first, close);
      if (body.includes('/')) throw new Error('has a character class containing "/", which never matches');
      const items: Array<readonly [string, string]> = [];
      for (let k = 0; k < body.length; ) {
        if (k + 2 < body.length && body[k + 1] === '-') {
          items.push([body[k]!, body[k + 2]!]);
          k += 3;
        } else {
          items.push([body[k]!, body[k]!]);
          k += 1;
        }
      }
      tokens.push({ t: 'class', negated, items });
      i = close + 1;
    } else {
      tokens.push({ t: 'char', c });
      i += 1;
    }
  }
  return tokens;
}

type Pred = (c: string) => boolean;
const anyChar: Pred = () => true;
const notSlash: Pred = (c) => c !== '/';
const isChar = (x: string): Pred => (c) => c === x;

function classPred(tok: Extract<Token, { t: 'class' }>, excludeSlash: boolean): Pred {
  const cp = (c: string): number => c.codePointAt(0)!;
  // A backwards range like [2-1] matches nothing, as in glob.
  const within = (c: string): boolean => tok.items.some(([lo, hi]) => cp(lo) <= cp(c) && cp(c) <= cp(hi));
  return tok.negated ? (c) => !within(c) && !(excludeSlash && c === '/') : within;
}

/**
 * A small NFA, run by tracking the set of live states. Backtracking (a
 * RegExp) is exponential on rules like `/x/*a*a*a*a*a*a*a*ab`; this is
 * linear in the path length.
 */
class Nfa {
  private readonly nodes: Array<{ eps: number[]; edges: Array<[Pred, number]> }> = [];
  private cur = this.node();
  private node(): number {
    this.nodes.push({ eps: [], edges: [] });
    return this.nodes.length - 1;
  }
  private fresh(): number {
    const n = this.node();
    this.nodes[this.cur]!.eps.push(n);
    return (this.cur = n);
  }
  /** Exactly one character satisfying `p`. */
  one(p: Pred): void {
    const from = this.cur;
    this.nodes[from]!.edges.push([p, this.node()]);
    this.cur = this.nodes.length - 1;
  }
  /** Any run of characters satisfying `p`. */
  many(p: Pred): void {
    const n = this.fresh();
    this.nodes[n]!.edges.push([p, n]);
  }
  /** Nothing, or any characters ending in "/": glob's "**\/" over a whole path. */
  anyDirs(): void {
    const from = this.cur;
    const inner = this.node();
    const next = this.node();
    this.nodes[from]!.eps.push(next, inner);
    this.nodes[inner]!.edges.push([anyChar, inner], [isChar('/'), next]);
    this.cur = next;
  }
  /** Zero or more "name/" pieces: a "**" segment in a directory walk. */
  dirSegments(): void {
    const loop = this.fresh();
    const name = this.node();
    const next = this.node();
    this.nodes[loop]!.eps.push(next);
    this.nodes[loop]!.edges.push([notSlash, name]);
    this.nodes[name]!.edges.push([notSlash, name], [isChar('/'), loop]);
    this.cur = next;
  }
  private closure(states: Iterable<number>): Set<number> {
    const out = new Set<number>(states);
    const todo = [...out];
    for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
      for (const n of this.nodes[s]!.eps) {
        if (!out.has(n)) {
          out.add(n);
          todo.push(n);
        }
      }
    }
    return out;
  }
  test(path: string): boolean {
    let live = this.closure([0]);
    for (const c of path) {
      const next: number[] = [];
      for (const s of live) for (const [p, to] of this.nodes[s]!.edges) if (p(c)) next.push(to);
      if (next.length === 0) return false;
      live = this.closure(next);
    }
    return live.has(this.cur);
  }
}

/** The whole-path form: glob's `Pattern::matches_path` with default options. */
function wholePathMatcher(tokens: Token[]): Nfa {
  const nfa = new Nfa();
  tokens.forEach((tok, k) => {
    if (tok.t === 'char') nfa.one(isChar(tok.c));
    else if (tok.t === 'any') nfa.one(anyChar);
    else if (tok.t === 'seq') nfa.many(anyChar);
    else if (tok.t === 'rec') k === tokens.length - 1 ? nfa.many(anyChar) : nfa.anyDirs();
    else nfa.one(classPred(tok, false));
  });
  return nfa;
}

/** The walk form: what `glob::glob` yields, restricted to files. */
function walkMatcher(pattern: string): Nfa | undefined {
  if (pattern === '/' || pattern.endsWith('/')) return undefined;
  const segments = pattern.slice(1).split('/');
  if (segments.at(-1) === '**') return undefined;
  const nfa = new Nfa();
  nfa.one(isChar('/'));
  segments.forEach((seg, k) => {
    if (seg === '**') {
      if (segments[k - 1] !== '**') nfa.dirSegments();
      return;
    }
    for (const tok of tokenize(seg)) {
      if (tok.t === 'char') nfa.one(isChar(tok.c));
      else if (tok.t === 'any') nfa.one(notSlash);
      else if (tok.t === 'seq') nfa.many(notSlash);
      else if (tok.t === 'class') nfa.one(classPred(tok, true));
    }
    if (k < segments.length - 1) nfa.one(isChar('/'));
  });
  return nfa;
}

function checkSegments(pattern: string): void {
  if (pattern === '/') return;
  const body = pattern.endsWith('/') ? pattern.slice(1, -1) : pattern.slice(1);
  for (const seg of body.split('/')) {
    if (seg === '') throw new Error('has an empty path segment ("//")');
    if (seg === '..') throw new Error('has a ".." segment; rules cannot climb out of a directory');
    if (seg === '.') throw new Error('has a "." segment; write the path without it');
  }
}

/** Validates a bare pattern and builds both matchers; throws a reason string. */
function compilePattern(pattern: string): { walk: Nfa | undefined; whole: Nfa } {
  if (!pattern.startsWith('/')) throw new Error('must start with "/"');
  checkSegments(pattern);
  const whole = wholePathMatcher(tokenize(pattern));
  return { walk: walkMatcher(pattern), whole };
}

/**
 * Parses one output rule as buildomat's server does: `!`, `=`, `%`, `=%` or
 * `%=` before an absolute glob. Also rejects what buildomat's agent would
 * fail on at upload time (bad globs), and `.`, `..` and empty segments.
 *
 * @throws OutputRuleError naming the rule and what is wrong with it.
 * @example
 * parseOutputRule('/work/out/*.tar.gz');  // plain rule
 * parseOutputRule('!/work/out/*.tmp');    // ignore: ignore === true
 * parseOutputRule('=%/tmp/*.log');        // mustMatch and allowChange
 * parseOutputRule('!=/tmp/x');            // throws: combines "!" with other prefixes
 */
export function parseOutputRule(text: string): OutputRule {
  if (text === '') throw new OutputRuleError(text, 'is empty');
  let end = 0;
  while (end < text.length && '=%!'.includes(text[end]!)) end += 1;
  const prefix = text.slice(0, end);
  const pattern = text.slice(end);
  for (const sigil of '=%!') {
    if (prefix.indexOf(sigil) !== prefix.lastIndexOf(sigil)) {
      throw new OutputRuleError(text, `repeats the prefix "${sigil}"`);
    }
  }
  if (prefix.includes('!') && prefix.length > 1) {
    throw new OutputRuleError(text, `combines "!" with other prefixes ("${prefix}"); "!" must stand alone`);
  }
  if (prefix !== '' && pattern === '') throw new OutputRuleError(text, `has no path after the prefix "${prefix}"`);
  if (prefix !== '' && !pattern.startsWith('/')) {
    throw new OutputRuleError(text, `must have "/" right after the prefix "${prefix}"`);
  }
  try {
    compilePattern(pattern);
  } catch (e) {
    throw new OutputRuleError(text, (e as Error).message);
  }
  return {
    rule: text,
    pattern,
    mustMatch: prefix.includes('='),
    allowChange: prefix.includes('%'),
    ignore: prefix === '!',
  };
}

/**
 * Compiled output rules. Paths are absolute and normalised, e.g.
 * `/work/out/a.txt`.
 *
 * @example
 * const m = compileOutputRules(['/work/*', '!/work/*.tmp'].map(parseOutputRule));
 * m.matches('/work/a.txt');   // the "/work/*" rule
 * m.matches('/work/a.tmp');   // undefined: excluded
 */
export interface OutputRuleMatcher {
  /**
   * The first non-ignore rule that selects this file, or `undefined` when
   * none does or an ignore rule excludes it. Decide size-change tolerance
   * with {@link OutputRuleMatcher.allowsChange}, not the returned rule's
   * flag: any `%` rule matching the path counts, as in buildomat.
   */
  matches(path: string): OutputRule | undefined;
  /** Whether some `%` rule matches the path, so a size change mid-upload is only a warning. */
  allowsChange(path: string): boolean;
  /** The `=` rules that match none of the uploaded paths; the job fails if any. */
  unsatisfied(uploaded: Iterable<string>): OutputRule[];
}

/**
 * Compiles parsed rules into a matcher. Rules are re-validated, so
 * hand-built {@link OutputRule} objects are checked too.
 *
 * @throws OutputRuleError if a rule's pattern is invalid.
 * @example
 * const m = compileOutputRules(['=/work/out/*.tar.gz', '%/tmp/*.log'].map(parseOutputRule));
 * m.matches('/work/out/a.tar.gz')?.rule;  // '=/work/out/*.tar.gz'
 * m.allowsChange('/tmp/x.log');           // true
 * m.unsatisfied([]);                      // [the "=" rule]: nothing uploaded
 */
export function compileOutputRules(rules: readonly OutputRule[]): OutputRuleMatcher {
  const compiled = rules.map((rule) => {
    try {
      return { rule, ...compilePattern(rule.pattern) };
    } catch (e) {
      throw new OutputRuleError(rule.rule, (e as Error).message);
    }
  });
  const ignores = compiled.filter((c) => c.rule.ignore);
  const includes = compiled.filter((c) => !c.rule.ignore);
  const relaxed = compiled.filter((c) => c.rule.allowChange);
  const required = compiled.filter((c) => c.rule.mustMatch);
  return {
    matches(path) {
      if (!path.startsWith('/')) return undefined;
      if (ignores.some((c) => c.whole.test(path))) return undefined;
      return includes.find((c) => c.walk?.test(path) === true)?.rule;
    },
    allowsChange(path) {
      return relaxed.some((c) => c.whole.test(path));
    },
    unsatisfied(uploaded) {
      const paths = Array.from(uploaded);
      return required.filter((c) => !paths.some((p) => c.whole.test(p))).map((c) => c.rule);
    },
  };
}
