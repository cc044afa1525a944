import { DataError, shardRange } from '@matryoshka-ts/core';
import { createHash } from 'node:crypto';
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
  unlinkSync,
  writeSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { AsyncTextEncoder, EncodedText, TextEncoder } from './text-encoder.js';

/**
 * A disk cache of a frozen encoder's outputs, so that a large encoder (FLAN-T5 XL in ONNX) runs
 * once per caption, ahead of training: `await cache.prepare(captions)` encodes the captions not
 * yet stored; `cache.encode(captions)` is then the synchronous `TextEncoder` that training
 * calls, reading the stored features.
 *
 * One file per encoder id in `dir`: a header naming the encoder, then append-only records
 *
 *     u32 payload length | 8 bytes of SHA-256(payload) | payload
 *     payload = SHA-256(caption) (32) | mask (L bytes) | features of the masked-in positions (n × D float32)
 *
 * Crash safety: records are only ever appended (and fsynced per batch); the header is written
 * to a temp file and renamed into place. Opening checks every record and truncates the file
 * after the last good one, so a torn write loses at most the batch being written, never earlier
 * records. One process should prepare a given cache at a time; a second writer is detected (the
 * file grew under us) and refused rather than interleaved.
 *
 * Parts: encoding split over n workers (`mdm-train cache --shard i/n`, each a contiguous range of
 * the sorted distinct captions) gives each worker its own file next to the cache's,
 * `<name>.part-<i>-of-<n>.tfc` (same format), and a sidecar `<name>.part-<i>-of-<n>.json` saying
 * whose part it is and, once the worker is done, that it is complete. `mergeParts` appends the
 * complete parts' records to the cache in shard order, exactly as stored, and deletes the parts:
 * a cache filled from empty that way is byte for byte the one a single process writes encoding
 * the same sorted list (given an encoder whose features do not depend on the batch).
 */

export interface PrepareOptions {
  /** Captions per encoder call (default 32). */
  batchSize?: number;
  /** Called after each stored batch with the captions encoded so far and the number to encode. */
  onProgress?: (done: number, total: number) => void;
}

export interface PrepareResult {
  /** Captions run through the encoder now. */
  encoded: number;
  /** Distinct captions that were already stored. */
  cached: number;
}

/**
 * One worker's part of a cache split n ways (`--shard i/n`): shard `index` of `count` of a caption
 * list, named by its size and digest (`captionListDigest`) so the parts of one split can be told
 * from those of another list.
 */
export interface TextFeaturePart {
  index: number;
  count: number;
  list: { captions: number; digest: string };
}

export interface TextFeatureCacheOptions {
  /** Open this part of the cache (its own file) instead of the cache. */
  part?: TextFeaturePart;
  /**
   * Only read: the file must exist; a torn tail is left on disk (its writer may be mid-batch) and
   * not indexed; `prepare` throws. For reading a file another process writes.
   */
  readOnly?: boolean;
}

/** A part's sidecar, `<name>.part-<i>-of-<n>.json`. */
interface PartSidecar {
  format: typeof PART_FORMAT;
  version: 1;
  encoder: string;
  width: number;
  maxTokens: number;
  shard: { index: number; count: number };
  list: { captions: number; digest: string };
  /** Set by `finishPart` once every caption of the range is stored, with how many records the file holds. */
  done: boolean;
  stored?: number;
}

/** What `mergeParts` did, and what it could not do, for the caller to report. */
export interface TextFeatureMergeReport {
  /** Parts appended to the cache (`i/n`), in shard order; their files are deleted. */
  merged: string[];
  /** Records copied from parts. */
  copied: number;
  /** Records of parts that the cache already held (not copied again). */
  skipped: number;
  /** Captions encoded here in place of parts that could not be merged (`encodeGaps`). */
  encoded: number;
  /**
   * Parts not found whose captions the cache lacks (`i/n`; only for splits of the `list` given,
   * whose ranges are known).
   */
  missing: string[];
  /** Parts found but not of this encoder (id, width, tokens), or damaged: never merged. */
  foreign: string[];
  /** Parts not finished (a worker still running, or one that stopped): not merged yet. */
  incomplete: string[];
  /** Parts made for another caption list than `list`: merged (features are keyed by caption), and named. */
  otherList: string[];
}

