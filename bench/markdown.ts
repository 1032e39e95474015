/**
 * The bench report as Markdown with SVG charts, next to the JSON document:
 * bench/results/<ISO timestamp>.md and its charts in
 * bench/results/<ISO timestamp>/, linked relatively so the report renders
 * on a forge or in a local Markdown viewer.
 *
 * Ratios are the headline (each figure beside the ceiling or floor measured
 * in the same run) because this machine is shared and absolute times move
 * with whatever else runs on it.
 *
 * Re-render an earlier run: `node dist/bench/markdown.js bench/results/<ts>.json...`
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MACHINE_ROLE } from './proc.js';
import type { ProcUsage } from './proc.js';
import { RESULTS_DIR, renderTable, writeResults } from './report.js';
import type { Distribution, Figure, ScenarioResult, Series } from './report.js';
import { MAX_CURVES, distributionChart, ratioChart, ratioText, seriesChart } from './svg.js';
import { fmt, percentile } from './util.js';

/** The document `bench/main.ts` writes as JSON, and what the report is rendered from. */
export interface BenchDoc {
  startedAt: string;
  seconds: number;
  quick: boolean;
  scenarios: string[];
  machine: { cpus: number; cpuModel: string; memGiB: number; node: string };
  ratioMeaning?: string;
  results: ScenarioResult[];
}

/** A rendered report: the Markdown and the charts it links to (file names inside the chart directory). */
export interface RenderedReport {
  markdown: string;
  charts: { file: string; svg: string }[];
}

/** Up to this many points a series also gets a table of its points under the chart. */
const MAX_POINT_ROWS = 12;

const MD_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };

/**
 * Free text made inert as Markdown inline content: markup characters
 * become entities (so they also survive inside HTML blocks), emphasis,
 * link and table characters are backslash-escaped, and line breaks become
 * spaces. A leading block marker (`#`, `>`, `-`, `1.`) is escaped too.
 *
 * @example
 * mdText('a | <b> & *c*') // 'a \\| &lt;b&gt; &amp; \\*c\\*'
 */
export function mdText(text: string): string {
  return String(text)
    .replace(/[&<>]/g, (c) => MD_ENTITIES[c]!)
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`)
    .replace(/\r\n?|\n/g, ' ')
    // Only where a line start would turn into a heading, list item or thematic break.
    .replace(/^(\s*)(?:([#+-])(?=[\s+-]|$)|(\d{1,9})(?=[.)](?:\s|$)))/, (_, sp: string, mark?: string, digits?: string) => (digits ? `${sp}${digits}\\` : `${sp}\\${mark}`));
}

/** Free text for a table cell: like {@link mdText}, with line breaks kept as `<br>`. */
export function mdCell(text: string): string {
  return String(text).split(/\r\n?|\n/).map(mdText).join('<br>');
}

/** A fenced block that the text cannot close early, whatever backticks it holds. */
function fence(text: string): string {
  const longest = Math.max(0, ...Array.from(text.matchAll(/`+/g), (m) => m[0].length));
  const f = '`'.repeat(Math.max(3, longest + 1));
  return `${f}text\n${text}\n${f}`;
}

