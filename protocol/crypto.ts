import { createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, sign, timingSafeEqual, verify, createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

/**
 * Key handling. Ed25519 keys and signatures are the same bytes in tweetnacl
 * and node:crypto; tweetnacl is used where a peer signs once per connection
 * (agents), node:crypto where the coordinator signs or verifies many
 * (it is ~30 times faster). test/crypto.test.ts cross-checks the two.
 */

/** An Ed25519 key pair as raw bytes: 32-byte seed, 32-byte public key. */
export interface SigningKeyPair {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

/**
 * A fresh Ed25519 key pair (tweetnacl).
 *
 * @example
 * const { seed, publicKey } = generateSigningKeyPair();
 */
export function generateSigningKeyPair(): SigningKeyPair {
  const kp = nacl.sign.keyPair();
  return { seed: kp.secretKey.slice(0, 32), publicKey: kp.publicKey };
}

/** The public key of a seed (tweetnacl). @example publicKeyOf(seed) */
export function publicKeyOf(seed: Uint8Array): Uint8Array {
  return nacl.sign.keyPair.fromSeed(seed).publicKey;
}

/** Signs with tweetnacl; for peers that sign rarely. @example signNacl(seed, msg) */
export function signNacl(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return nacl.sign.detached(message, nacl.sign.keyPair.fromSeed(seed).secretKey);
}

/** Verifies with tweetnacl. @example verifyNacl(pub, msg, sig) */
export function verifyNacl(publicKey: Uint8Array, message: Uint8Array, sig: Uint8Array): boolean {
  if (publicKey.length !== 32 || sig.length !== 64) return false;
  return nacl.sign.detached.verify(message, sig, publicKey);
}

// Raw keys go into node:crypto as JWK: importing DER costs about 170 µs a key
// here, JWK about 12 µs, and a reconnect storm imports two keys per agent.
const b64u = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

/**
 * A node:crypto private key for a raw Ed25519 seed. Pass the public key when
 * you have it: deriving it with tweetnacl costs milliseconds. Cache the result.
 *
 * @example
 * const key = ed25519PrivateKey(seed, publicKey);
 */
export function ed25519PrivateKey(seed: Uint8Array, publicKey: Uint8Array = publicKeyOf(seed)): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64u(seed), x: b64u(publicKey) }, format: 'jwk' });
}

/** Signs with node:crypto's native Ed25519. @example signFast(keyObject, msg) */
export function signFast(key: KeyObject, message: Uint8Array): Uint8Array {
  return sign(null, message, key);
}

/**
 * Verifies with node:crypto's native Ed25519 (about 60 times tweetnacl's rate).
 *
 * @example
 * if (!verifyFast(agentKey, transcript, sig)) throw new ProtocolError('BAD_SIGNATURE', ...);
 */
export function verifyFast(publicKey: Uint8Array, message: Uint8Array, sig: Uint8Array): boolean {
  if (publicKey.length !== 32 || sig.length !== 64) return false;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(publicKey) }, format: 'jwk' });
    return verify(null, message, key, sig);
  } catch {
    return false;
  }
}

/** An X25519 key pair for one handshake. */
export interface EphemeralKey {
  readonly publicKey: Uint8Array;
  /** Computes the shared secret with the peer's public key. */
  agree(peerPublic: Uint8Array): Uint8Array;
}

/** An ephemeral X25519 key with tweetnacl (agents). @example const e = ephemeralNacl(); */
export function ephemeralNacl(): EphemeralKey {
  const kp = nacl.box.keyPair();
  return {
    publicKey: kp.publicKey,
    agree: (peer) => nacl.scalarMult(kp.secretKey, peer),
  };
}

/** An ephemeral X25519 key with node:crypto (the coordinator). @example const e = ephemeralFast(); */
export function ephemeralFast(): EphemeralKey {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return {
    publicKey: new Uint8Array(raw),
    agree: (peer) => {
      const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(peer) }, format: 'jwk' });
      return new Uint8Array(diffieHellman({ privateKey, publicKey: pub }));
    },
  };
}

/** Per-direction session keys derived from the X25519 secret and the transcript. */
export interface SessionKeys {
  readonly clientToServer: Buffer;
  readonly serverToClient: Buffer;
}

/**
 * HKDF-SHA256 over the shared secret, salted with the transcript hash, one
 * key per direction so a frame cannot be reflected back to its sender.
 *
 * @example
 * const keys = deriveSessionKeys(shared, transcript);
 */
export function deriveSessionKeys(shared: Uint8Array, transcript: Uint8Array): SessionKeys {
  if (shared.every((b) => b === 0)) throw new RangeError('X25519 produced the all-zero secret (low-order peer key)');
  return {
    clientToServer: Buffer.from(hkdfSync('sha256', shared, transcript, 'buildwire v1 client->server', 32)),
    serverToClient: Buffer.from(hkdfSync('sha256', shared, transcript, 'buildwire v1 server->client', 32)),
  };
}

/** HMAC-SHA256 of a frame's counter and body. @example frameMac(key, header, body) */
export function frameMac(key: Buffer, counter: Uint8Array, body: Uint8Array): Buffer {
  return createHmac('sha256', key).update(counter).update(body).digest();
}

/** Constant-time equality of two byte strings. @example sameBytes(a, b) */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** SHA-256 of byte strings, concatenated. @example sha256(a, b) */
export function sha256(...parts: (Uint8Array | string)[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `n` random bytes. @example randomNonce() */
export function randomNonce(n = 32): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

/**
 * A secret for a person or program to carry (bootstrap credential, token):
 * 32 random bytes as base64url, with a readable prefix.
 *
 * @example
 * newSecret('bwb') // 'bwb_3q2-...'
 */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

/** How secrets are stored: SHA-256, hex. @example hashSecret(token) */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
