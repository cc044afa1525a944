import * as tf from '@tensorflow/tfjs-core';
import { conv2dFilterGradient } from './conv2d-filter-gradient.js';
import { conv2dInputGradientSame, isSameStride1OddKernel } from './conv2d-input-gradient.js';
import { convBiasGradConfig } from './conv-bias.js';
import { groupNormActGradConfig } from './group-norm.js';

/** Backends whose Conv2D and MatMul gradients are re-expressed through their fast kernels. */
const REEXPRESSED_BACKENDS = new Set(['cpu', 'wasm']);
/** Backends whose Conv2DBackprop* and BatchMatMul kernels are native (`@matryoshka-ts/kernels-native`). */
const NATIVE_BACKENDS = new Set<string>();

/**
 * Records that a backend's convolution and matMul kernels were replaced by native ones, whose
 * backprop kernels and transposed products are fast: their gradients then call them directly.
 */
export function markNativeKernels(backend: string, native: boolean): void {
  if (native) NATIVE_BACKENDS.add(backend);
  else NATIVE_BACKENDS.delete(backend);
}

const reexpressed = () => REEXPRESSED_BACKENDS.has(tf.getBackend()) && !NATIVE_BACKENDS.has(tf.getBackend());

let registered = false;

/**
 * Registers this package's gradient overrides (once per process). On the cpu and wasm backends:
 * the Conv2D filter gradient is `conv2dFilterGradient` (wasm has no Conv2DBackpropFilter), the
 * input gradient of stride-1 'same' convolutions is a forward convolution, and the gradient of a
 * 2-D matMul transposes its operands explicitly before plain products. Other backends (tfjs-node's
 * libtensorflow) keep their native kernels.
 */
export function registerKernelOverrides(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient(groupNormActGradConfig);
  tf.registerGradient(convBiasGradConfig);
  tf.registerGradient({
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dyOrList, saved, attrs) => {
      const dy = dyOrList as tf.Tensor4D; // Conv2D has one output
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const { dilations, strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
        dilations: number | [number, number];
        strides: number | [number, number];
        pad: 'valid' | 'same' | number | number[][];
        dataFormat: 'NHWC' | 'NCHW';
        dimRoundingMode?: 'floor' | 'round' | 'ceil';
      };
      if (dataFormat === 'NCHW') throw new Error('Conv2D gradient: only NHWC is supported');
      const d = Array.isArray(dilations) ? dilations : [dilations, dilations];
      if (d[0] !== 1 || d[1] !== 1) throw new Error('Conv2D gradient: dilations must be 1');
      return {
        x: () =>
          reexpressed() && isSameStride1OddKernel(filter.shape, strides, pad)
            ? conv2dInputGradientSame(dy, filter)
            : (tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, {
                strides,
                pad,
                dataFormat,
                dimRoundingMode,
                inputShape: x.shape,
              } as unknown as tf.NamedAttrMap) as tf.Tensor),
        filter: () =>
          reexpressed()
            ? conv2dFilterGradient(x, dy, filter.shape, strides, pad, dilations)
            : (tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
                strides,
                pad,
                dataFormat,
                dimRoundingMode,
                filterShape: filter.shape,
              } as unknown as tf.NamedAttrMap) as tf.Tensor),
      };
    },
  });
  tf.registerGradient({
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dyOrList, saved, attrs) => {
      const dy = dyOrList as tf.Tensor;
      const [a, b] = saved;
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!reexpressed() || a.rank !== 2 || b.rank !== 2) return stockMatMulGradient(dy, a, b, transposeA, transposeB);
      // C = op(A)·op(B). Each gradient is one plain product of explicitly transposed operands.
      const T = (t: tf.Tensor) => tf.transpose(t);
      const mm = (p: tf.Tensor, q: tf.Tensor) => tf.matMul(p as tf.Tensor2D, q as tf.Tensor2D);
      if (!transposeA && !transposeB) return { a: () => mm(dy, T(b)), b: () => mm(T(a), dy) };
      if (!transposeA && transposeB) return { a: () => mm(dy, b), b: () => mm(T(dy), a) };
      if (transposeA && !transposeB) return { a: () => mm(b, T(dy)), b: () => mm(a, dy) };
      return { a: () => mm(T(b), T(dy)), b: () => mm(T(dy), T(a)) };
    },
  });
}

/** Sums a gradient over the batch axes its input was broadcast along, back to the input's shape. */
function reduceTo(g: tf.Tensor, shape: number[]): tf.Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const batch = tf.backend_util.getReductionAxes(shape.slice(0, -2), g.shape.slice(0, -2));
  return tf.reshape(batch.length ? tf.sum(g, batch) : g, shape);
}

/** tfjs's own BatchMatMul gradient (any rank, broadcast batch axes), for the other cases. */
function stockMatMulGradient(dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean) {
  const mm = (p: tf.Tensor, q: tf.Tensor, ta: boolean, tb: boolean) => tf.matMul(p, q, ta, tb);
  const grads = (da: () => tf.Tensor, db: () => tf.Tensor) => ({
    a: () => reduceTo(da(), a.shape),
    b: () => reduceTo(db(), b.shape),
  });
  if (!transposeA && !transposeB)
    return grads(
      () => mm(dy, b, false, true),
      () => mm(a, dy, true, false),
    );
  if (!transposeA && transposeB)
    return grads(
      () => mm(dy, b, false, false),
      () => mm(dy, a, true, false),
    );
  if (transposeA && !transposeB)
    return grads(
      () => mm(b, dy, false, true),
      () => mm(a, dy, false, false),
    );
  return grads(
    () => mm(b, dy, true, true),
    () => mm(dy, a, true, true),
  );
}
