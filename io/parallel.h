#pragma once

// The one place graft starts threads: preprocessing's contiguous chunks, DICOM's per-file work,
// the training loader's prefetching workers and batch prediction's workers all run on a
// WorkerGroup, with one thread count and one exception rule.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

namespace graft::io {

// Worker threads: GRAFT_THREADS when set to a positive number, else the hardware's.
int worker_threads();

// `count` threads, each running worker(index), started together. join() waits for all and
// rethrows what the lowest-indexed failing worker threw; the destructor joins without throwing.
class WorkerGroup {
 public:
  WorkerGroup(int count, const std::function<void(int)>& worker);
  ~WorkerGroup();
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;
  void join();

 private:
  void wait();
  std::vector<std::thread> threads_;
  std::vector<std::exception_ptr> failures_;
};

// Runs fn(begin, end) over [0, count) split into contiguous chunks, one per thread (at least
// min_chunk items each), so each thread streams through memory. What a chunk throws is rethrown
// here, the lowest chunk's first, after every thread has finished.
template <typename Fn>
void parallel_for(std::int64_t count, Fn&& fn, std::int64_t min_chunk = 1) {
  const std::int64_t threads = std::max<std::int64_t>(
      1, std::min<std::int64_t>(worker_threads(), count / std::max<std::int64_t>(1, min_chunk)));
  if (threads <= 1) {
    if (count > 0) fn(std::int64_t{0}, count);
    return;
  }
  const std::int64_t chunk = (count + threads - 1) / threads;
  WorkerGroup(static_cast<int>((count + chunk - 1) / chunk), [&](int t) {
    const std::int64_t begin = t * chunk;
    fn(begin, std::min(count, begin + chunk));
  }).join();
}

// Runs work(i) for each i in [0, count), handing the next index to whichever thread is free, for
// items of uneven cost (files). What work throws is rethrown here, the lowest index's first,
// after every thread has finished.
template <typename Work>
void parallel_for_each(std::size_t count, Work&& work) {
  const std::size_t thread_count =
      std::min<std::size_t>(count, static_cast<std::size_t>(worker_threads()));
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> failures(count);
  auto run = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      try {
        work(i);
      } catch (...) {
        failures[i] = std::current_exception();
      }
    }
  };
  {
    WorkerGroup helpers(static_cast<int>(thread_count) - 1, [&](int) { run(); });
    run();
  }
  for (auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

}  // namespace graft::io
