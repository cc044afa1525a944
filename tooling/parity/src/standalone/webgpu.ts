// The parity suites on `webgpu` as one plain Node script, every fixture folder: what the GPU
// check runs (bench/src/gpu-check.ts bundles this file with `vitest` pointing at ./vitest.ts).
// MDM_WEBGPU_BACKEND picks Dawn's backend (vulkan on a GPU; opengl for Mesa's llvmpipe) and
// MDM_FIXTURES_DIR the ml-mdm fixture folder; MDM_WEBGPU_FIXTURES=default runs the default test
// run's folders only (tooling/parity/src/webgpu.ts). Prints a line per test, then
// `parity: N passed, N failed, N skipped`; exits 1 on a failure.
export {};

process.env.MDM_WEBGPU_FIXTURES ??= 'all';
const { runDeclared } = await import('./vitest.js');
await import('../model.webgpu.test.js');
await import('../loss.webgpu.test.js');
await import('../sampler.webgpu.test.js');
const counts = await runDeclared();
console.log(`parity: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exitCode = counts.failed > 0 || counts.passed === 0 ? 1 : 0;
