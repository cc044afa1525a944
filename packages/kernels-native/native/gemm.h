// Single-precision matrix products for the tfjs kernels of this addon.
// C[M×N] = op(A)·op(B) + beta·C, row-major, op(X) = X or Xᵀ.
// OpenBLAS's cblas_sgemm is used when libopenblas is found at run time (dlopen, so no headers
// or link step are needed); otherwise a packed, blocked AVX2/FMA kernel of our own.
#pragma once
#include <cstddef>

namespace mdm {

enum class GemmProvider { Builtin, OpenBlas, OneDnn };

// oneDNN's row-major dnnl_sgemm, registered by dnnl.cc when libdnnl loads: its products share
// the OpenMP threads of oneDNN's convolutions instead of a second pool competing for the cores.
using DnnlSgemm = int (*)(char transA, char transB, long M, long N, long K, float alpha, const float* A, long lda,
                          const float* B, long ldb, float beta, float* C, long ldc);
void registerDnnlSgemm(DnnlSgemm f);

// Tries to load OpenBLAS; returns true when cblas_sgemm is available.
bool loadOpenBlas();
bool openBlasLoaded();
// Chooses the provider (OpenBlas / OneDnn only when loaded). Returns the provider in use.
GemmProvider setProvider(GemmProvider p);
GemmProvider provider();
// Threads used by the builtin kernel and, when it exposes the setter, by OpenBLAS.
void setThreads(int n);
int threads();
bool builtinUsesAvx2();

void sgemm(bool transA, bool transB, int M, int N, int K, const float* A, const float* B, float beta, float* C);

}  // namespace mdm
