/**
 * Stable error codes for peers on the wire. Each code has the WebSocket close
 * code the coordinator (or agent) sends when it gives up on the connection.
 * The table is documented in docs/errors.md; codes are never renumbered.
 */
export const ERROR_CODES = {
  /** The bytes are not one msgpack value, or the value has the wrong shape. */
  MALFORMED_FRAME: 4000,
  /** The message `type` is not one this protocol version knows. */
  UNKNOWN_TYPE: 4001,
  /** A sealed frame's MAC does not match its counter and body. */
  BAD_MAC: 4002,
  /** A sealed frame's counter is lower than expected (replayed or reordered). */
  REPLAYED_FRAME: 4003,
  /** A sealed frame's counter is higher than expected (a frame went missing or was injected). */
  SKIPPED_FRAME: 4004,
  /** The peer speaks a protocol version this side no longer accepts. */
  VERSION_UNSUPPORTED: 4005,
  /** The handshake did not finish within `handshakeTimeoutMs`. */
  HANDSHAKE_TIMEOUT: 4006,
  /** A handshake or assignment signature does not verify. */
  BAD_SIGNATURE: 4007,
  /** A bootstrap credential was presented a second time. */
  CREDENTIAL_USED: 4008,
  /** A bootstrap credential is past its expiry. */
  CREDENTIAL_EXPIRED: 4009,
  /** A bootstrap credential does not match the worker it names. */
  CREDENTIAL_INVALID: 4010,
  /** The worker named in the handshake does not exist (never did, or was deleted). */
  WORKER_UNKNOWN: 4011,
  /** A factory token is unknown, or its factory is disabled. */
  BAD_TOKEN: 4012,
  /** A named limit (batch size, bytes in flight, line size) was exceeded. */
  LIMIT_EXCEEDED: 4013,
  /** A worker or factory touched something it does not own. */
  NOT_OWNER: 4014,
  /** A log batch number skipped ahead of the next expected one. */
  SEQUENCE_GAP: 4015,
  /** The coordinator's handshake signature does not match the pinned key. */
  COORDINATOR_IMPOSTOR: 4016,
  /** A valid message arrived at a stage where it is not allowed. */
  UNEXPECTED_MESSAGE: 4017,
  /** A newer connection for the same worker or factory replaced this one. */
  SUPERSEDED: 4018,
  /** The worker was recycled or destroyed; the agent should exit. */
  WORKER_RECYCLED: 4019,
  /** The frame is larger than `maxFrameBytes`. Same number as WebSocket's 1009. */
  FRAME_TOO_LARGE: 1009,
  /** The coordinator is shutting down; reconnect later. Same as WebSocket's 1001. */
  GOING_AWAY: 1001,
} as const;

/** One of the stable wire error codes, e.g. `"BAD_MAC"`. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error a peer caused. `code` is stable and documented; `closeCode` is the
 * WebSocket close code to send; the message names the offending value and the
 * rule it broke.
 *
 * @example
 * throw new ProtocolError('LIMIT_EXCEEDED', `batch of ${n} records exceeds maxBatchRecords (${max})`);
 */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly closeCode: number;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.closeCode = ERROR_CODES[code];
  }
}

/**
 * Whether a code names a rejection that retrying cannot fix (a burned
 * credential, a wrong key). Agents stop reconnecting after one of these.
 *
 * @example
 * if (isFatalCode(err.code)) process.exit(2);
 */
export function isFatalCode(code: string): boolean {
  return (
    code === 'CREDENTIAL_USED' ||
    code === 'CREDENTIAL_EXPIRED' ||
    code === 'CREDENTIAL_INVALID' ||
    code === 'WORKER_UNKNOWN' ||
    code === 'BAD_TOKEN' ||
    code === 'BAD_SIGNATURE' ||
    code === 'COORDINATOR_IMPOSTOR' ||
    code === 'VERSION_UNSUPPORTED' ||
    code === 'WORKER_RECYCLED'
  );
}

/**
 * The code for a WebSocket close code, if it is one of ours.
 *
 * @example
 * codeForClose(4002) // 'BAD_MAC'
 */
export function codeForClose(closeCode: number): ErrorCode | undefined {
  for (const [name, value] of Object.entries(ERROR_CODES)) {
    if (value === closeCode) return name as ErrorCode;
  }
  return undefined;
}
