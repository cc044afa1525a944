// Convolutions through oneDNN (libdnnl.so.2, the 2.x C API), loaded at run time with dlopen like
// OpenBLAS: no headers or link step, so the addon builds on a machine without it and falls back
// to its own kernels (conv.cc). oneDNN's JIT-generated AVX2 convolutions ran 2–8× faster than
// ours on the default model's layers here (60–130 GFLOP/s on 2 threads, against 3–60).
#pragma once
#include <map>
#include <string>

#include "conv.h"

namespace mdm {

// Tries to load oneDNN 2.x; true when its convolutions can be used.
bool loadDnnl();
bool dnnlLoaded();
// Turns the oneDNN path on or off (on only when loaded); returns whether it is on.
bool setDnnlEnabled(bool on);
bool dnnlEnabled();
// oneDNN's version, "2.6.3", or "" when not loaded.
const char* dnnlVersion();
void dnnlSetThreads(int n);
// Convolutions oneDNN ran, and those it declined (no implementation, or an error) so that the
// addon's own kernels ran them, since the process started.
struct DnnlCounts {
  long calls, declined;
};
DnnlCounts dnnlCounts();
// Plans made since the process started (one per convolution geometry and direction), by
// "direction: oneDNN implementation", e.g. "forward: jit:avx512_common", or
// "backward data: declined (offered brg:avx512_core, …)" when none was acceptable.
std::map<std::string, long> dnnlImplementations();

// Each returns false (and writes nothing) when oneDNN is off or has no implementation for the
// geometry, so the caller runs its own kernel instead.
bool dnnlConv2d(const float* x, const float* w, float* y, const ConvGeometry& g);
bool dnnlConv2dBackpropInput(const float* dy, const float* w, float* dx, const ConvGeometry& g);
bool dnnlConv2dBackpropFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g);

}  // namespace mdm
