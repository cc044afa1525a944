#include "upsample.h"

#include <cstring>

namespace mdm {

void upsample2x(const float* x, float* y, size_t B, size_t H, size_t W, size_t C) {
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < H; i++) {
      float* row = y + ((b * 2 * H + 2 * i) * 2 * W) * C;
      for (size_t j = 0; j < W; j++) {
        const float* px = x + ((b * H + i) * W + j) * C;
        std::memcpy(row + 2 * j * C, px, C * sizeof(float));
        std::memcpy(row + (2 * j + 1) * C, px, C * sizeof(float));
      }
      std::memcpy(row + 2 * W * C, row, 2 * W * C * sizeof(float));  // the second output row
    }
}

void upsample2xGrad(const float* dy, float* dx, size_t B, size_t H, size_t W, size_t C) {
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < H; i++) {
      const float* r0 = dy + ((b * 2 * H + 2 * i) * 2 * W) * C;
      const float* r1 = r0 + 2 * W * C;
      float* out = dx + ((b * H + i) * W) * C;
      for (size_t j = 0; j < W; j++)
        for (size_t c = 0; c < C; c++)
          out[j * C + c] =
              (r0[2 * j * C + c] + r0[(2 * j + 1) * C + c]) + (r1[2 * j * C + c] + r1[(2 * j + 1) * C + c]);
    }
}

}  // namespace mdm
