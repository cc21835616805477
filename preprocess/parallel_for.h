#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace graft::preprocess {

// Number of worker threads for preprocessing: GRAFT_THREADS when set, else the hardware's.
int preprocess_threads();

// Runs fn(begin, end) over [0, count) split into contiguous chunks, one per thread. Chunks are
// contiguous so each thread streams through memory.
template <typename Fn>
void parallel_for(std::int64_t count, Fn&& fn, std::int64_t min_chunk = 1) {
  const std::int64_t threads = std::max<std::int64_t>(
      1, std::min<std::int64_t>(preprocess_threads(), count / std::max<std::int64_t>(1, min_chunk)));
  if (threads <= 1) {
    fn(std::int64_t{0}, count);
    return;
  }
  std::vector<std::thread> workers;
  const std::int64_t chunk = (count + threads - 1) / threads;
  for (std::int64_t t = 0; t < threads; ++t) {
    const std::int64_t begin = t * chunk;
    const std::int64_t end = std::min(count, begin + chunk);
    if (begin >= end) break;
    workers.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  for (auto& worker : workers) worker.join();
}

}  // namespace graft::preprocess
