import * as tf from '@tensorflow/tfjs-core';
import {
  ADAM_UPDATE,
  type AdamUpdateAttrs,
  CONV_BIAS,
  CONV_BIAS_FILTER_GRAD,
  type ConvBiasAttrs,
  GROUP_NORM_ACT,
  GROUP_NORM_ACT_GRAD,
  type GroupNormActAttrs,
  UPSAMPLE_2X,
  UPSAMPLE_2X_GRAD,
  markNativeKernels,
} from '@matryoshka-ts/kernels';
import { type NativeAddon, loadAddon } from './addon.js';

/** The tfjs backends whose kernels this package can replace. */
export type NativeBase = 'cpu' | 'wasm';

/**
 * The kernels computed by the addon: convolutions (and their gradients; with a fused bias and
 * residual add, `@matryoshka-ts/kernels`' convBias), matrix products, and
 * the fused GroupNorm(+modulation)(+SiLU) of `@matryoshka-ts/kernels` with its gradient.
 */
export const NATIVE_KERNELS = [
  'Conv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  CONV_BIAS,
  CONV_BIAS_FILTER_GRAD,
  'BatchMatMul',
  GROUP_NORM_ACT,
  GROUP_NORM_ACT_GRAD,
  UPSAMPLE_2X,
  UPSAMPLE_2X_GRAD,
  'Identity',
  'Concat',
  'SplitV',
  'Slice',
  ADAM_UPDATE,
] as const;

/**
 * Kernels replaced only on some bases: wasm's Identity copies, cpu's already shares data; wasm's
 * Slice copies its whole input out of the heap first (`readSync`), 160 µs for a [128, 384] weight.
 */
const ONLY_ON: Partial<Record<(typeof NATIVE_KERNELS)[number], NativeBase>> = {
  Identity: 'wasm',
  Concat: 'wasm',
  SplitV: 'wasm',
  Slice: 'wasm',
};
const kernelsFor = (base: NativeBase) => NATIVE_KERNELS.filter((name) => (ONLY_ON[name] ?? base) === base);

type TensorInfo = tf.TensorInfo;
type KernelArgs = Parameters<tf.KernelFunc>[0];
type AnyBackend = KernelArgs['backend'] & Record<string, unknown>;

const registeredOn = new Map<NativeBase, tf.KernelConfig[]>();

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Runs `compute` on the inputs' float32 data and new outputs of `outShapes`, without copies: the
 * cpu backend's typed arrays, or views of the wasm heap (the outputs are allocated first, because
 * growing the heap would detach views made before). A missing input is passed as null.
 */
function runMany(
  base: NativeBase,
  backend: AnyBackend,
  inputs: (TensorInfo | undefined)[],
  outShapes: number[][],
  compute: (ins: (Float32Array | null)[], outs: Float32Array[]) => void,
): TensorInfo[] {
  const empty = outShapes.some((s) => sizeOf(s) === 0);
  if (base === 'cpu') {
    const cpu = backend as unknown as {
      data: { get(id: unknown): { values: Float32Array } };
      makeTensorInfo(s: number[], d: 'float32', v: Float32Array): TensorInfo;
    };
    const outs = outShapes.map((s) => new Float32Array(sizeOf(s)));
    if (!empty)
      compute(
        inputs.map((t) => (t ? cpu.data.get(t.dataId).values : null)),
        outs,
      );
    return outShapes.map((s, i) => cpu.makeTensorInfo(s, 'float32', outs[i]));
  }
  const wasm = backend as unknown as {
    makeOutput(s: number[], d: 'float32'): TensorInfo;
    dataIdMap: { get(id: unknown): { memoryOffset: number } };
    wasm: { HEAPU8: Uint8Array };
  };
  const infos = outShapes.map((s) => wasm.makeOutput(s, 'float32'));
  if (empty) return infos;
  const heap = wasm.wasm.HEAPU8.buffer;
  const view = (t: TensorInfo) => new Float32Array(heap, wasm.dataIdMap.get(t.dataId).memoryOffset, sizeOf(t.shape));
  compute(
    inputs.map((t) => (t ? view(t) : null)),
    infos.map(view),
  );
  return infos;
}

