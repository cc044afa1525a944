import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from './index.js';
import { SafetensorsError, decodeSafetensors, encodeSafetensors } from './bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-bytes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tensors = {
  'conv.weight': { dtype: 'F32' as const, shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => i / 7) },
  'ünïcode.bias': { dtype: 'F16' as const, shape: [3], data: [0.5, -2, 65504] },
  step: { dtype: 'I64' as const, shape: [1], data: BigInt64Array.of(BigInt(7)) },
};
// Multi-byte characters: the header is padded by its length in bytes, not in characters.
const metadata = { note: 'ᾱ — a header with non-ASCII text' };

it('decodes a file from its bytes (a Node Buffer or an ArrayBuffer, as a page fetches it) as from disk', () => {
  const path = join(dir, 'a.safetensors');
  writeSafetensors(path, tensors, metadata);
  const fromDisk = readSafetensors(path);
  // A Buffer from readFileSync may view a larger pool: decoding must copy only its own bytes.
  const buffer = readFileSync(path);
  expect(decodeSafetensors(buffer, path)).toEqual(fromDisk);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  expect(decodeSafetensors(arrayBuffer)).toEqual(fromDisk);
  // In memory and on disk, the same bytes.
  expect(encodeSafetensors(tensors, metadata)).toEqual(new Uint8Array(buffer));
  expect((8 + Number(buffer.readBigUInt64LE(0))) % 8).toBe(0);
});

it('refuses changed bytes, naming the source', () => {
  const bytes = encodeSafetensors(tensors, metadata);
  bytes[bytes.length - 20] ^= 1;
  expect(() => decodeSafetensors(bytes.buffer)).toThrow(SafetensorsError);
  expect(() => decodeSafetensors(bytes.buffer, 'https://example.org/run/weights.safetensors')).toThrow(
    /^https:\/\/example\.org\/run\/weights\.safetensors: tensor '.*': checksum mismatch/,
  );
});
