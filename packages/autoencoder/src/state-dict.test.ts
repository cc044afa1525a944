import { describe, expect, it } from 'vitest';
import { CheckpointMismatchError, type TensorEntry, mapSource, torchShape } from '@matryoshka-ts/checkpoint';
import { Rng } from '@matryoshka-ts/core';
import { initialValue } from '@matryoshka-ts/layers';
import { autoencoderSpecs } from './autoencoder-kl.js';
import { type AutoencoderKLConfig, validateConfig } from './config.js';
import { detectNaming, diffusersNames, exportAutoencoderStateDict, importAutoencoderStateDict } from './state-dict.js';

// Two levels with attention inside them, so every kind of key (down/up attentions, shortcuts,
// samplers) is present, and the decoder's up.i ↔ up_blocks.(1 − i) reversal is visible.
const config: AutoencoderKLConfig = validateConfig({
  inChannels: 3,
  outChannels: 3,
  ch: 32,
  chMult: [1, 2],
  numResBlocks: 1,
  attnResolutions: [8],
  resolution: 16,
  zChannels: 4,
  embedDim: 4,
  dropout: 0,
});
const specs = autoencoderSpecs(config);
const levels = config.chMult.length;

function randomValues(seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  // Random values everywhere (ones/zeros inits would hide a swapped norm weight and bias).
  return new Map(specs.map((s) => [s.name, initialValue({ ...s, init: { kind: 'normal', std: 1 } }, rng)]));
}

