import { ConfigError as CoreConfigError, MdmError, isUserError } from '@matryoshka-ts/core';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from './config.js';
import { PRESET_NAMES, preset, presetShifts } from './presets.js';
import { countParams } from './nested-unet.js';
import { tinyNested } from './test-models.js';

describe('resolveConfig', () => {
  it('fills defaults and works out the nest', () => {
    const r = resolveConfig(tinyNested());
    expect(
      r.levels.map((l) => [l.index, l.prefix, l.resolution, l.bottleneckResolution, l.isInnermost, l.midBlock]),
    ).toEqual([
      [0, '', 16, 8, false, false],
      [1, 'inner_unet.', 8, 4, true, true],
    ]);
    expect(r.levels[0].attentionLayers).toEqual([0, 0]);
    expect(r.levels[0].innerInput).toBe(true);
    expect(r.textWidth).toBe(32);
  });

  it.each([
    [{ resBlocks: [1] }, /resBlocks: has 1 entries for 2 stages/],
    [{ resolution: 15 }, /resolution: 15 is not divisible/],
    [{ resolution: 32 }, /inner\.resolution: is 8, but this level's bottleneck is 16 px/],
    [{ channels: [6, 16] }, /channels\[0\]: 6 is not divisible by groups \(4\)/],
    [{ midBlock: true }, /midBlock: only the innermost level/],
    [{ timeEmbedDim: 64 }, /timeEmbedDim: 32 differs|timeEmbedDim: 64 differs/],
    [{ channels: [8, -16] }, /channels\.1/],
    [{ colour: true }, /Unrecognized key|colour/],
  ])('rejects %j with a message naming the field', (patch, message) => {
    expect(() => resolveConfig({ ...tinyNested(), ...(patch as object) })).toThrow(ConfigError);
    expect(() => resolveConfig({ ...tinyNested(), ...(patch as object) })).toThrow(message);
  });

  it('throws the shared ConfigError of @matryoshka-ts/core, code CONFIG_INVALID, message unchanged', () => {
    expect(ConfigError).toBe(CoreConfigError);
    const thrown = (input: object): unknown => {
      try {
        resolveConfig({ ...tinyNested(), ...input });
      } catch (error) {
        return error;
      }
      throw new Error('expected resolveConfig to throw');
    };
    // A zod issue, a cross-field check and a text-head check.
    for (const [patch, message] of [
      [{ channels: [8, -16] }, /^model config: channels\.1: /],
      [{ resBlocks: [1] }, /^model config: resBlocks: has 1 entries for 2 stages \(channels\)$/],
      [
        { text: { featureDim: 12, projDim: 36, headLayers: 1, maskedCrossAttention: true } },
        /^model config: text: width 36 is not divisible by 8 heads \(needed by the text head\)$/,
      ],
    ] as const) {
      const error = thrown(patch);
      expect(error).toBeInstanceOf(CoreConfigError);
      expect(error).toBeInstanceOf(MdmError);
      expect(isUserError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'CONFIG_INVALID', name: 'ConfigError' });
      expect((error as Error).message).toMatch(message);
    }
  });

  it('rejects attention on channels its GroupNorm(32) cannot split', () => {
    const bad = tinyNested();
    bad.inner = { ...bad.inner!, channels: [16, 16], groups: 8 };
    expect(() => resolveConfig(bad)).toThrow(/inner\.channels\[1\]: 16 channels cannot carry attention/);
  });
});

