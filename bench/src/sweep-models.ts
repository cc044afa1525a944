// The models `pnpm bench --sweep` times against PyTorch, beyond the default (`emoji`) one: how the
// ratio tfjs / PyTorch moves with model size. Each is a training config like TRAIN_PRESETS' (the
// phases only matter for parsing: the bench times the full model), small enough that a training
// step at batch 1 takes seconds on 2 CPU cores (batch 8 does not fit tfjs `native`'s memory: see
// sweep.ts), and within what bench/torch/mdm_reference.py rebuilds.
import { TRAIN_PRESETS, type TrainConfigInput } from '@matryoshka-ts/pipelines';

/** The bundled emoji as data (never loaded by the bench); schedule, loss and optimizer are the defaults. */
const shared = { data: { skinTones: false } } satisfies Partial<TrainConfigInput>;

/**
 * `cc12m-64-quarter`: the official cc12m_64x64 UNet (MDM-S64 + micro-conditioning `scale: 64`) at a
 * quarter of its widths: channels [64, 128, 192] instead of [256, 512, 768], T = 256 instead of
 * 1024, the same blocks, attention layers and feed-forward. Differs from cc12m-64 also in its text:
 * 64-wide hashed-word features (instead of FLAN-T5 XL's 2048) projected to 512 (a quarter of 2048),
 * with cc12m-64's unmasked cross-attention and no text head.
 */
const cc12m64Quarter: TrainConfigInput = {
  ...shared,
  model: {
    resolution: 64,
    channels: [64, 128, 192],
    resBlocks: [2, 2, 2],
    attentionLayers: [0, 1, 5],
    attentionFfn: true,
    timeEmbedDim: 256,
    microConditioning: { scale: 64 },
    text: { featureDim: 64, projDim: 512, headLayers: 0, maskedCrossAttention: false },
  },
  conditioning: { kind: 'text', encoder: { width: 64, maxTokens: 16 } },
  phases: [{ resolution: 64, batchSize: 8, steps: 1 }],
};

/**
 * `nest-256-64`: the paper's MDM-S64S128S256 nest (256 px [64, 128] [2, 1] → 128 px [128, 256] [2, 1]
 * → MDM-S64) at an eighth of its widths and T = 1024 / 8: an eighth is the narrowest where the 64 px
 * level keeps its attention (it needs multiples of 32 channels). Its 32 px attention (1024 tokens,
 * 8 heads) holds as many logits at any width: a training step takes ~2.5 s in tfjs and ~6 s in
 * PyTorch at batch 1, 39 s in PyTorch at batch 8. Groups: 8 in the two outer levels (the default 32
 * does not divide 8 or 16 channels). Text as `emoji`'s (64-wide hashed words, masked
 * cross-attention, one head layer), not the paper's.
 */
const nest256To64: TrainConfigInput = {
  ...shared,
  model: {
    resolution: 256,
    channels: [8, 16],
    resBlocks: [2, 1],
    groups: 8,
    timeEmbedDim: 128,
    inner: {
      resolution: 128,
      channels: [16, 32],
      resBlocks: [2, 1],
      groups: 8,
      timeEmbedDim: 128,
      inner: {
        resolution: 64,
        channels: [32, 64, 96],
        resBlocks: [2, 2, 2],
        attentionLayers: [0, 1, 5],
        attentionFfn: true,
        timeEmbedDim: 128,
      },
    },
    text: { featureDim: 64, projDim: 64, headLayers: 1, maskedCrossAttention: true },
  },
  // The bundled emoji are 64 px, too small for a 256 px model to parse; the bench reads no data.
  data: { source: 'cc12m', path: 'cc12m-shards (not read by the bench)' },
  conditioning: { kind: 'text', encoder: { width: 64, maxTokens: 12 } },
  phases: [{ resolution: 256, batchSize: 8, steps: 1 }],
};

export const SWEEP_MODELS: Record<string, TrainConfigInput> = {
  emoji: TRAIN_PRESETS.emoji,
  'cc12m-64-quarter': cc12m64Quarter,
  'nest-256-64': nest256To64,
};

/** A train preset or a sweep model by name (what export-reference.ts and tfjs-steps.ts accept). */
export function benchModel(name: string): TrainConfigInput {
  const config = SWEEP_MODELS[name] ?? TRAIN_PRESETS[name];
  if (!config) {
    const names = [...new Set([...Object.keys(TRAIN_PRESETS), ...Object.keys(SWEEP_MODELS)])];
    throw new Error(`unknown train preset or sweep model '${name}' (available: ${names.join(', ')})`);
  }
  return config;
}
