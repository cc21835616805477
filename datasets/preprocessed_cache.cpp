#include "datasets/preprocessed_cache.h"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <system_error>

#include "io/error.h"
#include "io/hdf5/hdf5_file.h"

namespace graft::datasets {
namespace {

namespace fs = std::filesystem;

// Bumped whenever what a cache file holds, or how a Plan computes it, changes meaning.
constexpr int kCacheFormat = 1;

std::uint64_t fnv1a_64(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// Size and modification time of a file, or of every file directly in a folder.
nlohmann::json fingerprint(const std::string& source) {
  auto of_file = [](const fs::path& path) {
    std::error_code error;
    const auto size = fs::file_size(path, error);
    const auto modified = fs::last_write_time(path, error);
    if (error) return nlohmann::json(nullptr);
    return nlohmann::json::array({size, static_cast<std::int64_t>(modified.time_since_epoch().count())});
  };
  std::error_code error;
  if (!fs::is_directory(source, error)) return of_file(source);
  nlohmann::json files = nlohmann::json::object();
  for (const auto& entry : fs::directory_iterator(source, error)) {
    if (entry.is_regular_file(error)) files[entry.path().filename().string()] = of_file(entry.path());
  }
  return files;
}

std::optional<PreprocessedVolumes> read_entry(const std::string& path, const std::string& recipe,
                                              const std::string& sources) {
  std::error_code error;
  if (!fs::exists(path, error)) return std::nullopt;
  try {
    const io::Hdf5Contents contents = io::list_hdf5(path, io::Hdf5Walk::kInThisProcess);
    const nlohmann::json& root = contents.root_attributes;
    if (root.value("recipe", "") != recipe || root.value("sources", "") != sources) return std::nullopt;
    PreprocessedVolumes volumes;
    volumes.plan = preprocess::plan_from_json(nlohmann::json::parse(root.value("plan", "{}")), path);
    volumes.image = io::read_hdf5(path, "/image");
    volumes.image.geometry() = volumes.plan.output_geometry;
    volumes.image.metadata() = io::Metadata();
    volumes.image.metadata().band_names = volumes.plan.channel_names;
    for (const auto& dataset : contents.datasets) {
      if (dataset.path == "/labels") {
        volumes.labels = io::read_hdf5(path, "/labels");
        volumes.labels.geometry() = volumes.plan.output_geometry;
        volumes.labels.metadata() = io::Metadata();
      }
    }
    return volumes;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft: ignoring unreadable cache entry %s (%s)\n", path.c_str(), e.what());
    return std::nullopt;
  }
}

}  // namespace

nlohmann::json preprocessing_recipe(const preprocess::Contract& contract, const preprocess::PlanOptions& options) {
  return {{"contract", preprocess::to_json(contract)},
          {"plan_options",
           {{"seed", options.seed}, {"band_names", options.band_names}, {"fill_missing_bands", options.fill_missing_bands}}}};
}

PreprocessedCache::PreprocessedCache(std::string folder) : folder_(std::move(folder)) {}

PreprocessedVolumes PreprocessedCache::get_or_make(const std::vector<std::string>& sources,
                                                   const nlohmann::json& recipe,
                                                   const std::function<PreprocessedVolumes()>& make) {
  if (!enabled()) return make();
  nlohmann::json keyed = recipe;
  keyed["cache_format"] = kCacheFormat;
  nlohmann::json source_paths = nlohmann::json::array(), fingerprints = nlohmann::json::array();
  for (const std::string& source : sources) {
    source_paths.push_back(fs::absolute(source).lexically_normal().string());
    fingerprints.push_back(fingerprint(source));
  }
  keyed["sources"] = source_paths;
  const std::string recipe_text = keyed.dump();
  // A hash keeps the attribute small for a DICOM folder of thousands of files.
  const std::string sources_text = std::to_string(fnv1a_64(fingerprints.dump()));
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.h5", static_cast<unsigned long long>(fnv1a_64(recipe_text)));
  const std::string path = (fs::path(folder_) / name).string();

  if (auto cached = read_entry(path, recipe_text, sources_text)) {
    ++hits_;
    return std::move(*cached);
  }
  ++misses_;
  PreprocessedVolumes volumes = make();
  std::error_code error;
  fs::create_directories(folder_, error);
  if (error) throw Error(folder_ + ": cannot create the preprocessed cache folder (" + error.message() + ")");
  std::vector<std::pair<std::string, const io::Image*>> images{{"/image", &volumes.image}};
  if (volumes.labels.element_count() > 0) images.emplace_back("/labels", &volumes.labels);
  // Stored, not deflated: the cache trades disk for read speed.
  io::write_hdf5_images(path, images,
                        {{"recipe", recipe_text}, {"sources", sources_text}, {"plan", preprocess::to_json(volumes.plan).dump()}},
                        0);
  return volumes;
}

}  // namespace graft::datasets
