// One Adam step in one pass over the parameters (13 tfjs kernels and 12 temporaries otherwise).
// The constants are rounded to float32 as tfjs's scalars are, and the operations follow the
// tfjs formula's order:
//   m1 = m·β1 + g·(1 − β1),   v1 = v·β2 + g²·(1 − β2),   p1 = p − (m1 / (√v1 / c2 + ε))·step
#pragma once
#include <cstddef>

namespace mdm {

struct AdamConstants {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2;
  float c2;    // the second moment's bias correction, √(1 − β2ᵗ)
  float eps;
  float step;  // lr / c1, c1 = 1 − β1ᵗ
};

// p, g, m, v: the parameters, their gradient and the two moments, n floats each; the updated
// values go to p1, m1, v1.
void adamUpdate(const float* p, const float* g, const float* m, const float* v, float* p1, float* m1, float* v1,
                size_t n, const AdamConstants& k);

}  // namespace mdm
