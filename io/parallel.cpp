#include "io/parallel.h"

#include <cstdlib>

namespace graft::io {

int worker_threads() {
  if (const char* env = std::getenv("GRAFT_THREADS")) {
    const int requested = std::atoi(env);
    if (requested > 0) return requested;
  }
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

WorkerGroup::WorkerGroup(int count, const std::function<void(int)>& worker)
    : failures_(static_cast<std::size_t>(std::max(0, count))) {
  try {
    for (int index = 0; index < count; ++index) {
      threads_.emplace_back([this, worker, index] {
        try {
          worker(index);
        } catch (...) {
          failures_[static_cast<std::size_t>(index)] = std::current_exception();
        }
      });
    }
  } catch (...) {
    wait();  // the system refused a thread: the started ones finish before the error leaves
    throw;
  }
}

WorkerGroup::~WorkerGroup() { wait(); }

void WorkerGroup::wait() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void WorkerGroup::join() {
  wait();
  for (auto& failure : failures_) {
    if (failure) std::rethrow_exception(failure);
  }
}

}  // namespace graft::io
