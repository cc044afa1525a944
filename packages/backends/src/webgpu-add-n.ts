import * as tf from '@tensorflow/tfjs-core';

/**
 * tfjs-backend-webgpu's AddN binds every input as a storage buffer in one shader, but a WebGPU
 * device allows only `maxStorageBuffersPerShaderStage` of them (8 by default, and on Dawn's
 * OpenGL backend): a larger AddN (a global gradient norm over a UNet's ~170 tensors) fails
 * validation, and its result is silently zeros. Its own Concat splits its inputs; this does the
 * same for AddN: sums of at most `limit − 1` inputs (one buffer is the output), then sums of those.
 */
const ours = new WeakSet<tf.KernelFunc>();

export function splitWebGpuAddN(limit: number): void {
  const original = tf.getKernel(tf.AddN, 'webgpu');
  // Registered once per process: the backend may be started again, the kernel stays ours.
  if (!original || ours.has(original.kernelFunc)) return;
  const most = Math.max(2, limit - 1);
  const kernelFunc: tf.KernelFunc = ({ inputs, backend, attrs }) => {
    let level = inputs as unknown as tf.TensorInfo[];
    if (level.length <= most) return original.kernelFunc({ inputs, backend, attrs });
    const made: tf.TensorInfo[] = [];
    while (level.length > 1) {
      const next: tf.TensorInfo[] = [];
      for (let i = 0; i < level.length; i += most) {
        const group = level.slice(i, i + most);
        const sum =
          group.length === 1
            ? group[0]
            : (original.kernelFunc({
                inputs: group as unknown as tf.NamedTensorInfoMap,
                backend,
                attrs,
              }) as tf.TensorInfo);
        if (group.length > 1) made.push(sum);
        next.push(sum);
      }
      level = next;
    }
    const [result] = level;
    // The partial sums are the backend's own data: free all but the result.
    const data = backend as tf.KernelBackend;
    for (const t of made) if (t !== result) data.disposeData(t.dataId);
    return result;
  };
  ours.add(kernelFunc);
  tf.unregisterKernel(tf.AddN, 'webgpu');
  tf.registerKernel({ kernelName: tf.AddN, backendName: 'webgpu', kernelFunc });
}
