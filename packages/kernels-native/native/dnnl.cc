#include "dnnl.h"

#include <dlfcn.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace mdm {
namespace {

// ---- The part of oneDNN 2.x's C API used here (dnnl.h / dnnl_types.h of 2.6; the 2.x series
// keeps these values and signatures, 3.x changed them, so only libdnnl.so.2 is loaded). Handles
// are opaque pointers; descriptors are filled by the library into buffers larger than its
// structs (696 and 5,976 bytes in 2.6).
using Status = int;
using Handle = void*;
using Dims = int64_t[12];
struct ExecArg {
  int arg;
  Handle memory;
};
struct Version {
  int major, minor, patch;
};
struct alignas(64) MemoryDesc {
  unsigned char bytes[2048];
};
struct alignas(64) ConvDesc {
  unsigned char bytes[16384];
};

// dnnl_f32, dnnl_format_tag_any, dnnl_nhwc, dnnl_hwio
constexpr int kF32 = 3, kTagAny = 1, kTagNhwc = 20, kTagHwio = 30;
constexpr int kForwardTraining = 64, kBackwardData = 160, kBackwardWeights = 192, kConvolutionDirect = 1;
constexpr int kEngineCpu = 1, kStreamDefault = 1;
constexpr int kQueryImplInfo = 8, kQueryWeightsMd = 131, kQueryDiffWeightsMd = 132;
constexpr int kArgSrc = 1, kArgDst = 17, kArgWeights = 33, kArgDiffSrc = 129, kArgDiffDst = 145, kArgDiffWeights = 161;
constexpr int kArgFrom = kArgSrc, kArgTo = kArgDst;

struct Api {
  const Version* (*version)();
  Status (*engineCreate)(Handle*, int, size_t);
  Status (*streamCreate)(Handle*, Handle, unsigned);
  Status (*streamWait)(Handle);
  Status (*mdInitByTag)(MemoryDesc*, int, const Dims, int, int);
  int (*mdEqual)(const MemoryDesc*, const MemoryDesc*);
  size_t (*mdGetSize)(const MemoryDesc*);
  Status (*convForward)(ConvDesc*, int, int, const MemoryDesc*, const MemoryDesc*, const MemoryDesc*, const MemoryDesc*,
                        const Dims, const Dims, const Dims, const Dims);
  Status (*convBackwardData)(ConvDesc*, int, const MemoryDesc*, const MemoryDesc*, const MemoryDesc*, const Dims,
                             const Dims, const Dims, const Dims);
  Status (*convBackwardWeights)(ConvDesc*, int, const MemoryDesc*, const MemoryDesc*, const MemoryDesc*,
                                const MemoryDesc*, const Dims, const Dims, const Dims, const Dims);
  Status (*pdIteratorCreate)(Handle*, const void*, Handle, Handle, Handle);
  Status (*pdIteratorNext)(Handle);
  Handle (*pdIteratorFetch)(Handle);
  Status (*pdIteratorDestroy)(Handle);
  Status (*pdDestroy)(Handle);
  const MemoryDesc* (*pdQueryMd)(Handle, int, int);
  Status (*pdQuery)(Handle, int, int, void*);
  Status (*reorderPdCreate)(Handle*, const MemoryDesc*, Handle, const MemoryDesc*, Handle, Handle);
  Status (*primitiveCreate)(Handle*, Handle);
  Status (*primitiveDestroy)(Handle);
  Status (*execute)(Handle, Handle, int, const ExecArg*);
  Status (*memoryCreate)(Handle*, const MemoryDesc*, Handle, void*);
  Status (*memorySetDataHandle)(Handle, void*);
  Status (*memoryDestroy)(Handle);
  void (*ompSetNumThreads)(int);
};

Api api;
bool loaded = false, enabled = false;
char versionText[32] = "";
Handle engine = nullptr, stream = nullptr;
std::mutex lock;
long calls = 0, declined = 0;
// Plans made, by "direction: implementation" (or "direction: declined (offered …)"): what ran.
std::map<std::string, long> implUse;
const char* const kDirectionName[] = {"forward", "backward data", "backward weights"};

template <class F>
bool resolve(void* lib, F& f, const char* name) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

// Everything one convolution of one geometry and direction needs, made once and reused: the
// primitive, the memories that wrap the caller's NHWC/HWIO buffers, and, when oneDNN wants the
// weights in its own blocked layout, that buffer and the reorder to or from HWIO.
struct Plan {
  bool ok = false;
  Handle pd = nullptr, prim = nullptr;
  Handle hint = nullptr;  // a backward primitive's forward descriptor, which oneDNN may read for as long as it lives
  Handle reorderPd = nullptr, reorder = nullptr;
  Handle memIn = nullptr, memOut = nullptr, memUserW = nullptr, memW = nullptr;
  float* weights = nullptr;  // the blocked weights (null when HWIO is used directly)

