// Data-parallel collectives over Open MPI, loaded at run time (dlopen of libmpi.so.40), so the
// addon builds and runs where MPI is not installed. Only what data-parallel training needs:
// init, rank/size, all-reduce and broadcast (non-blocking calls polled against a timeout, so a
// rank that stops answering is reported instead of hanging forever), abort and finalize.
#pragma once
#include <cstddef>
#include <string>

namespace mdm::mpi {

enum class Dtype { Float32, Float64, Byte };
enum class Op { Sum, Min, Max, Mean };  // Mean: the sum, then × 1/size (float types)

// Loads the library (once) and initialises MPI (once). False with `why` set when it cannot.
bool init(int& rank, int& size, std::string& library, std::string& why);
// In place over `count` elements; timeoutSeconds <= 0 waits forever. False with `why` on failure.
bool allreduce(void* buf, size_t count, Dtype type, Op op, double timeoutSeconds, std::string& why);
bool broadcast(void* buf, size_t count, Dtype type, int root, double timeoutSeconds, std::string& why);
// MPI_Abort on the world communicator: the launcher stops every rank.
void abort(int code);
// MPI_Finalize, once, after the last collective. False with `why` when it failed.
bool finalize(std::string& why);

}  // namespace mdm::mpi
