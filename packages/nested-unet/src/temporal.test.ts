import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { paramsFrom } from '@matryoshka-ts/layers';
import { resolveConfig } from './config.js';
import { fromMlMdmConfig } from './ml-mdm-config.js';
import { NestedUNet, countParams } from './nested-unet.js';
import { rotate, rotaryFrequencies, temporalAttentionBlock, temporalDownsample, temporalUpsample } from './temporal.js';
import { maxDiff, randomImages, randomText, randomizeWeights, tinyVideo } from './test-models.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

/** Random values of a shape, from a seed. */
function randn(shape: number[], seed: number): tf.Tensor {
  return new Rng(seed).normalTensor(shape);
}

describe('temporal level config', () => {
  it('a temporal level holds 2^(stages − 1) frames, halving per stage; levels outside run per frame', () => {
    const resolved = resolveConfig(tinyVideo({ outer: true }));
    expect(resolved.levels.map((l) => [l.kind, l.frames, l.resolution])).toEqual([
      ['spatialPerFrame', 4, 16],
      ['temporal', 4, 8],
      ['image', 1, 8],
    ]);
    expect(resolved.levels[1].stageFrames).toEqual([4, 2, 1]);
    expect(resolved.levels[0].stageFrames).toEqual([4, 4]);
    expect(resolved.levels[1].temporalAttentionLayers).toEqual([1, 1, 0]);
  });

  it('refuses what the temporal path cannot do, naming the field', () => {
    const video = tinyVideo();
    const bad = (config: object, pattern: RegExp) => {
      expect(() => resolveConfig(config as never)).toThrow(ConfigError);
      expect(() => resolveConfig(config as never)).toThrow(pattern);
    };
    bad({ ...video, inner: undefined }, /^model config: inner: a temporal level needs an inner image level/);
    bad({ ...video, channels: [32, 24, 16], groups: 8 }, /channels\[1\]: 24 channels cannot carry temporal attention/);
    bad({ ...video, attentionLayers: [1, 0, 0] }, /attentionLayers\[0\]: a level over frames has no spatial attention/);
    bad({ ...video, inner: { ...video.inner, resolution: 4 } }, /inner.resolution: is 4, .*keeps the frame size/);
    bad({ ...video, inner: { ...video.inner, temporal: true } }, /a nest holds one temporal level/);
    bad({ ...video, temporalAttentionLayers: [1, 1] }, /temporalAttentionLayers: has 2 entries for 3 stages/);
    bad(
      { ...video, inner: { ...video.inner, temporalAttentionLayers: [1, 0] } },
      /inner.temporalAttentionLayers: only a temporal level has temporal attention/,
    );
    bad({ ...video, lowResCondition: true }, /super-resolution stage of a video model is not supported/);
  });

  it("fromMlMdmConfig reads the official temporal fields; the clip image's side sets the frame size", () => {
    const config = fromMlMdmConfig(
      {
        resolution_channels: [32, 32, 16],
        num_resnets_per_resolution: [1, 1, 1],
        attention_levels: [],
        num_temporal_attention_layers: [1, 1, 0],
        temporal_mode: true,
        temporal_positional_encoding: true,
        inner_config: { resolution_channels: [16, 32], attention_levels: [1] },
      },
      32,
    );
    expect(config).toMatchObject({
      resolution: 16,
      temporal: true,
      temporalAttentionLayers: [1, 1, 0],
      rotaryPositions: true,
      inner: { resolution: 16 },
    });
    // 8 frames cannot be tiled √F × √F as the official clip image.
    expect(() => fromMlMdmConfig({ resolution_channels: [32, 32, 32, 32], temporal_mode: true }, 32)).toThrow(
      /8 frames cannot be tiled/,
    );
  });
});

