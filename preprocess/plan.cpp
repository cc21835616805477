#include "preprocess/plan.h"

#include <algorithm>
#include <cstring>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/error.h"
#include "preprocess/bands.h"

namespace graft::preprocess {

using nlohmann::json;

namespace {

template <typename Triple>
std::string triple(const Triple& v) {
  std::ostringstream s;
  s << v[0] << " x " << v[1] << " x " << v[2];
  return s.str();
}

io::Image select_channels(const io::Image& image, const std::vector<int>& order,
                          const std::vector<std::string>& names) {
  io::Image out = io::Image::uninitialized(image.dtype(), static_cast<std::int64_t>(order.size()), image.geometry());
  out.metadata() = image.metadata();
  out.metadata().band_names = names;
  out.metadata().wavelengths_nm.clear();
  const std::size_t plane = static_cast<std::size_t>(image.voxels_per_channel()) *
                            io::dtype_size_bytes(image.dtype());
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (order[i] < 0) std::memset(out.bytes() + i * plane, 0, plane);
    else std::memcpy(out.bytes() + i * plane, image.bytes() + order[i] * plane, plane);
  }
  return out;
}

void check_on_grid(const io::Image& image, const io::Geometry& expected, const std::string& what) {
  if (!image.geometry().same_grid(expected, 1e-3)) {
    throw Error(what + " does not lie on the grid the plan expects: " +
                image.geometry().describe_difference(expected, 1e-3));
  }
}

}  // namespace

Plan make_plan(const Contract& contract, const io::Image& image, std::uint64_t seed) {
  PlanOptions options;
  options.seed = seed;
  return make_plan(contract, image, options);
}

