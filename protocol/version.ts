/** The protocol version this code speaks. Bumped when a message changes shape. */
export const PROTOCOL_VERSION = 1;
/**
 * The oldest version still accepted. Agents baked into old machine images
 * must keep working, so this trails PROTOCOL_VERSION by one once there are two.
 */
export const MIN_PROTOCOL_VERSION = 1;
