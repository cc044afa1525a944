import type { NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import type { TrainConfigInput } from './config.js';

/**
 * The presets of the baseline comparison (the paper's Fig. 4 at our scale, docs/baselines.md):
 * every run trains on the bundled "Smileys & Emotion" emoji at 64 px with the same batch (8), the
 * same number of steps (400), the same optimizer and text conditioning, and is sampled the same
 * way; they differ only in the method. Sized for a few minutes each on 2 CPU cores (native).
 */
const STEPS = 400;
const BATCH = 8;
const text = { featureDim: 64, projDim: 64, headLayers: 1, maskedCrossAttention: true };

/** The `emoji` preset's levels before its retune (2026-12-07): 64 px [8, 16], 32 px [16, 32], 16 px [32, 64]. */
const level16 = {
  resolution: 16,
  channels: [32, 64],
  resBlocks: [1, 1],
  attentionLayers: [0, 1],
  groups: 8,
  timeEmbedDim: 128,
};
const level32 = { resolution: 32, channels: [16, 32], resBlocks: [1, 1], groups: 8, timeEmbedDim: 128 };
const level64 = { resolution: 64, channels: [8, 16], resBlocks: [1, 1], groups: 4, timeEmbedDim: 128 };
const mdm: NestedUNetConfig = { ...level64, inner: { ...level32, inner: level16 }, text };

const shared = {
  data: { categories: ['Smileys & Emotion'], skinTones: false },
  conditioning: { kind: 'text', dropout: 0.1, encoder: { width: 64, maxTokens: 12 } },
  optimizer: { lr: 1e-3, warmupSteps: 100 },
  ema: { decay: 0.999 },
  sampling: { n: 8, steps: 50, sampler: 'ddim', guidance: 2, threshold: 'clip', every: 0 },
  checkpointEvery: 100,
  snapshotEvery: 100,
  plotEvery: 100,
} satisfies Partial<TrainConfigInput>;

/** MDM trained progressively: 16 px, then 32 px, then all three levels (the `emoji` schedule, scaled to 400 steps). */
const compareMdm: TrainConfigInput = {
  ...shared,
  model: mdm,
  phases: [
    { resolution: 16, batchSize: BATCH, steps: 70 },
    { resolution: 32, batchSize: BATCH, steps: 70 },
    { resolution: 64, batchSize: BATCH, steps: STEPS - 140 },
  ],
};

/** MDM without progressive training: all three levels from the start. */
const compareMdmNoPt: TrainConfigInput = {
  ...shared,
  model: mdm,
  phases: [{ resolution: 64, batchSize: BATCH, steps: STEPS }],
};

/**
 * Simple DM: one 64 px UNet down to 8 px ([8, 16, 32, 64], attention at the 8 px bottleneck) with
 * the noise schedule of the MDM's 64 px level (cosine, SNR/4: the ml-mdm shift for 64 over 16).
 */
const compareSimple: TrainConfigInput = {
  ...shared,
  model: {
    kind: 'simple',
    resolution: 64,
    channels: [8, 16, 32, 64],
    resBlocks: [1, 1, 1, 1],
    groups: 4,
    timeEmbedDim: 128,
    text,
  },
  schedule: { name: 'cosine-shift4' },
  phases: [{ resolution: 64, batchSize: BATCH, steps: STEPS }],
};

/** The paper's second simple-DM variant: the MDM's NestedUNet trained with the 64 px loss only. */
const compareNestedTopLoss: TrainConfigInput = {
  ...shared,
  model: { ...mdm, kind: 'simple' },
  phases: [{ resolution: 64, batchSize: BATCH, steps: STEPS }],
};

/**
 * Cascaded DM: a 16 px base (the MDM's 16 px level as a UNet), then a 16 → 64 px super-resolution
 * UNet ([8, 16, 32]); the 400 steps split evenly between the stages.
 */
const compareCascaded: TrainConfigInput = {
  ...shared,
  model: {
    kind: 'cascaded',
    stages: [
      { model: { ...level16, text }, phases: [{ resolution: 16, batchSize: BATCH, steps: STEPS / 2 }] },
      {
        model: { resolution: 64, channels: [8, 16, 32], resBlocks: [1, 1, 1], groups: 4, timeEmbedDim: 128, text },
        phases: [{ resolution: 64, batchSize: BATCH, steps: STEPS / 2 }],
      },
    ],
    augLevel: 100,
  },
};

/**
 * Latent DM: a KL autoencoder (f = 4, 4 latent channels, widths 32/32/64) trained here first, then a 16 px
 * UNet (the MDM's 16 px level) on its 16×16×4 latents for 400 steps.
 */
const compareLatent: TrainConfigInput = {
  ...shared,
  model: {
    kind: 'latent',
    autoencoder: {
      preset: 'kl-f4',
      ch: 32,
      chMult: [1, 1, 2],
      numResBlocks: 1,
      zChannels: 4,
      embedDim: 4,
      train: { steps: 400, batchSize: 8, lr: 4.5e-4 },
    },
    diffusion: { ...level16, text },
  },
  phases: [{ resolution: 16, batchSize: BATCH, steps: STEPS }],
};

export const COMPARISON_PRESETS: Record<string, TrainConfigInput> = {
  'compare-mdm': compareMdm,
  'compare-mdm-nopt': compareMdmNoPt,
  'compare-simple': compareSimple,
  'compare-nested-toploss': compareNestedTopLoss,
  'compare-cascaded': compareCascaded,
  'compare-latent': compareLatent,
};
