/**
 * Results: one {@link Figure} per measured number, each next to a ceiling
 * (or floor) measured in the same run and the ratio between them; a
 * readable table; the JSON file under bench/results/; and a bottleneck note
 * per scenario derived from the measured CPU time of each process.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MACHINE_ROLE } from './proc.js';
import type { ProcUsage } from './proc.js';
import { fmt } from './util.js';

/** A target from the issue: `value op target`. */
export interface Target {
  op: '>=' | '<';
  value: number;
}

/** One measured number. */
export interface Figure {
  scenario: string;
  name: string;
  value: number;
  unit: string;
  /** Which direction is good: throughput is `higher`, latency and memory `lower`. */
  better: 'higher' | 'lower';
  /** What bounds it on this machine, measured in this run (a floor when lower is better). */
  ceiling: { value: number; what: string } | null;
  /**
   * value / ceiling. `of-ceiling` (throughput): 1 = as fast as the bare
   * building block. `x-floor` (latency, memory): 1 = no overhead over it.
   */
  ratio: number | null;
  /** How to read `ratio`: a fraction of a ceiling, or a multiple of a floor. */
  ratioKind: 'of-ceiling' | 'x-floor';
  target: Target | null;
  met: boolean | null;
  note: string | null;
}

/** Builds a figure, computing ratio and met. */
export function figure(
  scenario: string, name: string, value: number, unit: string, better: 'higher' | 'lower',
  opts: { ceiling?: { value: number; what: string } | null; target?: Target | null; note?: string | null; ratioKind?: 'of-ceiling' | 'x-floor' } = {},
): Figure {
  const ceiling = opts.ceiling && Number.isFinite(opts.ceiling.value) && opts.ceiling.value > 0 ? opts.ceiling : null;
  const target = opts.target ?? null;
  const ok = Number.isFinite(value);
  return {
    scenario, name, value, unit, better, ceiling,
    ratio: ceiling && ok ? value / ceiling.value : null,
    ratioKind: opts.ratioKind ?? (better === 'higher' ? 'of-ceiling' : 'x-floor'),
    target,
    met: target && ok ? (target.op === '>=' ? value >= target.value : value < target.value) : null,
    note: opts.note ?? null,
  };
}

/**
 * A curve for the report's charts: y against x (for example lines/s
 * against the number of agents), with the ceiling at each x when there is
 * one (drawn beside it).
 */
export interface Series {
  name: string;
  xLabel: string;
  unit: string;
  points: { x: number; y: number; ceiling?: number }[];
  /** What the points' `ceiling` is, for the chart's legend (for example `bash runs/s, 4 in parallel`). */
  ceilingWhat?: string;
  /**
   * `auto` (the default) draws x on a log scale when it spans two decades
   * or more, as agent counts 1/10/100 do; a series over job numbers or
   * seconds says `linear`.
   */
  xScale?: 'auto' | 'linear' | 'log';
}

/**
 * Samples of one latency (or other) distribution for the report's charts:
 * at most {@link MAX_SAMPLES} values (use {@link sampleOf} to thin them),
 * with the floor measured in the same run when there is one.
 */
export interface Distribution {
  name: string;
  unit: string;
  samples: number[];
  floor?: number;
  /** Distributions of a scenario with the same group share one chart; the default groups by unit. */
  group?: string;
}

/** Samples kept per distribution. */
export const MAX_SAMPLES = 2000;

/** At most {@link MAX_SAMPLES} values of `xs`, evenly spaced over its sorted order (so percentiles survive). */
export function sampleOf(xs: readonly number[]): number[] {
  const sorted = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length <= MAX_SAMPLES) return sorted;
  return Array.from({ length: MAX_SAMPLES }, (_, i) => sorted[Math.round((i * (sorted.length - 1)) / (MAX_SAMPLES - 1))]!);
}

/** Everything one scenario produced. */
export interface ScenarioResult {
  scenario: string;
  figures: Figure[];
  /** Curves for the charts (may be empty). */
  series: Series[];
  /** Distributions for the charts (may be empty). */
  distributions: Distribution[];
  /** CPU and memory of each process per phase. */
  processes: ProcUsage[];
  /** Derived from `processes`: which side was CPU-bound, per phase. */
  bottleneck: string[];
  notes: string[];
  errors: string[];
  seconds: number;
}

/** An empty result to fill in. */
export function newResult(scenario: string): ScenarioResult {
  return { scenario, figures: [], series: [], distributions: [], processes: [], bottleneck: [], notes: [], errors: [], seconds: 0 };
}

/** A process counts as CPU-bound when it kept at least this many cores busy. */
const BOUND = 0.85;

/**
 * Says, from measured CPU seconds, which process limited a phase: one that
 * kept a core busy, or the whole 2-core machine, or neither (waiting:
 * disk, network, timers or the other side).
 */
