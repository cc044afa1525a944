import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { Rng } from '@matryoshka-ts/core';
import { decodePng } from '@matryoshka-ts/data';
import { NestedUNet } from '@matryoshka-ts/nested-unet';
import { type TrainConfigInput, levelSchedulesOf, parseTrainConfig } from './config.js';
import { openRun } from './open-run.js';
import { loadCheckpoint } from './run-checkpoint.js';
import type { StepMetrics } from './run-log.js';
import { train } from './train.js';
import { weightsFromRun } from './init-from.js';
import { TrainStep } from './train-step.js';

// A video run at toy size on the deterministic pure-JS cpu backend: a temporal level over 4 frames
// of 8 px around an 8 px image level, on the bundled clips; phase 1 trains the image level on the
// clips' first frames, phase 2 the clip.
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const videoMicro: TrainConfigInput = {
  model: {
    resolution: 8,
    temporal: true,
    channels: [32, 32, 32],
    resBlocks: [1, 1, 1],
    temporalAttentionLayers: [1, 1, 0],
    groups: 8,
    timeEmbedDim: 32,
    inner: {
      resolution: 8,
      channels: [16, 32],
      resBlocks: [1, 1],
      attentionLayers: [0, 1],
      groups: 8,
      timeEmbedDim: 32,
    },
    text: { featureDim: 16, projDim: 32, headLayers: 0, maskedCrossAttention: true },
  },
  data: { categories: ['Activities'], skinTones: false },
  conditioning: { kind: 'text', encoder: { width: 16, maxTokens: 8 } },
  optimizer: { lr: 1e-3, warmupSteps: 2 },
  phases: [
    { resolution: 8, frames: 1, batchSize: 2, steps: 2 },
    { resolution: 8, frames: 4, batchSize: 2, steps: 4 },
  ],
  sampling: { n: 2, steps: 2, sampler: 'ddim' },
  checkpointEvery: 100,
  plotEvery: 100,
  backend: 'cpu',
};

