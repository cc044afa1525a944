import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ONNX_FLOAT, onnxModel, seeded } from '@matryoshka-ts/test-utils';
import { DataError } from '@matryoshka-ts/core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { featureStatsOf, networkInputBatch, quantizeToUint8 } from './feature-extractor.js';
import { FeatureStats } from './feature-stats.js';
import { loadOnnxFeatureExtractor } from './onnx-features.js';
import type { Uint8Image } from './resize.js';

const dir = mkdtempSync(join(tmpdir(), 'mdm-onnx-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A stand-in for the Inception: 1×1 conv (3 → 5 channels, weights w, bias b), ReLU, global
// average pool, flatten: features[n, k] = mean_p relu(Σ_c w[k, c] x[n, c, p] + b[k]).
const K = 5;
const u = seeded(7);
const w = Float32Array.from({ length: K * 3 }, () => u() * 2 - 1);
const b = Float32Array.from({ length: K }, () => u() * 0.2 - 0.1);
const modelPath = join(dir, 'tiny-inception.onnx');
writeFileSync(
  modelPath,
  onnxModel({
    inputs: [{ name: 'images', type: ONNX_FLOAT, shape: ['n', 3, 'h', 'w'] }],
    outputs: [{ name: 'pool3', type: ONNX_FLOAT, shape: ['n', K] }],
    initializers: [
      { name: 'w', dims: [K, 3, 1, 1], data: w },
      { name: 'b', dims: [K], data: b },
    ],
    nodes: [
      { op: 'Conv', inputs: ['images', 'w', 'b'], outputs: ['c'], attributes: { kernel_shape: [1, 1] } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', inputs: ['r'], outputs: ['p'] },
      { op: 'Flatten', inputs: ['p'], outputs: ['pool3'], attributes: { axis: 1 } },
    ],
  }),
);

function randomImage(seed: number, width: number, height: number): Uint8Image {
  const r = seeded(seed);
  return {
    data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r() * 256)),
    width,
    height,
    channels: 3,
  };
}

/** The tiny network in plain float64 loops over the same prepared NCHW input. */
function reference(input: Float32Array, n: number, size: number): Float64Array {
  const plane = size * size;
  const out = new Float64Array(n * K);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) {
      let sum = 0;
      for (let p = 0; p < plane; p++) {
        let v = b[k];
        for (let c = 0; c < 3; c++) v += w[k * 3 + c] * input[(i * 3 + c) * plane + p];
        sum += Math.max(v, 0);
      }
      out[i * K + k] = sum / plane;
    }
  }
  return out;
}

describe('loadOnnxFeatureExtractor', () => {
  it('runs a local ONNX network on resized images and matches the same network in float64', async () => {
    const extractor = await loadOnnxFeatureExtractor(modelPath, { size: 31 });
    expect(extractor.dim).toBe(K);
    expect(extractor.proxy).toBe(false);
    expect(extractor.id).toMatch(/^onnx:tiny-inception\.onnx#[0-9a-f]{12}\|pytorch-fid@31\|0-1$/);
    const images = [randomImage(1, 20, 20), randomImage(2, 40, 24), randomImage(3, 31, 31)];
    const got = await extractor.features(images);
    const want = reference(
      networkInputBatch(images, { size: 31, resize: 'pytorch-fid', range: '0-1', layout: 'nchw' }),
      3,
      31,
    );
    // float32 network vs float64 loops over 961 pixels: ~1e-7 relative per sum.
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-5);
    await extractor.dispose();
  });

  it('maps each resize method to its network range: pytorch-fid [0, 1], clean-fid 0…255', () => {
    const image = randomImage(4, 9, 9);
    const a = networkInputBatch([image], { size: 9, resize: 'pytorch-fid', range: '0-1', layout: 'nchw' });
    const c = networkInputBatch([image], { size: 9, resize: 'clean-fid', range: '0-1', layout: 'nchw' });
    const m = networkInputBatch([image], { size: 9, resize: 'pytorch-fid', range: '-1-1', layout: 'nhwc' });
    // Same size: both resizes are the identity, so every layout/range is a relabelling of the pixels.
    expect(a[0]).toBeCloseTo(image.data[0] / 255, 6);
    expect(a[81]).toBeCloseTo(image.data[1] / 255, 6); // channel 1 of pixel 0 in NCHW
    expect(c[81]).toBeCloseTo(image.data[1] / 255, 5);
    expect(m[1]).toBeCloseTo((image.data[1] / 255) * 2 - 1, 6); // NHWC: channel 1 of pixel 0
  });

  it('streams images into statistics equal to those of the features at once', async () => {
    const extractor = await loadOnnxFeatureExtractor(modelPath, { size: 16 });
    const images = Array.from({ length: 11 }, (_, i) => randomImage(10 + i, 16, 16));
    const seen: number[] = [];
    const stats = await featureStatsOf(extractor, images, { batchSize: 4, onBatch: (n) => seen.push(n) });
    expect(seen).toEqual([4, 8, 11]);
    const whole = new FeatureStats(K).add(await extractor.features(images));
    const [m1, m2] = [stats.mean(), whole.mean()];
    for (let k = 0; k < K; k++) expect(m1[k]).toBeCloseTo(m2[k], 10);
    await extractor.dispose();
  });

  it('quantises samples in [-1, 1] to uint8 as a saved PNG would', () => {
    const q = quantizeToUint8(Float32Array.from([-1, -2, 0, 1, 2, 0.5]), 2, 1, 3);
    expect([...q.data]).toEqual([0, 0, 128, 255, 255, 191]);
  });

  it('names what is wrong: a missing file, a wrong output name', async () => {
    await expect(loadOnnxFeatureExtractor(join(dir, 'nope.onnx'))).rejects.toThrow(/no ONNX model at .*nope\.onnx/);
    await expect(loadOnnxFeatureExtractor(modelPath, { outputName: 'logits' })).rejects.toThrow(
      /has no output 'logits' \(it has pool3\)/,
    );
    const missing = join(dir, 'nope.onnx');
    const error = await loadOnnxFeatureExtractor(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect(error).toMatchObject({ code: 'DATA_INVALID', message: `no ONNX model at ${missing}` });
  });

  it('says how to install onnxruntime-node when it cannot be loaded (BackendError)', async () => {
    vi.resetModules();
    vi.doMock('onnxruntime-node', () => {
      throw new Error('not installed');
    });
    try {
      const { onnxRuntime } = await import('./onnx-runtime.js');
      const core = await import('@matryoshka-ts/core'); // the fresh module graph's classes
      const error = await onnxRuntime().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(core.BackendError);
      expect(error).toBeInstanceOf(core.MdmError);
      expect((error as Error).cause).toBeInstanceOf(Error); // the import failure, kept
      expect(error).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
      expect((error as Error).message).toMatch(
        /^onnxruntime-node is needed to run ONNX models and could not be loaded/,
      );
      expect((error as Error).message).toMatch(/`ONNXRUNTIME_NODE_INSTALL=skip npm i onnxruntime-node`/);
    } finally {
      vi.doUnmock('onnxruntime-node');
      vi.resetModules();
    }
  });
});
