import { DataError } from '@matryoshka-ts/core';
import { type Hash, createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * A short content hash naming an ONNX model's exact weights, so caches keyed by it go stale when
 * the weights change, not when a file is renamed.
 *
 * The graph file is hashed whole. Models over 2 GB (FLAN-T5 XL's encoder) keep their weights
 * in external data files that the graph names (`location` entries of TensorProto.external_data);
 * those are hashed by size and 16 sampled 64 KiB blocks, since reading gigabytes at every load
 * would cost more than the session itself. Two different checkpoints of one architecture differ
 * in every sampled block, so the samples still tell them apart.
 */
export function onnxModelFingerprint(path: string): string {
  const hash = createHash('sha256');
  const locations = hashGraphFile(path, hash);
  for (const location of [...locations].sort()) {
    const dataPath = join(dirname(path), location);
    if (!existsSync(dataPath)) {
      throw new DataError(`${path} keeps weights in ${location}, which is missing (expected at ${dataPath})`);
    }
    hash.update(`\u0000${location}\u0000`);
    hashSampled(dataPath, hash);
  }
  return `${basename(path)}#${hash.digest('hex').slice(0, 12)}`;
}

const CHUNK = 16 << 20;
const OVERLAP = 4096;
// An external_data entry { key: "location", value: … }: field 1 (string, 8 bytes) then field 2.
const LOCATION_KEY = Buffer.from([0x0a, 0x08, ...Buffer.from('location'), 0x12]);

/** Hashes the whole file in chunks and returns the external data files it names. */
function hashGraphFile(path: string, hash: Hash): Set<string> {
  const locations = new Set<string>();
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(CHUNK + OVERLAP);
    let carried = 0; // bytes kept from the previous chunk, so a match across chunks is seen
    for (;;) {
      const read = readSync(fd, buffer, carried, CHUNK, null);
      if (read === 0) break;
      hash.update(buffer.subarray(carried, carried + read));
      const view = buffer.subarray(0, carried + read);
      for (let at = view.indexOf(LOCATION_KEY); at >= 0; at = view.indexOf(LOCATION_KEY, at + 1)) {
        const location = readLengthPrefixed(view, at + LOCATION_KEY.length);
        if (location) locations.add(location);
      }
      carried = Math.min(OVERLAP, view.length);
      view.copyWithin(0, view.length - carried);
    }
  } finally {
    closeSync(fd);
  }
  return locations;
}

/** A protobuf varint-length-prefixed string at `at`, or undefined if cut off by the buffer. */
function readLengthPrefixed(buffer: Buffer, at: number): string | undefined {
  let length = 0;
  for (let shift = 0; at < buffer.length && shift < 28; shift += 7) {
    const byte = buffer[at++];
    length |= (byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      return at + length <= buffer.length && length > 0 ? buffer.toString('utf8', at, at + length) : undefined;
    }
  }
  return undefined;
}

const SAMPLES = 16;
const SAMPLE = 64 << 10;

function hashSampled(path: string, hash: Hash): void {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    hash.update(`${size}\u0000`);
    const block = Buffer.alloc(SAMPLE);
    for (let i = 0; i < SAMPLES; i++) {
      const offset = size <= SAMPLE ? 0 : Math.floor((i * (size - SAMPLE)) / (SAMPLES - 1));
      hash.update(block.subarray(0, readSync(fd, block, 0, SAMPLE, offset)));
      if (size <= SAMPLE) break;
    }
  } finally {
    closeSync(fd);
  }
}
