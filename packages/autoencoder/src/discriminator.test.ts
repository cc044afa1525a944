import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { paramCountOf, paramsFrom } from '@matryoshka-ts/layers';
import { findPython, maxAbs, maxAbsDiff } from '@matryoshka-ts/test-utils';
import {
  BATCH_NORM_EPS,
  DEFAULT_DISCRIMINATOR,
  type DiscriminatorConfig,
  PatchDiscriminator,
  batchNorm,
  discriminatorBufferSpecs,
  discriminatorForward,
  discriminatorOutputSize,
  discriminatorPlan,
  discriminatorSpecs,
} from './discriminator.js';

const tiny: DiscriminatorConfig = { inChannels: 3, ndf: 4, layers: 3 };

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

/** PyTorch's conv output side: ⌊(s + 2·pad − k)/stride⌋ + 1, with k = 4, pad = 1. */
const convSide = (s: number, stride: number) => Math.floor((s + 2 - 4) / stride) + 1;

/** The side after every conv of taming's construction: n_layers stride-2 convs, then two stride-1 convs. */
function sideByConvArithmetic(layers: number, size: number): number {
  let s = convSide(size, 2);
  for (let n = 1; n < layers; n++) s = convSide(s, 2);
  return convSide(convSide(s, 1), 1);
}

/** Random weights with O(1) activations (fan-in scaled), so a reference comparison is not dominated by zeros. */
function randomWeights(c: DiscriminatorConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const s of discriminatorSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const fanIn = s.shape.length === 4 ? s.shape[0] * s.shape[1] * s.shape[2] : 1;
    const isNormWeight = s.init.kind === 'ones';
    const scale = s.shape.length === 4 ? 1 / Math.sqrt(fanIn) : 0.2;
    out.set(
      s.name,
      Float32Array.from({ length: n }, () => (isNormWeight ? 1 : 0) + scale * rng.normal()),
    );
  }
  return out;
}

describe('structure (taming NLayerDiscriminator)', () => {
  it('names the modules by their nn.Sequential indices, LeakyReLUs counted', () => {
    const names = discriminatorSpecs(DEFAULT_DISCRIMINATOR).map((s) => s.name);
    expect(names).toEqual([
      'main.0.weight',
      'main.0.bias',
      'main.2.weight',
      'main.3.weight',
      'main.3.bias',
      'main.5.weight',
      'main.6.weight',
      'main.6.bias',
      'main.8.weight',
      'main.9.weight',
      'main.9.bias',
      'main.11.weight',
      'main.11.bias',
    ]);
    expect(discriminatorBufferSpecs(DEFAULT_DISCRIMINATOR).map((s) => s.name)).toEqual([
      'main.3.running_mean',
      'main.3.running_var',
      'main.6.running_mean',
      'main.6.running_var',
      'main.9.running_mean',
      'main.9.running_var',
    ]);
  });

  it('has channels ndf·min(2ⁿ, 8), stride 2 for n < n_layers, then a stride-1 conv and the 1-channel head', () => {
    const plan = discriminatorPlan({ inChannels: 6, ndf: 8, layers: 5 });
    expect(plan.map((s) => [s.cin, s.cout, s.stride, s.bias, s.norm !== undefined, s.act])).toEqual([
      [6, 8, 2, true, false, true],
      [8, 16, 2, false, true, true],
      [16, 32, 2, false, true, true],
      [32, 64, 2, false, true, true],
      [64, 64, 2, false, true, true],
      [64, 64, 1, false, true, true],
      [64, 1, 1, true, false, false],
    ]);
    expect(plan.at(-1)!.conv).toBe('main.17'); // 3·n_layers + 2
  });

  it('has 2,765,633 parameters for ndf 64, n_layers 3 (pix2pix/CycleGAN print 2.765 M for this D)', () => {
    // Closed form: Σ 4·4·cin·cout over convs, + 64 + 1 conv biases, + 2·c per BatchNorm (weight, bias).
    const convs = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 1);
    const expected = convs + 64 + 1 + 2 * (128 + 256 + 512);
    expect(expected).toBe(2_765_633);
    expect(paramCountOf(discriminatorSpecs(DEFAULT_DISCRIMINATOR))).toBe(expected);
    // Buffers are not parameters: running_mean and running_var add 2·(128 + 256 + 512) more state.
    expect(paramCountOf(discriminatorBufferSpecs(DEFAULT_DISCRIMINATOR))).toBe(1792);
  });

  it('gives ⌊s/2^n_layers⌋ − 2 patches per side, as the conv arithmetic does (30×30 at 256 px)', () => {
    expect(discriminatorOutputSize(DEFAULT_DISCRIMINATOR, 256)).toBe(30);
    expect(discriminatorOutputSize(DEFAULT_DISCRIMINATOR, 64)).toBe(6);
    expect(discriminatorOutputSize(DEFAULT_DISCRIMINATOR, 32)).toBe(2);
    for (let layers = 1; layers <= 5; layers++)
      for (let s = 16; s <= 300; s++)
        expect(discriminatorOutputSize({ ...DEFAULT_DISCRIMINATOR, layers }, s)).toBe(sideByConvArithmetic(layers, s));
  });
});

