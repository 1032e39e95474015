/**
 * The one backoff: exponential from `baseMs`, capped at `capMs`, with full
 * jitter so a fleet reconnecting after a coordinator restart spreads out.
 *
 * @example
 * setTimeout(connect, backoffDelay(attempt++, 250, 10_000));
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
