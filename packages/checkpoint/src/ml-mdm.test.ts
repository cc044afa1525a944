import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, type ParamSpec, isUserError } from '@matryoshka-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TensorEntry } from './dtypes.js';
import {
  CheckpointMismatchError,
  type TensorSource,
  exportMlMdmStateDict,
  fromTorchLayout,
  importMlMdmStateDict,
  mapSource,
  toTorchLayout,
  torchShape,
} from './ml-mdm.js';
import { SafetensorsFile, readSafetensors, writeSafetensors } from './safetensors.js';

const init = { kind: 'zeros' } as const;
const spec = (name: string, shape: number[], layout: ParamSpec['layout']): ParamSpec => ({ name, shape, layout, init });
const size = (shape: number[]) => shape.reduce((a, d) => a * d, 1);

/** Value that encodes a PyTorch index, so every element's destination can be checked. */
const convCode = (o: number, i: number, h: number, w: number) => o * 1000 + i * 100 + h * 10 + w;
const linCode = (o: number, i: number) => o * 100 + i;

/** A PyTorch OIHW array filled with convCode (built with explicit strides, not the package's formula). */
function torchConv(co: number, ci: number, kh: number, kw: number): Float32Array {
  const out = new Float32Array(co * ci * kh * kw);
  const [sO, sI, sH] = [ci * kh * kw, kh * kw, kw];
  for (let o = 0; o < co; o++)
    for (let i = 0; i < ci; i++)
      for (let h = 0; h < kh; h++)
        for (let w = 0; w < kw; w++) out[o * sO + i * sI + h * sH + w] = convCode(o, i, h, w);
  return out;
}
function torchLinear(out: number, inp: number): Float32Array {
  const a = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) a[o * inp + i] = linCode(o, i);
  return a;
}

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

// A small model with every layout: conv (kh=2, kw=3, ci=2, co=4), linear (in=3, out=5), vector, table.
const specs: ParamSpec[] = [
  spec('conv.weight', [2, 3, 2, 4], 'conv2d'),
  spec('conv.bias', [4], 'vector'),
  spec('proj.weight', [3, 5], 'linear'),
  spec('proj.bias', [5], 'vector'),
  spec('embed.weight', [6, 3], 'table'),
  spec('norm.weight', [4], 'vector'),
];

/** A state dict in PyTorch layout for `specs` (optionally prefixed), with seeded values. */
function stateDict(list: ParamSpec[], prefix = '', seed = 1): Map<string, TensorEntry> {
  const m = new Map<string, TensorEntry>();
  list.forEach((s, k) => {
    const shape = torchShape(s);
    m.set(prefix + s.name, { dtype: 'F32', shape, data: seeded(size(shape), seed * 100 + k) });
  });
  return m;
}

function expectBitEqual(actual: Float32Array, expected: Float32Array, label: string) {
  expect(actual.length, label).toBe(expected.length);
  // No tolerance: layout conversion only moves float32 values, it never computes with them.
  expect(
    Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(
      Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
    ),
    label,
  ).toBe(true);
}

function catchMismatch(f: () => unknown): CheckpointMismatchError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointMismatchError);
    return error as CheckpointMismatchError;
  }
  throw new Error('expected a CheckpointMismatchError, nothing was thrown');
}

describe('torchShape', () => {
  it('maps HWIO → OIHW, [in, out] → [out, in], and keeps vectors and tables', () => {
    expect(torchShape({ shape: [2, 3, 5, 7], layout: 'conv2d' })).toEqual([7, 5, 2, 3]);
    expect(torchShape({ shape: [3, 5], layout: 'linear' })).toEqual([5, 3]);
    expect(torchShape({ shape: [9], layout: 'vector' })).toEqual([9]);
    expect(torchShape({ shape: [10, 4], layout: 'table' })).toEqual([10, 4]);
  });

  it('returns a new array for vectors and tables (mutating it cannot change the spec)', () => {
    const s = { shape: [3], layout: 'vector' as const };
    const t = torchShape(s);
    t[0] = 99;
    expect(s.shape).toEqual([3]);
  });
});

