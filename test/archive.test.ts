import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { ArchiveConfigError, BlobArchive, parseArchiveConfig } from '../coordinator/artifacts/archive.js';
import { startS3rver } from './fixtures/s3.js';
import type { S3rverHandle } from './fixtures/s3.js';

const MiB = 1024 * 1024;
const execFileP = promisify(execFile);
const BUCKET = 'bw-archive-test';

/**
 * A temporary directory. Not helpers.tempDir: helpers imports the whole coordinator, and this unit's
 * tests should not fail because an unrelated module does not load.
 */
function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/**
 * Writes a `size`-byte file one mebibyte at a time from a single reused buffer (random, with the chunk
 * number stamped in front so no two chunks are equal), so that making the file does not itself raise the
 * process's resident memory before it is measured.
 */
function writeBigFile(path: string, size: number): string {
  const h = createHash('sha256');
  const buf = randomBytes(MiB);
  const fd = openSync(path, 'w');
  try {
    for (let i = 0, left = size; left > 0; i++, left -= MiB) {
      buf.writeUInt32BE(i, 0);
      const chunk = buf.subarray(0, Math.min(MiB, left));
      h.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * Runs in a child process, so that neither s3rver nor the test's own buffers are in the measurement: warms
 * the SDK up with a small put, then reports by how many MiB the peak resident set (maxRSS) grew while doing
 * `mode` with the big file: `put` it, or (the control) read it whole into memory.
 */
const MEASURE = `
import { readFile } from 'node:fs/promises';
import { BlobArchive } from ${JSON.stringify(new URL('../coordinator/artifacts/archive.js', import.meta.url).href)};
const { mode, config, warm, big } = JSON.parse(process.env.BW_MEASURE);
const archive = new BlobArchive(config);
await archive.put(warm.sha, warm.path, warm.size);
const peak = () => process.resourceUsage().maxRSS / 1024;
const before = peak();
let length = big.size;
if (mode === 'put') await archive.put(big.sha, big.path, big.size);
else length = (await readFile(big.path)).length;
const grew = peak() - before;
archive.close();
console.log(JSON.stringify({ grew, length }));
`;

/** Spawned, not spawnSync: the child talks to the s3rver in this process, whose event loop must keep running. */
async function peakGrowthMiB(env: { mode: 'put' | 'read' } & Record<string, unknown>): Promise<number> {
  const { stdout } = await execFileP(process.execPath, ['--input-type=module', '-e', MEASURE], {
    env: { ...process.env, BW_MEASURE: JSON.stringify(env) }, encoding: 'utf8', timeout: 120_000,
  });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as { grew: number; length: number };
  assert.equal(r.length, (env.big as { size: number }).size);
  return r.grew;
}

describe('BlobArchive against a real S3 server (s3rver)', () => {
  let s3: S3rverHandle;
  let archive: BlobArchive;
  const dir = tempDir('bw-archive-');
  // Larger than the 1 MiB stream chunks, and not a multiple of them, so ranges cross chunk boundaries.
  const bytes = randomBytes(3 * MiB + 17);
  const hash = sha(bytes);
  const file = join(dir.path, 'blob');
  const key = `s3://${BUCKET}/blobs/${hash}`;

  before(async () => {
    writeFileSync(file, bytes);
    s3 = await startS3rver();
    archive = new BlobArchive(s3.config(BUCKET));
    await archive.ensureBucket();
    await archive.put(hash, file, bytes.length);
  });
  after(async () => {
    archive.close();
    await s3.close();
    dir.remove();
  });

  test('ensureBucket succeeds when the bucket already exists', async () => {
    await archive.ensureBucket();
  });

  test('a put blob reads back whole, byte for byte', async () => {
    const got = await collect(archive.read(hash, 0, bytes.length - 1));
    assert.equal(got.length, bytes.length);
    assert.ok(got.equals(bytes));
  });

  test('read of [0, 0] yields exactly the first byte', async () => {
    // s3rver answers `bytes=0-0` with the whole object (it reads end 0 as "no end"): the archive must cut.
    assert.deepEqual(await collect(archive.read(hash, 0, 0)), bytes.subarray(0, 1));
  });

  test('read of [size-1, size-1] yields exactly the last byte', async () => {
    assert.deepEqual(await collect(archive.read(hash, bytes.length - 1, bytes.length - 1)), bytes.subarray(bytes.length - 1));
  });

  test('read of a middle range across chunk boundaries yields exactly those bytes', async () => {
    const start = MiB - 5;
    const end = 2 * MiB + 9;
    const got = await collect(archive.read(hash, start, end));
    assert.equal(got.length, end - start + 1);
    assert.ok(got.equals(bytes.subarray(start, end + 1)));
  });

  test('read of an empty range (end = start - 1) yields nothing for an existing blob', async () => {
    assert.equal((await collect(archive.read(hash, 10, 9))).length, 0);
  });

  test('read of a range past the end of the blob throws naming the key', async () => {
    await assert.rejects(collect(archive.read(hash, bytes.length - 2, bytes.length + 5)), {
      message: `cannot read bytes ${bytes.length - 2}-${bytes.length + 5} of ${key}: the server sent bytes ${bytes.length - 2}-${bytes.length - 1} (is the object shorter than the range?)`,
    });
    await assert.rejects(collect(archive.read(hash, bytes.length, bytes.length)), (err: Error) => {
      assert.match(err.message, new RegExp(`^cannot read bytes ${bytes.length}-${bytes.length} of ${key}: InvalidRange \\(HTTP 416\\)`));
      return true;
    });
  });

  test('stopping a read early (break) releases the stream and the next read works', async () => {
    for await (const chunk of archive.read(hash, 0, bytes.length - 1)) {
      assert.ok(chunk.length > 0);
      break;
    }
    assert.deepEqual(await collect(archive.read(hash, 5, 6)), bytes.subarray(5, 7));
  });

  test('aborting the signal ends a read with the abort error', async () => {
    const ac = new AbortController();
    const it = archive.read(hash, 0, bytes.length - 1, ac.signal)[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    ac.abort();
    await assert.rejects(async () => {
      for (;;) if ((await it.next()).done) break;
    }, { name: 'AbortError' });
  });

  test('a read with an already aborted signal fails with the abort error, not an archive error', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(collect(archive.read(hash, 0, 9, ac.signal)), { name: 'AbortError' });
  });

  test('has is true for a put blob and false for one never put', async () => {
    assert.equal(await archive.has(hash), true);
    assert.equal(await archive.has(sha(Buffer.from('never put'))), false);
  });

  test('the key is prefix + sha256: an archive with another prefix does not see the blob', async () => {
    const other = new BlobArchive(s3.config(BUCKET, { prefix: '' }));
    try {
      assert.equal(await other.has(hash), false);
    } finally {
      other.close();
    }
  });

  test('put is idempotent: putting the same blob again succeeds and the bytes are unchanged', async () => {
    await archive.put(hash, file, bytes.length);
    assert.ok((await collect(archive.read(hash, 0, bytes.length - 1))).equals(bytes));
  });

  test('put of a blob already archived with the same size does not open the file again', async () => {
    await archive.put(hash, join(dir.path, 'no-such-file'), bytes.length);
  });

  test('put refuses a file whose size is not `size`, naming the file and the key', async () => {
    const small = Buffer.from('twelve bytes');
    const path = join(dir.path, 'small');
    writeFileSync(path, small);
    const h = sha(small);
    await assert.rejects(archive.put(h, path, 13), {
      message: `cannot upload ${path} to s3://${BUCKET}/blobs/${h}: the file has 12 bytes, expected 13`,
    });
    assert.equal(await archive.has(h), false);
  });

  test('put of a missing file throws naming the file and the key', async () => {
    const h = sha(Buffer.from('missing'));
    const path = join(dir.path, 'missing');
    await assert.rejects(archive.put(h, path, 7), (err: Error) => {
      assert.match(err.message, new RegExp(`^cannot upload ${path} to s3://${BUCKET}/blobs/${h}: ENOENT`));
      return true;
    });
  });

  test('an empty blob is put, is there, and reads back as nothing', async () => {
    const path = join(dir.path, 'empty');
    writeFileSync(path, '');
    const h = sha(Buffer.alloc(0));
    await archive.put(h, path, 0);
    assert.equal(await archive.has(h), true);
    assert.equal((await collect(archive.read(h, 0, -1))).length, 0);
  });

  test('after delete, has is false, read throws naming bucket and key, and delete again succeeds', async () => {
    const data = Buffer.from('delete me');
    const path = join(dir.path, 'doomed');
    writeFileSync(path, data);
    const h = sha(data);
    await archive.put(h, path, data.length);
    assert.equal(await archive.has(h), true);
    await archive.delete(h);
    assert.equal(await archive.has(h), false);
    await assert.rejects(collect(archive.read(h, 0, 3)), {
      message: `cannot read bytes 0-3 of s3://${BUCKET}/blobs/${h}: the object does not exist`,
    });
    await assert.rejects(collect(archive.read(h, 0, -1)), {
      message: `cannot read 0 bytes at 0 of s3://${BUCKET}/blobs/${h}: the object does not exist`,
    });
    await archive.delete(h);
  });

  test('operations on a bucket that does not exist throw naming the bucket and key', async () => {
    const lost = new BlobArchive(s3.config('bw-no-such-bucket'));
    const data = Buffer.from('lost');
    const path = join(dir.path, 'lost');
    writeFileSync(path, data);
    const h = sha(data);
    try {
      // Only the prefix is asserted: s3rver answers NoSuchBucket before reading the body and closes the
      // connection, so depending on timing the SDK reports that answer or the EPIPE of its own write.
      await assert.rejects(lost.put(h, path, data.length), (err: Error) => {
        assert.ok(err.message.startsWith(`cannot upload ${path} to s3://bw-no-such-bucket/blobs/${h}: `), err.message);
        return true;
      });
      await assert.rejects(collect(lost.read(h, 0, 1)), (err: Error) => {
        assert.match(err.message, new RegExp(`^cannot read bytes 0-1 of s3://bw-no-such-bucket/blobs/${h}: NoSuchBucket \\(HTTP 404\\)`));
        return true;
      });
      await assert.rejects(lost.delete(h), (err: Error) => {
        assert.match(err.message, new RegExp(`^cannot delete s3://bw-no-such-bucket/blobs/${h}: NoSuchBucket \\(HTTP 404\\)`));
        return true;
      });
    } finally {
      lost.close();
    }
  });

  test('put streams a 64 MiB file from disk: resident memory grows by well under its size', async () => {
    const size = 64 * MiB;
    const path = join(dir.path, 'big');
    const h = writeBigFile(path, size);
    const warm = Buffer.from('warm up the SDK');
    const warmPath = join(dir.path, 'warm');
    writeFileSync(warmPath, warm);
    // s3rver runs in this process, so the put is measured in a child. Reading the file into memory would
    // grow the child's peak RSS by 64 MiB; streaming it should cost a few chunk buffers.
    const job = {
      config: s3.config(BUCKET),
      warm: { sha: sha(warm), path: warmPath, size: warm.length },
      big: { sha: h, path, size },
    };
    const put = await peakGrowthMiB({ mode: 'put', ...job });
    const control = await peakGrowthMiB({ mode: 'read', ...job });
    if (process.env.BW_ARCHIVE_DEBUG) console.log(`peak RSS growth: put ${put.toFixed(1)} MiB, read whole ${control.toFixed(1)} MiB`);
    // The measurement must be able to see the failure it guards against, or the assertion below is empty.
    assert.ok(control >= 58, `reading the file whole grew peak RSS by only ${control.toFixed(1)} MiB: the measurement is blind`);
    // Measured: a streamed put levels off near 35 MiB whatever the file's size (1 MiB chunks awaiting the
    // GC; 256 MiB costs the same), while holding the file would cost its 64 MiB on top of the client's own.
    assert.ok(put < 52, `peak RSS grew by ${put.toFixed(1)} MiB during a 64 MiB put`);

    const back = createHash('sha256');
    let n = 0;
    for await (const c of archive.read(h, 0, size - 1)) {
      back.update(c);
      n += c.length;
    }
    assert.equal(n, size);
    assert.equal(back.digest('hex'), h);
    await archive.delete(h);
  });

  test('every method throws TypeError at once for a sha256 that is not 64 lower-case hex characters', async () => {
    const bad: unknown[] = [hash.toUpperCase(), hash.slice(1), `${hash}0`, `../${hash.slice(3)}`, '', 42, undefined];
    for (const b of bad) {
      const s = b as string;
      const msg = `archive: sha256 must be 64 lower-case hex characters, got ${b === undefined ? 'undefined' : JSON.stringify(b)}`;
      assert.throws(() => archive.read(s, 0, 1), { name: 'TypeError', message: msg });
      await assert.rejects(archive.put(s, file, 1), { name: 'TypeError', message: msg });
      await assert.rejects(archive.has(s), { name: 'TypeError', message: msg });
      await assert.rejects(archive.delete(s), { name: 'TypeError', message: msg });
    }
  });

  test('read throws RangeError at once for a negative start, a fractional bound, or an end before start - 1', () => {
    for (const [a, b] of [[-1, 3], [0.5, 3], [5, 3], [0, Number.NaN]] as const) {
      assert.throws(() => archive.read(hash, a, b), {
        name: 'RangeError',
        message: `archive: cannot read bytes ${JSON.stringify(a)}-${JSON.stringify(b)} of ${key}: not a range`,
      });
    }
  });

  test('put throws RangeError at once for a size that is not a non-negative integer', async () => {
    await assert.rejects(archive.put(hash, file, -1), { name: 'RangeError', message: 'archive: size must be a non-negative integer, got -1' });
  });
});

describe('parseArchiveConfig', () => {
  const W = '/etc/buildwire/coordinator.toml';
  const rejects = (raw: unknown, message: string) =>
    assert.throws(() => parseArchiveConfig(raw, W), (err: unknown) => {
      assert.ok(err instanceof ArchiveConfigError, `expected ArchiveConfigError, got ${String(err)}`);
      assert.equal(err.message, message);
      return true;
    });

  test('a table with only bucket gets the defaults: us-east-1, prefix "blobs/", no endpoint, default credentials', () => {
    assert.deepEqual(parseArchiveConfig({ bucket: 'b' }, W), {
      endpoint: null, region: 'us-east-1', bucket: 'b', prefix: 'blobs/', accessKeyId: '', secretAccessKey: '', forcePathStyle: false, removeLocal: false,
    });
  });

  test('every key is read from a real TOML [archive] table, the secret from secret_access_key_file without its newline', () => {
    const dir = tempDir('bw-archive-cfg-');
    try {
      const secretFile = join(dir.path, 'secret');
      writeFileSync(secretFile, 'shh-very-secret\n');
      const toml = parseToml(`
[archive]
endpoint = "https://minio.example.com:9000"
region = "eu-central-1"
bucket = "ci-blobs"
prefix = "buildwire/blobs/"
access_key_id = "AKIA0"
secret_access_key_file = ${JSON.stringify(secretFile)}
force_path_style = true
remove_local = true
`);
      assert.deepEqual(parseArchiveConfig(toml.archive, W), {
        endpoint: 'https://minio.example.com:9000', region: 'eu-central-1', bucket: 'ci-blobs', prefix: 'buildwire/blobs/',
        accessKeyId: 'AKIA0', secretAccessKey: 'shh-very-secret', forcePathStyle: true, removeLocal: true,
      });
    } finally {
      dir.remove();
    }
  });

  test('prefix "" is allowed (keys are the bare sha256)', () => {
    assert.equal(parseArchiveConfig({ bucket: 'b', prefix: '' }, W).prefix, '');
  });

  test('rejects an unknown key, naming it and the known keys', () => {
    rejects({ bucket: 'b', buckt: 'c' }, `${W}: archive.buckt is not a known key (known: endpoint, region, bucket, prefix, access_key_id, secret_access_key, secret_access_key_file, force_path_style, remove_local)`);
  });

  test('rejects a table without bucket', () => {
    rejects({ region: 'us-east-1' }, `${W}: archive.bucket is required (the bucket blobs are copied to)`);
  });

  test('rejects an empty bucket or one containing "/"', () => {
    rejects({ bucket: '' }, `${W}: archive.bucket must be a non-empty bucket name without "/", got ""`);
    rejects({ bucket: 'a/b' }, `${W}: archive.bucket must be a non-empty bucket name without "/", got "a/b"`);
  });

  test('rejects a prefix that neither ends with "/" nor is ""', () => {
    rejects({ bucket: 'b', prefix: 'blobs' }, `${W}: archive.prefix must end with "/" or be "", got "blobs"`);
  });

  test('rejects a wrong type, naming the key, the expected type and the value', () => {
    rejects({ bucket: 'b', force_path_style: 'yes' }, `${W}: archive.force_path_style must be true or false, got "yes"`);
    rejects({ bucket: 'b', remove_local: 1 }, `${W}: archive.remove_local must be true or false, got 1`);
    rejects({ bucket: 7 }, `${W}: archive.bucket must be a string, got 7`);
    rejects({ bucket: 'b', region: ['x'] }, `${W}: archive.region must be a string, got ["x"]`);
  });

  test('rejects a value that is not a table', () => {
    rejects('s3://b', `${W}: archive must be a table, got "s3://b"`);
    rejects([{ bucket: 'b' }], `${W}: archive must be a table, got [{"bucket":"b"}]`);
  });

  test('rejects an empty region', () => {
    rejects({ bucket: 'b', region: '' }, `${W}: archive.region must not be empty (default "us-east-1")`);
  });

  test('rejects an endpoint that is not an http:// or https:// URL', () => {
    rejects({ bucket: 'b', endpoint: 'ftp://files.example.com' }, `${W}: archive.endpoint must be an http:// or https:// URL, got "ftp://files.example.com"`);
    rejects({ bucket: 'b', endpoint: 'minio:9000/' }, `${W}: archive.endpoint must be an http:// or https:// URL, got "minio:9000/"`);
  });

  test('rejects an unreadable secret_access_key_file, naming the error and the path', () => {
    const dir = tempDir('bw-archive-cfg-');
    try {
      const missing = join(dir.path, 'nope');
      rejects({ bucket: 'b', access_key_id: 'AKIA0', secret_access_key_file: missing },
        `${W}: archive.secret_access_key_file cannot be read: ENOENT (${missing})`);
      rejects({ bucket: 'b', access_key_id: 'AKIA0', secret_access_key_file: dir.path },
        `${W}: archive.secret_access_key_file cannot be read: EISDIR (${dir.path})`);
    } finally {
      dir.remove();
    }
  });

  test('rejects an empty secret_access_key_file', () => {
    const dir = tempDir('bw-archive-cfg-');
    try {
      const empty = join(dir.path, 'empty');
      writeFileSync(empty, '\n');
      rejects({ bucket: 'b', access_key_id: 'AKIA0', secret_access_key_file: empty }, `${W}: archive.secret_access_key_file is empty (${empty})`);
    } finally {
      dir.remove();
    }
  });

  test('rejects both secret_access_key and secret_access_key_file', () => {
    rejects({ bucket: 'b', access_key_id: 'A', secret_access_key: 's', secret_access_key_file: '/x' },
      `${W}: archive.secret_access_key_file cannot be combined with archive.secret_access_key (give one)`);
  });

  test('rejects half a key pair rather than falling back to the default credential chain', () => {
    rejects({ bucket: 'b', access_key_id: 'A' }, `${W}: archive.access_key_id needs archive.secret_access_key or archive.secret_access_key_file`);
    rejects({ bucket: 'b', secret_access_key: 's' }, `${W}: archive.secret_access_key needs archive.access_key_id`);
    rejects({ bucket: 'b', access_key_id: '', secret_access_key: 's' }, `${W}: archive.access_key_id must not be empty (leave both keys out to use the default credential chain)`);
  });
});
