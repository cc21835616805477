#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace graft::cli {

Progress::Progress(std::string task, int total_steps)
    : task_(std::move(task)),
      total_steps_(total_steps),
      enabled_(isatty(2) != 0),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::step(const std::string& step_name) {
  draw(step_name);
  ++done_steps_;
}

void Progress::draw(const std::string& step_name) {
  if (!enabled_) return;
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (elapsed_s < 1.0) return;
  constexpr int kWidth = 30;
  const int filled = total_steps_ > 0 ? kWidth * done_steps_ / total_steps_ : 0;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%s [%s] %d/%d %-24s %5.1fs", task_.c_str(), bar.c_str(), done_steps_,
               total_steps_, step_name.c_str(), elapsed_s);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (!drawn_) return;
  done_steps_ = total_steps_;
  draw("done");
  std::fprintf(stderr, "\n");
  drawn_ = false;
  enabled_ = false;
}

}  // namespace graft::cli
