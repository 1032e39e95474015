/**
 * Time, made explicit. Every duration the coordinator waits on is a named
 * constant in config.ts; every wait goes through one `Deadlines` heap with
 * one timer armed for the earliest, so 10,000 workers cost no timers at all
 * until one of them has something due, and tests can move a fake clock.
 */

/** A source of the current time. */
export interface Clock {
  now(): number;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

interface Entry {
  at: number;
  key: string;
  run: () => void;
}

/**
 * Keyed one-shot deadlines. Setting a key again replaces its deadline;
 * `cancel` removes it. Callbacks run in deadline order.
 *
 * @example
 * deadlines.set(`lost:${workerId}`, clock.now() + graceMs, () => failLostWorker(workerId));
 */
export class Deadlines {
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  #heap: Entry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;
  #closed = false;
  readonly #onError: (key: string, err: unknown) => void;

  constructor(clock: Clock, onError: (key: string, err: unknown) => void) {
    this.#clock = clock;
    this.#onError = onError;
  }

  /** Runs `run` at time `at` (ms), replacing any deadline under the same key. */
  set(key: string, at: number, run: () => void): void {
    const e: Entry = { at, key, run };
    this.#entries.set(key, e);
    this.#push(e);
    this.#arm();
  }

  /** Removes a deadline if set. */
  cancel(key: string): void {
    this.#entries.delete(key);
  }

  /** Whether a key has a pending deadline. */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Runs everything due now (tests call this after moving a fake clock). */
  runDue(): void {
    const now = this.#clock.now();
    while (this.#heap.length > 0 && this.#heap[0]!.at <= now) {
      const e = this.#pop()!;
      // Stale heap entries (replaced or cancelled keys) are skipped lazily.
      if (this.#entries.get(e.key) !== e) continue;
      this.#entries.delete(e.key);
      try {
        e.run();
      } catch (err) {
        this.#onError(e.key, err);
      }
    }
    this.#armedFor = Infinity;
    this.#arm();
  }

  /** Stops the timer; nothing runs after this. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#entries.clear();
    this.#heap = [];
  }

  #arm(): void {
    if (this.#closed) return;
    while (this.#heap.length > 0 && this.#entries.get(this.#heap[0]!.key) !== this.#heap[0]) this.#pop();
    const next = this.#heap[0];
    if (!next || next.at >= this.#armedFor) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#armedFor = next.at;
    this.#timer = setTimeout(() => this.runDue(), Math.max(0, Math.min(next.at - this.#clock.now(), 2 ** 31 - 1)));
    this.#timer.unref();
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  #pop(): Entry | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
