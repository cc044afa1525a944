#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "gemm.h"

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

}  // namespace

void conv2d(const float* x, const float* w, float* y, const ConvGeometry& g) {
  const long R = long(g.batch) * g.outH * g.outW, Q = long(g.kh) * g.kw * g.inC;
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
  const long R = long(g.batch) * g.outH * g.outW, Q = long(g.kh) * g.kw * g.inC;
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
  const long R = long(g.batch) * g.outH * g.outW, Q = long(g.kh) * g.kw * g.inC;
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