describe('temporal resampling', () => {
  // Conv1d over frames, by its definition: out[f] = b + Σ_k W[k]·x[s·f + k − 1] (zero beyond the ends).
  function conv1dReference(x: Float32Array, w: Float32Array, bias: Float32Array, dims: number[], stride: number) {
    const [b, frames, pixels, c] = dims;
    const out = Math.floor((frames + 2 - 3) / stride) + 1;
    const y = new Float32Array(b * out * pixels * c);
    for (let n = 0; n < b; n++)
      for (let f = 0; f < out; f++)
        for (let p = 0; p < pixels; p++)
          for (let o = 0; o < c; o++) {
            let acc = bias[o];
            for (let k = 0; k < 3; k++) {
              const src = stride * f + k - 1;
              if (src < 0 || src >= frames) continue;
              for (let i = 0; i < c; i++) acc += w[(k * c + i) * c + o] * x[((n * frames + src) * pixels + p) * c + i];
            }
            y[((n * out + f) * pixels + p) * c + o] = acc;
          }
    return y;
  }

  it('down: Conv1d k3 s2 p1 along the frames of every pixel, F → F/2 (16 → 8 → 4 → 2 → 1)', () => {
    const c = 3;
    const [w, bias] = [randn([3, c, c], 1), randn([c], 2)];
    const P = paramsFrom(
      new Map([
        ['r.weight', w],
        ['r.bias', bias],
      ]),
    );
    for (const frames of [16, 8, 4, 2]) {
      const x = randn([2 * frames, 2, 3, c], frames) as tf.Tensor4D;
      const y = temporalDownsample(P, 'r', x, frames);
      expect(y.shape).toEqual([frames, 2, 3, c]);
      const ref = conv1dReference(
        x.dataSync() as Float32Array,
        w.dataSync() as Float32Array,
        bias.dataSync() as Float32Array,
        [2, frames, 6, c],
        2,
      );
      expect(maxDiff(y, tf.tensor(ref, y.shape))).toBeLessThan(1e-5); // float32 sums of 9 products
      tf.dispose([x, y]);
    }
    tf.dispose([w, bias]);
  });

  it('up: nearest ×2 along frames (f → 2f, 2f+1), then Conv1d k3 p1: F → 2F', () => {
    const c = 2;
    const [w, bias] = [randn([3, c, c], 3), randn([c], 4)];
    const P = paramsFrom(
      new Map([
        ['r.weight', w],
        ['r.bias', bias],
      ]),
    );
    for (const frames of [1, 2, 4, 8]) {
      const x = randn([2 * frames, 2, 2, c], 10 + frames) as tf.Tensor4D;
      const y = temporalUpsample(P, 'r', x, frames);
      expect(y.shape).toEqual([4 * frames, 2, 2, c]);
      const xs = x.dataSync();
      const pixels = 4 * c;
      const doubled = new Float32Array(2 * xs.length);
      for (let n = 0; n < 2; n++)
        for (let f = 0; f < 2 * frames; f++)
          doubled.set(
            xs.subarray((n * frames + (f >> 1)) * pixels, (n * frames + (f >> 1) + 1) * pixels),
            (n * 2 * frames + f) * pixels,
          );
      const ref = conv1dReference(
        doubled,
        w.dataSync() as Float32Array,
        bias.dataSync() as Float32Array,
        [2, 2 * frames, 4, c],
        1,
      );
      expect(maxDiff(y, tf.tensor(ref, y.shape))).toBeLessThan(1e-5);
      tf.dispose([x, y]);
    }
    tf.dispose([w, bias]);
  });
});

