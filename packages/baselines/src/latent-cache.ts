import { DataError, shardRange } from '@matryoshka-ts/core';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * A crash-safe, resumable disk cache of a data set's autoencoder latents, for latent diffusion:
 * every image is encoded once, ahead of training, and training reads the posterior mean and
 * log-variance of a sample from the cache (sampling `mean + exp(logvar / 2) · ε` itself, so each
 * epoch still sees fresh posterior samples).
 *
 * Layout: one directory per cache, `<root>/<key>/`, where `key` is a hex digest the caller makes
 * of everything the latents depend on (the autoencoder's weights and config, the data set id, the
 * resolution), so that another autoencoder or data set gets another directory and is never
 * reused silently. It holds
 *
 * - `meta.json`: `{ format: 'mdm-latent-cache', version: 1, key, count, shape: [h, w, c], info? }`,
 *   written once, atomically (temp file, fsync, rename);
 * - `latents.bin`: fixed-size records appended in sample order; record i is the posterior mean
 *   of sample i (h·w·c float32, little-endian), then its log-variance (h·w·c float32), then a
 *   CRC-32 of those bytes (u32, little-endian). Record i starts at byte i · (8·h·w·c + 4).
 *
 * Crash safety: records are only ever appended, and `fillLatentCache` fsyncs after each batch.
 * A crash mid-write leaves a torn tail: a trailing partial record, or a last record whose
 * checksum fails. Opening truncates it off the file and reports it (`droppedTail`, `warnings`),
 * and filling again resumes at the first missing sample. A bad checksum on any earlier record
 * is not a torn write but corruption (a damaged disk or an edited file); opening refuses it and
 * says to delete the cache directory. One process should fill a given cache at a time; a second
 * writer is detected (the file's length changed under us) and refused rather than interleaved.
 *
 * Memory: every valid record is kept in memory after opening (two float32 arrays of
 * `complete · h·w·c` values), so reads never touch the disk. That suits the data sets here
 * (thousands of 8×8×4 latents: a few MB); a data set of millions of large latents would need a
 * reader that seeks into `latents.bin` instead.
 *
 * Parts: a fill split over n workers (`mdm-train cache --shard i/n`) gives each worker its own
 * files in the same directory, `part-<i>-of-<n>.json` and `part-<i>-of-<n>.bin`, holding samples
 * [from, to) in the same record format (record r is sample from + r), so that no two writers
 * ever share a file. `mergeLatentCacheParts` appends the complete parts to `latents.bin` in sample
 * order and deletes them; the result is byte for byte what one process writes.
 */

/** The `format` field of `meta.json`. */
export const LATENT_CACHE_FORMAT = 'mdm-latent-cache';
/** The `version` field of `meta.json` this code writes and reads. */
export const LATENT_CACHE_VERSION = 1;

const META = 'meta.json';
const DATA = 'latents.bin';
/** A part's files: `part-<i>-of-<n>.json` and `.bin`. */
const partName = (index: number, count: number) => `part-${index}-of-${count}`;
/** Bytes read per chunk while checking `latents.bin` on open. */
const READ_CHUNK = 1 << 22;

/** What `openLatentCache` needs to know to create a cache, or to check an existing one. */
export interface LatentCacheOptions {
  /**
   * Hex digest (lowercase, 8 to 128 digits) of everything the latents depend on: the
   * autoencoder's weights and config, the data set id and the resolution. Names the directory.
   */
  key: string;
  /** Number of samples in the data set: the records a complete cache holds. */
  count: number;
  /** Shape [h, w, c] of one latent. */
  shape: readonly [number, number, number];
  /**
   * Descriptive, JSON-serializable facts stored in `meta.json` when the cache is created (e.g.
   * the autoencoder's name). Not compared on reopen: `key` is what identifies the latents.
   */
  info?: Record<string, unknown>;
  /**
   * Open shard `index` of `count`'s part of the cache (samples [from, to)) instead of the cache
   * itself: its own files `part-<index>-of-<count>.{json,bin}` in the same directory.
   */
  part?: LatentCachePart;
  /**
   * Only read: the cache must exist; a torn tail is left on disk (another process may be
   * writing it) and not loaded; appends throw. For reading another process's files.
   */
  readOnly?: boolean;
}

/**
 * One worker's part of a cache split n ways: samples [from, to) of `LatentCacheOptions.count`,
 * from = ⌊index·count / n⌋ and to = ⌊(index + 1)·count / n⌋ (`latentPartRange`), as `--shard i/n`.
 */
export interface LatentCachePart {
  index: number;
  count: number;
  from: number;
  to: number;
}

/** Samples [from, to) of a data set of `total` that part `index` of `count` holds (the same split as `--shard`). */
export function latentPartRange(total: number, index: number, count: number): LatentCachePart {
  return { index, count, ...shardRange(total, { index, count }) };
}

/** The contents of `meta.json`. */
export interface LatentCacheMeta {
  format: typeof LATENT_CACHE_FORMAT;
  version: typeof LATENT_CACHE_VERSION;
  key: string;
  count: number;
  shape: [number, number, number];
  info?: Record<string, unknown>;
  /** Set in a part's meta file (`part-<i>-of-<n>.json`): which samples it holds. */
  part?: LatentCachePart;
}

/** The posterior of one sample: mean and log-variance, each h·w·c values in [h, w, c] order. */
export interface LatentRecord {
  mean: Float32Array;
  logvar: Float32Array;
}

/** The posteriors of n samples, concatenated: mean and log-variance each of shape [n, h, w, c]. */
export interface LatentBatch {
  mean: Float32Array;
  logvar: Float32Array;
  shape: [number, number, number, number];
}

/** What `fillLatentCache` calls: the posteriors of samples `start … start + n - 1`, [n, h, w, c] each. */
export type LatentEncodeFn = (
  start: number,
  n: number,
) => Promise<{ mean: Float32Array; logvar: Float32Array }> | { mean: Float32Array; logvar: Float32Array };

export interface FillLatentCacheOptions {
  /** Samples per `encode` call (and per fsync). */
  batchSize: number;
  /** Called after each stored batch with the records now in the cache and the number expected. */
  onProgress?: (done: number, total: number) => void;
  /** Stop before this sample (default: the end of the cache or part). */
  until?: number;
}

/** CRC-32 (IEEE 802.3, as zlib) lookup table; Node 20 has no `zlib.crc32`. */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function validateOptions(options: LatentCacheOptions): void {
  const { key, count, shape } = options;
  if (typeof key !== 'string' || !/^[0-9a-f]{8,128}$/.test(key)) {
    throw new Error(
      `openLatentCache: key must be a lowercase hex digest of 8 to 128 digits (it names the cache directory), ` +
        `got ${JSON.stringify(key)}`,
    );
  }
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new Error(`openLatentCache: count must be a non-negative integer, got ${count}`);
  }
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new Error(`openLatentCache: shape must be [h, w, c] of positive integers, got ${JSON.stringify(shape)}`);
  }
  const part = options.part;
  if (part) {
    const want = latentPartRange(count, part.index, part.count);
    if (
      !(Number.isSafeInteger(part.count) && part.count >= 1 && Number.isSafeInteger(part.index)) ||
      part.index < 0 ||
      part.index >= part.count ||
      part.from !== want.from ||
      part.to !== want.to
    ) {
      throw new Error(
        `openLatentCache: part must be shard i of n (0 ≤ i < n) over [⌊i·count/n⌋, ⌊(i+1)·count/n⌋), ` +
          `got ${JSON.stringify(part)} for count ${count}`,
      );
    }
  }
}

