/**
 * Image resizing as done before feature extraction by the standard FID / CLIP tools, reproduced
 * to the bit where the reference is deterministic:
 *
 * - pytorch-fid: `F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)` on
 *   [0,1] float32 input, inside its InceptionV3 (`resizeBilinearTorch`, `pytorchFidResize`).
 * - clean-fid ('clean' mode): PIL bicubic on each channel as a mode 'F' (float32) image of 0..255
 *   values, then clip to [0,255] (`resizeBicubicPil(…, 'F')`, `cleanFidResize`).
 * - CLIP (HF CLIPImageProcessor / OpenAI CLIP): PIL bicubic on the uint8 RGB image, shorter side to
 *   224, centre crop, rescale, normalise (`resizeBicubicPil(…, 'uint8')`, `clipPreprocess`).
 *
 * Images are one at a time, interleaved HWC (channels last). Every channel is resampled
 * independently, which is what all three references do for 1- and 3-channel images.
 */

/** One interleaved (HWC, channels-last) image: pixel (x, y) channel c is `data[(y * width + x) * channels + c]`. */
export interface Image<T extends Float32Array | Uint8Array> {
  data: T;
  width: number;
  height: number;
  channels: number;
}
export type FloatImage = Image<Float32Array>;
export type Uint8Image = Image<Uint8Array>;

/**
 * A planar (CHW, channels-first) float32 image: channel c, pixel (x, y) is
 * `data[(c * height + y) * width + x]`. The same buffer is an ONNX `[1, channels, height, width]` tensor.
 */
export interface ChwImage {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

/** The two FID preprocessing conventions: they give measurably different FIDs, so stats must match. */
export type ResizeMethod = 'pytorch-fid' | 'clean-fid';

function checkImage(image: Image<Float32Array | Uint8Array>): void {
  const { width, height, channels, data } = image;
  if (!(width > 0 && height > 0 && channels > 0) || data.length !== width * height * channels) {
    throw new Error(`resize: bad image ${width}×${height}×${channels} with ${data.length} values`);
  }
}

function checkSize(outW: number, outH: number): void {
  if (!(Number.isInteger(outW) && Number.isInteger(outH) && outW > 0 && outH > 0)) {
    throw new Error(`resize: bad output size ${outW}×${outH}`);
  }
}

// ---------------------------------------------------------------------------------------------
// torch bilinear (aten upsample_bilinear2d, CPU, align_corners=False, no antialias)
// ---------------------------------------------------------------------------------------------

const f32 = Math.fround;

/** The two source taps and float32 weights of each output index along one axis. */
interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

/**
 * torch's `compute_source_index_and_lambda` (CPU). The scale is a float32 (`(float)in / out`), but
 * the source index `scale * (dst + 0.5) - 0.5` is evaluated and kept in double (as measured against
 * torch 1.13: CPU math on the float kernel's accumulate type), clamped at 0 below so the first outputs
 * copy the edge; index 0 is its truncation,
 * index 1 the next pixel unless that would leave the image, and only the lambdas are rounded to
 * float32. Rounding the source index to float32 first (as a float-only reading of the C++ suggests)
 * moves lambdas by up to half an ulp of the index, ~1e-5 near 300: measurable against torch.
 * Note this is no low-pass filter: when downsampling, each output still reads 2 pixels per axis.
 */
function torchLinearTaps(inSize: number, outSize: number): LinearTaps {
  const taps = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  const scale = f32(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    if (inSize === outSize) {
      // torch's special case: a plain copy.
      taps.i0[i] = i;
      taps.i1[i] = i;
      taps.w0[i] = 1;
      taps.w1[i] = 0;
      continue;
    }
    const src = Math.max(scale * (i + 0.5) - 0.5, 0);
    const i0 = Math.trunc(src);
    const lambda1 = f32(src - i0);
    taps.i0[i] = i0;
    taps.i1[i] = i0 < inSize - 1 ? i0 + 1 : i0;
    taps.w1[i] = lambda1;
    taps.w0[i] = f32(1 - lambda1);
  }
  return taps;
}

/**
 * float32 a·b + c with one rounding (a fused multiply-add): the product of two float32 values is
 * exact in double, so only the sum rounds (double then float32: this differs from a true fma only
 * in the rare case where the double sum lands exactly on a float32 rounding tie).
 */
function fmaF32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}