describe('PatchDiscriminator (default config)', () => {
  let d: PatchDiscriminator;
  beforeAll(() => {
    d = new PatchDiscriminator(DEFAULT_DISCRIMINATOR, { seed: 3 });
  });
  afterAll(() => d.dispose());

  it.each([32, 64])('maps %d px images to a [B, s, s, 1] logit map', (size) => {
    const x = tf.randomUniform([2, size, size, 3], -1, 1) as tf.Tensor4D;
    const y = d.forward(x, { updateStats: false });
    const s = sideByConvArithmetic(3, size);
    expect(y.shape).toEqual([2, s, s, 1]);
    expect(Number.isFinite(maxAbs(y.dataSync()))).toBe(true);
    tf.dispose([x, y]);
  });

  it("initialises as taming's weights_init: conv N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0", () => {
    const stats = (name: string) => {
      const v = d.params.get(name)!.dataSync() as Float32Array;
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      return { mean, std, n: v.length };
    };
    // Sample mean and std of n normals: standard errors σ/√n and σ/√(2n); bounds are 6 of those.
    for (const name of ['main.2.weight', 'main.8.weight', 'main.3.weight', 'main.9.weight']) {
      const { mean, std, n } = stats(name);
      const mu = name.startsWith('main.3') || name.startsWith('main.9') ? 1 : 0;
      expect(Math.abs(mean - mu)).toBeLessThan((6 * 0.02) / Math.sqrt(n));
      expect(Math.abs(std - 0.02)).toBeLessThan((6 * 0.02) / Math.sqrt(2 * n));
    }
    for (const name of ['main.3.bias', 'main.6.bias', 'main.9.bias'])
      expect(maxAbs(d.params.get(name)!.dataSync())).toBe(0);
    // Conv biases keep PyTorch's default U(±1/√fan_in) (weights_init only sets conv weights).
    expect(maxAbs(d.params.get('main.0.bias')!.dataSync())).toBeLessThanOrEqual(1 / Math.sqrt(48));
    expect(maxAbs(d.params.get('main.11.bias')!.dataSync())).toBeLessThanOrEqual(1 / Math.sqrt(16 * 512));
    expect(maxAbs(d.buffers.get('main.9.running_mean')!.dataSync())).toBe(0);
    expect(Array.from(d.buffers.get('main.9.running_var')!.dataSync()).every((v) => v === 1)).toBe(true);
  });
});