/** Writes `text` to `path` via a temp file, fsync and rename, so readers see the old file or the new one. */
function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, 'w');
    try {
      const data = Buffer.from(text, 'utf8');
      for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      /* already gone */
    }
    throw error;
  }
}

/** Makes a rename in `dir` durable; a no-op where directories cannot be fsynced (Windows). */
function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not supported here */
  }
}

/**
 * A cache of one data set's latents (or one part of it), opened by `openLatentCache`. Records
 * `0 … complete - 1` are stored (samples `first …`); `append` adds record `complete`.
 */
export class LatentCache {
  /** The cache directory, `<root>/<key>`. */
  readonly dir: string;
  readonly metaPath: string;
  readonly dataPath: string;
  readonly key: string;
  /** Number of samples in the data set (the records of the whole cache). */
  readonly count: number;
  /** The part these files are (undefined for the cache itself). */
  readonly part: LatentCachePart | undefined;
  /** The sample record 0 holds: the part's `from`, else 0. */
  readonly first: number;
  /** Records these files hold when complete: `count`, or a part's `to - from`. */
  readonly records: number;
  /** Opened with `readOnly`: appends throw, nothing on disk is changed. */
  readonly readOnly: boolean;
  /** Shape [h, w, c] of one latent. */
  readonly shape: readonly [number, number, number];
  /** The `info` stored in `meta.json` (from the call that created the cache). */
  readonly info: Record<string, unknown> | undefined;
  /** Values per latent: h·w·c. */
  readonly size: number;
  /** Bytes per record in `latents.bin`: 8·h·w·c + 4. */
  readonly recordBytes: number;
  /** Bytes of a torn tail truncated off `latents.bin` when it was opened (0 normally). */
  readonly droppedTail: number;
  /** What opening repaired (a torn tail dropped), one line each, for the caller to log. */
  readonly warnings: readonly string[];

