import * as tf from '@tensorflow/tfjs-core';
import { conv2dFilterGradient } from './conv2d-filter-gradient.js';

/** Backends whose Conv2D filter gradient is replaced by the patch + matMul re-expression. */
const REEXPRESSED_BACKENDS = new Set(['cpu', 'wasm']);

let registered = false;

/**
 * Registers this package's gradient overrides (once per process). The Conv2D gradient keeps
 * tfjs's input gradient (Conv2DBackpropInput) and computes the filter gradient with
 * `conv2dFilterGradient` on the cpu and wasm backends; other backends (tfjs-node's libtensorflow)
 * keep their native Conv2DBackpropFilter kernel.
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
          tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, {
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
}
