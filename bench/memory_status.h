#pragma once

// Memory figures from the kernel's own account (/proc/self/status), in MB, for the benchmarks.
#include <fstream>
#include <string>

namespace graft::bench {

inline double status_mb(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return 0.0;
}

inline double peak_rss_mb() { return status_mb("VmHWM:"); }
inline double current_rss_mb() { return status_mb("VmRSS:"); }

// Starts the peak (VmHWM) afresh from the current RSS (Linux 4.0+), so one phase of a benchmark
// is measured without the phases before it. False when the kernel does not allow it.
inline bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  return static_cast<bool>(clear.flush());
}

}  // namespace graft::bench
