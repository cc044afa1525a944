// The addon's worker threads: kept alive between calls, because starting and joining a thread
// cost ~45 µs each on the machines we measured (2 threads per call: 89 µs), about what a whole
// GroupNorm of a 32 px sampling layer computes in.
#pragma once
#include <functional>

namespace mdm {

// Runs f(t) for every t in [0, n), concurrently: t = 0 on the calling thread and the others on
// persistent workers, which sleep between calls. Returns when all have finished. A call made
// while another is running (from a second JavaScript thread, or from inside f) starts threads
// of its own instead of waiting, so it can neither deadlock nor serialise unrelated callers.
void parallelFor(int n, const std::function<void(int)>& f);

}  // namespace mdm
