#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "io/image.h"

namespace graft::preprocess {

// A box of voxels: start index (may be negative, meaning padding) and size, per axis x, y, z.
struct IndexBox {
  std::array<std::int64_t, 3> start_xyz{0, 0, 0};
  std::array<std::int64_t, 3> size_xyz{1, 1, 1};
};

// The smallest box holding every voxel whose value in any channel is != 0, or nullopt when the
// image is all zero.
std::optional<IndexBox> nonzero_bounding_box(const io::Image& image);

// Cuts `box` out of the image. Parts of the box outside the image are filled with fill_value, so
// this both crops and pads. The result's origin is the world position of box.start_xyz, so every
// voxel keeps its place in the world.
io::Image crop_or_pad(const io::Image& image, const IndexBox& box, double fill_value = 0.0);
// The grid that crop_or_pad produces, without touching voxels.
io::Geometry cropped_geometry(const io::Geometry& geometry, const IndexBox& box);

// Pads (symmetrically, extra voxel at the end) up to at least minimum_size_xyz.
io::Image pad_to_size(const io::Image& image, const std::array<std::int64_t, 3>& minimum_size_xyz,
                      double fill_value = 0.0);

}  // namespace graft::preprocess
