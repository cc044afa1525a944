// Strided row copies: Concat and SplitV along an axis are this copy (one call per input /
// output); tfjs's wasm kernels do it with one TypedArray.set per row, ~3 ms per call for the
// channel concats of a UNet.
#pragma once
#include <cstddef>

namespace mdm {

// dst[r·dstStride + i] = src[r·srcStride + i] for r < rows, i < width (strides ≥ width).
void copyRows(float* dst, size_t dstStride, const float* src, size_t srcStride, size_t rows, size_t width);

}  // namespace mdm
