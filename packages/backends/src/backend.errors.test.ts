import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { BackendError, isUserError } from '@matryoshka-ts/core';
import type { BackendName } from '@matryoshka-ts/core';
import { activeBackend, initBackend } from './backend.js';

describe('initBackend errors', () => {
  it('an unknown backend name rejects with a message listing the valid names', async () => {
    await expect(initBackend({ backend: 'gpu' as BackendName, quiet: true })).rejects.toThrow(
      "Unknown backend 'gpu': choose auto, native, cpu, wasm, webgpu or tensorflow.",
    );
    await expect(initBackend({ backend: 'webgl' as BackendName, quiet: true })).rejects.toThrow(
      /Unknown backend 'webgl'/,
    );
    expect(activeBackend()).toBeUndefined();
  });

  it('rejects with a BackendError: a user error with the stable code BACKEND_UNAVAILABLE', async () => {
    const error = await initBackend({ backend: 'gpu' as BackendName, quiet: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect(isUserError(error)).toBe(true);
    expect((error as BackendError).code).toBe('BACKEND_UNAVAILABLE');
  });

  it("'tensorflow' without tfjs-node rejects and says what to install", async () => {
    // Precondition of this test: neither native package is installed in this workspace.
    const require = createRequire(import.meta.url);
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'])
      expect(() => require.resolve(pkg)).toThrow();

    const error = await initBackend({ backend: 'tensorflow', quiet: true }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(Error);
    const msg = error!.message;
    expect(msg).toContain('@tensorflow/tfjs-node-gpu');
    expect(msg).toContain('@tensorflow/tfjs-node');
    expect(msg).toMatch(/npm i @tensorflow\/tfjs-node-gpu@4\.22\.0/);
    expect(msg).toMatch(/--backend wasm/);
    expect(activeBackend()).toBeUndefined(); // a failed selection does not count as active
  });
});
