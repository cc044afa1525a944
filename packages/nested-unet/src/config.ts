import { ConfigError } from '@matryoshka-ts/core';
import { z } from 'zod';

/**
 * One UNet level of a NestedUNet, outermost first; `inner` is the next lower-resolution level,
 * which takes the place of this level's mid block (the paper's `inner_config`).
 */
export interface UNetLevelConfig {
  /** Image size this level denoises (square), e.g. 256. */
  resolution: number;
  /** Feature channels per stage; each stage after the first halves the resolution. */
  channels: number[];
  /** Residual blocks per stage on the way down (the way up has one more per stage). */
  resBlocks: number[];
  /** Attention layers after each residual block, per stage (0 = none). */
  attentionLayers?: number[];
  /** GroupNorm groups in residual blocks and the output norm (attention always uses 32). */
  groups?: number;
  /** Feed-forward (GroupNorm → 1×1 4× → GELU → 1×1) after each attention layer. */
  attentionFfn?: boolean;
  /** Dropout inside residual blocks (training only). */
  dropout?: number;
  /** Width T of the time embedding (default 4 × channels[0]); the sinusoid has T/4 entries. */
  timeEmbedDim?: number;
  /** Micro-conditioning: name → default value, each adding a sinusoid + MLP term (`{ scale: 64 }`). */
  microConditioning?: Record<string, number>;
  /** Divide the input image by its per-sample standard deviation (unbiased) before conv_in. */
  inputStdNormalisation?: boolean;
  /** Pass this level's bottleneck feature into the inner level through a 3×3 adapter (default true). */
  innerInput?: boolean;
  /** Innermost level only: res block, attention layer, res block at the bottleneck (default true). */
  midBlock?: boolean;
  /**
   * false: the first stage's resample conv keeps the resolution (stride 1, and no ×2 upsampling on
   * the way back): the paper's latent-diffusion f8 variant, a UNet that does not downsample after
   * its first ResNet block (Appendix D.2). Default true.
   */
  firstDownsample?: boolean;
  /**
   * A level that runs along time (the video model's, the official `temporal_mode`): it denoises a
   * clip of F = 2^(stages − 1) frames of `resolution` px, its residual blocks run per frame, and
   * its resampling halves and doubles the frames instead of the pixels (16 → 8 → 4 → 2 → 1); the
   * single frame left at the bottom feeds `inner`, an image level of the same resolution. Levels
   * outside a temporal level run per frame on its clip (spatial levels over frames).
   */
  temporal?: boolean;
  /** Temporal-attention blocks after each residual block, per stage (temporal levels; default 0). */
  temporalAttentionLayers?: number[];
  /** Rotary position encoding of the frame index in temporal attention (default false, as the official code). */
  rotaryPositions?: boolean;
  /** The next, lower-resolution level. */
  inner?: UNetLevelConfig;
}

/** Text conditioning: frozen encoder features → projection → optional learnable head. */
export interface TextConditioningConfig {
  /** Width D of the frozen encoder's token features (2048 for FLAN-T5 XL). */
  featureDim: number;
  /** Width P of the learned projection (0 = no projection: the features are used as they are). */
  projDim: number;
  /** Learnable self-attention layers over the projected tokens (the paper's text head: 2). */
  headLayers: number;
  /** Exclude padded tokens from cross-attention and the text head (the official configs do not). */
  maskedCrossAttention: boolean;
}

/** Class-label conditioning (ImageNet): a learned embedding added to every level's time embedding. */
export interface LabelConditioningConfig {
  /** Number of classes; label id `numClasses` is the null label used for guidance. */
  numClasses: number;
}

export interface NestedUNetConfig extends UNetLevelConfig {
  /** Image channels in and out (3). */
  imageChannels?: number;
  /** Attention heads in every spatial and text attention layer (8). */
  attentionHeads?: number;
  text?: TextConditioningConfig;
  labels?: LabelConditioningConfig;
  /**
   * A cascaded super-resolution stage (Saharia et al. 2022; the paper's Appendix D.1): the
   * low-resolution image, bilinearly upsampled, is concatenated to level 0's noisy input, and its
   * noise-augmentation step is embedded like time (`aug_layer1/2`) and added to the time embedding.
   */
  lowResCondition?: boolean;
}

