import { afterAll, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { underCi } from '@matryoshka-ts/test-utils';
import { requireBackend } from './require-backend.js';

afterAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

// Mesa's llvmpipe (through Dawn's OpenGL backend) is on CI's image; elsewhere a machine without it skips.
process.env.MDM_WEBGPU_BACKEND ??= 'opengl';
const webgpu = await initBackend({ backend: 'webgpu', quiet: true }).then(
  () => true,
  () => false,
);

it.runIf(webgpu || underCi())(
  'refuses the webgpu backend by name (its reads are asynchronous in Node), and accepts cpu',
  async () => {
    await initBackend({ backend: 'webgpu', quiet: true });
    expect(() => requireBackend()).toThrow(/do not run on the webgpu backend yet .* choose native, wasm or cpu/);
    await initBackend({ backend: 'cpu', quiet: true });
    expect(() => requireBackend()).not.toThrow();
  },
  60_000,
);
