import { samplerParitySuite } from './sampler-parity.js';
import { webgpuAvailable, webgpuFixtures } from './webgpu.js';

// The sampler suite on tfjs-backend-webgpu (Dawn; llvmpipe here and in CI), with the suite's own
// tolerances (sampler-parity.ts). On the GPU's float32:
// - the single step from the stored v (1e-5): element-wise operations whose coefficients are
//   computed in float64 on the host; WGSL rounds +, −, × correctly and ÷ and √ within 2.5 ulp, so
//   a step lands within a few ulps (~1e-6) of any float32 evaluation; dynamic thresholding's
//   quantile is a sort, exact in any order.
// - the network output and the complete 5-step runs (1e-4): the model's float32 sums in tile and
//   tree orders (model.webgpu.test.ts), carried through 5 steps.
// Measured on llvmpipe: single steps within 6e-7, network outputs within 3e-6, complete runs
// within 7e-6. Folders: nested-tiny (two levels, dynamic_if, guidance) and video-tiny (frames,
// dynamic thresholding); unet-tiny's single level is nested-tiny's inner one, and its complete
// runs would add 20 s on llvmpipe (MDM_WEBGPU_FIXTURES=all runs it, as the GPU check does).
if (await webgpuAvailable()) samplerParitySuite('webgpu', { fixtures: webgpuFixtures('nested-tiny', 'video-tiny') });
