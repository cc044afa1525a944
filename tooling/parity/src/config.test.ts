import { expect, it } from 'vitest';
import { type MlMdmUNetConfig, countParams, fromMlMdmConfig, resolveConfig } from '@matryoshka-ts/nested-unet';
import { MODEL_FIXTURE_KINDS } from './model-parity.js';
import { forEachFixture } from './suite.js';

interface FixtureLevel {
  resolution: number;
  channels: number[];
  res_blocks_down: number[];
  attention_layers_per_res_block: number[];
  groupnorm_groups: number;
  attention_ffn: boolean;
  time_embed_dim: number;
  micro_conditioning_defaults: Record<string, number>;
  has_mid_block: boolean;
  input_std_normalisation: boolean;
  in_adapter: boolean;
  out_adapter: boolean;
  schedule_scale: number;
  param_count: number;
  state_dict_prefix: string;
  text?: { feature_dim: number; proj_dim: number; lm_head_layers: number; masked_cross_attention: boolean };
  /** Video folders: `image`, `temporal` or `spatial_per_frame`, the frames and the side of a frame. */
  kind?: 'image' | 'temporal' | 'spatial_per_frame';
  frames?: number;
  frame_size?: number;
  temporal_stages?: Array<{ frames: number; temporal_attention_layers_per_res_block: number }>;
  temporal_attention?: { rotary_position_encoding: boolean };
}

const KINDS = { image: 'image', temporal: 'temporal', spatial_per_frame: 'spatialPerFrame' } as const;

for (const kind of MODEL_FIXTURE_KINDS)
  forEachFixture(
    'config parity',
    (fixture) => {
      const levels = fixture.config.levels as unknown as FixtureLevel[];
      const config = fromMlMdmConfig(fixture.config.ml_mdm_config.unet_config as MlMdmUNetConfig, levels[0].resolution);
      const resolved = resolveConfig(config);

      it('the ml-mdm config dict becomes the levels that config.json describes', () => {
        expect(resolved.levels).toHaveLength(fixture.config.num_levels);
        const innermost = levels[levels.length - 1].resolution;
        resolved.levels.forEach((ours, i) => {
          const ref = levels[i];
          expect({
            kind: ours.kind,
            frames: ours.frames,
            resolution: ours.resolution,
            prefix: ours.prefix,
            channels: ours.channels,
            resBlocks: ours.resBlocks,
            attention: ours.attentionLayers,
            groups: ours.groups,
            ffn: ours.attentionFfn,
            T: ours.timeEmbedDim,
            micro: ours.microConditioning,
            mid: ours.midBlock,
            norm: ours.inputStdNormalisation,
            inAdapter: !ours.isInnermost && ours.innerInput,
            outAdapter: !ours.isInnermost,
            // A level's schedule shift is its side over the innermost's, a clip counted as its tiled image.
            scale: (ours.resolution * Math.sqrt(ours.frames)) / innermost,
          }).toEqual({
            kind: KINDS[ref.kind ?? 'image'],
            frames: ref.frames ?? 1,
            resolution: ref.frame_size ?? ref.resolution,
            prefix: ref.state_dict_prefix,
            channels: ref.channels,
            resBlocks: ref.res_blocks_down,
            attention: ref.attention_layers_per_res_block,
            groups: ref.groupnorm_groups,
            ffn: ref.attention_ffn,
            T: ref.time_embed_dim,
            micro: ref.micro_conditioning_defaults,
            mid: ref.has_mid_block,
            norm: ref.input_std_normalisation,
            inAdapter: ref.in_adapter,
            outAdapter: ref.out_adapter,
            scale: ref.schedule_scale,
          });
          if (ref.temporal_stages) {
            expect(ours.stageFrames).toEqual(ref.temporal_stages.map((t) => t.frames));
            expect(ours.temporalAttentionLayers).toEqual(
              ref.temporal_stages.map((t) => t.temporal_attention_layers_per_res_block),
            );
            expect(ours.rotaryPositions).toBe(ref.temporal_attention?.rotary_position_encoding ?? false);
          }
        });
        const text = levels[levels.length - 1].text;
        if (text) {
          expect(resolved.text).toEqual({
            featureDim: text.feature_dim,
            projDim: text.proj_dim,
            headLayers: text.lm_head_layers,
            maskedCrossAttention: text.masked_cross_attention,
          });
        } else expect(resolved.text).toBeUndefined();
      });

      it('parameter counts per level and in total equal the official model', () => {
        const counts = countParams(resolved);
        expect(counts.total).toBe(fixture.config.param_count);
        expect(counts.levels.map((l) => l.params)).toEqual(levels.map((l) => l.param_count));
      });
    },
    kind,
  );
