// N-API entry points. Every tensor argument is a Float32Array (a tfjs cpu tensor's values, or a
// view of the wasm backend's memory); sizes are checked here so a wrong call throws instead of
// reading out of bounds.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "adam.h"
#include "bias.h"
#include "conv.h"
#include "copy_rows.h"
#include "dnnl.h"
#include "gemm.h"
#include "group_norm.h"
#include "mpi.h"
#include "upsample.h"

namespace {

struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  bool failed = false;

  Args(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(e, info, &argc, argv, nullptr, nullptr); }

  void fail(const std::string& msg) {
    if (!failed) napi_throw_range_error(env, nullptr, ("mdm native: " + msg).c_str());
    failed = true;
  }
  double num(size_t i) {
    double v = 0;
    if (i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok)
      fail("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  int integer(size_t i) { return int(num(i)); }
  bool flag(size_t i) {
    bool v = false;
    if (i >= argc || napi_get_value_bool(env, argv[i], &v) != napi_ok)
      fail("argument " + std::to_string(i) + " must be a boolean");
    return v;
  }
  // A Float32Array with at least `need` elements.
  float* floats(size_t i, double need) {
    bool is = false;
    if (i < argc) napi_is_typedarray(env, argv[i], &is);
    if (!is) {
      fail("argument " + std::to_string(i) + " must be a Float32Array");
      return nullptr;
    }
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_get_typedarray_info(env, argv[i], &type, &length, &data, nullptr, nullptr);
    if (type != napi_float32_array) fail("argument " + std::to_string(i) + " must be a Float32Array");
    else if (double(length) < need)
      fail("argument " + std::to_string(i) + " holds " + std::to_string(length) + " floats, needs " +
           std::to_string(long(need)));
    return static_cast<float*>(data);
  }
  // null, or a Float32Array with at least `need` elements.
  float* optionalFloats(size_t i, double need) {
    napi_valuetype t = napi_undefined;
    if (i < argc) napi_typeof(env, argv[i], &t);
    return t == napi_null || t == napi_undefined ? nullptr : floats(i, need);
  }
  // [batch, pixels, channels, groups, eps, silu (0/1), modStride (optional, default channels)]
  mdm::GroupNormShape groupNormShape(size_t i) {
    double f[7] = {0};
    uint32_t len = 0;
    bool isArray = false;
    if (i < argc) napi_is_array(env, argv[i], &isArray);
    if (isArray) napi_get_array_length(env, argv[i], &len);
    if (len != 6 && len != 7) {
      fail("group-norm shape must be an array of 6 or 7 numbers");
      return {};
    }
    for (uint32_t k = 0; k < len; k++) {
      napi_value v;
      if (napi_get_element(env, argv[i], k, &v) != napi_ok || napi_get_value_double(env, v, &f[k]) != napi_ok) {
        fail("group-norm shape must be an array of numbers");
        return {};
      }
    }
    mdm::GroupNormShape s{int(f[0]), int(f[1]), int(f[2]), int(f[3]), float(f[4]), f[5] != 0,
                          len == 7 ? int(f[6]) : int(f[2])};
    if (s.batch < 0 || s.pixels < 0 || s.channels <= 0 || s.groups <= 0 || s.channels % s.groups != 0)
      fail("group-norm shape: channels must be a positive multiple of groups");
    else if (s.modStride < s.channels) fail("group-norm shape: the modulation stride is less than the channels");
    return s;
  }
  // Four non-negative integers from arguments i … i+3 (an NHWC shape); false after a failure.
  bool nhwc(size_t i, size_t& B, size_t& H, size_t& W, size_t& C) {
    size_t* out[4] = {&B, &H, &W, &C};
    for (size_t k = 0; k < 4; k++) {
      double d = num(i + k);
      if (!failed && (d < 0 || d != std::floor(d)))
        fail("argument " + std::to_string(i + k) + " must be a non-negative integer");
      *out[k] = failed ? 0 : size_t(d);
    }
    return !failed;
  }
  mdm::ConvGeometry geometry(size_t i) {
    mdm::ConvGeometry g{};
    int* fields[] = {&g.batch, &g.inH, &g.inW, &g.inC, &g.kh, &g.kw, &g.outC, &g.strideH, &g.strideW,
                     &g.dilationH, &g.dilationW, &g.padTop, &g.padLeft, &g.outH, &g.outW};
    for (size_t f = 0; f < 15; f++) {
      napi_value v;
      double d = 0;
      if (i >= argc || napi_get_element(env, argv[i], uint32_t(f), &v) != napi_ok ||
          napi_get_value_double(env, v, &d) != napi_ok) {
        fail("geometry must be an array of 15 numbers");
        return g;
      }
      *fields[f] = int(d);
      if (d < (f == 11 || f == 12 ? -1e9 : 0)) fail("geometry field " + std::to_string(f) + " is negative");
    }
    return g;
  }
};

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

const char* providerName() { return mdm::provider() == mdm::GemmProvider::OpenBlas ? "openblas" : "builtin"; }

napi_value Info(napi_env env, napi_callback_info) {
  napi_value o, v;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, providerName(), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, "provider", v);
  napi_get_boolean(env, mdm::openBlasLoaded(), &v);
  napi_set_named_property(env, o, "openblas", v);
  napi_get_boolean(env, mdm::builtinUsesAvx2(), &v);
  napi_set_named_property(env, o, "avx2", v);
  napi_create_int32(env, mdm::threads(), &v);
  napi_set_named_property(env, o, "threads", v);
  napi_create_string_utf8(env, mdm::dnnlEnabled() ? "onednn" : "builtin", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, "convProvider", v);
  napi_create_string_utf8(env, mdm::dnnlVersion(), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, "onednn", v);
  mdm::DnnlCounts counts = mdm::dnnlCounts();
  napi_create_double(env, double(counts.calls), &v);
  napi_set_named_property(env, o, "onednnCalls", v);
  napi_create_double(env, double(counts.declined), &v);
  napi_set_named_property(env, o, "onednnDeclined", v);
  napi_value impls;
  napi_create_object(env, &impls);
  for (const auto& [what, plans] : mdm::dnnlImplementations()) {
    napi_create_double(env, double(plans), &v);
    napi_set_named_property(env, impls, what.c_str(), v);
  }
  napi_set_named_property(env, o, "onednnImplementations", impls);
  return o;
}

napi_value SetProvider(napi_env env, napi_callback_info info) {
  Args a(env, info);
  char buf[32] = {0};
  size_t len = 0;
  if (a.argc < 1 || napi_get_value_string_utf8(env, a.argv[0], buf, sizeof buf, &len) != napi_ok) {
    a.fail("setProvider takes 'builtin' or 'openblas'");
    return nullptr;
  }
  std::string p(buf);
  if (p == "openblas") mdm::loadOpenBlas();
  mdm::setProvider(p == "openblas" ? mdm::GemmProvider::OpenBlas : mdm::GemmProvider::Builtin);
  napi_value v;
  napi_create_string_utf8(env, providerName(), NAPI_AUTO_LENGTH, &v);
  return v;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int n = a.integer(0);
  if (!a.failed) mdm::setThreads(n), mdm::dnnlSetThreads(mdm::threads());
  return undefined(env);
}

// setConvProvider('onednn' | 'builtin'): oneDNN's convolutions when it is loaded, or the addon's own.
napi_value SetConvProvider(napi_env env, napi_callback_info info) {
  Args a(env, info);
  char buf[32] = {0};
  size_t len = 0;
  if (a.argc < 1 || napi_get_value_string_utf8(env, a.argv[0], buf, sizeof buf, &len) != napi_ok) {
    a.fail("setConvProvider takes 'builtin' or 'onednn'");
    return nullptr;
  }
  bool on = std::string(buf) == "onednn";
  if (on) mdm::loadDnnl();
  napi_value v;
  napi_create_string_utf8(env, mdm::setDnnlEnabled(on) ? "onednn" : "builtin", NAPI_AUTO_LENGTH, &v);
  return v;
}

// gemm(transA, transB, M, N, K, A, B, C, beta): C = op(A)·op(B) + beta·C.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  bool ta = a.flag(0), tb = a.flag(1);
  int M = a.integer(2), N = a.integer(3), K = a.integer(4);
  const float* A = a.floats(5, double(M) * K);
  const float* B = a.floats(6, double(K) * N);
  float* C = a.floats(7, double(M) * N);
  float beta = a.argc > 8 ? float(a.num(8)) : 0.f;
  if (!a.failed) mdm::sgemm(ta, tb, M, N, K, A, B, beta, C);
  return undefined(env);
}

