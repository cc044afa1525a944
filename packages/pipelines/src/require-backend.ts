import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '@matryoshka-ts/core';

/**
 * Fails unless a tfjs backend has been started (libraries never pick one: see
 * @matryoshka-ts/backends), or when it is one the pipelines cannot run on yet: training and
 * sampling read values synchronously (`dataSync`), which tfjs's webgpu backend supports only in a
 * browser (it needs OffscreenCanvas). Refused here by name rather than failing mid-step.
 */
export function requireBackend(): void {
  const name = tf.engine().backendName;
  if (!name) {
    throw new BackendError(
      "no tfjs backend is active: call initBackend({ backend }) from '@matryoshka-ts/backends' first",
    );
  }
  if (name === 'webgpu') {
    throw new BackendError(
      'training and sampling do not run on the webgpu backend yet (they read tensors synchronously, ' +
        'which webgpu supports only in a browser): choose native, wasm or cpu',
    );
  }
}
