/**
 * `npm run bench`: buildwire's benchmark harness. Prints a table of
 * figures, each next to a ceiling measured in the same run and the ratio
 * between them, and writes bench/results/<ISO timestamp>.json and a
 * Markdown report with SVG charts beside it (`markdown.ts`).
 *
 *   node dist/bench/main.js [--scenario NAME]... [--quick] [--json-only]
 *
 * Scenarios: ceiling, ingest, dispatch, fleet, artifacts, store, web, fanout (default: all, in that order).
 * --quick cuts counts so the whole run takes about two minutes.
 * --json-only prints only the JSON document on stdout (progress still goes to stderr).
 *
 * Benchmarks measure; they assert nothing, and the exit code is 0 unless
 * the harness itself broke (bad flags: 64).
 */
import { cpus, totalmem } from 'node:os';
import { runArtifacts } from './artifacts.js';
import { Ceilings, runCeilings } from './ceilings.js';
import type { BenchContext } from './ceilings.js';
import { runDispatch } from './dispatch.js';
import { runFanout } from './fanout.js';
import { runFleet } from './fleet.js';
import { runIngest } from './ingest.js';
import { runStore } from './store.js';
import { publishRun } from './markdown.js';
import { killTracked } from './proc.js';
import { newResult } from './report.js';
import type { ScenarioResult } from './report.js';
import { nowMs } from './util.js';
import { runWeb } from './web.js';

const SCENARIOS: Record<string, (ctx: BenchContext) => Promise<ScenarioResult>> = {
  ceiling: runCeilings,
  ingest: runIngest,
  dispatch: runDispatch,
  fleet: runFleet,
  artifacts: runArtifacts,
  store: runStore,
  web: runWeb,
  fanout: runFanout,
};

/** Parsed command line. */
export interface BenchArgs {
  scenarios: string[];
  quick: boolean;
  jsonOnly: boolean;
}

/** Parses the flags; throws with a usage message on anything unknown. */
export function parseArgs(argv: string[]): BenchArgs {
  const out: BenchArgs = { scenarios: [], quick: false, jsonOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') out.quick = true;
    else if (a === '--json-only') out.jsonOnly = true;
    else if (a === '--scenario' || a.startsWith('--scenario=')) {
      const name = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!name || !(name in SCENARIOS)) throw new Error(`unknown scenario ${JSON.stringify(name ?? '')} (known: ${Object.keys(SCENARIOS).join(', ')})`);
      if (!out.scenarios.includes(name)) out.scenarios.push(name);
    } else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  if (out.scenarios.length === 0) out.scenarios = Object.keys(SCENARIOS);
  // Always in the canonical order, so ceilings come first.
  out.scenarios.sort((x, y) => Object.keys(SCENARIOS).indexOf(x) - Object.keys(SCENARIOS).indexOf(y));
  return out;
}

async function main(): Promise<void> {
  let args: BenchArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\nusage: node dist/bench/main.js [--scenario ${Object.keys(SCENARIOS).join('|')}]... [--quick] [--json-only]\n`);
    process.exit(64);
  }
  const startedAt = new Date();
  const t0 = nowMs();
  const log = (l: string) => process.stderr.write(`[${((nowMs() - t0) / 1000).toFixed(1).padStart(6)} s] ${l}\n`);
  const ctx: BenchContext = { quick: args.quick, log, ceilings: new Ceilings(args.quick, log) };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killTracked();
      process.exit(130);
    });
  }
  process.on('exit', killTracked);

  const results: ScenarioResult[] = [];
  for (const name of args.scenarios) {
    log(`=== scenario ${name}${args.quick ? ' (quick)' : ''}`);
    const s0 = nowMs();
    let r: ScenarioResult;
    try {
      r = await SCENARIOS[name]!(ctx);
    } catch (err) {
      r = newResult(name);
      r.errors.push((err as Error).stack ?? String(err));
    }
    r.seconds = (nowMs() - s0) / 1000;
    for (const e of r.errors) log(`!!! ${name}: ${e}`);
    results.push(r);
  }

  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memGiB: totalmem() / 2 ** 30, node: process.version };
  const doc = {
    startedAt: startedAt.toISOString(), seconds: (nowMs() - t0) / 1000, quick: args.quick, scenarios: args.scenarios, machine,
    ratioMeaning: 'ratio = value / ceiling.value, both measured in this run; ratioKind of-ceiling: fraction of what the bare building block does; x-floor: multiple of the bare floor',
    results,
  };
  const header = `buildwire bench ${startedAt.toISOString()}${args.quick ? ' (quick)' : ''}: ${machine.cpus} × ${machine.cpuModel}, ${machine.memGiB.toFixed(0)} GiB, node ${machine.node}; ${doc.seconds.toFixed(0)} s`;
  publishRun(doc, startedAt, results, header, args.jsonOnly);
  killTracked();
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  killTracked();
  process.exit(1);
});