describe('BatchNorm', () => {
  it('in train mode normalises by the batch mean and biased variance over B, H, W (eps 1e-5)', () => {
    const [b, h, w, c] = [3, 4, 5, 6];
    const rng = new Rng(7);
    const xs = Float32Array.from({ length: b * h * w * c }, (_, i) => 2 * rng.normal() + (i % c) - 3);
    const gamma = Float32Array.from({ length: c }, () => 1 + 0.3 * rng.normal());
    const beta = Float32Array.from({ length: c }, () => rng.normal());
    const x = tf.tensor4d(xs, [b, h, w, c]);
    const P = paramsFrom(
      new Map([
        ['bn.weight', tf.tensor1d(gamma)],
        ['bn.bias', tf.tensor1d(beta)],
      ]),
    );
    const seen: Array<{ mean: number[]; variance: number[]; count: number }> = [];
    const y = tf.tidy(() =>
      batchNorm(P, 'bn', x, {
        onBatchStats: (_, mean, variance, count) =>
          seen.push({ mean: Array.from(mean.dataSync()), variance: Array.from(variance.dataSync()), count }),
      }),
    );
    // Direct computation in float64.
    const n = b * h * w;
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    xs.forEach((v, i) => (mean[i % c] += v / n));
    xs.forEach((v, i) => (variance[i % c] += (v - mean[i % c]) ** 2 / n));
    const want = Float64Array.from(
      xs,
      (v, i) => ((v - mean[i % c]) / Math.sqrt(variance[i % c] + BATCH_NORM_EPS)) * gamma[i % c] + beta[i % c],
    );
    // Values O(1–5): float32 sums of 60 terms and one rsqrt stay within ~1e-5 relative.
    expect(seen).toHaveLength(1);
    expect(seen[0].count).toBe(n);
    expect(maxAbsDiff(seen[0].mean, mean)).toBeLessThan(1e-5);
    expect(maxAbsDiff(seen[0].variance, variance)).toBeLessThan(1e-4);
    expect(maxAbsDiff(y.dataSync(), want)).toBeLessThan(1e-4);

    // Eval mode reads the running buffers instead.
    const running = paramsFrom(
      new Map([
        ['bn.running_mean', tf.tensor1d(Float32Array.from(mean))],
        ['bn.running_var', tf.tensor1d(Float32Array.from(variance))],
      ]),
    );
    const yEval = tf.tidy(() => batchNorm(P, 'bn', x, { training: false, running }));
    expect(maxAbsDiff(yEval.dataSync(), want)).toBeLessThan(1e-4);
    expect(() => batchNorm(P, 'bn', x, { training: false })).toThrow(/running statistics/);
    tf.dispose([x, y, yEval]);
  });

  it('updates the running statistics as PyTorch: momentum 0.1, unbiased variance; none in eval mode', () => {
    const d = new PatchDiscriminator(tiny, { seed: 1 });
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const batch = new Map<string, { mean: Float32Array; variance: Float32Array; count: number }>();
    const before = tf.tidy(() =>
      discriminatorForward(d.P, tiny, x, {
        onBatchStats: (name, mean, variance, count) =>
          batch.set(name, {
            mean: mean.dataSync() as Float32Array,
            variance: variance.dataSync() as Float32Array,
            count,
          }),
      }),
    );
    const y = d.forward(x);
    expect(maxAbsDiff(y.dataSync(), before.dataSync())).toBe(0);
    expect([...batch.keys()]).toEqual(['main.3', 'main.6', 'main.9']);
    for (const [name, { mean, variance, count }] of batch) {
      const rm = d.buffers.get(`${name}.running_mean`)!.dataSync();
      const rv = d.buffers.get(`${name}.running_var`)!.dataSync();
      // Float32 rounding of a few products of O(1) values.
      expect(
        maxAbsDiff(
          rm,
          Array.from(mean, (m) => 0.1 * m),
        ),
      ).toBeLessThan(1e-6);
      expect(
        maxAbsDiff(
          rv,
          Array.from(variance, (v) => 0.9 + (0.1 * v * count) / (count - 1)),
        ),
      ).toBeLessThan(1e-5);
    }
    expect(d.numBatchesTracked).toBe(1);
    const saved = d.getWeights();
    expect(saved.size).toBe(d.params.size + d.buffers.size);
    expect(maxAbsDiff(saved.get('main.3.running_mean')!, d.buffers.get('main.3.running_mean')!.dataSync())).toBe(0);
    const snapshot = d.buffers.get('main.9.running_var')!.dataSync().slice();
    tf.dispose([d.forward(x, { training: false }), d.forward(x, { updateStats: false })]);
    expect(d.numBatchesTracked).toBe(1);
    expect(maxAbsDiff(d.buffers.get('main.9.running_var')!.dataSync(), snapshot)).toBe(0);
    tf.dispose([x, y, before]);
    d.dispose();
  });
});

