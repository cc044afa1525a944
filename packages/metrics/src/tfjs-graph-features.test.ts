import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { seeded } from '@matryoshka-ts/test-utils';
import { DataError } from '@matryoshka-ts/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { networkInputBatch } from './feature-extractor.js';
import type { Uint8Image } from './resize.js';
import { loadTfjsGraphFeatureExtractor } from './tfjs-graph-features.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-tfjs-graph-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

// A graph model as tensorflowjs_converter writes it: NHWC 1×1 Conv2D (3 → K) + ReLU + spatial Mean.
const K = 4;
const u = seeded(11);
const w = Float32Array.from({ length: 3 * K }, () => u() * 2 - 1);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const dims = (...d: number[]) => ({ dim: d.map((size) => ({ size: String(size) })) });
const modelJson = {
  format: 'graph-model',
  generatedBy: '2.15.0',
  convertedBy: 'TensorFlow.js Converter v4.22.0',
  modelTopology: {
    node: [
      {
        name: 'images',
        op: 'Placeholder',
        attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: dims(-1, 12, 12, 3) } },
      },
      {
        name: 'w',
        op: 'Const',
        attr: { value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dims(1, 1, 3, K) } }, dtype: { type: 'DT_FLOAT' } },
      },
      {
        name: 'axes',
        op: 'Const',
        attr: { value: { tensor: { dtype: 'DT_INT32', tensorShape: dims(2) } }, dtype: { type: 'DT_INT32' } },
      },
      {
        name: 'conv',
        op: 'Conv2D',
        input: ['images', 'w'],
        attr: {
          T: { type: 'DT_FLOAT' },
          strides: { list: { i: ['1', '1', '1', '1'] } },
          padding: { s: b64('VALID') },
          data_format: { s: b64('NHWC') },
          dilations: { list: { i: ['1', '1', '1', '1'] } },
        },
      },
      { name: 'relu', op: 'Relu', input: ['conv'], attr: { T: { type: 'DT_FLOAT' } } },
      {
        name: 'pool',
        op: 'Mean',
        input: ['relu', 'axes'],
        attr: { T: { type: 'DT_FLOAT' }, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } },
      },
    ],
    library: {},
    versions: { producer: 1 },
  },
  weightsManifest: [
    {
      paths: ['group1-shard1of1.bin'],
      weights: [
        { name: 'w', shape: [1, 1, 3, K], dtype: 'float32' },
        { name: 'axes', shape: [2], dtype: 'int32' },
      ],
    },
  ],
};
writeFileSync(join(dir, 'model.json'), JSON.stringify(modelJson));
writeFileSync(
  join(dir, 'group1-shard1of1.bin'),
  Buffer.concat([Buffer.from(w.buffer), Buffer.from(new Int32Array([1, 2]).buffer)]),
);

describe('loadTfjsGraphFeatureExtractor', () => {
  it('loads a local graph model and computes its features in NHWC, [-1, 1]', async () => {
    const extractor = await loadTfjsGraphFeatureExtractor(dir, { size: 12 });
    expect(extractor.dim).toBe(K);
    expect(extractor.id).toMatch(/^tfjs-graph:mdm-tfjs-graph-\w+#[0-9a-f]{12}\|pytorch-fid@12\|-1-1$/);
    const r = seeded(5);
    const images: Uint8Image[] = [0, 1].map(() => ({
      data: Uint8Array.from({ length: 20 * 16 * 3 }, () => Math.floor(r() * 256)),
      width: 20,
      height: 16,
      channels: 3,
    }));
    const got = await extractor.features(images);
    const x = networkInputBatch(images, { size: 12, resize: 'pytorch-fid', range: '-1-1', layout: 'nhwc' });
    for (let n = 0; n < 2; n++) {
      for (let k = 0; k < K; k++) {
        let sum = 0;
        for (let p = 0; p < 144; p++)
          sum += Math.max(
            0,
            [0, 1, 2].reduce((s, c) => s + x[(n * 144 + p) * 3 + c] * w[c * K + k], 0),
          );
        // float32 graph vs float64 loop over 144 pixels.
        expect(got[n * K + k]).toBeCloseTo(sum / 144, 5);
      }
    }
    extractor.dispose();
  });

  it('names a missing model or shard', async () => {
    await expect(loadTfjsGraphFeatureExtractor(join(dir, 'nothing'))).rejects.toThrow(/no TF\.js graph model/);
    const broken = mkdtempSync(join(tmpdir(), 'mdm-tfjs-graph-broken-'));
    writeFileSync(join(broken, 'model.json'), JSON.stringify(modelJson));
    await expect(loadTfjsGraphFeatureExtractor(broken)).rejects.toThrow(
      /weight shard group1-shard1of1\.bin, which is missing/,
    );
    const error = await loadTfjsGraphFeatureExtractor(broken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect(error).toMatchObject({
      code: 'DATA_INVALID',
      message: `${join(broken, 'model.json')} lists weight shard group1-shard1of1.bin, which is missing`,
    });
    rmSync(broken, { recursive: true });
  });

  it('says how to install tfjs-converter (an optional peer) when it is missing', async () => {
    vi.resetModules();
    vi.doMock('@tensorflow/tfjs-converter', () => {
      throw new Error("Cannot find package '@tensorflow/tfjs-converter'");
    });
    try {
      const { loadTfjsGraphFeatureExtractor: load } = await import('./tfjs-graph-features.js');
      const error = (await load(dir).catch((e: unknown) => e)) as Error;
      expect(error).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
      expect(error.message).toMatch(
        /^a TF\.js graph model needs @tensorflow\/tfjs-core and @tensorflow\/tfjs-converter/,
      );
      expect(error.message).toContain('`npm i @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-converter@4.22.0`');
    } finally {
      vi.doUnmock('@tensorflow/tfjs-converter');
      vi.resetModules();
    }
  });
});