Plan make_plan(const Contract& contract, const io::Image& image, const PlanOptions& options) {
  const auto& size = image.geometry().size_xyz;
  // A volume backbone's resampling would stretch one slice into dozens of copies of itself.
  if (contract.spatial_dims == 3 && size[2] == 1) {
    throw Error(contract.name + " is the Contract of a 3D backbone, which takes volumes; the input is a 2D image (" +
                std::to_string(size[0]) + " x " + std::to_string(size[1]) +
                " x 1): choose a 2D backbone (`graft backbones` lists each backbone's dimensions)");
  }
  Plan plan;
  plan.contract_name = contract.name;
  plan.input_geometry = image.geometry();
  plan.input_channels = image.channels();
  plan.seed = options.seed;
  plan.intensity = contract.intensity;
  plan.intensity_before_resample = contract.normalize_before_resampling;
  plan.notes = contract.deviations;
  // The reader already resampled these voxels; whoever reads the Plan must know that its input
  // grid, and so every inverted prediction, is the corrected grid and not the scanner's slices.
  if (const auto& tilt = image.metadata().gantry_tilt_corrected_degrees) {
    std::ostringstream note;
    note << "gantry tilt of " << std::fixed << std::setprecision(2) << *tilt
         << " degrees corrected by resampling the slices (linear) onto the orthogonal input grid";
    plan.notes.push_back(note.str());
  }

  // Channels / bands: by name when the image (or the user) names them, by count otherwise.
  if (!options.band_names.empty() && static_cast<std::int64_t>(options.band_names.size()) != image.channels()) {
    throw Error("--bands names " + std::to_string(options.band_names.size()) + " bands, the input has " +
                std::to_string(image.channels()));
  }
  if (!contract.channels.empty()) {
    const auto& names = options.band_names.empty() ? image.metadata().band_names : options.band_names;
    const bool named = std::any_of(names.begin(), names.end(), [](const std::string& n) { return !n.empty(); });
    const bool rgb_contract = contract.channels == std::vector<std::string>{"Red", "Green", "Blue"};
    const bool grey_input = image.channels() == 1 && (names.empty() || names[0].empty() || names[0] == "Gray");
    if (rgb_contract && grey_input) {
      // As PIL's convert("RGB") does for the greyscale images RGB backbones are fed.
      plan.channel_order = {0, 0, 0};
      plan.notes.push_back("one grey channel replicated to Red, Green and Blue");
    } else if (named) {
      const BandMatch match = match_bands(contract.channels, names, options.fill_missing_bands, contract.name);
      plan.channel_order = match.input_channel;
      for (const auto& band : match.missing) {
        plan.notes.push_back("band " + band + " is missing from the input: filled with zeros after normalisation");
      }
    } else if (image.channels() == contract.channel_count()) {
      for (int i = 0; i < contract.channel_count(); ++i) plan.channel_order.push_back(i);
      plan.notes.push_back("input channels are unnamed; assumed to be in the contract's order");
    } else {
      throw Error("input has " + std::to_string(image.channels()) + " unnamed channels but " +
                  contract.name + " expects " + std::to_string(contract.channel_count()));
    }
    plan.channel_names = contract.channels;
  }

  plan.orientation = contract.orientation;
  if (!contract.orientation.empty()) {
    plan.permutation = permutation_to_orientation(image.geometry().direction, contract.orientation);
  } else {
    plan.permutation.source_axis = contract.axis_order_xyz;
    if (contract.dicom_in_dcm2niix_order && image.metadata().source_format == "dicom") {
      // dcm2niix reverses the rows: its NIfTI's first voxel is the DICOM image's bottom-left.
      for (int t = 0; t < 3; ++t) plan.permutation.flip[t] = plan.permutation.source_axis[t] == 1;
      plan.notes.push_back("DICOM series taken in dcm2niix's voxel order (rows reversed), as the model's "
                           "training data were stored");
    }
  }
  io::Geometry geometry = permuted_geometry(image.geometry(), plan.permutation);
  plan.reoriented_geometry = geometry;

  if (contract.crop_nonzero) {
    const io::Image reoriented = permute_axes(image, plan.permutation);
    plan.crop = nonzero_bounding_box(reoriented);
    if (!plan.crop) {
      plan.notes.push_back("image is all zero; crop to nonzero skipped");
    } else {
      geometry = cropped_geometry(geometry, *plan.crop);
    }
  }
  plan.cropped_geometry = geometry;

  if (contract.resize != ResizeRule::kNone) {
    ResampleStep step;
    step.size_xyz = contract.resize == ResizeRule::kSpacing
                        ? size_for_spacing(geometry, contract.target_spacing_mm)
                        : contract.target_size_xyz;
    if (contract.spatial_dims == 2) step.size_xyz[2] = geometry.size_xyz[2];
    step.options.anti_alias = contract.anti_alias;
    step.options.interpolation_xyz.fill(contract.image_interpolation);
    step.label_interpolation = contract.label_interpolation;
    // nnU-Net: strongly anisotropic data (coarse axis > threshold x finest) is resampled along
    // the coarse axis separately, with nearest, to avoid smearing thick slices.
    if (contract.anisotropy_threshold > 0 && contract.spatial_dims == 3) {
      const auto& s = geometry.spacing_xyz;
      const int coarse = static_cast<int>(std::max_element(s.begin(), s.end()) - s.begin());
      const double finest = *std::min_element(s.begin(), s.end());
      if (s[coarse] / finest > contract.anisotropy_threshold &&
          step.size_xyz[coarse] != geometry.size_xyz[coarse]) {
        step.separate_axis = coarse;
        step.options.interpolation_xyz[coarse] = Interpolation::kNearest;
      }
    }
    if (step.size_xyz != geometry.size_xyz) {
      step.sigma_voxels = contract.anti_alias ? anti_alias_sigma_voxels(geometry.size_xyz, step.size_xyz)
                                              : io::Vec3{0, 0, 0};
      plan.resample = step;
      geometry = resized_geometry(geometry, step.size_xyz);
    }
  }
  plan.output_geometry = geometry;
  return plan;
}

