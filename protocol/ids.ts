import { randomBytes } from 'node:crypto';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A job's id: a 26-character, time-sortable ULID. Made only by {@link parseJobId} or {@link newId}. */
export type JobId = Brand<string, 'JobId'>;
/** A worker's id (ULID). */
export type WorkerId = Brand<string, 'WorkerId'>;
/** A factory's id (ULID). */
export type FactoryId = Brand<string, 'FactoryId'>;
/** A user's id (ULID). */
export type UserId = Brand<string, 'UserId'>;
/** A target's name, e.g. `local` or `ubuntu-22.04`. */
export type TargetId = Brand<string, 'TargetId'>;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * A malformed id or name from outside (a URL, a request body, a frame).
 * A TypeError, so code that misuses ids fails the same way; the HTTP layer
 * turns it into a 400 naming the value.
 *
 * @example
 * try { parseJobId(s); } catch (e) { if (e instanceof InvalidIdError) ... }
 */
export class InvalidIdError extends TypeError {
  override readonly name = 'InvalidIdError';
}

let lastTime = -1;
let lastRandom: number[] = [];

/**
 * A new ULID: 48 bits of milliseconds then 80 random bits, monotonic within
 * one process so ids made in the same millisecond still sort in order.
 *
 * @example
 * const id = newId<JobId>();
 */
export function newId<T extends string>(now: number = Date.now()): T {
  let rand: number[];
  if (now <= lastTime) {
    now = lastTime;
    rand = lastRandom.slice();
    for (let i = rand.length - 1; i >= 0; i--) {
      rand[i] = (rand[i]! + 1) % 32;
      if (rand[i] !== 0) break;
    }
  } else {
    const bytes = randomBytes(16);
    rand = Array.from({ length: 16 }, (_, i) => bytes[i]! % 32);
  }
  lastTime = now;
  lastRandom = rand;
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  return (time + rand.map((r) => CROCKFORD[r]).join('')) as T;
}

/** Whether a string has the shape of one of our ULIDs. */
export function isUlid(s: unknown): s is string {
  return typeof s === 'string' && ULID_RE.test(s);
}

function ulidParser<T>(what: string) {
  return (s: unknown): T => {
    if (!isUlid(s)) throw new InvalidIdError(`${what} ${JSON.stringify(s)} is not a 26-character ULID`);
    return s as T;
  };
}

/**
 * Parses a job id, throwing a TypeError that names the value.
 *
 * @example
 * parseJobId('01J9Z3Q8W4M6T0Y2R5N7P9B1C3') // JobId
 */
export const parseJobId = ulidParser<JobId>('job id');
/** Parses a worker id. @example parseWorkerId(s) */
export const parseWorkerId = ulidParser<WorkerId>('worker id');
/** Parses a factory id. @example parseFactoryId(s) */
export const parseFactoryId = ulidParser<FactoryId>('factory id');
/** Parses a user id. @example parseUserId(s) */
export const parseUserId = ulidParser<UserId>('user id');

/**
 * Parses a target or user name: lower-case letters, digits, `.`, `_`, `-`,
 * starting with a letter or digit, at most 64 characters.
 *
 * @example
 * parseName('ubuntu-22.04', 'target') // 'ubuntu-22.04'
 */
export function parseName(s: unknown, what = 'name'): string {
  if (typeof s !== 'string' || !NAME_RE.test(s)) {
    throw new InvalidIdError(`${what} ${JSON.stringify(s)} must be 1 to 64 of [a-z0-9._-], starting with a letter or digit`);
  }
  return s;
}

/** Parses a target name into its brand. @example parseTargetId('local') */
export function parseTargetId(s: unknown): TargetId {
  return parseName(s, 'target') as TargetId;
}

/** The millisecond timestamp inside a ULID. @example ulidTime(id) // 1763712000000 */
export function ulidTime(id: string): number {
  let t = 0;
  for (let i = 0; i < 10; i++) t = t * 32 + CROCKFORD.indexOf(id[i]!);
  return t;
}
