import { type NestedUNetConfig, type UNetLevelConfig, resolveConfig } from './config.js';

/** How a preset is conditioned: text (CC12M, WebVid), class labels (ImageNet) or nothing. */
export type PresetConditioning =
  | { kind: 'text'; featureDim?: number }
  | { kind: 'labels'; numClasses?: number }
  | { kind: 'none' };

export interface PresetOptions {
  /** Default: text with FLAN-T5 XL features (width 2048) for the paper presets and the official ones. */
  conditioning?: PresetConditioning;
}

// ------------------------------------------------------------------ the paper's Appendix A

/** MDM-S64's 64 px UNet: [256, 512, 768] at 64/32/16 px, [2, 2, 2] res blocks, [0, 1, 5] attention layers, T = 1024. */
function s64(): UNetLevelConfig {
  return {
    resolution: 64,
    channels: [256, 512, 768],
    resBlocks: [2, 2, 2],
    attentionLayers: [0, 1, 5],
    attentionFfn: true, // not stated in the paper; the official 64 px model has it
    timeEmbedDim: 1024,
  };
}

/** An attention-free outer level (the paper's outer levels have num_attn_layers_per_block = 0). */
function outer(resolution: number, channels: number[], resBlocks: number[], inner: UNetLevelConfig): UNetLevelConfig {
  return { resolution, channels, resBlocks, attentionLayers: channels.map(() => 0), timeEmbedDim: 1024, inner };
}

/**
 * The paper's text model: FLAN-T5 XL features (2048) projected to 1024 with 2 learnable text-head
 * layers; padded tokens are masked (the paper does not say; the official code does not mask).
 */
function withConditioning(unet: UNetLevelConfig, options: PresetOptions, paper: boolean): NestedUNetConfig {
  const cond = options.conditioning ?? { kind: 'text' };
  const config: NestedUNetConfig = { ...unet, imageChannels: 3, attentionHeads: 8 };
  if (cond.kind === 'text') {
    config.text = paper
      ? { featureDim: cond.featureDim ?? 2048, projDim: 1024, headLayers: 2, maskedCrossAttention: true }
      : { featureDim: cond.featureDim ?? 2048, projDim: 2048, headLayers: 0, maskedCrossAttention: false };
  } else if (cond.kind === 'labels') {
    // ImageNet: no cross-attention; the label is fused with the time embedding (paper, Appendix E).
    config.labels = { numClasses: cond.numClasses ?? 1000 };
  }
  return config;
}

/**
 * The paper's temporal level (MDM-S64T16): 16 frames of 64 px, five stages of 256 channels along
 * time (16 → 8 → 4 → 2 → 1 frames), [2, 2, 2, 2, 1] res blocks, one temporal-attention block after
 * each on the first four stages, around `inner` (the 64 px image UNet).
 */
function t16(inner: UNetLevelConfig): UNetLevelConfig {
  return {
    resolution: 64,
    temporal: true,
    channels: [256, 256, 256, 256, 256],
    resBlocks: [2, 2, 2, 2, 1],
    attentionLayers: [0, 0, 0, 0, 0],
    temporalAttentionLayers: [1, 1, 1, 1, 0],
    timeEmbedDim: 1024,
    inner,
  };
}

const paperPresets: Record<string, () => UNetLevelConfig> = {
  'MDM-S64': s64,
  'MDM-S64T16': () => t16(s64()),
  // Appendix A: the 256 px spatial level runs on each of the 16 frames around the temporal level.
  'MDM-S64T16S256': () => outer(256, [64, 128, 256], [2, 2, 1], t16(s64())),
  'MDM-S64S256': () => outer(256, [64, 128, 256], [2, 2, 1], s64()),
  'MDM-S64S128S256': () => outer(256, [64, 128], [2, 1], outer(128, [128, 256], [2, 1], s64())),
  'MDM-S64S256S1024': () => outer(1024, [32, 32, 64], [2, 2, 1], outer(256, [64, 128, 256], [2, 2, 1], s64())),
  'MDM-S64S128S256S512S1024': () =>
    outer(
      1024,
      [32, 32],
      [2, 1],
      outer(512, [32, 64], [2, 1], outer(256, [64, 128], [2, 1], outer(128, [128, 256], [2, 1], s64()))),
    ),
};

// ------------------------------------------------------------------ the official code's shipped configs

/** The official cc12m_64x64 UNet: as MDM-S64 plus micro-conditioning `scale:64`. */
function cc12m64(): UNetLevelConfig {
  return { ...s64(), microConditioning: { scale: 64 } };
}

function cc12m256(normalise: boolean): UNetLevelConfig {
  return {
    ...outer(256, [64, 128, 256], [2, 2, 1], cc12m64()),
    microConditioning: { scale: 256 },
    inputStdNormalisation: normalise,
  };
}

const officialPresets: Record<string, () => UNetLevelConfig> = {
  'cc12m-64': cc12m64,
  'cc12m-256': () => cc12m256(false),
  // In the 1024 config the middle (256 px) level has skip_normalization: false.
  'cc12m-1024': () => ({ ...outer(1024, [32, 32, 64], [2, 2, 1], cc12m256(true)), microConditioning: { scale: 1024 } }),
};

/** Names of every preset. */
export const PRESET_NAMES = [...Object.keys(paperPresets), ...Object.keys(officialPresets)] as const;

/**
 * A model config by name: the paper's Appendix A configs (MDM-S64 … MDM-S64S128S256S512S1024, the
 * video models MDM-S64T16 and MDM-S64T16S256,
 * text-conditioned by default, class-conditioned with `{ conditioning: { kind: 'labels' } }`) or
 * the official code's shipped configs (`cc12m-64`, `cc12m-256`, `cc12m-1024`).
 */
export function preset(name: string, options: PresetOptions = {}): NestedUNetConfig {
  if (paperPresets[name]) return withConditioning(paperPresets[name](), options, true);
  if (officialPresets[name]) return withConditioning(officialPresets[name](), options, false);
  throw new Error(`Unknown preset '${name}'. Available: ${PRESET_NAMES.join(', ')}`);
}

/**
 * Per-level schedule shift factors s^p of a preset (the paper's cosine-shiftN), outermost first; a
 * clip of F frames counts as its frames tiled √F × √F (MDM-S64T16S256: 16, 4, 1).
 */
export function presetShifts(name: string): number[] {
  const sizes = resolveConfig(preset(name)).levels.map((l) => l.resolution * Math.sqrt(l.frames));
  const innermost = sizes[sizes.length - 1];
  // cc12m-1024 uses power 2 (SNR/256 at 1024 px, SNR/16 at 256 px); every other config power 1.
  const power = name === 'cc12m-1024' ? 2 : 1;
  return sizes.map((s) => (s / innermost) ** power);
}
