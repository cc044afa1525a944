import { modelParitySuite } from './model-parity.js';
import { webgpuAvailable, webgpuFixtures } from './webgpu.js';

// The model suite on tfjs-backend-webgpu (Dawn; Mesa's llvmpipe here and in CI, a GPU under
// scripts/gpu-check.sh), every fixture folder, with the suite's own tolerances: 1e-4 absolute on
// outputs and intermediates, 1e-3 of each gradient's largest entry. Why they hold for the GPU's
// float32: its shaders add the same float32 products in yet another order (matMul and convolution
// accumulate over K through workgroup tiles of shared memory with vec4 partial sums; GroupNorm's
// statistics, softmax's sum and the gradients' reductions add across a workgroup's threads in a
// tree; a GPU may fuse a·b + c into one rounding), and the rounding error of any order of a sum
// of n terms stays within ~n·2⁻²⁴ of the sum of their magnitudes: the bound the tolerances were
// sized by for PyTorch's and XNNPACK's orders (sums of at most a few thousand terms here, of
// values of size ~1). Measured on llvmpipe, as on the cpu backend: outputs within 3e-6 (2.7e-5 on
// video-tiny, where cpu is the same), gradients within 6e-6 of their largest entry.
if (await webgpuAvailable())
  modelParitySuite('webgpu', { fixtures: webgpuFixtures('nested-tiny', 'unet-tiny', 'video-tiny') });
