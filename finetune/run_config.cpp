#include "finetune/run_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>

#include "finetune/model_folder.h"
#include "io/error.h"

namespace graft::finetune {

// The keys are the field names, so config.json reads like the structs.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DataSettings, manifest, folds, fold, patch_size, batch_size, batches_per_epoch,
                                   foreground_fraction, workers, prefetch, augment, band_names, fill_missing_bands,
                                   cache_dir, contract)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainSettings, epochs, optimizer, lr, momentum, weight_decay, head_lr_multiplier,
                                   layer_decay, schedule, poly_power, exponential_gamma, freeze_backbone_epochs,
                                   grad_clip_norm, loss, early_stopping_patience, threads, device, precision,
                                   max_validation_cases, linear_probe, batchnorm, adapter, lora_rank, lora_alpha,
                                   lora_targets, side_reduction, activation_checkpointing)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DetectionSettings, fpn_channels, score_threshold, nms_iou, max_detections,
                                   window_size)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MilSettings, feature_dim, hidden, attention, dropout)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PredictSettings, overlap, mirror, mirror_axes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunConfig, task, backbone, weights, init_from, lenient, in_channels, head, network,
                                   ensemble_size, classes, class_names, multi_label, seed, output, data, train, detection, mil,
                                   predict)

namespace {

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& item : node) out[item.first.as<std::string>()] = yaml_to_json(item.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (node.Tag() == "!") return text;  // quoted: always a string
      try {
        return nlohmann::json::parse(text);  // numbers, true/false, null
      } catch (const nlohmann::json::exception&) {
        if (text == "yes" || text == "True") return true;
        if (text == "no" || text == "False") return false;
        return text;
      }
    }
    default:
      return nullptr;
  }
}

const char* kind_of(const nlohmann::json& value) {
  if (value.is_number()) return "a number";
  if (value.is_boolean()) return "true or false";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  if (value.is_object()) return "a mapping";
  return "null";
}

bool same_kind(const nlohmann::json& wanted, const nlohmann::json& given) {
  if (wanted.is_number()) {
    // An integer setting takes no fraction; a real one takes integers too.
    const bool whole = !given.is_number_float() || given.get<double>() == static_cast<double>(given.get<std::int64_t>());
    return given.is_number() && (wanted.is_number_float() || whole);
  }
  return wanted.type() == given.type();
}

}  // namespace

nlohmann::json to_json(const RunConfig& config) { return config; }

RunConfig default_run_config() { return RunConfig{}; }

void merge_config(nlohmann::json& base, const nlohmann::json& overrides, const std::string& where) {
  if (!overrides.is_object()) throw Error(where + ": a run config must be a mapping of keys");
  for (const auto& item : overrides.items()) {
    const std::string key = item.key();
    // data.contract holds Contract fields, checked when the Contract is built.
    if (!base.contains(key)) throw Error(where + ": unknown setting '" + key + "'");
    if (key == "contract") {
      if (!item.value().is_object()) throw Error(where + ": 'contract' must be a mapping");
      base[key].update(item.value());
    } else if (key == "network") {
      // An architecture is one value, checked when the network is built.
      if (!item.value().is_object()) throw Error(where + ": 'network' must be a mapping");
      base[key] = item.value();
    } else if (base[key].is_object()) {
      merge_config(base[key], item.value(), where + ": " + key);
    } else if (!same_kind(base[key], item.value())) {
      throw Error(where + ": setting '" + key + "' must be " + kind_of(base[key]) +
                  (base[key].is_number() && base[key].is_number_integer() ? " (whole)" : "") + ", got " +
                  item.value().dump());
    } else {
      base[key] = item.value();
    }
  }
}

RunConfig run_config_from_json(const nlohmann::json& json, const std::string& where) {
  nlohmann::json merged = to_json(RunConfig{});
  merge_config(merged, json, where);
  return merged.get<RunConfig>();
}

RunConfig resolve_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json file = nlohmann::json::object();
  if (!path.empty()) {
    YAML::Node node;
    try {
      node = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      throw Error(path + ": cannot read run config (" + std::string(e.what()) + ")");
    }
    file = yaml_to_json(node);
  }
  const auto merge_run = [&](nlohmann::json& config) {
    if (!path.empty()) merge_config(config, file, path);
    for (const std::string& assignment : overrides) {
      const auto equals = assignment.find('=');
      if (equals == std::string::npos) throw Error("--set " + assignment + ": expected key=value");
      const std::string dotted = assignment.substr(0, equals), text = assignment.substr(equals + 1);
      nlohmann::json value;
      try {
        value = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception&) {
        value = text;
      }
      nlohmann::json patch = value;
      std::vector<std::string> keys;
      for (std::size_t start = 0;;) {
        const auto dot = dotted.find('.', start);
        keys.push_back(dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
      }
      for (auto key = keys.rbegin(); key != keys.rend(); ++key) patch = nlohmann::json{{*key, patch}};
      merge_config(config, patch, "--set " + dotted);
    }
  };
  nlohmann::json config = to_json(RunConfig{});
  // A run that does not name its classes takes them from its data: the labels (segmentation,
  // detection) or the class names (classification, MIL).
  config["classes"] = 0;
  merge_run(config);
  const std::string init_from = config["init_from"].get<std::string>();
  if (init_from.empty()) return config.get<RunConfig>();

  nlohmann::json base = to_json(read_run_folder_config(init_from));
  const RunConfig defaults;
  base["output"] = defaults.output;
  base["weights"] = defaults.weights;
  base["data"]["manifest"] = defaults.data.manifest;
  base["data"]["cache_dir"] = defaults.data.cache_dir;
  merge_run(base);
  base["init_from"] = init_from;
  return base.get<RunConfig>();
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": missing or unreadable");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

}  // namespace graft::finetune