describe('diffusers names', () => {
  it.each([
    ['encoder.conv_in.weight', 'encoder.conv_in.weight'],
    ['encoder.down.0.block.0.norm1.weight', 'encoder.down_blocks.0.resnets.0.norm1.weight'],
    ['encoder.down.1.block.0.nin_shortcut.bias', 'encoder.down_blocks.1.resnets.0.conv_shortcut.bias'],
    ['encoder.down.0.downsample.conv.weight', 'encoder.down_blocks.0.downsamplers.0.conv.weight'],
    ['encoder.down.1.attn.0.q.weight', 'encoder.down_blocks.1.attentions.0.to_q.weight'],
    ['encoder.mid.block_1.conv2.bias', 'encoder.mid_block.resnets.0.conv2.bias'],
    ['encoder.mid.block_2.norm2.weight', 'encoder.mid_block.resnets.1.norm2.weight'],
    ['encoder.mid.attn_1.norm.bias', 'encoder.mid_block.attentions.0.group_norm.bias'],
    ['encoder.mid.attn_1.proj_out.weight', 'encoder.mid_block.attentions.0.to_out.0.weight'],
    ['encoder.norm_out.weight', 'encoder.conv_norm_out.weight'],
    ['decoder.up.1.block.2.conv1.weight', 'decoder.up_blocks.0.resnets.2.conv1.weight'],
    ['decoder.up.0.block.0.nin_shortcut.weight', 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight'],
    ['decoder.up.1.upsample.conv.bias', 'decoder.up_blocks.0.upsamplers.0.conv.bias'],
    ['decoder.up.0.attn.1.k.bias', 'decoder.up_blocks.1.attentions.1.to_k.bias'],
    ['quant_conv.weight', 'quant_conv.weight'],
    ['post_quant_conv.bias', 'post_quant_conv.bias'],
  ])('%s ↔ %s', (ours, theirs) => {
    expect(diffusersNames(ours, levels)[0]).toBe(theirs);
  });

  it('gives the legacy attention names second', () => {
    expect(diffusersNames('decoder.mid.attn_1.v.weight', levels)).toEqual([
      'decoder.mid_block.attentions.0.to_v.weight',
      'decoder.mid_block.attentions.0.value.weight',
    ]);
    expect(diffusersNames('decoder.mid.attn_1.proj_out.bias', levels)[1]).toBe(
      'decoder.mid_block.attentions.0.proj_attn.bias',
    );
  });

  it('maps every parameter to a distinct name', () => {
    const names = specs.map((s) => diffusersNames(s.name, levels)[0]);
    expect(new Set(names).size).toBe(specs.length);
  });
});

describe('state-dict round trips', () => {
  const values = randomValues(3);

  it.each(['compvis', 'diffusers'] as const)('%s: export then import gives the same values', (naming) => {
    const dict = exportAutoencoderStateDict(specs, levels, values, naming);
    expect(detectNaming(dict.keys())).toBe(naming);
    const back = importAutoencoderStateDict(specs, levels, mapSource(dict));
    expect(back.naming).toBe(naming);
    for (const s of specs) expect(back.values.get(s.name), s.name).toEqual(values.get(s.name));
  });

  it('diffusers attention weights are linear [out, in]; CompVis keeps 1×1 convs', () => {
    const c = 32 * 2;
    const diffusers = exportAutoencoderStateDict(specs, levels, values, 'diffusers');
    expect(diffusers.get('encoder.mid_block.attentions.0.to_q.weight')!.shape).toEqual([c, c]);
    const compvis = exportAutoencoderStateDict(specs, levels, values, 'compvis');
    expect(compvis.get('encoder.mid.attn_1.q.weight')!.shape).toEqual([c, c, 1, 1]);
    expect(compvis.get('encoder.conv_in.weight')!.shape).toEqual([32, 3, 3, 3]);
  });

  it('reads the older diffusers attention names (query/key/value/proj_attn)', () => {
    const dict = exportAutoencoderStateDict(specs, levels, values, 'diffusers');
    const legacy = new Map<string, TensorEntry>();
    for (const [k, v] of dict)
      legacy.set(
        k
          .replace('.to_q.', '.query.')
          .replace('.to_k.', '.key.')
          .replace('.to_v.', '.value.')
          .replace('.to_out.0.', '.proj_attn.'),
        v,
      );
    const back = importAutoencoderStateDict(specs, levels, mapSource(legacy));
    expect(back.values.get('decoder.up.1.attn.0.proj_out.weight')).toEqual(
      values.get('decoder.up.1.attn.0.proj_out.weight'),
    );
  });

  it('finds the autoencoder under first_stage_model. and ignores the CompVis loss keys', () => {
    const dict = exportAutoencoderStateDict(specs, levels, values, 'compvis');
    const whole = new Map<string, TensorEntry>();
    for (const [k, v] of dict) whole.set(`first_stage_model.${k}`, v);
    const other: TensorEntry = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    whole.set('model.diffusion_model.out.0.weight', other);
    whole.set('first_stage_model.loss.logvar', other);
    const back = importAutoencoderStateDict(specs, levels, mapSource(whole));
    expect(back.prefix).toBe('first_stage_model.');
    expect(back.ignored).toEqual(['first_stage_model.loss.logvar']);
    expect(back.values.size).toBe(specs.length);
  });

  it('lists every missing, unexpected and misshaped key in the file’s own names', () => {
    const dict = exportAutoencoderStateDict(specs, levels, values, 'diffusers');
    dict.delete('decoder.up_blocks.0.resnets.1.conv2.weight');
    dict.delete('quant_conv.bias');
    dict.set('decoder.up_blocks.7.resnets.0.conv1.weight', dict.get('decoder.conv_in.weight')!);
    const bad = dict.get('encoder.conv_in.weight')!;
    dict.set('encoder.conv_in.weight', { ...bad, shape: [32, 4, 3, 3], data: new Float32Array(32 * 4 * 9) });
    let error: unknown;
    try {
      importAutoencoderStateDict(specs, levels, mapSource(dict));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CheckpointMismatchError);
    const e = error as CheckpointMismatchError;
    expect(e.missing.sort()).toEqual(['decoder.up_blocks.0.resnets.1.conv2.weight', 'quant_conv.bias']);
    expect(e.unexpected).toEqual(['decoder.up_blocks.7.resnets.0.conv1.weight']);
    expect(e.wrongShape).toEqual(['encoder.conv_in.weight [32,4,3,3] (model expects [32,3,3,3])']);
    expect(e.message).toContain('quant_conv.bias');
  });

  it('rejects a checkpoint of another latent width, naming the shapes', () => {
    const other = validateConfig({ ...config, zChannels: 3, embedDim: 3 });
    const dict = exportAutoencoderStateDict(autoencoderSpecs(other), levels, randomValuesFor(other), 'compvis');
    expect(() => importAutoencoderStateDict(specs, levels, mapSource(dict))).toThrow(
      /quant_conv\.weight \[6,6,1,1\] \(model expects \[8,8,1,1\]\)/,
    );
  });

  it('exports PyTorch shapes for every spec', () => {
    const dict = exportAutoencoderStateDict(specs, levels, values, 'compvis');
    for (const s of specs) expect(dict.get(s.name)!.shape).toEqual(torchShape(s));
  });
});

function randomValuesFor(c: AutoencoderKLConfig): Map<string, Float32Array> {
  const rng = new Rng(9);
  return new Map(autoencoderSpecs(c).map((s) => [s.name, initialValue(s, rng)]));
}