  private completeRecords = 0;
  private means: Float32Array;
  private logvars: Float32Array;
  private fd: number | undefined;
  private closed = false;

  /** Use `openLatentCache`. */
  constructor(root: string, options: LatentCacheOptions) {
    if (endianness() !== 'LE')
      throw new Error('LatentCache: the file format is little-endian; this host is big-endian');
    validateOptions(options);
    this.key = options.key;
    this.count = options.count;
    this.part = options.part && { ...options.part };
    this.first = this.part?.from ?? 0;
    this.records = this.part ? this.part.to - this.part.from : this.count;
    this.readOnly = Boolean(options.readOnly);
    this.shape = [options.shape[0], options.shape[1], options.shape[2]];
    this.size = this.shape[0] * this.shape[1] * this.shape[2];
    this.recordBytes = 8 * this.size + 4;
    this.dir = join(root, this.key);
    const name = this.part && partName(this.part.index, this.part.count);
    this.metaPath = join(this.dir, name ? `${name}.json` : META);
    this.dataPath = join(this.dir, name ? `${name}.bin` : DATA);
    this.means = new Float32Array(0);
    this.logvars = new Float32Array(0);

    if (this.readOnly) {
      if (!existsSync(this.metaPath)) throw new DataError(`LatentCache: ${this.metaPath} does not exist`);
    } else {
      try {
        mkdirSync(this.dir, { recursive: true });
      } catch (error) {
        const why = (error as Error).message;
        throw new DataError(`LatentCache: cannot use ${this.dir} as the cache directory (${why})`, { cause: error });
      }
    }
    this.info = existsSync(this.metaPath) ? this.checkMeta() : this.createMeta(options.info);
    const warnings: string[] = [];
    this.droppedTail = this.scan(warnings);
    this.warnings = warnings;
  }

  /** Number of valid records stored: samples `0 … complete - 1`. */
  get complete(): number {
    return this.completeRecords;
  }

  /** True when every sample's latents are stored (a part: every sample of its range). */
  get done(): boolean {
    return this.completeRecords === this.records;
  }

  /** `i/n` for a part, for messages. */
  get label(): string {
    return this.part ? `${this.part.index}/${this.part.count}` : 'the cache';
  }

  /**
   * Appends the record of sample `complete`: its posterior mean and log-variance, h·w·c values
   * each. Written at once (not fsynced: call `flush()` at the end of a batch).
   */
  append(mean: Float32Array, logvar: Float32Array): void {
    if (this.closed) throw new Error(`LatentCache: append after close() (${this.dir})`);
    if (this.readOnly) throw new Error(`LatentCache: append to ${this.dataPath}, opened read-only`);
    for (const [name, a] of [
      ['mean', mean],
      ['logvar', logvar],
    ] as const) {
      if (!(a instanceof Float32Array) || a.length !== this.size) {
        const got = a instanceof Float32Array ? `${a.length} values` : 'not a Float32Array';
        throw new DataError(
          `LatentCache: ${name} of sample ${this.first + this.completeRecords} must be a Float32Array of ` +
            `${this.shape.join('×')} = ${this.size} values, got ${got} (cache ${this.dir})`,
        );
      }
      for (let j = 0; j < a.length; j++) {
        if (!Number.isFinite(a[j])) {
          throw new DataError(
            `LatentCache: ${name} of sample ${this.first + this.completeRecords} holds ${a[j]} at index ${j}; ` +
              `the autoencoder produced a non-finite latent (not stored in ${this.dataPath})`,
          );
        }
      }
    }
    if (this.completeRecords >= this.records) {
      throw new DataError(`LatentCache: ${this.dataPath} already holds all ${this.records} records; nothing to append`);
    }
    const record = new Uint8Array(this.recordBytes);
    const half = 4 * this.size;
    record.set(bytesOf(mean), 0);
    record.set(bytesOf(logvar), half);
    new DataView(record.buffer).setUint32(2 * half, crc32(record, 0, 2 * half), true);

    const fd = this.writer();
    const expected = this.completeRecords * this.recordBytes;
    const size = fstatSync(fd).size;
    if (size !== expected) {
      throw new DataError(
        `LatentCache: ${this.dataPath} is ${size} bytes, expected ${expected} ` +
          `(${this.completeRecords} records); it changed on disk since it was opened ` +
          '(another process filling it?); reopen it',
      );
    }
    try {
      for (let done = 0; done < record.length; ) done += writeSync(fd, record, done, record.length - done);
    } catch (error) {
      // Take back a partial record (a full disk), so later appends stay aligned.
      try {
        ftruncateSync(fd, expected);
      } catch {
        /* reopening drops it as a torn tail */
      }
      throw new DataError(`LatentCache: cannot write to ${this.dataPath} (${(error as Error).message})`, {
        cause: error,
      });
    }
    this.store(this.completeRecords, record, 0);
    this.completeRecords++;
  }