/**
 * The whole forward in float64 numpy, built from taming's construction (not from our plan): it
 * finds every weight by its state-dict name, so a wrong index fails with a KeyError.
 */
const NUMPY_FORWARD = String.raw`
import json, sys
import numpy as np
inp = json.load(sys.stdin)
c, p = inp['config'], {k: np.array(v['data'], np.float64).reshape(v['shape']) for k, v in inp['params'].items()}
x = np.array(inp['x'], np.float64).reshape(inp['xShape'])

def conv(x, w, b, stride):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (xp.shape[1] - 4) // stride + 1, (xp.shape[2] - 4) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(4):
        for j in range(4):
            patch = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            out += patch @ w[i, j]
    return out if b is None else out + b

def bn(x, name):
    mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    return (x - mu) / np.sqrt(var + 1e-5) * p[name + '.weight'] + p[name + '.bias']

lrelu = lambda x: np.where(x > 0, x, 0.2 * x)
seq = [('conv', 2, True), ('act',)]
for n in range(1, c['layers']):
    seq += [('conv', 2, False), ('bn',), ('act',)]
seq += [('conv', 1, False), ('bn',), ('act',), ('conv', 1, True)]
h = x
for i, m in enumerate(seq):
    if m[0] == 'conv':
        h = conv(h, p['main.%d.weight' % i], p['main.%d.bias' % i] if m[2] else None, m[1])
    elif m[0] == 'bn':
        h = bn(h, 'main.%d' % i)
    else:
        h = lrelu(h)
print(json.dumps({'shape': list(h.shape), 'y': h.ravel().tolist()}))
`;