// batchGemm(batch, transA, transB, M, N, K, A, strideA, B, strideB, C): C[i] = op(A[i])·op(B[i]);
// a stride of 0 broadcasts that operand.
napi_value BatchGemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int batch = a.integer(0);
  bool ta = a.flag(1), tb = a.flag(2);
  int M = a.integer(3), N = a.integer(4), K = a.integer(5);
  long sa = long(a.num(7)), sb = long(a.num(9));
  const float* A = a.floats(6, double(sa) * (batch - 1) + double(M) * K);
  const float* B = a.floats(8, double(sb) * (batch - 1) + double(K) * N);
  float* C = a.floats(10, double(batch) * M * N);
  if (!a.failed) mdm::sgemmBatched(batch, ta, tb, M, N, K, A, sa, B, sb, C);
  return undefined(env);
}

double inSize(const mdm::ConvGeometry& g) { return double(g.batch) * g.inH * g.inW * g.inC; }
double outSize(const mdm::ConvGeometry& g) { return double(g.batch) * g.outH * g.outW * g.outC; }
double filterSize(const mdm::ConvGeometry& g) { return double(g.kh) * g.kw * g.inC * g.outC; }

napi_value Conv2D(napi_env env, napi_callback_info info) {  // (x, w, y, geometry)
  Args a(env, info);
  auto g = a.geometry(3);
  const float* x = a.floats(0, inSize(g));
  const float* w = a.floats(1, filterSize(g));
  float* y = a.floats(2, outSize(g));
  if (!a.failed) mdm::conv2d(x, w, y, g);
  return undefined(env);
}

