#include "tests/support/test_support.h"

#include "io/dicom/dicom_series.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace graft::testing {

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0;
}

std::string shared_data_dir() {
  if (const char* env = std::getenv("GRAFT_SHARED_DATA")) {
    return file_exists(env) ? env : "";
  }
  const std::string candidate = std::string(GRAFT_SOURCE_DIR) + "/../shared/data";
  return file_exists(candidate) ? candidate : "";
}

std::string nibabel_data_dir() {
  const std::string candidate = "/usr/lib/python3/dist-packages/nibabel/tests/data";
  return file_exists(candidate + "/anatomical.nii") ? candidate : "";
}

namespace {

// Removes the current test's scratch folders when it ends; appended to gtest's listeners the first
// time a test asks for a folder.
class ScratchFolders : public ::testing::EmptyTestEventListener {
 public:
  static ScratchFolders& instance() {
    static ScratchFolders* folders = [] {
      auto* created = new ScratchFolders;
      ::testing::UnitTest::GetInstance()->listeners().Append(created);  // gtest owns it from here
      return created;
    }();
    return *folders;
  }

  // Outside a GoogleTest test (the Qt Test programs, one test function per process), the folders
  // go when the process exits.
  void add(const std::filesystem::path& folder) {
    if (::testing::UnitTest::GetInstance()->current_test_info() != nullptr) {
      folders_.push_back(folder);
      return;
    }
    static std::vector<std::filesystem::path> at_exit;
    if (at_exit.empty()) {
      std::atexit([] {
        if (std::getenv("GRAFT_KEEP_TEST_DIRS") != nullptr) return;
        std::error_code ignored;
        for (const auto& folder : at_exit) std::filesystem::remove_all(folder, ignored);
      });
    }
    at_exit.push_back(folder);
  }

  void OnTestEnd(const ::testing::TestInfo& info) override {
    const bool keep = info.result()->Failed() || std::getenv("GRAFT_KEEP_TEST_DIRS") != nullptr;
    for (const auto& folder : folders_) {
      std::error_code ignored;
      if (keep) {
        std::fprintf(stderr, "test scratch folder kept: %s\n", folder.c_str());
      } else {
        std::filesystem::remove_all(folder, ignored);
      }
    }
    folders_.clear();
  }

 private:
  std::vector<std::filesystem::path> folders_;
};

}  // namespace

std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "graft-test-" + std::to_string(getpid());
  if (info) name += std::string("-") + info->test_suite_name() + "-" + info->name();
  const auto path = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  ScratchFolders::instance().add(path);
  return path.string();
}

int run_command(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buffer;
  std::string text;
  while (fgets(buffer.data(), buffer.size(), pipe)) text += buffer.data();
  const int status = pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string python_with(const std::string& module) {
  const std::string python = "/usr/bin/python3";
  if (!file_exists(python)) return "";
  if (run_command(python + " -c 'import " + module + "'") != 0) return "";
  return python;
}

std::vector<nlohmann::json> nibabel_reference(const std::vector<std::string>& paths) {
  return python_reference("nibabel_reference.py", "nibabel", paths);
}

std::vector<nlohmann::json> python_reference(const std::string& script, const std::string& module,
                                             const std::vector<std::string>& paths) {
  const std::string python = python_with(module);
  if (python.empty()) return {};
  std::string command = python + " " + GRAFT_SOURCE_DIR + "/tests/tools/" + script;
  for (const auto& path : paths) command += " '" + path + "'";
  FILE* pipe = popen(command.c_str(), "r");
  std::vector<nlohmann::json> out;
  if (!pipe) return out;
  std::array<char, 1 << 16> buffer;
  std::string line;
  while (fgets(buffer.data(), buffer.size(), pipe)) {
    line += buffer.data();
    if (!line.empty() && line.back() == '\n') {
      out.push_back(nlohmann::json::parse(line));
      line.clear();
    }
  }
  pclose(pipe);
  return out;
}

double weighted_checksum(const io::Image& image) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < image.element_count(); ++i) {
    const double value = image.value_at(i);
    if (!std::isnan(value)) sum += value * static_cast<double>((i % 1009) + 1);
  }
  return sum;
}

double voxel_sum(const io::Image& image) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < image.element_count(); ++i) {
    const double value = image.value_at(i);
    if (!std::isnan(value)) sum += value;
  }
  return sum;
}

std::int64_t nan_count(const io::Image& image) {
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < image.element_count(); ++i) count += std::isnan(image.value_at(i));
  return count;
}

std::string graft_executable() { return GRAFT_EXECUTABLE; }

std::string dicom_series_with_uids(const std::string& source_folder) {
  if (run_command("command -v dcmodify >/dev/null") != 0) return "";
  // Its own folder: temp_dir() starts afresh each time a test calls it.
  std::string pattern = (std::filesystem::temp_directory_path() / "graft-dicom-series-XXXXXX").string();
  if (!mkdtemp(pattern.data())) return "";
  ScratchFolders::instance().add(pattern);
  const std::string folder = pattern + "/series";
  std::string output;
  if (run_command("cp -r '" + source_folder + "' '" + folder + "'", &output) != 0) return "";
  // Fixed UIDs under a test root, so the test can look for them; -gin gives each file its own SOP UID.
  const std::string command = "chmod -R u+w '" + folder + "' && dcmodify -nb -q -gin" +
                              " -i '(0008,0016)=1.2.840.10008.5.1.4.1.1.2'"
                              " -i '(0020,000d)=1.2.826.0.1.3680043.10.1331.1'"
                              " -i '(0020,000e)=1.2.826.0.1.3680043.10.1331.2' '" + folder + "'/*";
  if (run_command(command, &output) != 0) {
    ADD_FAILURE() << output;
    return "";
  }
  return folder;
}

std::string tilted_dicom_series(const std::string& source_folder, double tilt_degrees, const std::string& folder) {
  if (run_command("command -v dcmodify >/dev/null") != 0) return "";
  const io::DicomVolume original = io::read_dicom(source_folder);
  const io::Geometry& g = original.image.geometry();
  const std::string series = folder + "/series";
  std::filesystem::create_directories(series);
  const double drift_mm = g.spacing_xyz[2] * std::tan(tilt_degrees * M_PI / 180);
  for (std::int64_t k = 0; k < g.size_xyz[2]; ++k) {
    const std::string copy = series + "/slice" + std::to_string(k) + ".dcm";
    std::filesystem::copy_file(original.source.slices[k].file, copy);
    io::Vec3 position = g.index_to_world({0, 0, static_cast<double>(k)});
    for (int d = 0; d < 3; ++d) position[d] -= g.direction[d][1] * drift_mm * static_cast<double>(k);
    char argument[160];
    std::snprintf(argument, sizeof argument, "(0020,0032)=%.6f\\%.6f\\%.6f", position[0], position[1], position[2]);
    std::string output;
    if (run_command("chmod u+w '" + copy + "' && dcmodify -nb -q -m \"" + std::string(argument) + "\" '" + copy + "'",
                    &output) != 0) {
      ADD_FAILURE() << output;
      return "";
    }
  }
  return series;
}

}  // namespace graft::testing