  /** Fsyncs `latents.bin`, making the records appended so far durable. */
  flush(): void {
    if (this.fd !== undefined) fsyncSync(this.fd);
  }

  /** The posterior of sample `i` (copies). */
  read(i: number): LatentRecord {
    this.checkIndex(i);
    const n = this.size;
    return { mean: this.means.slice(i * n, (i + 1) * n), logvar: this.logvars.slice(i * n, (i + 1) * n) };
  }

  /** The posteriors of the samples `indices`, concatenated in that order: [n, h, w, c] each. */
  readBatch(indices: ArrayLike<number>): LatentBatch {
    const n = this.size;
    const mean = new Float32Array(indices.length * n);
    const logvar = new Float32Array(indices.length * n);
    for (let b = 0; b < indices.length; b++) {
      const i = indices[b];
      this.checkIndex(i);
      mean.set(this.means.subarray(i * n, (i + 1) * n), b * n);
      logvar.set(this.logvars.subarray(i * n, (i + 1) * n), b * n);
    }
    return { mean, logvar, shape: [indices.length, this.shape[0], this.shape[1], this.shape[2]] };
  }

  /** Fsyncs and closes `latents.bin`. Reads keep working (from memory); appends throw. */
  close(): void {
    if (this.fd !== undefined) {
      try {
        fsyncSync(this.fd);
      } finally {
        closeSync(this.fd);
        this.fd = undefined;
      }
    }
    this.closed = true;
  }