const int = z.number().int();
const pos = int.positive();

const levelFields = {
  resolution: pos,
  channels: z.array(pos).min(1),
  resBlocks: z.array(pos).min(1),
  attentionLayers: z.array(int.nonnegative()).optional(),
  groups: pos.optional(),
  attentionFfn: z.boolean().optional(),
  dropout: z.number().min(0).lt(1).optional(),
  timeEmbedDim: pos.optional(),
  microConditioning: z.record(z.string(), z.number().positive()).optional(),
  inputStdNormalisation: z.boolean().optional(),
  innerInput: z.boolean().optional(),
  midBlock: z.boolean().optional(),
  firstDownsample: z.boolean().optional(),
  temporal: z.boolean().optional(),
  temporalAttentionLayers: z.array(int.nonnegative()).optional(),
  rotaryPositions: z.boolean().optional(),
};

const levelSchema: z.ZodType<UNetLevelConfig> = z.lazy(() =>
  z.strictObject({ ...levelFields, inner: levelSchema.optional() }),
);

/** zod schema of `NestedUNetConfig` (recursive through `inner`). */
export const nestedUNetConfigSchema = z.strictObject({
  ...levelFields,
  inner: levelSchema.optional(),
  imageChannels: pos.optional(),
  attentionHeads: pos.optional(),
  text: z
    .strictObject({
      featureDim: pos,
      projDim: int.nonnegative(),
      headLayers: int.nonnegative(),
      maskedCrossAttention: z.boolean(),
    })
    .optional(),
  labels: z.strictObject({ numClasses: pos }).optional(),
  lowResCondition: z.boolean().optional(),
});

/**
 * What a level is: an ordinary `image` level, a `temporal` level (resamples along time), or a
 * `spatialPerFrame` level (an image UNet run on each frame of the clip of the temporal level inside it).
 */
export type LevelKind = 'image' | 'temporal' | 'spatialPerFrame';

/** A level with every default filled in and its place in the nest worked out. */
export interface ResolvedLevel {
  /** 0 = outermost (highest resolution). */
  index: number;
  kind: LevelKind;
  /** Frames per sample this level denoises (1 for an image level): its tensors are [B·frames, r, r, C]. */
  frames: number;
  /** Frames at each stage: a temporal level's halve per stage (16, 8, …, 1); others keep `frames`. */
  stageFrames: number[];
  /** Temporal-attention blocks after each residual block, per stage (0 outside temporal levels). */
  temporalAttentionLayers: number[];
  rotaryPositions: boolean;
  /** State-dict prefix of this level's parameters: `inner_unet.` repeated `index` times. */
  prefix: string;
  resolution: number;
  channels: number[];
  resBlocks: number[];
  attentionLayers: number[];
  groups: number;
  attentionFfn: boolean;
  dropout: number;
  timeEmbedDim: number;
  microConditioning: Record<string, number>;
  inputStdNormalisation: boolean;
  innerInput: boolean;
  midBlock: boolean;
  /** Whether the first stage's resample conv halves the resolution (see `UNetLevelConfig.firstDownsample`). */
  firstDownsample: boolean;
  isInnermost: boolean;
  /** Resolution at this level's bottleneck: resolution / 2^(stages − 1). */
  bottleneckResolution: number;
}

export interface ResolvedConfig {
  levels: ResolvedLevel[];
  imageChannels: number;
  attentionHeads: number;
  text?: TextConditioningConfig;
  labels?: LabelConditioningConfig;
  /** Super-resolution stage: conditioned on an upsampled low-resolution image and its augmentation step. */
  lowResCondition: boolean;
  /** Width of the text tokens every cross-attention sees (projDim, or featureDim without projection). */
  textWidth: number;
  /** The config as given (defaults not filled), for writing next to a run. */
  source: NestedUNetConfig;
}

