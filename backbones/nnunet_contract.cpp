#include "backbones/nnunet_contract.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "backbones/nnunet_architecture.h"
#include "io/error.h"

namespace graft::backbones {
namespace {

using nlohmann::json;

// A string-keyed mapping from integer strings ("0", "1", ...) to values, in index order; the
// indices must be 0..N-1.
std::vector<json> indexed_entries(const json& mapping, const std::string& where) {
  if (!mapping.is_object()) throw Error(where + " must be a mapping");
  std::map<int, json> by_index;
  for (const auto& item : mapping.items()) {
    int index = -1;
    try {
      std::size_t used = 0;
      index = std::stoi(item.key(), &used);
      if (used != item.key().size()) index = -1;
    } catch (const std::exception&) {
    }
    if (index < 0) throw Error(where + ": key '" + item.key() + "' is not a channel index");
    by_index[index] = item.value();
  }
  std::vector<json> entries;
  for (const auto& [index, value] : by_index) {
    if (index != static_cast<int>(entries.size())) {
      throw Error(where + ": indices must run 0.." + std::to_string(by_index.size() - 1) + " (missing " +
                  std::to_string(entries.size()) + ")");
    }
    entries.push_back(value);
  }
  return entries;
}

std::string plain(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

preprocess::Interpolation interpolation_of_order(const json& order, const std::string& where) {
  if (!order.is_number_integer()) throw Error(where + " must be an integer spline order");
  switch (order.get<int>()) {
    case 0: return preprocess::Interpolation::kNearest;
    case 1: return preprocess::Interpolation::kLinear;
    case 3: return preprocess::Interpolation::kBSpline;
    default: throw Error(where + " is " + order.dump() + "; graft resamples with order 0, 1 or 3");
  }
}

}  // namespace

NnUNetDataset nnunet_dataset(const json& dataset, const std::string& source) {
  NnUNetDataset out;
  const char* channels_key = dataset.contains("channel_names") ? "channel_names" : "modality";
  if (!dataset.contains(channels_key)) throw Error(source + ": no 'channel_names' (or 'modality')");
  for (const json& name : indexed_entries(dataset[channels_key], source + ": field '" + channels_key + "'")) {
    if (!name.is_string()) throw Error(source + ": field '" + channels_key + "' must map indices to names");
    out.channel_names.push_back(name.get<std::string>());
  }
  if (dataset.contains("regions_class_order")) {
    throw Error(source + ": field 'regions_class_order': region-based labels (overlapping regions trained with "
                         "sigmoids) are not supported; graft imports models whose labels are exclusive classes");
  }
  if (!dataset.contains("labels") || !dataset["labels"].is_object()) throw Error(source + ": no 'labels' mapping");
  std::map<int, std::string> by_value;
  for (const auto& item : dataset["labels"].items()) {
    // nnU-Net v2 maps names to values; v1 (and some converted folders) values to names.
    std::string name = item.key();
    json value = item.value();
    if (value.is_string()) {
      name = value.get<std::string>();
      try {
        value = std::stoi(item.key());
      } catch (const std::exception&) {
        throw Error(source + ": field 'labels': '" + item.key() + "' is neither a label name nor a label value");
      }
    }
    if (value.is_array()) {
      throw Error(source + ": field 'labels': '" + name + "' is a region (" + value.dump() +
                  "); region-based labels are not supported");
    }
    if (!value.is_number_integer()) throw Error(source + ": field 'labels': '" + name + "' must map to an integer");
    // The ignore label is left out of training and is not one of the network's outputs.
    if (name == "ignore") continue;
    const int v = value.get<int>();
    if (!by_value.emplace(v, name).second) {
      throw Error(source + ": field 'labels': value " + std::to_string(v) + " is given twice");
    }
  }
  for (const auto& [value, name] : by_value) {
    if (value != static_cast<int>(out.class_names.size())) {
      throw Error(source + ": field 'labels': values must run 0.." + std::to_string(by_value.size() - 1) +
                  " with background 0 (missing " + std::to_string(out.class_names.size()) + ")");
    }
    out.class_names.push_back(name);
  }
  if (out.class_names.size() < 2) throw Error(source + ": field 'labels' needs background and at least one class");
  return out;
}

preprocess::Contract nnunet_contract(const json& plans, const NnUNetDataset& dataset, const std::string& configuration,
                                     const std::string& source) {
  const json config = nnunet_configuration(plans, configuration, source);
  const std::string where = source + ": configuration '" + configuration + "'";
  preprocess::Contract contract;
  try {
    const int dims = static_cast<int>(config.at("patch_size").size());
    const std::string dataset_name = plans.value("dataset_name", std::string("nnUNet"));
    contract.name = "nnunet-" + dataset_name + "-" + configuration;
    contract.description = "nnU-Net v2 " + configuration + " preprocessing of " + dataset_name + " (" +
                           plans.value("plans_name", std::string("nnUNetPlans")) + ")";
    contract.spatial_dims = dims;
    contract.channels = dataset.channel_names;
    // nnU-Net reads a file's axes as they are stored (SimpleITK's array order z, y, x) and only
    // transposes them; it never reorients by world direction.
    const auto transpose = plans.at("transpose_forward").get<std::vector<int>>();
    std::vector<int> sorted = transpose;
    std::sort(sorted.begin(), sorted.end());
    if (sorted != std::vector<int>{0, 1, 2}) throw Error(source + ": field 'transpose_forward' must order 0, 1, 2");
    // Array axis a is xyz axis 2 - a: output xyz axis t is array axis 2 - t, which reads input
    // array axis transpose[2 - t], which is xyz axis 2 - transpose[2 - t].
    for (int t = 0; t < 3; ++t) contract.axis_order_xyz[t] = 2 - transpose[2 - t];
    // nnU-Net's users convert DICOM with dcm2niix (TotalSegmentator does so itself).
    contract.dicom_in_dcm2niix_order = true;
    contract.crop_nonzero = true;
    contract.resize = preprocess::ResizeRule::kSpacing;
    const auto spacing = config.at("spacing").get<std::vector<double>>();
    if (static_cast<int>(spacing.size()) != dims) throw Error(where + ": field 'spacing' needs " + std::to_string(dims) + " entries");
    // Listed in the transposed array order (z, y, x); a 2D configuration keeps each slice's z.
    contract.target_spacing_mm = {spacing[dims - 1], spacing[dims - 2], dims == 3 ? spacing[0] : 1.0};
    for (double s : spacing) {
      if (!(s > 0)) throw Error(where + ": field 'spacing' must be positive");
    }
    contract.anti_alias = false;
    contract.anisotropy_threshold = 3.0;  // nnU-Net's ANISO_THRESHOLD
    const json data_kwargs = config.value("resampling_fn_data_kwargs", json::object());
    contract.image_interpolation =
        interpolation_of_order(data_kwargs.value("order", json(3)), where + ": resampling_fn_data_kwargs.order");
    contract.label_interpolation = preprocess::LabelInterpolation::kPerLabelLinear;
    const json order_z = data_kwargs.value("order_z", json(0));
    if (order_z != json(0)) {
      throw Error(where + ": resampling_fn_data_kwargs.order_z is " + order_z.dump() +
                  "; graft resamples the coarse axis of anisotropic images with nearest (order_z 0)");
    }
    const json force = data_kwargs.value("force_separate_z", json(nullptr));
    if (!force.is_null()) {
      throw Error(where + ": resampling_fn_data_kwargs.force_separate_z is " + force.dump() +
                  "; graft follows nnU-Net's default rule (null: by the spacing ratio)");
    }
    const auto schemes = config.at("normalization_schemes").get<std::vector<std::string>>();
    const auto use_mask = config.value("use_mask_for_norm", std::vector<bool>(schemes.size(), false));
    if (schemes.size() != dataset.channel_names.size() || use_mask.size() != schemes.size()) {
      throw Error(where + ": field 'normalization_schemes' has " + std::to_string(schemes.size()) +
                  " entries for " + std::to_string(dataset.channel_names.size()) + " channels");
    }
    const json properties = plans.value("foreground_intensity_properties_per_channel", json::object());
    for (std::size_t c = 0; c < schemes.size(); ++c) {
      const std::string& scheme = schemes[c];
      preprocess::IntensityStep step;
      step.channel = static_cast<int>(c);
      if (scheme == "CTNormalization") {
        const std::string key = std::to_string(c);
        if (!properties.contains(key)) {
          throw Error(source + ": field 'foreground_intensity_properties_per_channel' has no entry '" + key +
                      "', which CTNormalization of channel " + key + " needs");
        }
        const json& p = properties[key];
        preprocess::IntensityStep clip = step;
        clip.kind = preprocess::IntensityKind::kClip;
        clip.clip_min = p.at("percentile_00_5").get<double>();
        clip.clip_max = p.at("percentile_99_5").get<double>();
        contract.intensity.push_back(clip);
        step.kind = preprocess::IntensityKind::kChannelMeanStd;
        step.mean = {p.at("mean").get<double>()};
        step.std = {std::max(p.at("std").get<double>(), 1e-8)};
        contract.intensity.push_back(step);
      } else if (scheme == "ZScoreNormalization") {
        step.kind = preprocess::IntensityKind::kZScore;
        step.over_nonzero = use_mask[c];
        step.outside_mask = use_mask[c] ? preprocess::OutsideMask::kZero : preprocess::OutsideMask::kNormalize;
        step.nonzero_mask = preprocess::NonzeroMask::kAnyChannelHolesFilled;
        contract.intensity.push_back(step);
      } else if (scheme == "RescaleTo01Normalization") {
        step.kind = preprocess::IntensityKind::kRescaleTo01;
        contract.intensity.push_back(step);
      } else if (scheme == "RGBTo0_1Normalization") {
        step.kind = preprocess::IntensityKind::kScaleOffset;
        step.scale = 1.0 / 255.0;
        contract.intensity.push_back(step);
      } else if (scheme != "NoNormalization") {
        throw Error(where + ": field 'normalization_schemes' names '" + scheme +
                    "', which graft does not implement (CTNormalization, ZScoreNormalization, NoNormalization, "
                    "RescaleTo01Normalization, RGBTo0_1Normalization)");
      }
    }
    contract.normalize_before_resampling = true;
    std::string spacing_text;
    for (double s : spacing) spacing_text += (spacing_text.empty() ? "" : ", ") + plain(s);
    contract.sources = {"nnU-Net v2 plans (" + source + "), configuration " + configuration +
                            ": transpose_forward, spacing [" + spacing_text + "] (z, y, x), normalization_schemes, "
                            "resampling_fn_data_kwargs",
                        "nnU-Net's DefaultPreprocessor: transpose, crop to nonzero, normalise, resample"};
    contract.deviations = {
        "the coarse axis is resampled separately when the input's spacing is anisotropic (max/min > 3); nnU-Net "
        "also does so when only the target spacing is",
        "cubic resampling is graft's B-spline (scipy.ndimage's order 3), where nnU-Net calls skimage's resize; "
        "values differ by a fraction of the intensity step near edges"};
  } catch (const json::exception& e) {
    throw Error(where + ": " + e.what());
  }
  return contract;
}

std::vector<std::int64_t> nnunet_patch_size_xyz(const json& plans, const std::string& configuration,
                                                const std::string& source) {
  const json config = nnunet_configuration(plans, configuration, source);
  std::vector<std::int64_t> patch;
  try {
    patch = config.at("patch_size").get<std::vector<std::int64_t>>();
  } catch (const json::exception& e) {
    throw Error(source + ": configuration '" + configuration + "': field 'patch_size' (" + e.what() + ")");
  }
  if (patch.size() == 2) return {patch[1], patch[0], 1};
  if (patch.size() == 3) return {patch[2], patch[1], patch[0]};
  throw Error(source + ": configuration '" + configuration + "': field 'patch_size' needs 2 or 3 sizes");
}

}  // namespace graft::backbones