function table(header: string[], rows: string[][], align: ('l' | 'r' | 'c')[] = []): string[] {
  const rule = header.map((_, i) => (align[i] === 'r' ? '---:' : align[i] === 'c' ? ':-:' : '---'));
  return [`| ${header.join(' | ')} |`, `| ${rule.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);
const arr = <T>(v: T[] | undefined | null): T[] => (Array.isArray(v) ? v : []);

/**
 * A figure as read back from JSON: NaN was written as null, and older runs
 * lack fields that came later. Everything the renderer reads is made
 * present and typed here, so the rest need not guard.
 */
function normalizeFigure(f: Figure): Figure {
  const ceiling = f.ceiling && typeof f.ceiling === 'object' ? { value: num(f.ceiling.value), what: String(f.ceiling.what ?? '') } : null;
  const target = f.target && typeof f.target === 'object' ? { op: f.target.op === '>=' ? ('>=' as const) : ('<' as const), value: num(f.target.value) } : null;
  return {
    scenario: String(f.scenario ?? ''), name: String(f.name ?? ''), value: num(f.value), unit: String(f.unit ?? ''),
    better: f.better === 'lower' ? 'lower' : 'higher', ceiling,
    ratio: typeof f.ratio === 'number' && Number.isFinite(f.ratio) ? f.ratio : null,
    ratioKind: f.ratioKind === 'x-floor' ? 'x-floor' : 'of-ceiling', target,
    met: typeof f.met === 'boolean' ? f.met : null, note: typeof f.note === 'string' && f.note !== '' ? f.note : null,
  };
}

function normalizeResult(r: ScenarioResult): ScenarioResult {
  return {
    scenario: String(r.scenario ?? '?'),
    figures: arr(r.figures).map(normalizeFigure),
    series: arr(r.series).map((s) => ({ ...s, name: String(s.name ?? ''), xLabel: String(s.xLabel ?? 'x'), unit: String(s.unit ?? ''), points: arr(s.points).map((p) => ({ ...p, x: num(p.x), y: num(p.y) })) })),
    distributions: arr(r.distributions).map((d) => ({ ...d, name: String(d.name ?? ''), unit: String(d.unit ?? ''), samples: arr(d.samples).map(num) })),
    processes: arr(r.processes), bottleneck: arr(r.bottleneck).map(String), notes: arr(r.notes).map(String), errors: arr(r.errors).map(String),
    seconds: num(r.seconds),
  };
}

function valueText(v: number, unit: string): string {
  return Number.isFinite(v) ? `${fmt(v)} ${unit}`.trim() : '—';
}

function ceilingCell(f: Figure): string {
  return f.ceiling ? mdCell(`${fmt(f.ceiling.value)} ${f.ceiling.what}`) : '—';
}

function targetCell(f: Figure): string {
  if (!f.target) return '—';
  return mdCell(`${f.target.op === '>=' ? '≥' : '<'} ${fmt(f.target.value, Math.abs(f.target.value) < 10 ? 1 : 0)} ${f.unit}`);
}

function metCell(f: Figure): string {
  if (!f.target) return '';
  if (f.met === null) return '— (no value)';
  return f.met ? '✅ met' : '❌ missed';
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'scenario';
}

/** Distributions in chart order: by `group` (default: unit), at most {@link MAX_CURVES} per chart. */
function distributionGroups(ds: Distribution[]): { title: string; ds: Distribution[] }[] {
  const groups = new Map<string, Distribution[]>();
  for (const d of ds) {
    const title = d.group ?? `distributions in ${d.unit || 'no unit'}`;
    groups.set(title, [...(groups.get(title) ?? []), d]);
  }
  const out: { title: string; ds: Distribution[] }[] = [];
  for (const [title, list] of groups) {
    const parts = Math.ceil(list.length / MAX_CURVES);
    for (let i = 0; i < parts; i++) out.push({ title: parts > 1 ? `${title} (${i + 1} of ${parts})` : title, ds: list.slice(i * MAX_CURVES, (i + 1) * MAX_CURVES) });
  }
  return out;
}

function processRows(ps: ProcUsage[]): string[] {
  const rows = ps.map((u) => [
    mdCell(String(u.phase ?? '')), mdCell(u.procs > 1 ? `${u.role} ×${u.procs}` : String(u.role ?? '')),
    fmt(num(u.wallS), 2), fmt(num(u.cpuS), 2), fmt(num(u.cores), 2),
    u.role === MACHINE_ROLE ? mdCell(u.extra ?? '') : `${fmt(num(u.rssStartMiB), 0)} → ${fmt(num(u.rssEndMiB), 0)} (peak ${fmt(num(u.peakMiB), 0)})`,
  ]);
  return table(['phase', 'process', 'wall s', 'CPU s', 'cores', 'RSS MiB start → end (peak), or the whole machine'], rows, ['l', 'l', 'r', 'r', 'r', 'l']);
}

/**
 * Renders the report. `chartDir` is the charts' directory relative to the
 * Markdown file (the image links use it); the caller writes `charts` there.
 *
 * @example
 * const { markdown, charts } = renderMarkdown(doc, '2026-11-21T10:49:43.358Z');
 */
export function renderMarkdown(doc: BenchDoc, chartDir: string): RenderedReport {
  const results = arr(doc.results).map(normalizeResult);
  const charts: { file: string; svg: string }[] = [];
  const used = new Set<string>();
  const linkDir = chartDir.split('/').filter((p) => p !== '').map(encodeURIComponent).join('/');
  // One failing chart costs that chart, not the report.
  const chart = (base: string, alt: string, draw: () => string): string => {
    let file = `${base}.svg`;
    for (let i = 2; used.has(file); i++) file = `${base}-${i}.svg`;
    try {
      const svg = draw();
      used.add(file);
      charts.push({ file, svg });
      return `![${mdText(alt)}](./${linkDir ? `${linkDir}/` : ''}${encodeURIComponent(file)})`;
    } catch (err) {
      return `> chart “${mdText(alt)}” not drawn: ${mdText((err as Error).message)}`;
    }
  };

  const m = doc.machine ?? { cpus: NaN, cpuModel: 'unknown', memGiB: NaN, node: '?' };
  const out: string[] = [
    `# buildwire bench: ${mdText(String(doc.startedAt ?? ''))}${doc.quick ? ' (quick)' : ''}`,
    '',
    `**Machine:** ${fmt(num(m.cpus), 0)} × ${mdText(String(m.cpuModel))}, ${fmt(num(m.memGiB), 1)} GiB, node ${mdText(String(m.node))}  `,
    `**Run:** started ${mdText(String(doc.startedAt ?? ''))}, ${fmt(num(doc.seconds), 0)} s, ${doc.quick ? 'quick (reduced counts)' : 'full counts'}; scenarios: ${mdText(arr(doc.scenarios).join(', ') || results.map((r) => r.scenario).join(', '))}`,
    '',
    'Every figure stands beside a **ceiling** (throughput) or **floor** (latency, memory) measured in this same run, and the ratio between them. '
      + 'The host is shared and noisy, so the ratios, not the absolute numbers, are the headline: '
      + '`of ceiling` is value ÷ ceiling (1 = as fast as the bare building block); `× floor` is value ÷ floor (1 = no overhead over it).',
    '',
  ];

  const withTarget = results.flatMap((r) => r.figures.filter((f) => f.target !== null).map((f) => ({ r, f })));
  const met = withTarget.filter(({ f }) => f.met === true).length;
  const missed = withTarget.filter(({ f }) => f.met === false);
  out.push('## Targets', '');
  if (withTarget.length === 0) out.push('No figure in this run has a target.', '');
  else {
    const unknown = withTarget.length - met - missed.length;
    out.push(`**${met} of ${withTarget.length} targets met**${missed.length ? `; missed: ${missed.map(({ r, f }) => `${mdText(r.scenario)}: ${mdText(f.name)}`).join('; ')}` : ''}${unknown ? `; ${unknown} without a measured value` : ''}.`, '');
    out.push(...table(
      ['scenario', 'figure', 'value', 'ceiling / floor (same run)', 'ratio', 'target', 'met'],
      withTarget.map(({ r, f }) => [mdCell(r.scenario), mdCell(f.name), mdCell(valueText(f.value, f.unit)), ceilingCell(f), ratioText(f), targetCell(f), metCell(f)]),
      ['l', 'l', 'r', 'l', 'r', 'l', 'c'],
    ), '');
  }

  const failed = results.filter((r) => r.errors.length > 0);
  if (failed.length > 0) {
    out.push('## ⚠️ Errors', '', 'These scenarios reported errors; their figures may be partial. The full text is in each scenario\'s section.', '');
    for (const r of failed) for (const e of r.errors) out.push(`- **${mdText(r.scenario)}**: ${mdText(e.split('\n')[0] ?? '')}`);
    out.push('');
  }

  for (const r of results) {
    out.push(`## ${mdText(r.scenario)} (${fmt(r.seconds, 1)} s)`, '');
    if (r.errors.length > 0) {
      out.push(`**⚠️ ${r.errors.length} error${r.errors.length === 1 ? '' : 's'} in this scenario:**`, '');
      for (const e of r.errors) out.push(fence(e), '');
    }
    if (r.figures.length === 0) out.push('No figures.', '');
    else {
      out.push(...table(
        ['figure', 'value', 'unit', 'ceiling / floor (same run)', 'ratio', 'target', 'met'],
        r.figures.map((f) => [mdCell(f.name), Number.isFinite(f.value) ? fmt(f.value) : '—', mdCell(f.unit), ceilingCell(f), ratioText(f), targetCell(f), metCell(f)]),
        ['l', 'r', 'l', 'l', 'r', 'l', 'c'],
      ), '');
    }
    const noted = r.figures.filter((f) => f.note !== null);
    if (noted.length > 0 || r.notes.length > 0) {
      out.push('Notes:', '');
      for (const f of noted) out.push(`- *${mdText(f.name)}*: ${mdText(f.note!)}`);
      for (const n of r.notes) out.push(`- ${mdText(n)}`);
      out.push('');
    }

    const base = slug(r.scenario);
    if (r.figures.some((f) => f.ratio !== null)) {
      out.push(chart(`${base}-ratios`, `${r.scenario}: each figure's ratio to its ceiling or floor`, () => ratioChart(`${r.scenario}: ratio to the ceiling / floor measured in this run`, r.figures)), '');
    }
    r.series.forEach((s, i) => out.push(...seriesSection(s, chart(`${base}-series-${i + 1}`, `${r.scenario}: ${s.name}`, () => seriesChart(s)))));
    distributionGroups(r.distributions).forEach((g, i) => {
      out.push(chart(`${base}-distribution-${i + 1}`, `${r.scenario}: ${g.title}`, () => distributionChart(`${r.scenario}: ${g.title}`, g.ds)), '');
      out.push(...distributionTable(g.ds), '');
    });

    if (r.bottleneck.length > 0) {
      out.push('Bottlenecks (from measured CPU time):', '');
      for (const b of r.bottleneck) out.push(`- ${mdText(b)}`);
      out.push('');
    }
    if (r.processes.length > 0) {
      // HTML block: its summary is HTML text, and the table inside needs the blank lines around it to render as Markdown.
      out.push('<details>', `<summary>Processes: CPU and memory per phase (${r.processes.length} rows, from /proc)</summary>`, '', ...processRows(r.processes), '', '</details>', '');
    }
  }
  return { markdown: out.join('\n').replace(/\n{3,}/g, '\n\n'), charts };
}