/**
 * `torch.nn.functional.interpolate(x, size=(outH, outW), mode='bilinear', align_corners=False)` on
 * one HWC float32 image, standing for a contiguous NCHW tensor (as pytorch-fid feeds it), with the
 * rounding of torch 1.13's AVX2 CPU kernels, which depends on which kernel torch picks:
 * - several channels: the generic kernel interpolates along the width in each of the two source
 *   rows, then between the rows, each step `t0 * w0 + t1 * w1` compiled to fma(t0, w0, t1 * w1);
 * - one channel: the tensor is also "channels-last contiguous", so torch takes that kernel, which
 *   weighs the four pixels by float32 products h·w and sums them with a single rounding.
 * Bit-exact against torch 1.13 on this project's machines; a build without FMA lands 1–2 ulp away.
 */
export function resizeBilinearTorch(image: FloatImage, outW: number, outH: number): FloatImage {
  checkImage(image);
  checkSize(outW, outH);
  const { data, width, height, channels: ch } = image;
  const xs = torchLinearTaps(width, outW);
  const ys = torchLinearTaps(height, outH);
  const out = new Float32Array(outW * outH * ch);
  for (let oy = 0; oy < outH; oy++) {
    const row0 = ys.i0[oy] * width;
    const row1 = ys.i1[oy] * width;
    const h0 = ys.w0[oy];
    const h1 = ys.w1[oy];
    for (let ox = 0; ox < outW; ox++) {
      const w0 = xs.w0[ox];
      const w1 = xs.w1[ox];
      const p00 = (row0 + xs.i0[ox]) * ch;
      const p01 = (row0 + xs.i1[ox]) * ch;
      const p10 = (row1 + xs.i0[ox]) * ch;
      const p11 = (row1 + xs.i1[ox]) * ch;
      const o = (oy * outW + ox) * ch;
      if (ch === 1) {
        // Channels-last kernel: double sum of float32-weighted pixels, stored as float32.
        out[o] =
          f32(h0 * w0) * data[p00] + f32(h0 * w1) * data[p01] + f32(h1 * w0) * data[p10] + f32(h1 * w1) * data[p11];
        continue;
      }
      for (let c = 0; c < ch; c++) {
        const t0 = fmaF32(data[p00 + c], w0, f32(data[p01 + c] * w1));
        const t1 = fmaF32(data[p10 + c], w0, f32(data[p11 + c] * w1));
        out[o + c] = fmaF32(t0, h0, f32(t1 * h1));
      }
    }
  }
  return { data: out, width: outW, height: outH, channels: ch };
}

// ---------------------------------------------------------------------------------------------
// PIL bicubic (libImaging/Resample.c, Pillow 9.4)
// ---------------------------------------------------------------------------------------------

/**
 * PIL's 8-bit fixed point: 32 bits minus 8 for the value minus 2 because sums of weights can exceed 1 or go
 * negative.
 */
const PRECISION_BITS = 32 - 8 - 2;

/** Keys' cubic convolution kernel with a = -0.5 (PIL's `bicubic_filter`), support 2. */
function bicubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/**
 * For each output index: the first source index, how many source pixels it reads, and their weights (row `ksize`
 * wide).
 */
interface ConvolutionTaps {
  start: Int32Array;
  count: Int32Array;
  ksize: number;
  weights: Float64Array;
}

/**
 * PIL's `precompute_coeffs` with the default box (the whole image). When downscaling, the kernel is
 * stretched by the scale factor (that is the antialiasing); the window bounds are rounded the C way
 * (`(int)(v + 0.5)`, truncation) and the weights are normalised to sum to 1 per output pixel.
 */
function pilBicubicTaps(inSize: number, outSize: number): ConvolutionTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const taps: ConvolutionTaps = {
    start: new Int32Array(outSize),
    count: new Int32Array(outSize),
    ksize,
    weights: new Float64Array(outSize * ksize),
  };
  const ss = 1 / filterScale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const count = xmax - xmin;
    const k = i * ksize;
    let sum = 0;
    for (let x = 0; x < count; x++) {
      // Same evaluation order as the C: ((x + xmin) - center + 0.5) * ss.
      const w = bicubic((x + xmin - center + 0.5) * ss);
      taps.weights[k + x] = w;
      sum += w;
    }
    if (sum !== 0) for (let x = 0; x < count; x++) taps.weights[k + x] /= sum;
    taps.start[i] = xmin;
    taps.count[i] = count;
  }
  return taps;
}

