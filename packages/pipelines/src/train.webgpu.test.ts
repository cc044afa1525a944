import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { initBackend, webGpuErrors } from '@matryoshka-ts/backends';
import { underCi } from '@matryoshka-ts/test-utils';
import { parseTrainConfig } from './config.js';
import type { LevelSamples } from './generate.js';
import { openRun } from './open-run.js';
import { train } from './train.js';
import { TRAIN_PRESETS } from './train-presets.js';

// WebGPU through Dawn on Mesa's software renderer (llvmpipe, OpenGL through EGL): what CI has.
// The tiny preset trains and samples there, and gives the cpu backend's numbers: the whole
// pipeline (forward, every gradient, Adam, EMA, checkpoint, sampling) with asynchronous reads only.
process.env.MDM_WEBGPU_BACKEND ??= 'opengl';
const webgpu = await initBackend({ backend: 'webgpu', quiet: true }).then(
  () => true,
  () => false,
);
const dirs: string[] = [];
afterAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const STEPS = 3;
// The tiny preset as it is, with a smaller preview grid so llvmpipe draws it in seconds.
const config = parseTrainConfig({ ...TRAIN_PRESETS.tiny, sampling: { n: 2, steps: 3, sampler: 'ddim' } });

async function trainAndSample(backend: 'webgpu' | 'cpu') {
  await initBackend({ backend, quiet: true });
  const out = mkdtempSync(join(tmpdir(), `mdm-${backend}-`));
  dirs.push(out);
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const tensors: number[] = [];
  const result = await train(config, {
    out,
    steps: STEPS,
    onStep: (metrics, live) => {
      losses.push(metrics.loss);
      gradNorms.push(metrics.gradNorm);
      tensors.push(live);
    },
  });
  const run = await openRun(out);
  const states: number[] = [];
  const images = await run.generate({
    captions: ['grinning face', 'ghost'],
    labels: [0, 0],
    steps: 4,
    sampler: 'ddim',
    eta: 0,
    guidance: 2,
    threshold: 'clip',
    seed: 7,
    onStep: async (_i, _total, x) => {
      states.push(x.length);
    },
  });
  run.dispose();
  return { out, result, losses, gradNorms, tensors, images, states };
}

const flat = (levels: LevelSamples[]) => levels.flatMap((l) => l.images.flatMap((image) => [...image]));

it.runIf(webgpu || underCi())(
  'the tiny preset trains and samples on webgpu (llvmpipe), matching the cpu backend',
  async () => {
    const gpu = await trainAndSample('webgpu');
    // A kernel that fails WebGPU's validation returns zeros instead of throwing: none may.
    expect(webGpuErrors()).toEqual([]);
    const cpu = await trainAndSample('cpu');
    expect(gpu.result.steps).toBe(STEPS);
    expect(gpu.result.badSteps).toBe(0);
    expect(statSync(join(gpu.out, 'checkpoint.safetensors')).size).toBeGreaterThan(0);
    expect(statSync(join(gpu.out, 'samples.png')).size).toBeGreaterThan(0);
    // No tensor leaks: the live count is the same after every step.
    expect(new Set(gpu.tensors).size).toBe(1);
    // The same draws (times, noise, dropout from the run's seed) on both backends: the losses agree
    // to float32 summation order (the GPU reduces in workgroup tiles), growing a little through
    // the Adam updates between steps: 1e-4 relative.
    gpu.losses.forEach((loss, i) => expect(Math.abs(loss - cpu.losses[i])).toBeLessThan(1e-4 * cpu.losses[i]));
    gpu.gradNorms.forEach((norm, i) => expect(Math.abs(norm - cpu.gradNorms[i])).toBeLessThan(1e-4 * cpu.gradNorms[i]));
    // onStep was awaited with both levels' state at each of the 4 steps.
    expect(gpu.states).toEqual([2, 2, 2, 2]);
    expect(gpu.images.map((l) => [l.resolution, l.images.length])).toEqual([
      [16, 2],
      [8, 2],
    ]);
    // Samples in [−1, 1] after 3 updates and 4 guided DDIM steps: float32 differences in the
    // weights (≤ 1e-6) and in each network call, amplified by guidance w = 2: 1e-3 absolute.
    const [a, b] = [flat(gpu.images), flat(cpu.images)];
    let worst = 0;
    a.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - b[i]));
    });
    expect(a.every(Number.isFinite)).toBe(true);
    expect(worst).toBeLessThan(1e-3);
  },
  600_000,
);
