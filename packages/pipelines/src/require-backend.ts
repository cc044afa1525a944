import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '@matryoshka-ts/core';

/**
 * Fails unless a tfjs backend has been started: libraries never pick one (see
 * @matryoshka-ts/backends), so a forgotten `initBackend` is named here rather than found as
 * tfjs's silent fallback to its slow cpu backend mid-run. Every backend runs the pipelines:
 * training and sampling read tensors asynchronously, which WebGPU in Node requires.
 */
export function requireBackend(): void {
  if (!tf.engine().backendName) {
    throw new BackendError(
      "no tfjs backend is active: call initBackend({ backend }) from '@matryoshka-ts/backends' first",
    );
  }
}
