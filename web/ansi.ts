/**
 * ANSI colours in log lines, turned into spans with classes.
 *
 * Build tools colour their output with SGR sequences (`ESC[1;31m`). The page
 * shows those colours, and nothing else a terminal would obey: every other
 * escape sequence (cursor moves, OSC 8 hyperlinks, window titles, DCS) is
 * removed, because a log is text written by whoever controls the build, and a
 * hyperlink made from it could point at `javascript:`. Styles come only from
 * a fixed set of class names, never from the input, so a line cannot inject
 * CSS either.
 *
 * The client script (web/client/job.ts) carries a copy of {@link ansiSegments}
 * (client scripts import nothing); test/web-job.test.ts runs the same cases
 * through both.
 *
 * @example
 * ansiToHtml('\x1b[1;31merror\x1b[0m: x') // '<span class="ansi-bold ansi-fg1">error</span>: x'
 */
import { escapeHtml } from './html.js';

/** A run of text and the classes (space-separated, possibly empty) it is shown with. */
export interface AnsiSegment {
  text: string;
  cls: string;
}

/** Colour state between SGR sequences. */
interface Sgr {
  bold: boolean;
  fg: number;
  bg: number;
}

/*
 * One pass over the escape grammar (ECMA-48): CSI `ESC [ params intermediates
 * final`; OSC, DCS, SOS, PM and APC strings ended by BEL or ST (`ESC \`); and
 * two- or three-byte `ESC x` sequences. The 8-bit C1 forms (U+009B CSI, U+009D
 * OSC, ...) are read the same way, since some terminals honour them. An
 * unterminated string runs to the end of the line and is dropped with it.
 */
// eslint-disable-next-line no-control-regex
const ESCAPE = /(?:\x1b\[|\x9b)([0-?]*)[ -/]*([@-~])?|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]?|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * Splits a line into coloured runs. Recognises SGR 0 (reset), 1 (bold), 22
 * (not bold), 30–37 and 90–97 (foreground), 39 (default foreground), 40–47
 * (background) and 49 (default background); other SGR parameters are skipped
 * (with the arguments of 38/48), and every other escape sequence or control
 * character except TAB is dropped.
 *
 * @example
 * ansiSegments('a\x1b[32mb') // [{text: 'a', cls: ''}, {text: 'b', cls: 'ansi-fg2'}]
 */
export function ansiSegments(line: string): AnsiSegment[] {
  const out: AnsiSegment[] = [];
  const st: Sgr = { bold: false, fg: -1, bg: -1 };
  let last = 0;
  const push = (text: string) => {
    if (text === '') return;
    const cls = classOf(st);
    const prev = out[out.length - 1];
    if (prev && prev.cls === cls) prev.text += text;
    else out.push({ text, cls });
  };
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(line); m !== null; m = ESCAPE.exec(line)) {
    push(line.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] === 'm') applySgr(st, m[1] ?? '');
  }
  push(line.slice(last));
  return out;
}

function applySgr(st: Sgr, params: string): void {
  // `ESC[m` is a reset; private forms (`ESC[?...m`, `ESC[>4;2m`) are not colours.
  if (/[<-?]/.test(params)) return;
  const ps = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    if (p === 0) {
      st.bold = false;
      st.fg = -1;
      st.bg = -1;
    } else if (p === 1) st.bold = true;
    else if (p === 22) st.bold = false;
    else if (p >= 30 && p <= 37) st.fg = p - 30;
    else if (p >= 90 && p <= 97) st.fg = p - 90 + 8;
    else if (p === 39) st.fg = -1;
    else if (p >= 40 && p <= 47) st.bg = p - 40;
    else if (p === 49) st.bg = -1;
    // 256-colour and true-colour forms carry arguments that are not SGR codes themselves.
    else if (p === 38 || p === 48) i += ps[i + 1] === 5 ? 2 : ps[i + 1] === 2 ? 4 : 1;
  }
}

function classOf(st: Sgr): string {
  const c: string[] = [];
  if (st.bold) c.push('ansi-bold');
  if (st.fg >= 0) c.push(`ansi-fg${st.fg}`);
  if (st.bg >= 0) c.push(`ansi-bg${st.bg}`);
  return c.join(' ');
}

/** A line as escaped HTML: coloured runs in `<span class>`, all text escaped. */
export function ansiToHtml(line: string): string {
  let html = '';
  for (const s of ansiSegments(line)) html += s.cls ? `<span class="${s.cls}">${escapeHtml(s.text)}</span>` : escapeHtml(s.text);
  return html;
}

/** The line's text without any escape sequence or control character (what search matches). */
export function stripAnsi(line: string): string {
  ESCAPE.lastIndex = 0;
  return line.replace(ESCAPE, '');
}

/** The colour classes, for the page's stylesheet (8 normal, 8 bright, 8 backgrounds). */
export const ANSI_CSS = [
  '.ansi-bold{font-weight:bold}',
  ...['#8b949e', '#ff7b72', '#3fb950', '#d29922', '#58a6ff', '#bc8cff', '#39c5cf', '#d0d7de', '#6e7681', '#f44', '#2b2', '#db0', '#48f', '#e4e', '#2cc', '#fff']
    .map((c, i) => `.ansi-fg${i}{color:${c}}`),
  ...['#000', '#c00', '#070', '#a60', '#15c', '#a0a', '#088', '#bbb'].map((c, i) => `.ansi-bg${i}{background:${c}}`),
].join('');