  ~Plan() {
    for (Handle m : {memIn, memOut, memUserW, memW})
      if (m) api.memoryDestroy(m);
    for (Handle p : {prim, reorder})
      if (p) api.primitiveDestroy(p);
    for (Handle p : {pd, hint, reorderPd})
      if (p) api.pdDestroy(p);
    std::free(weights);
  }
};

enum Direction { Forward = 0, BackwardData = 1, BackwardWeights = 2 };
using Key = std::array<int, 16>;
std::map<Key, std::unique_ptr<Plan>> plans;

struct Descs {
  MemoryDesc src, dst, userW, anyW;
  Dims strides, dilates, padL, padR;
};

bool describe(const ConvGeometry& g, Descs& d) {
  Dims src = {g.batch, g.inC, g.inH, g.inW}, dst = {g.batch, g.outC, g.outH, g.outW}, w = {g.outC, g.inC, g.kh, g.kw};
  if (api.mdInitByTag(&d.src, 4, src, kF32, kTagNhwc) || api.mdInitByTag(&d.dst, 4, dst, kF32, kTagNhwc) ||
      api.mdInitByTag(&d.userW, 4, w, kF32, kTagHwio) || api.mdInitByTag(&d.anyW, 4, w, kF32, kTagAny))
    return false;
  // oneDNN counts dilation from 0; the right/bottom padding follows from the output size.
  int64_t values[4][2] = {{g.strideH, g.strideW},
                          {g.dilationH - 1, g.dilationW - 1},
                          {g.padTop, g.padLeft},
                          {int64_t(g.outH - 1) * g.strideH + int64_t(g.kh - 1) * g.dilationH + 1 - g.inH - g.padTop,
                           int64_t(g.outW - 1) * g.strideW + int64_t(g.kw - 1) * g.dilationW + 1 - g.inW - g.padLeft}};
  int64_t* targets[4] = {d.strides, d.dilates, d.padL, d.padR};
  for (int i = 0; i < 4; i++) targets[i][0] = values[i][0], targets[i][1] = values[i][1];
  return true;
}

// oneDNN's direct JIT convolutions and, on AVX-512, its brgemm-based ones (`brgconv*`, what 2.6
// prefers there). Not its reference ones (slower than the addon's), and not its GEMM-based ones
// (`x64:gemm:jit`): they run the JIT sgemm of 2.6, which corrupts the heap when a signal arrives
// mid-call (SIGPROF of `node --cpu-prof`: "corrupted size vs. prev_size" in 4 runs of 4 of ~1,000
// calls each). Under the same signals, checked against the addon's own kernels, the direct ones
// ran 66,000 calls and brgconv 33,000 without a fault or a wrong value (docs/performance.md).
bool acceptable(Handle pd) {
  const char* impl = nullptr;
  if (api.pdQuery(pd, kQueryImplInfo, 0, &impl) || !impl) return false;
  if (std::strncmp(impl, "brgconv", 7) == 0) return true;
  return std::strncmp(impl, "jit", 3) == 0 && !std::strstr(impl, "gemm");
}

std::string implName(Handle pd) {
  const char* impl = nullptr;
  return api.pdQuery(pd, kQueryImplInfo, 0, &impl) || !impl ? "?" : impl;
}

// The first implementation oneDNN offers for `desc` that `acceptable` takes: its preferred one
// is not always (on AVX-512 CPUs 2.6 prefers brgemm-based kernels, not named jit:*, for some
// directions), and the list goes on to the direct JIT ones. Null when none is acceptable;
// `offered` lists the names passed over.
Handle acceptablePd(const void* desc, Handle hint, std::string& offered) {
  Handle it = nullptr, found = nullptr;
  if (api.pdIteratorCreate(&it, desc, nullptr, engine, hint)) return nullptr;
  do {
    Handle pd = api.pdIteratorFetch(it);
    if (!pd) break;
    if (acceptable(pd)) {
      found = pd;
      break;
    }
    offered += (offered.empty() ? "" : ", ") + implName(pd);
    api.pdDestroy(pd);
  } while (api.pdIteratorNext(it) == 0);
  api.pdIteratorDestroy(it);
  return found;
}

std::string declinedBecause(const std::string& offered) {
  return "declined (offered " + (offered.empty() ? std::string("nothing") : offered) + ")";
}

Handle forwardPd(Descs& d, std::string& offered) {
  auto cd = std::make_unique<ConvDesc>();
  if (api.convForward(cd.get(), kForwardTraining, kConvolutionDirect, &d.src, &d.anyW, nullptr, &d.dst, d.strides,
                      d.dilates, d.padL, d.padR))
    return nullptr;
  return acceptablePd(cd.get(), nullptr, offered);
}

// Records which implementation a new plan uses, or why there is none.
void record(Direction dir, const std::string& what) { implUse[std::string(kDirectionName[dir]) + ": " + what]++; }

std::unique_ptr<Plan> makePlan(Direction dir, const ConvGeometry& g) {
  auto plan = std::make_unique<Plan>();
  Descs d;
  if (!describe(g, d)) return plan;
  std::string offered;
  Handle fwd = forwardPd(d, offered);
  if (!fwd) {
    // A backward direction needs a forward descriptor as its hint: none acceptable declines it too.
    record(dir, dir == Forward ? declinedBecause(offered) : "declined (no acceptable forward to pair with)");
    return plan;
  }
  if (dir == Forward) {
    plan->pd = fwd;
  } else {
    offered.clear();
    auto cd = std::make_unique<ConvDesc>();
    Status s = dir == BackwardData ? api.convBackwardData(cd.get(), kConvolutionDirect, &d.src, &d.anyW, &d.dst,
                                                          d.strides, d.dilates, d.padL, d.padR)
                                   : api.convBackwardWeights(cd.get(), kConvolutionDirect, &d.src, &d.anyW, nullptr,
                                                             &d.dst, d.strides, d.dilates, d.padL, d.padR);
    plan->hint = fwd;
    if (!s) plan->pd = acceptablePd(cd.get(), fwd, offered);
  }
  record(dir, plan->pd ? implName(plan->pd) : declinedBecause(offered));
  if (!plan->pd) return plan;
  const MemoryDesc* w = api.pdQueryMd(plan->pd, dir == BackwardWeights ? kQueryDiffWeightsMd : kQueryWeightsMd, 0);
  const MemoryDesc* in = dir == BackwardData ? &d.dst : &d.src;
  const MemoryDesc* out = dir == Forward ? &d.dst : dir == BackwardData ? &d.src : nullptr;
  if (!w || api.primitiveCreate(&plan->prim, plan->pd) || api.memoryCreate(&plan->memIn, in, engine, nullptr) ||
      api.memoryCreate(&plan->memUserW, &d.userW, engine, nullptr))
    return plan;
  // Backward weights reads two activations (x and dy): memOut holds dy there.
  if (api.memoryCreate(&plan->memOut, out ? out : &d.dst, engine, nullptr)) return plan;
  if (!api.mdEqual(w, &d.userW)) {
    size_t bytes = (api.mdGetSize(w) + 63) / 64 * 64;
    plan->weights = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!plan->weights || api.memoryCreate(&plan->memW, w, engine, plan->weights)) return plan;
    Status s = dir == BackwardWeights ? api.reorderPdCreate(&plan->reorderPd, w, engine, &d.userW, engine, nullptr)
                                      : api.reorderPdCreate(&plan->reorderPd, &d.userW, engine, w, engine, nullptr);
    if (s || api.primitiveCreate(&plan->reorder, plan->reorderPd)) return plan;
  }
  plan->ok = true;
  return plan;
}

