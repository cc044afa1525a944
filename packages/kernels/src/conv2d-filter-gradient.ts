import * as tf from '@tensorflow/tfjs-core';

type Pad = 'valid' | 'same' | number | number[][];

/**
 * ∂L/∂filter of a 2-D convolution (NHWC input, HWIO filter) as patch extraction ("im2col")
 * followed by one matrix product: dW[(i,j,c), o] = Σ_{b,y,x} patch[b,y,x,(i,j,c)] · dy[b,y,x,o].
 * It exists because the wasm backend has no Conv2DBackpropFilter kernel and the cpu backend's
 * runs at ~0.01 GFLOP/s, while both have a matMul that is 10–100× faster.
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
    const { padInfo, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
    const [kh, kw, cin, cout] = filterShape;
    const { outHeight, outWidth, batchSize } = info;
    const padded =
      padInfo.top || padInfo.bottom || padInfo.left || padInfo.right
        ? tf.pad(x, [
            [0, 0],
            [padInfo.top, padInfo.bottom],
            [padInfo.left, padInfo.right],
            [0, 0],
          ])
        : x;
    // One strided window per filter tap, concatenated in HWI order so the product's rows line
    // up with the flattened [kh, kw, cin] filter rows.
    const taps: tf.Tensor4D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const top = i * dilationHeight;
        const left = j * dilationWidth;
        taps.push(
          tf.stridedSlice(
            padded,
            [0, top, left, 0],
            [batchSize, top + (outHeight - 1) * strideHeight + 1, left + (outWidth - 1) * strideWidth + 1, cin],
            [1, strideHeight, strideWidth, 1],
          ) as tf.Tensor4D,
        );
      }
    }
    const rows = batchSize * outHeight * outWidth;
    const patches = tf.reshape(taps.length === 1 ? taps[0] : tf.concat(taps, 3), [rows, kh * kw * cin]);
    const dy2 = tf.reshape(dy, [rows, cout]);
    return tf.reshape(tf.matMul(patches, dy2, true, false), filterShape);
  });
}
