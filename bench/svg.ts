/**
 * The bench report's charts: pure functions from figures, series and
 * distributions to standalone SVG text. No dependencies, no scripts, no
 * external fonts (a generic font stack), a white background so the charts
 * stay readable on a forge's dark theme, and a fixed width so the report
 * lays out the same everywhere.
 *
 * Every piece of text goes through {@link escapeXml}: figure and scenario
 * names are free text and may hold `<`, `&` or control characters.
 */
import type { Distribution, Figure, Series } from './report.js';
import { fmt, percentile } from './util.js';

/** Width of every chart, in px. */
export const CHART_WIDTH = 640;
/** Height of a series chart, in px (distribution and ratio charts grow with their legend or rows). */
export const SERIES_HEIGHT = 320;

const FONT = 'system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif';
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf'];
/** Most curves one distribution chart overlays (one colour each). */
export const MAX_CURVES = PALETTE.length;
const INK = '#222';
const MUTED = '#666';
const GRID = '#e6e6e6';
const CEILING = '#8a8a8a';
const MET = '#2ca02c';
const MISSED = '#d62728';
const NO_TARGET = '#4c78a8';
const GLYPH_EM = 0.55;
/** Above this many points a curve is drawn without markers (they would merge into a smear). */
const MAX_MARKERS = 60;
/** Up to this many points each one is labelled with its ratio to the ceiling. */
const MAX_RATIO_LABELS = 12;

// XML 1.0 forbids these code points even as character references, so they are replaced, not escaped.
const INVALID_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const XML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/**
 * Text made safe for XML character data and attribute values: markup
 * characters become entities; code points XML cannot carry become U+FFFD.
 *
 * @example
 * escapeXml('<script> & "x"') // '&lt;script&gt; &amp; &quot;x&quot;'
 */
