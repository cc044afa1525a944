import * as tf from '@tensorflow/tfjs-core';
import { conv2dFilterGradient } from './conv2d-filter-gradient.js';
import { conv2dInputGradientSame, isSameStride1OddKernel } from './conv2d-input-gradient.js';

/** Backends whose Conv2D and MatMul gradients are re-expressed through their fast kernels. */
const REEXPRESSED_BACKENDS = new Set(['cpu', 'wasm']);

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
          REEXPRESSED_BACKENDS.has(tf.getBackend()) && isSameStride1OddKernel(filter.shape, strides, pad)
            ? conv2dInputGradientSame(dy, filter)
            : tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, {
            strides,
            pad,
            dataFormat,
            dimRoundingMode,
            inputShape: x.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        filter: () =>
          REEXPRESSED_BACKENDS.has(tf.getBackend())
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
      if (!REEXPRESSED_BACKENDS.has(tf.getBackend()) || a.rank !== 2 || b.rank !== 2) return stockMatMulGradient(dy, a, b, transposeA, transposeB);
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

/** tfjs's own BatchMatMul gradient (any rank), for the backends we leave alone. */
function stockMatMulGradient(dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean) {
  const mm = (p: tf.Tensor, q: tf.Tensor, ta: boolean, tb: boolean) => tf.matMul(p, q, ta, tb);
  if (!transposeA && !transposeB) return { a: () => mm(dy, b, false, true), b: () => mm(a, dy, true, false) };
  if (!transposeA && transposeB) return { a: () => mm(dy, b, false, false), b: () => mm(dy, a, true, false) };
  if (transposeA && !transposeB) return { a: () => mm(b, dy, false, true), b: () => mm(a, dy, false, false) };
  return { a: () => mm(b, dy, true, true), b: () => mm(dy, a, true, true) };
}