describe('presets', () => {
  it.each(PRESET_NAMES)('%s resolves, and its levels nest by the stated ratios', (name) => {
    const r = resolveConfig(preset(name));
    for (let i = 0; i + 1 < r.levels.length; i++)
      expect(r.levels[i + 1].resolution).toBe(r.levels[i].bottleneckResolution);
    expect(r.levels[r.levels.length - 1].resolution).toBe(64);
    expect(r.levels[r.levels.length - 1].channels).toEqual([256, 512, 768]);
  });

  it("the paper's configs follow Appendix A", () => {
    expect(resolveConfig(preset('MDM-S64S256')).levels.map((l) => [l.resolution, l.channels, l.resBlocks])).toEqual([
      [256, [64, 128, 256], [2, 2, 1]],
      [64, [256, 512, 768], [2, 2, 2]],
    ]);
    expect(resolveConfig(preset('MDM-S64S128S256S512S1024')).levels.map((l) => l.resolution)).toEqual([
      1024, 512, 256, 128, 64,
    ]);
    const text = preset('MDM-S64').text!;
    expect([text.projDim, text.headLayers]).toEqual([1024, 2]);
    expect(preset('MDM-S64', { conditioning: { kind: 'labels' } }).labels).toEqual({ numClasses: 1000 });
  });

  it("the paper's video models: MDM-S64T16 and MDM-S64T16S256 (Appendix A)", () => {
    const levels = (name: string) =>
      resolveConfig(preset(name)).levels.map((l) => [l.kind, l.frames, l.resolution, l.stageFrames]);
    expect(levels('MDM-S64T16')).toEqual([
      ['temporal', 16, 64, [16, 8, 4, 2, 1]],
      ['image', 1, 64, [1, 1, 1]],
    ]);
    expect(levels('MDM-S64T16S256')).toEqual([
      ['spatialPerFrame', 16, 256, [16, 16, 16]],
      ['temporal', 16, 64, [16, 8, 4, 2, 1]],
      ['image', 1, 64, [1, 1, 1]],
    ]);
    expect(presetShifts('MDM-S64T16')).toEqual([4, 1]); // the temporal level's cosine-shift4
    expect(presetShifts('MDM-S64T16S256')).toEqual([16, 4, 1]); // the 256 px level's cosine-shift16
  });

  it("the temporal level's parameters, counted from the architecture by hand", () => {
    // c = 256 channels everywhere, T = 1024; res blocks [2, 2, 2, 2, 1], one temporal-attention
    // block after each on stages 0–3; Conv1d resampling; the 64 px inner level starts with 256.
    const [c, T] = [256, 1024];
    const resBlock = 18 * c * c + 2 * c * T + 8 * c; // norm1, conv1, time_layer, norm2, conv2
    const upBlock = 29 * c * c + 2 * c * T + 11 * c; // input 2c: wider norm1/conv1, plus the 1×1 conv3
    const tAttn = 30 * c * c + 15 * c; // LayerNorms, qkv, proj_out, MLP 4×, down/up 3×3 convs
    const resample = 3 * c * c + c;
    const time = (T / 4) * T + T + T * T + T;
    const io = 27 * c + c + 2 * c + 27 * c + 3; // conv_in, norm_out, conv_out
    const adapters = 2 * (9 * c * 256 + 256);
    const blocks = [2, 2, 2, 2, 1];
    const attn = [1, 1, 1, 1, 0];
    let expected = time + io + adapters + 4 * resample * 2; // 4 down, 4 up resamples
    blocks.forEach((n, i) => {
      expected += n * (resBlock + attn[i] * tAttn) + (n + 1) * (upBlock + attn[i] * tAttn);
    });
    const counts = countParams(preset('MDM-S64T16'));
    expect(counts.levels[0]).toMatchObject({ resolution: 64, frames: 16, kind: 'temporal', params: expected });
    expect(counts.levels[1].params).toBe(countParams(preset('MDM-S64')).total);
  });

  it("schedule shifts are the paper's cosine-shiftN", () => {
    expect(presetShifts('MDM-S64')).toEqual([1]);
    expect(presetShifts('MDM-S64S256')).toEqual([4, 1]);
    expect(presetShifts('MDM-S64S128S256')).toEqual([4, 2, 1]);
    expect(presetShifts('MDM-S64S256S1024')).toEqual([16, 4, 1]);
    expect(presetShifts('MDM-S64S128S256S512S1024')).toEqual([16, 8, 4, 2, 1]);
    expect(presetShifts('cc12m-1024')).toEqual([256, 16, 1]);
  });

  // The official code's counts (measured in PyTorch, shared/reference/ml-mdm.md §2.9).
  it.each([
    ['cc12m-64', 461_359_107],
    ['cc12m-256', 476_613_958],
    ['cc12m-1024', 480_970_057],
  ])('%s counts exactly what the official code builds: %i', (name, total) => {
    expect(countParams(preset(name)).total).toBe(total);
  });

  it('cc12m-64 with text conditioning off counts 362,618,883', () => {
    expect(countParams(preset('cc12m-64', { conditioning: { kind: 'none' } })).total).toBe(362_618_883);
  });

  it('a label-conditioned MDM-S64 has no text layers and one embedding table', () => {
    const text = countParams(preset('MDM-S64')).total;
    const labels = countParams(preset('MDM-S64', { conditioning: { kind: 'labels', numClasses: 1000 } })).total;
    const none = countParams(preset('MDM-S64', { conditioning: { kind: 'none' } })).total;
    expect(labels - none).toBe(1001 * 1024);
    expect(text).toBeGreaterThan(none);
  });
});