/**
 * Thrown for a config that cannot build a model; the message names the field. The shared user
 * error of `@matryoshka-ts/core` (code CONFIG_INVALID), re-exported under its old name here.
 */
export { ConfigError };

function levelPath(index: number): string {
  return index === 0 ? '' : `${'inner.'.repeat(index)}`;
}

/** Validates a config (zod + structural checks) and fills defaults; errors name the field. */
export function resolveConfig(input: NestedUNetConfig): ResolvedConfig {
  const parsed = nestedUNetConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`model config: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const cfg = input;
  const heads = cfg.attentionHeads ?? 8;
  const levels: ResolvedLevel[] = [];
  const kinds = levelKinds(cfg);
  for (let node: UNetLevelConfig | undefined = cfg, i = 0; node; node = node.inner, i++) {
    const path = levelPath(i);
    const stages = node.channels.length;
    const bad = (field: string, why: string): never => {
      throw new ConfigError(`model config: ${path}${field}: ${why}`);
    };
    if (node.resBlocks.length !== stages)
      bad('resBlocks', `has ${node.resBlocks.length} entries for ${stages} stages (channels)`);
    const attention = node.attentionLayers ?? new Array(stages).fill(0);
    if (attention.length !== stages)
      bad('attentionLayers', `has ${attention.length} entries for ${stages} stages (channels)`);
    const groups = node.groups ?? 32;
    const firstDownsample = node.firstDownsample ?? true;
    if (!firstDownsample && stages < 2) bad('firstDownsample', 'needs at least two stages (channels)');
    const { kind, frames } = kinds[i];
    const temporal = kind === 'temporal';
    const temporalAttention = node.temporalAttentionLayers ?? new Array(stages).fill(0);
    checkVideoLevel(node, kind, frames, temporalAttention, bad);
    // Each stage after the first halves the resolution, except the second when firstDownsample is
    // false; a temporal level halves the frames instead.
    const halvings = temporal ? 0 : stages - 1 - (firstDownsample ? 0 : 1);
    const factor = 2 ** halvings;
    if (node.resolution % factor !== 0)
      bad('resolution', `${node.resolution} is not divisible by 2^${halvings} = ${factor} (its downsamplings)`);
    const isInnermost = !node.inner;
    if (node.inner) {
      const expected = node.resolution / factor;
      if (node.inner.resolution !== expected) {
        bad(
          'inner.resolution',
          `is ${node.inner.resolution}, but this level's bottleneck is ` +
            (temporal
              ? `${expected} px (a temporal level keeps the frame size)`
              : `${expected} px (${node.resolution} / 2^${halvings})`),
        );
      }
    }
    if (!isInnermost && node.midBlock)
      bad('midBlock', 'only the innermost level has a mid block (an inner level takes its place)');
    for (const [s, c] of node.channels.entries()) {
      if (c % groups !== 0) bad(`channels[${s}]`, `${c} is not divisible by groups (${groups})`);
      const hasAttention = attention[s] > 0 || (isInnermost && (node.midBlock ?? true) && s === stages - 1);
      if (attention[s] > 0 && frames > 1)
        bad(`attentionLayers[${s}]`, 'a level over frames has no spatial attention (the official code has none there)');
      if (hasAttention && (c % 32 !== 0 || c % heads !== 0)) {
        bad(
          `channels[${s}]`,
          `${c} channels cannot carry attention (needs a multiple of 32 for its GroupNorm and of ${heads} heads)`,
        );
      }
    }
    levels.push({
      index: i,
      kind,
      frames,
      stageFrames: node.channels.map((_, s) => (temporal ? frames / 2 ** s : frames)),
      temporalAttentionLayers: [...temporalAttention],
      rotaryPositions: node.rotaryPositions ?? false,
      prefix: 'inner_unet.'.repeat(i),
      resolution: node.resolution,
      channels: [...node.channels],
      resBlocks: [...node.resBlocks],
      attentionLayers: [...attention],
      groups,
      attentionFfn: node.attentionFfn ?? false,
      dropout: node.dropout ?? 0,
      timeEmbedDim: node.timeEmbedDim ?? 4 * node.channels[0],
      microConditioning: { ...(node.microConditioning ?? {}) },
      inputStdNormalisation: node.inputStdNormalisation ?? false,
      innerInput: node.innerInput ?? true,
      midBlock: isInnermost ? (node.midBlock ?? true) : false,
      firstDownsample,
      isInnermost,
      bottleneckResolution: node.resolution / factor,
    });
  }
  const innermost = levels[levels.length - 1];
  if (cfg.lowResCondition && levels[0].frames > 1)
    throw new ConfigError('model config: lowResCondition: a super-resolution stage of a video model is not supported');
  if (cfg.text || cfg.labels) {
    for (const level of levels) {
      if (level.timeEmbedDim !== innermost.timeEmbedDim) {
        throw new ConfigError(
          `model config: ${levelPath(level.index)}timeEmbedDim: ${level.timeEmbedDim} ` +
            `differs from the innermost level's ${innermost.timeEmbedDim}; ` +
            'the conditioning embedding is added to every level, so they must match',
        );
      }
    }
  }
  if (cfg.text) {
    const width = cfg.text.projDim > 0 ? cfg.text.projDim : cfg.text.featureDim;
    if (cfg.text.headLayers > 0 && width % heads !== 0) {
      throw new ConfigError(
        `model config: text: width ${width} is not divisible by ${heads} heads (needed by the text head)`,
      );
    }
  }
  return {
    levels,
    imageChannels: cfg.imageChannels ?? 3,
    attentionHeads: heads,
    text: cfg.text,
    labels: cfg.labels,
    lowResCondition: cfg.lowResCondition ?? false,
    textWidth: cfg.text ? (cfg.text.projDim > 0 ? cfg.text.projDim : cfg.text.featureDim) : 0,
    source: cfg,
  };
}

