import * as tf from '@tensorflow/tfjs-core';

type Pad = 'valid' | 'same' | number | number[][];

/**
 * ∂L/∂filter of a 2-D convolution (NHWC input, HWIO filter), written as one forward convolution
 * with batch and channels swapped:
 *   dW[i, j, c, o] = Σ_{b,y,x} xp[b, s·y + d·i, s·x + d·j, c] · dy[b, y, x, o]
 * is a 'valid' convolution of xp viewed as [C, H, W, B] with dy viewed as the filter
 * [Ho, Wo, B, Co], dilated by the stride s; every d-th output row/column is kept for a dilated
 * convolution. It exists because the wasm backend has no Conv2DBackpropFilter kernel and the cpu
 * backend's runs at ~0.01 GFLOP/s, while their forward convolutions are fast (on wasm 2–7× faster
 * than patch extraction + matMul, measured in bench/).
 */
export function conv2dFilterGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: Pad,
  dilations: number | [number, number] = 1,
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(
      x.shape,
      filterShape,
      strides,
      dilations,
      pad as 'valid' | 'same' | number,
      'floor',
      false,
      'channelsLast',
    );
    const {
      padInfo,
      strideHeight: sh,
      strideWidth: sw,
      dilationHeight: dh,
      dilationWidth: dw,
      outHeight,
      outWidth,
    } = info;
    const [kh, kw] = filterShape;
    // Pad explicitly, and crop what the convolution never reads (floor rounding of the output size).
    let xp: tf.Tensor4D =
      padInfo.top || padInfo.bottom || padInfo.left || padInfo.right
        ? tf.pad(x, [
            [0, 0],
            [padInfo.top, padInfo.bottom],
            [padInfo.left, padInfo.right],
            [0, 0],
          ])
        : x;
    const usedH = (outHeight - 1) * sh + (kh - 1) * dh + 1;
    const usedW = (outWidth - 1) * sw + (kw - 1) * dw + 1;
    if (xp.shape[1] !== usedH || xp.shape[2] !== usedW) xp = tf.slice(xp, [0, 0, 0, 0], [-1, usedH, usedW, -1]);
    const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // [C, H, W, B]
    const f = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, B, Co]
    // [C, (kh−1)·dh + 1, …, Co]
    let out = sh === sw ? tf.conv2d(xt, f, 1, 'valid', 'NHWC', sh) : tf.conv2d(xt, f, 1, 'valid', 'NHWC', [sh, sw]);
    if (dh > 1 || dw > 1)
      out = tf.stridedSlice(
        out,
        [0, 0, 0, 0],
        [out.shape[0], (kh - 1) * dh + 1, (kw - 1) * dw + 1, out.shape[3]],
        [1, dh, dw, 1],
      ) as tf.Tensor4D;
    return tf.transpose(out, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}