/** A digest of a caption list (as split by `--shard`: sorted, distinct), naming it in part sidecars. */
export function captionListDigest(captions: readonly string[]): string {
  const hash = createHash('sha256');
  for (const caption of captions) hash.update(captionKey(caption));
  return hash.digest('hex').slice(0, 32);
}

const PART_FORMAT = 'mdm-text-feature-part';
/** Bytes of records copied per write while merging a part (records can be ~1 MB each for T5-XL). */
const MERGE_CHUNK = 1 << 24;

const MAGIC = 'TXTFEAT1';
const RECORD_HEAD = 12;
const KEY = 32;

interface Entry {
  /** Offset of the payload in the file. */
  offset: number;
  length: number;
}

const captionKey = (caption: string) => createHash('sha256').update(caption, 'utf8').digest();
const checksum = (payload: Buffer) => createHash('sha256').update(payload).digest().subarray(0, 8);

/** A file name (without `.tfc`) from the id: readable part plus a hash of the exact id. */
function stemOf(id: string): string {
  const readable = id.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return `${readable}-${createHash('sha256').update(id).digest('hex').slice(0, 12)}`;
}
const partSuffix = (index: number, count: number) => `.part-${index}-of-${count}`;

/** Writes `text` via a temp file, fsync and rename, so readers see the old file or the new one. */
function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

export class TextFeatureCache implements TextEncoder {
  readonly id: string;
  readonly width: number;
  readonly maxTokens: number;
  /** The cache file. */
  readonly path: string;
  /** Bytes of a torn or corrupt tail dropped when the file was opened (0 normally). */
  readonly droppedBytes: number;
  /** The part this file is (undefined for the cache itself). */
  readonly part: TextFeaturePart | undefined;
  /** A part's sidecar (`<name>.part-<i>-of-<n>.json`). */
  readonly sidecarPath: string | undefined;
  readonly readOnly: boolean;
  private readonly index = new Map<string, Entry>();
  /** Where the next record goes: the file's length as this instance knows it. */
  private end: number;

  /** The file of `encoder id`'s cache in directory `dir` (that `open` opens or creates). */
  static fileOf(dir: string, id: string): string {
    return join(dir, `${stemOf(id)}.tfc`);
  }

  /** Opens (or creates) the cache of `encoder` in directory `dir`, or one part of it (`options.part`). */
  static open(dir: string, encoder: AsyncTextEncoder, options: TextFeatureCacheOptions = {}): TextFeatureCache {
    return new TextFeatureCache(dir, encoder, options);
  }

  private constructor(
    dir: string,
    private readonly encoder: AsyncTextEncoder,
    options: TextFeatureCacheOptions,
  ) {
    if (endianness() !== 'LE')
      throw new Error('TextFeatureCache: the file format is little-endian; this host is big-endian');
    this.id = encoder.id;
    this.width = encoder.width;
    this.maxTokens = encoder.maxTokens;
    this.readOnly = Boolean(options.readOnly);
    this.part = options.part && { ...options.part, list: { ...options.part.list } };
    if (!this.readOnly) {
      try {
        mkdirSync(dir, { recursive: true });
      } catch (error) {
        // A file in the way, or no permission: the user's to fix.
        const why = (error as Error).message;
        throw new DataError(`TextFeatureCache: cannot use ${dir} as the cache directory (${why})`, { cause: error });
      }
    }
    const stem = join(dir, stemOf(this.id));
    const suffix = this.part ? partSuffix(this.part.index, this.part.count) : '';
    this.path = `${stem}${suffix}.tfc`;
    this.sidecarPath = this.part ? `${stem}${suffix}.json` : undefined;
    if (this.readOnly && !existsSync(this.path)) throw new DataError(`TextFeatureCache: ${this.path} does not exist`);
    if (this.part) this.checkSidecar();
    const header = this.header();
    if (!existsSync(this.path)) {
      const temp = `${this.path}.${process.pid}.tmp`;
      const fd = openSync(temp, 'w');
      try {
        writeSync(fd, header);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.path);
    }
    const { end, dropped } = this.scan(header);
    this.end = end;
    this.droppedBytes = dropped;
  }

  /** Number of captions stored. */
  get size(): number {
    return this.index.size;
  }

  has(caption: string): boolean {
    return this.index.has(captionKey(caption).toString('hex'));
  }

