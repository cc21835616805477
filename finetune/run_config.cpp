#include "finetune/run_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>

#include "io/error.h"

namespace graft::finetune {
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

}  // namespace

nlohmann::json default_run_config() {
  return nlohmann::json::parse(R"({
    "task": "segmentation",
    "backbone": "med3d-resnet10",
    "weights": "",
    "lenient": false,
    "in_channels": 0,
    "head": "medicalnet",
    "classes": 2,
    "class_names": [],
    "multi_label": false,
    "seed": 0,
    "output": "graft-run",
    "data": {
      "manifest": "",
      "folds": 5,
      "fold": 0,
      "patch_size": [64, 64, 32],
      "batch_size": 2,
      "batches_per_epoch": 50,
      "foreground_fraction": 0.33,
      "workers": 2,
      "prefetch": 4,
      "augment": true,
      "band_names": [],
      "fill_missing_bands": false,
      "cache_dir": "",
      "contract": {}
    },
    "train": {
      "epochs": 20,
      "optimizer": "sgd",
      "lr": 0.001,
      "momentum": 0.9,
      "weight_decay": 0.0001,
      "head_lr_multiplier": 100.0,
      "layer_decay": 1.0,
      "schedule": "poly",
      "poly_power": 0.9,
      "exponential_gamma": 0.95,
      "freeze_backbone_epochs": 0,
      "grad_clip_norm": 12.0,
      "loss": "dice_ce",
      "early_stopping_patience": 0,
      "threads": 0,
      "device": "cpu",
      "precision": "fp32",
      "max_validation_cases": 0,
      "linear_probe": false
    },
    "detection": {
      "fpn_channels": 64,
      "score_threshold": 0.05,
      "nms_iou": 0.3,
      "max_detections": 100,
      "window_size": []
    },
    "mil": {
      "feature_dim": 0,
      "hidden": 512,
      "attention": 256,
      "dropout": 0.25
    },
    "predict": {
      "overlap": 0.5,
      "mirror": false
    }
  })");
}

void merge_config(nlohmann::json& base, const nlohmann::json& overrides, const std::string& where) {
  if (!overrides.is_object()) throw Error(where + ": a run config must be a mapping of keys");
  for (const auto& item : overrides.items()) {
    const std::string key = item.key();
    // data.contract holds Contract fields, checked when the Contract is built.
    if (!base.contains(key)) throw Error(where + ": unknown setting '" + key + "'");
    if (base[key].is_object() && key != "contract") {
      merge_config(base[key], item.value(), where + ": " + key);
    } else if (key == "contract") {
      if (!item.value().is_object()) throw Error(where + ": 'contract' must be a mapping");
      base[key].update(item.value());
    } else {
      base[key] = item.value();
    }
  }
}

nlohmann::json resolve_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json config = default_run_config();
  if (!path.empty()) {
    YAML::Node node;
    try {
      node = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      throw Error(path + ": cannot read run config (" + std::string(e.what()) + ")");
    }
    merge_config(config, yaml_to_json(node), path);
  }
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
    std::string rest = dotted;
    std::vector<std::string> keys;
    for (std::size_t start = 0;;) {
      const auto dot = rest.find('.', start);
      keys.push_back(rest.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    for (auto key = keys.rbegin(); key != keys.rend(); ++key) patch = nlohmann::json{{*key, patch}};
    merge_config(config, patch, "--set " + dotted);
  }
  return config;
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
