#include "group_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <vector>

#include "gemm.h"
#include "pool.h"

namespace mdm {
namespace {

struct Stats {
  std::vector<float> mean, rstd;  // per channel (its group's), so inner loops need no division
};

const bool gnAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

// Per-channel sums of x (or, with `center`, of (x − center)²) over one sample's pixels. Each sweep
// reads NV·8 neighbouring channels of every pixel (one contiguous run per pixel; a sweep per 8
// channels read the data C/8 times with a stride), in float32 over blocks of 64 pixels with two
// accumulator chains, added to float64 totals after each block (as the backward pass does), which
// keeps the rounding at the float64 level for any image size.
template <bool Squares>
__attribute__((target("avx2,fma"))) inline __m256 sweepTerm(const float* at, __m256 center) {
  const __m256 e = _mm256_loadu_ps(at);
  return Squares ? _mm256_sub_ps(e, center) : e;
}
template <bool Squares, int NV>
__attribute__((target("avx2,fma"))) void channelSweepAvx2(const float* x, long pixels, int C, int c0,
                                                          const float* center, double* out) {
  __m256 m[NV];
  __m256d lo[NV], hi[NV];
  for (int v = 0; v < NV; v++) {
    m[v] = Squares ? _mm256_loadu_ps(center + c0 + 8 * v) : _mm256_setzero_ps();
    lo[v] = hi[v] = _mm256_setzero_pd();
  }
  for (long p0 = 0; p0 < pixels; p0 += 64) {
    const long p1 = std::min(pixels, p0 + 64);
    __m256 a0[NV], a1[NV];  // two chains (even and odd pixels), so the adds overlap
    for (int v = 0; v < NV; v++) a0[v] = a1[v] = _mm256_setzero_ps();
    long p = p0;
    for (; p + 1 < p1; p += 2)
      for (int v = 0; v < NV; v++) {
        const float* at = x + p * C + c0 + 8 * v;
        const __m256 e0 = sweepTerm<Squares>(at, m[v]), e1 = sweepTerm<Squares>(at + C, m[v]);
        a0[v] = Squares ? _mm256_fmadd_ps(e0, e0, a0[v]) : _mm256_add_ps(a0[v], e0);
        a1[v] = Squares ? _mm256_fmadd_ps(e1, e1, a1[v]) : _mm256_add_ps(a1[v], e1);
      }
    if (p < p1)
      for (int v = 0; v < NV; v++) {
        const __m256 e = sweepTerm<Squares>(x + p * C + c0 + 8 * v, m[v]);
        a0[v] = Squares ? _mm256_fmadd_ps(e, e, a0[v]) : _mm256_add_ps(a0[v], e);
      }
    for (int v = 0; v < NV; v++) {
      const __m256 a = _mm256_add_ps(a0[v], a1[v]);
      lo[v] = _mm256_add_pd(lo[v], _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
      hi[v] = _mm256_add_pd(hi[v], _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
    }
  }
  for (int v = 0; v < NV; v++) {
    _mm256_storeu_pd(out + c0 + 8 * v, lo[v]);
    _mm256_storeu_pd(out + c0 + 8 * v + 4, hi[v]);
  }
}
// All C channels (a multiple of 8), in sweeps of up to 32 (more accumulators than 16 registers hold spill).
template <bool Squares>
void channelSumsAvx2x8(const float* x, long pixels, int C, const float* center, double* out) {
  int c0 = 0;
  for (; c0 + 32 <= C; c0 += 32) channelSweepAvx2<Squares, 4>(x, pixels, C, c0, center, out);
  if (c0 + 16 <= C) channelSweepAvx2<Squares, 2>(x, pixels, C, c0, center, out), c0 += 16;
  if (c0 + 8 <= C) channelSweepAvx2<Squares, 1>(x, pixels, C, c0, center, out);
}

// Mean and biased variance per group (as tf.moments), two passes with per-channel float64 sums
// over the pixels, folded into groups afterwards.
Stats groupStats(const float* xb, const GroupNormShape& s) {
  const int C = s.channels, G = s.groups, cg = C / G;
  const double n = double(s.pixels) * cg;
  const bool vector = gnAvx2 && C % 8 == 0;
  std::vector<double> sum(C, 0.0), sq(C, 0.0), gm(G, 0.0), gv(G, 0.0);
  if (vector) {
    channelSumsAvx2x8<false>(xb, s.pixels, C, nullptr, sum.data());
  } else {
    for (long p = 0; p < s.pixels; p++) {
      const float* row = xb + p * C;
      for (int c = 0; c < C; c++) sum[c] += row[c];
    }
  }
  for (int c = 0; c < C; c++) gm[c / cg] += sum[c];
  std::vector<float> meanC(C);
  for (int c = 0; c < C; c++) meanC[c] = float(gm[c / cg] / n);
  if (vector) {
    channelSumsAvx2x8<true>(xb, s.pixels, C, meanC.data(), sq.data());
  } else {
    for (long p = 0; p < s.pixels; p++) {
      const float* row = xb + p * C;
      for (int c = 0; c < C; c++) {
        double d = double(row[c]) - meanC[c];
        sq[c] += d * d;
      }
    }
  }
  for (int c = 0; c < C; c++) gv[c / cg] += sq[c];
  Stats st{std::move(meanC), std::vector<float>(C)};
  for (int c = 0; c < C; c++) st.rstd[c] = float(1.0 / std::sqrt(gv[c / cg] / n + s.eps));
  return st;
}

// σ(z) with a polynomial 2^f (Cephes-style, relative error ~2e-7), written with plain arithmetic
// and integer bit tricks so that the compiler vectorises the loops that call it.
__attribute__((always_inline)) inline float fastExp(float x) {
  x = std::min(std::max(x, -87.f), 88.f);  // (not fmin/fmax: their NaN rules block vectorising)
  float t = x * 1.44269504f;                       // x·log2(e) = n + f
  int32_t ni = int32_t(t);                         // floor, by truncation and a correction
  ni -= int32_t(t < float(ni));
  float f = t - float(ni);
  float p = 1.535336188e-4f;
  p = p * f + 1.339887440e-3f;
  p = p * f + 9.618437357e-3f;
  p = p * f + 5.550332471e-2f;
  p = p * f + 2.402264791e-1f;
  p = p * f + 6.931472028e-1f;
  p = p * f + 1.f;  // 2^f on [0, 1)
  int32_t bits;
  std::memcpy(&bits, &p, 4);
  bits += ni << 23;  // × 2^n
  std::memcpy(&p, &bits, 4);
  return p;
}
__attribute__((always_inline)) inline float sigmoid(float z) { return 1.f / (1.f + fastExp(-z)); }

// σ(z) for 8 lanes: exp by 2^n·2^f with n = round(z·log2 e), f ∈ [−½, ½] and Cephes's exp2
// polynomial (relative error ~2e-7), written with intrinsics because the compiler would not
// vectorise the scalar version in every build.
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504f));
  __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(t, n);
  __m256 p = _mm256_set1_ps(1.535336188e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}
__attribute__((target("avx2,fma"))) inline __m256 sigmoid8(__m256 z) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), z))));
}

