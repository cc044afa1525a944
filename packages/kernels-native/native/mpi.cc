// Open MPI through dlopen: the handles MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM … are, in Open MPI's
// ABI, the addresses of exported globals (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum),
// so dlsym gives them without mpi.h. MPICH's ABI (integer handles) is not supported.
#include "mpi.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

namespace mdm::mpi {
namespace {

using Handle = void*;  // MPI_Comm, MPI_Datatype, MPI_Op, MPI_Request in Open MPI: pointers
void* const kInPlace = reinterpret_cast<void*>(1);  // Open MPI's MPI_IN_PLACE
constexpr int kThreadFunneled = 1;                  // MPI_THREAD_FUNNELED: only the main thread calls MPI

struct Api {
  int (*initialized)(int*);
  int (*finalized)(int*);
  int (*initThread)(int*, char***, int, int*);
  int (*commRank)(Handle, int*);
  int (*commSize)(Handle, int*);
  int (*iallreduce)(const void*, void*, int, Handle, Handle, Handle, Handle*);
  int (*ibcast)(void*, int, Handle, int, Handle, Handle*);
  int (*test)(Handle*, int*, void*);
  int (*abort)(Handle, int);
  int (*finalize)();
  int (*errorString)(int, char*, int*);
  Handle world, float32, float64, byte, sum, min, max;
};

Api api{};
bool loaded = false;
bool initialised = false;
std::string libraryName;

template <typename F>
bool symbol(void* h, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(h, name));
  return out != nullptr;
}

bool load(std::string& why) {
  if (loaded) return true;
  const char* override = std::getenv("MDM_MPI_LIBRARY");
  const char* names[] = {override ? override : "libmpi.so.40", "libmpi.so"};
  for (const char* name : names) {
    // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols from the global scope.
    void* h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
      why = dlerror();
      if (override) break;
      continue;
    }
    bool ok = symbol(h, "MPI_Initialized", api.initialized) && symbol(h, "MPI_Finalized", api.finalized) &&
              symbol(h, "MPI_Init_thread", api.initThread) && symbol(h, "MPI_Comm_rank", api.commRank) &&
              symbol(h, "MPI_Comm_size", api.commSize) && symbol(h, "MPI_Iallreduce", api.iallreduce) &&
              symbol(h, "MPI_Ibcast", api.ibcast) && symbol(h, "MPI_Test", api.test) &&
              symbol(h, "MPI_Abort", api.abort) && symbol(h, "MPI_Finalize", api.finalize) &&
              symbol(h, "MPI_Error_string", api.errorString);
    // The predefined handles are the addresses of these globals (Open MPI only).
    api.world = dlsym(h, "ompi_mpi_comm_world");
    api.float32 = dlsym(h, "ompi_mpi_float");
    api.float64 = dlsym(h, "ompi_mpi_double");
    api.byte = dlsym(h, "ompi_mpi_byte");
    api.sum = dlsym(h, "ompi_mpi_op_sum");
    api.min = dlsym(h, "ompi_mpi_op_min");
    api.max = dlsym(h, "ompi_mpi_op_max");
    if (!ok) {
      why = std::string(name) + " lacks MPI-3 functions (MPI_Iallreduce, MPI_Ibcast): Open MPI 3 or later is needed";
    } else if (!api.world || !api.float32 || !api.float64 || !api.byte || !api.sum || !api.min || !api.max) {
      why = std::string(name) + " is not Open MPI (its predefined handles are missing); only Open MPI is supported";
    } else {
      loaded = true;
      libraryName = name;
      return true;
    }
    dlclose(h);
    if (override) break;
  }
  if (why.empty()) why = "libmpi.so.40 not found";
  return false;
}

std::string errorText(int code) {
  char text[512];
  int length = 0;
  if (api.errorString && api.errorString(code, text, &length) == 0) return std::string(text, size_t(length));
  return "MPI error " + std::to_string(code);
}

Handle typeOf(Dtype t) { return t == Dtype::Float32 ? api.float32 : t == Dtype::Float64 ? api.float64 : api.byte; }
Handle opOf(Op o) { return o == Op::Sum || o == Op::Mean ? api.sum : o == Op::Min ? api.min : api.max; }
size_t sizeOf(Dtype t) { return t == Dtype::Float32 ? 4 : t == Dtype::Float64 ? 8 : 1; }

