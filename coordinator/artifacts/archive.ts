import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Readable, addAbortSignal } from 'node:stream';
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import type { BucketLocationConstraint, GetObjectCommandOutput, S3ClientConfig } from '@aws-sdk/client-s3';

/** The `[archive]` table, resolved. See docs/configuration.md, section "[archive]". */
export interface ArchiveConfig {
  /** An S3-compatible service's base URL (MinIO, R2, ...); null for AWS S3 itself. */
  endpoint: string | null;
  region: string;
  bucket: string;
  /** Prepended to the SHA-256 to make the object key; ends with "/" or is "". */
  prefix: string;
  /** "" (with secretAccessKey "") means the SDK's default credential chain. */
  accessKeyId: string;
  secretAccessKey: string;
  /** `http://host/bucket/key` instead of `http://bucket.host/key`; most self-hosted services need it. */
  forcePathStyle: boolean;
  /** Remove the local copy of a blob once it is archived. */
  removeLocal: boolean;
}

/** An `[archive]` table problem, naming where, the key and the rule. */
export class ArchiveConfigError extends Error {
  override name = 'ArchiveConfigError';
}

type Kind = 'string' | 'boolean';
const KEYS: Record<string, Kind> = {
  endpoint: 'string', region: 'string', bucket: 'string', prefix: 'string', access_key_id: 'string',
  secret_access_key: 'string', secret_access_key_file: 'string', force_path_style: 'boolean', remove_local: 'boolean',
};