// y = x·A[c] + B[c] (then SiLU), over one sample's pixels: with AVX2 intrinsics 8 channels at a
// time when C is a multiple of 8, else portable code.
__attribute__((target("avx2,fma"))) void applyAffineAvx2x8(const float* x, float* y, const float* A, const float* B,
                                                           long n, int C, bool silu) {
  for (long p = 0; p < n; p++)
    for (int c = 0; c < C; c += 8) {
      __m256 z = _mm256_fmadd_ps(_mm256_loadu_ps(x + p * C + c), _mm256_loadu_ps(A + c), _mm256_loadu_ps(B + c));
      _mm256_storeu_ps(y + p * C + c, silu ? _mm256_mul_ps(z, sigmoid8(z)) : z);
    }
}
void applyAffine(const float* x, float* y, const float* A, const float* B, long n, int C, bool silu) {
  if (gnAvx2 && C % 8 == 0) return applyAffineAvx2x8(x, y, A, B, n, C, silu);
  for (long p = 0; p < n; p++)
    for (int c = 0; c < C; c++) {
      float z = x[p * C + c] * A[c] + B[c];
      y[p * C + c] = silu ? z * sigmoid(z) : z;
    }
}

// Six per-channel sums of the backward pass, in float64.
struct Sums {
  double *dt, *ds, *db, *dg, *sum1, *sum2;
};

