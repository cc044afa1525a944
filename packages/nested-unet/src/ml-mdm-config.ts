import { ConfigError } from '@matryoshka-ts/core';
import type { NestedUNetConfig, UNetLevelConfig } from './config.js';

/** The official code's UNetConfig / NestedUNetConfig dicts (as in its YAML files; lists may be comma strings). */
export interface MlMdmUNetConfig {
  resolution_channels: number[] | string;
  num_resnets_per_resolution?: number[] | string | number;
  attention_levels?: number[] | string;
  num_attention_layers?: number[] | string | number;
  temporal_dim?: number | null;
  conditioning_feature_dim?: number;
  conditioning_feature_proj_dim?: number;
  num_lm_head_layers?: number;
  masked_cross_attention?: number | boolean;
  skip_mid_blocks?: boolean;
  skip_cond_emb?: boolean;
  skip_normalization?: boolean;
  skip_inner_unet_input?: boolean;
  micro_conditioning?: string | null;
  temporal_mode?: boolean;
  temporal_spatial_ds?: boolean;
  num_temporal_attention_layers?: number[] | string | null;
  temporal_positional_encoding?: boolean;
  resnet_config?: { num_groups_norm?: number; dropout?: number; use_attention_ffn?: boolean };
  inner_config?: MlMdmUNetConfig;
  [key: string]: unknown;
}

function ints(value: number[] | string | number | undefined, stages: number, fallback: number): number[] {
  if (value === undefined || value === null) return new Array(stages).fill(fallback);
  const list =
    typeof value === 'number'
      ? [value]
      : typeof value === 'string'
        ? value
            .split(',')
            .filter((s) => s.trim() !== '')
            .map(Number)
        : value;
  return list.length === 1 && stages > 1 ? new Array(stages).fill(list[0]) : [...list];
}

function micro(spec: string | null | undefined): Record<string, number> | undefined {
  if (!spec) return undefined;
  return Object.fromEntries(
    spec.split(',').map((pair) => {
      const [key, value] = pair.split(':');
      return [key.trim(), Number(value)];
    }),
  );
}

/**
 * Our config for a model the official code builds from `unet_config` at `imageSize` pixels, with
 * its defaults: attention levels [2, 3] and 1 layer, 2 res blocks, 32 groups, T = 4·channels[0],
 * masked cross-attention on, and input std normalisation on nested levels unless
 * `skip_normalization` is set. Video configs (`temporal_mode`): `imageSize` is the side of the
 * official clip image (F frames tiled √F × √F); a `temporal_spatial_ds` level becomes a spatial
 * level over frames, any other temporal level a temporal one.
 */
export function fromMlMdmConfig(unet: MlMdmUNetConfig, imageSize: number): NestedUNetConfig {
  const grid = tileGridOf(unet);
  const level = (cfg: MlMdmUNetConfig, side: number, g: number): UNetLevelConfig => {
    const channels = ints(cfg.resolution_channels, 0, 0);
    const stages = channels.length;
    const attentionLevels = ints(cfg.attention_levels ?? '2,3', 0, 0);
    const layers = ints(cfg.num_attention_layers ?? 1, stages, 1);
    const temporal = Boolean(cfg.temporal_mode) && !cfg.temporal_spatial_ds;
    if (side % g !== 0) throw new ConfigError(`fromMlMdmConfig: a ${side} px clip image is not ${g}×${g} frames`);
    const out: UNetLevelConfig = {
      resolution: side / g,
      channels,
      resBlocks: ints(cfg.num_resnets_per_resolution ?? 2, stages, 2),
      attentionLayers: channels.map((_, i) => (attentionLevels.includes(i) ? layers[i] : 0)),
      groups: cfg.resnet_config?.num_groups_norm ?? 32,
      attentionFfn: cfg.resnet_config?.use_attention_ffn ?? false,
      dropout: cfg.resnet_config?.dropout ?? 0,
      timeEmbedDim: cfg.temporal_dim ?? 4 * channels[0],
    };
    if (temporal) {
      out.temporal = true;
      const t = cfg.num_temporal_attention_layers;
      if (t !== undefined && t !== null) out.temporalAttentionLayers = ints(t, stages, 0);
      if (cfg.temporal_positional_encoding) out.rotaryPositions = true;
    } else if (cfg.temporal_mode && cfg.num_temporal_attention_layers) {
      throw new ConfigError(
        'fromMlMdmConfig: a temporal_spatial_ds level has no temporal attention ' +
          '(num_temporal_attention_layers must be null)',
      );
    }
    const m = micro(cfg.micro_conditioning);
    if (m) out.microConditioning = m;
    if (cfg.inner_config) {
      out.inputStdNormalisation = !(cfg.skip_normalization ?? false);
      out.innerInput = !(cfg.skip_inner_unet_input ?? false);
      // A temporal level hands on its last frame (the clip side over the grid); others shrink in space.
      out.inner = temporal
        ? level(cfg.inner_config, side / g, 1)
        : level(cfg.inner_config, side / 2 ** (stages - 1), g);
    } else {
      // A plain UNet (the innermost level) never normalises its input.
      out.midBlock = !(cfg.skip_mid_blocks ?? false);
    }
    return out;
  };
  const config: NestedUNetConfig = { ...level(unet, imageSize, grid), imageChannels: 3, attentionHeads: 8 };
  let innermost: MlMdmUNetConfig = unet;
  while (innermost.inner_config) innermost = innermost.inner_config;
  const featureDim = unet.conditioning_feature_dim ?? -1;
  if (featureDim > 0) {
    config.text = {
      featureDim,
      projDim: Math.max(innermost.conditioning_feature_proj_dim ?? -1, 0),
      headLayers: innermost.num_lm_head_layers ?? 0,
      maskedCrossAttention: Boolean(innermost.masked_cross_attention ?? 1),
    };
  }
  return config;
}

/** The tile grid √F of a video config's clip (F = 2^(stages − 1) of its temporal level); 1 for images. */
function tileGridOf(unet: MlMdmUNetConfig): number {
  for (let cfg: MlMdmUNetConfig | undefined = unet; cfg; cfg = cfg.inner_config) {
    if (cfg.temporal_mode && !cfg.temporal_spatial_ds) {
      const frames = 2 ** (ints(cfg.resolution_channels, 0, 0).length - 1);
      const g = Math.round(Math.sqrt(frames));
      if (g * g !== frames)
        throw new ConfigError(
          `fromMlMdmConfig: a temporal level of ${frames} frames cannot be tiled √F × √F as the official clip image`,
        );
      return g;
    }
  }
  return 1;
}