describe('temporal attention', () => {
  it('rotary encoding turns channel pair (2i, 2i+1) of every head by p·f_i, f_i = 10000^(−2i/32)', () => {
    const freqs = rotaryFrequencies(32);
    expect(freqs).toHaveLength(16);
    expect(freqs[1]).toBeCloseTo(10000 ** (-2 / 32), 12);
    const [n, frames, c] = [2, 5, 64];
    const x = randn([n, frames, c], 5) as tf.Tensor3D;
    const f = tf.tensor1d(freqs);
    const y = rotate(x, f).dataSync();
    const xs = x.dataSync();
    let worst = 0;
    for (let s = 0; s < n; s++)
      for (let p = 0; p < frames; p++)
        for (let ch = 0; ch < c; ch += 2) {
          const angle = p * freqs[(ch % 32) / 2];
          const at = (s * frames + p) * c + ch;
          const [a, b] = [xs[at], xs[at + 1]];
          worst = Math.max(worst, Math.abs(y[at] - (a * Math.cos(angle) - b * Math.sin(angle))));
          worst = Math.max(worst, Math.abs(y[at + 1] - (b * Math.cos(angle) + a * Math.sin(angle))));
        }
    expect(worst).toBeLessThan(1e-5); // float32 cos/sin of angles up to 4 rad
    tf.dispose([x, f]);
  });

  function block(rotary: boolean, seed: number) {
    const model = new NestedUNet(tinyVideo({ rotary }));
    randomizeWeights(model, seed); // the zero-initialised projections get weights, so attention acts
    return model;
  }

  it('without rotary encoding the block treats frames as a set; with it, their order matters', () => {
    const frames = 4;
    const x = randn([frames, 4, 4, 32], 6) as tf.Tensor4D;
    const order = [2, 0, 3, 1];
    const permute = (t: tf.Tensor4D) => tf.gather(t, order);
    for (const rotary of [false, true]) {
      const model = block(rotary, 7);
      const run = (input: tf.Tensor4D) =>
        temporalAttentionBlock(model.P, 'down_blocks.0.t_attn.0', input, frames, rotary);
      const a = permute(run(x));
      const b = run(permute(x));
      const d = maxDiff(a, b);
      if (rotary) expect(d).toBeGreaterThan(1e-3);
      else expect(d).toBeLessThan(1e-5);
      tf.dispose([a, b]);
      model.dispose();
    }
    x.dispose();
  });

  it('the rotary frequencies are stored with the weights but never trained', () => {
    const model = new NestedUNet(tinyVideo({ rotary: true }));
    const freqs = [...model.params].filter(([name]) => name.endsWith('pos_emb.freqs'));
    // One per residual block of stages 0 and 1: 1 + 1 on the way down, 2 + 2 on the way up.
    expect(freqs).toHaveLength(6);
    for (const [, v] of freqs) {
      expect(v.trainable).toBe(false);
      expect(maxDiff(v, tf.tensor1d(rotaryFrequencies(32)))).toBeLessThan(1e-7);
    }
    model.dispose();
  });

  it('gradients of a temporal-attention block with rotary encoding match central differences', () => {
    const model = block(true, 8);
    const frames = 4;
    const x = randn([frames, 4, 4, 32], 9) as tf.Tensor4D;
    const r = randn([frames, 4, 4, 32], 10);
    const name = 'down_blocks.0.t_attn.0';
    const qkv = model.params.get(`${name}.attn.qkv.weight`)!;
    const loss = (w: tf.Tensor, input: tf.Tensor4D) =>
      tf.sum(
        tf.mul(
          temporalAttentionBlock(
            paramsFrom(new Map([...model.params, [`${name}.attn.qkv.weight`, w]])),
            name,
            input,
            frames,
            true,
          ),
          r,
        ),
      ) as tf.Scalar;
    const [gw, gx] = tf.grads((w, input) => loss(w, input as tf.Tensor4D))([qkv, x]);
    // Central differences of float32 losses: h = 1e-2 keeps the rounding error (~1e-4) small
    // beside the derivative; tolerance 2 % of the gradient's largest entry.
    const h = 1e-2;
    const w0 = qkv.dataSync() as Float32Array;
    const x0 = x.dataSync() as Float32Array;
    const at = (values: Float32Array, i: number, delta: number) => {
      const copy = Float32Array.from(values);
      copy[i] += delta;
      return copy;
    };
    const value = (t: tf.Scalar) => {
      const v = t.dataSync()[0];
      t.dispose();
      return v;
    };
    for (const i of [0, 37, 1000, 3000]) {
      const numeric = (d: number) => value(tf.tidy(() => loss(tf.tensor(at(w0, i, d), qkv.shape), x)));
      expect(Math.abs(gw.dataSync()[i] - (numeric(h) - numeric(-h)) / (2 * h))).toBeLessThan(
        0.02 * Math.max(...Array.from(gw.dataSync(), Math.abs)),
      );
    }
    for (const i of [5, 600, 1500]) {
      const numeric = (d: number) => value(tf.tidy(() => loss(qkv, tf.tensor(at(x0, i, d), x.shape) as tf.Tensor4D)));
      expect(Math.abs(gx.dataSync()[i] - (numeric(h) - numeric(-h)) / (2 * h))).toBeLessThan(
        0.02 * Math.max(...Array.from(gx.dataSync(), Math.abs)),
      );
    }
    tf.dispose([x, r, gw, gx]);
    model.dispose();
  });
});