export function bottleneckNote(phase: string, usages: ProcUsage[], cores = 2): string {
  const all = usages.filter((u) => u.phase === phase && Number.isFinite(u.cores));
  const list = all.filter((u) => u.role !== MACHINE_ROLE);
  const machineRow = all.find((u) => u.role === MACHINE_ROLE);
  if (list.length === 0) return `${phase}: no CPU figures`;
  const ours = list.reduce((s, u) => s + u.cpuS, 0);
  const wall = Math.max(...list.map((u) => u.wallS));
  const parts = list.map((u) => `${u.role}${u.procs > 1 ? ` (×${u.procs})` : ''} ${fmt(u.cores, 2)} cores (${fmt(u.cpuS, 2)} s CPU)`);
  // A row summing several processes is bound when they average a busy core each.
  const bound = list.filter((u) => u.cores / Math.max(1, u.procs) >= BOUND).map((u) => (u.procs > 1 ? `${u.role} (×${u.procs})` : u.role));
  const busy = machineRow ? machineRow.cores / cores : wall > 0 ? ours / (wall * cores) : NaN;
  const others = machineRow && wall > 0 ? Math.max(0, machineRow.cores - ours / wall) : 0;
  const noise = others >= 0.25 ? `; other processes on this shared host took ${fmt(others, 2)} cores meanwhile (noise)` : '';
  let verdict: string;
  if (busy >= 0.9) verdict = `the ${cores}-core machine was saturated (${fmt(busy * 100, 0)}% busy), so the figure is bounded by this host, not by one side alone${bound.length ? `; CPU-bound: ${bound.join(', ')}` : ''}`;
  else if (bound.length > 0) verdict = `CPU-bound: ${bound.join(', ')} (a JS thread kept a core busy; that side is the limit)`;
  else verdict = `no process was CPU-bound (machine ${fmt(busy * 100, 0)}% busy): the time went to waiting (disk commits, round trips, process start-up, timers)`;
  return `${phase} over ${fmt(wall, 2)} s: ${parts.join(', ')} → ${verdict}${noise}${machineRow?.extra ? ` [${machineRow.extra}]` : ''}`;
}

/** Fills `r.bottleneck` with one note per phase found in `r.processes`. */
export function addBottlenecks(r: ScenarioResult): void {
  const phases = [...new Set(r.processes.map((u) => u.phase))];
  for (const p of phases) r.bottleneck.push(bottleneckNote(p, r.processes));
}

function pad(s: string, n: number, right = false): string {
  if (s.length >= n) return s;
  return right ? s.padStart(n) : s.padEnd(n);
}

function ratioText(f: Figure): string {
  if (f.ratio === null) return '—';
  return f.ratioKind === 'of-ceiling' ? `${fmt(f.ratio, 3)} of ceiling` : `${fmt(f.ratio, 2)}× floor`;
}

function targetText(f: Figure): string {
  if (!f.target) return '—';
  return `${f.target.op === '>=' ? '≥' : '<'} ${fmt(f.target.value, f.target.value < 10 ? 1 : 0)}`;
}

/** The results as a plain-text table with per-scenario process usage and notes. */
export function renderTable(results: ScenarioResult[], header: string): string {
  const lines: string[] = [header, ''];
  const cols = ['figure', 'value', 'unit', 'ceiling / floor (same run)', 'ratio', 'target', 'met?'];
  const w = [44, 14, 10, 44, 18, 12, 5];
  for (const r of results) {
    lines.push(`== ${r.scenario} (${fmt(r.seconds, 1)} s) ==`);
    lines.push(cols.map((c, i) => pad(c, w[i]!)).join(' '));
    for (const f of r.figures) {
      const ceil = f.ceiling ? `${fmt(f.ceiling.value)} ${f.ceiling.what}` : '—';
      const met = f.met === null ? '' : f.met ? 'yes' : 'NO';
      lines.push([pad(f.name, w[0]!), pad(fmt(f.value), w[1]!, true), pad(f.unit, w[2]!), pad(ceil, w[3]!), pad(ratioText(f), w[4]!), pad(targetText(f), w[5]!), met].join(' '));
      if (f.note) lines.push(`    ↳ ${f.note}`);
    }
    if (r.processes.length > 0) {
      lines.push('  processes (from /proc):');
      for (const u of r.processes) {
        const mem = u.role === MACHINE_ROLE ? (u.extra ?? '') : `rss ${fmt(u.rssStartMiB, 0)} → ${fmt(u.rssEndMiB, 0)} MiB (peak ${fmt(u.peakMiB, 0)})`;
        lines.push(`    ${pad(u.phase, 22)} ${pad(u.procs > 1 ? `${u.role} ×${u.procs}` : u.role, 24)} wall ${pad(fmt(u.wallS, 2), 7, true)} s  cpu ${pad(fmt(u.cpuS, 2), 7, true)} s  = ${pad(fmt(u.cores, 2), 5, true)} cores  ${mem}`);
      }
    }
    for (const n of r.notes) lines.push(`  note: ${n}`);
    for (const e of r.errors) lines.push(`  !!! ERROR: ${e}`);
    lines.push('');
  }
  lines.push('== bottlenecks (from measured CPU time) ==');
  for (const r of results) {
    if (r.bottleneck.length === 0) continue;
    lines.push(`${r.scenario}:`);
    for (const b of r.bottleneck) lines.push(`  - ${b}`);
  }
  const failed = results.flatMap((r) => r.figures.filter((f) => f.met === false).map((f) => `${r.scenario}: ${f.name}`));
  const errors = results.flatMap((r) => r.errors.map((e) => `${r.scenario}: ${e}`));
  lines.push('', `targets missed: ${failed.length === 0 ? 'none' : failed.join('; ')}`);
  lines.push(`errors: ${errors.length === 0 ? 'none' : errors.length}`);
  return lines.join('\n');
}

/** Where result files go: bench/results/ in the source tree (git-ignored). */
export const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

/** Writes the JSON results file and returns its path. */
export function writeResults(doc: Record<string, unknown>, startedAt: Date): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${startedAt.toISOString()}.json`);
  writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
  return path;
}
