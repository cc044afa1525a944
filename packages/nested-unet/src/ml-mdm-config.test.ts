import { ConfigError } from '@matryoshka-ts/core';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { fromMlMdmConfig } from './ml-mdm-config.js';

describe('fromMlMdmConfig', () => {
  it('converts a two-level official config into one that resolves', () => {
    const config = fromMlMdmConfig(
      {
        resolution_channels: '64,128',
        num_resnets_per_resolution: 1,
        attention_levels: '1',
        inner_config: { resolution_channels: [128, 128], attention_levels: [] },
      },
      32,
    );
    expect(config.channels).toEqual([64, 128]);
    expect(config.attentionLayers).toEqual([0, 1]);
    expect(config.inner?.resolution).toBe(16);
    expect(resolveConfig(config).levels).toHaveLength(2);
  });

  it('rejects a video config whose clip cannot be the official tiled image, with a ConfigError', () => {
    // 3 stages on a temporal level: 4 frames, a 2×2 grid, so the clip image side must be even.
    const video = {
      resolution_channels: [64, 64, 64],
      temporal_mode: true,
      inner_config: { resolution_channels: [64] },
    };
    expect(() => fromMlMdmConfig(video, 33)).toThrow(ConfigError);
    expect(() => fromMlMdmConfig(video, 33)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', name: 'ConfigError' }),
    );
    expect(() => fromMlMdmConfig(video, 33)).toThrow(/a 33 px clip image is not 2×2 frames/);
  });
});