napi_value Conv2DBackpropInput(napi_env env, napi_callback_info info) {  // (dy, w, dx, geometry)
  Args a(env, info);
  auto g = a.geometry(3);
  const float* dy = a.floats(0, outSize(g));
  const float* w = a.floats(1, filterSize(g));
  float* dx = a.floats(2, inSize(g));
  if (!a.failed) mdm::conv2dBackpropInput(dy, w, dx, g);
  return undefined(env);
}

napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {  // (x, dy, dw, geometry)
  Args a(env, info);
  auto g = a.geometry(3);
  const float* x = a.floats(0, inSize(g));
  const float* dy = a.floats(1, outSize(g));
  float* dw = a.floats(2, filterSize(g));
  if (!a.failed) mdm::conv2dBackpropFilter(x, dy, dw, g);
  return undefined(env);
}

// groupNormAct(x, gamma, beta, scale|null, shift|null, y, shape)
napi_value GroupNormAct(napi_env env, napi_callback_info info) {
  Args a(env, info);
  auto s = a.groupNormShape(6);
  double n = double(s.batch) * s.pixels * s.channels;
  double bc = s.batch ? double(s.batch - 1) * s.modStride + s.channels : 0;
  const float *x = a.floats(0, n), *gamma = a.floats(1, s.channels), *beta = a.floats(2, s.channels);
  const float *scale = a.optionalFloats(3, bc), *shift = a.optionalFloats(4, bc);
  float* y = a.floats(5, n);
  if (!scale != !shift) a.fail("scale and shift come together");
  if (!a.failed) mdm::groupNormAct(x, gamma, beta, scale, shift, y, s);
  return undefined(env);
}