/** Renders a config value for a message; JSON.stringify throws on bigint and says nothing useful for undefined. */
function show(v: unknown): string {
  if (typeof v === 'bigint' || typeof v === 'undefined' || typeof v === 'symbol' || typeof v === 'function') return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Parses the `[archive]` TOML table (snake_case keys) into an
 * {@link ArchiveConfig}. Unknown keys, wrong types and broken rules throw
 * {@link ArchiveConfigError} with a message `${where}: archive.<key> ...`.
 *
 * `secret_access_key_file` is read here, once, so the secret never has to be
 * in the config file or on a command line; a trailing newline is dropped.
 *
 * @example
 * const toml = parseToml(readFileSync(path, 'utf8'));
 * const archive = toml.archive === undefined ? null : new BlobArchive(parseArchiveConfig(toml.archive, path));
 */
export function parseArchiveConfig(raw: unknown, where: string): ArchiveConfig {
  const fail = (msg: string): never => {
    throw new ArchiveConfigError(`${where}: ${msg}`);
  };
  // smol-toml gives tables as plain objects; arrays and dates are objects too, so check the prototype.
  if (typeof raw !== 'object' || raw === null || (Object.getPrototypeOf(raw) !== Object.prototype && Object.getPrototypeOf(raw) !== null)) {
    fail(`archive must be a table, got ${show(raw)}`);
  }
  const table = raw as Record<string, unknown>;
  for (const [k, v] of Object.entries(table)) {
    const kind = KEYS[k];
    if (!kind) fail(`archive.${k} is not a known key (known: ${Object.keys(KEYS).join(', ')})`);
    if (kind === 'string' && typeof v !== 'string') fail(`archive.${k} must be a string, got ${show(v)}`);
    if (kind === 'boolean' && typeof v !== 'boolean') fail(`archive.${k} must be true or false, got ${show(v)}`);
  }
  const str = (k: string) => table[k] as string | undefined;
  const bool = (k: string) => table[k] as boolean | undefined;

  const bucket = str('bucket');
  if (bucket === undefined) fail('archive.bucket is required (the bucket blobs are copied to)');
  // A "/" would be read as the end of the bucket in a path-style URL and silently write elsewhere.
  if (bucket === '' || bucket!.includes('/')) fail(`archive.bucket must be a non-empty bucket name without "/", got ${show(bucket)}`);

  const region = str('region') ?? 'us-east-1';
  if (region === '') fail('archive.region must not be empty (default "us-east-1")');

  const prefix = str('prefix') ?? 'blobs/';
  if (prefix !== '' && !prefix.endsWith('/')) fail(`archive.prefix must end with "/" or be "", got ${show(prefix)}`);

  let endpoint: string | null = null;
  const rawEndpoint = str('endpoint');
  if (rawEndpoint !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(rawEndpoint);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail(`archive.endpoint must be an http:// or https:// URL, got ${show(rawEndpoint)}`);
    endpoint = rawEndpoint;
  }

  const accessKeyId = str('access_key_id');
  let secretAccessKey = str('secret_access_key');
  const secretFile = str('secret_access_key_file');
  if (secretAccessKey !== undefined && secretFile !== undefined) {
    fail('archive.secret_access_key_file cannot be combined with archive.secret_access_key (give one)');
  }
  if (secretFile !== undefined) {
    try {
      secretAccessKey = readFileSync(secretFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      fail(`archive.secret_access_key_file cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (${secretFile})`);
    }
    if (secretAccessKey === '') fail(`archive.secret_access_key_file is empty (${secretFile})`);
  }
  // Half a key pair is a typo, not a wish for the default chain: refuse it rather than authenticate as someone else.
  if (accessKeyId !== undefined && secretAccessKey === undefined) {
    fail('archive.access_key_id needs archive.secret_access_key or archive.secret_access_key_file');
  }
  if (accessKeyId === undefined && secretAccessKey !== undefined) {
    fail(`archive.${secretFile !== undefined ? 'secret_access_key_file' : 'secret_access_key'} needs archive.access_key_id`);
  }
  if (accessKeyId === '') fail('archive.access_key_id must not be empty (leave both keys out to use the default credential chain)');

  return {
    endpoint, region, bucket: bucket!, prefix,
    accessKeyId: accessKeyId ?? '', secretAccessKey: secretAccessKey ?? '',
    forcePathStyle: bool('force_path_style') ?? false,
    removeLocal: bool('remove_local') ?? false,
  };
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function checkSha(sha256: unknown): asserts sha256 is string {
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) {
    throw new TypeError(`archive: sha256 must be 64 lower-case hex characters, got ${show(sha256)}`);
  }
}

/** What an SDK failure looks like: a service error has a name and an HTTP status; a network error a code. */
interface SdkError extends Error {
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

function status(err: unknown): number | undefined {
  return (err as SdkError | null)?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as SdkError | null)?.name;
  return status(err) === 404 || name === 'NotFound' || name === 'NoSuchKey' || name === 'NoSuchBucket';
}

function describe(err: unknown): string {
  const e = err as SdkError;
  const s = status(err);
  const name = e?.name && e.name !== 'Error' ? e.name : (e?.code ?? 'Error');
  // A HEAD answer has no body, so the SDK's message is often just the status code: don't repeat it.
  const msg = e?.message && e.message !== name && e.message !== 'UnknownError' && e.message !== String(s) ? `: ${e.message}` : '';
  return `${name}${s !== undefined ? ` (HTTP ${s})` : ''}${msg}`;
}

/** Parses `bytes first-last/total` (total may be `*`). */
function parseContentRange(v: string): { first: number; last: number } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  return m ? { first: Number(m[1]), last: Number(m[2]) } : null;
}

/**
 * Blobs in an S3-compatible bucket, one object per SHA-256 at
 * `<prefix><sha256>`. Content addressing makes every operation idempotent:
 * the same key always holds the same bytes.
 *
 * Every method that fails for a reason outside our code throws an Error naming
 * `s3://<bucket>/<key>`; a malformed SHA-256 or range is our bug and throws
 * TypeError or RangeError at once.
 *
 * @example
 * const archive = new BlobArchive(parseArchiveConfig(toml.archive, path));
 * await archive.ensureBucket();
 * await archive.put(sha, blobPath, size);
 * for await (const chunk of archive.read(sha, 0, size - 1)) res.write(chunk);
 * archive.close();
 */
export class BlobArchive {
  readonly #cfg: ArchiveConfig;
  readonly #s3: S3Client;

  constructor(cfg: ArchiveConfig) {
    this.#cfg = cfg;
    const options: S3ClientConfig = {
      region: cfg.region,
      forcePathStyle: cfg.forcePathStyle,
      // The SDK's default (CRC32 sent as an aws-chunked trailer) is not understood by every S3-compatible
      // service; s3rver, for one, would store the chunk framing as the object. We send our own SHA-256
      // header on put, which S3 verifies, and ask for nothing else.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (cfg.endpoint !== null) options.endpoint = cfg.endpoint;
    if (cfg.accessKeyId !== '') options.credentials = { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey };
    this.#s3 = new S3Client(options);
  }

  #key(sha256: string): string {
    checkSha(sha256);
    return this.#cfg.prefix + sha256;
  }

  #where(key: string): string {
    return `s3://${this.#cfg.bucket}/${key}`;
  }

  /**
   * Uploads the file at `file` (`size` bytes) as `<prefix><sha256>`, streamed
   * from disk with `Content-Length` and `x-amz-checksum-sha256`, so S3 itself
   * refuses bytes that do not hash to the key. An object already there with
   * the same size is left alone (a repeated put after a crash costs one HEAD).
   *
   * Not retried here: the SDK cannot replay a stream, and the archive pass
   * that calls this tries again on its next round.
   *
   * @example
   * await archive.put('9f86d0...0a08', '/var/lib/buildwire/blobs/9f/9f86d0...0a08', 4);
   */
  async put(sha256: string, file: string, size: number): Promise<void> {
    const key = this.#key(sha256);
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`archive: size must be a non-negative integer, got ${show(size)}`);
    // Same key, same size: the same bytes, put before a crash or by another pass. Any other size can only
    // be a foreign or broken object, and the put below replaces it.
    if ((await this.#head(key)) === size) return;

    const fail = (why: string, cause?: unknown): Error =>
      new Error(`cannot upload ${file} to ${this.#where(key)}: ${why}`, cause === undefined ? {} : { cause });
    // Open first and check the size of what was opened: the stream then reads that very file even if the
    // path is replaced meanwhile, and a wrong size is reported as such rather than as a 400 from S3.
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      throw fail(describe(err), err);
    }
    let body: Readable | null = null;
    try {
      const actual = (await fh.stat()).size;
      if (actual !== size) throw fail(`the file has ${actual} bytes, expected ${size}`);
      body = fh.createReadStream({ highWaterMark: 1 << 20 });
      try {
        await this.#s3.send(new PutObjectCommand({
          Bucket: this.#cfg.bucket, Key: key, Body: body, ContentLength: size,
          ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
          ContentType: 'application/octet-stream',
        }));
      } catch (err) {
        throw fail(describe(err), err);
      }
    } finally {
      // Once made, the stream owns the handle (autoClose): destroying it closes the file on every path.
      if (body) body.destroy();
      else await fh.close();
    }
  }

  /** The object's size, or null when it does not exist. */
  async #head(key: string): Promise<number | null> {
    try {
      const res = await this.#s3.send(new HeadObjectCommand({ Bucket: this.#cfg.bucket, Key: key }));
      return res.ContentLength ?? -1;
    } catch (err) {
      if (isNotFound(err)) return null;
      // S3 answers 403 rather than 404 for a missing key when the credentials may not list the bucket.
      const hint = status(err) === 403 ? ' (S3 also answers 403 for a missing key without s3:ListBucket)' : '';
      throw new Error(`cannot check ${this.#where(key)}: ${describe(err)}${hint}`, { cause: err });
    }
  }

  /**
   * Whether the blob is in the bucket (a HEAD request). False on 404; any
   * other failure throws, since "unknown" must not be read as "absent".
   * A HEAD answer has no body, so a missing bucket is also false here; the
   * put or read that follows names it.
   *
   * @example
   * if (!(await archive.has(sha))) await archive.put(sha, path, size);
   */
  async has(sha256: string): Promise<boolean> {
    return (await this.#head(this.#key(sha256))) !== null;
  }

  /**
   * Streams bytes `[start, endInclusive]` of the blob (a ranged GET). An
   * empty range (`endInclusive === start - 1`) yields nothing but still
   * requires the blob to exist. Throws, naming the key, when the blob is
   * missing or shorter than the range; aborting `signal` ends the stream with
   * the abort error.
   *
   * Arguments are checked at once; the request is made on the first `next()`.
   *
   * @example
   * for await (const chunk of archive.read(sha, 0, 1023, req.signal)) res.write(chunk);
   */
  read(sha256: string, start: number, endInclusive: number, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const key = this.#key(sha256);
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(endInclusive) || endInclusive < start - 1) {
      throw new RangeError(`archive: cannot read bytes ${show(start)}-${show(endInclusive)} of ${this.#where(key)}: not a range`);
    }
    return this.#read(key, start, endInclusive, signal);
  }

  async *#read(key: string, start: number, end: number, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const range = end === start - 1 ? `0 bytes at ${start} of ${this.#where(key)}` : `bytes ${start}-${end} of ${this.#where(key)}`;
    if (end === start - 1) {
      // There is no HTTP range for zero bytes; a HEAD still tells a missing blob from an empty read.
      if ((await this.#head(key)) === null) throw new Error(`cannot read ${range}: the object does not exist`);
      return;
    }
    let res: GetObjectCommandOutput;
    try {
      res = await this.#s3.send(
        new GetObjectCommand({ Bucket: this.#cfg.bucket, Key: key, Range: `bytes=${start}-${end}` }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (err) {
      // An abort is the caller's doing, not a failure of the archive: give it back as it came.
      if (signal?.aborted) throw err;
      // A GET's 404 has a body, so a missing bucket (a configuration problem) can be told from a missing blob.
      if (isNotFound(err) && (err as SdkError).name !== 'NoSuchBucket') throw new Error(`cannot read ${range}: the object does not exist`, { cause: err });
      throw new Error(`cannot read ${range}: ${describe(err)}`, { cause: err });
    }
    const body = res.Body;
    if (!(body instanceof Readable)) throw new Error(`cannot read ${range}: the SDK returned no Node.js stream`);
    try {
      if (signal) addAbortSignal(signal, body);
      // Where the answer starts: a 206 says so in Content-Range, a 200 (range ignored) is the whole object.
      // Some servers answer with more than asked (s3rver sends everything for `bytes=0-0`), so cut the
      // answer to the window rather than trust it to be exact; fewer bytes than asked is an error.
      let from = 0;
      let last = (res.ContentLength ?? 0) - 1;
      if (res.ContentRange !== undefined) {
        const cr = parseContentRange(res.ContentRange);
        if (!cr) throw new Error(`cannot read ${range}: unparsable Content-Range ${show(res.ContentRange)}`);
        ({ first: from, last } = cr);
      }
      if (from > start || last < end) {
        throw new Error(`cannot read ${range}: the server sent bytes ${from}-${last} (is the object shorter than the range?)`);
      }
      let skip = start - from;
      let left = end - start + 1;
      for await (const piece of body as AsyncIterable<Buffer>) {
        let chunk = piece;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        if (chunk.length > left) chunk = chunk.subarray(0, left);
        left -= chunk.length;
        yield chunk;
        if (left === 0) return;
      }
      if (left > 0) throw new Error(`cannot read ${range}: the answer ended ${left} bytes early`);
    } finally {
      // Frees the connection whether the caller read to the end, stopped early, or the read failed.
      body.destroy();
    }
  }

  /**
   * Deletes the blob. Deleting a missing blob succeeds (S3 says 204 anyway;
   * some compatible services say 404).
   *
   * @example
   * await archive.delete(sha);
   */
  async delete(sha256: string): Promise<void> {
    const key = this.#key(sha256);
    try {
      await this.#s3.send(new DeleteObjectCommand({ Bucket: this.#cfg.bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err) && (err as SdkError).name !== 'NoSuchBucket') return;
      throw new Error(`cannot delete ${this.#where(key)}: ${describe(err)}`, { cause: err });
    }
  }

  /**
   * Creates the bucket unless it exists (first start, tests). Losing a race
   * to create it is success.
   *
   * @example
   * await archive.ensureBucket();
   */
  async ensureBucket(): Promise<void> {
    const { bucket, region } = this.#cfg;
    try {
      await this.#s3.send(new HeadBucketCommand({ Bucket: bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw new Error(`cannot check bucket s3://${bucket}: ${describe(err)}`, { cause: err });
    }
    try {
      // us-east-1 is the one region that refuses to be named as a location constraint. The SDK's type lists
      // only AWS regions; compatible services have their own names ("auto" on R2), so pass the string through.
      await this.#s3.send(new CreateBucketCommand({
        Bucket: bucket,
        ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
      }));
    } catch (err) {
      if ((err as SdkError).name === 'BucketAlreadyOwnedByYou') return;
      throw new Error(`cannot create bucket s3://${bucket}: ${describe(err)}`, { cause: err });
    }
  }

  /** Closes the client's connections; in-flight requests fail. */
  close(): void {
    this.#s3.destroy();
  }

  /** `using archive = new BlobArchive(cfg)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }
}
