import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@matryoshka-ts/backends';
import { AutoencoderKL, autoencoderPreset, exportAutoencoderStateDict } from '@matryoshka-ts/autoencoder';
import { writeSafetensors } from '@matryoshka-ts/checkpoint';
import { ConfigError, MdmError } from '@matryoshka-ts/core';
import { type TrainConfigInput, levelSchedulesOf } from './config.js';
import { openRun } from './open-run.js';
import { loadCheckpoint } from './run-checkpoint.js';
import { readRunManifest } from './run-manifest.js';
import type { StepMetrics } from './run-log.js';
import { parseRunConfig, runStages } from './stages.js';
import { readAutoencoderProgress, trainAutoencoderStage } from './train-autoencoder.js';
import { lossOptionsOf } from './train.js';
import { trainRun } from './train-run.js';

// The pure-JS cpu backend (deterministic), with models of a few thousand parameters at 4–8 px.
beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

const dirs: string[] = [];
const tempRun = () => {
  const d = mkdtempSync(join(tmpdir(), 'mdm-baseline-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const text = { featureDim: 16, projDim: 32, headLayers: 0, maskedCrossAttention: true };
const shared = {
  data: { skinTones: false },
  conditioning: { kind: 'text', dropout: 0.5, encoder: { width: 16, maxTokens: 4 } },
  optimizer: { lr: 1e-3, warmupSteps: 1 },
  sampling: { n: 2, steps: 2, sampler: 'ddim' },
  checkpointEvery: 1000,
  plotEvery: 1000,
  backend: 'cpu',
} satisfies Partial<TrainConfigInput>;
const unet = (resolution: number) => ({
  resolution,
  channels: [8, 32],
  resBlocks: [1, 1],
  groups: 8,
  timeEmbedDim: 32,
  text,
});
const metrics = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics);

describe('simple DM', () => {
  it('a NestedUNet of kind simple trains its top level only (weights [1, 0]) and samples every level', async () => {
    const config = parseRunConfig({
      ...shared,
      model: {
        ...unet(8),
        kind: 'simple',
        inner: { resolution: 4, channels: [32], resBlocks: [1], groups: 8, timeEmbedDim: 32 },
      },
      phases: [{ resolution: 8, batchSize: 2, steps: 2 }],
    });
    expect(lossOptionsOf(config, 2).weights).toEqual([1, 0]);
    const out = tempRun();
    await trainRun(config, { out });
    // loss = Σ_n w_n · mse_n with w = [1, 0]: the 8 px level's error alone (float32 mean of the same values).
    for (const m of metrics(out)) expect(m.loss).toBeCloseTo(m.mse[0], 5);
    const run = await openRun(out);
    expect(run.kind).toBe('simple');
    const images = await run.generate({ ...sampleOptions, captions: ['a', 'b'], labels: [0, 0] });
    expect(images.map((l) => [l.resolution, l.images.length])).toEqual([
      [8, 2],
      [4, 2],
    ]);
    run.dispose();
  }, 120_000);

  it("takes the paper's schedules: ml-mdm's shift, simple diffusion's (interpolated) log-SNR shift", () => {
    const simple = (name: string) =>
      parseRunConfig({
        ...shared,
        model: { ...unet(8), kind: 'simple' },
        schedule: { name },
        phases: [{ resolution: 8, batchSize: 2, steps: 1 }],
      });
    for (const name of ['cosine-shift4', 'cosine-res256', 'cosine-logsnr-res64-ref32', 'cosine-res512-interp32-256'])
      expect(levelSchedulesOf(simple(name))[0].name).toBe(name);
    expect(() => simple('cosine-bogus')).toThrow(/schedule\.name/);
  });

  it('refuses progressive phases for a simple DM', () => {
    expect(() =>
      parseRunConfig({
        ...shared,
        model: {
          ...unet(8),
          kind: 'simple',
          inner: { resolution: 4, channels: [32], resBlocks: [1], groups: 8, timeEmbedDim: 32 },
        },
        phases: [
          { resolution: 4, batchSize: 2, steps: 1 },
          { resolution: 8, batchSize: 2, steps: 1 },
        ],
      }),
    ).toThrow(/top level only/);
  });
});

const sampleOptions = {
  steps: 2,
  sampler: 'ddim' as const,
  eta: 0,
  guidance: 2,
  threshold: 'clip' as const,
  seed: 3,
};

const cascaded = (base: number, top: number): TrainConfigInput => ({
  ...shared,
  model: {
    kind: 'cascaded',
    stages: [
      {
        model: { ...unet(base), channels: [32], resBlocks: [1] },
        phases: [{ resolution: base, batchSize: 2, steps: 2 }],
      },
      { model: unet(top), phases: [{ resolution: top, batchSize: 2, steps: 2 }] },
    ],
    augLevel: 50,
  },
});

describe('cascaded DM', () => {
  it('trains base then upsampler, samples through both, and resumes into the unfinished stage', async () => {
    const config = parseRunConfig(cascaded(4, 8));
    const out = tempRun();
    await trainRun(config, { out });
    const manifest = readRunManifest(out)!;
    expect(manifest.kind).toBe('cascaded');
    expect(manifest.stages.map((s) => s.name)).toEqual(['base', 'upsampler-8']);
    const [baseDir, upDir] = manifest.stages.map((s) => join(out, s.dir));
    // The upsampler's config carries its base resolution and the sampling augmentation level.
    expect(loadCheckpoint(join(upDir, 'checkpoint.safetensors')).config.stage).toEqual({
      kind: 'upsampler',
      baseResolution: 4,
      augLevel: 50,
    });
    const run = await openRun(out);
    expect(run.kind).toBe('cascaded');
    expect(run.levels.map((l) => l.resolution)).toEqual([8, 4]);
    // Two stages, each 2 steps × 2 (guided) evaluations.
    expect(run.functionEvaluations(2, 2)).toBe(8);
    const a = await run.generate({ ...sampleOptions, captions: ['a', 'b'], labels: [0, 0] });
    // Sampling again leaves no tensor behind (the first call may create the encoders' tables).
    const n = tf.memory().numTensors;
    await run.generate({ ...sampleOptions, captions: ['a', 'b'], labels: [0, 0] });
    expect(tf.memory().numTensors).toBe(n);
    expect(a.map((l) => [l.resolution, l.channels, l.images.length])).toEqual([
      [8, 3, 2],
      [4, 3, 2],
    ]);
    // The augmentation level reaches the upsampler: another level, another 8 px image from the same base.
    const b = await run.generate({ ...sampleOptions, captions: ['a', 'b'], labels: [0, 0], augLevel: 1000 });
    expect(b[1].images[0]).toEqual(a[1].images[0]);
    expect(b[0].images[0]).not.toEqual(a[0].images[0]);
    run.dispose();

    // Interrupted in the upsampler stage: the base is kept as it is, the upsampler retrained.
    const baseCheckpoint = readFileSync(join(baseDir, 'checkpoint.safetensors'));
    const baseTime = statSync(join(baseDir, 'checkpoint.safetensors')).mtimeMs;
    rmSync(join(upDir, 'checkpoint.safetensors'));
    await trainRun(config, { out, resume: true });
    expect(readFileSync(join(baseDir, 'checkpoint.safetensors')).equals(baseCheckpoint)).toBe(true);
    expect(statSync(join(baseDir, 'checkpoint.safetensors')).mtimeMs).toBe(baseTime);
    expect(loadCheckpoint(join(upDir, 'checkpoint.safetensors')).progress.step).toBe(2);
    // Longer: both stages resume from step 2.
    await trainRun(config, { out, resume: true, steps: 3 });
    expect(metrics(baseDir).map((m) => m.step)).toEqual([1, 2, 3]);
    expect(loadCheckpoint(join(upDir, 'checkpoint.safetensors')).progress.step).toBe(3);
  }, 180_000);

  it('chains three stages: 4 → 8 → 16 px', async () => {
    const two = cascaded(4, 8) as { model: { stages: unknown[] } };
    const config = parseRunConfig({
      ...two,
      model: {
        ...two.model,
        stages: [...two.model.stages, { model: unet(16), phases: [{ resolution: 16, batchSize: 2, steps: 1 }] }],
      },
    });
    const out = tempRun();
    await trainRun(config, { out, steps: 1 });
    const run = await openRun(out);
    expect(run.levels.map((l) => l.resolution)).toEqual([16, 8, 4]);
    const images = await run.generate({ ...sampleOptions, captions: ['a'], labels: [0] });
    expect(images.map((l) => l.resolution)).toEqual([16, 8, 4]);
    run.dispose();
  }, 120_000);

  it("refuses a stage whose base resolution does not match the previous stage's", () => {
    expect(() => parseRunConfig(cascaded(8, 8))).toThrow(/each stage must upsample/);
    expect(() => parseRunConfig({ ...cascaded(4, 8), phases: [{ resolution: 8, batchSize: 2, steps: 1 }] })).toThrow(
      /model.stages/,
    );
  });
});

/** A latent run at 8 px: an f = 2 autoencoder (4 latent channels) and a 4 px UNet on its latents. */
const latent = (autoencoder: Record<string, unknown> = {}): TrainConfigInput => ({
  ...shared,
  // 85 images: the cache encodes every image of the data set, on the slow pure-JS backend.
  data: { skinTones: false, categories: ['Activities'] },
  model: {
    kind: 'latent',
    autoencoder: {
      preset: 'kl-f8',
      ch: 32,
      chMult: [1, 2],
      numResBlocks: 1,
      train: { steps: 2, batchSize: 2 },
      ...autoencoder,
    },
    diffusion: { ...unet(4), channels: [32], resBlocks: [1] },
  },
  phases: [{ resolution: 4, batchSize: 2, steps: 2 }],
});

describe('latent DM', () => {
  it('trains the autoencoder, caches the latents, trains on them, samples decoded images', async () => {
    const out = tempRun();
    await trainRun(parseRunConfig(latent()), { out });
    const manifest = readRunManifest(out)!;
    expect(manifest.kind).toBe('latent');
    expect(manifest.scaleFactor).toBeGreaterThan(0);
    for (const f of ['autoencoder/autoencoder.safetensors', 'diffusion/checkpoint.safetensors', 'samples.png'])
      expect(existsSync(join(out, f)), f).toBe(true);
    const diffusion = loadCheckpoint(join(out, 'diffusion', 'checkpoint.safetensors'));
    expect(diffusion.config.stage).toMatchObject({
      kind: 'latent',
      scaleFactor: manifest.scaleFactor,
      imageResolution: 8,
    });
    const run = await openRun(out);
    expect(run.kind).toBe('latent');
    expect(run.levels).toEqual([{ resolution: 8, channels: 3, frames: 1 }]);
    expect(run.autoencoderParamCount).toBeGreaterThan(0);
    const images = await run.generate({ ...sampleOptions, captions: ['a', 'b'], labels: [0, 0] });
    expect(images.map((l) => [l.resolution, l.channels, l.images.length])).toEqual([[8, 3, 2]]);
    for (const v of images[0].images[0]) expect(Number.isFinite(v)).toBe(true);
    run.dispose();

    // A corrupt record inside the cache (not its tail) stops the run at start with the file named.
    const cacheRoot = join(out, 'latents');
    const [key] = readdirSync(cacheRoot);
    const bin = join(cacheRoot, key, 'latents.bin');
    const bytes = readFileSync(bin);
    bytes[10] ^= 0xff;
    writeFileSync(bin, bytes);
    await expect(trainRun(parseRunConfig(latent()), { out, resume: true, steps: 3 })).rejects.toThrow(/latents\.bin/);
  }, 240_000);

  it('refuses pretrained autoencoder weights with a missing key or another latent width, listing them', async () => {
    const ae = new AutoencoderKL(
      autoencoderPreset('kl-f8', { ch: 32, chMult: [1, 2], numResBlocks: 1, resolution: 8 }),
    );
    const entries = exportAutoencoderStateDict(ae.specs, 2, ae.getWeights());
    entries.delete('decoder.conv_out.bias');
    const missing = join(tempRun(), 'missing.safetensors');
    writeSafetensors(missing, entries);
    ae.dispose();
    await expect(trainRun(parseRunConfig(latent({ weights: missing })), { out: tempRun() })).rejects.toThrow(
      /decoder\.conv_out\.bias/,
    );

    const other = new AutoencoderKL(
      autoencoderPreset('kl-f8', { ch: 32, chMult: [1, 2], numResBlocks: 1, resolution: 8, zChannels: 3, embedDim: 3 }),
    );
    const wide = join(tempRun(), 'z3.safetensors');
    writeSafetensors(wide, exportAutoencoderStateDict(other.specs, 2, other.getWeights()));
    other.dispose();
    const error = await trainRun(parseRunConfig(latent({ weights: wide })), { out: tempRun() }).catch((e) => e);
    expect(error).toBeInstanceOf(MdmError);
    expect(String(error.message)).toMatch(/quant_conv/);
  }, 120_000);

  it('trains the autoencoder with the PatchGAN from disc_start, checkpoints it and resumes it', async () => {
    // 16 px images (an 8 px latent UNet at f = 2): the 2-layer PatchGAN's logit map is 2×2.
    // A small PatchGAN (ndf 8, 2 layers): the pure-JS backend trains CompVis's 2.7 M-parameter one slowly.
    const input = latent({ train: { steps: 2, batchSize: 2, discriminator: { start: 1, ndf: 8, layers: 2 } } });
    (input.model as { diffusion: Record<string, unknown> }).diffusion = { ...unet(8), channels: [32], resBlocks: [1] };
    input.phases = [{ resolution: 8, batchSize: 2, steps: 1 }];
    const config = parseRunConfig(input);
    const stage = runStages(config)[0];
    if (stage.kind !== 'autoencoder') throw new Error('expected the autoencoder stage first');
    expect(stage.imageResolution).toBe(16);
    const dir = tempRun();
    await trainAutoencoderStage(stage, config, dir, { resume: false });
    await trainAutoencoderStage(stage, config, dir, { resume: true, steps: 3 });
    expect(readAutoencoderProgress(dir)).toMatchObject({ step: 3, train: { globalStep: 3 } });
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((r) => r.step)).toEqual([1, 2, 3]);
    // Before disc_start the GAN terms are off; from it on the discriminator is trained.
    expect(rows[0].discFactor).toBe(0);
    expect(rows[2].discFactor).toBe(1);
    expect(Number.isFinite(rows[2].discLoss)).toBe(true);
    expect(existsSync(join(dir, 'autoencoder.safetensors'))).toBe(true);
  }, 180_000);

  it('refuses a diffusion model whose channels are not the latent width', () => {
    const config = latent();
    (config.model as { diffusion: Record<string, unknown> }).diffusion.imageChannels = 3;
    expect(() => parseRunConfig(config)).toThrow(ConfigError);
  });
});
