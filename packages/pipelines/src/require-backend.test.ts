import { afterAll, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { requireBackend } from './require-backend.js';

afterAll(async () => {
  await initBackend({ backend: 'cpu', quiet: true });
});

it('refuses the webgpu backend by name (its reads are asynchronous in Node), and accepts cpu', async () => {
  process.env.MDM_WEBGPU_BACKEND ??= 'opengl';
  await initBackend({ backend: 'webgpu', quiet: true });
  expect(() => requireBackend()).toThrow(/do not run on the webgpu backend yet .* choose native, wasm or cpu/);
  await initBackend({ backend: 'cpu', quiet: true });
  expect(() => requireBackend()).not.toThrow();
}, 60_000);
