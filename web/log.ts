/**
 * Log lines as HTML, the way the server renders the first page of a job's
 * log. The client script (web/client/job.ts) builds the same markup with DOM
 * calls for the pages it loads later, so the two must agree on the classes:
 *
 * - `.ln` one line, `id="L<seq>"`, `data-seq`, and a stream class
 *   `.s-stdout` `.s-stderr` `.s-control` `.s-worker` `.s-console`;
 *   task and job records are separators, `.ln.sep` with `.s-task` / `.s-job`;
 * - `a.lno` the permalink (`#L<seq>`), `time.ts` (`data-t`: ms since the
 *   epoch) shown relative to the job's start, `span.tx` the text with ANSI
 *   colour spans, `.trunc` the marker of a line cut for display.
 *
 * @example
 * renderLogLines(events, { jobId, t0: job.assignedAt ?? job.submittedAt })
 */
import type { EventJson } from '../protocol/api.js';
import { ANSI_CSS, ansiToHtml } from './ansi.js';
import { escapeHtml, fmtBytes } from './html.js';

/** Longest line (bytes) the page shows; longer ones are cut and marked. The raw log has them whole. */
export const DISPLAY_MAX_BYTES = 64 * 1024;

/** One event as the page gets it: the API's event, and `truncated` (the line's full length in bytes) when it was cut. */
export type LogEvent = EventJson & { truncated?: number };

/** What a line's rendering needs besides the event. */
export interface LineContext {
  jobId: string;
  /** Times are shown relative to this (ms since the epoch). */
  t0: number;
}

/** `+m:ss.mmm` (or `+h:mm:ss.mmm`) after `t0`; `-` before it. */
export function relTime(t: number, t0: number): string {
  const d = t - t0;
  const sign = d < 0 ? '-' : '+';
  const ms = Math.abs(d);
  const s = Math.floor(ms / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const h = Math.floor(s / 3600);
  const body = `${pad(Math.floor(s / 60) % 60, h > 0 ? 2 : 1)}:${pad(s % 60)}.${pad(ms % 1000, 3)}`;
  return `${sign}${h > 0 ? `${h}:` : ''}${body}`;
}

/** What a task or job record says, in words (separators in the log). */
export function recordText(e: EventJson): string {
  const ev = (e.event ?? {}) as Record<string, unknown>;
  if (e.stream === 'task') {
    if (ev.event === 'start') return `task ${e.task} ${JSON.stringify(String(ev.name ?? ''))} started`;
    const how = ev.signal ? `killed by signal ${String(ev.signal)}` : `exited ${String(ev.code)}`;
    return `task ${e.task} ${how}`;
  }
  return `job ${String(ev.result ?? 'ended')}${ev.reason ? `: ${String(ev.reason)}` : ''}`;
}

/** One line's HTML (everything from the log escaped). */
export function renderLogLine(e: LogEvent, ctx: LineContext): string {
  const sep = e.stream === 'task' || e.stream === 'job';
  const cls = `ln s-${e.stream}${sep ? ' sep' : ''}${e.partial ? ' partial' : ''}`;
  let text: string;
  if (sep) text = escapeHtml(recordText(e));
  else text = ansiToHtml((e.text ?? '').slice(0, DISPLAY_MAX_BYTES));
  const cut = e.truncated !== undefined
    ? `<span class="trunc">line truncated (${e.truncated} bytes, ${escapeHtml(fmtBytes(e.truncated))}), see <a href="/job/${encodeURIComponent(ctx.jobId)}/log.txt">the raw log</a></span>`
    : '';
  return `<div class="${cls}" id="L${e.seq}" data-seq="${e.seq}"><a class="lno" href="#L${e.seq}">${e.seq}</a>`
    + `<time class="ts" data-t="${e.time}">${escapeHtml(relTime(e.time, ctx.t0))}</time><span class="tx">${text}</span>${cut}</div>`;
}

/** Lines' HTML, in order. */
export function renderLogLines(events: readonly LogEvent[], ctx: LineContext): string {
  let html = '';
  for (const e of events) html += renderLogLine(e, ctx);
  return html;
}

/** The log's stylesheet (streams told apart by colour and a left rule). */
export const LOG_CSS = `
.logbar{display:flex;flex-wrap:wrap;gap:.4em .8em;align-items:center;margin:.4em 0}
.logbar input[type=search]{width:18em}
.log{background:#0d1117;color:#d0d7de;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace;max-height:75vh;overflow:auto;border-radius:4px;padding:.3em 0}
.ln{display:flex;gap:.8em;padding:0 .6em;white-space:pre-wrap;word-break:break-all;border-left:3px solid transparent}
.ln:target,.ln.hit{background:#3a3000}
.ln .lno{color:#6e7781;text-decoration:none;min-width:5em;text-align:right;flex:none;user-select:none}
.ln .ts{color:#6e7781;flex:none;min-width:7.5em}
.ln .tx{flex:1}
.s-stderr{border-left-color:#cf222e}.s-stderr .tx{color:#ffaba8}
.s-control{border-left-color:#2f81f7}.s-control .tx{color:#8cc4ff;font-style:italic}
.s-worker{border-left-color:#a371f7}.s-worker .tx{color:#d2a8ff}
.s-console{border-left-color:#d29922}.s-console .tx{color:#e3b341}
.ln.sep{border-top:1px solid #30363d;background:#161b22;font-weight:600}
.ln.sep .tx{color:#7ee787}
.trunc{color:#f0883e;font-style:italic}.trunc a{color:#f0883e}
.logmore{text-align:center;color:#6e7781;padding:.2em}
#newest{position:sticky;bottom:0;display:block;margin:0 auto}
#newest[hidden]{display:none}
.live{font-size:12px}.live.on{color:#1f883d}.live.off{color:#6e7781}
` + ANSI_CSS;
