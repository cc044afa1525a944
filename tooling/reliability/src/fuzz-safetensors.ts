// Fuzz family, safetensors: seed files and the public readers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, decodeSafetensors, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { type Rng, bytesOf } from './shared.js';
import type { Field, Reader, Seed } from './fuzz-types.js';

export function safetensorsSeeds(dir: string, rng: Rng): Seed[] {
  const values = (n: number) => Array.from({ length: n }, () => rng.uniform() * 4 - 2);
  const path = join(dir, 'seed.safetensors');
  writeSafetensors(
    path,
    {
      'block.0.weight': { dtype: 'F32', shape: [3, 4], data: values(12) },
      'block.0.bias': { dtype: 'F16', shape: [4], data: values(4) },
      'block.1.scale': { dtype: 'BF16', shape: [2, 3], data: values(6) },
      'embed.f64': { dtype: 'F64', shape: [3], data: values(3) },
      'index.i32': { dtype: 'I32', shape: [5], data: [0, 1, -2, 3, 70000] },
      'mask.u8': { dtype: 'U8', shape: [2, 2], data: [0, 1, 255, 7] },
      empty: { dtype: 'F32', shape: [0], data: [] },
    },
    { format: 'probe/1', note: 'fuzz seed' },
  );
  const bytes = new Uint8Array(readFileSync(path));
  const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const json = Buffer.from(bytes.subarray(8, headerEnd)).toString('latin1');
  const fields: Field[] = [{ at: 0, width: 8, kind: 'u64', what: 'header length (u64)' }];
  // Every number of every shape and data_offsets, edited in place with the same number of digits.
  for (const match of json.matchAll(/"(shape|data_offsets)":\[([\d,]*)\]/g)) {
    let at = 8 + match.index! + match[0].indexOf('[') + 1;
    for (const digits of match[2].split(',').filter(Boolean)) {
      fields.push({ at, width: digits.length, kind: 'digits', what: `${match[1]} number at ${at}` });
      at += digits.length + 1;
    }
  }
  return [{ name: 'seed.safetensors', bytes, fields, headerEnd }];
}

type SafetensorsContent = { metadata: Record<string, string>; tensors: Array<[string, string, string, Buffer]> };

function safetensorsContent(
  metadata: Record<string, string>,
  tensors: Iterable<[string, { dtype: string; shape: number[]; data: ArrayBufferView }]>,
): SafetensorsContent {
  const list = [...tensors].map(
    ([n, t]) => [n, t.dtype, t.shape.join('x'), bytesOf(t.data)] as [string, string, string, Buffer],
  );
  return { metadata, tensors: list.sort((a, b) => (a[0] < b[0] ? -1 : 1)) };
}

function diffSafetensors(a: unknown, b: unknown): string | undefined {
  const x = a as SafetensorsContent;
  const y = b as SafetensorsContent;
  for (const key of new Set([...Object.keys(x.metadata), ...Object.keys(y.metadata)])) {
    const [was, now] = [y.metadata[key], x.metadata[key]];
    if (was === now) continue;
    const show = (v: string) => JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    if (was === undefined) return `metadata key '${key}' added: ${show(now)}`;
    if (now === undefined) return `metadata key '${key}' missing`;
    return `metadata '${key}': ${show(was)} → ${show(now)}`;
  }
  if (x.tensors.length !== y.tensors.length) return `${x.tensors.length} tensors instead of ${y.tensors.length}`;
  for (let i = 0; i < x.tensors.length; i++) {
    const [name, dtype, shape, data] = x.tensors[i];
    const [name2, dtype2, shape2, data2] = y.tensors[i];
    if (name !== name2) return `tensor '${name}' instead of '${name2}'`;
    if (dtype !== dtype2 || shape !== shape2)
      return `tensor '${name}': ${dtype} [${shape}] instead of ${dtype2} [${shape2}]`;
    if (!data.equals(data2)) return `tensor '${name}': different values`;
  }
  return undefined;
}

export const SAFETENSORS: Reader[] = [
  {
    call: 'SafetensorsFile.open(path) + read() of every tensor',
    fromPath: true,
    read(path) {
      const file = SafetensorsFile.open(path);
      try {
        return safetensorsContent(
          file.metadata,
          file.names.map((n) => [n, file.read(n)]),
        );
      } finally {
        file.close();
      }
    },
    diff: diffSafetensors,
  },
  {
    call: 'decodeSafetensors(bytes)',
    fromPath: false,
    read(_path, bytes) {
      const { tensors, metadata } = decodeSafetensors(bytes);
      return safetensorsContent(metadata, tensors);
    },
    diff: diffSafetensors,
  },
];
