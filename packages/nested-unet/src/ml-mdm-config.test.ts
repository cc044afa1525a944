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

  it('rejects a temporal (video) config with a ConfigError (CONFIG_INVALID), message unchanged', () => {
    const video = { resolution_channels: [64, 128], temporal_mode: true };
    expect(() => fromMlMdmConfig(video, 32)).toThrow(ConfigError);
    expect(() => fromMlMdmConfig(video, 32)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', name: 'ConfigError' }),
    );
    expect(() => fromMlMdmConfig(video, 32)).toThrow(/^fromMlMdmConfig: temporal \(video\) configs are not supported$/);
  });
});
