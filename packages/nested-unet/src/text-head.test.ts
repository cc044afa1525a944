import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { Rng } from '@matryoshka-ts/core';
import { initBackend } from '@matryoshka-ts/backends';
import { paramsFrom } from '@matryoshka-ts/layers';
import { textHeadLayer, textHeadLayerSpecs } from './text-head.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

type Vec = number[];
const erf = (x: number) => {
  // Abramowitz–Stegun 7.1.26 is too coarse; use the series/continued fraction via Math functions:
  // erf(x) = 1 − erfc(x), erfc by a high-precision Chebyshev fit (Numerical Recipes erfcc, |ε| < 1.2e-7).
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
};
const layerNorm = (x: Vec, w: Vec, b: Vec) => {
  const m = x.reduce((a, v) => a + v, 0) / x.length;
  const v = x.reduce((a, u) => a + (u - m) ** 2, 0) / x.length;
  return x.map((u, i) => ((u - m) / Math.sqrt(v + 1e-5)) * w[i] + b[i]);
};
const linear = (x: Vec, W: Float32Array, b: Float32Array, nout: number) =>
  Array.from({ length: nout }, (_, o) => x.reduce((a, v, i) => a + v * W[i * nout + o], b[o]));

/** The official SelfAttention1DBlock written out in float64 loops: an independent reference. */
function reference(x: Vec[][], p: Map<string, Float32Array>, heads: number, mask?: number[][]): Vec[][] {
  const P = x[0][0].length;
  const ch = P / heads;
  const g = (n: string) => p.get(n)!;
  return x.map((tokens, bi) => {
    const qkv = tokens.map((t) =>
      linear(
        layerNorm(t, [...g('h.attn.norm.weight')], [...g('h.attn.norm.bias')]),
        g('h.attn.qkv.weight'),
        g('h.attn.qkv.bias'),
        3 * P,
      ),
    );
    const att = tokens.map((_, i) => {
      const out = new Array(P).fill(0);
      for (let h = 0; h < heads; h++) {
        const logits = tokens.map((__, j) => {
          if (mask && mask[bi][j] === 0) return -Infinity;
          let s = 0;
          for (let c = 0; c < ch; c++) s += qkv[i][h * ch + c] * qkv[j][P + h * ch + c];
          return s / Math.sqrt(ch);
        });
        const m = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - m));
        const z = e.reduce((a, v) => a + v, 0);
        for (let j = 0; j < tokens.length; j++)
          for (let c = 0; c < ch; c++) out[h * ch + c] += (e[j] / z) * qkv[j][2 * P + h * ch + c];
      }
      return out;
    });
    const h1 = tokens.map((t, i) =>
      t.map((v, c) => v + linear(att[i], g('h.attn.proj_out.weight'), g('h.attn.proj_out.bias'), P)[c]),
    );
    return h1.map((t) => {
      const hidden = linear(
        layerNorm(t, [...g('h.mlp.main.0.weight')], [...g('h.mlp.main.0.bias')]),
        g('h.mlp.main.1.weight'),
        g('h.mlp.main.1.bias'),
        4 * P,
      ).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
      const o = linear(hidden, g('h.mlp.main.3.weight'), g('h.mlp.main.3.bias'), P);
      return t.map((v, c) => v + o[c]);
    });
  });
}

it.each([false, true])('a text-head layer equals a float64 loop implementation (masked: %s)', (masked) => {
  const [B, L, P, heads] = [2, 4, 16, 8];
  const rng = new Rng(7);
  const values = new Map<string, Float32Array>();
  for (const spec of textHeadLayerSpecs('h', P)) {
    const n = spec.shape.reduce((a, d) => a * d, 1);
    values.set(
      spec.name,
      Float32Array.from({ length: n }, () => (spec.init.kind === 'ones' ? 1 : 0) + rng.normal() * 0.3),
    );
  }
  const x = Array.from({ length: B }, () =>
    Array.from({ length: L }, () => Array.from({ length: P }, () => rng.normal())),
  );
  const mask = [
    [1, 1, 1, 1],
    [1, 1, 0, 0],
  ];
  const tensors = new Map(
    [...values].map(([k, v]) => [k, tf.tensor(v, textHeadLayerSpecs('h', P).find((s) => s.name === k)!.shape)]),
  );
  const ours = textHeadLayer(
    paramsFrom(tensors),
    'h',
    tf.tensor3d(x),
    heads,
    masked ? tf.tensor2d(mask) : undefined,
  ).arraySync();
  const ref = reference(x, values, heads, masked ? mask : undefined);
  let m = 0;
  ref.forEach((t, b) => t.forEach((v, i) => v.forEach((u, c) => (m = Math.max(m, Math.abs(u - ours[b][i][c]))))));
  // float32 against float64 on O(1) values, plus the erf fit's 1.2e-7: well under 1e-4.
  expect(m).toBeLessThan(1e-4);
});

it('a freshly initialised text-head layer is the identity (zero-initialised output layers)', () => {
  const specs = textHeadLayerSpecs('h', 16);
  expect(specs.filter((s) => s.init.kind === 'zeros' && s.layout === 'linear').map((s) => s.name)).toEqual([
    'h.attn.proj_out.weight',
    'h.mlp.main.3.weight',
  ]);
  const rng = new Rng(1);
  const tensors = new Map(
    specs.map((s) => [
      s.name,
      s.init.kind === 'zeros'
        ? tf.zeros(s.shape)
        : s.init.kind === 'ones'
          ? tf.ones(s.shape)
          : tf.randomNormal(s.shape, 0, 0.3, 'float32', 3),
    ]),
  );
  const x = tf.tensor3d(rng.normals(2 * 3 * 16), [2, 3, 16]);
  expect(Array.from(textHeadLayer(paramsFrom(tensors), 'h', x, 8).dataSync())).toEqual(Array.from(x.dataSync()));
});