/** PIL's `normalize_coeffs_8bpc`: weights to fixed point, rounded half away from zero (C truncation of ±0.5). */
function fixedPointWeights(weights: Float64Array): Int32Array {
  const one = 1 << PRECISION_BITS;
  return Int32Array.from(weights, (w) => (w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one)));
}

/**
 * One separable pass over data seen as [outer][inSize][inner] (horizontal pass on HWC: outer = rows,
 * inner = channels; vertical pass: outer = 1, inner = width × channels). PIL's float path sums in
 * double and stores float32 (the Float32Array store does that rounding).
 */
function convolveAxisF(
  src: Float32Array,
  outer: number,
  inSize: number,
  inner: number,
  taps: ConvolutionTaps,
): Float32Array {
  const outSize = taps.start.length;
  const dst = new Float32Array(outer * outSize * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < outSize; j++) {
      const first = (o * inSize + taps.start[j]) * inner;
      const count = taps.count[j];
      const k = j * taps.ksize;
      const d = (o * outSize + j) * inner;
      for (let i = 0; i < inner; i++) {
        let ss = 0;
        for (let x = 0; x < count; x++) ss += src[first + x * inner + i] * taps.weights[k + x];
        dst[d + i] = ss;
      }
    }
  }
  return dst;
}

/**
 * The uint8 version of `convolveAxisF`, in PIL's integer arithmetic: start from ½ (rounding), add
 * pixel × fixed-point weight, then shift down and clip to 0..255 (PIL's `clip8`) after each pass.
 * The sums stay well within int32 (255 · Σ|w| · 2²² < 2³¹), so JS numbers are exact.
 */
function convolveAxis8(
  src: Uint8Array,
  outer: number,
  inSize: number,
  inner: number,
  taps: ConvolutionTaps,
): Uint8Array {
  const outSize = taps.start.length;
  const weights = fixedPointWeights(taps.weights);
  const dst = new Uint8Array(outer * outSize * inner);
  const half = 1 << (PRECISION_BITS - 1);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < outSize; j++) {
      const first = (o * inSize + taps.start[j]) * inner;
      const count = taps.count[j];
      const k = j * taps.ksize;
      const d = (o * outSize + j) * inner;
      for (let i = 0; i < inner; i++) {
        let ss = half;
        for (let x = 0; x < count; x++) ss += src[first + x * inner + i] * weights[k + x];
        const v = ss >> PRECISION_BITS;
        dst[d + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return dst;
}

/**
 * PIL `Image.resize((outW, outH), resample=Image.BICUBIC)` (no box, no reducing_gap), Pillow 9.4:
 * separable, horizontal pass first, and a pass is skipped when its dimension does not change (the
 * whole call is a copy when neither does).
 *
 * - mode 'F': each channel as a 32-bit float image (double sums, float32 storage after each pass).
 * - mode 'uint8': 8-bit images in PIL's fixed-point arithmetic, bit-exact. Matches PIL's 'L' and
 *   'RGB'; PIL premultiplies alpha for 'LA'/'RGBA', which this (channel-independent) version does not.
 */
export function resizeBicubicPil(image: FloatImage, outW: number, outH: number, mode: 'F'): FloatImage;
export function resizeBicubicPil(image: Uint8Image, outW: number, outH: number, mode: 'uint8'): Uint8Image;
export function resizeBicubicPil(
  image: FloatImage | Uint8Image,
  outW: number,
  outH: number,
  mode: 'F' | 'uint8',
): FloatImage | Uint8Image {
  checkImage(image);
  checkSize(outW, outH);
  const { width, height, channels: ch } = image;
  const isFloat = image.data instanceof Float32Array;
  if (isFloat !== (mode === 'F'))
    throw new Error(`resizeBicubicPil: mode '${mode}' needs ${mode === 'F' ? 'a Float32Array' : 'a Uint8Array'} image`);
  const pass = (
    src: Float32Array | Uint8Array,
    outer: number,
    inSize: number,
    inner: number,
    taps: ConvolutionTaps,
  ): Float32Array | Uint8Array =>
    isFloat
      ? convolveAxisF(src as Float32Array, outer, inSize, inner, taps)
      : convolveAxis8(src as Uint8Array, outer, inSize, inner, taps);
  let data: Float32Array | Uint8Array = image.data.slice();
  if (outW !== width) data = pass(data, height, width, ch, pilBicubicTaps(width, outW));
  if (outH !== height) data = pass(data, 1, height, outW * ch, pilBicubicTaps(height, outH));
  return { data, width: outW, height: outH, channels: ch } as FloatImage | Uint8Image;
}

// ---------------------------------------------------------------------------------------------
// The tools' pipelines
// ---------------------------------------------------------------------------------------------

/** uint8 → float32 0..255 (exact). */
function toFloat(image: Uint8Image): FloatImage {
  return { ...image, data: Float32Array.from(image.data) };
}

/**
 * clean-fid's 'clean' resizer: each channel as a PIL 'F' image of 0..255 values, bicubic to
 * size×size, clipped to [0, 255] (bicubic overshoots). Returns HWC float32 of 0..255 values.
 */
export function cleanFidResize(image: Uint8Image, size = 299): FloatImage {
  const out = resizeBicubicPil(toFloat(image), size, size, 'F');
  const d = out.data;
  for (let i = 0; i < d.length; i++) d[i] = d[i] < 0 ? 0 : d[i] > 255 ? 255 : d[i];
  return out;
}

/**
 * pytorch-fid: torchvision `ToTensor` (uint8 / 255 in float32) then its InceptionV3's bilinear
 * interpolate to size×size. Returns HWC float32 in [0, 1] (before the network's own 2x − 1).
 */
export function pytorchFidResize(image: Uint8Image, size = 299): FloatImage {
  const data = Float32Array.from(image.data, (v) => v / 255);
  return resizeBilinearTorch({ ...image, data }, size, size);
}

/** The resizing of the chosen FID convention (see `ResizeMethod`), size×size HWC float32. */
export function resizeForFid(image: Uint8Image, size: number, method: ResizeMethod): FloatImage {
  return method === 'clean-fid' ? cleanFidResize(image, size) : pytorchFidResize(image, size);
}

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073].map(f32);
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711].map(f32);

