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

}  // namespace graft::io
