#include "bias.h"

#include <algorithm>
#include <vector>

namespace mdm {

void biasAdd(float* y, const float* bias, const float* residual, size_t rows, size_t channels) {
  const size_t n = rows, c = channels;
  for (size_t r = 0; r < n; r++) {
    float* yr = y + r * c;
    if (residual)
      for (size_t j = 0; j < c; j++) yr[j] = (yr[j] + bias[j]) + residual[r * c + j];
    else
      for (size_t j = 0; j < c; j++) yr[j] += bias[j];
  }
}

void biasGrad(const float* dy, float* db, size_t rows, size_t channels) {
  const size_t n = rows, c = channels;
  std::vector<double> total(c, 0.0);
  std::vector<float> block(c);
  for (size_t r0 = 0; r0 < n; r0 += 256) {
    std::fill(block.begin(), block.end(), 0.f);
    for (size_t r = r0, r1 = std::min(n, r0 + 256); r < r1; r++)
      for (size_t j = 0; j < c; j++) block[j] += dy[r * c + j];
    for (size_t j = 0; j < c; j++) total[j] += block[j];
  }
  for (size_t j = 0; j < c; j++) db[j] = float(total[j]);
}

}  // namespace mdm
