#include "io/stderr_silencer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace graft::io {
namespace {
std::mutex silencer_mutex;
int silencer_depth = 0;
int silencer_saved_fd = -1;
}  // namespace

StderrSilencer::StderrSilencer() {
  std::lock_guard<std::mutex> lock(silencer_mutex);
  if (silencer_depth++ > 0) return;
  std::fflush(stderr);
  silencer_saved_fd = dup(2);
  const int null_fd = open("/dev/null", O_WRONLY);
  if (null_fd >= 0) {
    dup2(null_fd, 2);
    close(null_fd);
  }
}

StderrSilencer::~StderrSilencer() {
  std::lock_guard<std::mutex> lock(silencer_mutex);
  if (--silencer_depth > 0) return;
  std::fflush(stderr);
  if (silencer_saved_fd >= 0) {
    dup2(silencer_saved_fd, 2);
    close(silencer_saved_fd);
    silencer_saved_fd = -1;
  }
}

}  // namespace graft::io
