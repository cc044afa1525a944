// Nearest-neighbour 2× upsampling of NHWC tensors and its gradient. B, H, W, C are the input's
// shape; the output is [B, 2H, 2W, C].
#pragma once
#include <cstddef>

namespace mdm {

// y[b, 2i + p, 2j + q, c] = x[b, i, j, c] for p, q ∈ {0, 1}.
void upsample2x(const float* x, float* y, size_t B, size_t H, size_t W, size_t C);
// dx[b, i, j, c] = Σ of dy's 2×2 block, summed as (top-left + top-right) + (bottom-left + bottom-right).
void upsample2xGrad(const float* dy, float* dx, size_t B, size_t H, size_t W, size_t C);

}  // namespace mdm