function run(
  base: NativeBase,
  backend: AnyBackend,
  inputs: TensorInfo[],
  outShape: number[],
  compute: (ins: Float32Array[], out: Float32Array) => void,
): TensorInfo {
  return runMany(base, backend, inputs, [outShape], (ins, [out]) => compute(ins as Float32Array[], out))[0];
}

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/** The 15 numbers the addon's convolutions take (native/conv.h ConvGeometry). */
function geometry(c: Conv2DInfo): number[] {
  return [
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.filterHeight,
    c.filterWidth,
    c.outChannels,
    c.strideHeight,
    c.strideWidth,
    c.dilationHeight,
    c.dilationWidth,
    c.padInfo.top,
    c.padInfo.left,
    c.outHeight,
    c.outWidth,
  ];
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape?: [number, number, number, number];
  filterShape?: [number, number, number, number];
}

const convInfo = (
  xShape: number[],
  filterShape: number[],
  a: ConvAttrs,
  dilations: ConvAttrs['dilations'] = 1,
): Conv2DInfo =>
  tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    dilations,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );

function kernelFuncs(
  addon: NativeAddon,
  base: NativeBase,
): Record<(typeof NATIVE_KERNELS)[number], (args: KernelArgs, stock?: tf.KernelFunc) => TensorInfo | TensorInfo[]> {
  const supported = (a: ConvAttrs, ...ts: TensorInfo[]) =>
    a.dataFormat !== 'NCHW' && ts.every((t) => t.dtype === 'float32');
  const fallback = (name: string, args: KernelArgs, stock?: tf.KernelFunc) => {
    if (!stock)
      throw new Error(
        `${name}: the native kernel supports float32 NHWC only, and ${base} has no kernel of its own for this case.`,
      );
    return stock(args);
  };
  return {
    Conv2D: (args, stock) => {
      const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
      const a = args.attrs as unknown as ConvAttrs;
      if (!supported(a, x, filter)) return fallback('Conv2D', args, stock);
      const c = convInfo(x.shape, filter.shape, a, a.dilations);
      return run(base, args.backend as AnyBackend, [x, filter], c.outShape, ([xv, wv], y) =>
        addon.conv2d(xv, wv, y, geometry(c)),
      );
    },
    Conv2DBackpropInput: (args, stock) => {
      const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
      const a = args.attrs as unknown as ConvAttrs;
      if (!supported(a, dy, filter)) return fallback('Conv2DBackpropInput', args, stock);
      const inputShape = [...(a.inputShape as number[])];
      const c = convInfo(inputShape, filter.shape, a);
      return run(base, args.backend as AnyBackend, [dy, filter], inputShape, ([dyv, wv], dx) =>
        addon.conv2dBackpropInput(dyv, wv, dx, geometry(c)),
      );
    },
    Conv2DBackpropFilter: (args, stock) => {
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const a = args.attrs as unknown as ConvAttrs;
      if (!supported(a, x, dy)) return fallback('Conv2DBackpropFilter', args, stock);
      const filterShape = [...(a.filterShape as number[])];
      const c = convInfo(x.shape, filterShape, a);
      return run(base, args.backend as AnyBackend, [x, dy], filterShape, ([xv, dyv], dw) =>
        addon.conv2dBackpropFilter(xv, dyv, dw, geometry(c)),
      );
    },
    [CONV_BIAS]: (args) => {
      const { x, filter, bias, residual } = args.inputs as Record<string, TensorInfo | undefined>;
      const a = args.attrs as unknown as ConvBiasAttrs;
      const c = convInfo(x!.shape, filter!.shape, { strides: a.strides, pad: a.pad });
      const outShape = [c.batchSize, c.outHeight, c.outWidth, c.outChannels];
      return run(
        base,
        args.backend as AnyBackend,
        residual ? [x!, filter!, bias!, residual] : [x!, filter!, bias!],
        outShape,
        ([xv, wv, bv, rv], y) => {
          addon.conv2d(xv, wv, y, geometry(c));
          addon.biasAdd(y, bv, rv ?? null, sizeOf(outShape) / c.outChannels, c.outChannels);
        },
      );
    },
    [CONV_BIAS_FILTER_GRAD]: (args) => {
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const a = args.attrs as unknown as ConvBiasAttrs;
      const c = convInfo(x.shape, a.filterShape, { strides: a.strides, pad: a.pad });
      return runMany(
        base,
        args.backend as AnyBackend,
        [x, dy],
        [[...a.filterShape], [a.filterShape[3]]],
        ([xv, dyv], [dw, db]) => {
          addon.conv2dBackpropFilter(xv!, dyv!, dw, geometry(c));
          addon.biasGrad(dyv!, db, sizeOf(dy.shape) / c.outChannels, c.outChannels);
        },
      );
    },
    BatchMatMul: (args, stock) => {
      const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2)
        return fallback('BatchMatMul', args, stock);
      const ra = a.shape.length,
        rb = b.shape.length;
      const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
      const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
      const batchA = a.shape.slice(0, -2),
        batchB = b.shape.slice(0, -2);
      const nA = sizeOf(batchA),
        nB = sizeOf(batchB);
      // Equal batch shapes, or one operand shared by every product; other broadcasts go to tfjs.
      let outBatch: number[];
      if (batchA.length === batchB.length && batchA.every((d, i) => d === batchB[i])) outBatch = batchA;
      else if (nB === 1) outBatch = batchA.length >= batchB.length ? batchA : batchB;
      else if (nA === 1 && batchB.length >= batchA.length) outBatch = batchB;
      else return fallback('BatchMatMul', args, stock);
      const batch = sizeOf(outBatch);
      return run(base, args.backend as AnyBackend, [a, b], [...outBatch, M, N], ([av, bv], c) =>
        batch === 1
          ? narrowProduct(addon, transposeA, transposeB, M, N, K, av, bv, c) ||
            addon.gemm(transposeA, transposeB, M, N, K, av, bv, c)
          : addon.batchGemm(
              batch,
              transposeA,
              transposeB,
              M,
              N,
              K,
              av,
              nA === 1 ? 0 : M * K,
              bv,
              nB === 1 ? 0 : K * N,
              c,
            ),
      );
    },
    // tfjs clones every tensor a gradient saves (and tf.clone / cast to the same dtype) through
    // Identity; wasm's copies the data (~1,600 copies per training step of the default model).
    // Sharing the data with a reference count, as the cpu backend does, is safe because no kernel
    // writes into its inputs.
    Identity: (args, stock) => {
      const { x } = args.inputs as { x: TensorInfo };
      if (x.dtype === 'string') return fallback('Identity', args, stock);
      (args.backend as unknown as { incRef(id: unknown): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
    // Concat and SplitV along an axis are row copies: rows = the product of the dimensions before
    // the axis, each input (output) contributing its width = size along the axis × the rest.
    Concat: (args, stock) => {
      const inputs = (args.inputs as unknown as TensorInfo[]).filter((t) => sizeOf(t.shape) > 0);
      if (inputs.length < 2 || inputs.some((t) => t.dtype !== 'float32')) return fallback('Concat', args, stock);
      const axis = tf.util.parseAxisParam((args.attrs as { axis: number | number[] }).axis, inputs[0].shape)[0];
      const outShape = tf.backend_util.computeOutShape(
        inputs.map((t) => t.shape),
        axis,
      );
      const rows = sizeOf(outShape.slice(0, axis));
      const widths = inputs.map((t) => sizeOf(t.shape.slice(axis)));
      const total = widths.reduce((a, b) => a + b, 0);
      return run(base, args.backend as AnyBackend, inputs, outShape, (ins, out) => {
        let offset = 0;
        ins.forEach((x, i) => {
          addon.copyRows(out, offset, total, x, 0, widths[i], rows, widths[i]);
          offset += widths[i];
        });
      });
    },
    SplitV: (args, stock) => {
      const { x } = args.inputs as { x: TensorInfo };
      if (x.dtype !== 'float32') return fallback('SplitV', args, stock);
      const { numOrSizeSplits, axis: axisAttr } = args.attrs as unknown as {
        numOrSizeSplits: number | number[];
        axis: number;
      };
      const axis = tf.util.parseAxisParam(axisAttr, x.shape)[0];
      const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, axis);
      const rows = sizeOf(x.shape.slice(0, axis));
      const inner = sizeOf(x.shape.slice(axis + 1));
      const outShapes = sizes.map((n) => x.shape.map((d, i) => (i === axis ? n : d)));
      return runMany(base, args.backend as AnyBackend, [x], outShapes, ([xv], outs) => {
        let offset = 0;
        outs.forEach((out, i) => {
          addon.copyRows(out, 0, sizes[i] * inner, xv!, offset, x.shape[axis] * inner, rows, sizes[i] * inner);
          offset += sizes[i] * inner;
        });
      });
    },
    // A slice is row copies too: the axes after the last partly taken one (k) are contiguous, so
    // each run is size[k]·inner wide; axis k − 1 gives the rows of one copyRows call, and the
    // axes before it are looped over.
    Slice: (args, stock) => {
      const { x } = args.inputs as { x: TensorInfo };
      if (x.dtype !== 'float32') return fallback('Slice', args, stock);
      const { begin: b, size: z } = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
      const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, b, z);
      const shape = x.shape;
      const strides = shape.map((_, i) => sizeOf(shape.slice(i + 1)));
      let k = shape.length - 1;
      while (k > 0 && begin[k] === 0 && size[k] === shape[k]) k--;
      const width = size[k] * strides[k];
      return run(base, args.backend as AnyBackend, [x], size, ([xv], out) => {
        if (width === 0) return;
        const start = begin[k] * strides[k];
        if (k === 0) {
          out.set(xv.subarray(start, start + width));
          return;
        }
        const rows = size[k - 1];
        let outOffset = 0;
        const outer = (axis: number, offset: number) => {
          if (axis === k - 1) {
            addon.copyRows(out, outOffset, width, xv, offset + begin[axis] * strides[axis], strides[axis], rows, width);
            outOffset += rows * width;
            return;
          }
          for (let i = 0; i < size[axis]; i++) outer(axis + 1, offset + (begin[axis] + i) * strides[axis]);
        };
        outer(0, start);
      });
    },
    [ADAM_UPDATE]: (args) => {
      const { p, g, m, v } = args.inputs as Record<string, TensorInfo>;
      const { lr, beta1, beta2, eps, c1, c2 } = args.attrs as unknown as AdamUpdateAttrs;
      const k = [beta1, 1 - beta1, beta2, 1 - beta2, c2, eps, lr / c1];
      return runMany(
        base,
        args.backend as AnyBackend,
        [p, g, m, v],
        [p.shape, p.shape, p.shape],
        ([pv, gv, mv, vv], [p1, m1, v1]) => addon.adamUpdate(pv!, gv!, mv!, vv!, p1, m1, v1, sizeOf(p.shape), k),
      );
    },
    [UPSAMPLE_2X]: (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const [b, h, w, c] = x.shape;
      return run(base, args.backend as AnyBackend, [x], [b, 2 * h, 2 * w, c], ([xv], y) =>
        addon.upsample2x(xv, y, b, h, w, c),
      );
    },
    [UPSAMPLE_2X_GRAD]: (args) => {
      const { dy } = args.inputs as { dy: TensorInfo };
      const [b, h2, w2, c] = dy.shape;
      return run(base, args.backend as AnyBackend, [dy], [b, h2 / 2, w2 / 2, c], ([dyv], dx) =>
        addon.upsample2xGrad(dyv, dx, b, h2 / 2, w2 / 2, c),
      );
    },
    // mod is [B, 2C], scale then shift: the addon reads them as two views with a row stride of 2C.
    [GROUP_NORM_ACT]: (args) => {
      const { x, gamma, beta, mod } = args.inputs as Record<string, TensorInfo>;
      const { groups, eps, silu } = args.attrs as unknown as GroupNormActAttrs;
      const [b, h, w, c] = x.shape;
      const shape = [b, h * w, c, groups, eps, silu ? 1 : 0, 2 * c];
      return run(base, args.backend as AnyBackend, [x, gamma, beta, mod], x.shape, ([xv, gv, bv, mv], y) =>
        addon.groupNormAct(xv, gv, bv, mv, mv.subarray(c), y, shape),
      );
    },
    [GROUP_NORM_ACT_GRAD]: (args) => {
      const { dy, x, gamma, beta, mod } = args.inputs as Record<string, TensorInfo>;
      const { groups, eps, silu } = args.attrs as unknown as GroupNormActAttrs;
      const [b, h, w, c] = x.shape;
      const shape = [b, h * w, c, groups, eps, silu ? 1 : 0, 2 * c];
      return runMany(
        base,
        args.backend as AnyBackend,
        [dy, x, gamma, beta, mod],
        [x.shape, [c], [c], [b, 2 * c]],
        ([dyv, xv, gv, bv, mv], [dx, dg, db, dm]) =>
          addon.groupNormActGrad(dyv!, xv!, gv!, bv!, mv!, mv!.subarray(c), dx, dg, db, dm, dm.subarray(c), shape),
      );
    },
  };
}

