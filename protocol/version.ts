/**
 * The protocol version this code speaks. Bumped when a message changes shape.
 * 2: output uploads (`upload_*`, `chunk*`) and the assignment's `outputRules`,
 * `inputs`, `inputToken`. A version 1 agent still connects and runs tasks;
 * it ignores those fields, so its jobs get no inputs and keep no outputs.
 * 3: upload chunks travel as data frames (SealedChannel): the MAC covers the
 * chunk's header, the upload's sealed SHA-256 covers its bytes. Versions 1
 * and 2 still send sealed `chunk` messages and are still accepted.
 */
export const PROTOCOL_VERSION = 3;
/**
 * The oldest version still accepted. Agents baked into old machine images
 * must keep working, so this trails PROTOCOL_VERSION by one once there are two.
 */
export const MIN_PROTOCOL_VERSION = 1;
