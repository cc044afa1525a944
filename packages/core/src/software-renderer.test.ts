import { expect, it } from 'vitest';
import { isSoftwareRenderer } from './software-renderer.js';

it('names the CPU renderers (Mesa, SwiftShader) and not GPUs', () => {
  expect(isSoftwareRenderer('llvmpipe-llvm-15-0-6-256-bits- OpenGL version 4.5 (Core Profile) Mesa 22.3.6')).toBe(true);
  expect(isSoftwareRenderer('llvmpipe (LLVM 19.1.7, 256 bits) lavapipe')).toBe(true);
  expect(isSoftwareRenderer('ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)')).toBe(
    true,
  );
  expect(isSoftwareRenderer('nvidia hopper NVIDIA H100 80GB HBM3')).toBe(false);
  expect(isSoftwareRenderer('amd rdna-3 AMD Radeon RX 7900 XTX (RADV NAVI31)')).toBe(false);
});
