#pragma once

namespace graft::io {

// niftilib and NrrdIO print their own diagnostics straight to stderr. graft reports every failure
// as one graft::Error line instead, so while a third-party reader runs, fd 2 points at /dev/null.
// Scoped and reentrant-safe for one thread; other threads' stderr is muted for that short window.
class StderrSilencer {
 public:
  StderrSilencer();
  ~StderrSilencer();
  StderrSilencer(const StderrSilencer&) = delete;
  StderrSilencer& operator=(const StderrSilencer&) = delete;
};

}  // namespace graft::io