describe('numpy reference', () => {
  const python = findPython(['numpy']);
  it.skipIf(!python)('the whole forward matches a float64 numpy PatchGAN (ndf 4, n_layers 3, 32 px)', () => {
    const weights = randomWeights(tiny, 11);
    const d = new PatchDiscriminator(tiny);
    d.setWeights(weights);
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 9) as tf.Tensor4D;
    const y = d.forward(x, { updateStats: false });
    const params = Object.fromEntries(
      [...weights].map(([name, v]) => [name, { shape: d.params.get(name)!.shape, data: Array.from(v) }]),
    );
    const input = JSON.stringify({ config: tiny, params, x: Array.from(x.dataSync()), xShape: x.shape });
    const run = spawnSync(python!, ['-c', NUMPY_FORWARD], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (run.status !== 0) throw new Error(run.stderr);
    const ref = JSON.parse(run.stdout) as { shape: number[]; y: number[] };
    expect(y.shape).toEqual(ref.shape);
    // float32 vs float64: each conv sums ≤ 16·16 = 256 O(1) products (≈ √256·2⁻²⁴ ≈ 1e-6 relative
    // at worst, less as errors cancel), and the three BatchNorms divide by batch stds that are O(1)
    // here, so the error stays near 1e-6 of max |y| (4e-7 observed); 1e-5 still catches any wrong
    // weight, index, stride or padding, which moves logits by O(1).
    expect(maxAbsDiff(y.dataSync(), ref.y) / maxAbs(ref.y)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    d.dispose();
  });
});

describe('gradients', () => {
  it('match central finite differences on a tiny discriminator (batch statistics included)', () => {
    const c: DiscriminatorConfig = { inChannels: 2, ndf: 3, layers: 2 };
    const d = new PatchDiscriminator(c);
    d.setWeights(randomWeights(c, 21));
    const x = tf.randomUniform([2, 16, 16, 2], -1, 1, 'float32', 4) as tf.Tensor4D;
    const r = tf.randomNormal([2, 2, 2, 1], 0, 1, 'float32', 8);
    // Σ D(x)·r, summed in float64 from the float32 logits.
    const loss = () => {
      const y = d.forward(x, { updateStats: false });
      const ys = y.dataSync() as Float32Array;
      const rs = r.dataSync();
      y.dispose();
      return ys.reduce((s, v, i) => s + v * rs[i], 0);
    };
    // Differentiated through the `params` option, as a trainer would.
    const names = [...d.params.keys()];
    const grads = tf.grads((...ts: tf.Tensor[]) => {
      const params = paramsFrom(new Map(names.map((name, i) => [name, ts[i]])));
      return tf.sum(tf.mul(d.forward(x, { params, updateStats: false }), r));
    })([...d.params.values()]);
    const probes: Array<[string, number]> = [
      ['main.0.weight', 5],
      ['main.0.bias', 1],
      ['main.2.weight', 17],
      ['main.3.weight', 2],
      ['main.3.bias', 0],
      ['main.5.weight', 40],
      ['main.6.weight', 4],
      ['main.8.weight', 7],
      ['main.8.bias', 0],
    ];
    const h = 1e-3;
    for (const [name, index] of probes) {
      const v = d.params.get(name)!;
      const values = v.dataSync().slice() as Float32Array;
      const at = (delta: number) => {
        const moved = values.slice();
        moved[index] += delta;
        d.setWeights(new Map([[name, moved]]));
        return loss();
      };
      const fd = (at(h) - at(-h)) / (2 * h);
      d.setWeights(new Map([[name, values]]));
      const g = grads[names.indexOf(name)].dataSync()[index];
      // Rounding: the float32 loss (O(1)) carries ≈ 1e-6 of noise, i.e. ≈ 1e-6/(2h) = 5e-4 in fd;
      // truncation h²/6·f''' is ≈ 1e-7. A small h matters more: every parameter is shared over all
      // positions, and at h = 1e-2 main.0.bias already moves LeakyReLU inputs across 0 (fd off by 0.08).
      // Observed errors are ≤ 7e-4; the bound is 2e-3 relative to max(1, |g|).
      expect(Math.abs(fd - g), `${name}[${index}]: fd ${fd}, grad ${g}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(g)));
    }
    tf.dispose([x, r, ...grads]);
    d.dispose();
  });

  it('reach the input images (the generator trains through the discriminator)', () => {
    const d = new PatchDiscriminator(tiny);
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 2);
    const g = tf.grad((img: tf.Tensor) => tf.mean(d.forward(img as tf.Tensor4D, { updateStats: false })))(x);
    expect(g.shape).toEqual(x.shape);
    expect(maxAbs(g.dataSync())).toBeGreaterThan(0);
    tf.dispose([x, g]);
    d.dispose();
  });
});

describe('memory', () => {
  it('leaks no tensors: forward (train, eval, with stat updates), gradients, dispose', () => {
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1) as tf.Tensor4D;
    const start = tf.memory().numTensors;
    const d = new PatchDiscriminator(tiny);
    const owned = tf.memory().numTensors - start;
    expect(owned).toBe(d.params.size + d.buffers.size);
    for (let i = 0; i < 3; i++) {
      tf.dispose([d.forward(x), d.forward(x, { training: false })]);
      const { value, grads } = tf.variableGrads(() => tf.mean(d.forward(x)) as tf.Scalar, [...d.params.values()]);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(start + owned);
    }
    d.dispose();
    expect(tf.memory().numTensors).toBe(start);
    x.dispose();
  });

  it('rejects a wrong channel count and images too small for the layers', () => {
    const d = new PatchDiscriminator(tiny);
    const wrong = tf.zeros([1, 32, 32, 4]) as tf.Tensor4D;
    const small = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
    expect(() => d.forward(wrong)).toThrow(/\[B, H, W, 3\]/);
    expect(() => d.forward(small)).toThrow(/too small/);
    expect(() => new PatchDiscriminator({ inChannels: 3, ndf: 0, layers: 3 })).toThrow(/ndf/);
    tf.dispose([wrong, small]);
    d.dispose();
  });
});
