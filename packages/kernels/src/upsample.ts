import * as tf from '@tensorflow/tfjs-core';

/** Kernel names of the 2× nearest upsampling and its gradient; a backend that registers them gets them. */
export const UPSAMPLE_2X = 'MdmUpsampleNearest2x';
export const UPSAMPLE_2X_GRAD = 'MdmUpsampleNearest2xGrad';

const fused = (x: tf.Tensor) => x.dtype === 'float32' && tf.getKernel(UPSAMPLE_2X, tf.getBackend()) !== undefined;

/**
 * Nearest-neighbour 2× upsampling of [B, H, W, C]: output pixel (y, x) copies input pixel
 * (⌊y/2⌋, ⌊x/2⌋), as PyTorch's `interpolate(scale_factor=2)`; its gradient sums each 2×2 block
 * of dy. Backends with the kernels (`native`) copy and sum in one pass each; elsewhere the forward
 * pass is tfjs's resize kernel and the gradient a sum over a 6-D view (tfjs's own
 * ResizeNearestNeighborGrad is wrong on the cpu backend, and tile's gradient stops at rank 4).
 */
export const upsampleNearest2x = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  save([]);
  const native = fused(x);
  return {
    value: native
      ? (tf.engine().runKernel(UPSAMPLE_2X, { x }) as tf.Tensor)
      : tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [2 * h, 2 * w], false, false),
    gradFunc: (dy: tf.Tensor) =>
      native
        ? (tf.engine().runKernel(UPSAMPLE_2X_GRAD, { dy }) as tf.Tensor)
        : tf.sum(tf.reshape(dy, [b, h, 2, w, 2, c]), [2, 4]),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor4D) => tf.Tensor4D;