describe('fromTorchLayout / toTorchLayout', () => {
  it('moves every conv element from OIHW[o,i,h,w] to HWIO[h,w,i,o]', () => {
    const [kh, kw, ci, co] = [2, 3, 2, 4];
    const ours = fromTorchLayout({ shape: [kh, kw, ci, co], layout: 'conv2d' }, torchConv(co, ci, kh, kw));
    // HWIO strides, written out independently.
    const [sH, sW, sI] = [kw * ci * co, ci * co, co];
    let checked = 0;
    for (let h = 0; h < kh; h++)
      for (let w = 0; w < kw; w++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++) {
            expect(ours[h * sH + w * sW + i * sI + o], `HWIO[${h},${w},${i},${o}]`).toBe(convCode(o, i, h, w));
            checked++;
          }
    expect(checked).toBe(48);
  });

  it('handles a 1×1 conv and a non-square kernel with distinct dimensions', () => {
    const one = fromTorchLayout({ shape: [1, 1, 3, 2], layout: 'conv2d' }, torchConv(2, 3, 1, 1));
    // 1×1 conv: HWIO [1,1,ci,co] is the transpose of OI.
    expect([...one]).toEqual([
      convCode(0, 0, 0, 0),
      convCode(1, 0, 0, 0),
      convCode(0, 1, 0, 0),
      convCode(1, 1, 0, 0),
      convCode(0, 2, 0, 0),
      convCode(1, 2, 0, 0),
    ]);
    const tall = fromTorchLayout({ shape: [3, 1, 1, 1], layout: 'conv2d' }, torchConv(1, 1, 3, 1));
    expect([...tall]).toEqual([convCode(0, 0, 0, 0), convCode(0, 0, 1, 0), convCode(0, 0, 2, 0)]);
  });

  it('transposes a linear weight from [out, in] to [in, out]', () => {
    const ours = fromTorchLayout({ shape: [3, 5], layout: 'linear' }, torchLinear(5, 3));
    for (let i = 0; i < 3; i++) for (let o = 0; o < 5; o++) expect(ours[i * 5 + o], `[${i},${o}]`).toBe(linCode(o, i));
    // A literal 2×3 example: torch [[1,2,3],[4,5,6]] (out=2, in=3) → ours [[1,4],[2,5],[3,6]].
    expect([...fromTorchLayout({ shape: [3, 2], layout: 'linear' }, new Float32Array([1, 2, 3, 4, 5, 6]))]).toEqual([
      1, 4, 2, 5, 3, 6,
    ]);
  });

  it('copies vectors and tables unchanged, into a new array', () => {
    for (const layout of ['vector', 'table'] as const) {
      const data = new Float32Array([1, 2, 3, 4, 5, 6]);
      const out = fromTorchLayout({ shape: layout === 'vector' ? [6] : [2, 3], layout }, data);
      expect([...out]).toEqual([1, 2, 3, 4, 5, 6]);
      expect(out).not.toBe(data);
      const back = toTorchLayout({ shape: layout === 'vector' ? [6] : [2, 3], layout }, data);
      expect([...back]).toEqual([1, 2, 3, 4, 5, 6]);
      expect(back).not.toBe(data);
    }
  });

  it('toTorchLayout inverts fromTorchLayout for every layout (both directions)', () => {
    const more = [spec('big.conv', [3, 3, 5, 7], 'conv2d'), spec('big.lin', [11, 13], 'linear')];
    for (const s of [...specs, ...more, spec('time.conv', [3, 4, 5], 'conv1d')]) {
      const n = size(s.shape);
      const torch = seeded(n, 7);
      expectBitEqual(toTorchLayout(s, fromTorchLayout(s, torch)), torch, `${s.name} torch→ours→torch`);
      const ours = seeded(n, 8);
      expectBitEqual(fromTorchLayout(s, toTorchLayout(s, ours)), ours, `${s.name} ours→torch→ours`);
    }
  });

  it('a Conv1d weight: ours [K, in, out][k,i,o] is PyTorch [out, in, K][o,i,k]', () => {
    const [k, ci, co] = [3, 2, 4];
    const s = spec('resample.weight', [k, ci, co], 'conv1d');
    expect(torchShape(s)).toEqual([co, ci, k]);
    const ours = Float32Array.from({ length: k * ci * co }, (_, n) => n);
    const torch = toTorchLayout(s, ours);
    for (let t = 0; t < k; t++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) expect(torch[(o * ci + i) * k + t]).toBe(ours[(t * ci + i) * co + o]);
  });

  it('toTorchLayout puts HWIO[h,w,i,o] at OIHW[o,i,h,w]', () => {
    const [kh, kw, ci, co] = [2, 3, 2, 4];
    const ours = new Float32Array(kh * kw * ci * co);
    for (let h = 0; h < kh; h++)
      for (let w = 0; w < kw; w++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++) ours[((h * kw + w) * ci + i) * co + o] = convCode(o, i, h, w);
    expectBitEqual(
      toTorchLayout({ shape: [kh, kw, ci, co], layout: 'conv2d' }, ours),
      torchConv(co, ci, kh, kw),
      'conv',
    );
  });
});