// groupNormActGrad(dy, x, gamma, beta, scale|null, shift|null, dx, dgamma, dbeta, dscale|null, dshift|null, shape)
napi_value GroupNormActGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  auto s = a.groupNormShape(11);
  double n = double(s.batch) * s.pixels * s.channels;
  double bc = s.batch ? double(s.batch - 1) * s.modStride + s.channels : 0;
  const float *dy = a.floats(0, n), *x = a.floats(1, n);
  const float *gamma = a.floats(2, s.channels), *beta = a.floats(3, s.channels);
  const float *scale = a.optionalFloats(4, bc), *shift = a.optionalFloats(5, bc);
  float *dx = a.floats(6, n), *dgamma = a.floats(7, s.channels), *dbeta = a.floats(8, s.channels);
  float *dscale = a.optionalFloats(9, bc), *dshift = a.optionalFloats(10, bc);
  if (!scale != !shift || !scale != !dscale || !scale != !dshift)
    a.fail("scale, shift and their gradients come together");
  if (!a.failed) mdm::groupNormActGrad(dy, x, gamma, beta, scale, shift, dx, dgamma, dbeta, dscale, dshift, s);
  return undefined(env);
}

// copyRows(dst, dstOffset, dstStride, src, srcOffset, srcStride, rows, width): for r < rows,
// dst[dstOffset + r·dstStride + i] = src[srcOffset + r·srcStride + i] for i < width (copy_rows.h).
napi_value CopyRows(napi_env env, napi_callback_info info) {
  Args a(env, info);
  double dstOffset = a.num(1), dstStride = a.num(2), srcOffset = a.num(4), srcStride = a.num(5);
  double rows = a.num(6), width = a.num(7);
  if (!a.failed && (rows < 0 || width < 0 || dstOffset < 0 || srcOffset < 0 || dstStride < width || srcStride < width))
    a.fail("copyRows: bad geometry");
  if (a.failed || rows == 0 || width == 0) return undefined(env);
  float* dst = a.floats(0, dstOffset + (rows - 1) * dstStride + width);
  const float* src = a.floats(3, srcOffset + (rows - 1) * srcStride + width);
  if (a.failed) return undefined(env);
  mdm::copyRows(dst + size_t(dstOffset), size_t(dstStride), src + size_t(srcOffset), size_t(srcStride), size_t(rows),
                size_t(width));
  return undefined(env);
}

// upsample2x(x, y, [B, H, W, C]): y[b, 2i + p, 2j + q, c] = x[b, i, j, c] (nearest, 2×).
napi_value Upsample2x(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t B = 0, H = 0, W = 0, C = 0;
  if (!a.nhwc(2, B, H, W, C)) return undefined(env);
  const float* x = a.floats(0, double(B) * H * W * C);
  float* y = a.floats(1, 4.0 * B * H * W * C);
  if (!a.failed) mdm::upsample2x(x, y, B, H, W, C);
  return undefined(env);
}

// upsample2xGrad(dy, dx, [B, H, W, C]) with H, W the input's: dx[b, i, j] = Σ of dy's 2×2 block.
napi_value Upsample2xGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t B = 0, H = 0, W = 0, C = 0;
  if (!a.nhwc(2, B, H, W, C)) return undefined(env);
  const float* dy = a.floats(0, 4.0 * B * H * W * C);
  float* dx = a.floats(1, double(B) * H * W * C);
  if (!a.failed) mdm::upsample2xGrad(dy, dx, B, H, W, C);
  return undefined(env);
}

// biasAdd(y, bias, residual | null, rows, channels): y[r, c] = (y[r, c] + bias[c]) + residual[r, c],
// in place (bias.h).
napi_value BiasAdd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  double rows = a.num(3), channels = a.num(4);
  if (!a.failed && (rows < 0 || channels < 1)) a.fail("biasAdd: bad shape");
  if (a.failed) return undefined(env);
  float* y = a.floats(0, rows * channels);
  const float* bias = a.floats(1, channels);
  const float* res = a.optionalFloats(2, rows * channels);
  if (!a.failed) mdm::biasAdd(y, bias, res, size_t(rows), size_t(channels));
  return undefined(env);
}

