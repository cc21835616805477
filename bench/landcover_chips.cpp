// Cuts land-cover chips from the real Landsat-8 and BigEarthNet rasters in ../shared/data and
// labels them by a spectral-index rule, for bench/run_landcover.sh. The rule stands in for the
// land-cover maps these samples do not ship: per pixel, water where MNDWI = (green - SWIR1) /
// (green + SWIR1) > 0.1, else by NDVI = (NIR - red) / (NIR + red): dense vegetation above 0.6,
// sparse vegetation above 0.3, otherwise bare or built. A chip's single label is its majority
// class; its multi-label set holds every class covering at least 10% of it. Splits are spatial
// (Landsat: one block of 4 x 4 chips in four; BigEarthNet: each patch's eastern chip column), so
// no validation pixel is seen in training.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/raster/gdal_raster.h"
#include "io/image_file.h"
#include "io/raster/raster_windows.h"
#include "preprocess/bands.h"

namespace {

namespace fs = std::filesystem;
using graft::io::Image;

constexpr int kClasses = 4;
const char* kClassNames[kClasses] = {"bare_or_built", "sparse_vegetation", "dense_vegetation", "water"};

struct SpectralBands {
  int green, red, nir, swir1;  // channel indices
  double scale, offset;         // stored value -> reflectance
};

int channel_of(const Image& image, const std::string& band) {
  const auto& names = image.metadata().band_names;
  for (std::size_t c = 0; c < names.size(); ++c) {
    if (graft::preprocess::canonical_band_name(names[c]) == band) return static_cast<int>(c);
  }
  throw graft::Error("no band " + band + " in the stack");
}

// Class per pixel of a chip at (x, y) of the stack, as kClassNames orders them.
std::vector<int> pixel_classes(const Image& stack, const SpectralBands& b, std::int64_t x0, std::int64_t y0,
                               std::int64_t size) {
  const auto& grid = stack.geometry().size_xyz;
  std::vector<int> classes;
  for (std::int64_t y = y0; y < y0 + size; ++y) {
    for (std::int64_t x = x0; x < x0 + size; ++x) {
      const std::int64_t i = y * grid[0] + x, plane = grid[0] * grid[1];
      auto reflectance = [&](int channel) { return stack.value_at(channel * plane + i) * b.scale + b.offset; };
      const double green = reflectance(b.green), red = reflectance(b.red);
      const double nir = reflectance(b.nir), swir1 = reflectance(b.swir1);
      const double mndwi = (green - swir1) / std::max(1e-9, green + swir1);
      const double ndvi = (nir - red) / std::max(1e-9, nir + red);
      classes.push_back(mndwi > 0.1 ? 3 : ndvi > 0.6 ? 2 : ndvi > 0.3 ? 1 : 0);
    }
  }
  return classes;
}

struct Labels {
  std::string single, multi;
};

Labels chip_labels(const std::vector<int>& classes) {
  int count[kClasses] = {};
  for (int c : classes) ++count[c];
  int majority = 0;
  for (int c = 1; c < kClasses; ++c) if (count[c] > count[majority]) majority = c;
  Labels labels{kClassNames[majority], ""};
  for (int c = 0; c < kClasses; ++c) {
    if (count[c] >= 0.1 * classes.size()) labels.multi += (labels.multi.empty() ? "" : ";") + std::string(kClassNames[c]);
  }
  return labels;
}

Image crop(const Image& stack, std::int64_t x0, std::int64_t y0, std::int64_t size) {
  const auto geometry = graft::io::geometry_from_geotransform(
      graft::io::window_geotransform(graft::io::geotransform_of(stack.geometry()), {x0, y0, size, size}), size, size,
      stack.geometry().crs_wkt);
  Image chip(stack.dtype(), stack.channels(), geometry);
  chip.metadata().band_names = stack.metadata().band_names;
  const std::size_t element = graft::io::dtype_size_bytes(stack.dtype());
  for (std::int64_t c = 0; c < stack.channels(); ++c) {
    for (std::int64_t y = 0; y < size; ++y) {
      const std::uint8_t* source = stack.bytes() + stack.offset(c, 0, y0 + y, x0) * element;
      std::copy(source, source + size * element, chip.bytes() + chip.offset(c, 0, y, 0) * element);
    }
  }
  return chip;
}

struct ManifestWriter {
  std::ofstream single, multi;
  std::map<std::string, std::map<std::string, int>> counts;  // split -> class -> chips
  ManifestWriter(const std::string& folder)
      : single(folder + "/single_label.csv"), multi(folder + "/multi_label.csv") {
    single << "image,classes,split\n";
    multi << "image,classes,split\n";
  }
  void add(const std::string& image, const Labels& labels, const std::string& split) {
    single << image << "," << labels.single << "," << split << "\n";
    multi << image << "," << labels.multi << "," << split << "\n";
    ++counts[split][labels.single];
  }
  void report(const std::string& name) {
    for (const auto& [split, by_class] : counts) {
      int total = 0, largest = 0;
      for (const auto& [label, n] : by_class) total += n, largest = std::max(largest, n);
      std::printf("%s %s: %d chips", name.c_str(), split.c_str(), total);
      for (const auto& [label, n] : by_class) std::printf("  %s %d", label.c_str(), n);
      std::printf("  (majority-class accuracy %.3f)\n", static_cast<double>(largest) / total);
    }
  }
};

void landsat_chips(const std::string& folder, const std::string& out, std::int64_t size) {
  std::vector<std::string> files;
  for (const char* band : {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "B10", "B11"}) {
    files.push_back(folder + "/l8_" + band + ".tif");
  }
  const Image stack = graft::io::read_band_stack(files);
  // Collection 1 digital numbers to TOA reflectance with l8_MTL.txt's REFLECTANCE_MULT/ADD.
  const SpectralBands bands{channel_of(stack, "B3"), channel_of(stack, "B4"), channel_of(stack, "B5"),
                            channel_of(stack, "B6"), 2e-5, -0.1};
  fs::create_directories(out + "/chips");
  ManifestWriter manifest(out);
  const auto& grid = stack.geometry().size_xyz;
  for (std::int64_t y = 0; y + size <= grid[1]; y += size) {
    for (std::int64_t x = 0; x + size <= grid[0]; x += size) {
      const std::string name = "chips/l8_" + std::to_string(x) + "_" + std::to_string(y) + ".tif";
      graft::io::write(crop(stack, x, y, size), out + "/" + name);
      // Blocks of 4 x 4 chips, every fourth block (checkerboard-like) held out: validation chips
      // come from all over the scene, and most touch only other validation chips.
      const std::int64_t block_x = x / (4 * size), block_y = y / (4 * size);
      manifest.add(name, chip_labels(pixel_classes(stack, bands, x, y, size)),
                   (block_x + 2 * block_y) % 4 == 0 ? "val" : "train");
    }
  }
  manifest.report("landsat8");
}

void bigearthnet_chips(const std::string& folder, const std::string& out, std::int64_t size) {
  std::vector<fs::path> patches;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_directory()) patches.push_back(entry.path());
  }
  std::sort(patches.begin(), patches.end());
  if (patches.empty()) throw graft::Error(folder + ": no BigEarthNet patch folders");
  fs::create_directories(out + "/chips");
  ManifestWriter manifest(out);
  for (std::size_t p = 0; p < patches.size(); ++p) {
    std::vector<std::string> files;
    for (const auto& file : fs::directory_iterator(patches[p])) {
      if (file.path().extension() == ".tif") files.push_back(file.path().string());
    }
    std::sort(files.begin(), files.end());
    const Image stack = graft::io::read_band_stack(files);
    // L2A surface reflectance stored x 10000.
    const SpectralBands bands{channel_of(stack, "B3"), channel_of(stack, "B4"), channel_of(stack, "B8"),
                              channel_of(stack, "B11"), 1e-4, 0.0};
    const auto& grid = stack.geometry().size_xyz;
    for (std::int64_t y = 0; y + size <= grid[1]; y += size) {
      for (std::int64_t x = 0; x + size <= grid[0]; x += size) {
        const std::string name = "chips/" + patches[p].filename().string() + "_" + std::to_string(x) + "_" +
                                 std::to_string(y) + ".tif";
        graft::io::write(crop(stack, x, y, size), out + "/" + name);
        // The eastern column of chips of every patch is held out.
        manifest.add(name, chip_labels(pixel_classes(stack, bands, x, y, size)), x + 2 * size > grid[0] ? "val" : "train");
      }
    }
  }
  manifest.report("bigearthnet");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s LANDSAT8_FOLDER BIGEARTHNET_FOLDER OUT_FOLDER CHIP_PX\n", argv[0]);
    return 2;
  }
  try {
    const std::int64_t size = std::stoll(argv[4]);
    landsat_chips(argv[1], std::string(argv[3]) + "/landsat8", size);
    bigearthnet_chips(argv[2], std::string(argv[3]) + "/bigearthnet", size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "landcover_chips: %s\n", e.what());
    return 1;
  }
  return 0;
}
