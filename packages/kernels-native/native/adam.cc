#include "adam.h"

#include <cmath>

namespace mdm {

void adamUpdate(const float* p, const float* g, const float* m, const float* v, float* p1, float* m1, float* v1,
                size_t n, const AdamConstants& k) {
  const float b1 = k.beta1, ob1 = k.oneMinusBeta1, b2 = k.beta2, ob2 = k.oneMinusBeta2, c2 = k.c2, eps = k.eps,
              step = k.step;
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * ob1;
    const float vi = v[i] * b2 + (gi * gi) * ob2;
    m1[i] = mi;
    v1[i] = vi;
    p1[i] = p[i] - (mi / (std::sqrt(vi) / c2 + eps)) * step;
  }
}

}  // namespace mdm
