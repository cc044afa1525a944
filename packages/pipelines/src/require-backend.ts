import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '@matryoshka-ts/core';

/** Fails unless a tfjs backend has been started: libraries never pick one (see @matryoshka-ts/backends). */
export function requireBackend(): void {
  if (!tf.engine().backendName) {
    throw new BackendError(
      "no tfjs backend is active: call initBackend({ backend }) from '@matryoshka-ts/backends' first",
    );
  }
}
