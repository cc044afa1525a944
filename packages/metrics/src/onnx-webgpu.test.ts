import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ONNX_FLOAT,
  inceptionV3Onnx,
  onnxModel,
  seeded,
  softwareVulkan,
  underCi,
  writeTinyT5,
} from '@matryoshka-ts/test-utils';
import { type OnnxDevice, describeOnnxDevice, loadOnnxTextEncoder, onnxSession } from '@matryoshka-ts/text-encoders';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOnnxClip } from './clip-score.js';
import { loadOnnxFeatureExtractor } from './onnx-features.js';
import type { Uint8Image } from './resize.js';
import { maxRelativeError, writeTinyClip } from './test-helpers.js';

// ONNX Runtime's WebGPU provider (its built-in Dawn, on Vulkan under Linux) must give the CPU
// provider's features for the networks FID, CLIP score and frozen text encoders run. Without a GPU
// the adapter is Mesa's lavapipe (tooling/scripts/lavapipe.sh on Debian 12, whose own is too old);
// a machine with neither skips, CI (which runs that script) must have one.
softwareVulkan();
const dir = mkdtempSync(join(tmpdir(), 'mdm-onnx-webgpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const probe = onnxModel({
  inputs: [{ name: 'x', type: ONNX_FLOAT, shape: ['n', 4] }],
  outputs: [{ name: 'y', type: ONNX_FLOAT, shape: ['n', 4] }],
  initializers: [{ name: 'w', dims: [4, 4], data: Float32Array.from({ length: 16 }, (_, i) => i / 16) }],
  nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
});
const adapter = await onnxSession(probe, 'webgpu').then(
  async (session) => {
    await session.release();
    return true;
  },
  () => false,
);

function image(seed: number, width: number, height: number): Uint8Image {
  const r = seeded(seed);
  return {
    data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r() * 256)),
    width,
    height,
    channels: 3,
  };
}

/** The same network's outputs on the cpu and webgpu providers. */
async function onBoth<T>(open: (device: OnnxDevice) => Promise<T>, run: (net: T) => Promise<Float32Array>) {
  const out: Record<string, Float32Array> = {};
  for (const device of ['cpu', 'webgpu'] as const) out[device] = await run(await open(device));
  return { cpu: out.cpu, gpu: out.webgpu };
}

// Tolerances: float32 on both sides, but the GPU sums in another order (tiled convolutions and
// matrix products, tree reductions) and may fuse multiply-adds, so results differ by rounding:
// a few float32 ulps (6e-8) per sum of k terms, growing like √k, through Inception's ~95 layers and
// over CLIP's average of 224² pixels. Measured on lavapipe (max error over the largest |feature|):
// 2e-7 for the Inception, 9e-7 and 1e-7 for CLIP's image and text towers, 0 for the T5 lookup.
// 1e-4 leaves room for other GPUs' orders and still fails a wrong kernel, which is off by O(1)
// (the channels-last Conv bug below gave 0.26). The text towers average a few short vectors: 1e-5.
describe.runIf(adapter || underCi())("ONNX Runtime's webgpu provider against its cpu provider", () => {
  it('names the device and its adapter', async () => {
    expect(await describeOnnxDevice('webgpu')).toMatch(/^webgpu \(ONNX Runtime [\d.]+'s Dawn.*: .+; cpu for/);
  });

  // A quarter of the width keeps every convolution's input channels a multiple of 4 (or the 3 of
  // RGB), as in the real network: ONNX Runtime 1.30's channels-last WebGPU Conv miscomputes when
  // they are a multiple of 3 but not of 4 (6, 9, 15…; microsoft/onnxruntime#29651), which 1/8
  // would hit (48/8 = 6). See docs/evaluation.md.
  it('gives the FID Inception features (an Inception-V3-shaped network, 1/4 the width)', async () => {
    const path = join(dir, 'inception.onnx');
    writeFileSync(path, inceptionV3Onnx({ widthScale: 1 / 4, seed: 4 }));
    const images = [image(1, 64, 64), image(2, 40, 56), image(3, 299, 299)];
    const { cpu, gpu } = await onBoth(
      (device) => loadOnnxFeatureExtractor(path, { device }),
      async (net) => {
        const features = await net.features(images);
        await net.dispose();
        return features;
      },
    );
    expect(cpu.length).toBe(3 * 512);
    expect(Math.max(...cpu)).toBeGreaterThan(0);
    expect(maxRelativeError(gpu, cpu)).toBeLessThan(1e-4);
  });

  it('gives the tiny CLIP towers the CLIP score tests use', async () => {
    const clipDir = join(dir, 'clip');
    writeTinyClip(clipDir);
    const images = [image(4, 64, 64), image(5, 300, 200)];
    const captions = ['a cat', 'the dog!'];
    for (const tower of ['image', 'text'] as const) {
      const { cpu, gpu } = await onBoth(
        (device) => loadOnnxClip(clipDir, { device }),
        async (clip) => {
          const out = tower === 'image' ? await clip.imageEmbeddings(images) : await clip.textEmbeddings(captions);
          await clip.dispose();
          return out;
        },
      );
      expect(cpu.length).toBe(2 * 3);
      expect(maxRelativeError(gpu, cpu)).toBeLessThan(tower === 'image' ? 1e-4 : 1e-5);
    }
  });

  it('gives the tiny T5 encoder features the text-encoder tests use', async () => {
    const t5 = writeTinyT5(join(dir, 't5'), { width: 16 });
    const captions = ['a grinning face', 'ghost', ''];
    const { cpu, gpu } = await onBoth(
      (device) => loadOnnxTextEncoder(t5, { device, maxTokens: 8 }),
      async (encoder) => {
        const { features } = await encoder.encodeAsync(captions);
        await encoder.dispose?.();
        return features;
      },
    );
    expect(cpu.length).toBe(3 * 8 * 16);
    expect(maxRelativeError(gpu, cpu)).toBeLessThan(1e-5);
  });
});