Plan* planFor(Direction dir, const ConvGeometry& g) {
  Key key = {dir, g.batch, g.inH, g.inW, g.inC, g.kh, g.kw, g.outC, g.strideH, g.strideW, g.dilationH, g.dilationW,
             g.padTop, g.padLeft, g.outH, g.outW};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second.get();
  // A model has a few dozen geometries; a long-running process that sees many (varying batch
  // sizes, say) starts over rather than growing without bound.
  if (plans.size() >= 512) plans.clear();
  return plans.emplace(key, makePlan(dir, g)).first->second.get();
}

bool run(Handle prim, std::initializer_list<ExecArg> args) {
  return api.execute(prim, stream, int(args.size()), args.begin()) == 0;
}

// Runs direction `dir` on the caller's buffers: a and b are the two inputs, out the output
// (x, w → y; dy, w → dx; x, dy → dw).
bool convolve(Direction dir, const ConvGeometry& g, const float* a, const float* b, float* out) {
  if (!enabled) return false;
  std::lock_guard<std::mutex> guard(lock);
  Plan* p = planFor(dir, g);
  if (!p->ok) {
    declined++;
    return false;
  }
  auto set = [](Handle m, const float* data) { return api.memorySetDataHandle(m, const_cast<float*>(data)) == 0; };
  Handle weights = p->memW ? p->memW : p->memUserW;
  bool ok = set(p->memIn, a);
  if (dir == BackwardWeights) {
    ok = ok && set(p->memOut, b) && set(p->memUserW, out) &&
         run(p->prim, {{kArgSrc, p->memIn}, {kArgDiffDst, p->memOut}, {kArgDiffWeights, weights}});
    if (ok && p->memW) ok = run(p->reorder, {{kArgFrom, p->memW}, {kArgTo, p->memUserW}});
  } else {
    ok = ok && set(p->memUserW, b) && set(p->memOut, out);
    if (ok && p->memW) ok = run(p->reorder, {{kArgFrom, p->memUserW}, {kArgTo, p->memW}});
    if (dir == Forward) ok = ok && run(p->prim, {{kArgSrc, p->memIn}, {kArgWeights, weights}, {kArgDst, p->memOut}});
    else ok = ok && run(p->prim, {{kArgDiffDst, p->memIn}, {kArgWeights, weights}, {kArgDiffSrc, p->memOut}});
  }
  ok = api.streamWait(stream) == 0 && ok;
  ok ? calls++ : declined++;
  return ok;
}

}  // namespace

