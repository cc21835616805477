#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/image.h"
#include "preprocess/contract.h"
#include "preprocess/crop_pad.h"
#include "preprocess/intensity.h"
#include "preprocess/reorient.h"
#include "preprocess/resample.h"

namespace graft::preprocess {

struct ResampleStep {
  SizeXyz size_xyz{1, 1, 1};
  ResampleOptions options;
  io::Vec3 sigma_voxels{0, 0, 0};  // anti-aliasing sigma per axis, 0 where the axis grows
  LabelInterpolation label_interpolation = LabelInterpolation::kNearest;
  int separate_axis = -1;  // the coarse axis resampled with nearest (nnU-Net's anisotropy rule)
};

// The concrete, ordered steps for one input under one Contract, with every number filled in.
// Saved next to a checkpoint, it lets inference months later repeat the preprocessing exactly,
// and invert() maps predictions back onto the input's grid.
struct Plan {
  std::string contract_name;
  io::Geometry input_geometry;
  std::int64_t input_channels = 1;
  // Output channel i reads input channel channel_order[i] (-1: a missing band, zero after
  // intensity normalisation); empty keeps channels as they are.
  std::vector<int> channel_order;
  std::vector<std::string> channel_names;
  std::string orientation;  // target code, empty when the orientation is kept
  AxisPermutation permutation;
  io::Geometry reoriented_geometry;
  std::optional<IndexBox> crop;
  io::Geometry cropped_geometry;
  std::optional<ResampleStep> resample;
  std::vector<IntensityStep> intensity;
  bool intensity_before_resample = false;  // nnU-Net's order: crop, normalise, resample
  std::uint64_t seed = 0;
  io::Geometry output_geometry;
  std::vector<std::string> notes;
};

struct PlanOptions {
  std::uint64_t seed = 0;
  // The user's names for the input's channels, in order; they replace the file's band names.
  std::vector<std::string> band_names;
  // Bands the contract names and the input lacks are zero after intensity normalisation (the
  // weights' mean for a z-scored band) instead of refused. The Plan's notes list them.
  bool fill_missing_bands = false;
};

// Derives the Plan for `image` under `contract`. Reads voxels only to find the nonzero box.
Plan make_plan(const Contract& contract, const io::Image& image, const PlanOptions& options);
Plan make_plan(const Contract& contract, const io::Image& image, std::uint64_t seed = 0);

// Runs every step on an image that lies on plan.input_geometry; the result is f32 on
// plan.output_geometry.
io::Image apply(const Plan& plan, const io::Image& image);
// Runs the geometric steps on a label map of the same grid, with the plan's label interpolation.
io::Image apply_to_labels(const Plan& plan, const io::Image& labels);

enum class PredictionKind { kLabels, kProbabilities };
// Maps a prediction on plan.output_geometry back to plan.input_geometry: labels by nearest,
// probabilities by linear interpolation. The result's geometry equals the input's exactly.
io::Image invert(const Plan& plan, const io::Image& prediction, PredictionKind kind);

std::string to_text(const Plan& plan);
nlohmann::json to_json(const Plan& plan);
Plan plan_from_json(const nlohmann::json& json, const std::string& source);

nlohmann::json to_json(const io::Geometry& geometry);
io::Geometry geometry_from_json(const nlohmann::json& json, const std::string& source);

}  // namespace graft::preprocess
