/**
 * Named limits enforced where bytes enter: the decoder and the handshake.
 * Exceeding one is a coded {@link ProtocolError}, never an out-of-memory.
 */
export interface Limits {
  /** Largest WebSocket message either side accepts, in bytes. */
  readonly maxFrameBytes: number;
  /** Most records in one log batch. */
  readonly maxBatchRecords: number;
  /** Most payload bytes in one log batch. */
  readonly maxBatchBytes: number;
  /** Longest single log record; longer lines are split into `partial` pieces by the agent. */
  readonly maxLineBytes: number;
  /** Time allowed from connect to an authenticated session. */
  readonly handshakeTimeoutMs: number;
  /** Log bytes an agent may have sent but not had acknowledged. */
  readonly maxUnackedBytes: number;
  /** Largest chunk of an upload (artifacts). */
  readonly maxChunkBytes: number;
}

/**
 * The defaults. `maxLineBytes` is 4 MiB so a 1 MiB line travels whole; the
 * batch and frame limits leave room for one maximal line plus framing.
 *
 * @example
 * const limits = { ...DEFAULT_LIMITS, maxFrameBytes: 1 << 20 };
 */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxFrameBytes: 16 * 1024 * 1024,
  maxBatchRecords: 20_000,
  maxBatchBytes: 8 * 1024 * 1024,
  maxLineBytes: 4 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  maxUnackedBytes: 32 * 1024 * 1024,
  maxChunkBytes: 4 * 1024 * 1024,
});

/**
 * Merges overrides onto the defaults, refusing values that are not positive
 * integers or that cannot hold a maximal line.
 *
 * @example
 * resolveLimits({ maxFrameBytes: 1 << 20 }) // throws RangeError: batch would not fit
 */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  const l: Limits = { ...DEFAULT_LIMITS, ...overrides };
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`limit ${k} must be a positive integer, got ${String(v)}`);
  }
  if (l.maxBatchBytes < l.maxLineBytes) throw new RangeError(`maxBatchBytes (${l.maxBatchBytes}) must be at least maxLineBytes (${l.maxLineBytes})`);
  if (l.maxFrameBytes < l.maxBatchBytes + 64 * 1024) throw new RangeError(`maxFrameBytes (${l.maxFrameBytes}) must exceed maxBatchBytes (${l.maxBatchBytes}) by 64 KiB for framing`);
  return Object.freeze(l);
}
