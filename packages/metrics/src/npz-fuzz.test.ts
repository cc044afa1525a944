import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '@matryoshka-ts/core';
import { afterAll, expect, it } from 'vitest';
import { type NpyArray, encodeNpy } from './npy.js';
import { readNpz } from './npz.js';
import { seeded } from './test-helpers.js';
import { writeZip } from './zip.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-metrics-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const arrays = new Map<string, NpyArray>([
  ['mu', { dtype: 'float64', shape: [3], data: Float64Array.of(0.5, -1, 2.25) }],
  ['sigma', { dtype: 'float32', shape: [3, 3], data: Float32Array.of(2, 0.5, 0, 0.5, 1, 0, 0, 0, 3) }],
]);
const npys = [...arrays].map(([k, a]) => ({ name: `${k}.npy`, data: encodeNpy(a) }));
const bases = [writeZip(npys), writeZip(npys, { deflate: true })];

/** Offsets and widths of the length, offset, count and method fields of an archive our writer made. */
function zipFields(zip: Uint8Array): [number, 2 | 4][] {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const fields: [number, 2 | 4][] = [];
  const end = zip.byteLength - 22;
  fields.push([end + 8, 2], [end + 10, 2], [end + 12, 4], [end + 16, 4], [end + 20, 2]);
  let at = view.getUint32(end + 16, true);
  for (let e = 0; e < view.getUint16(end + 10, true); e++) {
    const local = view.getUint32(at + 42, true);
    fields.push([local + 8, 2], [local + 18, 4], [local + 22, 4], [local + 26, 2], [local + 28, 2]);
    fields.push([at + 8, 2], [at + 10, 2], [at + 16, 4], [at + 20, 4], [at + 24, 4]);
    fields.push([at + 28, 2], [at + 30, 2], [at + 32, 2], [at + 42, 4]);
    at += 46 + view.getUint16(at + 28, true);
  }
  return fields;
}

function mutate(rng: () => number, base: Uint8Array, deflate: boolean): [string, Uint8Array] {
  const int = (n: number) => Math.floor(rng() * n);
  const out = base.slice();
  switch (int(6)) {
    case 0:
      for (let k = 1 + int(4); k > 0; k--) out[int(out.length)] ^= 1 << int(8);
      return ['bit flips', out];
    case 1:
      for (let k = 1 + int(4); k > 0; k--) out[int(out.length)] = int(256);
      return ['byte overwrites', out];
    case 2:
      return ['truncation', out.subarray(0, int(out.length))];
    case 3: {
      const longer = new Uint8Array(out.length + 1 + int(100));
      longer.set(out);
      for (let i = out.length; i < longer.length; i++) longer[i] = int(256);
      return ['extension', longer];
    }
    case 4: {
      const fields = zipFields(base);
      const [at, width] = fields[int(fields.length)];
      const view = new DataView(out.buffer);
      const old = width === 2 ? view.getUint16(at, true) : view.getUint32(at, true);
      const max = width === 2 ? 0xffff : 0xffffffff;
      const value = [0, max, old + 1, old - 1, old + 64, int(max + 1)][int(6)] & max;
      if (width === 2) view.setUint16(at, value, true);
      else view.setUint32(at, value >>> 0, true);
      return ['zip field edits', out];
    }
    default: {
      // Edit the .npy header (magic, version, length, dict text) and re-zip, so the CRC-32 is
      // right and the header parser itself sees the damage.
      const m = int(npys.length);
      const npy = npys[m].data;
      const headerEnd = 10 + new DataView(npy.buffer).getUint16(8, true);
      let text = Array.from(npy.subarray(0, headerEnd), (b) => String.fromCharCode(b)).join('');
      const pos = int(headerEnd);
      const alphabet = '(){}[]\'",: -0123456789LTrueFalsNon<f48\n\x00\xff';
      const pick = () => alphabet[int(alphabet.length)];
      const op = int(5);
      if (op === 0) text = text.slice(0, pos) + pick() + text.slice(pos + 1);
      else if (op === 1) text = text.slice(0, pos) + pick() + text.slice(pos);
      else if (op === 2) text = text.slice(0, pos) + text.slice(pos + 1 + int(8));
      else if (op === 3) text = text.replace("'shape': (", `'shape': ${'(['[int(2)].repeat(1 + int(20000))}`);
      else text = text.slice(0, 6) + String.fromCharCode(int(4)) + text.slice(7);
      const header = Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
      const edited = new Uint8Array(header.length + npy.length - headerEnd);
      edited.set(header);
      edited.set(npy.subarray(headerEnd), header.length);
      const members = npys.map((x, i) => (i === m ? { name: x.name, data: edited } : x));
      return ['npy header edits', writeZip(members, { deflate })];
    }
  }
}

function sameArrays(got: Map<string, NpyArray>): void {
  expect([...got.keys()]).toEqual([...arrays.keys()]);
  for (const [key, want] of arrays) {
    const g = got.get(key) as NpyArray;
    expect([g.dtype, g.shape], key).toEqual([want.dtype, want.shape]);
    expect(Array.from(g.data), key).toEqual(Array.from(want.data));
  }
}

// FUZZ_SEED and FUZZ_N run other and longer fuzzes (12 000 files over four seeds passed when written).
it('400 seeded mutations of an .npz: each reads back the original arrays or throws a one-line DataError', () => {
  const rng = seeded(Number(process.env.FUZZ_SEED ?? 19));
  const counts = new Map<string, { read: number; refused: number }>();
  const messages = new Set<string>();
  for (let i = 0; i < Number(process.env.FUZZ_N ?? 400); i++) {
    const deflate = i % 2 === 1;
    const [kind, bytes] = mutate(rng, bases[i % 2], deflate);
    const path = join(dir, `f${i}.npz`);
    writeFileSync(path, bytes);
    const count = counts.get(kind) ?? { read: 0, refused: 0 };
    counts.set(kind, count);
    let got: Map<string, NpyArray>;
    try {
      got = readNpz(path);
    } catch (error) {
      const what = `#${i} (${kind}, ${deflate ? 'deflated' : 'stored'}): ${(error as Error)?.stack}`;
      expect(error, what).toBeInstanceOf(DataError);
      const message = (error as Error).message;
      expect(message.startsWith(`${path}: `), what).toBe(true);
      expect(message, what).not.toMatch(/\n/);
      expect(message.length, what).toBeLessThan(400);
      messages.add(message.slice(path.length + 2).replace(/\d+/g, 'N'));
      count.refused++;
      continue;
    }
    sameArrays(got);
    count.read++;
  }
  const summary = [...counts].map(([k, c]) => `${k}: ${c.read} read intact, ${c.refused} refused`).join('; ');
  console.log(`npz fuzz: ${summary}; ${messages.size} distinct messages`);
});
