// Single-precision matrix products for the tfjs kernels of this addon.
// C[M×N] = op(A)·op(B) + beta·C, row-major, op(X) = X or Xᵀ.
// OpenBLAS's cblas_sgemm is used when libopenblas is found at run time (dlopen, so no headers
// or link step are needed); otherwise a packed, blocked AVX2/FMA kernel of our own.
#pragma once
#include <cstddef>

namespace mdm {

// (oneDNN's dnnl_sgemm is not offered: in 2.6 it corrupted the heap when a signal arrived
// mid-call, as SIGPROF does under `node --cpu-prof`.)
enum class GemmProvider { Builtin, OpenBlas };

// Tries to load OpenBLAS; returns true when cblas_sgemm is available.
bool loadOpenBlas();
bool openBlasLoaded();
// Chooses the provider (OpenBlas only when loaded). Returns the provider in use.
GemmProvider setProvider(GemmProvider p);
GemmProvider provider();
// Threads used by the builtin kernel and, when it exposes the setter, by OpenBLAS.
void setThreads(int n);
int threads();
bool builtinUsesAvx2();

void sgemm(bool transA, bool transB, int M, int N, int K, const float* A, const float* B, float beta, float* C);
// C[i] = op(A[i])·op(B[i]) for i < batch, with A[i] = A + i·strideA, B[i] = B + i·strideB (a stride
// of 0 broadcasts that operand) and C[i] = C + i·M·N.
void sgemmBatched(int batch, bool transA, bool transB, int M, int N, int K, const float* A, long strideA,
                  const float* B, long strideB, float* C);

}  // namespace mdm