// biasGrad(dy, db, rows, channels): db[c] = Σ_r dy[r, c], the gradient of a bias added to every
// row (bias.h).
napi_value BiasGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  double rows = a.num(2), channels = a.num(3);
  if (!a.failed && (rows < 0 || channels < 1)) a.fail("biasGrad: bad shape");
  if (a.failed) return undefined(env);
  const float* dy = a.floats(0, rows * channels);
  float* db = a.floats(1, channels);
  if (!a.failed) mdm::biasGrad(dy, db, size_t(rows), size_t(channels));
  return undefined(env);
}

// adamUpdate(p, g, m, v, p1, m1, v1, n, [beta1, 1 − beta1, beta2, 1 − beta2, c2, eps, lr / c1]):
// one Adam step in one pass (adam.h). The constants are rounded to float32 as tfjs's scalars are.
napi_value AdamUpdate(napi_env env, napi_callback_info info) {
  Args a(env, info);
  double n = a.num(7);
  const float *p = a.floats(0, n), *g = a.floats(1, n), *m = a.floats(2, n), *v = a.floats(3, n);
  float *p1 = a.floats(4, n), *m1 = a.floats(5, n), *v1 = a.floats(6, n);
  float k[7] = {};
  bool isArray = false;
  if (a.argc > 8) napi_is_array(env, a.argv[8], &isArray);
  if (!isArray) a.fail("argument 8 must be the 7 Adam constants");
  for (uint32_t i = 0; i < 7 && !a.failed; i++) {
    napi_value e;
    double d = 0;
    if (napi_get_element(env, a.argv[8], i, &e) != napi_ok || napi_get_value_double(env, e, &d) != napi_ok)
      a.fail("the Adam constants must be numbers");
    k[i] = float(d);
  }
  if (a.failed) return undefined(env);
  mdm::adamUpdate(p, g, m, v, p1, m1, v1, size_t(n), mdm::AdamConstants{k[0], k[1], k[2], k[3], k[4], k[5], k[6]});
  return undefined(env);
}

// --- MPI (mpi.h): errors are thrown as Error (not RangeError): they are the run's, not a bad call's.

napi_value throwMpi(napi_env env, const std::string& why) {
  napi_throw_error(env, "MDM_MPI", ("mdm native: mpi: " + why).c_str());
  return undefined(env);
}

// A Float32Array, Float64Array or Uint8Array argument: its data, length and MPI type.
bool mpiBuffer(Args& a, size_t i, void*& data, size_t& length, mdm::mpi::Dtype& type) {
  bool is = false;
  if (i < a.argc) napi_is_typedarray(a.env, a.argv[i], &is);
  napi_typedarray_type t = napi_int8_array;
  if (is) napi_get_typedarray_info(a.env, a.argv[i], &t, &length, &data, nullptr, nullptr);
  if (t == napi_float32_array) type = mdm::mpi::Dtype::Float32;
  else if (t == napi_float64_array) type = mdm::mpi::Dtype::Float64;
  else if (t == napi_uint8_array) type = mdm::mpi::Dtype::Byte;
  else {
    a.fail("argument " + std::to_string(i) + " must be a Float32Array, Float64Array or Uint8Array");
    return false;
  }
  return true;
}

// mpiInit(): { rank, size, library }; throws when Open MPI cannot be loaded or initialised.
napi_value MpiInit(napi_env env, napi_callback_info) {
  int rank = 0, size = 0;
  std::string library, why;
  if (!mdm::mpi::init(rank, size, library, why)) return throwMpi(env, why);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, rank, &v);
  napi_set_named_property(env, out, "rank", v);
  napi_create_int32(env, size, &v);
  napi_set_named_property(env, out, "size", v);
  napi_create_string_utf8(env, library.c_str(), library.size(), &v);
  napi_set_named_property(env, out, "library", v);
  return out;
}