const dirs: string[] = [];
const tempRun = () => {
  const d = mkdtempSync(join(tmpdir(), 'mdm-video-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const metrics = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics);

let trained = '';

describe('a video run', () => {
  it('trains image then clip, resumes exactly across the phase boundary, and keeps its tensor count flat', async () => {
    const config = parseTrainConfig(videoMicro);
    const whole = tempRun();
    trained = whole;
    const live: number[] = [];
    await train(config, { out: whole, steps: 6, onStep: (_m, n) => live.push(n) });
    const split = tempRun();
    await train(config, { out: split, steps: 3 });
    expect(loadCheckpoint(join(split, 'checkpoint.safetensors')).progress).toMatchObject({ step: 3, phase: 1 });
    await train(config, { out: split, resume: true, steps: 6 });
    const [a, b] = [metrics(whole), metrics(split)];
    expect(a.map((m) => [m.step, m.loss])).toEqual(b.map((m) => [m.step, m.loss]));
    // Phase 1 has one level (the image), phase 2 two (the clip and its first frame).
    expect(a.map((m) => m.mse.length)).toEqual([1, 1, 2, 2, 2, 2]);
    expect(a.every((m) => Number.isFinite(m.loss))).toBe(true);
    // Within the clip phase, after Adam's first update allocated its moments, nothing grows.
    expect(new Set(live.slice(3))).toEqual(new Set([live[3]]));
    // The samples: a contact sheet (2 samples × 4 frames, then the first-frame level) and a GIF each.
    const sheet = decodePng(readFileSync(join(whole, 'samples.png')));
    expect(sheet.height).toBeGreaterThan(2 * 8);
    expect(sheet.width).toBeGreaterThan(5 * 8);
    for (const k of [0, 1]) {
      const gif = readFileSync(join(whole, `samples-${k}.gif`));
      expect(gif.subarray(0, 6).toString()).toBe('GIF89a');
    }
    expect(existsSync(join(whole, 'samples-2.gif'))).toBe(false);
  }, 600_000);

  it('opens as a run whose generate returns clips of 4 frames and their first-frame images', async () => {
    // The run the first test trained (6 steps).
    const run = await openRun(trained);
    expect(run.levels.map((l) => [l.resolution, l.frames])).toEqual([
      [8, 4],
      [8, 1],
    ]);
    const samples = await run.generate({
      captions: ['soccer ball moving from left to right', ''],
      labels: [-1, -1],
      steps: 2,
      sampler: 'ddim',
      eta: 0,
      guidance: 2,
      threshold: 'dynamic',
      seed: 3,
    });
    expect(samples[0]).toMatchObject({ resolution: 8, frames: 4 });
    expect(samples[0].images.map((x) => x.length)).toEqual([4 * 8 * 8 * 3, 4 * 8 * 8 * 3]);
    expect(samples[1].images[0].length).toBe(8 * 8 * 3);
    expect(samples.flatMap((l) => l.images).every((x) => x.every((v) => v >= -1 && v <= 1))).toBe(true);
    run.dispose();
  }, 600_000);

  it('initFrom: a trained image run starts the image UNet inside the video model, EMA included', async () => {
    const { model } = videoMicro as { model: { inner: object; text: object } };
    const imageRun = tempRun();
    const image = parseTrainConfig({
      ...videoMicro,
      model: { ...model.inner, text: model.text },
      phases: [{ resolution: 8, batchSize: 2, steps: 2 }],
    });
    await train(image, { out: imageRun });
    const saved = loadCheckpoint(join(imageRun, 'checkpoint.safetensors'));
    const video = new NestedUNet(parseTrainConfig(videoMicro).model as never);
    const initial = weightsFromRun(imageRun, video.specs, 2);
    expect(initial.params.size).toBe(saved.values.params.size);
    for (const [name, values] of saved.values.params) expect(initial.params.get(`inner_unet.${name}`)).toEqual(values);
    for (const [name, values] of saved.values.ema) expect(initial.ema.get(`inner_unet.${name}`)).toEqual(values);
    expect(initial.description).toMatch(/its 8 px model is levels 1…1 of this one, EMA included/);
    // A model whose inside differs is refused, naming the weights.
    const other = new NestedUNet({
      ...(parseTrainConfig(videoMicro).model as object),
      inner: { ...model.inner, channels: [32, 32] },
    } as never);
    expect(() => weightsFromRun(imageRun, other.specs, 2)).toThrow(/is not the inside of this model .*inner_unet\./);
    // And a video run starts from it.
    const run = tempRun();
    await train(
      parseTrainConfig({
        ...videoMicro,
        initFrom: imageRun,
        phases: [{ resolution: 8, frames: 4, batchSize: 1, steps: 1 }],
      }),
      { out: run },
    );
    expect(metrics(run)).toHaveLength(1);
    video.dispose();
    other.dispose();
  }, 600_000);

  it('a phase names its level by resolution and frames where a clip and an image share a resolution', () => {
    const phase = { resolution: 8, batchSize: 2, steps: 1 };
    expect(() => parseTrainConfig({ ...videoMicro, phases: [phase] })).toThrow(
      /config: phases\.0\.frames: 8 px names 2 levels \(4×8, 8\); give frames as well/,
    );
    expect(() => parseTrainConfig({ ...videoMicro, phases: [{ ...phase, frames: 16 }] })).toThrow(
      /config: phases\.0\.resolution: 16×8 is not a level of the model \(4×8, 8\)/,
    );
    expect(() =>
      parseTrainConfig({
        ...videoMicro,
        phases: [
          { ...phase, frames: 4 },
          { ...phase, frames: 1 },
        ],
      }),
    ).toThrow(/phases\.1\.resolution: phases must not go down in resolution/);
  });

  it('the schedules shift a clip level by its tiled side: √F × r over the innermost', () => {
    const schedules = levelSchedulesOf(parseTrainConfig(videoMicro));
    // 4 frames of 8 px tile to 16 px over the 8 px image: shift 2, i.e. log-SNR lower by ln 4 … at
    // every step where the base SNR is finite.
    const [clip, image] = schedules.map((s) => s.gammas[500]);
    const snr = (g: number) => g / (1 - g);
    expect(snr(clip)).toBeCloseTo(snr(image) / 2, 10);
  });

  it('with rotary encoding, a training step leaves the stored frequencies as they are', async () => {
    const config = parseTrainConfig(videoMicro);
    const model = new NestedUNet({ ...(config.model as object), rotaryPositions: true } as never, { seed: 2 });
    const freqs = [...model.params].filter(([name]) => name.endsWith('pos_emb.freqs'));
    expect(freqs.length).toBeGreaterThan(0);
    const before = freqs.map(([, v]) => Float32Array.from(v.dataSync()));
    const step = new TrainStep(model, levelSchedulesOf(config), {
      loss: { prediction: 'v', target: 'eps' },
      optimizer: { lr: 1e-2, warmupSteps: 0, clipNorm: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8 },
    });
    const clips = new Rng(7).normalTensor([4, 8, 8, 3]) as tf.Tensor4D;
    const text = { tokens: new Rng(8).normalTensor([1, 3, 16]) as tf.Tensor3D };
    const grads = await step.computeGradients(clips, text, new Rng(9));
    expect([...grads.grads.keys()].some((n) => n.endsWith('pos_emb.freqs'))).toBe(false);
    const result = await step.update(grads);
    expect(result.skipped).toBeUndefined();
    freqs.forEach(([name, v], i) => expect(Float32Array.from(v.dataSync()), name).toEqual(before[i]));
    tf.dispose([clips, text.tokens]);
    step.dispose();
    model.dispose();
  });

  it('a mixed batch: the clip level sees the first sample, its first-frame level both', async () => {
    const config = parseTrainConfig(videoMicro);
    const model = new NestedUNet(config.model as never, { seed: 1 });
    const step = new TrainStep(model, levelSchedulesOf(config), {
      loss: { prediction: 'v', target: 'eps', mixedRatio: [1, 1] },
      optimizer: { lr: 1e-3, warmupSteps: 0, clipNorm: 2, beta1: 0.9, beta2: 0.99, eps: 1e-8 },
    });
    const clips = new Rng(4).normalTensor([2 * 4, 8, 8, 3]) as tf.Tensor4D;
    const text = { tokens: new Rng(5).normalTensor([2, 3, 16]) as tf.Tensor3D };
    const before = tf.memory().numTensors;
    const grads = await step.computeGradients(clips, text, new Rng(6));
    expect(grads.mse).toHaveLength(2);
    expect(grads.mse.every(Number.isFinite)).toBe(true);
    // Every trainable parameter gets a gradient, the first-frame level's included.
    expect(grads.grads.size).toBe([...model.params.values()].filter((v) => v.trainable).length);
    tf.dispose([...grads.grads.values()]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([clips, text.tokens]);
    step.dispose();
    model.dispose();
  });
});