/** Each level's kind and frame count, outermost first: a level outside a temporal level runs on its clip. */
function levelKinds(cfg: UNetLevelConfig): Array<{ kind: LevelKind; frames: number }> {
  const nodes: UNetLevelConfig[] = [];
  for (let node: UNetLevelConfig | undefined = cfg; node; node = node.inner) nodes.push(node);
  const out = nodes.map(() => ({ kind: 'image' as LevelKind, frames: 1 }));
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (nodes[i].temporal) out[i] = { kind: 'temporal', frames: 2 ** (nodes[i].channels.length - 1) };
    else if (i + 1 < nodes.length && out[i + 1].frames > 1)
      out[i] = { kind: 'spatialPerFrame', frames: out[i + 1].frames };
  }
  return out;
}

/** The rules of temporal and per-frame levels (the official code's, stated as errors). */
function checkVideoLevel(
  node: UNetLevelConfig,
  kind: LevelKind,
  frames: number,
  temporalAttention: number[],
  bad: (field: string, why: string) => never,
): void {
  const stages = node.channels.length;
  if (temporalAttention.length !== stages)
    bad('temporalAttentionLayers', `has ${temporalAttention.length} entries for ${stages} stages (channels)`);
  if (kind !== 'temporal') {
    if (temporalAttention.some((n) => n > 0))
      bad('temporalAttentionLayers', 'only a temporal level has temporal attention');
    if (node.rotaryPositions) bad('rotaryPositions', 'only a temporal level has temporal attention');
    return;
  }
  if (stages < 2) bad('channels', 'a temporal level needs at least two stages (it holds 2^(stages − 1) frames)');
  if (!node.inner) bad('inner', 'a temporal level needs an inner image level: its last frame feeds it');
  if (node.inner?.temporal) bad('inner.temporal', 'a nest holds one temporal level');
  if (node.firstDownsample === false) bad('firstDownsample', 'a temporal level does not downsample in space');
  for (const [s, n] of temporalAttention.entries()) {
    if (n > 0 && node.channels[s] % 32 !== 0)
      bad(`channels[${s}]`, `${node.channels[s]} channels cannot carry temporal attention (heads of 32 channels)`);
  }
  if (frames < 2) bad('channels', 'a temporal level needs at least two stages');
}
