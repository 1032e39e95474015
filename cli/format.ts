/**
 * Output helpers: aligned tables, times, durations, JSON, and writes that
 * respect backpressure (a tail piped into a slow reader must not buffer the
 * whole log in memory).
 */
import type { Writable } from 'node:stream';

/**
 * Aligns rows under headers with two spaces between columns; the last column
 * is not padded. Cells are single-line (newlines become spaces).
 *
 * @example
 * table(['ID', 'STATE'], [['01J…', 'queued']])
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const clean = rows.map((r) => r.map((c) => c.replace(/\s*\n\s*/g, ' ')));
  const all = [headers, ...clean];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** Key/value lines, keys aligned: `state:     queued`. Undefined values are skipped. */
export function fields(pairs: readonly (readonly [string, string | undefined])[]): string {
  const kept = pairs.filter((p): p is readonly [string, string] => p[1] !== undefined);
  const w = Math.max(0, ...kept.map(([k]) => k.length + 1));
  return kept.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}`).join('\n') + '\n';
}

/** An epoch-ms time as ISO 8601 (UTC), or `-` for none. */
export function isoTime(ms: number | null | undefined): string {
  return typeof ms === 'number' ? new Date(ms).toISOString() : '-';
}

/**
 * A duration in the largest sensible units: `850ms`, `4.2s`, `3m05s`, `2h01m`, `3d04h`.
 *
 * @example
 * duration(185_000) // '3m05s'
 */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)}s`;
  const two = (n: number) => String(n).padStart(2, '0');
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${two(Math.floor(s % 60))}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${two(m % 60)}m`;
  return `${Math.floor(h / 24)}d${two(h % 24)}h`;
}

/** How long ago a time was: `5s ago`, or `-` for none. */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  return typeof ms === 'number' ? `${duration(now - ms)} ago` : '-';
}

/** `k=v, k2=v2` for a string map, or `-` when empty. */
export function kv(map: Record<string, string> | null | undefined): string {
  const e = Object.entries(map ?? {});
  return e.length > 0 ? e.map(([k, v]) => `${k}=${v}`).join(', ') : '-';
}

/** Pretty JSON with a trailing newline. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Writes and waits for `drain` when the stream's buffer is full.
 *
 * @example
 * await write(process.stdout, Buffer.from(line));
 */
export function write(stream: Writable, data: string | Uint8Array): Promise<void> | void {
  if (stream.write(data)) return;
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off('drain', onDrain);
      stream.off('error', done);
      stream.off('close', onDrain);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    stream.once('drain', onDrain);
    stream.once('close', onDrain);
    stream.once('error', done);
  });
}

/** Writes to stdout (with backpressure). */
export function out(text: string | Uint8Array): Promise<void> | void {
  return write(process.stdout, text);
}

/** Writes to stderr (with backpressure). */
export function err(text: string | Uint8Array): Promise<void> | void {
  return write(process.stderr, text);
}

/**
 * A byte count in binary units with one decimal: `812 B`, `1.5 KiB`, `12.0 MiB`.
 *
 * @example
 * humanBytes(1_572_864) // '1.5 MiB'
 */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** How often a progress line is redrawn at most. */
const PROGRESS_EVERY_MS = 100;

/**
 * A one-line byte counter redrawn in place on stderr (`| upload src: 12.0 MiB
 * of 40.0 MiB (30%)`). It draws only when stderr is a terminal: piped into a
 * log, carriage returns would make one very long line of noise.
 *
 * @example
 * const p = new Progress('upload src', size);
 * p.update(sent); ... p.done();
 */
export class Progress {
  readonly #label: string;
  readonly #total: number;
  readonly #stream: NodeJS.WriteStream;
  readonly #on: boolean;
  #last = 0;
  #drawn = false;

  constructor(label: string, total: number, stream: NodeJS.WriteStream = process.stderr) {
    this.#label = label;
    this.#total = total;
    this.#stream = stream;
    this.#on = stream.isTTY === true;
  }

  /** Redraws with `done` bytes, at most every {@link PROGRESS_EVERY_MS}. */
  update(done: number): void {
    if (!this.#on) return;
    const now = Date.now();
    if (this.#drawn && now - this.#last < PROGRESS_EVERY_MS && done < this.#total) return;
    this.#last = now;
    this.#drawn = true;
    const pct = this.#total > 0 ? ` (${Math.floor((done / this.#total) * 100)}%)` : '';
    this.#stream.write(`\r\x1b[K| ${this.#label}: ${humanBytes(done)} of ${humanBytes(this.#total)}${pct}`);
  }

  /** Ends the line, so what follows starts on its own. */
  done(): void {
    if (this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }
}
