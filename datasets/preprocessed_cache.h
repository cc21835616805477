#pragma once

// nnU-Net's "preprocessed" folder, in HDF5: what a case's Plan made of its image and label map,
// kept between runs, so another fold, a resumed run or a sweep over learning rates on the same
// data and backbone skips decoding and resampling. A cache file is found by a name derived from
// everything that decides its contents (the recipe: the source paths, the contract, the plan
// options, the classes) and trusted only while each source file still has the size and
// modification time it had when the file was written; otherwise the case is prepared again and
// the file replaced. Files are written whole or not at all, so a killed run leaves no half entry;
// an unreadable entry is treated as absent and rewritten.
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/image.h"
#include "preprocess/contract.h"
#include "preprocess/plan.h"

namespace graft::datasets {

struct PreprocessedVolumes {
  preprocess::Plan plan;
  io::Image image;   // on plan.output_geometry
  io::Image labels;  // empty when the case has none
};

// What decides a Plan's output besides the pixels: the contract and the plan options.
nlohmann::json preprocessing_recipe(const preprocess::Contract& contract, const preprocess::PlanOptions& options);

class PreprocessedCache {
 public:
  // An empty folder disables the cache: get_or_make always makes.
  explicit PreprocessedCache(std::string folder = "");

  bool enabled() const { return !folder_.empty(); }
  const std::string& folder() const { return folder_; }

  // The cached volumes for these source files (a file or a DICOM series folder each) under
  // `recipe`, or make()'s, stored for next time. Safe to call from several threads.
  PreprocessedVolumes get_or_make(const std::vector<std::string>& sources, const nlohmann::json& recipe,
                                  const std::function<PreprocessedVolumes()>& make);

  int hits() const { return hits_; }
  int misses() const { return misses_; }

 private:
  std::string folder_;
  std::atomic<int> hits_{0}, misses_{0};
};

}  // namespace graft::datasets