  /** Runs the encoder on the captions not yet stored, in batches, and appends their features. */
  async prepare(captions: Iterable<string>, options: PrepareOptions = {}): Promise<PrepareResult> {
    if (this.readOnly) throw new Error(`TextFeatureCache: prepare on ${this.path}, opened read-only`);
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`TextFeatureCache: batchSize must be a positive integer, got ${batchSize}`);
    const distinct = [...new Set(captions)];
    const todo = distinct.filter((c) => !this.has(c));
    for (let i = 0; i < todo.length; i += batchSize) {
      const batch = todo.slice(i, i + batchSize);
      const { features, mask } = await this.encoder.encodeAsync(batch);
      this.append(batch, features, mask);
      options.onProgress?.(i + batch.length, todo.length);
    }
    return { encoded: todo.length, cached: distinct.length - todo.length };
  }

  /** [B, L, D] features and [B, L] mask of prepared captions, from the cache file. */
  encode(captions: string[]): EncodedText {
    const L = this.maxTokens;
    const D = this.width;
    const entries = captions.map((c) => this.index.get(captionKey(c).toString('hex')));
    const missing = captions.filter((_, i) => !entries[i]);
    if (missing.length) {
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
      throw new Error(
        `TextFeatureCache (${this.id}): caption ${JSON.stringify(missing[0])}${more} was not prepared; ` +
          `run \`await cache.prepare(captions)\` first`,
      );
    }
    const tokens = new Float32Array(captions.length * L * D);
    const mask = new Float32Array(captions.length * L);
    const fd = openSync(this.path, 'r');
    try {
      entries.forEach((entry, b) => {
        const payload = Buffer.alloc(entry!.length);
        readSync(fd, payload, 0, payload.length, entry!.offset);
        if (!payload.subarray(0, KEY).equals(captionKey(captions[b]))) {
          throw new DataError(`TextFeatureCache: ${this.path} changed on disk since it was opened; reopen it`);
        }
        // Copy out of the Buffer: its float data need not be 4-byte aligned.
        const values = new Float32Array(
          payload.buffer.slice(payload.byteOffset + KEY + L, payload.byteOffset + payload.length),
        );
        let row = 0;
        for (let t = 0; t < L; t++) {
          if (!payload[KEY + t]) continue;
          mask[b * L + t] = 1;
          tokens.set(values.subarray(row * D, (row + 1) * D), (b * L + t) * D);
          row++;
        }
      });
    } finally {
      closeSync(fd);
    }
    return { tokens: tf.tensor3d(tokens, [captions.length, L, D]), mask: tf.tensor2d(mask, [captions.length, L]) };
  }

  /**
   * Marks this part complete in its sidecar (atomically), once every caption of its range is
   * stored: from then on `mergeParts` may fold it in. A part is never merged before.
   */
  finishPart(): void {
    if (!this.part || !this.sidecarPath || this.readOnly)
      throw new Error(`TextFeatureCache: finishPart on ${this.path}, which is not a writable part`);
    writeAtomically(this.sidecarPath, `${JSON.stringify({ ...this.sidecar(), done: true, stored: this.size })}\n`);
  }

  /** True when this part's sidecar says it is complete. */
  get finished(): boolean {
    return this.part !== undefined && this.readSidecar()?.done === true;
  }

  /**
   * Folds the complete parts of a split (`<name>.part-<i>-of-<n>.tfc` next to this cache, of this
   * encoder) into the cache, in shard order: their records, exactly as stored and in their order,
   * except captions the cache already holds; then deletes them. Parts are read read-only, so a
   * worker still writing one is never disturbed (it is reported incomplete). `list`, the sorted
   * distinct captions the split was made of, lets missing parts be named; with `encodeGaps`, the
   * captions of a missing, unfinished or foreign part of that split are encoded here in its place,
   * so the cache still ends as one process encoding `list` in order would write it.
   */
  async mergeParts(
    list?: readonly string[],
    options: PrepareOptions & { encodeGaps?: boolean } = {},
  ): Promise<TextFeatureMergeReport> {
    if (this.part || this.readOnly)
      throw new Error(`TextFeatureCache: mergeParts on ${this.path}, not a writable cache`);
    const report: TextFeatureMergeReport = {
      merged: [],
      copied: 0,
      skipped: 0,
      encoded: 0,
      missing: [],
      foreign: [],
      incomplete: [],
      otherList: [],
    };
    const dir = dirname(this.path);
    const stem = stemOf(this.id);
    const pattern = /^\.part-(\d+)-of-(\d+)\.json$/;
    const found: Array<{ index: number; count: number }> = [];
    for (const name of readdirSync(dir)) {
      if (!name.startsWith(stem)) continue;
      const m = pattern.exec(name.slice(stem.length));
      if (m) found.push({ index: Number(m[1]), count: Number(m[2]) });
    }
    found.sort((a, b) => a.count - b.count || a.index - b.index);
    const digest = list && captionListDigest(list);
    const merged: TextFeatureCache[] = [];
    const usable: Array<{ index: number; count: number; part: TextFeatureCache; ours: boolean }> = [];
    for (const { index, count } of found) {
      const label = `${index}/${count}`;
      const sidecarPath = join(dir, `${stem}${partSuffix(index, count)}.json`);
      let sidecar: PartSidecar;
      try {
        sidecar = JSON.parse(readFileSync(sidecarPath, 'utf8')) as PartSidecar;
      } catch (error) {
        report.foreign.push(`${label}: ${sidecarPath} is not readable JSON (${(error as Error).message})`);
        continue;
      }
      const whose = this.sidecarMismatch(sidecar, { index, count });
      if (whose) {
        report.foreign.push(`${label}: ${sidecarPath} ${whose}`);
        continue;
      }
      if (!sidecar.done) {
        report.incomplete.push(`${label}: not finished (${sidecarPath} says so)`);
        continue;
      }
      let part: TextFeatureCache;
      try {
        part = new TextFeatureCache(dir, this.encoder, { part: { index, count, list: sidecar.list }, readOnly: true });
      } catch (error) {
        if (!(error instanceof DataError)) throw error;
        report.foreign.push(`${label}: ${error.message}`);
        continue;
      }
      if (part.size !== sidecar.stored) {
        report.foreign.push(
          `${label}: ${part.path} holds ${part.size} records but its sidecar says ${sidecar.stored}; ` +
            'delete both files to encode the part again',
        );
        continue;
      }
      if (digest && sidecar.list.digest !== digest) report.otherList.push(label);
      usable.push({ index, count, part, ours: digest !== undefined && sidecar.list.digest === digest });
    }
    const rangeOf = (index: number, count: number) => {
      const { from, to } = shardRange(list!.length, { index, count });
      return list!.slice(from, to);
    };
    if (list) {
      // Ranges are only known for splits of this list; a part merged earlier (deleted) is not missing.
      const ours = found.filter((p) => !report.otherList.includes(`${p.index}/${p.count}`));
      for (const count of new Set(ours.map((p) => p.count))) {
        for (let index = 0; index < count; index++) {
          if (found.some((p) => p.index === index && p.count === count)) continue;
          if (rangeOf(index, count).some((c) => !this.has(c))) report.missing.push(`${index}/${count}`);
        }
      }
    }
    for (const count of new Set(usable.map((u) => u.count))) {
      const split = usable.filter((u) => u.count === count);
      // A split of `list` is walked shard by shard, encoding the ranges no usable part holds.
      const walk = options.encodeGaps && split.some((u) => u.ours);
      for (let index = 0; index < count; index++) {
        const found = split.find((u) => u.index === index);
        if (!found) {
          if (walk) report.encoded += (await this.prepare(rangeOf(index, count), options)).encoded;
          continue;
        }
        const counts = this.copyFrom(found.part);
        report.copied += counts.copied;
        report.skipped += counts.skipped;
        report.merged.push(`${index}/${count}`);
        merged.push(found.part);
      }
    }
    // Deleted once their records are durable here (each write is fsynced): records first, so a
    // crash between leaves a sidecar whose part reads as damaged, never a stray file.
    for (const part of merged) {
      for (const path of [part.path, part.sidecarPath!]) {
        try {
          unlinkSync(path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
    }
    return report;
  }

  /** Appends the records of `part` this cache lacks, in the part's order, in chunks of ~16 MB. */
  private copyFrom(part: TextFeatureCache): { copied: number; skipped: number } {
    let copied = 0;
    let skipped = 0;
    let chunk: Array<{ key: string; bytes: Buffer }> = [];
    let bytes = 0;
    const fd = openSync(part.path, 'r');
    try {
      for (const [key, entry] of part.index) {
        if (this.index.has(key)) {
          skipped++;
          continue;
        }
        const record = Buffer.alloc(RECORD_HEAD + entry.length);
        const at = entry.offset - RECORD_HEAD;
        for (let got = 0; got < record.length; ) {
          const read = readSync(fd, record, got, record.length - got, at + got);
          if (read === 0) throw new DataError(`TextFeatureCache: ${part.path} ended early while being merged`);
          got += read;
        }
        chunk.push({ key, bytes: record });
        bytes += record.length;
        copied++;
        if (bytes >= MERGE_CHUNK) {
          this.writeRecords(chunk);
          chunk = [];
          bytes = 0;
        }
      }
      if (chunk.length) this.writeRecords(chunk);
    } finally {
      closeSync(fd);
    }
    return { copied, skipped };
  }

  /** What this part's sidecar should say (before `finishPart`). */
  private sidecar(): PartSidecar {
    const part = this.part!;
    return {
      format: PART_FORMAT,
      version: 1,
      encoder: this.id,
      width: this.width,
      maxTokens: this.maxTokens,
      shard: { index: part.index, count: part.count },
      list: { captions: part.list.captions, digest: part.list.digest },
      done: false,
    };
  }

  private readSidecar(): PartSidecar | undefined {
    if (!this.sidecarPath || !existsSync(this.sidecarPath)) return undefined;
    try {
      return JSON.parse(readFileSync(this.sidecarPath, 'utf8')) as PartSidecar;
    } catch (error) {
      throw new DataError(
        `TextFeatureCache: ${this.sidecarPath} is not readable JSON (${(error as Error).message}); ` +
          `delete it and ${this.path} to encode the part again`,
      );
    }
  }

  /** Why a sidecar is not one of this encoder's parts of shard i/n, or undefined when it is. */
  private sidecarMismatch(sidecar: PartSidecar, shard: { index: number; count: number }): string | undefined {
    if (typeof sidecar !== 'object' || sidecar === null || sidecar.format !== PART_FORMAT || sidecar.version !== 1)
      return `is not a text-feature part (format ${JSON.stringify(sidecar?.format)}, version ${sidecar?.version})`;
    if (sidecar.encoder !== this.id || sidecar.width !== this.width || sidecar.maxTokens !== this.maxTokens)
      return (
        `holds features of ${sidecar.encoder} (width ${sidecar.width}, ${sidecar.maxTokens} tokens), ` +
        `not ${this.id} (width ${this.width}, ${this.maxTokens} tokens)`
      );
    if (sidecar.shard?.index !== shard.index || sidecar.shard?.count !== shard.count)
      return `says it is shard ${sidecar.shard?.index}/${sidecar.shard?.count}`;
    if (typeof sidecar.list?.digest !== 'string' || !Number.isInteger(sidecar.list?.captions))
      return 'names no caption list';
    return undefined;
  }

  /** A writable part: creates its sidecar, or checks that the existing one is this part's. */
  private checkSidecar(): void {
    const part = this.part!;
    const existing = this.readSidecar();
    if (!existing) {
      if (this.readOnly) throw new DataError(`TextFeatureCache: ${this.sidecarPath} does not exist`);
      writeAtomically(this.sidecarPath!, `${JSON.stringify(this.sidecar())}\n`);
      return;
    }
    const whose = this.sidecarMismatch(existing, part);
    const fix = `delete it and ${this.path} to encode the part again`;
    if (whose) throw new DataError(`TextFeatureCache: ${this.sidecarPath} ${whose}; ${fix}`);
    if (existing.list.digest !== part.list.digest || existing.list.captions !== part.list.captions)
      throw new DataError(
        `TextFeatureCache: ${this.sidecarPath} is part ${part.index}/${part.count} of another caption list ` +
          `(${existing.list.captions} captions, digest ${existing.list.digest}; now ${part.list.captions}, ` +
          `${part.list.digest}): ${fix}, or merge it first (mdm-train cache without --shard)`,
      );
  }

  private header(): Buffer {
    const id = Buffer.from(this.id, 'utf8');
    const head = Buffer.alloc(20);
    head.write(MAGIC, 0, 'ascii');
    head.writeUInt32LE(this.width, 8);
    head.writeUInt32LE(this.maxTokens, 12);
    head.writeUInt32LE(id.length, 16);
    return Buffer.concat([head, id]);
  }

  /** Indexes the good records and truncates whatever follows the last one. */
  private scan(expectedHeader: Buffer): { end: number; dropped: number } {
    const fd = openSync(this.path, this.readOnly ? 'r' : 'r+');
    try {
      const size = fstatSync(fd).size;
      const header = Buffer.alloc(expectedHeader.length);
      readSync(fd, header, 0, header.length, 0);
      if (!header.equals(expectedHeader)) {
        throw new DataError(
          `TextFeatureCache: ${this.path} does not hold features of ${this.id} ` +
            `(width ${this.width}, ${this.maxTokens} tokens); delete it to rebuild`,
        );
      }
      let offset = header.length;
      const head = Buffer.alloc(RECORD_HEAD);
      while (offset + RECORD_HEAD <= size) {
        readSync(fd, head, 0, RECORD_HEAD, offset);
        const length = head.readUInt32LE(0);
        if (length < KEY + this.maxTokens || offset + RECORD_HEAD + length > size) break;
        const payload = Buffer.alloc(length);
        readSync(fd, payload, 0, length, offset + RECORD_HEAD);
        if (!checksum(payload).equals(head.subarray(4)) || length !== this.payloadLength(payload)) break;
        this.index.set(payload.subarray(0, KEY).toString('hex'), { offset: offset + RECORD_HEAD, length });
        offset += RECORD_HEAD + length;
      }
      // Read-only, a tail may be a batch its writer is appending right now: left as it is.
      if (offset < size && !this.readOnly) {
        ftruncateSync(fd, offset);
        fsyncSync(fd);
      }
      return { end: offset, dropped: this.readOnly ? 0 : size - offset };
    } finally {
      closeSync(fd);
    }
  }

  /** The payload length its mask implies. */
  private payloadLength(payload: Buffer): number {
    let n = 0;
    for (let t = 0; t < this.maxTokens; t++) n += payload[KEY + t] ? 1 : 0;
    return KEY + this.maxTokens + n * this.width * 4;
  }

  /** Writes one batch's records in one write at the end of the file, then fsyncs. */
  private append(captions: string[], features: Float32Array, mask: Uint8Array): void {
    const B = captions.length;
    const L = this.maxTokens;
    const D = this.width;
    if (features.length !== B * L * D || mask.length !== B * L) {
      throw new Error(
        `TextFeatureCache: encoder ${this.id} returned ${features.length} features ` +
          `and ${mask.length} mask values for ${B} captions; ` +
          `expected ${B}×${L}×${D} and ${B}×${L}`,
      );
    }
    const records: Array<{ key: string; bytes: Buffer }> = [];
    captions.forEach((caption, b) => {
      const rowMask = mask.subarray(b * L, (b + 1) * L);
      const kept: Float32Array[] = [];
      rowMask.forEach((m, t) => m && kept.push(features.subarray((b * L + t) * D, (b * L + t + 1) * D)));
      const key = captionKey(caption);
      const payload = Buffer.concat([
        key,
        Buffer.from(rowMask.map((m) => (m ? 1 : 0))),
        ...kept.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength)),
      ]);
      const head = Buffer.alloc(RECORD_HEAD);
      head.writeUInt32LE(payload.length, 0);
      checksum(payload).copy(head, 4);
      records.push({ key: key.toString('hex'), bytes: Buffer.concat([head, payload]) });
    });
    this.writeRecords(records);
  }

  /** Appends whole records (head and payload, as stored) in one write, fsyncs, then indexes them. */
  private writeRecords(records: Array<{ key: string; bytes: Buffer }>): void {
    const entries: Array<[string, Entry]> = [];
    let offset = this.end;
    for (const { key, bytes } of records) {
      entries.push([key, { offset: offset + RECORD_HEAD, length: bytes.length - RECORD_HEAD }]);
      offset += bytes.length;
    }
    const fd = openSync(this.path, 'r+');
    try {
      if (fstatSync(fd).size !== this.end) {
        throw new DataError(
          `TextFeatureCache: ${this.path} changed on disk since it was opened ` +
            '(another process preparing it?); reopen it',
        );
      }
      const data = Buffer.concat(records.map((r) => r.bytes));
      for (let written = 0; written < data.length; )
        written += writeSync(fd, data, written, data.length - written, this.end + written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // Indexed only once durable, so a failed write leaves no entry pointing past the end.
    for (const [key, entry] of entries) this.index.set(key, entry);
    this.end = offset;
  }
}