// Polls a request until it completes or the deadline passes. Open MPI moves a large message in
// fragments only while it is polled, so the first second spins (yielding the core between polls);
// after that (a rank waiting for rank 0 to draw samples, say) it sleeps 100 µs between polls so
// a waiting rank leaves the cores to the work it waits for.
bool wait(Handle& request, double timeoutSeconds, const char* what, std::string& why) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (;;) {
    int done = 0;
    int rc = api.test(&request, &done, nullptr);  // nullptr: MPI_STATUS_IGNORE in Open MPI
    if (rc != 0) {
      why = std::string(what) + ": " + errorText(rc);
      return false;
    }
    if (done) return true;
    double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (timeoutSeconds > 0 && waited > timeoutSeconds) {
      why = std::string(what) + ": no answer from every rank within " + std::to_string(int(timeoutSeconds)) +
            " s (a rank stopped or hangs)";
      return false;
    }
    if (waited < 1.0) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

}  // namespace

bool init(int& rank, int& size, std::string& library, std::string& why) {
  if (!load(why)) return false;
  if (!initialised) {
    int already = 0;
    api.initialized(&already);
    if (!already) {
      int provided = 0;
      int rc = api.initThread(nullptr, nullptr, kThreadFunneled, &provided);
      if (rc != 0) {
        why = "MPI_Init_thread: " + errorText(rc);
        return false;
      }
    }
    initialised = true;
  }
  api.commRank(api.world, &rank);
  api.commSize(api.world, &size);
  library = libraryName;
  return true;
}

bool allreduce(void* buf, size_t count, Dtype type, Op op, double timeoutSeconds, std::string& why) {
  if (!initialised) {
    why = "allreduce before init";
    return false;
  }
  // MPI counts are ints: reduce in pieces of at most 2^30 elements.
  char* bytes = static_cast<char*>(buf);
  for (size_t done = 0; done < count;) {
    size_t n = std::min(count - done, size_t(1) << 30);
    Handle request = nullptr;
    int rc = api.iallreduce(kInPlace, bytes + done * sizeOf(type), int(n), typeOf(type), opOf(op), api.world, &request);
    if (rc != 0) {
      why = "MPI_Iallreduce: " + errorText(rc);
      return false;
    }
    if (!wait(request, timeoutSeconds, "all-reduce", why)) return false;
    done += n;
  }
  if (op == Op::Mean) {
    int size = 1;
    api.commSize(api.world, &size);
    if (type == Dtype::Float32) {
      float* f = static_cast<float*>(buf);
      const float scale = 1.0f / float(size);
      for (size_t i = 0; i < count; i++) f[i] *= scale;
    } else if (type == Dtype::Float64) {
      double* d = static_cast<double*>(buf);
      const double scale = 1.0 / double(size);
      for (size_t i = 0; i < count; i++) d[i] *= scale;
    }
  }
  return true;
}

bool broadcast(void* buf, size_t count, Dtype type, int root, double timeoutSeconds, std::string& why) {
  if (!initialised) {
    why = "broadcast before init";
    return false;
  }
  char* bytes = static_cast<char*>(buf);
  for (size_t done = 0; done < count;) {
    size_t n = std::min(count - done, size_t(1) << 30);
    Handle request = nullptr;
    int rc = api.ibcast(bytes + done * sizeOf(type), int(n), typeOf(type), root, api.world, &request);
    if (rc != 0) {
      why = "MPI_Ibcast: " + errorText(rc);
      return false;
    }
    if (!wait(request, timeoutSeconds, "broadcast", why)) return false;
    done += n;
  }
  return true;
}

void abort(int code) {
  if (initialised) api.abort(api.world, code);
  std::_Exit(code);
}

bool finalize(std::string& why) {
  if (!initialised) return true;
  int done = 0;
  api.finalized(&done);
  if (done) return true;
  int rc = api.finalize();
  if (rc != 0) {
    why = "MPI_Finalize: " + errorText(rc);
    return false;
  }
  return true;
}

}  // namespace mdm::mpi
