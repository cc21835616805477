#pragma once

// The one place graft's libraries below LibTorch start threads: preprocessing's contiguous
// chunks and DICOM's per-file work share the thread count and the exception rule.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace graft::io {

// Worker threads: GRAFT_THREADS when set to a positive number, else the hardware's.
int worker_threads();

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
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  for (std::int64_t t = 0; t < threads; ++t) {
    const std::int64_t begin = t * chunk;
    const std::int64_t end = std::min(count, begin + chunk);
    if (begin >= end) break;
    workers.emplace_back([&fn, &failures, t, begin, end] {
      try {
        fn(begin, end);
      } catch (...) {
        failures[static_cast<std::size_t>(t)] = std::current_exception();
      }
    });
  }
  for (auto& worker : workers) worker.join();
  for (auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
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
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < thread_count; ++t) threads.emplace_back(run);
  run();
  for (auto& thread : threads) thread.join();
  for (auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

}  // namespace graft::io
