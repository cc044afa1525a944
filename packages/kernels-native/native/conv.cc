#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "dnnl.h"
#include "gemm.h"
#include "pool.h"

namespace mdm {
namespace {

// Output pixels per chunk, so that a chunk's patch matrix stays near 16 MiB.
long chunkRows(const ConvGeometry& g) {
  long q = long(g.kh) * g.kw * g.inC;
  return std::max(1L, (4L << 20) / q);
}

bool pointwise(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.strideH == 1 && g.strideW == 1 && g.padTop == 0 && g.padLeft == 0 &&
         g.outH == g.inH && g.outW == g.inW;
}

// col[r, (i, j, c)] = x[b, oy·sh + i·dh − pt, ox·sw + j·dw − pl, c] (0 outside), r = (b, oy, ox).
void im2col(const float* x, const ConvGeometry& g, long r0, long rows, float* col) {
  const long q = long(g.kh) * g.kw * g.inC, hw = long(g.outH) * g.outW;
  for (long r = 0; r < rows; r++) {
    long rr = r0 + r, b = rr / hw, oy = rr % hw / g.outW, ox = rr % g.outW;
    float* out = col + r * q;
    for (int i = 0; i < g.kh; i++) {
      long y = oy * g.strideH + i * g.dilationH - g.padTop;
      for (int j = 0; j < g.kw; j++, out += g.inC) {
        long xx = ox * g.strideW + j * g.dilationW - g.padLeft;
        if (y < 0 || y >= g.inH || xx < 0 || xx >= g.inW) std::memset(out, 0, sizeof(float) * g.inC);
        else std::memcpy(out, x + ((b * g.inH + y) * g.inW + xx) * g.inC, sizeof(float) * g.inC);
      }
    }
  }
}

// The adjoint of im2col: dx[b, y, x, c] += col[r, (i, j, c)].
void col2imAdd(const float* col, const ConvGeometry& g, long r0, long rows, float* dx) {
  const long q = long(g.kh) * g.kw * g.inC, hw = long(g.outH) * g.outW;
  for (long r = 0; r < rows; r++) {
    long rr = r0 + r, b = rr / hw, oy = rr % hw / g.outW, ox = rr % g.outW;
    const float* in = col + r * q;
    for (int i = 0; i < g.kh; i++) {
      long y = oy * g.strideH + i * g.dilationH - g.padTop;
      for (int j = 0; j < g.kw; j++, in += g.inC) {
        long xx = ox * g.strideW + j * g.dilationW - g.padLeft;
        if (y < 0 || y >= g.inH || xx < 0 || xx >= g.inW) continue;
        float* d = dx + ((b * g.inH + y) * g.inW + xx) * g.inC;
        for (int c = 0; c < g.inC; c++) d[c] += in[c];
      }
    }
  }
}


// ---- direct convolutions, for the few-channel layers of the outer levels: patch extraction
// there moves more memory than the product computes (8→8 channels at 64 px ran at ~5 GFLOP/s
// through im2col + sgemm). The output channels are the vectorised inner loop; OUT is a
// compile-time width so the accumulators stay in registers.

template <class F>
void parallelRows(long rows, long minRows, F f) {
  parallelRanges(rows, int(std::min<long>(threads(), std::max(1L, rows / std::max(1L, minRows)))), f);
}

// 8 floats; aligned(4) so loads from any float address are allowed (unaligned moves).
typedef float v8 __attribute__((vector_size(32), aligned(4)));

// The row kernels, defined twice: for AVX2+FMA and for the baseline x86-64 (SSE2), chosen at run time.
#define MDM_DIRECT_KERNELS(SUFFIX, ATTR)                                                                           \
  template <int OUT>                                                                                                 \
  ATTR void directForwardRows##SUFFIX(const float* x, const float* w, float* y, const ConvGeometry& g, long r0,      \
                                     long r1) {                                                                      \
    constexpr int V = OUT / 8;                                                                                       \
    const int C = g.inC;                                                                                             \
    for (long r = r0; r < r1; r++) { /* r = (b, oy) */                                                              \
      long b = r / g.outH, oy = r % g.outH;                                                                          \
      for (int ox = 0; ox < g.outW; ox++) {                                                                          \
        v8 acc[V] = {};                                                                                              \
        for (int i = 0; i < g.kh; i++) {                                                                             \
          long iy = oy * g.strideH + i * g.dilationH - g.padTop;                                                     \
          if (iy < 0 || iy >= g.inH) continue;                                                                       \
          for (int j = 0; j < g.kw; j++) {                                                                           \
            long ix = long(ox) * g.strideW + j * g.dilationW - g.padLeft;                                            \
            if (ix < 0 || ix >= g.inW) continue;                                                                     \
            const float* xp = x + ((b * g.inH + iy) * g.inW + ix) * C;                                               \
            const v8* wv = reinterpret_cast<const v8*>(w + long(i * g.kw + j) * C * OUT);                            \
            for (int c = 0; c < C; c++, wv += V)                                                                     \
              for (int v = 0; v < V; v++) acc[v] += xp[c] * wv[v];                                                   \
          }                                                                                                          \
        }                                                                                                            \
        v8* out = reinterpret_cast<v8*>(y + (r * g.outW + ox) * OUT);                                                \
        for (int v = 0; v < V; v++) out[v] = acc[v];                                                                 \
      }                                                                                                              \
    }                                                                                                                \
  }                                                                                                                  \
  template <int OUT>                                                                                                 \
  ATTR void directFilterRows##SUFFIX(const float* x, const float* dy, float* dw, const ConvGeometry& g, long r0,     \
                                    long r1) {                                                                       \
    constexpr int V = OUT / 8;                                                                                       \
    const int C = g.inC;                                                                                             \
    for (long r = r0; r < r1; r++) {                                                                                 \
      long b = r / g.outH, oy = r % g.outH;                                                                          \
      for (int ox = 0; ox < g.outW; ox++) {                                                                          \
        v8 d[V];                                                                                                     \
        for (int v = 0; v < V; v++) d[v] = reinterpret_cast<const v8*>(dy + (r * g.outW + ox) * OUT)[v];            \
        for (int i = 0; i < g.kh; i++) {                                                                             \
          long iy = oy * g.strideH + i * g.dilationH - g.padTop;                                                     \
          if (iy < 0 || iy >= g.inH) continue;                                                                       \
          for (int j = 0; j < g.kw; j++) {                                                                           \
            long ix = long(ox) * g.strideW + j * g.dilationW - g.padLeft;                                            \
            if (ix < 0 || ix >= g.inW) continue;                                                                     \
            const float* xp = x + ((b * g.inH + iy) * g.inW + ix) * C;                                               \
            v8* wv = reinterpret_cast<v8*>(dw + long(i * g.kw + j) * C * OUT);                                       \
            for (int c = 0; c < C; c++, wv += V)                                                                     \
              for (int v = 0; v < V; v++) wv[v] += xp[c] * d[v];                                                     \
          }                                                                                                          \
        }                                                                                                            \
      }                                                                                                              \
    }                                                                                                                \
  }