const DIRECT_WIDTHS = new Set([8, 16, 32]);

/**
 * The products of a 1×1 convolution with few channels (the outer levels' skip convs, adapters and
 * their gradients: M = B·H·W pixels, K and N ≤ 32) are memory-bound and run faster through the
 * direct convolution kernels than through sgemm. Returns false when the shape is not one of them.
 */
function narrowProduct(
  addon: NativeAddon,
  ta: boolean,
  tb: boolean,
  M: number,
  N: number,
  K: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
): boolean {
  const geometry = (pixels: number, cin: number, cout: number) => [
    1,
    pixels,
    1,
    cin,
    1,
    1,
    cout,
    1,
    1,
    1,
    1,
    0,
    0,
    pixels,
    1,
  ];
  if (!ta && !tb && DIRECT_WIDTHS.has(N) && K <= 32)
    addon.conv2d(a, b, c, geometry(M, K, N)); // x·W
  else if (ta && !tb && DIRECT_WIDTHS.has(N) && M <= 32)
    addon.conv2dBackpropFilter(a, b, c, geometry(K, M, N)); // xᵀ·dy
  else if (!ta && tb && DIRECT_WIDTHS.has(N) && K <= 32)
    addon.conv2dBackpropInput(a, b, c, geometry(M, N, K)); // dy·Wᵀ
  else return false;
  return true;
}

