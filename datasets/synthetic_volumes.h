#pragma once

#include <cstdint>

#include "io/image.h"

namespace graft::datasets {

// A procedurally generated CT-like case: an elliptical body of soft tissue (~40 HU) in air
// (-1000 HU), a bright spine (~700 HU), and two organ-like ellipsoids whose labels (1, 2) are
// the segmentation target. Spacing and orientation are drawn from the seed, so a set of cases
// exercises anisotropic and non-RAS grids the way real scanners produce them.
struct SyntheticCase {
  io::Image image;   // i16 HU
  io::Image labels;  // u8: 0 background, 1 and 2 organs
};

SyntheticCase make_synthetic_ct(std::uint64_t seed, const io::Geometry& geometry);

// A geometry for case `seed`: size about 96 x 96 x 40, in-plane 0.6-1.0 mm, slices 1.5-4 mm,
// LPS or RAS-like axis flips, and a small oblique rotation.
io::Geometry random_ct_geometry(std::uint64_t seed);

}  // namespace graft::datasets