describe('the video NestedUNet', () => {
  it('frames go 4 → 2 → 1 and back at the temporal level; each level returns its frames', () => {
    const model = new NestedUNet(tinyVideo({ outer: true }));
    randomizeWeights(model, 11);
    expect(model.levels.map((l) => [l.resolution, l.frames])).toEqual([
      [16, 4],
      [8, 4],
      [8, 1],
    ]);
    const x = randomImages(model, [2, 2, 2]);
    const text = randomText(2, 5, 12);
    const shapes = new Map<string, number[]>();
    const outs = model.forward({ x, times: [10, 700], ...text }, { debug: (name, t) => shapes.set(name, t.shape) });
    expect(outs.map((o) => o.shape)).toEqual([
      [8, 16, 16, 3],
      [8, 8, 8, 3],
      [2, 8, 8, 3],
    ]);
    // Down stages of the temporal level (level 1): 4 frames → 2 → 1 (the last stage keeps its 1).
    expect(shapes.get('down0.level1')).toEqual([4, 8, 8, 32]);
    expect(shapes.get('down1.level1')).toEqual([2, 8, 8, 32]);
    expect(shapes.get('down2.level1')).toEqual([2, 8, 8, 16]);
    expect(shapes.get('up0.level1')).toEqual([4, 8, 8, 16]);
    expect(shapes.get('up1.level1')).toEqual([8, 8, 8, 32]);
    expect(shapes.get('up2.level1')).toEqual([8, 8, 8, 32]);
    // The spatial level over frames keeps 4 frames per sample and halves the pixels.
    expect(shapes.get('down1.level0')).toEqual([8, 8, 8, 16]);
    // Its adapters convolve the clip tiled 2 × 2 (the official code's), the temporal level's its one frame.
    expect(shapes.get('in_adapter.level0')).toEqual([2, 16, 16, 32]);
    expect(shapes.get('in_adapter.level1')).toEqual([2, 8, 8, 16]);
    tf.dispose([...outs, ...x, text.tokens, text.mask]);
    model.dispose();
  });

  it('mixed batches: the clip levels may see fewer samples than the image level inside', () => {
    const model = new NestedUNet(tinyVideo());
    randomizeWeights(model, 12);
    const text = randomText(3, 5, 12);
    const full = randomImages(model, [3, 3]);
    const outFull = model.forward({ x: full, times: [5, 300, 900], ...text });
    const fewer = [tf.slice(full[0], 0, 2 * 4), full[1]];
    const outFewer = model.forward({ x: fewer, times: [5, 300, 900], ...text });
    expect(outFewer.map((o) => o.shape)).toEqual([
      [8, 8, 8, 3],
      [3, 8, 8, 3],
    ]);
    // The samples both see agree at the clip level; the image level's third sample loses its feature.
    expect(maxDiff(outFewer[0], tf.slice(outFull[0], 0, 8))).toBeLessThan(1e-5);
    expect(maxDiff(tf.slice(outFewer[1], 0, 2), tf.slice(outFull[1], 0, 2))).toBeLessThan(1e-5);
    expect(maxDiff(tf.slice(outFewer[1], 2, 1), tf.slice(outFull[1], 2, 1))).toBeGreaterThan(1e-4);
    expect(() => model.forward({ x: [tf.slice(full[0], 0, 6), full[1]], times: [1, 2, 3], ...text })).toThrow(
      /level 0 input has shape \[6,8,8,3\], expected NHWC \[b·4, 8, 8, 3\] \(4 frames per sample/,
    );
    tf.dispose([...outFull, ...outFewer, ...full, ...fewer, text.tokens, text.mask]);
    model.dispose();
  });

  it('counts parameters per level, the temporal level apart from its inner image level', () => {
    const { levels, total } = countParams(tinyVideo({ outer: true }));
    expect(levels.map((l) => l.resolution)).toEqual([16, 8, 8]);
    expect(levels.reduce((n, l) => n + l.params, 0)).toBe(total);
    expect(new NestedUNet(tinyVideo({ outer: true })).paramCount).toBe(total);
  });
});