  /** `i` is a record index: for a part, sample `first + i`. */
  private checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.completeRecords) {
      throw new RangeError(
        `LatentCache: sample ${this.first + i} is not in the cache (${this.dataPath} holds ` +
          `${this.completeRecords} of ${this.records} records); run fillLatentCache first`,
      );
    }
  }

  private writer(): number {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.dataPath, 'a');
      } catch (error) {
        const why = (error as Error).message;
        throw new DataError(`LatentCache: cannot open ${this.dataPath} for writing (${why})`, { cause: error });
      }
    }
    return this.fd;
  }

  private corrupt(what: string): DataError {
    const fix = this.part
      ? `delete ${this.metaPath} and ${this.dataPath} to encode part ${this.label} again`
      : `delete ${this.dir} to rebuild it (the latents get encoded again)`;
    return new DataError(`LatentCache: ${what}; the cache is corrupt — ${fix}`);
  }

  private createMeta(info: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
    if (existsSync(this.dataPath) && statSync(this.dataPath).size > 0) {
      throw this.corrupt(`${this.dataPath} exists but ${this.metaPath} does not, so its records cannot be checked`);
    }
    const meta: LatentCacheMeta = {
      format: LATENT_CACHE_FORMAT,
      version: LATENT_CACHE_VERSION,
      key: this.key,
      count: this.count,
      shape: [this.shape[0], this.shape[1], this.shape[2]],
      ...(info === undefined ? {} : { info }),
      ...(this.part ? { part: { ...this.part } } : {}),
    };
    try {
      writeAtomically(this.metaPath, `${JSON.stringify(meta, null, 2)}\n`);
    } catch (error) {
      const why = (error as Error).message;
      throw new DataError(`LatentCache: cannot write ${this.metaPath} (${why})`, { cause: error });
    }
    fsyncDir(this.dir);
    return info;
  }

  /** Checks an existing `meta.json` against the options; returns its `info`. */
  private checkMeta(): Record<string, unknown> | undefined {
    let meta: Partial<LatentCacheMeta>;
    try {
      meta = JSON.parse(readFileSync(this.metaPath, 'utf8'));
    } catch (error) {
      throw this.corrupt(`${this.metaPath} is not valid JSON (${(error as Error).message})`);
    }
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
      throw this.corrupt(`${this.metaPath} is not a JSON object`);
    }
    if (meta.format !== LATENT_CACHE_FORMAT) {
      throw this.corrupt(`${this.metaPath} has format ${JSON.stringify(meta.format)}, not "${LATENT_CACHE_FORMAT}"`);
    }
    if (meta.version !== LATENT_CACHE_VERSION) {
      throw new DataError(
        `LatentCache: ${this.metaPath} is version ${JSON.stringify(meta.version)}; this code reads version ` +
          `${LATENT_CACHE_VERSION} — delete ${this.dir} to rebuild it (the latents get encoded again)`,
      );
    }
    const mismatch = (field: string, stored: unknown, wanted: unknown) =>
      this.corrupt(
        `${this.metaPath} records ${field} ${JSON.stringify(stored)} but this cache was opened with ` +
          `${field} ${JSON.stringify(wanted)} (the key directory should separate them)`,
      );
    if (meta.key !== this.key) throw mismatch('key', meta.key, this.key);
    if (meta.count !== this.count) throw mismatch('count', meta.count, this.count);
    const shape = meta.shape;
    if (!Array.isArray(shape) || shape.length !== 3 || shape.some((d, k) => d !== this.shape[k])) {
      throw mismatch('shape', shape, this.shape);
    }
    // A part's range is part of its identity; the cache's own meta.json has none.
    const part = meta.part;
    const samePart = this.part
      ? part !== undefined && (['index', 'count', 'from', 'to'] as const).every((k) => part[k] === this.part![k])
      : part === undefined;
    if (!samePart) throw mismatch('part', part ?? null, this.part ?? null);
    const info = meta.info;
    if (info !== undefined && (typeof info !== 'object' || info === null || Array.isArray(info))) {
      throw this.corrupt(`${this.metaPath} has an info field that is not an object`);
    }
    return info;
  }

  /** Loads the valid records of `latents.bin` and truncates a torn tail; returns the bytes dropped. */
  private scan(warnings: string[]): number {
    if (!existsSync(this.dataPath)) return 0;
    const R = this.recordBytes;
    let fd: number;
    try {
      fd = openSync(this.dataPath, this.readOnly ? 'r' : 'r+');
    } catch (error) {
      const why = (error as Error).message;
      throw new DataError(`LatentCache: cannot open ${this.dataPath} (${why})`, { cause: error });
    }
    try {
      const size = fstatSync(fd).size;
      if (size > this.records * R) {
        throw this.corrupt(
          `${this.dataPath} is ${size} bytes, longer than the ${this.records} records of ${R} bytes ` +
            `that ${this.metaPath} allows`,
        );
      }
      const full = Math.floor(size / R);
      this.means = new Float32Array(full * this.size);
      this.logvars = new Float32Array(full * this.size);
      const perChunk = Math.max(1, Math.floor(READ_CHUNK / R));
      const chunk = new Uint8Array(Math.min(full, perChunk) * R);
      const view = new DataView(chunk.buffer);
      let valid = 0;
      let badLast = false;
      for (let first = 0; first < full; first += perChunk) {
        const n = Math.min(perChunk, full - first);
        const bytes = n * R;
        for (let got = 0; got < bytes; ) {
          const read = readSync(fd, chunk, got, bytes - got, first * R + got);
          if (read === 0) throw this.corrupt(`${this.dataPath} ended early while being read`);
          got += read;
        }
        for (let r = 0; r < n; r++) {
          const i = first + r;
          const at = r * R;
          if (crc32(chunk, at, at + R - 4) !== view.getUint32(at + R - 4, true)) {
            if (i < full - 1) {
              throw this.corrupt(
                `record ${i} (sample ${this.first + i}, bytes ${i * R} to ${(i + 1) * R - 1}) of ${this.dataPath} ` +
                  'fails its checksum, and it is not the last record, so it is not a torn write',
              );
            }
            badLast = true;
            break;
          }
          this.store(i, chunk, at);
          valid++;
        }
      }
      const keep = valid * R;
      if (keep < size && this.readOnly) {
        // Perhaps a record being written right now by the process that owns the file: left alone.
        warnings.push(
          `LatentCache: ${this.dataPath} ends in ${size - keep} bytes that are not a whole record ` +
            `(being written, or torn); ${valid} of ${this.records} records read`,
        );
      } else if (keep < size) {
        ftruncateSync(fd, keep);
        fsyncSync(fd);
        const partial = size - full * R;
        const parts = [
          ...(badLast ? [`record ${full - 1} failed its checksum`] : []),
          ...(partial > 0 ? [`a partial record of ${partial} bytes followed record ${full - 1}`] : []),
        ];
        warnings.push(
          `LatentCache: dropped a torn tail of ${size - keep} bytes from ${this.dataPath} ` +
            `(${parts.join('; ')}; an interrupted write): ${valid} of ${this.records} records kept, ` +
            'the rest get encoded again',
        );
      }
      this.completeRecords = valid;
      return this.readOnly ? 0 : size - keep;
    } finally {
      closeSync(fd);
    }
  }

  /** Copies the mean and log-variance of record `i` out of `bytes` (at `at`) into memory. */
  private store(i: number, bytes: Uint8Array, at: number): void {
    const n = this.size;
    if ((i + 1) * n > this.means.length) {
      // Grow geometrically, never past the data set.
      const capacity = Math.min(this.records, Math.max(i + 1, 2 * (this.means.length / n), 16)) * n;
      const means = new Float32Array(capacity);
      const logvars = new Float32Array(capacity);
      means.set(this.means.subarray(0, i * n));
      logvars.set(this.logvars.subarray(0, i * n));
      this.means = means;
      this.logvars = logvars;
    }
    // Byte copies: the source need not be 4-byte aligned.
    bytesOf(this.means.subarray(i * n, (i + 1) * n)).set(bytes.subarray(at, at + 4 * n));
    bytesOf(this.logvars.subarray(i * n, (i + 1) * n)).set(bytes.subarray(at + 4 * n, at + 8 * n));
  }
}