// mpiAllreduce(buffer, op ('sum' | 'mean' | 'min' | 'max'), timeoutSeconds): in place over every rank.
napi_value MpiAllreduce(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* data = nullptr;
  size_t length = 0;
  mdm::mpi::Dtype type;
  if (!mpiBuffer(a, 0, data, length, type)) return undefined(env);
  char op[8] = {0};
  size_t opLength = 0;
  if (a.argc < 2 || napi_get_value_string_utf8(env, a.argv[1], op, sizeof op, &opLength) != napi_ok)
    a.fail("argument 1 must be 'sum', 'mean', 'min' or 'max'");
  std::string name(op, opLength);
  mdm::mpi::Op o = name == "min"    ? mdm::mpi::Op::Min
                   : name == "max"  ? mdm::mpi::Op::Max
                   : name == "mean" ? mdm::mpi::Op::Mean
                                    : mdm::mpi::Op::Sum;
  if (!a.failed && name != "sum" && name != "min" && name != "max" && name != "mean")
    a.fail("argument 1 must be 'sum', 'mean', 'min' or 'max'");
  if (!a.failed && o == mdm::mpi::Op::Mean && type == mdm::mpi::Dtype::Byte) a.fail("'mean' needs a float buffer");
  double timeout = a.num(2);
  if (a.failed) return undefined(env);
  std::string why;
  if (!mdm::mpi::allreduce(data, length, type, o, timeout, why)) return throwMpi(env, why);
  return undefined(env);
}

// mpiBroadcast(buffer, root, timeoutSeconds): root's values into every rank's buffer.
napi_value MpiBroadcast(napi_env env, napi_callback_info info) {
  Args a(env, info);
  void* data = nullptr;
  size_t length = 0;
  mdm::mpi::Dtype type;
  if (!mpiBuffer(a, 0, data, length, type)) return undefined(env);
  int root = a.integer(1);
  double timeout = a.num(2);
  if (a.failed) return undefined(env);
  std::string why;
  if (!mdm::mpi::broadcast(data, length, type, root, timeout, why)) return throwMpi(env, why);
  return undefined(env);
}

// mpiAbort(code): stops every rank (through the launcher); does not return.
napi_value MpiAbort(napi_env env, napi_callback_info info) {
  Args a(env, info);
  mdm::mpi::abort(a.failed ? 1 : a.integer(0));
  return undefined(env);
}

napi_value MpiFinalize(napi_env env, napi_callback_info) {
  std::string why;
  if (!mdm::mpi::finalize(why)) return throwMpi(env, why);
  return undefined(env);
}

napi_value Init(napi_env env, napi_value exports) {
  // OpenBLAS is the default provider when it is installed.
  if (mdm::loadOpenBlas()) mdm::setProvider(mdm::GemmProvider::OpenBlas);
  // oneDNN's convolutions when it is installed.
  if (mdm::loadDnnl()) mdm::dnnlSetThreads(mdm::threads());
  napi_property_descriptor props[] = {
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setProvider", nullptr, SetProvider, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setConvProvider", nullptr, SetConvProvider, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchGemm", nullptr, BatchGemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2d", nullptr, Conv2D, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2DBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2DBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormAct", nullptr, GroupNormAct, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormActGrad", nullptr, GroupNormActGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyRows", nullptr, CopyRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamUpdate", nullptr, AdamUpdate, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"upsample2x", nullptr, Upsample2x, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"upsample2xGrad", nullptr, Upsample2xGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"biasAdd", nullptr, BiasAdd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"biasGrad", nullptr, BiasGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mpiInit", nullptr, MpiInit, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mpiAllreduce", nullptr, MpiAllreduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mpiBroadcast", nullptr, MpiBroadcast, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mpiAbort", nullptr, MpiAbort, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mpiFinalize", nullptr, MpiFinalize, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
