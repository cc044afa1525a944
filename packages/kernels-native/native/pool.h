// The addon's worker threads: kept alive between calls, because starting and joining a thread
// cost ~45 µs each on the machines we measured (2 threads per call: 89 µs), about what a whole
// GroupNorm of a 32 px sampling layer computes in.
#pragma once
#include <algorithm>
#include <functional>

namespace mdm {

// Runs f(t) for every t in [0, n), concurrently: t = 0 on the calling thread and the others on
// persistent workers, which sleep between calls. Returns when all have finished. A call made
// while another is running (from a second JavaScript thread, or from inside f) starts threads
// of its own instead of waiting, so it can neither deadlock nor serialise unrelated callers.
void parallelFor(int n, const std::function<void(int)>& f);

// Splits [0, total) into up to T equal ranges and runs f(begin, end, t) for each with parallelFor
// (t < T indexes any per-thread scratch); on the calling thread alone when T ≤ 1.
template <class F>
void parallelRanges(long total, int T, F f) {
  if (T <= 1) return f(0L, total, 0);
  const long step = (total + T - 1) / T;
  parallelFor(int((total + step - 1) / step), [&](int t) { f(t * step, std::min(total, (t + 1) * step), t); });
}

}  // namespace mdm
