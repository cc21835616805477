#pragma once

#include <string>

#include "tests/support/test_support.h"

namespace graft::testing {

// Runs tests/tools/nnunet_reference.py under Debian's python3 (the one with torch) with
// `arguments`: its exit status, with stdout and stderr in *output.
inline int run_nnunet_reference(const std::string& arguments, std::string* output) {
  return run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/nnunet_reference.py " + arguments, output);
}

}  // namespace graft::testing