function seriesSection(s: Series, image: string): string[] {
  const out = [image, ''];
  const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0 || pts.length > MAX_POINT_ROWS) return out;
  out.push(...table(
    [mdCell(s.xLabel), mdCell(s.unit), 'ceiling / floor (same run)', 'ratio'],
    pts.map((p) => {
      const c = typeof p.ceiling === 'number' && Number.isFinite(p.ceiling) ? p.ceiling : null;
      return [Number.isInteger(p.x) ? fmt(p.x, 0) : fmt(p.x), fmt(p.y), c === null ? '—' : `${fmt(c)}${s.ceilingWhat ? ` ${mdCell(s.ceilingWhat)}` : ''}`, c ? `${fmt(p.y / c, 3)}×` : '—'];
    }),
    ['r', 'r', 'l', 'r'],
  ), '');
  return out;
}

function distributionTable(ds: Distribution[]): string[] {
  const q = (xs: number[], p: number) => (xs.length ? fmt(percentile(xs, p)) : '—');
  return table(['distribution', 'n', 'p0', 'p50', 'p90', 'p99', 'p100', 'floor (same run)', 'p50 ÷ floor', 'p99 ÷ floor'], ds.map((d) => {
    const xs = d.samples.filter(Number.isFinite);
    const floor = typeof d.floor === 'number' && Number.isFinite(d.floor) && d.floor > 0 ? d.floor : null;
    const over = (p: number) => (floor && xs.length ? `${fmt(percentile(xs, p) / floor, 2)}×` : '—');
    return [mdCell(d.name), fmt(xs.length, 0), q(xs, 0), q(xs, 0.5), q(xs, 0.9), q(xs, 0.99), q(xs, 1), floor === null ? '—' : `${fmt(floor)} ${mdCell(d.unit)}`, over(0.5), over(0.99)];
  }), ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']);
}

/**
 * Writes `<dir>/<timestamp>.md` and its charts in `<dir>/<timestamp>/`;
 * returns the Markdown file's path. `dir` defaults to bench/results/.
 */
export function writeMarkdown(doc: BenchDoc, startedAt: Date, dir: string = RESULTS_DIR): string {
  const name = startedAt.toISOString();
  const { markdown, charts } = renderMarkdown(doc, name);
  if (charts.length > 0) mkdirSync(join(dir, name), { recursive: true });
  for (const c of charts) writeFileSync(join(dir, name, c.file), c.svg);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.md`);
  writeFileSync(path, markdown);
  return path;
}

// Run as a script: re-render the reports of earlier JSON documents, beside them.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: node dist/bench/markdown.js bench/results/<timestamp>.json...\n');
    process.exit(64);
  }
  for (const file of files) {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as BenchDoc;
    process.stdout.write(`${writeMarkdown(doc, new Date(doc.startedAt), dirname(file))}\n`);
  }
}

/**
 * Writes a run's JSON and Markdown report, then prints the table (or, with
 * `jsonOnly`, the JSON on stdout and the paths on stderr). The JSON is
 * written first, so a broken report costs only the report (and the exit code).
 */
export function publishRun(doc: BenchDoc, startedAt: Date, results: ScenarioResult[], header: string, jsonOnly: boolean): void {
  const path = writeResults(doc as unknown as Record<string, unknown>, startedAt);
  let report: string;
  try {
    report = writeMarkdown(doc, startedAt);
  } catch (err) {
    report = `not written (${(err as Error).stack ?? String(err)})`;
    process.exitCode = 1;
  }
  if (jsonOnly) {
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    process.stderr.write(`results: ${path}\nreport: ${report}\n`);
  } else {
    process.stdout.write(renderTable(results, header) + `\n\nresults: ${path}\nreport: ${report}\n`);
  }
}
