#include "datasets/manifest.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "io/boxes.h"
#include "io/error.h"
#include "io/text.h"
#include "io/image_file.h"
#include "io/label_file.h"

namespace graft::datasets {
namespace {

namespace fs = std::filesystem;

std::string resolve(const std::string& base_folder, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_folder) / path).lexically_normal().string();
}

std::vector<std::string> split_class_names(const std::string& text) {
  std::vector<std::string> names;
  std::string name;
  std::istringstream in(text);
  while (std::getline(in, name, ';')) {
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

std::vector<CaseEntry> read_csv(const std::string& path, const std::string& base) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) throw Error(path + ": manifest is empty");
  const std::vector<std::string> header = io::split_csv_line(line);
  auto column = [&](const std::string& name) {
    const auto found = std::find(header.begin(), header.end(), name);
    return found == header.end() ? -1 : static_cast<int>(found - header.begin());
  };
  const int image = column("image"), label = column("label"), split = column("split"), id = column("id"),
            classes = column("classes");
  if (image < 0) throw Error(path + ": manifest header needs an 'image' column");
  std::vector<CaseEntry> cases;
  int line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto fields = io::split_csv_line(line);
    if (static_cast<int>(fields.size()) <= image) {
      throw Error(path + ": line " + std::to_string(line_number) + " has no image");
    }
    CaseEntry entry;
    entry.image = resolve(base, fields[image]);
    if (label >= 0 && label < static_cast<int>(fields.size())) entry.label = resolve(base, fields[label]);
    if (split >= 0 && split < static_cast<int>(fields.size())) entry.split = fields[split];
    if (classes >= 0 && classes < static_cast<int>(fields.size())) entry.classes = split_class_names(fields[classes]);
    entry.id = id >= 0 && id < static_cast<int>(fields.size()) ? fields[id] : io::image_stem(entry.image);
    cases.push_back(entry);
  }
  return cases;
}

std::vector<CaseEntry> read_json(const std::string& path, const std::string& base) {
  std::ifstream in(path);
  nlohmann::json json;
  try {
    in >> json;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": manifest is not valid JSON (" + std::string(e.what()) + ")");
  }
  const nlohmann::json& list = json.is_object() && json.contains("cases") ? json["cases"] : json;
  if (!list.is_array()) throw Error(path + ": manifest must be a list of cases or {\"cases\": [...]}");
  std::vector<CaseEntry> cases;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& item = list[i];
    if (!item.is_object() || !item.contains("image") || !item["image"].is_string()) {
      throw Error(path + ": case " + std::to_string(i) + " has no 'image' string");
    }
    CaseEntry entry;
    entry.image = resolve(base, item["image"].get<std::string>());
    entry.label = resolve(base, item.value("label", ""));
    entry.split = item.value("split", "");
    entry.id = item.value("id", io::image_stem(entry.image));
    if (item.contains("classes")) {
      const auto& classes = item["classes"];
      if (classes.is_string()) {
        entry.classes = split_class_names(classes.get<std::string>());
      } else if (classes.is_array() && std::all_of(classes.begin(), classes.end(), [](const auto& c) { return c.is_string(); })) {
        entry.classes = classes.get<std::vector<std::string>>();
      } else {
        throw Error(path + ": case " + entry.id + ": field 'classes' must be a string or a list of strings");
      }
    }
    cases.push_back(entry);
  }
  return cases;
}

// The labels Slicer users save beside their volumes: CASE.seg.nrrd (a Segmentation node),
// CASE-label.EXT (a label map volume, Slicer's default name) or CASE_label.EXT.
bool is_label_name(const std::string& file) {
  const std::string stem = io::image_stem(file);
  return io::ends_with(file, ".seg.nrrd") || io::ends_with(stem, "-label") || io::ends_with(stem, "_label");
}

