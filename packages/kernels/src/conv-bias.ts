import * as tf from '@tensorflow/tfjs-core';

/** Kernel names of the fused convolution; a backend that registers them gets the fused path. */
export const CONV_BIAS = 'MdmConv2DBias';
/** The filter and bias gradients of `CONV_BIAS` from one call: inputs x, dy; outputs dW, db. */
export const CONV_BIAS_FILTER_GRAD = 'MdmConv2DBiasFilterGrad';

export type ConvPadding = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];

export interface ConvBiasOptions {
  strides?: number | [number, number];
  pad?: ConvPadding;
  /** Added after the bias (a residual block's skip connection); same shape as the output. */
  residual?: tf.Tensor4D;
}

/** Attributes of the fused kernels. */
export interface ConvBiasAttrs {
  strides: [number, number];
  pad: ConvPadding;
  /** The filter's shape (the gradient kernel's output). */
  filterShape: [number, number, number, number];
}

/**
 * y = conv2d(x, W) + b (+ residual), NHWC input, HWIO filter. Backends with the fused kernels
 * (`native`) run it as one kernel forward, and backward as the input-gradient kernel plus one
 * kernel for the filter and bias gradients; elsewhere it is tfjs's conv2d and adds (explicit
 * padding as a pad then a 'valid' convolution), so results agree to float32 rounding.
 */
export function convBias(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor,
  options: ConvBiasOptions = {},
): tf.Tensor4D {
  const { strides = 1, pad = 'same', residual } = options;
  const s: [number, number] = Array.isArray(strides) ? strides : [strides, strides];
  if (x.shape[3] !== filter.shape[2])
    throw new Error(`convBias: the input has ${x.shape[3]} channels, the filter expects ${filter.shape[2]}`);
  if (bias.size !== filter.shape[3])
    throw new Error(`convBias: ${bias.size} bias values for ${filter.shape[3]} output channels`);
  if (!tf.getKernel(CONV_BIAS, tf.getBackend())) return composite(x, filter, bias, s, pad, residual);
  const attrs: ConvBiasAttrs = { strides: s, pad, filterShape: filter.shape };
  const inputs: tf.NamedTensorMap = residual ? { x, filter, bias, residual } : { x, filter, bias };
  return tf.engine().runKernel(CONV_BIAS, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

/**
 * The gradient of the fused kernel: ∂/∂x by Conv2DBackpropInput; ∂/∂W and ∂/∂b by one call of
 * the fused filter-gradient kernel (made here, not lazily: the engine disposes what each input's
 * gradient function makes but does not return); ∂/∂residual is dy. Registered by `registerKernelOverrides`.
 */
export const convBiasGradConfig: tf.GradConfig = {
  kernelName: CONV_BIAS,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const a = attrs as unknown as ConvBiasAttrs;
    const [dw, db] = tf.engine().runKernel(CONV_BIAS_FILTER_GRAD, { x, dy: dy as tf.Tensor }, attrs) as tf.Tensor[];
    const conv = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', inputShape: x.shape };
    return {
      x: () =>
        tf
          .engine()
          .runKernel(
            'Conv2DBackpropInput',
            { dy: dy as tf.Tensor, filter },
            conv as unknown as tf.NamedAttrMap,
          ) as tf.Tensor,
      filter: () => dw,
      bias: () => db,
      residual: () => dy as tf.Tensor,
    };
  },
};

/** The same computation in tfjs ops (any backend); the reference for the fused kernels. */
function composite(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor,
  strides: [number, number],
  pad: ConvPadding,
  residual?: tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() => {
    // tfjs's Conv2D gradients on cpu/wasm handle 'same' and 'valid'; explicit padding becomes a pad.
    const input = Array.isArray(pad) ? tf.pad(x, pad) : x;
    const y = tf.add(
      tf.conv2d(input, filter, strides, Array.isArray(pad) ? 'valid' : pad),
      tf.reshape(bias, [filter.shape[3]]),
    ) as tf.Tensor4D;
    return residual ? tf.add(y, residual) : y;
  });
}
