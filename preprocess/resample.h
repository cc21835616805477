#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "io/image.h"

namespace graft::preprocess {

enum class Interpolation { kNearest, kLinear, kBSpline };
// kPerLabelLinear interpolates each label's indicator linearly and keeps the label with the
// highest value (nnU-Net's rule), so boundaries are smooth yet only existing labels appear.
enum class LabelInterpolation { kNearest, kPerLabelLinear };

std::string interpolation_name(Interpolation interpolation);  // "nearest", "linear", "bspline"
Interpolation interpolation_from_name(const std::string& name);
std::string label_interpolation_name(LabelInterpolation interpolation);
LabelInterpolation label_interpolation_from_name(const std::string& name);

using SizeXyz = std::array<std::int64_t, 3>;

struct ResampleOptions {
  std::array<Interpolation, 3> interpolation_xyz{Interpolation::kLinear, Interpolation::kLinear,
                                                 Interpolation::kLinear};
  // Gaussian smoothing before shrinking an axis, so detail finer than the new grid cannot alias.
  bool anti_alias = true;
};

// The grid that covers the same field of view with size_xyz voxels: voxel edges stay where they
// were, so spacing becomes spacing * n / m and the first centre moves by half the spacing change.
io::Geometry resized_geometry(const io::Geometry& input, const SizeXyz& size_xyz);

// round(n * spacing / target_spacing) per axis, at least 1.
SizeXyz size_for_spacing(const io::Geometry& input, const io::Vec3& target_spacing_xyz);

// The anti-aliasing rule, as scikit-image's resize uses it: when an axis shrinks by a factor
// s = n / m > 1, the Gaussian sigma is (s - 1) / 2 input voxels; growing axes get 0.
io::Vec3 anti_alias_sigma_voxels(const SizeXyz& input_size, const SizeXyz& output_size);

// Intensity resampling onto resized_geometry(input, size_xyz). The result is f32; every channel
// is resampled the same way. Linear interpolation reproduces linear functions exactly and
// cubic B-spline interpolation reproduces polynomials up to degree 3, away from the borders.
io::Image resample_image(const io::Image& image, const SizeXyz& size_xyz,
                         const ResampleOptions& options);

// resample_image(permute_axes(image, {{0, 1, 2}, flip_xyz}), size_xyz, options), with the
// reversal folded into the resampling passes: a reorientation that only reverses axes (an
// LPS-stored CT brought to RAS) costs no copy of the volume of its own.
io::Image flip_and_resample_image(const io::Image& image, const std::array<bool, 3>& flip_xyz,
                                  const SizeXyz& size_xyz, const ResampleOptions& options);

// Label-map resampling. The result keeps the input's dtype and never holds a label that the input
// lacks.
io::Image resample_labels(const io::Image& labels, const SizeXyz& size_xyz,
                          LabelInterpolation interpolation);

}  // namespace graft::preprocess
