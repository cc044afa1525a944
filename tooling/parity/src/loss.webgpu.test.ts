import { lossParitySuite } from './loss-parity.js';
import { webgpuAvailable, webgpuFixtures } from './webgpu.js';

// The loss suite on tfjs-backend-webgpu (Dawn; llvmpipe here and in CI), every fixture folder,
// with the suite's own tolerances (loss-parity.ts). On the GPU's float32:
// - mse, loss, loss_mean (1e-4, relative above 1): a mean of squares reduced in a workgroup tree
//   instead of a loop; its rounding is ~log₂(n)·2⁻²⁴ relative, far below the network outputs'
//   own differences (~1e-5), which the tolerance was set by.
// - dropped samples (1e-5) and the pooled low-resolution x0 (1e-6): element-wise operations and
//   means of 4 values in [−1, 1]; WGSL rounds +, −, × correctly and ÷ within 2.5 ulp, so results
//   stay within a few ulps (≤ 2.4e-7) of any other float32 evaluation.
// - gradients (1e-3 of the largest entry): sums over a whole backward in tile and tree orders,
//   as in model.webgpu.test.ts.
// Measured on llvmpipe: losses within 2.4e-7, gradients within 2.6e-6 of their largest entry.
if (await webgpuAvailable())
  lossParitySuite('webgpu', { fixtures: webgpuFixtures('nested-tiny', 'unet-tiny', 'video-tiny') });
