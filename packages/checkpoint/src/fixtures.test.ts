import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParamSpec } from '@matryoshka-ts/core';
import { underCi } from '@matryoshka-ts/test-utils';
import { describe, expect, it } from 'vitest';
import { DTYPE_BYTES } from './dtypes.js';
import { exportMlMdmStateDict, importMlMdmStateDict } from './ml-mdm.js';
import { SafetensorsFile, decodeSafetensors, readSafetensors } from './safetensors.js';

// <repo root> is three levels above packages/checkpoint/src; the shared fixtures sit beside it.
const here = dirname(fileURLToPath(import.meta.url));
const fixturesRoot = resolve(here, '..', '..', '..', '..', 'shared', 'fixtures', 'ml-mdm');
const nestedDir = join(fixturesRoot, 'nested-tiny');
const unetDir = join(fixturesRoot, 'unet-tiny');
const haveNested = existsSync(join(nestedDir, 'weights.safetensors')) && existsSync(join(nestedDir, 'io.safetensors'));
const haveUnet = existsSync(join(unetDir, 'weights.safetensors'));
const absent = (dir: string) => `ml-mdm fixture folder ${dir} not found; skipping the fixture checks`;

/** Skips (with the reason printed) when a fixture is absent, except under CI, where it fails. */
function requireFixture(ctx: { skip: (condition: boolean, note?: string) => void }, present: boolean, dir: string) {
  if (present) return;
  if (underCi()) throw new Error(`${absent(dir)}; CI needs the ml-mdm fixtures (../shared/fixtures/ml-mdm)`);
  console.warn(absent(dir));
  ctx.skip(true, absent(dir));
}

function withFile<T>(path: string, f: (file: SafetensorsFile) => T): T {
  const file = SafetensorsFile.open(path);
  try {
    return f(file);
  } finally {
    file.close();
  }
}

/** ParamSpecs in our layout from a file's PyTorch shapes: 4-D → conv2d, 2-D *.weight → linear. */
function specsFromFile(file: SafetensorsFile, strip = ''): ParamSpec[] {
  return file.names.map((name) => {
    const s = file.info(name).shape;
    const init = { kind: 'zeros' } as const;
    const ours = name.slice(strip.length);
    if (s.length === 4) return { name: ours, shape: [s[2], s[3], s[1], s[0]], layout: 'conv2d', init };
    if (s.length === 2 && name.endsWith('.weight')) return { name: ours, shape: [s[1], s[0]], layout: 'linear', init };
    return { name: ours, shape: [...s], layout: 'vector', init };
  });
}

describe('shared ml-mdm fixtures (nested-tiny)', () => {
  it('weights.safetensors: 267 float32 tensors, 396,982 parameters, aligned, with metadata', (ctx) => {
    requireFixture(ctx, haveNested, nestedDir);
    withFile(join(nestedDir, 'weights.safetensors'), (file) => {
      expect(file.names).toHaveLength(267);
      const dtypes = new Set(file.names.map((n) => file.info(n).dtype));
      expect([...dtypes]).toEqual(['F32']);
      const total = file.names.reduce((a, n) => a + file.info(n).shape.reduce((x, d) => x * d, 1), 0);
      expect(total).toBe(396_982); // README: nested-tiny has 396,982 parameters
      expect(file.metadata.fixture).toBe('nested-tiny');
      expect(file.header.dataStart % 8).toBe(0);
      for (const n of file.names) expect(file.info(n).begin % DTYPE_BYTES[file.info(n).dtype], n).toBe(0);
      expect(file.names.some((n) => n.startsWith('inner_unet.'))).toBe(true);
      const first = file.read(file.names[0]);
      expect(first.data).toBeInstanceOf(Float32Array);
      expect([...first.data].every(Number.isFinite)).toBe(true);
    });
  });

  it('io.safetensors: times is I64 [2], objective is an F64 scalar', (ctx) => {
    requireFixture(ctx, haveNested, nestedDir);
    withFile(join(nestedDir, 'io.safetensors'), (file) => {
      expect(file.info('times').dtype).toBe('I64');
      expect(file.info('times').shape).toEqual([2]);
      const times = file.read('times').data;
      expect(times).toBeInstanceOf(BigInt64Array);
      expect(times).toHaveLength(2);
      // Time indices of a 1000-step schedule (README: 0-based step index).
      for (const t of times as BigInt64Array) expect(t >= 0n && t <= 1000n).toBe(true);

      expect(file.info('objective').dtype).toBe('F64');
      expect(file.info('objective').shape).toEqual([]);
      const objective = file.read('objective').data;
      expect(objective).toBeInstanceOf(Float64Array);
      expect(objective).toHaveLength(1);
      expect(Number.isFinite(objective[0])).toBe(true);
    });
  });

  it('readSafetensors and decodeSafetensors of the same bytes agree on every tensor', (ctx) => {
    requireFixture(ctx, haveNested, nestedDir);
    const path = join(nestedDir, 'io.safetensors');
    const viaFile = readSafetensors(path);
    const viaMemory = decodeSafetensors(new Uint8Array(readFileSync(path)));
    expect([...viaFile.tensors.keys()]).toEqual([...viaMemory.tensors.keys()]);
    expect(viaFile.metadata).toEqual(viaMemory.metadata);
    for (const [name, t] of viaFile.tensors) expect(viaMemory.tensors.get(name), name).toEqual(t);
  });

  it('imports and re-exports the real weights bit for bit (conv, linear and vector layouts)', (ctx) => {
    requireFixture(ctx, haveNested, nestedDir);
    withFile(join(nestedDir, 'weights.safetensors'), (file) => {
      const specs = specsFromFile(file);
      expect(specs.some((s) => s.layout === 'conv2d')).toBe(true);
      expect(specs.some((s) => s.layout === 'linear')).toBe(true);
      const values = importMlMdmStateDict(specs, file);
      expect(values.size).toBe(267);
      const exported = exportMlMdmStateDict(specs, values);
      for (const name of file.names) {
        const original = file.read(name);
        const back = exported.get(name)!;
        expect(back.shape, name).toEqual(original.shape);
        expect(
          Buffer.from((back.data as Float32Array).buffer).equals(Buffer.from((original.data as Float32Array).buffer)),
          name,
        ).toBe(true);
      }
    });
  });

  it("unet-tiny's weights are nested-tiny's inner_unet.* tensors (source/targetPrefix on real files)", (ctx) => {
    requireFixture(ctx, haveNested && haveUnet, haveNested ? unetDir : nestedDir);
    withFile(join(nestedDir, 'weights.safetensors'), (nested) =>
      withFile(join(unetDir, 'weights.safetensors'), (unet) => {
        const unetSpecs = specsFromFile(unet);
        const fromNested = importMlMdmStateDict(unetSpecs, nested, { sourcePrefix: 'inner_unet.' });
        const fromUnet = importMlMdmStateDict(unetSpecs, unet);
        expect(fromNested.size).toBe(unet.names.length);
        for (const [name, v] of fromUnet)
          expect(Buffer.from(fromNested.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);

        const nestedSpecs = specsFromFile(nested);
        const intoInner = importMlMdmStateDict(nestedSpecs, unet, { targetPrefix: 'inner_unet.' });
        expect([...intoInner.keys()].every((k) => k.startsWith('inner_unet.'))).toBe(true);
        expect(intoInner.size).toBe(unet.names.length);
        for (const [name, v] of fromUnet)
          expect(Buffer.from(intoInner.get(`inner_unet.${name}`)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(
            true,
          );
      }),
    );
  });
});