io::Image apply(const Plan& plan, const io::Image& image) {
  check_on_grid(image, plan.input_geometry, "image");
  if (image.channels() != plan.input_channels) {
    throw Error("image has " + std::to_string(image.channels()) + " channels, the plan expects " +
                std::to_string(plan.input_channels));
  }
  // Steps that have nothing to do pass the image through without copying its voxels.
  std::optional<io::Image> owned;
  const io::Image* current = &image;
  auto replace = [&](io::Image next) {
    owned = std::move(next);
    current = &*owned;
  };
  if (!plan.channel_order.empty()) replace(select_channels(*current, plan.channel_order, plan.channel_names));
  const auto normalize = [&] {
    // nnU-Net measures its normalisation mask once, on the cropped image before any channel changes.
    std::optional<std::vector<std::uint8_t>> region;
    for (const auto& step : plan.intensity) {
      if (step.kind == IntensityKind::kZScore && step.over_nonzero &&
          step.nonzero_mask == NonzeroMask::kAnyChannelHolesFilled) {
        region = nonzero_region_holes_filled(*current);
        break;
      }
    }
    for (const auto& step : plan.intensity) {
      const std::vector<std::uint8_t>* mask = region ? &*region : nullptr;
      replace(owned ? apply_intensity(std::move(*owned), step, plan.seed, mask)
                    : apply_intensity(*current, step, plan.seed, mask));
    }
  };
  const bool only_flips = plan.permutation.source_axis == std::array<int, 3>{0, 1, 2};
  if (only_flips && !plan.crop && plan.resample && !plan.intensity_before_resample) {
    // Reversed axes are folded into the resampling passes: no reoriented copy of the volume.
    replace(flip_and_resample_image(*current, plan.permutation.flip, plan.resample->size_xyz, plan.resample->options));
  } else {
    if (!plan.permutation.is_identity()) replace(permute_axes(*current, plan.permutation));
    if (plan.crop) replace(crop_or_pad(*current, *plan.crop));
    if (plan.intensity_before_resample) normalize();
    if (plan.resample) replace(resample_image(*current, plan.resample->size_xyz, plan.resample->options));
  }
  if (!plan.intensity_before_resample) normalize();
  if (current->dtype() != io::DType::kF32) replace(current->cast(io::DType::kF32));
  io::Image result = owned ? std::move(*owned) : *current;
  // Missing bands read as the weights' mean: zero once normalised.
  for (std::size_t c = 0; c < plan.channel_order.size(); ++c) {
    if (plan.channel_order[c] >= 0) continue;
    float* plane = result.data<float>() + c * static_cast<std::size_t>(result.voxels_per_channel());
    std::fill(plane, plane + result.voxels_per_channel(), 0.0f);
  }
  result.geometry() = plan.output_geometry;
  return result;
}

io::Image apply_to_labels(const Plan& plan, const io::Image& labels) {
  check_on_grid(labels, plan.input_geometry, "label map");
  io::Image current = permute_axes(labels, plan.permutation);
  if (plan.crop) current = crop_or_pad(current, *plan.crop);
  if (plan.resample) {
    current = resample_labels(current, plan.resample->size_xyz, plan.resample->label_interpolation);
  }
  current.geometry() = plan.output_geometry;
  return current;
}

io::Image invert(const Plan& plan, const io::Image& prediction, PredictionKind kind) {
  if (prediction.geometry().size_xyz != plan.output_geometry.size_xyz) {
    throw Error("prediction size " + triple(prediction.geometry().size_xyz) +
                " differs from the plan's output size " + triple(plan.output_geometry.size_xyz));
  }
  io::Image current = prediction;
  current.geometry() = plan.output_geometry;
  if (plan.resample) {
    if (kind == PredictionKind::kLabels) {
      current = resample_labels(current, plan.cropped_geometry.size_xyz, LabelInterpolation::kNearest);
    } else {
      ResampleOptions linear;
      linear.anti_alias = false;
      current = resample_image(current, plan.cropped_geometry.size_xyz, linear);
    }
  }
  current.geometry() = plan.cropped_geometry;
  if (plan.crop) {
    IndexBox back;
    for (int a = 0; a < 3; ++a) {
      back.start_xyz[a] = -plan.crop->start_xyz[a];
      back.size_xyz[a] = plan.reoriented_geometry.size_xyz[a];
    }
    current = crop_or_pad(current, back, 0.0);
  }
  current.geometry() = plan.reoriented_geometry;
  current = permute_axes(current, plan.permutation.inverse());
  current.geometry() = plan.input_geometry;
  return current;
}

