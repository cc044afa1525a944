import { initBackend } from '@matryoshka-ts/backends';
import { type FixtureFolder, underCi } from '@matryoshka-ts/test-utils';

// Dawn's OpenGL backend on Mesa's llvmpipe (EGL, surfaceless): what CI and developers' machines
// have. MDM_WEBGPU_BACKEND=vulkan runs the same suites on a GPU (scripts/gpu-check.sh).
process.env.MDM_WEBGPU_BACKEND ??= 'opengl';

/**
 * Whether the `webgpu` backend starts here (Dawn finds an adapter). Where it does not, the webgpu
 * suites skip, except under CI, whose image has Mesa's EGL and llvmpipe: there they fail.
 */
export async function webgpuAvailable(): Promise<boolean> {
  try {
    await initBackend({ backend: 'webgpu', quiet: true });
    return true;
  } catch (error) {
    if (underCi()) throw new Error(`CI runs the parity suites on webgpu, but it does not start: ${error}`);
    console.warn(`[parity] skipping the webgpu backend: ${(error as Error).message}`);
    return false;
  } finally {
    await initBackend({ backend: 'cpu', quiet: true });
  }
}

/**
 * The fixture folders a webgpu suite runs: `names` in the default test run (a software renderer
 * is slow, and what the other folders add is covered there by another suite), every folder with
 * MDM_WEBGPU_FIXTURES=all (the GPU check).
 */
export function webgpuFixtures(...names: string[]): (fixture: FixtureFolder) => boolean {
  return (fixture) => process.env.MDM_WEBGPU_FIXTURES === 'all' || names.includes(fixture.name);
}