MDM_DIRECT_KERNELS(Avx2, __attribute__((target("avx2,fma"))))
MDM_DIRECT_KERNELS(Base, )
#undef MDM_DIRECT_KERNELS

const bool directAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

template <int OUT>
void directForwardRows(const float* x, const float* w, float* y, const ConvGeometry& g, long r0, long r1) {
  directAvx2 ? directForwardRowsAvx2<OUT>(x, w, y, g, r0, r1) : directForwardRowsBase<OUT>(x, w, y, g, r0, r1);
}
template <int OUT>
void directFilterRows(const float* x, const float* dy, float* dw, const ConvGeometry& g, long r0, long r1) {
  directAvx2 ? directFilterRowsAvx2<OUT>(x, dy, dw, g, r0, r1) : directFilterRowsBase<OUT>(x, dy, dw, g, r0, r1);
}

template <int OUT>
void directForward(const float* x, const float* w, float* y, const ConvGeometry& g) {
  parallelRows(long(g.batch) * g.outH, 4, [&](long r0, long r1, int) { directForwardRows<OUT>(x, w, y, g, r0, r1); });
}

template <int OUT>
void directFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g) {
  const size_t n = size_t(g.kh) * g.kw * g.inC * OUT;
  std::vector<std::vector<float>> partial(std::max(1, threads()), std::vector<float>());
  parallelRows(long(g.batch) * g.outH, 4, [&](long r0, long r1, int t) {
    partial[t].assign(n, 0.f);
    directFilterRows<OUT>(x, dy, partial[t].data(), g, r0, r1);
  });
  std::memset(dw, 0, n * sizeof(float));
  for (auto& p : partial)
    if (!p.empty())
      for (size_t k = 0; k < n; k++) dw[k] += p[k];
}

// Direct kernels exist for these output widths; wider layers have enough work for sgemm.
bool directWidth(int out) { return out == 8 || out == 16 || out == 32; }
bool useDirect(const ConvGeometry& g, int out, int in) { return directWidth(out) && in <= 32; }