/**
 * Opens the latent cache `<root>/<key>/`, creating it when absent. An existing cache must
 * match `key`, `count` and `shape` (else a `DataError`); a torn tail left by a crash is
 * truncated off and reported in `warnings`; an earlier damaged record is a `DataError` naming
 * it. Every valid record is loaded into memory.
 */
export function openLatentCache(root: string, options: LatentCacheOptions): LatentCache {
  return new LatentCache(root, options);
}

/**
 * Encodes the samples the cache (or part) lacks, from sample `cache.first + cache.complete` to the
 * end of its range (or to `until`), in batches of `batchSize`, appending each batch and fsyncing
 * after it; an interrupted fill resumes where it stopped. Returns the number of samples encoded by
 * this call (0 when the cache was done).
 */
export async function fillLatentCache(
  cache: LatentCache,
  encode: LatentEncodeFn,
  options: FillLatentCacheOptions,
): Promise<number> {
  const { batchSize, onProgress } = options;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new Error(`fillLatentCache: batchSize must be a positive integer, got ${batchSize}`);
  }
  const size = cache.size;
  // In records of this file (a part's record r is sample first + r).
  const end = Math.min(cache.records, options.until === undefined ? cache.records : options.until - cache.first);
  let encoded = 0;
  while (cache.complete < end) {
    const record = cache.complete;
    const start = cache.first + record;
    const n = Math.min(batchSize, end - record);
    const { mean, logvar } = await encode(start, n);
    if (cache.complete !== record) {
      throw new Error(`fillLatentCache: ${cache.dir} was appended to while samples ${start}+ were being encoded`);
    }
    for (const [name, a] of [
      ['mean', mean],
      ['logvar', logvar],
    ] as const) {
      if (!(a instanceof Float32Array) || a.length !== n * size) {
        const got = a instanceof Float32Array ? `${a.length} values` : 'not a Float32Array';
        throw new DataError(
          `fillLatentCache: encode(${start}, ${n}) returned a ${name} of ${got}; expected a Float32Array of ` +
            `${n}×${cache.shape.join('×')} = ${n * size} values (cache ${cache.dir})`,
        );
      }
    }
    for (let b = 0; b < n; b++) {
      cache.append(mean.subarray(b * size, (b + 1) * size), logvar.subarray(b * size, (b + 1) * size));
    }
    cache.flush();
    encoded += n;
    onProgress?.(cache.complete, cache.records);
  }
  return encoded;
}
