#include "io/slide/slide.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "io/error.h"
#include "io/slide/slide_module.h"

namespace graft::io {

struct Slide::Handle {
  std::unique_ptr<slide_module::SlideReader> reader;
};

namespace {

const slide_module::EntryPoints& openslide(const std::string& needed_by) {
#ifdef GRAFT_IO_MODULES_LINKED
  (void)needed_by;
  return *graft_io_openslide_entry_points();
#else
  static IoModule<slide_module::EntryPoints> module("libgraft_io_openslide.so", "graft_io_openslide_entry_points", slide_module::kEntryPointsVersion,
                                              "a whole-slide image");
  return module.entry_points(needed_by);
#endif
}

// Otsu's threshold of a 256-bin histogram: the cut that maximises the between-class variance.
double otsu_threshold(const std::array<std::int64_t, 256>& histogram) {
  std::int64_t total = 0;
  double weighted_total = 0.0;
  for (int v = 0; v < 256; ++v) total += histogram[v], weighted_total += static_cast<double>(v) * histogram[v];
  std::int64_t below = 0;
  double weighted_below = 0.0, best_variance = -1.0;
  int best = 0;
  for (int v = 0; v < 256; ++v) {
    below += histogram[v];
    weighted_below += static_cast<double>(v) * histogram[v];
    const std::int64_t above = total - below;
    if (below == 0 || above == 0) continue;
    const double mean_below = weighted_below / below, mean_above = (weighted_total - weighted_below) / above;
    const double variance = static_cast<double>(below) * above * (mean_below - mean_above) * (mean_below - mean_above);
    if (variance > best_variance) best_variance = variance, best = v;
  }
  return best + 0.5;  // pixels above the cut are tissue
}

}  // namespace

Slide::Slide(const std::string& path) : path_(path), handle_(std::make_unique<Handle>()) {
  handle_->reader = openslide(path).open_slide(path);
  vendor_ = handle_->reader->vendor();
  levels_ = handle_->reader->levels();
  if (levels_.empty()) throw Error(path + ": the slide has no levels");
  microns_per_pixel_ = handle_->reader->microns_per_pixel();
}

Slide::~Slide() = default;

Image Slide::read_region(int level, std::int64_t x, std::int64_t y, std::int64_t width, std::int64_t height) const {
  if (level < 0 || level >= static_cast<int>(levels_.size()) || width <= 0 || height <= 0) {
    throw Error(path_ + ": region level " + std::to_string(level) + " size " + std::to_string(width) + " x " +
                std::to_string(height) + " is not readable");
  }
  std::vector<std::uint32_t> argb(static_cast<std::size_t>(width * height));
  handle_->reader->read_argb(level, x, y, width, height, argb.data());
  Geometry grid;
  grid.size_xyz = {width, height, 1};
  const double spacing = (microns_per_pixel_ ? *microns_per_pixel_ / 1000.0 : 1.0) * levels_[level].downsample;
  grid.spacing_xyz = {spacing, spacing, 1.0};
  Image rgb(DType::kU8, 3, grid);
  std::uint8_t* out = rgb.data<std::uint8_t>();
  const std::int64_t plane = width * height;
  for (std::int64_t i = 0; i < plane; ++i) {
    const std::uint32_t pixel = argb[i];
    const std::uint32_t alpha = pixel >> 24;
    for (int c = 0; c < 3; ++c) {
      const std::uint32_t premultiplied = (pixel >> (16 - 8 * c)) & 0xFF;
      // Premultiplied colour over a white background.
      out[c * plane + i] = static_cast<std::uint8_t>(premultiplied + (255 - alpha));
    }
  }
  rgb.metadata().band_names = {"Red", "Green", "Blue"};
  rgb.metadata().modality = "slide";
  return rgb;
}

SlidePatches tissue_patches(const Slide& slide, const SlideTilingOptions& options) {
  const auto mpp = slide.microns_per_pixel();
  if (!mpp) {
    throw Error(slide.path() + ": the slide does not say its microns per pixel (no openslide.mpp-x or TIFF "
                               "resolution), so no magnification can be chosen");
  }
  const auto& levels = slide.levels();
  SlidePatches patches;
  const double wanted_downsample = options.target_microns_per_pixel / *mpp;
  for (std::size_t level = 0; level < levels.size(); ++level) {
    if (levels[level].downsample <= wanted_downsample * (1 + 1e-6)) patches.level = static_cast<int>(level);
  }
  const double level_downsample = levels[patches.level].downsample;
  patches.read_px = std::max<std::int64_t>(1, std::llround(options.patch_px * wanted_downsample / level_downsample));
  patches.level0_px = std::max<std::int64_t>(1, std::llround(options.patch_px * wanted_downsample));
  patches.microns_per_pixel = options.target_microns_per_pixel;

  // The tissue mask on the finest level no wider than mask_max_px (the coarsest, if none is).
  int mask_level = 0;
  for (std::size_t level = 0; level < levels.size(); ++level) {
    if (levels[level].width <= options.mask_max_px) {
      mask_level = static_cast<int>(level);
      break;
    }
    mask_level = static_cast<int>(level);
  }
  const SlideLevel& coarse = levels[mask_level];
  const Image overview = slide.read_region(mask_level, 0, 0, coarse.width, coarse.height);
  const std::int64_t plane = coarse.width * coarse.height;
  const std::uint8_t* rgb = overview.data<std::uint8_t>();
  std::vector<std::uint8_t> saturation(plane);
  std::array<std::int64_t, 256> histogram{};
  for (std::int64_t i = 0; i < plane; ++i) {
    const int r = rgb[i], g = rgb[plane + i], b = rgb[2 * plane + i];
    const int high = std::max({r, g, b}), low = std::min({r, g, b});
    saturation[i] = static_cast<std::uint8_t>(high == 0 ? 0 : (255 * (high - low)) / high);
    ++histogram[saturation[i]];
  }
  patches.tissue_threshold = otsu_threshold(histogram);
  // Prefix sums of the mask, so each patch's tissue fraction costs four lookups.
  std::vector<std::int64_t> integral((coarse.width + 1) * (coarse.height + 1), 0);
  for (std::int64_t y = 0; y < coarse.height; ++y) {
    for (std::int64_t x = 0; x < coarse.width; ++x) {
      const std::int64_t tissue = saturation[y * coarse.width + x] > patches.tissue_threshold;
      integral[(y + 1) * (coarse.width + 1) + x + 1] = tissue + integral[y * (coarse.width + 1) + x + 1] +
                                                      integral[(y + 1) * (coarse.width + 1) + x] -
                                                      integral[y * (coarse.width + 1) + x];
    }
  }
  const std::int64_t width0 = levels[0].width, height0 = levels[0].height;
  for (std::int64_t y = 0; y + patches.level0_px <= height0; y += patches.level0_px) {
    for (std::int64_t x = 0; x + patches.level0_px <= width0; x += patches.level0_px) {
      ++patches.grid_patches;
      auto to_mask = [&](std::int64_t v, std::int64_t limit) {
        return std::clamp<std::int64_t>(std::llround(v / coarse.downsample), 0, limit);
      };
      const std::int64_t x0 = to_mask(x, coarse.width), x1 = to_mask(x + patches.level0_px, coarse.width);
      const std::int64_t y0 = to_mask(y, coarse.height), y1 = to_mask(y + patches.level0_px, coarse.height);
      const std::int64_t area = std::max<std::int64_t>(1, (x1 - x0) * (y1 - y0));
      const std::int64_t tissue = integral[y1 * (coarse.width + 1) + x1] - integral[y0 * (coarse.width + 1) + x1] -
                                  integral[y1 * (coarse.width + 1) + x0] + integral[y0 * (coarse.width + 1) + x0];
      if (static_cast<double>(tissue) / area >= options.min_tissue_fraction) patches.coords.push_back({x, y});
    }
  }
  return patches;
}

}  // namespace graft::io