void directForwardAny(const float* x, const float* w, float* y, const ConvGeometry& g) {
  switch (g.outC) {
    case 8: return directForward<8>(x, w, y, g);
    case 16: return directForward<16>(x, w, y, g);
    default: return directForward<32>(x, w, y, g);
  }
}

}  // namespace

void conv2d(const float* x, const float* w, float* y, const ConvGeometry& g) {
  if (dnnlConv2d(x, w, y, g)) return;
  const long R = long(g.batch) * g.outH * g.outW, Q = long(g.kh) * g.kw * g.inC;
  if (useDirect(g, g.outC, g.inC)) return directForwardAny(x, w, y, g);
  if (pointwise(g)) return sgemm(false, false, R, g.outC, g.inC, x, w, 0.f, y);
  const long chunk = chunkRows(g);
  std::vector<float> col(size_t(std::min(chunk, R)) * Q);
  for (long r0 = 0; r0 < R; r0 += chunk) {
    long rows = std::min(chunk, R - r0);
    im2col(x, g, r0, rows, col.data());
    sgemm(false, false, rows, g.outC, Q, col.data(), w, 0.f, y + r0 * g.outC);
  }
}

void conv2dBackpropInput(const float* dy, const float* w, float* dx, const ConvGeometry& g) {
  if (dnnlConv2dBackpropInput(dy, w, dx, g)) return;
  const long R = long(g.batch) * g.outH * g.outW, Q = long(g.kh) * g.kw * g.inC;
  if (g.strideH == 1 && g.strideW == 1 && g.dilationH == 1 && g.dilationW == 1 && useDirect(g, g.inC, g.outC)) {
    // Stride 1: dx is the convolution of dy with the filter rotated by 180° and its channels
    // swapped, W'[i, j, o, c] = W[kh−1−i, kw−1−j, c, o], padded by k−1−pad.
    std::vector<float> wt(size_t(g.kh) * g.kw * g.inC * g.outC);
    for (int i = 0; i < g.kh; i++)
      for (int j = 0; j < g.kw; j++)
        for (int c = 0; c < g.inC; c++)
          for (int o = 0; o < g.outC; o++)
            wt[((size_t(i) * g.kw + j) * g.outC + o) * g.inC + c] =
                w[((size_t(g.kh - 1 - i) * g.kw + (g.kw - 1 - j)) * g.inC + c) * g.outC + o];
    ConvGeometry t{g.batch, g.outH, g.outW, g.outC, g.kh, g.kw, g.inC, 1, 1, 1, 1, g.kh - 1 - g.padTop,
                   g.kw - 1 - g.padLeft, g.inH, g.inW};
    return directForwardAny(dy, wt.data(), dx, t);
  }
  if (pointwise(g)) return sgemm(false, true, R, g.inC, g.outC, dy, w, 0.f, dx);
  std::memset(dx, 0, sizeof(float) * size_t(g.batch) * g.inH * g.inW * g.inC);
  const long chunk = chunkRows(g);
  std::vector<float> col(size_t(std::min(chunk, R)) * Q);
  for (long r0 = 0; r0 < R; r0 += chunk) {
    long rows = std::min(chunk, R - r0);
    sgemm(false, true, rows, Q, g.outC, dy + r0 * g.outC, w, 0.f, col.data());  // dcol = dy·Wᵀ
    col2imAdd(col.data(), g, r0, rows, dx);
  }
}

void conv2dBackpropFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g) {
  if (dnnlConv2dBackpropFilter(x, dy, dw, g)) return;
  const long R = long(g.batch) * g.outH * g.outW, Q = long(g.kh) * g.kw * g.inC;
  if (useDirect(g, g.outC, g.inC)) {
    switch (g.outC) {
      case 8: return directFilter<8>(x, dy, dw, g);
      case 16: return directFilter<16>(x, dy, dw, g);
      default: return directFilter<32>(x, dy, dw, g);
    }
  }
  if (pointwise(g)) return sgemm(true, false, g.inC, g.outC, R, x, dy, 0.f, dw);
  const long chunk = chunkRows(g);
  std::vector<float> col(size_t(std::min(chunk, R)) * Q);
  for (long r0 = 0; r0 < R; r0 += chunk) {
    long rows = std::min(chunk, R - r0);
    im2col(x, g, r0, rows, col.data());
    sgemm(true, false, Q, g.outC, rows, col.data(), dy + r0 * g.outC, r0 == 0 ? 0.f : 1.f, dw);  // dW += colᵀ·dy
  }
}

}  // namespace mdm
