import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mdCell, mdText, renderMarkdown, writeMarkdown } from '../bench/markdown.js';
import type { BenchDoc } from '../bench/markdown.js';
import { MACHINE_ROLE } from '../bench/proc.js';
import { figure, newResult } from '../bench/report.js';
import type { Distribution, ScenarioResult, Series } from '../bench/report.js';
import { distributionChart, escapeXml, ratioChart, seriesChart } from '../bench/svg.js';

const HOSTILE = '<script>alert("x")</script> & | *bold* [link](http://x)';

/**
 * Checks that `svg` is one well-formed XML element: every `<` opens a
 * well-formed tag, tags nest and close in order, attribute values are
 * quoted and hold no raw `<` or stray `&`, text holds only known entities,
 * and nothing but white space sits outside the root.
 */
function assertWellFormed(svg: string, what = 'svg'): void {
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const entity = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const checkEntities = (text: string, where: number) => {
    for (let j = text.indexOf('&'); j >= 0; j = text.indexOf('&', j + 1)) {
      entity.lastIndex = j;
      assert.ok(entity.test(text), `${what}: raw & at ${where + j}: ${JSON.stringify(text.slice(j, j + 20))}`);
    }
  };
  while (i < svg.length) {
    const lt = svg.indexOf('<', i);
    const text = lt < 0 ? svg.slice(i) : svg.slice(i, lt);
    checkEntities(text, i);
    if (stack.length === 0) assert.equal(text.trim(), '', `${what}: text outside the root element: ${JSON.stringify(text.slice(0, 40))}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(svg);
    assert.ok(m, `${what}: malformed markup at ${lt}: ${JSON.stringify(svg.slice(lt, lt + 60))}`);
    const [, close, name, attrs, self] = m;
    const names = [...attrs!.matchAll(/([\w:.-]+)="([^"]*)"/g)].map((a) => {
      checkEntities(a[2]!, lt);
      return a[1]!;
    });
    assert.equal(new Set(names).size, names.length, `${what}: duplicate attribute in <${name}>`);
    if (close) assert.equal(stack.pop(), name, `${what}: </${name}> closes the wrong element at ${lt}`);
    else {
      if (stack.length === 0) roots++;
      if (!self) stack.push(name!);
    }
    i = tag.lastIndex;
  }
  assert.deepEqual(stack, [], `${what}: unclosed elements`);
  assert.equal(roots, 1, `${what}: expected one root element`);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.doesNotMatch(svg, /<script|NaN|Infinity|undefined/i, `${what}: script or a non-number leaked into the SVG`);
}

/** Pixel positions of the elements with `class` (cx of circles, x1 of lines). */
function positions(svg: string, cls: string, attr: string): number[] {
  return [...svg.matchAll(new RegExp(`<[a-z]+ [^>]*\\b${attr}="([-\\d.]+)"[^>]*class="${cls}"`, 'g'))].map((m) => Number(m[1]));
}

function count(s: string, needle: string): number {
  return s.split(needle).length - 1;
}

/** Unescaped pipes on a Markdown table line. */
function cells(line: string): number {
  return line.replace(/\\\\/g, '').replace(/\\\|/g, '').split('|').length - 1;
}

function syntheticDoc(): BenchDoc {
  const S = `ingest ${HOSTILE}`;
  const r: ScenarioResult = newResult(S);
  r.seconds = 12.5;
  r.figures.push(
    figure(S, `1 agent: lines/s ${HOSTILE}`, 811_321, 'lines/s', 'higher', { ceiling: { value: 1_749_562, what: 'lines/s, slowest block <b>' }, target: { op: '>=', value: 1_000_000 }, note: 'note with | pipe\nand a second line' }),
    figure(S, 'persistent agent: p99', 21.7, 'ms', 'lower', { ceiling: { value: 3.5, what: 'ms (bash hi + 1 REST round trip)' }, target: { op: '<', value: 50 } }),
    figure(S, 'coordinator peak RSS', 184, 'MiB', 'lower', { ceiling: { value: 89, what: 'MiB idle' } }),
    figure(S, 'no ceiling at all', 42, 'things', 'higher'),
  );
  r.series.push({ name: `lines/s against agents ${HOSTILE}`, xLabel: 'agents & <friends>', unit: 'lines/s', ceilingWhat: 'slowest block', points: [1, 10, 100].map((x, i) => ({ x, y: 800_000 - i * 50_000, ceiling: 1_749_562 })) });
  r.distributions.push(
    { name: `submit → hi ${HOSTILE}`, unit: 'ms', samples: Array.from({ length: 500 }, (_, i) => 5 + (i % 37)), floor: 3.5 },
    { name: 'hi → seen', unit: 'ms', samples: [1, 2, 2, 3, NaN, 8] },
  );
  r.processes.push(
    { role: 'coordinator <main>', phase: 'agents | 1', pid: 1, wallS: 2, cpuS: 1.9, cores: 0.95, rssStartMiB: 80, rssEndMiB: 180, peakMiB: 184, procs: 1, extra: null },
    { role: MACHINE_ROLE, phase: 'agents | 1', pid: 0, wallS: 2, cpuS: 3.6, cores: 1.8, rssStartMiB: NaN, rssEndMiB: NaN, peakMiB: NaN, procs: 0, extra: 'iowait 0.02 cores' },
  );
  r.bottleneck.push('agents 1 over 2.00 s: coordinator <main> 0.95 cores → CPU-bound');
  r.notes.push('# not a heading', '1. not a list');
  r.errors.push('Error: boom <img src=x>\n    at ```fenced``` (file.js:1:1)\n```\nstill inside');
  return {
    startedAt: '2026-11-21T10:49:43.358Z', seconds: 83.2, quick: true, scenarios: [S],
    machine: { cpus: 2, cpuModel: 'AMD EPYC <7B13>', memGiB: 23.54, node: 'v20.20.2' }, ratioMeaning: 'ratio = value / ceiling', results: [r],
  };
}

test('escapeXml turns markup characters into entities and replaces code points XML cannot carry', () => {
  assert.equal(escapeXml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
  assert.equal(escapeXml('bell\u0007 nul\u0000 tab\t'), 'bell\uFFFD nul\uFFFD tab\t');
  assert.equal(escapeXml('lone \uD800 surrogate, pair \uD83D\uDE00'), 'lone \uFFFD surrogate, pair \uD83D\uDE00');
});

test('seriesChart escapes names, draws the ceiling beside each point and labels each ratio', () => {
  const s: Series = { name: `throughput ${HOSTILE}`, xLabel: '<agents>', unit: 'lines/s & more', points: [{ x: 1, y: 500, ceiling: 1000 }, { x: 2, y: 900, ceiling: 1000 }, { x: 3, y: 250 }] };
  const svg = seriesChart(s);
  assertWellFormed(svg);
  assert.ok(svg.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; |'), 'the hostile name appears escaped');
  assert.match(svg, /width="640" height="320"/);
  assert.equal(count(svg, 'class="measured-point"'), 3);
  assert.equal(count(svg, 'class="ceiling-mark"'), 2, 'one ceiling mark per point that has a ceiling');
  assert.ok(svg.includes('>0.50×<') && svg.includes('>0.90×<'), 'ratio labels measured ÷ ceiling');
});

test('seriesChart puts x on a log scale when it spans two decades, and on a linear one when asked', () => {
  const points = [1, 10, 100, 1000].map((x) => ({ x, y: x * 2, ceiling: 5000 }));
  const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);
  const log = positions(seriesChart({ name: 'n', xLabel: 'agents', unit: 'u', points }), 'measured-point', 'cx');
  assert.equal(log.length, 4);
  for (const g of gaps(log)) assert.ok(Math.abs(g - gaps(log)[0]!) < 0.5 && g > 50, `decades are evenly spaced: ${log}`);
  const linear = positions(seriesChart({ name: 'n', xLabel: 'job', unit: 'u', points, xScale: 'linear' }), 'measured-point', 'cx');
  assert.ok(gaps(linear)[0]! < 10 && gaps(linear)[2]! > 400, `linear when asked: ${linear}`);
  // A 0 among them (0 viewers) still gets a place, at the origin.
  const withZero = positions(seriesChart({ name: 'n', xLabel: 'viewers', unit: 'u', points: [0, 1, 10, 100].map((x) => ({ x, y: 1 })) }), 'measured-point', 'cx');
  assert.deepEqual([...withZero].sort((a, b) => a - b), withZero);
  assert.ok(withZero[1]! - withZero[0]! > 30, `0 and 1 apart: ${withZero}`);
});

test('seriesChart with no finite point says so instead of drawing NaN', () => {
  const svg = seriesChart({ name: 'empty', xLabel: 'x', unit: 'u', points: [{ x: NaN, y: 1 }, { x: 1, y: Infinity }] });
  assertWellFormed(svg);
  assert.match(svg, /no finite points/);
});

test('charts of extreme but finite values finish and draw no NaN', () => {
  const extremes = [[5e-324, 1e308], [-1e308, 1e308], [1e-320, 1], [0, 0], [7, 7]] as const;
  for (const [a, b] of extremes) {
    assertWellFormed(seriesChart({ name: 's', xLabel: 'x', unit: 'u', points: [{ x: a, y: b, ceiling: a }, { x: b, y: a }] }), `series ${a}..${b}`);
    assertWellFormed(distributionChart('d', [{ name: 'd', unit: 'ms', samples: [a, b], floor: b }]), `distribution ${a}..${b}`);
    const figs = [a, b].map((v, i) => ({ ...figure('s', `f${i}`, v, 'u', 'higher', { ceiling: { value: 1, what: 'u' }, target: { op: '>=', value: b } }) }));
    assertWellFormed(ratioChart('r', figs), `ratios ${a}..${b}`);
  }
});

test('distributionChart marks p50 and p99 on each curve and draws the floor', () => {
  const ds: Distribution[] = [
    { name: `a ${HOSTILE}`, unit: 'ms', samples: Array.from({ length: 2000 }, (_, i) => 3 + i / 100), floor: 2.5 },
    { name: 'b', unit: 'ms', samples: [7], floor: 2.5 },
    { name: 'c', unit: 'ms', samples: [NaN, 4, 5] },
  ];
  const svg = distributionChart(`latency ${HOSTILE}`, ds);
  assertWellFormed(svg);
  assert.equal(count(svg, 'class="curve"'), 3);
  assert.equal(count(svg, 'class="mark-p50"'), 3);
  assert.equal(count(svg, 'class="mark-p99"'), 3);
  assert.equal(count(svg, 'class="floor"'), 1, 'two equal floors are drawn once');
  assert.ok(svg.includes('p50 13.0 · p99 22.8 · max 23.0 ms (n 2,000) · floor 2.50'), 'legend stats');
  assert.ok(!svg.includes('<script'));
});

test('distributionChart without samples renders a note', () => {
  const svg = distributionChart('nothing', [{ name: 'x', unit: 'ms', samples: [NaN] }]);
  assertWellFormed(svg);
  assert.match(svg, /no samples/);
});

test('ratioChart draws a bar per ratio around 1, coloured by target, with the target in ratio units', () => {
  const doc = syntheticDoc();
  const figs = doc.results[0]!.figures;
  const svg = ratioChart(`ratios ${HOSTILE}`, figs);
  assertWellFormed(svg);
  assert.equal(count(svg, 'class="bar"'), 3, 'the figure without a ceiling has no bar');
  assert.equal(count(svg, 'class="target"'), 2);
  assert.equal(count(svg, 'class="one"'), 1);
  assert.ok(svg.includes('0.464 of ceiling') && svg.includes('6.20× floor') && svg.includes('2.07× floor'));
  assert.ok(svg.includes('fill="#d62728" class="bar"') && svg.includes('fill="#2ca02c" class="bar"'), 'missed red, met green');
  // The lines/s target (1,000,000 of a 1,749,562 ceiling) sits left of 1, and the bar (0.464) left of it.
  const [one] = positions(svg, 'one', 'x1');
  const [target] = positions(svg, 'target', 'x1');
  assert.ok(target! < one!, `target tick ${target} left of 1 at ${one}`);
});

test('mdText and mdCell make free text inert in Markdown and table cells', () => {
  assert.equal(mdText('a | <b> & *c* [d](e) `f`'), 'a \\| &lt;b&gt; &amp; \\*c\\* \\[d\\](e) \\`f\\`');
  assert.equal(mdText('# heading'), '\\# heading');
  assert.equal(mdText('12. item'), '12\\. item');
  assert.equal(mdText('-2.5 %'), '-2.5 %');
  assert.equal(mdCell('one\ntwo | three'), 'one<br>two \\| three');
});

test('renderMarkdown headlines every target with met and missed marks and escapes hostile names', () => {
  const { markdown, charts } = renderMarkdown(syntheticDoc(), '2026-11-21T10:49:43.358Z');
  assert.ok(!/<script/i.test(markdown), 'no raw script tag');
  assert.ok(markdown.includes('&lt;script&gt;alert("x")&lt;/script&gt; &amp; \\|'), 'the hostile name appears escaped');
  assert.match(markdown, /^# buildwire bench: 2026-11-21T10:49:43\.358Z \(quick\)$/m);
  assert.match(markdown, /2 × AMD EPYC &lt;7B13&gt;, 23\.5 GiB, node v20\.20\.2/);
  const targets = markdown.slice(markdown.indexOf('## Targets'), markdown.indexOf('## ⚠️ Errors'));
  assert.match(targets, /\*\*1 of 2 targets met\*\*/);
  const rows = targets.split('\n').filter((l) => l.startsWith('| '));
  assert.equal(rows.length, 4, 'header, rule and one row per figure with a target');
  assert.match(rows[2]!, /1 agent: lines\/s .*\| 811,321 lines\/s \| 1,749,562 lines\/s, slowest block &lt;b&gt; \| 0\.464 of ceiling \| ≥ 1,000,000 lines\/s \| ❌ missed \|$/);
  assert.match(rows[3]!, /persistent agent: p99 \| 21\.7 ms \| 3\.50 ms .* \| 6\.20× floor \| &lt; 50 ms \| ✅ met \|$/);
  // Every row of every table has as many cells as its header.
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('| ') || lines[i - 1]?.startsWith('|')) continue;
    const width = cells(lines[i]!);
    for (let j = i + 1; j < lines.length && lines[j]!.startsWith('|'); j++) assert.equal(cells(lines[j]!), width, `table row ${j}: ${lines[j]}`);
  }
  assert.ok(charts.length >= 3);
  for (const c of charts) assertWellFormed(c.svg, c.file);
});

test('renderMarkdown shows errors in a fence they cannot close, and processes in a details block', () => {
  const { markdown } = renderMarkdown(syntheticDoc(), 'charts');
  assert.match(markdown, /## ⚠️ Errors\n\n.*\n\n- \*\*ingest .*\*\*: Error: boom &lt;img src=x&gt;\n/);
  const fenceAt = markdown.indexOf('````text\nError: boom <img src=x>');
  assert.ok(fenceAt > 0, 'a four-backtick fence around an error holding three');
  assert.ok(markdown.indexOf('still inside\n````\n', fenceAt) > fenceAt);
  assert.match(markdown, /<details>\n<summary>Processes: CPU and memory per phase \(2 rows, from \/proc\)<\/summary>\n\n\| phase \|/);
  assert.match(markdown, /\| coordinator &lt;main&gt; \| 2\.00 \| 1\.90 \| 0\.95 \| 80 → 180 \(peak 184\) \|/);
  assert.match(markdown, /^- \\# not a heading$/m);
  assert.match(markdown, /^- 1\\\. not a list$/m);
  assert.match(markdown, /^- \*1 agent: lines\/s .*\*: note with \\\| pipe and a second line$/m);
});

test('writeMarkdown writes the report and every chart it links to, and links nothing else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-report-'));
  try {
    const startedAt = new Date('2026-11-21T10:49:43.358Z');
    const path = writeMarkdown(syntheticDoc(), startedAt, dir);
    assert.equal(path, join(dir, '2026-11-21T10:49:43.358Z.md'));
    const md = readFileSync(path, 'utf8');
    const links = [...md.matchAll(/!\[(?:\\.|[^\]\\])*\]\((\.\/[^)\s]+)\)/g)].map((m) => m[1]!);
    assert.ok(links.length >= 3, `image links: ${links}`);
    for (const l of links) {
      assert.ok(l.startsWith('./2026-11-21T10%3A49%3A43.358Z/'), `relative, with the colons encoded: ${l}`);
      assert.ok(existsSync(join(dir, decodeURIComponent(l))), `${l} was written`);
    }
    const written = readdirSync(join(dir, '2026-11-21T10:49:43.358Z')).sort();
    assert.deepEqual(written, links.map((l) => decodeURIComponent(l.split('/').pop()!)).sort());
    for (const f of written) assertWellFormed(readFileSync(join(dir, '2026-11-21T10:49:43.358Z', f), 'utf8'), f);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a doc with empty series and distributions, NaN values and missing arrays renders without throwing', () => {
  const S = 'sparse';
  const r = newResult(S);
  r.seconds = NaN;
  r.figures.push(
    figure(S, 'nothing measured', NaN, 'ms', 'lower', { ceiling: { value: NaN, what: 'ms' }, target: { op: '<', value: 10 } }),
    figure(S, 'ceiling but no value', NaN, 'jobs/s', 'higher', { ceiling: { value: 5, what: 'jobs/s' } }),
  );
  r.series.push({ name: 'empty', xLabel: 'x', unit: 'u', points: [] }, { name: 'non-finite', xLabel: 'x', unit: 'u', points: [{ x: NaN, y: NaN, ceiling: NaN }] });
  r.distributions.push({ name: 'empty', unit: 'ms', samples: [] }, { name: 'non-finite', unit: 'ms', samples: [NaN, NaN], floor: NaN });
  const doc: BenchDoc = { startedAt: '2026-01-01T00:00:00.000Z', seconds: NaN, quick: false, scenarios: [S], machine: { cpus: 2, cpuModel: 'x', memGiB: NaN, node: 'v20' }, results: [r] };
  const { markdown, charts } = renderMarkdown(doc, 'c');
  assert.match(markdown, /\| nothing measured \| — \| ms \| — \| — \| &lt; 10 ms \| — \(no value\) \|/);
  assert.match(markdown, /\*\*0 of 1 targets met\*\*; 1 without a measured value/);
  assert.doesNotMatch(markdown, /NaN|undefined/);
  for (const c of charts) assertWellFormed(c.svg, c.file);

  // Read back from JSON, NaN is null; runs older than charts have no series or distributions at all.
  const old = JSON.parse(JSON.stringify(doc)) as BenchDoc;
  for (const res of old.results as unknown as Record<string, unknown>[]) {
    delete res['series'];
    delete res['distributions'];
    delete res['processes'];
  }
  const again = renderMarkdown(old, 'c');
  assert.match(again.markdown, /## sparse \(— s\)/);
  assert.doesNotMatch(again.markdown, /NaN|undefined|null/);
  for (const c of again.charts) assertWellFormed(c.svg, c.file);
});
