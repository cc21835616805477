#include "preprocess/contract.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/error.h"
#include "preprocess/named_enum.h"
#include "preprocess/reorient.h"

namespace graft::preprocess {

using nlohmann::json;

namespace {
constexpr NameTable<ResizeRule, 3> kResizeRules{
    {{ResizeRule::kNone, "none"}, {ResizeRule::kSpacing, "spacing"}, {ResizeRule::kSize, "size"}}};
}  // namespace

std::string resize_rule_name(ResizeRule rule) { return name_of(kResizeRules, rule); }

ResizeRule resize_rule_from_name(const std::string& name) {
  return value_of(kResizeRules, name, "resize rule");
}

json to_json(const IntensityStep& step) {
  json out{{"kind", intensity_kind_name(step.kind)}};
  switch (step.kind) {
    case IntensityKind::kZScore:
      out["over_nonzero"] = step.over_nonzero;
      out["outside_mask"] = outside_mask_name(step.outside_mask);
      out["nonzero_mask"] = nonzero_mask_name(step.nonzero_mask);
      break;
    case IntensityKind::kPercentileClip:
      out["lower_percentile"] = step.lower_percentile;
      out["upper_percentile"] = step.upper_percentile;
      break;
    case IntensityKind::kWindow:
      out["center"] = step.window_center;
      out["width"] = step.window_width;
      break;
    case IntensityKind::kScaleOffset:
      out["scale"] = step.scale;
      out["offset"] = step.offset;
      break;
    case IntensityKind::kChannelMeanStd:
      out["mean"] = step.mean;
      out["std"] = step.std;
      break;
    case IntensityKind::kClip:
      out["min"] = step.clip_min;
      out["max"] = step.clip_max;
      break;
    case IntensityKind::kRescaleTo01:
      break;
  }
  if (step.channel >= 0) out["channel"] = step.channel;
  return out;
}

namespace {

// Reads json[key] into value when present, with an error naming the source and field otherwise.
template <typename T>
void read_field(const json& object, const char* key, T& value, const std::string& source) {
  if (!object.contains(key)) return;
  try {
    value = object.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(source + ": field '" + key + "' has the wrong type (" + e.what() + ")");
  }
}

}  // namespace

IntensityStep intensity_step_from_json(const json& object, const std::string& source) {
  if (!object.is_object() || !object.contains("kind")) {
    throw Error(source + ": each intensity step needs a 'kind'");
  }
  IntensityStep step;
  try {
    step.kind = intensity_kind_from_name(object.at("kind").get<std::string>());
    std::string outside = outside_mask_name(step.outside_mask);
    read_field(object, "outside_mask", outside, source);
    step.outside_mask = outside_mask_from_name(outside);
    std::string mask = nonzero_mask_name(step.nonzero_mask);
    read_field(object, "nonzero_mask", mask, source);
    step.nonzero_mask = nonzero_mask_from_name(mask);
  } catch (const json::exception&) {
    throw Error(source + ": intensity 'kind' must be a string");
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  read_field(object, "over_nonzero", step.over_nonzero, source);
  read_field(object, "lower_percentile", step.lower_percentile, source);
  read_field(object, "upper_percentile", step.upper_percentile, source);
  read_field(object, "center", step.window_center, source);
  read_field(object, "width", step.window_width, source);
  read_field(object, "scale", step.scale, source);
  read_field(object, "offset", step.offset, source);
  read_field(object, "mean", step.mean, source);
  read_field(object, "std", step.std, source);
  read_field(object, "min", step.clip_min, source);
  read_field(object, "max", step.clip_max, source);
  read_field(object, "channel", step.channel, source);
  if (step.channel < -1) throw Error(source + ": intensity field 'channel' must be a channel index (or -1: all)");
  return step;
}

json to_json(const Contract& contract) {
  json intensity = json::array();
  for (const auto& step : contract.intensity) intensity.push_back(to_json(step));
  return json{{"name", contract.name},
              {"description", contract.description},
              {"spatial_dims", contract.spatial_dims},
              {"channels", contract.channels},
              {"orientation", contract.orientation},
              {"axis_order_xyz", contract.axis_order_xyz},
              {"dicom_in_dcm2niix_order", contract.dicom_in_dcm2niix_order},
              {"crop_nonzero", contract.crop_nonzero},
              {"resize", resize_rule_name(contract.resize)},
              {"target_spacing_mm", contract.target_spacing_mm},
              {"target_size_xyz", contract.target_size_xyz},
              {"image_interpolation", interpolation_name(contract.image_interpolation)},
              {"label_interpolation", label_interpolation_name(contract.label_interpolation)},
              {"anti_alias", contract.anti_alias},
              {"anisotropy_threshold", contract.anisotropy_threshold},
              {"intensity", intensity},
              {"normalize_before_resampling", contract.normalize_before_resampling},
              {"sources", contract.sources},
              {"deviations", contract.deviations}};
}

Contract contract_from_json(const json& object, const std::string& source) {
  if (!object.is_object()) throw Error(source + ": a contract must be a JSON object");
  Contract contract;
  read_field(object, "name", contract.name, source);
  if (contract.name.empty()) throw Error(source + ": field 'name' is missing");
  read_field(object, "description", contract.description, source);
  read_field(object, "spatial_dims", contract.spatial_dims, source);
  if (contract.spatial_dims != 2 && contract.spatial_dims != 3) {
    throw Error(source + ": field 'spatial_dims' must be 2 or 3");
  }
  read_field(object, "channels", contract.channels, source);
  read_field(object, "orientation", contract.orientation, source);
  read_field(object, "axis_order_xyz", contract.axis_order_xyz, source);
  {
    std::array<int, 3> sorted = contract.axis_order_xyz;
    std::sort(sorted.begin(), sorted.end());
    if (sorted != std::array<int, 3>{0, 1, 2}) throw Error(source + ": field 'axis_order_xyz' must order 0, 1 and 2");
    if (contract.axis_order_xyz != sorted && !contract.orientation.empty()) {
      throw Error(source + ": fields 'axis_order_xyz' and 'orientation' both reorder the axes; give one");
    }
  }
  read_field(object, "normalize_before_resampling", contract.normalize_before_resampling, source);
  read_field(object, "dicom_in_dcm2niix_order", contract.dicom_in_dcm2niix_order, source);
  read_field(object, "crop_nonzero", contract.crop_nonzero, source);
  read_field(object, "target_spacing_mm", contract.target_spacing_mm, source);
  read_field(object, "target_size_xyz", contract.target_size_xyz, source);
  read_field(object, "anti_alias", contract.anti_alias, source);
  read_field(object, "anisotropy_threshold", contract.anisotropy_threshold, source);
  read_field(object, "sources", contract.sources, source);
  read_field(object, "deviations", contract.deviations, source);
  std::string resize = "none", image_interpolation = "linear", label_interpolation = "nearest";
  read_field(object, "resize", resize, source);
  read_field(object, "image_interpolation", image_interpolation, source);
  read_field(object, "label_interpolation", label_interpolation, source);
  try {
    contract.resize = resize_rule_from_name(resize);
    contract.image_interpolation = interpolation_from_name(image_interpolation);
    contract.label_interpolation = label_interpolation_from_name(label_interpolation);
    if (!contract.orientation.empty()) check_orientation_code(contract.orientation);
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  for (int a = 0; a < 3; ++a) {
    if (contract.resize == ResizeRule::kSpacing && !(contract.target_spacing_mm[a] > 0)) {
      throw Error(source + ": field 'target_spacing_mm' must be positive");
    }
    if (contract.resize == ResizeRule::kSize && contract.target_size_xyz[a] < 1) {
      throw Error(source + ": field 'target_size_xyz' must be positive");
    }
  }
  if (object.contains("intensity")) {
    if (!object["intensity"].is_array()) throw Error(source + ": field 'intensity' must be a list");
    for (const auto& step : object["intensity"]) {
      contract.intensity.push_back(intensity_step_from_json(step, source));
    }
  }
  return contract;
}

Contract read_contract(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open contract");
  json object;
  try {
    in >> object;
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  return contract_from_json(object, path);
}

std::string describe(const Contract& contract) {
  std::ostringstream out;
  auto triple = [](const auto& v) {
    std::ostringstream s;
    s << v[0] << " x " << v[1] << " x " << v[2];
    return s.str();
  };
  out << contract.name << ": " << contract.description << "\n";
  out << "  dims         " << contract.spatial_dims << "D\n";
  out << "  channels     ";
  if (contract.channels.empty()) out << "1 (any)";
  for (std::size_t i = 0; i < contract.channels.size(); ++i) out << (i ? ", " : "") << contract.channels[i];
  out << "\n  orientation  " << (contract.orientation.empty() ? "as stored" : contract.orientation)
      << (contract.orientation.empty() && contract.dicom_in_dcm2niix_order ? " (DICOM in dcm2niix's order)" : "") << "\n";
  if (contract.axis_order_xyz != std::array<int, 3>{0, 1, 2}) {
    out << "  axes         output x y z read input axes " << triple(contract.axis_order_xyz) << "\n";
  }
  out << "  crop         " << (contract.crop_nonzero ? "to the nonzero bounding box" : "none") << "\n";
  out << "  resize       ";
  if (contract.resize == ResizeRule::kSpacing) out << "to spacing " << triple(contract.target_spacing_mm) << " mm";
  else if (contract.resize == ResizeRule::kSize) out << "to size " << triple(contract.target_size_xyz) << " (x, y, z)";
  else out << "none";
  out << "\n  interpolate  images " << interpolation_name(contract.image_interpolation) << ", labels "
      << label_interpolation_name(contract.label_interpolation)
      << (contract.anti_alias ? ", Gaussian anti-aliasing when shrinking" : ", no anti-aliasing") << "\n";
  for (const auto& step : contract.intensity) out << "  intensity    " << describe(step) << "\n";
  if (contract.normalize_before_resampling) out << "  order        intensity before resampling\n";
  for (const auto& source : contract.sources) out << "  source       " << source << "\n";
  for (const auto& deviation : contract.deviations) out << "  deviation    " << deviation << "\n";
  return out.str();
}

}  // namespace graft::preprocess
