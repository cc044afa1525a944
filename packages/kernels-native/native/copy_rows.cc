#include "copy_rows.h"

#include <cstring>

namespace mdm {

void copyRows(float* dst, size_t dstStride, const float* src, size_t srcStride, size_t rows, size_t width) {
  if (dstStride == width && srcStride == width) std::memcpy(dst, src, rows * width * sizeof(float));
  else
    for (size_t r = 0; r < rows; r++) std::memcpy(dst + r * dstStride, src + r * srcStride, width * sizeof(float));
}

}  // namespace mdm
