#pragma once

#include <stdexcept>
#include <string>

namespace graft {

// Every failure that reaches a user is a graft::Error whose message names the file and the
// field, so the CLI can print it as one line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Bad command-line usage, as opposed to bad input data: the CLI exits 2 for these.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

// A format whose library this build leaves out (the compute-only build, GRAFT_COMPUTE_ONLY): the
// message names the file, the format and the library.
class FormatUnavailable : public Error {
 public:
  explicit FormatUnavailable(const std::string& message) : Error(message) {}
};

}  // namespace graft