std::string to_text(const Plan& plan) {
  std::ostringstream out;
  out << "plan for " << plan.contract_name << "\n";
  out << "  input   " << triple(plan.input_geometry.size_xyz) << " voxels, spacing "
      << triple(plan.input_geometry.spacing_xyz) << " mm, orientation "
      << io::orientation_code(plan.input_geometry.direction) << ", " << plan.input_channels
      << " channel(s)\n";
  int number = 1;
  if (!plan.channel_order.empty()) {
    out << "  " << number++ << ". channels: ";
    for (std::size_t i = 0; i < plan.channel_order.size(); ++i) {
      out << (i ? ", " : "") << plan.channel_names[i];
      if (plan.channel_order[i] < 0) out << " <- zeros (missing)";
      else out << " <- input " << plan.channel_order[i];
    }
    out << "\n";
  }
  if (!plan.orientation.empty()) {
    out << "  " << number++ << ". reorient to " << plan.orientation
        << (plan.permutation.is_identity() ? " (already so; nothing to do)" : " (permute and flip axes, exact)")
        << "\n";
  } else if (!plan.permutation.is_identity()) {
    out << "  " << number++ << ". reorder the axes: output x y z read input axes "
        << triple(plan.permutation.source_axis) << " (exact)\n";
  }
  const auto print_intensity = [&] {
    for (const auto& step : plan.intensity) out << "  " << number++ << ". " << describe(step) << "\n";
  };
  if (plan.crop) {
    out << "  " << number++ << ". crop to the nonzero box: start " << triple(plan.crop->start_xyz)
        << ", size " << triple(plan.crop->size_xyz) << "\n";
  }
  if (plan.intensity_before_resample) print_intensity();
  if (plan.resample) {
    const auto& r = *plan.resample;
    out << "  " << number++ << ". resample " << triple(plan.cropped_geometry.size_xyz) << " -> "
        << triple(r.size_xyz) << " voxels, spacing " << triple(plan.output_geometry.spacing_xyz)
        << " mm\n     images: " << interpolation_name(r.options.interpolation_xyz[0]);
    if (r.separate_axis >= 0) {
      out << ", axis " << "xyz"[r.separate_axis] << " nearest (anisotropic spacing, nnU-Net's rule)";
    }
    if (r.options.anti_alias) {
      out << "; anti-aliasing sigma " << triple(r.sigma_voxels) << " input voxels ((factor-1)/2)";
    } else {
      out << "; no anti-aliasing";
    }
    out << "\n     labels: " << label_interpolation_name(r.label_interpolation) << "\n";
  }
  if (!plan.intensity_before_resample) print_intensity();
  out << "  output  " << triple(plan.output_geometry.size_xyz) << " voxels, spacing "
      << triple(plan.output_geometry.spacing_xyz) << " mm, f32\n";
  for (const auto& note : plan.notes) out << "  note: " << note << "\n";
  return out.str();
}

json to_json(const io::Geometry& geometry) {
  json direction = json::array();
  for (const auto& row : geometry.direction) for (double v : row) direction.push_back(v);
  json out{{"size", geometry.size_xyz},
           {"spacing", geometry.spacing_xyz},
           {"origin", geometry.origin_world},
           {"direction", direction},
           {"frame", geometry.frame == io::Frame::kLPS ? "LPS" : "CRS"},
           {"crs_wkt", geometry.crs_wkt}};
  out["geotransform"] = geometry.geotransform ? json(*geometry.geotransform) : json(nullptr);
  return out;
}

io::Geometry geometry_from_json(const json& object, const std::string& source) {
  io::Geometry geometry;
  try {
    geometry.size_xyz = object.at("size").get<std::array<std::int64_t, 3>>();
    geometry.spacing_xyz = object.at("spacing").get<io::Vec3>();
    geometry.origin_world = object.at("origin").get<io::Vec3>();
    const auto direction = object.at("direction").get<std::vector<double>>();
    if (direction.size() != 9) throw Error(source + ": geometry 'direction' needs 9 numbers");
    for (int i = 0; i < 9; ++i) geometry.direction[i / 3][i % 3] = direction[i];
    geometry.frame = object.value("frame", "LPS") == "CRS" ? io::Frame::kCRS : io::Frame::kLPS;
    geometry.crs_wkt = object.value("crs_wkt", "");
    if (object.contains("geotransform") && !object["geotransform"].is_null()) {
      geometry.geotransform = object["geotransform"].get<std::array<double, 6>>();
    }
  } catch (const json::exception& e) {
    throw Error(source + ": geometry is malformed (" + std::string(e.what()) + ")");
  }
  geometry.validate(source);
  return geometry;
}

