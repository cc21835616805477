#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/image.h"

namespace graft::testing {

// ../shared/data from the repo root, or $GRAFT_SHARED_DATA; empty when absent.
std::string shared_data_dir();
// nibabel's own test files (Debian python3-nibabel); empty when absent.
std::string nibabel_data_dir();
// A fresh folder under the system temp dir, unique per test. It is removed when the test ends
// without a failure (a suite leaves many GB of checkpoints and volumes otherwise); a failed test's
// folder stays for inspection, as does every folder when GRAFT_KEEP_TEST_DIRS is set.
std::string temp_dir();
bool file_exists(const std::string& path);

// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

// Debian's python3 (the one with nibabel, scipy, torch), or empty when it or `module` is missing.
std::string python_with(const std::string& module);

// nibabel's view of each file (tests/tools/nibabel_reference.py), one JSON object per path.
std::vector<nlohmann::json> nibabel_reference(const std::vector<std::string>& paths);
// Any tests/tools script that prints one JSON object per path; empty when `module` is missing.
std::vector<nlohmann::json> python_reference(const std::string& script, const std::string& module,
                                             const std::vector<std::string>& paths);

// graft's own equivalents of the reference's fields, for the same comparison.
double weighted_checksum(const io::Image& image);
double voxel_sum(const io::Image& image);  // NaN voxels count as 0, as in the reference
std::int64_t nan_count(const io::Image& image);

// A copy of a DICOM series folder whose empty StudyInstanceUID, SeriesInstanceUID and SOP UIDs
// (de-identified data) are filled in with DCMTK's dcmodify, as a PACS would hold it. Empty when
// dcmodify is absent.
std::string dicom_series_with_uids(const std::string& source_folder);

// A copy of a DICOM series (in `folder`/series) whose ImagePositionPatient values drift against
// the column direction by tan(tilt) x the slice spacing per slice, as a CT gantry tilted by
// `tilt_degrees` writes them (DCMTK's dcmodify). Empty when dcmodify is absent.
std::string tilted_dicom_series(const std::string& source_folder, double tilt_degrees, const std::string& folder);

// The message of the graft::Error that `action` throws, or "" when it throws none.
template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const graft::Error& error) {
    return error.what();
  }
  return "";
}

// Path of the built graft executable.
std::string graft_executable();

}  // namespace graft::testing

// A user's fresh clone lacks ../shared/data, and its real-data tests skip; under CI (the CI
// variable set) they fail instead, so the conformance suite can never pass unrun.
#define GRAFT_REQUIRE_SHARED_DATA()                                                      \
  do {                                                                                   \
    if (graft::testing::shared_data_dir().empty()) {                                     \
      if (std::getenv("CI") != nullptr) FAIL() << "CI is set and ../shared/data is absent"; \
      GTEST_SKIP() << "../shared/data is absent (set GRAFT_SHARED_DATA to run this)";    \
    }                                                                                    \
  } while (0)