std::vector<CaseEntry> read_flat_folder(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& file : fs::directory_iterator(folder)) {
    if (file.is_regular_file() && io::format_from_extension(file.path().string()) != io::FileFormat::kUnknown) {
      files.push_back(file.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<CaseEntry> cases;
  for (const std::string& file : files) {
    if (is_label_name(file)) continue;
    CaseEntry entry;
    entry.id = io::image_stem(file);
    entry.image = file;
    for (const std::string& candidate : files) {
      const std::string stem = io::image_stem(candidate);
      if (candidate != file && is_label_name(candidate) &&
          (stem == entry.id || stem == entry.id + "-label" || stem == entry.id + "_label")) {
        entry.label = candidate;
      }
    }
    cases.push_back(entry);
  }
  return cases;
}

std::vector<CaseEntry> read_folder(const std::string& folder) {
  const fs::path images = fs::path(folder) / "imagesTr", labels = fs::path(folder) / "labelsTr";
  if (!fs::is_directory(images)) {
    std::vector<CaseEntry> cases = read_flat_folder(folder);
    if (cases.empty()) {
      throw Error(folder + ": not a manifest file, has no imagesTr/ folder and no volumes (CASE.nrrd with "
                           "CASE-label.nrrd or CASE.seg.nrrd beside it)");
    }
    return cases;
  }
  std::vector<CaseEntry> cases;
  for (const auto& file : fs::directory_iterator(images)) {
    std::string stem = io::image_stem(file.path().string());
    // nnU-Net names the first channel CASE_0000; the label is CASE.
    if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, "_0000") == 0) stem.resize(stem.size() - 5);
    CaseEntry entry;
    entry.id = stem;
    entry.image = file.path().string();
    for (const char* extension : {".nii.gz", ".nii", ".nrrd"}) {
      const fs::path candidate = labels / (stem + extension);
      if (fs::exists(candidate)) entry.label = candidate.string();
    }
    cases.push_back(entry);
  }
  std::sort(cases.begin(), cases.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return cases;
}

}  // namespace

std::vector<CaseEntry> read_manifest(const std::string& path) {
  std::vector<CaseEntry> cases;
  if (fs::is_directory(path)) {
    cases = read_folder(path);
  } else if (!fs::exists(path)) {
    throw Error(path + ": manifest does not exist");
  } else {
    const std::string base = fs::path(path).parent_path().string();
    std::ifstream probe(path);
    char first = 0;
    probe >> first;
    cases = first == '[' || first == '{' ? read_json(path, base) : read_csv(path, base);
  }
  if (cases.empty()) throw Error(path + ": manifest lists no cases");
  for (const auto& entry : cases) {
    if (!fs::exists(entry.image)) throw Error(path + ": case " + entry.id + ": image " + entry.image + " does not exist");
    if (!entry.label.empty() && !fs::exists(entry.label)) {
      throw Error(path + ": case " + entry.id + ": label " + entry.label + " does not exist");
    }
  }
  return cases;
}

void assign_folds(std::vector<CaseEntry>& cases, int folds, int fold, std::uint64_t seed) {
  if (folds < 2 || fold < 0 || fold >= folds) {
    throw Error("k-fold split needs folds >= 2 and 0 <= fold < folds (got fold " +
                std::to_string(fold) + " of " + std::to_string(folds) + ")");
  }
  std::vector<std::size_t> unassigned;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].split.empty()) unassigned.push_back(i);
  }
  std::mt19937_64 random(seed);
  std::shuffle(unassigned.begin(), unassigned.end(), random);
  for (std::size_t k = 0; k < unassigned.size(); ++k) {
    cases[unassigned[k]].split = static_cast<int>(k % folds) == fold ? "val" : "train";
  }
}

CaseCheck check_case(const CaseEntry& entry) {
  CaseCheck check;
  try {
    const io::Image image = io::read(entry.image);
    const io::Geometry& grid = image.geometry();
    char text[160];
    std::snprintf(text, sizeof(text), "%lld x %lld x %lld at %.3g x %.3g x %.3g %s",
                  static_cast<long long>(grid.size_xyz[0]), static_cast<long long>(grid.size_xyz[1]),
                  static_cast<long long>(grid.size_xyz[2]), grid.spacing_xyz[0], grid.spacing_xyz[1],
                  grid.spacing_xyz[2], grid.frame == io::Frame::kCRS ? "CRS units" : "mm");
    check.grid = text;
    // Reading the labels onto the image's grid finds every problem training would meet: another
    // grid, several channels, a SEG or RTSTRUCT of another series.
    if (!entry.label.empty()) io::read_label_map(entry.label, entry.image, grid);
  } catch (const std::exception& error) {
    check.problem = error.what();
  }
  return check;
}

}  // namespace graft::datasets
