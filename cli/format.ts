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
