#include "gemm.h"

#include <dlfcn.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "pool.h"

namespace mdm {
namespace {

// ---- OpenBLAS, found at run time -------------------------------------------------------------
using CblasSgemm = void (*)(int order, int transA, int transB, int M, int N, int K, float alpha, const float* A,
                            int lda, const float* B, int ldb, float beta, float* C, int ldc);
using SetThreads = void (*)(int);
CblasSgemm cblasSgemm = nullptr;
SetThreads openblasSetThreads = nullptr;
int openblasThreads = 0;  // what OpenBLAS was last told, so it is told only on a change

void useOpenBlasThreads(int n) {
  if (openblasSetThreads && n != openblasThreads) openblasSetThreads(openblasThreads = n);
}
GemmProvider current = GemmProvider::Builtin;
int nThreads = std::max(1u, std::min(std::thread::hardware_concurrency(), 64u));

// ---- the builtin kernel: pack A in MR-row panels and B in NR-column panels, then a register-
// blocked MR×NR micro-kernel (12 AVX2 accumulators) runs over the packed panels.
constexpr int MR = 6, NR = 16, KC = 256, MC = 96, NC = 1024;

struct View {  // X(i, j) = p[i·si + j·sj]
  const float* p;
  long si, sj;
  float at(long i, long j) const { return p[i * si + j * sj]; }
};

void packA(View a, int i0, int mc, int k0, int kc, int M, float* out) {
  for (int ir = 0; ir < mc; ir += MR)
    for (int k = 0; k < kc; k++)
      for (int i = 0; i < MR; i++) {
        int row = i0 + ir + i;
        *out++ = row < M && ir + i < mc ? a.at(row, k0 + k) : 0.f;
      }
}

void packB(View b, int k0, int kc, int j0, int nc, int N, float* out) {
  for (int jr = 0; jr < nc; jr += NR)
    for (int k = 0; k < kc; k++)
      for (int j = 0; j < NR; j++) {
        int col = j0 + jr + j;
        *out++ = col < N && jr + j < nc ? b.at(k0 + k, col) : 0.f;
      }
}

__attribute__((target("avx2,fma"))) void microAvx2(int kc, const float* ap, const float* bp, float* tile) {
  __m256 c[MR][2];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    for (int i = 0; i < MR; i++) {
      __m256 a = _mm256_broadcast_ss(ap + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
    ap += MR;
    bp += NR;
  }
  for (int i = 0; i < MR; i++) {
    _mm256_storeu_ps(tile + i * NR, c[i][0]);
    _mm256_storeu_ps(tile + i * NR + 8, c[i][1]);
  }
}

void microGeneric(int kc, const float* ap, const float* bp, float* tile) {
  float c[MR * NR] = {0};
  for (int k = 0; k < kc; k++, ap += MR, bp += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) c[i * NR + j] += ap[i] * bp[j];
  std::memcpy(tile, c, sizeof c);
}

const bool hasAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

// C[M×N] (row stride ldc) += A·B over the given views; C was already scaled by beta.
void gemmSerial(View a, View b, int M, int N, int K, float* C, long ldc) {
  std::vector<float> Ap(size_t(MC) * KC), Bp(size_t(KC) * ((NC + NR - 1) / NR * NR));
  alignas(32) float tile[MR * NR];
  auto micro = hasAvx2 ? microAvx2 : microGeneric;
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = std::min(NC, N - j0);
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = std::min(KC, K - k0);
      packB(b, k0, kc, j0, nc, N, Bp.data());
      for (int i0 = 0; i0 < M; i0 += MC) {
        int mc = std::min(MC, M - i0);
        packA(a, i0, mc, k0, kc, M, Ap.data());
        for (int jr = 0; jr < nc; jr += NR)
          for (int ir = 0; ir < mc; ir += MR) {
            micro(kc, Ap.data() + size_t(ir) * kc, Bp.data() + size_t(jr) * kc, tile);
            int mr = std::min(MR, mc - ir), nr = std::min(NR, nc - jr);
            float* c = C + long(i0 + ir) * ldc + j0 + jr;
            for (int i = 0; i < mr; i++)
              for (int j = 0; j < nr; j++) c[i * ldc + j] += tile[i * NR + j];
          }
      }
    }
  }
}

}  // namespace

