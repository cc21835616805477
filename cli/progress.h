#pragma once

#include <chrono>
#include <string>

namespace graft::cli {

// A one-line progress bar on stderr. It appears only when stderr is a terminal and the work has
// already taken more than a second, so quick commands and piped output stay clean.
class Progress {
 public:
  Progress(std::string task, int total_steps);
  ~Progress();
  // Marks the start of step `step_name`; steps completed so far fill the bar.
  void step(const std::string& step_name);
  void finish();

 private:
  void draw(const std::string& step_name);

  std::string task_;
  int total_steps_;
  int done_steps_ = 0;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace graft::cli
