import { describe, expect, it } from 'vitest';
import type { NestedUNetConfig } from '@matryoshka-ts/nested-unet';
import { cascadeResolutions } from './cascade.js';
import { topLevelLossWeights } from './simple.js';

const unet = (resolution: number, extra: Partial<NestedUNetConfig> = {}): NestedUNetConfig => ({
  resolution,
  channels: [8, 32],
  resBlocks: [1, 1],
  groups: 8,
  ...extra,
});

describe('cascade stages', () => {
  it('chains 16 → 32 → 64', () => {
    const sr = { lowResCondition: true };
    expect(cascadeResolutions(unet(16), [unet(32, sr), unet(64, sr)])).toEqual([16, 32, 64]);
  });

  it('refuses a stage whose base resolution does not match, a missing upsampler flag, an upsampling base', () => {
    const sr = { lowResCondition: true };
    expect(() => cascadeResolutions(unet(32), [unet(16, sr)])).toThrow(/base resolution is 32 px/);
    expect(() => cascadeResolutions(unet(16), [unet(32, sr), unet(32, sr)])).toThrow(/stage 2 is 32 px/);
    expect(() => cascadeResolutions(unet(16), [unet(32)])).toThrow(/lowResCondition/);
    expect(() => cascadeResolutions(unet(16, sr), [unet(32, sr)])).toThrow(/base stage/);
    expect(() => cascadeResolutions(unet(16), [])).toThrow(/at least one/);
  });
});

describe('simple DM', () => {
  it('the top-loss-only NestedUNet weights its levels [1, 0, …]', () => {
    expect(topLevelLossWeights(3)).toEqual([1, 0, 0]);
    expect(topLevelLossWeights(1)).toEqual([1]);
    expect(() => topLevelLossWeights(0)).toThrow(RangeError);
  });
});
