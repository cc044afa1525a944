// Fuzz family, npz: seed files, the public readers and a zip bomb.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { crc32, decodeNpz, encodeNpy, readFidStats, readNpz, writeFidStats, writeZip } from '@matryoshka-ts/metrics';
import { type Rng, bytesOf } from './shared.js';
import type { Field, Mutated, Reader, Seed } from './fuzz-types.js';

export function npzSeeds(dir: string, rng: Rng): Seed[] {
  const d = 4;
  const mu = Array.from({ length: d }, () => rng.uniform());
  // A valid covariance: symmetric, diagonally dominant.
  const off = Array.from({ length: d * d }, () => 0.1 * rng.uniform());
  const sigma = Array.from({ length: d * d }, (_, k) => {
    const [i, j] = [Math.floor(k / d), k % d];
    return i === j ? 1 : off[Math.min(i, j) * d + Math.max(i, j)];
  });
  const path = join(dir, 'seed-stored.npz');
  writeFidStats(path, { mu, sigma });
  const stored = new Uint8Array(readFileSync(path));
  // As np.savez_compressed writes it: the same arrays, deflated.
  const deflated = writeZip(
    [
      { name: 'mu.npy', data: encodeNpy({ dtype: 'float64', shape: [d], data: mu }) },
      { name: 'sigma.npy', data: encodeNpy({ dtype: 'float64', shape: [d, d], data: sigma }) },
    ],
    { deflate: true },
  );
  return [
    { name: 'stored.npz', bytes: stored, fields: zipFields(stored, true) },
    { name: 'deflated.npz', bytes: deflated, fields: zipFields(deflated, false) },
  ];
}

/** The length and offset fields of a zip written by writeZip (no comments, no ZIP64). */
export function zipFields(bytes: Uint8Array, npyHeaders: boolean): Field[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 22;
  const fields: Field[] = [
    { at: end + 10, width: 2, kind: 'u16', what: 'end record: entries' },
    { at: end + 12, width: 4, kind: 'u32', what: 'end record: central directory size' },
    { at: end + 16, width: 4, kind: 'u32', what: 'end record: central directory offset' },
  ];
  let at = view.getUint32(end + 16, true);
  while (view.getUint32(at, true) === 0x02014b50) {
    const name = Buffer.from(bytes.subarray(at + 46, at + 46 + view.getUint16(at + 28, true))).toString();
    const local = view.getUint32(at + 42, true);
    const entry = (off: number, kind: 'u16' | 'u32', what: string) =>
      fields.push({ at: off, width: kind === 'u16' ? 2 : 4, kind, what: `${name}: ${what}` });
    entry(at + 20, 'u32', 'central compressed size');
    entry(at + 24, 'u32', 'central size');
    entry(at + 28, 'u16', 'central name length');
    entry(at + 30, 'u16', 'central extra length');
    entry(at + 42, 'u32', 'local header offset');
    entry(local + 18, 'u32', 'local compressed size');
    entry(local + 26, 'u16', 'local name length');
    entry(local + 28, 'u16', 'local extra length');
    const data = local + 30 + view.getUint16(local + 26, true);
    if (npyHeaders) entry(data + 8, 'u16', '.npy header length');
    at += 46 + view.getUint16(at + 28, true);
  }
  return fields;
}

/**
 * A zip bomb: mu.npy deflated from 512 MiB of zeros (about 0.5 MB in the file), its headers
 * claiming 128 bytes. A reader must refuse it without inflating it all.
 */
export async function npzBomb(): Promise<Mutated> {
  const deflate = zlib.createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const zero = Buffer.alloc(1 << 20);
  for (let i = 0; i < 512; i++) if (!deflate.write(zero)) await new Promise((r) => deflate.once('drain', r));
  await new Promise((r) => deflate.end(r));
  const raw = new Uint8Array(Buffer.concat(chunks));
  // writeZip stores; rewrite its one member's method and sizes around the deflated stream.
  const zip = writeZip([{ name: 'mu.npy', data: raw }]);
  const view = new DataView(zip.buffer);
  const cd = view.getUint32(zip.length - 22 + 16, true);
  for (const [method, sizes] of [
    [8, 18],
    [cd + 10, cd + 20],
  ]) {
    view.setUint16(method, 8, true);
    view.setUint32(sizes + 4, 128, true); // uncompressed size: a lie
    view.setUint32(sizes - 4, crc32(new Uint8Array(128)), true);
  }
  return { bytes: zip, text: 'zip bomb: mu.npy inflates to 512 MiB, headers say 128 bytes' };
}

type NpzContent = Array<[string, string, string, Buffer]>;

function npzContent(arrays: Map<string, { dtype: string; shape: number[]; data: ArrayBufferView }>): NpzContent {
  return [...arrays].map(([k, a]) => [k, a.dtype, a.shape.join('x'), bytesOf(a.data)]);
}

function diffNpz(a: unknown, b: unknown): string | undefined {
  const x = a as NpzContent;
  const y = b as NpzContent;
  if (x.map((e) => e[0]).join() !== y.map((e) => e[0]).join()) return `keys ${x.map((e) => `'${e[0]}'`).join(', ')}`;
  for (let i = 0; i < x.length; i++) {
    if (x[i][1] !== y[i][1] || x[i][2] !== y[i][2]) return `array '${x[i][0]}': ${x[i][1]} (${x[i][2]})`;
    if (!x[i][3].equals(y[i][3])) return `array '${x[i][0]}': different values`;
  }
  return undefined;
}

export const NPZ: Reader[] = [
  { call: 'readNpz(path)', fromPath: true, read: (path) => npzContent(readNpz(path)), diff: diffNpz },
  {
    call: 'readFidStats(path)',
    fromPath: true,
    read(path) {
      const s = readFidStats(path);
      return npzContent(
        new Map([
          ['mu', { dtype: 'float64', shape: [s.dim], data: s.mu }],
          ['sigma', { dtype: 'float64', shape: [s.dim, s.dim], data: s.sigma }],
        ]),
      );
    },
    diff: diffNpz,
  },
  { call: 'decodeNpz(bytes)', fromPath: false, read: (_path, bytes) => npzContent(decodeNpz(bytes)), diff: diffNpz },
];
