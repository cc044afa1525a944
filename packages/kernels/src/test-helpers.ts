/**
 * Test-only helpers (imported by the *.test.ts files; not exported from the package): a seeded
 * generator and a direct float64 convolution, written independently of the code under test.
 */
import { seeded } from '@matryoshka-ts/test-utils';

export { seeded };

/** n values uniform in [−1, 1), each exactly representable in float32. */
export function randomF32(rand: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 2 * rand() - 1;
  return out;
}

export interface ConvGeometry {
  /** [B, H, W, Cin] */
  xShape: [number, number, number, number];
  /** [kh, kw, Cin, Cout] */
  filterShape: [number, number, number, number];
  stride: [number, number];
  dilation?: [number, number];
  /** Explicit zero padding [top, bottom, left, right]. */
  pads: [number, number, number, number];
}

/** TensorFlow's 'same' padding: total = max((out−1)·s + k_eff − in, 0), the smaller half on top/left. */
export function samePads(
  h: number,
  w: number,
  kh: number,
  kw: number,
  sh: number,
  sw: number,
  dh = 1,
  dw = 1,
): [number, number, number, number] {
  const outH = Math.ceil(h / sh);
  const outW = Math.ceil(w / sw);
  const ph = Math.max((outH - 1) * sh + (kh - 1) * dh + 1 - h, 0);
  const pw = Math.max((outW - 1) * sw + (kw - 1) * dw + 1 - w, 0);
  return [Math.floor(ph / 2), ph - Math.floor(ph / 2), Math.floor(pw / 2), pw - Math.floor(pw / 2)];
}

export function outSize(g: ConvGeometry): [number, number] {
  const [, h, w] = g.xShape;
  const [kh, kw] = g.filterShape;
  const [dh, dw] = g.dilation ?? [1, 1];
  const [pt, pb, pl, pr] = g.pads;
  return [
    Math.floor((h + pt + pb - ((kh - 1) * dh + 1)) / g.stride[0]) + 1,
    Math.floor((w + pl + pr - ((kw - 1) * dw + 1)) / g.stride[1]) + 1,
  ];
}

/** Direct NHWC/HWIO convolution in float64: y[b,oy,ox,o] = Σ x[b, oy·s+i·d−pt, ox·s+j·d−pl, c]·w[i,j,c,o]. */
export function convDirect(x: ArrayLike<number>, w: ArrayLike<number>, g: ConvGeometry): Float64Array {
  const [B, H, W, C] = g.xShape;
  const [kh, kw, , O] = g.filterShape;
  const [dh, dw] = g.dilation ?? [1, 1];
  const [oh, ow] = outSize(g);
  const y = new Float64Array(B * oh * ow * O);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let o = 0; o < O; o++) {
          let acc = 0;
          for (let i = 0; i < kh; i++) {
            const iy = oy * g.stride[0] + i * dh - g.pads[0];
            if (iy < 0 || iy >= H) continue;
            for (let j = 0; j < kw; j++) {
              const ix = ox * g.stride[1] + j * dw - g.pads[2];
              if (ix < 0 || ix >= W) continue;
              for (let c = 0; c < C; c++) acc += x[((b * H + iy) * W + ix) * C + c] * w[((i * kw + j) * C + c) * O + o];
            }
          }
          y[((b * oh + oy) * ow + ox) * O + o] = acc;
        }
  return y;
}

/**
 * Direct filter gradient in float64, dW[i,j,c,o] = Σ_{b,oy,ox} x[…]·dy[b,oy,ox,o], and the sum of
 * the absolute values of the same terms (for a rounding-error bound on float32 results).
 */
export function filterGradDirect(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  g: ConvGeometry,
): { grad: Float64Array; absSum: Float64Array } {
  const [B, H, W, C] = g.xShape;
  const [kh, kw, , O] = g.filterShape;
  const [dh, dw] = g.dilation ?? [1, 1];
  const [oh, ow] = outSize(g);
  const grad = new Float64Array(kh * kw * C * O);
  const absSum = new Float64Array(kh * kw * C * O);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let i = 0; i < kh; i++) {
          const iy = oy * g.stride[0] + i * dh - g.pads[0];
          if (iy < 0 || iy >= H) continue;
          for (let j = 0; j < kw; j++) {
            const ix = ox * g.stride[1] + j * dw - g.pads[2];
            if (ix < 0 || ix >= W) continue;
            for (let c = 0; c < C; c++)
              for (let o = 0; o < O; o++) {
                const term = x[((b * H + iy) * W + ix) * C + c] * dy[((b * oh + oy) * ow + ox) * O + o];
                grad[((i * kw + j) * C + c) * O + o] += term;
                absSum[((i * kw + j) * C + c) * O + o] += Math.abs(term);
              }
          }
        }
  return { grad, absSum };
}

export { maxAbs, maxAbsDiff } from '@matryoshka-ts/test-utils';
