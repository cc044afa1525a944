#include "group_norm.h"

#include <cmath>
#include <thread>
#include <vector>

#include "gemm.h"

namespace mdm {
namespace {

struct Stats {
  std::vector<float> mean, rstd;  // per group
};

// Two-pass mean and variance in double (as tf.moments: the biased variance).
Stats groupStats(const float* xb, const GroupNormShape& s) {
  const int G = s.groups, cg = s.channels / G;
  const double n = double(s.pixels) * cg;
  std::vector<double> sum(G, 0.0), sq(G, 0.0);
  for (long p = 0; p < s.pixels; p++) {
    const float* row = xb + p * s.channels;
    for (int c = 0; c < s.channels; c++) sum[c / cg] += row[c];
  }
  for (int g = 0; g < G; g++) sum[g] /= n;
  for (long p = 0; p < s.pixels; p++) {
    const float* row = xb + p * s.channels;
    for (int c = 0; c < s.channels; c++) {
      double d = row[c] - sum[c / cg];
      sq[c / cg] += d * d;
    }
  }
  Stats st{std::vector<float>(G), std::vector<float>(G)};
  for (int g = 0; g < G; g++) {
    st.mean[g] = float(sum[g]);
    st.rstd[g] = float(1.0 / std::sqrt(sq[g] / n + s.eps));
  }
  return st;
}

inline float sigmoid(float z) { return 1.f / (1.f + std::exp(-z)); }

// Runs f(b0, b1, thread) over batch ranges, on up to threads() threads when the work is large.
template <class F>
void forBatches(const GroupNormShape& s, F f) {
  int T = std::min(threads(), s.batch);
  if (T <= 1 || double(s.batch) * s.pixels * s.channels < 65536) return f(0, s.batch, 0);
  std::vector<std::thread> pool;
  int step = (s.batch + T - 1) / T;
  for (int t = 0; t * step < s.batch; t++) pool.emplace_back(f, t * step, std::min(s.batch, (t + 1) * step), t);
  for (auto& th : pool) th.join();
}

}  // namespace

void groupNormAct(const float* x, const float* gamma, const float* beta, const float* scale, const float* shift, float* y,
                  const GroupNormShape& s) {
  const int C = s.channels, cg = C / s.groups;
  forBatches(s, [&](int b0, int b1, int) {
    std::vector<float> A(C), Bc(C);
    for (int b = b0; b < b1; b++) {
      const long off = long(b) * s.pixels * C;
      Stats st = groupStats(x + off, s);
      // z = x·A[c] + B[c], folding the normalisation, affine and modulation into one line.
      for (int c = 0; c < C; c++) {
        int g = c / cg;
        float m = scale ? 1.f + scale[b * C + c] : 1.f, t = shift ? shift[b * C + c] : 0.f;
        A[c] = st.rstd[g] * gamma[c] * m;
        Bc[c] = (beta[c] - st.mean[g] * st.rstd[g] * gamma[c]) * m + t;
      }
      for (long p = 0; p < s.pixels; p++) {
        const float* xr = x + off + p * C;
        float* yr = y + off + p * C;
        if (s.silu)
          for (int c = 0; c < C; c++) {
            float z = xr[c] * A[c] + Bc[c];
            yr[c] = z * sigmoid(z);
          }
        else
          for (int c = 0; c < C; c++) yr[c] = xr[c] * A[c] + Bc[c];
      }
    }
  });
}

void groupNormActGrad(const float* dy, const float* x, const float* gamma, const float* beta, const float* scale, const float* shift,
                      float* dx, float* dgamma, float* dbeta, float* dscale, float* dshift, const GroupNormShape& s) {
  const int C = s.channels, G = s.groups, cg = C / G;
  const double n = double(s.pixels) * cg;
  const int T = std::max(1, threads());
  std::vector<double> accG(size_t(T) * C, 0.0), accB(size_t(T) * C, 0.0);  // per-thread dγ, dβ
  forBatches(s, [&](int b0, int b1, int t) {
    double* dg = accG.data() + size_t(t) * C;
    double* db = accB.data() + size_t(t) * C;
    std::vector<double> sum1(G), sum2(G), ds(C), dt(C);
    for (int b = b0; b < b1; b++) {
      const long off = long(b) * s.pixels * C;
      Stats st = groupStats(x + off, s);
      std::fill(sum1.begin(), sum1.end(), 0.0);
      std::fill(sum2.begin(), sum2.end(), 0.0);
      std::fill(ds.begin(), ds.end(), 0.0);
      std::fill(dt.begin(), dt.end(), 0.0);
      // Pass 1: dz through SiLU and the modulation; dx holds dx̂ = du·γ for now.
      for (long p = 0; p < s.pixels; p++) {
        const float *xr = x + off + p * C, *dyr = dy + off + p * C;
        float* dxr = dx + off + p * C;
        for (int c = 0; c < C; c++) {
          int g = c / cg;
          float xhat = (xr[c] - st.mean[g]) * st.rstd[g];
          float u = xhat * gamma[c] + beta[c];
          float m = scale ? 1.f + scale[b * C + c] : 1.f;
          float dz = dyr[c];
          if (s.silu) {
            float z = u * m + (shift ? shift[b * C + c] : 0.f), sg = sigmoid(z);
            dz *= sg * (1.f + z * (1.f - sg));
          }
          dt[c] += dz;
          ds[c] += double(dz) * u;
          float du = dz * m;
          db[c] += du;
          dg[c] += double(du) * xhat;
          float dxhat = du * gamma[c];
          sum1[g] += dxhat;
          sum2[g] += double(dxhat) * xhat;
          dxr[c] = dxhat;
        }
      }
      // Pass 2: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) over each group.
      for (long p = 0; p < s.pixels; p++) {
        const float* xr = x + off + p * C;
        float* dxr = dx + off + p * C;
        for (int c = 0; c < C; c++) {
          int g = c / cg;
          float xhat = (xr[c] - st.mean[g]) * st.rstd[g];
          dxr[c] = st.rstd[g] * (dxr[c] - float(sum1[g] / n) - xhat * float(sum2[g] / n));
        }
      }
      if (scale)
        for (int c = 0; c < C; c++) {
          dscale[b * C + c] = float(ds[c]);
          dshift[b * C + c] = float(dt[c]);
        }
    }
  });
  for (int c = 0; c < C; c++) {
    double g = 0, bb = 0;
    for (int t = 0; t < T; t++) g += accG[size_t(t) * C + c], bb += accB[size_t(t) * C + c];
    dgamma[c] = float(g);
    dbeta[c] = float(bb);
  }
}

}  // namespace mdm
