#pragma once

#include <array>
#include <string>

#include "io/image.h"

namespace graft::preprocess {

// Output axis t reads input axis source_axis[t], reversed when flip[t]. Reorienting is exact: it
// only permutes and flips voxels, never interpolates.
struct AxisPermutation {
  std::array<int, 3> source_axis{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};

  bool is_identity() const;
  AxisPermutation inverse() const;
};

// The permutation that brings `direction` closest to the named orientation ("RAS", "LPS", "LIP",
// ... each letter the world direction that an increasing index axis points to).
AxisPermutation permutation_to_orientation(const io::Mat3& direction, const std::string& code);

// The grid that permute_axes produces, without touching voxels.
io::Geometry permuted_geometry(const io::Geometry& geometry, const AxisPermutation& permutation);
io::Image permute_axes(const io::Image& image, const AxisPermutation& permutation);

// Throws graft::Error for a code that is not three distinct axes from {L|R, P|A, S|I}.
void check_orientation_code(const std::string& code);

// The same voxels on `target`, when the image's grid differs from it only by the order and
// direction of its axes (a mask saved by another tool on the same scan). Throws graft::Error
// naming `source` and the difference when the grids truly differ: labels are never interpolated
// onto a grid they were not drawn on.
io::Image onto_same_grid(const io::Image& image, const io::Geometry& target, const std::string& source,
                         double tolerance_mm = 1e-3);

inline io::Image reorient(const io::Image& image, const std::string& code) {
  return permute_axes(image, permutation_to_orientation(image.geometry().direction, code));
}

}  // namespace graft::preprocess