// Pass 1 of the backward pass over one sample, portable version. The sums run in float32 over
// blocks of 64 pixels and are added to the float64 totals after each block, which keeps the
// accumulated rounding at the float64 level for any image size.
void backwardPass1Portable(const float* x, const float* dy, float* dx, const float* mean, const float* rstd,
                           const float* gamma, const float* beta, const float* m, const float* t0, long pixels, int C,
                           bool silu, Sums out) {
  std::vector<float> acc(size_t(6) * C);
  float *fdt = acc.data(), *fds = fdt + C, *fdb = fds + C, *fdg = fdb + C, *f1 = fdg + C, *f2 = f1 + C;
  for (long p0 = 0; p0 < pixels; p0 += 64) {
    std::fill(acc.begin(), acc.end(), 0.f);
    const long p1 = std::min(pixels, p0 + 64);
    for (long p = p0; p < p1; p++) {
      const float *xr = x + p * C, *dyr = dy + p * C;
      float* dxr = dx + p * C;
      for (int c = 0; c < C; c++) {
        float xhat = (xr[c] - mean[c]) * rstd[c];
        float u = xhat * gamma[c] + beta[c];
        float dz = dyr[c];
        if (silu) {
          float z = u * m[c] + t0[c], sg = sigmoid(z);
          dz *= sg * (1.f + z * (1.f - sg));
        }
        float du = dz * m[c], dxhat = du * gamma[c];
        fdt[c] += dz;
        fds[c] += dz * u;
        fdb[c] += du;
        fdg[c] += du * xhat;
        f1[c] += dxhat;
        f2[c] += dxhat * xhat;
        dxr[c] = dxhat;
      }
    }
    for (int c = 0; c < C; c++) {
      out.dt[c] += fdt[c], out.ds[c] += fds[c], out.db[c] += fdb[c];
      out.dg[c] += fdg[c], out.sum1[c] += f1[c], out.sum2[c] += f2[c];
    }
  }
}

// Pass 1 with intrinsics, 8 channels at a time (C a multiple of 8); the same block scheme.
__attribute__((target("avx2,fma"))) void backwardPass1Avx2x8(const float* x, const float* dy, float* dx,
                                                             const float* mean, const float* rstd, const float* gamma,
                                                             const float* beta, const float* m, const float* t0,
                                                             long pixels, int C, bool silu, Sums out) {
  std::vector<float> acc(size_t(6) * C);
  float *fdt = acc.data(), *fds = fdt + C, *fdb = fds + C, *fdg = fdb + C, *f1 = fdg + C, *f2 = f1 + C;
  const __m256 one = _mm256_set1_ps(1.f);
  for (long p0 = 0; p0 < pixels; p0 += 64) {
    std::fill(acc.begin(), acc.end(), 0.f);
    const long p1 = std::min(pixels, p0 + 64);
    for (int c = 0; c < C; c += 8) {
      const __m256 mu = _mm256_loadu_ps(mean + c), rs = _mm256_loadu_ps(rstd + c), g = _mm256_loadu_ps(gamma + c),
                   bt = _mm256_loadu_ps(beta + c);
      const __m256 mm = _mm256_loadu_ps(m + c), tt = _mm256_loadu_ps(t0 + c);
      __m256 adt = _mm256_setzero_ps(), ads = adt, adb = adt, adg = adt, a1 = adt, a2 = adt;
      for (long p = p0; p < p1; p++) {
        const long i = p * C + c;
        __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mu), rs);
        __m256 u = _mm256_fmadd_ps(xhat, g, bt);
        __m256 dz = _mm256_loadu_ps(dy + i);
        if (silu) {
          __m256 z = _mm256_fmadd_ps(u, mm, tt), sg = sigmoid8(z);
          dz = _mm256_mul_ps(dz, _mm256_mul_ps(sg, _mm256_fmadd_ps(z, _mm256_sub_ps(one, sg), one)));
        }
        __m256 du = _mm256_mul_ps(dz, mm), dxhat = _mm256_mul_ps(du, g);
        adt = _mm256_add_ps(adt, dz);
        ads = _mm256_fmadd_ps(dz, u, ads);
        adb = _mm256_add_ps(adb, du);
        adg = _mm256_fmadd_ps(du, xhat, adg);
        a1 = _mm256_add_ps(a1, dxhat);
        a2 = _mm256_fmadd_ps(dxhat, xhat, a2);
        _mm256_storeu_ps(dx + i, dxhat);
      }
      _mm256_storeu_ps(fdt + c, adt), _mm256_storeu_ps(fds + c, ads), _mm256_storeu_ps(fdb + c, adb);
      _mm256_storeu_ps(fdg + c, adg), _mm256_storeu_ps(f1 + c, a1), _mm256_storeu_ps(f2 + c, a2);
    }
    for (int c = 0; c < C; c++) {
      out.dt[c] += fdt[c], out.ds[c] += fds[c], out.db[c] += fdb[c];
      out.dg[c] += fdg[c], out.sum1[c] += f1[c], out.sum2[c] += f2[c];
    }
  }
}
void backwardPass1(const float* x, const float* dy, float* dx, const float* mean, const float* rstd, const float* gamma,
                   const float* beta, const float* m, const float* t0, long pixels, int C, bool silu, Sums out) {
  if (gnAvx2 && C % 8 == 0) return backwardPass1Avx2x8(x, dy, dx, mean, rstd, gamma, beta, m, t0, pixels, C, silu, out);
  backwardPass1Portable(x, dy, dx, mean, rstd, gamma, beta, m, t0, pixels, C, silu, out);
}

