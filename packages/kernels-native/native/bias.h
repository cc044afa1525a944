// A bias added to every row of a [rows, channels] tensor (a convolution's bias, optionally with
// a residual block's skip in the same pass), and its gradient: the two broadcast kernels tfjs
// would otherwise run around each convolution.
#pragma once
#include <cstddef>

namespace mdm {

// y[r, c] = (y[r, c] + bias[c]) + residual[r, c], in place, in tfjs's order of the two adds;
// residual may be null (then y[r, c] += bias[c]).
void biasAdd(float* y, const float* bias, const float* residual, size_t rows, size_t channels);
// db[c] = Σ_r dy[r, c]. Sums blocks of 256 rows in float32 (vectorised across channels) and the
// blocks in double.
void biasGrad(const float* dy, float* db, size_t rows, size_t channels);

}  // namespace mdm