export interface NativeKernelsInfo {
  base: NativeBase;
  /** Which matrix product runs underneath: OpenBLAS when installed, else the addon's own. */
  provider: 'openblas' | 'builtin';
  /**
   * Which convolutions run: oneDNN's (libdnnl.so.2, when installed) or the addon's own; onednn is its version
   * or ''.
   */
  convProvider: 'onednn' | 'builtin';
  onednn: string;
  threads: number;
  kernels: readonly string[];
}

/**
 * Replaces the convolution and matrix-product kernels of the cpu or wasm backend with the
 * addon's (and tells `@matryoshka-ts/kernels` that their gradients can use the backprop kernels
 * directly). Throws when the addon is not built; `loadAddon()` says why without throwing.
 */
export function registerNativeKernels(base: NativeBase): NativeKernelsInfo {
  const loaded = loadAddon();
  if (!loaded.addon) throw new Error(`Native kernels are unavailable: ${loaded.reason}.`);
  const addon = loaded.addon;
  if (!registeredOn.has(base)) {
    const funcs = kernelFuncs(addon, base);
    const saved: tf.KernelConfig[] = [];
    for (const name of kernelsFor(base)) {
      const stock = tf.getKernel(name, base);
      if (stock) {
        saved.push(stock);
        tf.unregisterKernel(name, base);
      }
      tf.registerKernel({
        kernelName: name,
        backendName: base,
        kernelFunc: (args) => funcs[name](args, stock?.kernelFunc),
      });
    }
    registeredOn.set(base, saved);
    markNativeKernels(base, true);
  }
  const info = addon.info();
  return {
    base,
    provider: info.provider,
    convProvider: info.convProvider,
    onednn: info.onednn,
    threads: info.threads,
    kernels: kernelsFor(base),
  };
}

/** Puts the backend's own kernels back (tests compare both). */
export function unregisterNativeKernels(base: NativeBase): void {
  const saved = registeredOn.get(base);
  if (!saved) return;
  for (const name of kernelsFor(base)) tf.unregisterKernel(name, base);
  for (const k of saved) tf.registerKernel(k);
  registeredOn.delete(base);
  markNativeKernels(base, false);
}

/** Whether the native kernels currently replace this backend's. */
export function nativeKernelsActive(base: string): boolean {
  return registeredOn.has(base as NativeBase);
}
