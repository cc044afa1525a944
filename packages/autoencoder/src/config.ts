import { z } from 'zod';
import { ConfigError } from '@matryoshka-ts/core';

/**
 * The shape of a KL autoencoder (CompVis latent-diffusion's `AutoencoderKL`). Field for field
 * the CompVis `ddconfig` plus `embed_dim`, in camelCase; `fromCompVisConfig` reads the original.
 */
export interface AutoencoderKLConfig {
  /** Image channels in (3). */
  inChannels: number;
  /** Image channels out (3). */
  outChannels: number;
  /** Base width; level i has `ch · chMult[i]` channels. */
  ch: number;
  /** Width multipliers, one per level; the image is halved between levels (f = 2^(levels−1)). */
  chMult: number[];
  /** Residual blocks per encoder level (the decoder has one more). */
  numResBlocks: number;
  /**
   * Resolutions (counted from `resolution`, halving per level) whose blocks are followed by an
   * attention block. The mid block always has one.
   */
  attnResolutions: number[];
  /** The nominal input size that `attnResolutions` is counted from (inputs may be any multiple of f). */
  resolution: number;
  /** Channels of the encoder output (its `conv_out` gives 2·zChannels: mean and log-variance). */
  zChannels: number;
  /** Channels of the latent after `quant_conv` (the diffusion model's channels). */
  embedDim: number;
  /** Dropout in the residual blocks while training (CompVis: 0). */
  dropout: number;
}

/** GroupNorm of every block: 32 groups, eps 1e-6 (CompVis `Normalize`). */
export const NORM_GROUPS = 32;
export const NORM_EPS = 1e-6;

/** CompVis's `ddconfig` as written in its YAML files, plus `embed_dim`. */
export const compVisConfigSchema = z
  .object({
    double_z: z.literal(true, { message: 'a KL autoencoder needs double_z: true (mean and log-variance)' }),
    z_channels: z.number().int().positive(),
    resolution: z.number().int().positive(),
    in_channels: z.number().int().positive(),
    out_ch: z.number().int().positive(),
    ch: z.number().int().positive(),
    ch_mult: z.array(z.number().int().positive()).min(1),
    num_res_blocks: z.number().int().positive(),
    attn_resolutions: z.array(z.number().int().positive()),
    dropout: z.number().min(0).max(1).default(0),
    resamp_with_conv: z.literal(true).optional(),
    give_pre_end: z.literal(false).optional(),
    tanh_out: z.literal(false).optional(),
    attn_type: z.literal('vanilla').optional(),
  })
  .strict();

export type CompVisConfig = z.input<typeof compVisConfigSchema>;

/** Reads CompVis's `ddconfig` (and `embed_dim`) into our config, validated. */
export function fromCompVisConfig(ddconfig: unknown, embedDim: number): AutoencoderKLConfig {
  const parsed = compVisConfigSchema.safeParse(ddconfig);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new ConfigError(`invalid autoencoder ddconfig: ${issues.join('; ')}`);
  }
  const d = parsed.data;
  return validateConfig({
    inChannels: d.in_channels,
    outChannels: d.out_ch,
    ch: d.ch,
    chMult: d.ch_mult,
    numResBlocks: d.num_res_blocks,
    attnResolutions: d.attn_resolutions,
    resolution: d.resolution,
    zChannels: d.z_channels,
    embedDim,
    dropout: d.dropout,
  });
}

/** Our config as CompVis's `ddconfig` and `embed_dim` (for exports that CompVis code can load). */
export function toCompVisConfig(c: AutoencoderKLConfig): { ddconfig: CompVisConfig; embed_dim: number } {
  return {
    ddconfig: {
      double_z: true,
      z_channels: c.zChannels,
      resolution: c.resolution,
      in_channels: c.inChannels,
      out_ch: c.outChannels,
      ch: c.ch,
      ch_mult: [...c.chMult],
      num_res_blocks: c.numResBlocks,
      attn_resolutions: [...c.attnResolutions],
      dropout: c.dropout,
    },
    embed_dim: c.embedDim,
  };
}

/** Checks what the architecture needs: widths divisible by the 32 norm groups, positive sizes. */
export function validateConfig(c: AutoencoderKLConfig): AutoencoderKLConfig {
  const problems: string[] = [];
  for (const [key, v] of Object.entries({
    inChannels: c.inChannels,
    outChannels: c.outChannels,
    ch: c.ch,
    numResBlocks: c.numResBlocks,
    resolution: c.resolution,
    zChannels: c.zChannels,
    embedDim: c.embedDim,
  }))
    if (!Number.isInteger(v) || v <= 0) problems.push(`${key} must be a positive integer, got ${v}`);
  if (c.chMult.length === 0) problems.push('chMult needs at least one level');
  for (const m of c.chMult)
    if ((c.ch * m) % NORM_GROUPS !== 0)
      problems.push(`ch·chMult = ${c.ch}·${m} is not divisible by the ${NORM_GROUPS} GroupNorm groups`);
  if (!(c.dropout >= 0 && c.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${c.dropout}`);
  if (problems.length) throw new ConfigError(`invalid autoencoder config: ${problems.join('; ')}`);
  return c;
}

/** The spatial downsampling factor f = 2^(levels − 1). */
export function downsamplingFactor(c: AutoencoderKLConfig): number {
  return 2 ** (c.chMult.length - 1);
}

/**
 * CompVis's released first stages (`models/first_stage_models/kl-f*`, `configs/autoencoder/`):
 * `kl-f4` (64×64×3 latents of 256 px images) and `kl-f8` (32×32×4; the Stable Diffusion VAE's
 * shape), plus `kl-f16` and `kl-f32`.
 */
export const AUTOENCODER_PRESETS = {
  'kl-f4': { zChannels: 3, embedDim: 3, chMult: [1, 2, 4], attnResolutions: [] },
  'kl-f8': { zChannels: 4, embedDim: 4, chMult: [1, 2, 4, 4], attnResolutions: [] },
  'kl-f16': { zChannels: 16, embedDim: 16, chMult: [1, 1, 2, 2, 4], attnResolutions: [16] },
  'kl-f32': { zChannels: 64, embedDim: 64, chMult: [1, 1, 2, 2, 4, 4], attnResolutions: [16, 8] },
} as const satisfies Record<string, Pick<AutoencoderKLConfig, 'zChannels' | 'embedDim' | 'chMult' | 'attnResolutions'>>;

export type AutoencoderPresetName = keyof typeof AUTOENCODER_PRESETS;
export const AUTOENCODER_PRESET_NAMES = Object.keys(AUTOENCODER_PRESETS) as AutoencoderPresetName[];

/** A preset's config (ch 128, 2 residual blocks, 256 px, RGB), with any field overridden. */
export function autoencoderPreset(
  name: AutoencoderPresetName,
  overrides: Partial<AutoencoderKLConfig> = {},
): AutoencoderKLConfig {
  const p = AUTOENCODER_PRESETS[name];
  if (!p) throw new ConfigError(`unknown autoencoder preset '${name}' (known: ${AUTOENCODER_PRESET_NAMES.join(', ')})`);
  return validateConfig({
    inChannels: 3,
    outChannels: 3,
    ch: 128,
    numResBlocks: 2,
    resolution: 256,
    dropout: 0,
    ...p,
    chMult: [...p.chMult],
    attnResolutions: [...p.attnResolutions],
    ...overrides,
  });
}