export function escapeXml(text: string): string {
  return String(text).replace(INVALID_XML, '\uFFFD').replace(/[&<>"']/g, (c) => XML_ENTITIES[c]!);
}

type AttrValue = string | number | null | undefined;

function coord(v: number): string {
  // A NaN here is a bug in the scaling below (inputs are filtered first): fail loudly rather than draw at 0.
  if (!Number.isFinite(v)) throw new RangeError(`svg: non-finite number ${v} in an attribute`);
  return String(Math.round(v * 10) / 10);
}

/** One element; attribute values are escaped, `children` must already be markup or escaped text. */
function el(name: string, attrs: Record<string, AttrValue>, ...children: string[]): string {
  let s = `<${name}`;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    s += ` ${k}="${typeof v === 'number' ? coord(v) : escapeXml(v)}"`;
  }
  return children.length === 0 ? `${s}/>` : `${s}>${children.join('')}</${name}>`;
}

/** `s` cut to about `maxPx` at `fontPx` (an average glyph of the sans-serif stacks is ~0.55 em wide), by code point. */
function clip(s: string, maxPx: number, fontPx: number): string {
  const chars = Array.from(s);
  const max = Math.max(2, Math.floor(maxPx / (fontPx * GLYPH_EM)));
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`;
}

function textWidth(s: string, fontPx: number): number {
  return Array.from(s).length * fontPx * GLYPH_EM;
}

/** A text element; clipped text keeps its full wording as a hover title. */
function label(x: number, y: number, content: string, attrs: Record<string, AttrValue> = {}, maxPx = Infinity): string {
  const size = typeof attrs['font-size'] === 'number' ? attrs['font-size'] : 11;
  const shown = clip(content, maxPx, size);
  const title = shown === content ? '' : el('title', {}, escapeXml(content));
  return el('text', { x, y, 'font-size': size, fill: INK, ...attrs }, title + escapeXml(shown));
}

function polyline(pts: [number, number][], attrs: Record<string, AttrValue>): string {
  return el('polyline', { points: pts.map(([x, y]) => `${coord(x)},${coord(y)}`).join(' '), fill: 'none', ...attrs });
}

function svgDoc(width: number, height: number, title: string, body: string[]): string {
  return el('svg', {
    xmlns: 'http://www.w3.org/2000/svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'font-family': FONT, 'font-size': 11,
  }, el('title', {}, escapeXml(title)), el('rect', { x: 0, y: 0, width, height, fill: '#fff' }), ...body) + '\n';
}

/**
 * Compact axis label: 1.25k, 350k, 2M, 0.05.
 *
 * @example
 * fmtAxis(356557) // '357k'
 */
export function fmtAxis(v: number): string {
  const a = Math.abs(v);
  const p = (x: number) => String(Number(x.toPrecision(3)));
  if (a === 0) return '0';
  if (a >= 1e9) return `${p(v / 1e9)}G`;
  if (a >= 1e6) return `${p(v / 1e6)}M`;
  if (a >= 1e4) return `${p(v / 1e3)}k`;
  return a >= 1 ? p(v) : String(Number(v.toPrecision(2)));
}

type Mode = 'linear' | 'log' | 'log1p';

/** A numeric axis: its domain, how it is transformed, and where the ticks go. */
interface Axis {
  mode: Mode;
  lo: number;
  hi: number;
  ticks: number[];
}

function transform(mode: Mode, v: number): number {
  return mode === 'linear' ? v : mode === 'log' ? Math.log10(v) : Math.log10(1 + v);
}

/** Maps a domain value to a pixel between r0 and r1. */
function scale(axis: Axis, r0: number, r1: number): (v: number) => number {
  // Halved first, so a domain spanning most of the doubles (-1e308..1e308) does not overflow to Infinity.
  const a = transform(axis.mode, axis.lo) / 2;
  const b = transform(axis.mode, axis.hi) / 2;
  return (v) => r0 + ((transform(axis.mode, v) / 2 - a) / (b - a)) * (r1 - r0);
}

const tidy = (v: number) => Number(v.toPrecision(12));
/** Most ticks an axis gets: extreme but finite data (1e-320 beside 1e308) must not turn into a runaway loop. */
const MAX_TICKS = 40;

function linearAxis(min: number, max: number, count = 5): Axis {
  if (min === max) {
    const d = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = min === 0 ? [0, 1] : [min - d, max + d];
  }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const lo = tidy(Math.floor(min / step) * step);
  const hi = tidy(Math.ceil(max / step) * step);
  // Spans that overflow or underflow double precision get their bare ends as ticks.
  if (![raw, step, lo, hi].every(Number.isFinite) || !(step > 0) || !(hi > lo)) {
    return { mode: 'linear', lo: min, hi: max > min ? max : min + 1, ticks: [min, max] };
  }
  const ticks: number[] = [];
  for (let i = 0; i <= MAX_TICKS && lo + i * step <= hi + step / 2; i++) ticks.push(tidy(lo + i * step));
  return { mode: 'linear', lo, hi, ticks };
}

/** Decades around [min, max] (min > 0); 2 and 5 between them when there are few. */
function logAxis(min: number, max: number): Axis {
  const lo = tidy(10 ** Math.floor(Math.log10(min)));
  let hi = tidy(10 ** Math.ceil(Math.log10(max)));
  if (hi <= lo) hi = tidy(lo * 10);
  // Below the smallest double a decade rounds to 0: such data gets a linear axis.
  if (!(lo > 0) || !Number.isFinite(hi)) return linearAxis(min, max);
  // Differences of logarithms: hi / lo and lo * 10 ** d overflow for subnormal lo.
  const first = Math.log10(lo);
  const decades = Math.round(Math.log10(hi) - first);
  const every = Math.max(1, Math.ceil(decades / MAX_TICKS));
  const ticks: number[] = [];
  for (let d = 0; d <= decades; d += every) {
    const base = tidy(10 ** (first + d));
    ticks.push(base);
    if (decades <= 2 && d < decades) ticks.push(tidy(base * 2), tidy(base * 5));
  }
  return { mode: 'log', lo, hi, ticks };
}

/** Like a log axis, but 0 sits at the origin (log10(1 + x)), for counts that start at 0 viewers. */
function log1pAxis(max: number): Axis {
  const hi = tidy(10 ** Math.ceil(Math.log10(Math.max(1, max))));
  if (!Number.isFinite(hi)) return linearAxis(0, max);
  const ticks = [0];
  for (let v = 1; v <= hi && ticks.length <= MAX_TICKS; v *= 10) ticks.push(v);
  return { mode: 'log1p', lo: 0, hi, ticks };
}

/**
 * The x axis of a series. `auto` goes logarithmic when the positive x
 * values span two decades or more (1/10/100/1000 agents would otherwise
 * crowd into the left edge); with a 0 among them, log10(1 + x).
 */
function xAxisFor(xs: number[], want: 'auto' | 'linear' | 'log'): Axis {
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  const positive = xs.filter((x) => x > 0);
  const spread = positive.length >= 2 ? Math.max(...positive) / Math.min(...positive) : 1;
  const log = min >= 0 && positive.length > 0 && (want === 'log' || (want === 'auto' && spread >= 100));
  if (!log) return linearAxis(min, max);
  return min > 0 ? logAxis(min, max) : log1pAxis(max);
}

/**
 * A value axis, linear from 0 so heights compare honestly. With `logTails`
 * (latency distributions) positive values spanning two decades go on a log
 * axis instead, so the body is not flattened by the tail.
 */
function valueAxis(values: number[], logTails: boolean): Axis {
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (logTails && min > 0 && max / min >= 100) return logAxis(min, max);
  // A sliver below 0 (clock skew between whole-ms event times) extends the axis just enough, not by a whole tick step.
  if (min < 0 && max > 0 && -min < 0.05 * max) return { ...linearAxis(0, max), lo: min };
  return linearAxis(Math.min(0, min), Math.max(0, max));
}

interface Frame {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function yGrid(axis: Axis, y: (v: number) => number, f: Frame): string[] {
  return axis.ticks.flatMap((t) => [
    el('line', { x1: f.left, x2: f.right, y1: y(t), y2: y(t), stroke: GRID }),
    label(f.left - 6, y(t) + 4, fmtAxis(t), { 'text-anchor': 'end', fill: MUTED, 'font-size': 10 }),
  ]);
}

/** Vertical grid and tick labels; labels closer than `minGap` px to the previous one are left out. */
function xGrid(ticks: number[], x: (v: number) => number, f: Frame, text: (v: number) => string, minGap = 30): string[] {
  const out: string[] = [];
  let last = -Infinity;
  for (const t of [...ticks].sort((a, b) => a - b)) {
    const px = x(t);
    out.push(el('line', { x1: px, x2: px, y1: f.top, y2: f.bottom, stroke: GRID }));
    if (px - last < minGap) continue;
    last = px;
    out.push(label(px, f.bottom + 15, text(t), { 'text-anchor': 'middle', fill: MUTED, 'font-size': 10 }));
  }
  return out;
}

function axes(f: Frame, xTitle: string, yTitle: string, height: number): string[] {
  const midY = (f.top + f.bottom) / 2;
  return [
    el('line', { x1: f.left, x2: f.right, y1: f.bottom, y2: f.bottom, stroke: INK }),
    el('line', { x1: f.left, x2: f.left, y1: f.top, y2: f.bottom, stroke: INK }),
    // Narrower than the plot: the bottom corners hold notes (the series chart's label key).
    label((f.left + f.right) / 2, height - 8, xTitle, { 'text-anchor': 'middle' }, (f.right - f.left) * 0.65),
    label(14, midY, yTitle, { 'text-anchor': 'middle', transform: `rotate(-90 14 ${coord(midY)})` }, f.bottom - f.top),
  ];
}

type Swatch = (x: number, y: number) => string;

/** Legend entries laid out left to right from `x`: a swatch (line, dash or box) and its text. */
function legendRow(x: number, y: number, items: { swatch: Swatch; text: string }[], maxRight = CHART_WIDTH - 8): string[] {
  const out: string[] = [];
  for (const it of items) {
    if (x + 30 > maxRight) break;
    out.push(it.swatch(x, y - 4));
    const room = maxRight - (x + 22);
    out.push(label(x + 22, y, it.text, {}, room));
    x += 22 + Math.min(room, textWidth(it.text, 11)) + 16;
  }
  return out;
}

const lineSwatch = (color: string, dash?: string): Swatch => (x, y) =>
  el('line', { x1: x, x2: x + 18, y1: y, y2: y, stroke: color, 'stroke-width': 2, 'stroke-dasharray': dash });
const boxSwatch = (color: string): Swatch => (x, y) => el('rect', { x: x + 3, y: y - 4, width: 12, height: 8, fill: color });

function noData(width: number, height: number, title: string, why: string): string {
  return svgDoc(width, height, title, [
    label(12, 20, title, { 'font-size': 13, 'font-weight': 'bold' }, width - 24),
    label(width / 2, height / 2, why, { 'text-anchor': 'middle', fill: MUTED }),
  ]);
}

/**
 * A series as a line of measured points, with the ceiling (or floor)
 * measured in the same run drawn beside each point as a dashed grey line
 * and a tick; up to 12 points are labelled with measured ÷ ceiling.
 *
 * @example
 * writeFileSync('t.svg', seriesChart({ name: 'ingest', xLabel: 'agents', unit: 'lines/s',
 *   points: [{ x: 1, y: 8e5, ceiling: 1.7e6 }, { x: 10, y: 9e5, ceiling: 1.7e6 }] }));
 */
export function seriesChart(s: Series): string {
  const W = CHART_WIDTH;
  const H = SERIES_HEIGHT;
  const title = `${s.name} (${s.unit})`;
  const pts = (s.points ?? []).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
  if (pts.length === 0) return noData(W, H, title, 'no finite points in this run');
  const ceil = pts.filter((p): p is typeof p & { ceiling: number } => typeof p.ceiling === 'number' && Number.isFinite(p.ceiling));
  const f: Frame = { left: 64, right: W - 20, top: 50, bottom: H - 46 };
  const xa = xAxisFor(pts.map((p) => p.x), s.xScale ?? 'auto');
  const ya = valueAxis([...pts.map((p) => p.y), ...ceil.map((p) => p.ceiling)], false);
  const x = scale(xa, f.left, f.right);
  const y = scale(ya, f.bottom, f.top);
  const distinct = [...new Set(pts.map((p) => p.x))];
  // Few x values (agent counts) are labelled where the data is; many (job numbers, seconds) on a regular grid.
  const xTicks = distinct.length <= 12 ? distinct : xa.ticks;
  const markers = pts.length <= MAX_MARKERS;
  const body: string[] = [
    label(12, 20, title, { 'font-size': 13, 'font-weight': 'bold' }, W - 24),
    ...legendRow(f.left, 38, [
      { swatch: lineSwatch(PALETTE[0]!), text: 'measured' },
      ...(ceil.length > 0 ? [{ swatch: lineSwatch(CEILING, '5 4'), text: `ceiling / floor, same run${s.ceilingWhat ? `: ${s.ceilingWhat}` : ''}` }] : []),
    ]),
    ...(ceil.length > 0 && pts.length <= MAX_RATIO_LABELS ? [label(8, H - 8, 'labels: measured ÷ ceiling', { 'font-size': 10, fill: MUTED })] : []),
    ...yGrid(ya, y, f),
    ...xGrid(xTicks, x, f, fmtAxis),
    ...axes(f, `${s.xLabel}${xa.mode === 'linear' ? '' : ' (log scale)'}`, s.unit, H),
  ];
  if (ceil.length > 0) {
    body.push(polyline(ceil.map((p) => [x(p.x), y(p.ceiling)]), { stroke: CEILING, 'stroke-width': 1.5, 'stroke-dasharray': '5 4', class: 'ceiling' }));
    if (markers) for (const p of ceil) body.push(el('line', { x1: x(p.x) - 7, x2: x(p.x) + 7, y1: y(p.ceiling), y2: y(p.ceiling), stroke: CEILING, 'stroke-width': 3, class: 'ceiling-mark' }));
  }
  body.push(polyline(pts.map((p) => [x(p.x), y(p.y)]), { stroke: PALETTE[0]!, 'stroke-width': markers ? 2 : 1.25, class: 'measured' }));
  if (markers) {
    for (const p of pts) {
      body.push(el('circle', { cx: x(p.x), cy: y(p.y), r: 3.5, fill: PALETTE[0]!, class: 'measured-point' }, el('title', {}, escapeXml(`${s.xLabel} ${fmt(p.x)}: ${fmt(p.y)} ${s.unit}${p.ceiling !== undefined ? `, ceiling ${fmt(p.ceiling)}` : ''}`))));
    }
  }
  if (pts.length <= MAX_RATIO_LABELS) {
    let lastX = -Infinity;
    let below = false;
    for (const p of ceil) {
      if (p.ceiling === 0) continue;
      // Above the higher of the two marks, so the label never sits on either line; a label crowding
      // the previous one goes below the lower mark instead.
      below = x(p.x) - lastX < 34 ? !below : false;
      lastX = x(p.x);
      const ly = below ? Math.min(f.bottom - 4, Math.max(y(p.y), y(p.ceiling)) + 16) : Math.max(f.top + 10, Math.min(y(p.y), y(p.ceiling)) - 8);
      body.push(label(x(p.x), ly, `${fmt(p.y / p.ceiling, 2)}×`, { 'text-anchor': 'middle', 'font-size': 10, fill: MUTED, class: 'ratio-label' }));
    }
  }
  return svgDoc(W, H, title, body);
}

/**
 * One or more distributions as percentile curves (value at p0..p100),
 * p50 and p99 marked on each, each floor as a dashed horizontal line; the
 * legend gives p50, p99, max and the sample count.
 *
 * @example
 * writeFileSync('d.svg', distributionChart('dispatch latency', [{ name: 'submit → hi', unit: 'ms', samples, floor: 3.5 }]));
 */
export function distributionChart(title: string, ds: Distribution[]): string {
  const W = CHART_WIDTH;
  const shown = ds.slice(0, MAX_CURVES).map((d, i) => ({
    d, color: PALETTE[i]!, samples: (d.samples ?? []).filter(Number.isFinite).sort((a, b) => a - b),
    floor: typeof d.floor === 'number' && Number.isFinite(d.floor) ? d.floor : undefined,
  }));
  const rows = Math.max(1, shown.length);
  const H = 290 + rows * 16;
  const withData = shown.filter((c) => c.samples.length > 0);
  if (withData.length === 0) return noData(W, H, title, 'no samples in this run');
  const units = [...new Set(shown.map((c) => c.d.unit))].join(' / ');
  const f: Frame = { left: 64, right: W - 20, top: 36 + rows * 16 + 14, bottom: H - 46 };
  const values = [...withData.flatMap((c) => [c.samples[0]!, c.samples[c.samples.length - 1]!]), ...shown.flatMap((c) => (c.floor === undefined ? [] : [c.floor]))];
  const ya = valueAxis(values, true);
  const xa: Axis = { mode: 'linear', lo: 0, hi: 100, ticks: [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100] };
  const x = scale(xa, f.left, f.right);
  const y = scale(ya, f.bottom, f.top);
  const body: string[] = [
    label(12, 20, title, { 'font-size': 13, 'font-weight': 'bold' }, W - 24),
    ...yGrid(ya, y, f),
    ...xGrid(xa.ticks, x, f, (v) => `p${v}`),
    ...axes(f, 'percentile (share of samples at or below the value)', units, H),
  ];
  shown.forEach((c, i) => {
    const n = c.samples.length;
    const stats = n === 0 ? 'no samples' : `p50 ${fmt(percentile(c.samples, 0.5))} · p99 ${fmt(percentile(c.samples, 0.99))} · max ${fmt(c.samples[n - 1])} ${c.d.unit} (n ${fmt(n, 0)})${c.floor === undefined ? '' : ` · floor ${fmt(c.floor)}`}`;
    body.push(...legendRow(f.left, 38 + i * 16, [{ swatch: lineSwatch(c.color), text: `${c.d.name}: ${stats}` }]));
  });
  // Equal floors (several curves measured against one baseline) are drawn once, in grey.
  const floors = new Map<string, { value: number; colors: string[] }>();
  for (const c of shown) {
    if (c.floor === undefined) continue;
    const key = fmt(c.floor);
    const g = floors.get(key) ?? { value: c.floor, colors: [] };
    g.colors.push(c.color);
    floors.set(key, g);
  }
  for (const [key, g] of floors) {
    const color = g.colors.length === 1 ? g.colors[0]! : CEILING;
    body.push(el('line', { x1: f.left, x2: f.right, y1: y(g.value), y2: y(g.value), stroke: color, 'stroke-width': 1.5, 'stroke-dasharray': '6 4', opacity: 0.8, class: 'floor' }));
    body.push(label(f.left + 6, y(g.value) - 4, `floor ${key} ${units} (same run)`, { 'font-size': 10, fill: color }));
  }
  for (const p of [50, 99]) {
    body.push(el('line', { x1: x(p), x2: x(p), y1: f.top, y2: f.bottom, stroke: MUTED, 'stroke-dasharray': '2 3', class: `p${p}` }));
    body.push(label(x(p) + (p === 99 ? -3 : 3), f.top - 4, `p${p}`, { 'font-size': 10, fill: MUTED, 'text-anchor': p === 99 ? 'end' : 'start' }));
  }
  for (const c of withData) {
    const n = c.samples.length;
    // One sample still draws as a level line across the plot.
    const pts: [number, number][] = n === 1 ? [[x(0), y(c.samples[0]!)], [x(100), y(c.samples[0]!)]] : c.samples.map((v, i) => [x((i / (n - 1)) * 100), y(v)]);
    body.push(polyline(pts, { stroke: c.color, 'stroke-width': 1.75, class: 'curve' }));
    for (const p of [50, 99]) {
      const v = percentile(c.samples, p / 100);
      body.push(el('circle', { cx: x(p), cy: y(v), r: 3.5, fill: c.color, stroke: '#fff', class: `mark-p${p}` }, el('title', {}, escapeXml(`${c.d.name} p${p}: ${fmt(v)} ${c.d.unit}`))));
    }
  }
  return svgDoc(W, H, title, body);
}

/** The ratio as the table prints it: a fraction of the ceiling or a multiple of the floor. */
export function ratioText(f: Pick<Figure, 'ratio' | 'ratioKind'>): string {
  if (f.ratio === null || !Number.isFinite(f.ratio)) return '—';
  return f.ratioKind === 'of-ceiling' ? `${fmt(f.ratio, 3)} of ceiling` : `${fmt(f.ratio, 2)}× floor`;
}

/** A figure's target in ratio units: where the bar must reach in this run (target ÷ ceiling). */
export function targetRatio(f: Figure): number | null {
  if (!f.target || !f.ceiling || !(f.ceiling.value > 0)) return null;
  const r = f.target.value / f.ceiling.value;
  return Number.isFinite(r) && r > 0 ? r : null;
}

/**
 * One horizontal bar per figure that has a ratio, on a log axis centred on
 * 1 (= the ceiling or floor measured in the same run): a fraction of a
 * ceiling extends left of 1, a multiple of a floor right. Bars are green
 * when the figure met its target, red when it missed, blue without one; a
 * target that can be put in ratio units (target ÷ ceiling) is a black tick.
 *
 * @example
 * writeFileSync('r.svg', ratioChart('ingest: ratio to the ceiling', result.figures));
 */
export function ratioChart(title: string, figures: Figure[]): string {
  const W = CHART_WIDTH;
  const rows = figures.filter((f) => f.ratio !== null && Number.isFinite(f.ratio));
  const rowH = 22;
  const top = 56;
  const H = top + Math.max(1, rows.length) * rowH + 44;
  if (rows.length === 0) return noData(W, H, title, 'no figure has a ceiling or floor in this run');
  const f: Frame = { left: 252, right: 516, top, bottom: top + rows.length * rowH };
  const positive = [1, ...rows.map((r) => r.ratio!), ...rows.map(targetRatio)].filter((v): v is number => v !== null && v > 0);
  const xa = logAxis(Math.min(...positive), Math.max(...positive));
  const x = scale(xa, f.left, f.right);
  const body: string[] = [
    label(12, 20, title, { 'font-size': 13, 'font-weight': 'bold' }, W - 24),
    ...legendRow(f.left - 240, 40, [
      { swatch: boxSwatch(MET), text: 'target met' },
      { swatch: boxSwatch(MISSED), text: 'target missed' },
      { swatch: boxSwatch(NO_TARGET), text: 'no target' },
      { swatch: lineSwatch(INK), text: 'target as a ratio (target ÷ ceiling)' },
    ]),
    ...xGrid(xa.ticks, x, f, fmtAxis, 18),
    label((f.left + f.right) / 2, H - 8, 'value ÷ ceiling or floor measured in this run (log scale; 1 = the bare building block)', { 'text-anchor': 'middle' }, W - 24),
  ];
  rows.forEach((fig, i) => {
    const cy = top + i * rowH + rowH / 2;
    const r = fig.ratio!;
    // A ratio at or below 0 (a negative value) has no place on a log axis: it is pinned to the left edge and the label says so.
    const end = r > 0 ? x(r) : f.left;
    const one = x(1);
    const color = fig.met === true ? MET : fig.met === false ? MISSED : NO_TARGET;
    if (i % 2 === 1) body.push(el('rect', { x: 8, y: cy - rowH / 2, width: W - 16, height: rowH, fill: '#f6f6f6' }));
    body.push(label(f.left - 8, cy + 4, fig.name, { 'text-anchor': 'end' }, f.left - 16));
    body.push(el('rect', { x: Math.min(one, end), y: cy - 6, width: Math.max(1.5, Math.abs(end - one)), height: 12, fill: color, class: 'bar' },
      el('title', {}, escapeXml(`${fig.name}: ${fmt(fig.value)} ${fig.unit}; ${fig.ceiling ? `${fmt(fig.ceiling.value)} ${fig.ceiling.what}` : ''}; ${ratioText(fig)}`))));
    const t = targetRatio(fig);
    if (t !== null) {
      body.push(el('line', { x1: x(t), x2: x(t), y1: cy - 9, y2: cy + 9, stroke: INK, 'stroke-width': 2, class: 'target' },
        el('title', {}, escapeXml(`target ${fig.target!.op === '>=' ? '≥' : '<'} ${fmt(fig.target!.value)} ${fig.unit} = ${fmt(t, 3)} of this run's ceiling / floor`))));
    }
    body.push(label(f.right + 8, cy + 4, `${r > 0 ? '' : '≤ '}${ratioText(fig)}`, { 'font-size': 10, class: 'ratio-label' }, W - f.right - 12));
  });
  body.push(el('line', { x1: x(1), x2: x(1), y1: f.top - 4, y2: f.bottom, stroke: INK, 'stroke-width': 1.5, class: 'one' }));
  body.push(el('line', { x1: f.left, x2: f.right, y1: f.bottom, y2: f.bottom, stroke: INK }));
  return svgDoc(W, H, title, body);
}