json to_json(const Plan& plan) {
  json out;
  out["contract"] = plan.contract_name;
  out["input_geometry"] = to_json(plan.input_geometry);
  out["input_channels"] = plan.input_channels;
  out["channel_order"] = plan.channel_order;
  out["channel_names"] = plan.channel_names;
  out["orientation"] = plan.orientation;
  out["permutation"] = {{"source_axis", plan.permutation.source_axis},
                        {"flip", plan.permutation.flip}};
  out["reoriented_geometry"] = to_json(plan.reoriented_geometry);
  out["crop"] = plan.crop ? json{{"start", plan.crop->start_xyz}, {"size", plan.crop->size_xyz}}
                          : json(nullptr);
  out["cropped_geometry"] = to_json(plan.cropped_geometry);
  if (plan.resample) {
    const auto& r = *plan.resample;
    json interpolation = json::array();
    for (auto i : r.options.interpolation_xyz) interpolation.push_back(interpolation_name(i));
    out["resample"] = {{"size", r.size_xyz},
                       {"interpolation_xyz", interpolation},
                       {"anti_alias", r.options.anti_alias},
                       {"sigma_voxels", r.sigma_voxels},
                       {"label_interpolation", label_interpolation_name(r.label_interpolation)},
                       {"separate_axis", r.separate_axis}};
  } else {
    out["resample"] = nullptr;
  }
  json intensity = json::array();
  for (const auto& step : plan.intensity) intensity.push_back(to_json(step));
  out["intensity"] = intensity;
  out["intensity_before_resample"] = plan.intensity_before_resample;
  out["seed"] = plan.seed;
  out["output_geometry"] = to_json(plan.output_geometry);
  out["notes"] = plan.notes;
  return out;
}

Plan plan_from_json(const json& object, const std::string& source) {
  Plan plan;
  try {
    plan.contract_name = object.at("contract").get<std::string>();
    plan.input_geometry = geometry_from_json(object.at("input_geometry"), source);
    plan.input_channels = object.at("input_channels").get<std::int64_t>();
    plan.channel_order = object.value("channel_order", std::vector<int>{});
    plan.channel_names = object.value("channel_names", std::vector<std::string>{});
    plan.orientation = object.value("orientation", "");
    plan.permutation.source_axis = object.at("permutation").at("source_axis").get<std::array<int, 3>>();
    plan.permutation.flip = object.at("permutation").at("flip").get<std::array<bool, 3>>();
    plan.reoriented_geometry = geometry_from_json(object.at("reoriented_geometry"), source);
    if (!object.at("crop").is_null()) {
      IndexBox box;
      box.start_xyz = object["crop"].at("start").get<std::array<std::int64_t, 3>>();
      box.size_xyz = object["crop"].at("size").get<std::array<std::int64_t, 3>>();
      plan.crop = box;
    }
    plan.cropped_geometry = geometry_from_json(object.at("cropped_geometry"), source);
    if (!object.at("resample").is_null()) {
      const json& r = object["resample"];
      ResampleStep step;
      step.size_xyz = r.at("size").get<SizeXyz>();
      const auto names = r.at("interpolation_xyz").get<std::vector<std::string>>();
      if (names.size() != 3) throw Error(source + ": resample.interpolation_xyz needs 3 names");
      for (int a = 0; a < 3; ++a) step.options.interpolation_xyz[a] = interpolation_from_name(names[a]);
      step.options.anti_alias = r.at("anti_alias").get<bool>();
      step.sigma_voxels = r.at("sigma_voxels").get<io::Vec3>();
      step.label_interpolation = label_interpolation_from_name(r.at("label_interpolation").get<std::string>());
      step.separate_axis = r.value("separate_axis", -1);
      plan.resample = step;
    }
    for (const auto& step : object.at("intensity")) {
      plan.intensity.push_back(intensity_step_from_json(step, source));
    }
    plan.intensity_before_resample = object.value("intensity_before_resample", false);
    plan.seed = object.value("seed", std::uint64_t{0});
    plan.output_geometry = geometry_from_json(object.at("output_geometry"), source);
    plan.notes = object.value("notes", std::vector<std::string>{});
  } catch (const json::exception& e) {
    throw Error(source + ": plan is malformed (" + std::string(e.what()) + ")");
  }
  return plan;
}

}  // namespace graft::preprocess
