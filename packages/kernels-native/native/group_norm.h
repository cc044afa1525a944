// Fused GroupNorm + affine + optional per-sample scale/shift + optional SiLU over NHWC tensors,
// and its gradient: the chain every residual block runs twice, which tfjs runs as ~10 (forward)
// and ~25 (backward) separate memory-bound kernels.
//   u = GN(x)·γ + β,   z = u·(1 + scale[b, c]) + shift[b, c],   y = silu ? z·σ(z) : z
#pragma once

namespace mdm {

struct GroupNormShape {
  int batch, pixels, channels, groups;
  float eps;
  bool silu;
  // scale[b, c] is scale[b·modStride + c] (and so for shift and their gradients): channels for
  // [B, C] tensors, 2·channels for views into one [B, 2C] (scale | shift) tensor.
  int modStride;
};

// scale/shift may be null (no modulation).
void groupNormAct(const float* x, const float* gamma, const float* beta, const float* scale, const float* shift,
                  float* y, const GroupNormShape& s);
// dscale/dshift are written when scale is non-null.
void groupNormActGrad(const float* dy, const float* x, const float* gamma, const float* beta, const float* scale,
                      const float* shift, float* dx, float* dgamma, float* dbeta, float* dscale, float* dshift,
                      const GroupNormShape& s);

}  // namespace mdm