/**
 * Output (width, height) when the shorter side becomes `size`: the longer side is
 * int(size * long / short), as in HF's `get_resize_output_image_size(default_to_square=False)` and
 * torchvision's `Resize(int)` (both truncate a double quotient, which JS reproduces exactly).
 */
function shortSideSize(width: number, height: number, size: number): [number, number] {
  return width <= height ? [size, Math.trunc((size * height) / width)] : [Math.trunc((size * width) / height), size];
}

/**
 * HF `CLIPImageProcessor` on an RGB uint8 image: PIL bicubic so the shorter side is `size`, centre
 * crop size×size, × (1/255) rounded to float32, then (x − mean) / std in float32 with CLIP's mean
 * and std. Returns CHW float32 (an ONNX `[1, 3, size, size]` pixel_values tensor).
 *
 * Crop offsets are HF's floor((h − size) / 2). torchvision's `CenterCrop` (OpenAI's CLIP code)
 * uses round((h − size) / 2) with Python's half-to-even rounding, one pixel further when the
 * excess is ≡ 3 (mod 4); OpenAI's ToTensor also divides by 255 instead of multiplying by 1/255
 * (≤ 1 float32 ulp apart). We follow HF.
 */
export function clipPreprocess(image: Uint8Image, size = 224): ChwImage {
  if (image.channels !== 3) throw new Error(`clipPreprocess: needs an RGB image, got ${image.channels} channels`);
  const [w, h] = shortSideSize(image.width, image.height, size);
  const resized = resizeBicubicPil(image, w, h, 'uint8');
  const top = Math.floor((h - size) / 2);
  const left = Math.floor((w - size) / 2);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const src = ((top + y) * w + left + x) * 3;
      for (let c = 0; c < 3; c++) {
        // HF rescales in float64 then casts to float32, and normalises with float32 mean/std.
        const v = f32(resized.data[src + c] * (1 / 255));
        out[c * plane + y * size + x] = f32(v - CLIP_MEAN[c]) / CLIP_STD[c];
      }
    }
  }
  return { data: out, channels: 3, height: size, width: size };
}
