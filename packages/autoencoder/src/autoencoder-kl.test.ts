import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { SafetensorsFile, readSafetensors, writeSafetensors } from '@matryoshka-ts/checkpoint';
import { paramCountOf } from '@matryoshka-ts/layers';
import { AutoencoderKL, autoencoderSpecs } from './autoencoder-kl.js';
import { type AutoencoderKLConfig, autoencoderPreset, fromCompVisConfig, validateConfig } from './config.js';
import {
  diagonalGaussian,
  disposePosterior,
  klDivergence,
  negativeLogLikelihood,
  posteriorMode,
  samplePosterior,
} from './posterior.js';
import { loadAutoencoder, saveAutoencoder } from './weights-file.js';

const tiny: AutoencoderKLConfig = {
  inChannels: 3,
  outChannels: 3,
  ch: 32,
  chMult: [1, 2],
  numResBlocks: 1,
  attnResolutions: [16, 8],
  resolution: 16,
  zChannels: 4,
  embedDim: 3,
  dropout: 0,
};

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

describe('configs', () => {
  // The Stable Diffusion VAE is CompVis's kl-f8 shape: 83,653,863 parameters (diffusers'
  // AutoencoderKL of SD 1.x reports the same count).
  it('kl-f8 has the Stable Diffusion VAE’s parameter count', () => {
    expect(paramCountOf(autoencoderSpecs(autoencoderPreset('kl-f8')))).toBe(83_653_863);
  });

  it('kl-f4 halves three times less: f = 4, 3 latent channels', () => {
    const c = autoencoderPreset('kl-f4');
    expect(c.chMult).toEqual([1, 2, 4]);
    expect(c.embedDim).toBe(3);
  });

  it('reads a CompVis ddconfig and rejects what it cannot build', () => {
    const dd = {
      double_z: true,
      z_channels: 4,
      resolution: 256,
      in_channels: 3,
      out_ch: 3,
      ch: 128,
      ch_mult: [1, 2, 4, 4],
      num_res_blocks: 2,
      attn_resolutions: [],
      dropout: 0.0,
    };
    expect(fromCompVisConfig(dd, 4)).toEqual(autoencoderPreset('kl-f8'));
    expect(() => fromCompVisConfig({ ...dd, double_z: false }, 4)).toThrow(ConfigError);
    expect(() => fromCompVisConfig({ ...dd, tanh_out: true }, 4)).toThrow(/tanh_out/);
    expect(() => validateConfig({ ...tiny, ch: 24 })).toThrow(/not divisible by the 32 GroupNorm groups/);
  });
});

describe('AutoencoderKL', () => {
  let model: AutoencoderKL;
  beforeAll(() => {
    model = new AutoencoderKL(tiny, { seed: 1 });
  });
  afterAll(() => model.dispose());

  it('encodes [B, H, W, 3] to latents of H/f × W/f × embedDim and decodes back, non-square too', () => {
    const start = tf.memory().numTensors;
    const x = new Rng(2).normalTensor([2, 16, 24, 3]) as tf.Tensor4D;
    const posterior = model.encode(x);
    expect(posterior.mean.shape).toEqual([2, 8, 12, 3]);
    expect(posterior.logvar.shape).toEqual([2, 8, 12, 3]);
    const z = posteriorMode(posterior);
    const y = model.decode(z);
    expect(y.shape).toEqual([2, 16, 24, 3]);
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, z, y]);
    disposePosterior(posterior);
    expect(tf.memory().numTensors).toBe(start);
  });

  it('refuses images and latents of the wrong channel count', () => {
    const x = tf.zeros([1, 16, 16, 4]) as tf.Tensor4D;
    expect(() => model.encode(x)).toThrow(/\[B, H, W, 3\]/);
    expect(() => model.decode(x)).toThrow(/\[B, h, w, 3\]/);
    x.dispose();
  });

  it('saves atomically and loads back (CompVis and diffusers names) with the config in the metadata', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ae-'));
    try {
      const z = new Rng(5).normalTensor([1, 4, 4, 3]) as tf.Tensor4D;
      const want = model.decode(z);
      for (const naming of ['compvis', 'diffusers'] as const) {
        const path = join(dir, `${naming}.safetensors`);
        saveAutoencoder(model, path, { naming });
        const loaded = loadAutoencoder(path);
        expect(loaded.config).toEqual(tiny);
        const got = loaded.decode(z);
        expect(Array.from(got.dataSync())).toEqual(Array.from(want.dataSync()));
        tf.dispose(got);
        loaded.dispose();
      }
      expect(readdirSync(dir).sort()).toEqual(['compvis.safetensors', 'diffusers.safetensors']);
      tf.dispose([z, want]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('asks for a config when the file has none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ae-'));
    try {
      const path = join(dir, 'bare.safetensors');
      saveAutoencoder(model, path);
      const file = SafetensorsFile.open(path);
      expect(Object.keys(file.metadata)).toContain('ldm_autoencoder_config');
      file.close();
      const withoutConfig = join(dir, 'none.safetensors');
      // A file converted from a .ckpt carries no metadata.
      writeSafetensors(withoutConfig, readSafetensors(path).tensors);
      expect(() => loadAutoencoder(withoutConfig)).toThrow(CheckpointError);
      const loaded = loadAutoencoder(withoutConfig, { config: tiny });
      expect(loaded.paramCount).toBe(model.paramCount);
      loaded.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the diagonal Gaussian posterior', () => {
  // mean 0.5, logvar ln 0.25 (std 0.5) in channel 0 of every cell; the second sample clamps.
  const moments = () =>
    tf.tidy(() => {
      const mean = tf.fill([2, 2, 3, 1], 0.5);
      const logvar = tf.concat([tf.fill([1, 2, 3, 1], Math.log(0.25)), tf.fill([1, 2, 3, 1], -40)], 0);
      return tf.concat([mean, logvar], 3) as tf.Tensor4D;
    });

  it('KL, sample, NLL and the log-variance clamp follow their closed forms', () => {
    const m = moments();
    const p = diagonalGaussian(m);
    const kl = klDivergence(p).dataSync();
    // ½ Σ (μ² + σ² − 1 − ln σ²) over 6 cells; the clamped sample has logvar −30.
    expect(kl[0]).toBeCloseTo(0.5 * 6 * (0.25 + 0.25 - 1 - Math.log(0.25)), 5);
    expect(kl[1]).toBeCloseTo(0.5 * 6 * (0.25 + Math.exp(-30) - 1 + 30), 4);
    const eps = tf.fill([2, 2, 3, 1], 2) as tf.Tensor4D;
    const z = samplePosterior(p, eps);
    expect(z.dataSync()[0]).toBeCloseTo(0.5 + 0.5 * 2, 6);
    const nll = negativeLogLikelihood(p, z).dataSync();
    // (z − μ)²/σ² = ε² = 4.
    expect(nll[0]).toBeCloseTo(0.5 * 6 * (Math.log(2 * Math.PI) + Math.log(0.25) + 4), 4);
    const g = tf.grad((x: tf.Tensor) => {
      const q = diagonalGaussian(x as tf.Tensor4D);
      return tf.sum(klDivergence(q));
    })(m);
    const grad = g.arraySync() as number[][][][];
    // ∂KL/∂logvar = ½(σ² − 1) inside the clamp, 0 where the clamp holds.
    expect(grad[0][0][0][1]).toBeCloseTo(0.5 * (0.25 - 1), 5);
    expect(grad[1][0][0][1]).toBe(0);
    tf.dispose([m, eps, z, g]);
    disposePosterior(p);
  });
});