// Runs f(b0, b1, thread) over batch ranges, on up to threads() threads when the work is large.
template <class F>
void forBatches(const GroupNormShape& s, F f) {
  const bool large = double(s.batch) * s.pixels * s.channels >= 65536;
  parallelRanges(s.batch, large ? std::min(threads(), s.batch) : 1,
                 [&](long b0, long b1, int t) { f(int(b0), int(b1), t); });
}

}  // namespace

void groupNormAct(const float* x, const float* gamma, const float* beta, const float* scale, const float* shift,
                  float* y, const GroupNormShape& s) {
  const int C = s.channels;
  forBatches(s, [&](int b0, int b1, int) {
    std::vector<float> A(C), Bc(C);
    for (int b = b0; b < b1; b++) {
      const long off = long(b) * s.pixels * C;
      Stats st = groupStats(x + off, s);
      // z = x·A[c] + B[c], folding the normalisation, affine and modulation into one line.
      for (int c = 0; c < C; c++) {
        float m = scale ? 1.f + scale[b * s.modStride + c] : 1.f, t = shift ? shift[b * s.modStride + c] : 0.f;
        A[c] = st.rstd[c] * gamma[c] * m;
        Bc[c] = (beta[c] - st.mean[c] * st.rstd[c] * gamma[c]) * m + t;
      }
      applyAffine(x + off, y + off, A.data(), Bc.data(), s.pixels, C, s.silu);
    }
  });
}

void groupNormActGrad(const float* dy, const float* x, const float* gamma, const float* beta, const float* scale,
                      const float* shift, float* dx, float* dgamma, float* dbeta, float* dscale, float* dshift,
                      const GroupNormShape& s) {
  const int C = s.channels, G = s.groups, cg = C / G;
  const double n = double(s.pixels) * cg;
  const int T = std::max(1, threads());
  std::vector<double> accG(size_t(T) * C, 0.0), accB(size_t(T) * C, 0.0);  // per-thread dγ, dβ
  forBatches(s, [&](int b0, int b1, int t) {
    double* dg = accG.data() + size_t(t) * C;
    double* db = accB.data() + size_t(t) * C;
    std::vector<double> sum1(C), sum2(C), ds(C), dt(C), g1(G), g2(G);
    std::vector<float> m(C), t0(C), m1(C), m2(C);
    for (int b = b0; b < b1; b++) {
      const long off = long(b) * s.pixels * C;
      Stats st = groupStats(x + off, s);
      for (int c = 0; c < C; c++) {
        m[c] = scale ? 1.f + scale[b * s.modStride + c] : 1.f;
        t0[c] = shift ? shift[b * s.modStride + c] : 0.f;
      }
      std::fill(sum1.begin(), sum1.end(), 0.0);
      std::fill(sum2.begin(), sum2.end(), 0.0);
      std::fill(ds.begin(), ds.end(), 0.0);
      std::fill(dt.begin(), dt.end(), 0.0);
      // Pass 1: dz through SiLU and the modulation; dx holds dx̂ = du·γ for now.
      backwardPass1(x + off, dy + off, dx + off, st.mean.data(), st.rstd.data(), gamma, beta, m.data(), t0.data(),
                    s.pixels, C, s.silu, Sums{dt.data(), ds.data(), db, dg, sum1.data(), sum2.data()});
      std::fill(g1.begin(), g1.end(), 0.0);
      std::fill(g2.begin(), g2.end(), 0.0);
      for (int c = 0; c < C; c++) g1[c / cg] += sum1[c], g2[c / cg] += sum2[c];
      for (int c = 0; c < C; c++) m1[c] = float(g1[c / cg] / n), m2[c] = float(g2[c / cg] / n);
      // Pass 2: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) over each group.
      for (long p = 0; p < s.pixels; p++) {
        const float* xr = x + off + p * C;
        float* dxr = dx + off + p * C;
        for (int c = 0; c < C; c++) {
          float xhat = (xr[c] - st.mean[c]) * st.rstd[c];
          dxr[c] = st.rstd[c] * (dxr[c] - m1[c] - xhat * m2[c]);
        }
      }
      if (scale)
        for (int c = 0; c < C; c++) {
          dscale[b * s.modStride + c] = float(ds[c]);
          dshift[b * s.modStride + c] = float(dt[c]);
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