bool loadDnnl() {
  if (loaded) return true;
  // oneDNN's OpenMP threads would otherwise spin between calls and take the cores from
  // OpenBLAS's and the addon's own threads; libgomp reads this when it is first loaded.
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  void* lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return false;
  bool ok = resolve(lib, api.version, "dnnl_version") && resolve(lib, api.engineCreate, "dnnl_engine_create") &&
            resolve(lib, api.streamCreate, "dnnl_stream_create") && resolve(lib, api.streamWait, "dnnl_stream_wait") &&
            resolve(lib, api.mdInitByTag, "dnnl_memory_desc_init_by_tag") &&
            resolve(lib, api.mdEqual, "dnnl_memory_desc_equal") &&
            resolve(lib, api.mdGetSize, "dnnl_memory_desc_get_size") &&
            resolve(lib, api.convForward, "dnnl_dilated_convolution_forward_desc_init") &&
            resolve(lib, api.convBackwardData, "dnnl_dilated_convolution_backward_data_desc_init") &&
            resolve(lib, api.convBackwardWeights, "dnnl_dilated_convolution_backward_weights_desc_init") &&
            resolve(lib, api.pdIteratorCreate, "dnnl_primitive_desc_iterator_create") &&
            resolve(lib, api.pdIteratorNext, "dnnl_primitive_desc_iterator_next") &&
            resolve(lib, api.pdIteratorFetch, "dnnl_primitive_desc_iterator_fetch") &&
            resolve(lib, api.pdIteratorDestroy, "dnnl_primitive_desc_iterator_destroy") &&
            resolve(lib, api.pdDestroy, "dnnl_primitive_desc_destroy") &&
            resolve(lib, api.pdQueryMd, "dnnl_primitive_desc_query_md") &&
            resolve(lib, api.pdQuery, "dnnl_primitive_desc_query") &&
            resolve(lib, api.reorderPdCreate, "dnnl_reorder_primitive_desc_create") &&
            resolve(lib, api.primitiveCreate, "dnnl_primitive_create") &&
            resolve(lib, api.primitiveDestroy, "dnnl_primitive_destroy") &&
            resolve(lib, api.execute, "dnnl_primitive_execute") &&
            resolve(lib, api.memoryCreate, "dnnl_memory_create") &&
            resolve(lib, api.memorySetDataHandle, "dnnl_memory_set_data_handle") &&
            resolve(lib, api.memoryDestroy, "dnnl_memory_destroy");
  resolve(lib, api.ompSetNumThreads, "omp_set_num_threads");  // optional: a TBB or sequential build has none
  const Version* v = ok ? api.version() : nullptr;
  if (!v || v->major != 2 || api.engineCreate(&engine, kEngineCpu, 0) ||
      api.streamCreate(&stream, engine, kStreamDefault)) {
    dlclose(lib);
    return false;
  }
  std::snprintf(versionText, sizeof versionText, "%d.%d.%d", v->major, v->minor, v->patch);
  loaded = enabled = true;
  return true;
}

bool dnnlLoaded() { return loaded; }
bool setDnnlEnabled(bool on) { return enabled = on && loaded; }
bool dnnlEnabled() { return enabled; }
const char* dnnlVersion() { return versionText; }
DnnlCounts dnnlCounts() {
  std::lock_guard<std::mutex> guard(lock);
  return {calls, declined};
}
std::map<std::string, long> dnnlImplementations() {
  std::lock_guard<std::mutex> guard(lock);
  return implUse;
}
void dnnlSetThreads(int n) {
  if (api.ompSetNumThreads) api.ompSetNumThreads(n);
}

bool dnnlConv2d(const float* x, const float* w, float* y, const ConvGeometry& g) {
  return convolve(Forward, g, x, w, y);
}
bool dnnlConv2dBackpropInput(const float* dy, const float* w, float* dx, const ConvGeometry& g) {
  return convolve(BackwardData, g, dy, w, dx);
}
bool dnnlConv2dBackpropFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g) {
  return convolve(BackwardWeights, g, x, dy, dw);
}

}  // namespace mdm