bool loadOpenBlas() {
  if (cblasSgemm) return true;
  // OpenBLAS's idle threads spin for ~2^28 cycles after each product before sleeping; on a
  // 2-core machine that took a core from the oneDNN and GroupNorm threads that ran next
  // (a convolution after a product: 0.42-0.52 ms with 2^4, 0.67-0.75 ms with the default).
  // OpenBLAS reads this when it loads (the addon loads it before oneDNN).
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.so"}) {
    void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    cblasSgemm = reinterpret_cast<CblasSgemm>(dlsym(h, "cblas_sgemm"));
    openblasSetThreads = reinterpret_cast<SetThreads>(dlsym(h, "openblas_set_num_threads"));
    if (cblasSgemm) {
      useOpenBlasThreads(nThreads);
      return true;
    }
    dlclose(h);
  }
  return false;
}

bool openBlasLoaded() { return cblasSgemm != nullptr; }
GemmProvider setProvider(GemmProvider p) {
  current = p == GemmProvider::OpenBlas && cblasSgemm ? GemmProvider::OpenBlas : GemmProvider::Builtin;
  return current;
}
GemmProvider provider() { return current; }
void setThreads(int n) {
  nThreads = std::max(1, n);
  useOpenBlasThreads(nThreads);
}
int threads() { return nThreads; }
bool builtinUsesAvx2() { return hasAvx2; }

void sgemm(bool transA, bool transB, int M, int N, int K, const float* A, const float* B, float beta, float* C) {
  if (M <= 0 || N <= 0) return;
  if (current == GemmProvider::OpenBlas) {
    if (K <= 0) {  // BLAS leaves C untouched when K is 0 only if beta is 1
      for (long i = 0; i < long(M) * N; i++) C[i] = beta == 0.f ? 0.f : beta * C[i];
      return;
    }
    // Products under 20 MFLOP on one thread: waking OpenBLAS's sleeping thread (see
    // loadOpenBlas) cost more than it saved (a 512×64×64 product took ~1 ms inside a training
    // step, 65 µs alone; native sampling step 0.134-0.148 → 0.119-0.131 s).
    useOpenBlasThreads(2.0 * M * N * K < 2e7 ? 1 : nThreads);
    cblasSgemm(101, transA ? 112 : 111, transB ? 112 : 111, M, N, K, 1.f, A, transA ? M : K, B, transB ? K : N, beta,
               C, N);
    return;
  }
  if (beta == 0.f) std::memset(C, 0, sizeof(float) * size_t(M) * N);
  else if (beta != 1.f) for (long i = 0; i < long(M) * N; i++) C[i] *= beta;
  if (K <= 0) return;
  View a = transA ? View{A, 1, M} : View{A, K, 1};
  View b = transB ? View{B, 1, K} : View{B, N, 1};
  // Split the rows (or, for few rows, the columns) among threads when the product is large
  // enough to pay for starting them.
  double flops = 2.0 * M * N * K;
  int T = flops < 4e6 ? 1 : nThreads;
  if (T <= 1) return gemmSerial(a, b, M, N, K, C, N);
  if (M >= T * 2 * MR) {
    int step = (M / T + MR - 1) / MR * MR;
    parallelFor((M + step - 1) / step, [&](int t) {
      int i0 = t * step;
      View at{a.p + i0 * a.si, a.si, a.sj};
      gemmSerial(at, b, std::min(step, M - i0), N, K, C + long(i0) * N, long(N));
    });
  } else {
    int step = (N / T + NR - 1) / NR * NR;
    parallelFor((N + step - 1) / step, [&](int t) {
      int j0 = t * step;
      View bt{b.p + j0 * b.sj, b.si, b.sj};
      gemmSerial(a, bt, M, std::min(step, N - j0), K, C + j0, long(N));
    });
  }
}

void sgemmBatched(int batch, bool transA, bool transB, int M, int N, int K, const float* A, long strideA,
                  const float* B, long strideB, float* C) {
  for (int i = 0; i < batch; i++)
    sgemm(transA, transB, M, N, K, A + i * strideA, B + i * strideB, 0.f, C + long(i) * M * N);
}

}  // namespace mdm