describe('importMlMdmStateDict', () => {
  it('imports every parameter under our names in our layouts', () => {
    const sd = stateDict(specs);
    const values = importMlMdmStateDict(specs, mapSource(sd));
    expect([...values.keys()].sort()).toEqual(specs.map((s) => s.name).sort());
    for (const s of specs) {
      const v = values.get(s.name)!;
      expect(v).toBeInstanceOf(Float32Array);
      expect(v.length).toBe(size(s.shape));
      expectBitEqual(v, fromTorchLayout(s, sd.get(s.name)!.data as Float32Array), s.name);
    }
    // Spot-check one conv element against the index mapping written out by hand: ours[h=1,w=2,i=1,o=3]
    // must be torch[o=3,i=1,h=1,w=2].
    const torchConvData = sd.get('conv.weight')!.data as Float32Array;
    expect(values.get('conv.weight')![((1 * 3 + 2) * 2 + 1) * 4 + 3]).toBe(
      torchConvData[((3 * 2 + 1) * 2 + 1) * 3 + 2],
    );
  });

  it('export ∘ import is the identity on the state dict, and import ∘ export on our values', () => {
    const sd = stateDict(specs);
    const exported = exportMlMdmStateDict(specs, importMlMdmStateDict(specs, mapSource(sd)));
    expect([...exported.keys()].sort()).toEqual([...sd.keys()].sort());
    for (const [name, entry] of sd) {
      const back = exported.get(name)!;
      expect(back.dtype).toBe('F32');
      expect(back.shape).toEqual(entry.shape);
      expectBitEqual(back.data as Float32Array, entry.data as Float32Array, name);
    }
    const ours = new Map(specs.map((s, k) => [s.name, seeded(size(s.shape), 50 + k)]));
    const again = importMlMdmStateDict(specs, mapSource(exportMlMdmStateDict(specs, ours)));
    for (const [name, v] of ours) expectBitEqual(again.get(name)!, v, name);
  });

  it('round-trips through a safetensors file (SafetensorsFile is a TensorSource)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdm-ckpt-mlmdm-'));
    try {
      const path = join(dir, 'model.safetensors');
      const ours = new Map(specs.map((s, k) => [s.name, seeded(size(s.shape), 90 + k)]));
      writeSafetensors(path, exportMlMdmStateDict(specs, ours), { format: 'pt' });
      // The file holds PyTorch shapes.
      expect(readSafetensors(path).tensors.get('conv.weight')!.shape).toEqual([4, 2, 2, 3]);
      const file = SafetensorsFile.open(path);
      try {
        const values = importMlMdmStateDict(specs, file);
        for (const [name, v] of ours) expectBitEqual(values.get(name)!, v, name);
      } finally {
        file.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('converts non-float32 sources (F64, F16, I64) to float32', () => {
    const list = [spec('a', [2], 'vector'), spec('b', [2], 'vector'), spec('c', [2, 1], 'linear')];
    const src = new Map<string, TensorEntry>([
      ['a', { dtype: 'F64', shape: [2], data: new Float64Array([0.1, -2]) }],
      ['b', { dtype: 'F16', shape: [2], data: new Float32Array([0.5, 65504]) }],
      ['c', { dtype: 'I64', shape: [1, 2], data: new BigInt64Array([3n, -4n]) }],
    ]);
    const values = importMlMdmStateDict(list, mapSource(src));
    expect([...values.get('a')!]).toEqual([Math.fround(0.1), -2]);
    expect([...values.get('b')!]).toEqual([0.5, 65504]);
    expect([...values.get('c')!]).toEqual([3, -4]);
  });

  it('lists missing keys, unexpected keys and shape mismatches together in one error', () => {
    const sd = stateDict(specs);
    sd.delete('proj.bias'); // missing
    sd.delete('norm.weight'); // missing
    sd.set('extra.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) }); // unexpected
    // Wrong shape: our HWIO shape given as-is instead of OIHW.
    sd.set('conv.weight', { dtype: 'F32', shape: [2, 3, 2, 4], data: new Float32Array(48) });
    const err = catchMismatch(() => importMlMdmStateDict(specs, mapSource(sd)));
    expect(err.name).toBe('CheckpointMismatchError');
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.code).toBe('CHECKPOINT_INVALID');
    expect(isUserError(err)).toBe(true);
    expect(err.missing.sort()).toEqual(['norm.weight', 'proj.bias']);
    expect(err.unexpected).toEqual(['extra.weight']);
    expect(err.wrongShape).toEqual(['conv.weight [2,3,2,4] (model expects [4,2,2,3])']);
    expect(err.message).toMatch(/missing keys \(2\): .*proj\.bias/);
    expect(err.message).toMatch(/missing keys \(2\): .*norm\.weight/);
    expect(err.message).toMatch(/unexpected keys \(1\): extra\.weight/);
    expect(err.message).toMatch(/shape mismatches \(1\): conv\.weight \[2,3,2,4\] \(model expects \[4,2,2,3\]\)/);
  });

  it('reports a linear weight stored untransposed and a scalar-vs-vector mix-up as shape mismatches', () => {
    const list = [spec('lin', [3, 5], 'linear'), spec('scale', [1], 'vector')];
    const src = new Map<string, TensorEntry>([
      ['lin', { dtype: 'F32', shape: [3, 5], data: new Float32Array(15) }],
      ['scale', { dtype: 'F32', shape: [], data: new Float32Array(1) }],
    ]);
    const err = catchMismatch(() => importMlMdmStateDict(list, mapSource(src)));
    expect(err.missing).toEqual([]);
    expect(err.unexpected).toEqual([]);
    expect(err.wrongShape.map((w) => w.split(' ')[0]).sort()).toEqual(['lin', 'scale']);
  });

  it('abbreviates long key lists in the message but keeps them all on the error', () => {
    const many = Array.from({ length: 60 }, (_, k) => spec(`p${k}`, [1], 'vector'));
    const err = catchMismatch(() => importMlMdmStateDict(many, mapSource(new Map())));
    expect(err.missing).toHaveLength(60);
    expect(err.message).toMatch(/missing keys \(60\)/);
    expect(err.message).toContain('p49');
    expect(err.message).not.toContain('p50,');
    expect(err.message).toContain('…');
  });

  it('allowMissing keeps going without the absent keys; allowUnexpected ignores extra keys', () => {
    const sd = stateDict(specs);
    sd.delete('proj.bias');
    sd.set('extra', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    expect(() => importMlMdmStateDict(specs, mapSource(sd), { allowMissing: true })).toThrow(
      /unexpected keys \(1\): extra/,
    );
    expect(() => importMlMdmStateDict(specs, mapSource(sd), { allowUnexpected: true })).toThrow(
      /missing keys \(1\): proj\.bias/,
    );
    const values = importMlMdmStateDict(specs, mapSource(sd), { allowMissing: true, allowUnexpected: true });
    expect([...values.keys()].sort()).toEqual(
      specs
        .map((s) => s.name)
        .filter((n) => n !== 'proj.bias')
        .sort(),
    );
    expect(values.has('extra')).toBe(false);
  });

  it('still reports shape mismatches when missing and unexpected keys are allowed', () => {
    const sd = stateDict(specs);
    sd.set('proj.weight', { dtype: 'F32', shape: [3, 5], data: new Float32Array(15) });
    const err = catchMismatch(() =>
      importMlMdmStateDict(specs, mapSource(sd), { allowMissing: true, allowUnexpected: true }),
    );
    expect(err.wrongShape).toEqual(['proj.weight [3,5] (model expects [5,3])']);
    expect(err.missing).toEqual([]);
    expect(err.unexpected).toEqual([]);
  });

  it('targetPrefix loads a standalone model into the inner_unet.-prefixed part of a nested model', () => {
    const inner = specs.map((s) => ({ ...s, name: `inner_unet.${s.name}` }));
    const outer = [spec('conv.weight', [1, 1, 3, 2], 'conv2d'), spec('out.bias', [3], 'vector')];
    const nested = [...outer, ...inner];
    const standalone = stateDict(specs, '', 3);
    const values = importMlMdmStateDict(nested, mapSource(standalone), { targetPrefix: 'inner_unet.' });
    // Only the inner keys are produced, and the outer model's own 'conv.weight' (different shape)
    // is neither filled nor reported as missing.
    expect([...values.keys()].sort()).toEqual(inner.map((s) => s.name).sort());
    for (const s of specs)
      expectBitEqual(
        values.get(`inner_unet.${s.name}`)!,
        fromTorchLayout(s, standalone.get(s.name)!.data as Float32Array),
        s.name,
      );

    // A standalone source missing one inner key and carrying an extra one: errors name source keys.
    standalone.delete('proj.bias');
    standalone.set('stray', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const err = catchMismatch(() =>
      importMlMdmStateDict(nested, mapSource(standalone), { targetPrefix: 'inner_unet.' }),
    );
    expect(err.missing).toEqual(['proj.bias']);
    expect(err.unexpected).toEqual(['stray']);
  });

  it('sourcePrefix takes the inner model out of a nested checkpoint and ignores keys outside the prefix', () => {
    const nestedSd = new Map([...stateDict(specs, '', 5), ...stateDict(specs, 'inner_unet.', 6)]);
    // The outer level has the same names but different values; also add an outer-only key.
    nestedSd.set('outer_only', { dtype: 'F32', shape: [2], data: new Float32Array(2) });
    const values = importMlMdmStateDict(specs, mapSource(nestedSd), { sourcePrefix: 'inner_unet.' });
    for (const s of specs) {
      expectBitEqual(
        values.get(s.name)!,
        fromTorchLayout(s, nestedSd.get(`inner_unet.${s.name}`)!.data as Float32Array),
        `inner ${s.name}`,
      );
    }
    // Without the prefix the same source is the outer model plus unexpected inner_unet.* keys.
    const err = catchMismatch(() => importMlMdmStateDict(specs, mapSource(nestedSd)));
    expect(err.unexpected).toContain('inner_unet.conv.weight');
    expect(err.unexpected).toContain('outer_only');
    expect(err.missing).toEqual([]);

    // Missing and unexpected keys under the prefix are reported with the prefix.
    nestedSd.delete('inner_unet.norm.weight');
    nestedSd.set('inner_unet.bogus', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    nestedSd.set('inner_unet.proj.bias', { dtype: 'F32', shape: [6], data: new Float32Array(6) });
    const err2 = catchMismatch(() => importMlMdmStateDict(specs, mapSource(nestedSd), { sourcePrefix: 'inner_unet.' }));
    expect(err2.missing).toEqual(['inner_unet.norm.weight']);
    expect(err2.unexpected).toEqual(['inner_unet.bogus']);
    expect(err2.wrongShape).toEqual(['inner_unet.proj.bias [6] (model expects [5])']);
    expect(err2.message).toContain('inner_unet.norm.weight');
  });

  it('sourcePrefix and targetPrefix together move one nested level into another', () => {
    // Source: a 3-level checkpoint; take its middle level into the inner level of a 2-level model.
    const src = new Map([...stateDict(specs, 'inner_unet.', 7), ...stateDict(specs, 'inner_unet.inner_unet.', 8)]);
    const model = [...specs.map((s) => ({ ...s, name: `x.${s.name}` })), spec('top', [1], 'vector')];
    const values = importMlMdmStateDict(model, mapSource(src), {
      sourcePrefix: 'inner_unet.',
      targetPrefix: 'x.',
      allowUnexpected: true,
    });
    expect([...values.keys()].sort()).toEqual(specs.map((s) => `x.${s.name}`).sort());
    for (const s of specs)
      expectBitEqual(
        values.get(`x.${s.name}`)!,
        fromTorchLayout(s, src.get(`inner_unet.${s.name}`)!.data as Float32Array),
        s.name,
      );
  });

  it('reads only the tensors the model needs', () => {
    const sd = stateDict(specs);
    sd.set('huge.unused', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const read: string[] = [];
    const source: TensorSource = {
      names: new Set(sd.keys()), // any iterable works, not only arrays
      read: (name) => {
        read.push(name);
        if (!specs.some((s) => s.name === name)) throw new Error(`read an unneeded tensor '${name}'`);
        return sd.get(name)!;
      },
    };
    importMlMdmStateDict(specs, source, { allowUnexpected: true });
    expect(read.sort()).toEqual(specs.map((s) => s.name).sort());
  });
});

describe('exportMlMdmStateDict', () => {
  it('writes PyTorch shapes and layouts as float32', () => {
    const ours = new Map<string, Float32Array>([
      ['proj.weight', Float32Array.from({ length: 15 }, (_, k) => k)], // [in=3, out=5]
      ['conv.weight', new Float32Array(48)],
      ['conv.bias', new Float32Array(4)],
      ['proj.bias', new Float32Array(5)],
      ['embed.weight', new Float32Array(18)],
      ['norm.weight', new Float32Array([1, 2, 3, 4])],
    ]);
    const sd = exportMlMdmStateDict(specs, ours);
    const lin = sd.get('proj.weight')!;
    expect(lin.shape).toEqual([5, 3]);
    expect(lin.dtype).toBe('F32');
    // ours[i][o] = i*5 + o → torch[o][i]
    for (let o = 0; o < 5; o++) for (let i = 0; i < 3; i++) expect(lin.data[o * 3 + i]).toBe(i * 5 + o);
    expect(sd.get('conv.weight')!.shape).toEqual([4, 2, 2, 3]);
    expect([...sd.get('norm.weight')!.data]).toEqual([1, 2, 3, 4]);
  });

  it('lists every parameter without a value in a CheckpointMismatchError', () => {
    const err = catchMismatch(() => exportMlMdmStateDict(specs, new Map([['conv.bias', new Float32Array(4)]])));
    expect(err.missing.sort()).toEqual(
      specs
        .map((s) => s.name)
        .filter((n) => n !== 'conv.bias')
        .sort(),
    );
    expect(err.unexpected).toEqual([]);
    expect(err.message).toMatch(/missing keys \(5\)/);
  });
});

describe('mapSource', () => {
  let tensors: Map<string, TensorEntry>;
  beforeAll(() => {
    tensors = stateDict(specs);
  });
  afterAll(() => tensors.clear());
  it('exposes the names and entries of a map', () => {
    const source = mapSource(tensors);
    expect([...source.names]).toEqual([...tensors.keys()]);
    expect(source.read('conv.bias')).toBe(tensors.get('conv.bias'));
  });
});
