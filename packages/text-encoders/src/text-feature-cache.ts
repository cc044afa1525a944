import { DataError } from '@matryoshka-ts/core';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
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

/** A file name from the id: readable part plus a hash of the exact id. */
function fileNameOf(id: string): string {
  const readable = id.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return `${readable}-${createHash('sha256').update(id).digest('hex').slice(0, 12)}.tfc`;
}

export class TextFeatureCache implements TextEncoder {
  readonly id: string;
  readonly width: number;
  readonly maxTokens: number;
  /** The cache file. */
  readonly path: string;
  /** Bytes of a torn or corrupt tail dropped when the file was opened (0 normally). */
  readonly droppedBytes: number;
  private readonly index = new Map<string, Entry>();
  /** Where the next record goes: the file's length as this instance knows it. */
  private end: number;

  /** Opens (or creates) the cache of `encoder` in directory `dir`. */
  static open(dir: string, encoder: AsyncTextEncoder): TextFeatureCache {
    return new TextFeatureCache(dir, encoder);
  }

  private constructor(
    dir: string,
    private readonly encoder: AsyncTextEncoder,
  ) {
    if (endianness() !== 'LE')
      throw new Error('TextFeatureCache: the file format is little-endian; this host is big-endian');
    this.id = encoder.id;
    this.width = encoder.width;
    this.maxTokens = encoder.maxTokens;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      // A file in the way, or no permission: the user's to fix.
      const why = (error as Error).message;
      throw new DataError(`TextFeatureCache: cannot use ${dir} as the cache directory (${why})`, { cause: error });
    }
    this.path = join(dir, fileNameOf(this.id));
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
    const fd = openSync(this.path, 'r+');
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
      if (offset < size) {
        ftruncateSync(fd, offset);
        fsyncSync(fd);
      }
      return { end: offset, dropped: size - offset };
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
    const records: Buffer[] = [];
    const entries: Array<[string, Entry]> = [];
    let offset = this.end;
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
      records.push(head, payload);
      entries.push([key.toString('hex'), { offset: offset + RECORD_HEAD, length: payload.length }]);
      offset += RECORD_HEAD + payload.length;
    });
    const fd = openSync(this.path, 'r+');
    try {
      if (fstatSync(fd).size !== this.end) {
        throw new DataError(
          `TextFeatureCache: ${this.path} changed on disk since it was opened ` +
            '(another process preparing it?); reopen it',
        );
      }
      const data = Buffer.concat(records);
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
