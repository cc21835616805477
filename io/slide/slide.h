#pragma once

// Whole-slide images through OpenSlide (SVS, NDPI, MRXS, tiled pyramidal TIFF, ...): levels,
// microns per pixel, regions as RGB images; and the tissue patches a feature extractor visits.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/image.h"

namespace graft::io {

struct SlideLevel {
  std::int64_t width = 0, height = 0;
  double downsample = 1.0;  // level-0 pixels per pixel of this level
};

class Slide {
 public:
  // Throws graft::Error naming the file and OpenSlide's reason when it cannot be opened.
  explicit Slide(const std::string& path);
  ~Slide();
  Slide(const Slide&) = delete;
  Slide& operator=(const Slide&) = delete;

  const std::string& path() const { return path_; }
  const std::string& vendor() const { return vendor_; }
  const std::vector<SlideLevel>& levels() const { return levels_; }
  // Level-0 microns per pixel: openslide.mpp-x, else the TIFF resolution tags; empty when the
  // file does not say.
  std::optional<double> microns_per_pixel() const { return microns_per_pixel_; }

  // `width` x `height` pixels of `level`, whose top-left corner is at level-0 pixel (x, y), as an
  // RGB uint8 image (channels Red, Green, Blue; transparent pixels white, as OpenSlide's
  // premultiplied ARGB over white). Safe to call from several threads.
  Image read_region(int level, std::int64_t x, std::int64_t y, std::int64_t width, std::int64_t height) const;

 private:
  std::string path_, vendor_;
  std::vector<SlideLevel> levels_;
  std::optional<double> microns_per_pixel_;
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

struct SlideTilingOptions {
  double target_microns_per_pixel = 0.5;  // UNI's 20x
  std::int64_t patch_px = 224;            // patch size at the target resolution
  double min_tissue_fraction = 0.25;      // of a patch's area in the tissue mask
  std::int64_t mask_max_px = 2048;        // the tissue mask is found on the finest level this wide or less
};

struct SlidePatches {
  std::vector<std::array<std::int64_t, 2>> coords;  // level-0 top-left corners, row by row
  int level = 0;                                    // the level patches are read from
  std::int64_t read_px = 224;                       // patch side at that level (then resized to patch_px)
  std::int64_t level0_px = 224;                     // patch side in level-0 pixels
  double microns_per_pixel = 0.5;                   // of a patch once resized to patch_px
  double tissue_threshold = 0.0;                    // Otsu's threshold on saturation (0-255)
  std::int64_t grid_patches = 0;                    // patches in the full grid, tissue or not
};

// The patch grid at the target resolution over the tissue: saturation (HSV's S, 0-255) of a low
// level, thresholded by Otsu's method as CLAM does, and every grid patch with at least
// min_tissue_fraction of its area in the mask. Patches are read from the finest level whose
// pixels are no larger than the target. A slide without microns per pixel is refused.
SlidePatches tissue_patches(const Slide& slide, const SlideTilingOptions& options);

}  // namespace graft::io
