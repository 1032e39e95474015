/**
 * buildwire's wire protocol: message types, codec, handshake, sealed
 * channel, limits and error codes. A leaf: it imports no sibling folder,
 * and no other folder builds or parses frames itself.
 *
 * @example
 * import { ClientHandshake, DEFAULT_LIMITS, ProtocolError } from '../protocol/index.js';
 */
export * from './errors.js';
export * from './limits.js';
export * from './version.js';
export * from './ids.js';
export * from './messages.js';
export * from './codec.js';
export * from './crypto.js';
export * from './channel.js';
export * from './jobfile.js';
export * from './output-rules.js';
export * from './backoff.js';
export * from './client.js';
export * from './api.js';
