#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace graft::finetune {

// Every field of a training run with its default; a run file (YAML or JSON) overrides any of
// them, and `--set a.b=c` overrides those. The resolved result is saved beside every checkpoint.
nlohmann::json default_run_config();

// Reads YAML or JSON (JSON is YAML), merges it over the defaults, applies `a.b=value` overrides
// (value parsed as JSON when it parses, else taken as a string), and checks that every key is a
// known one, so a typo is an error naming the key rather than a silently ignored setting.
nlohmann::json resolve_run_config(const std::string& path, const std::vector<std::string>& overrides);

// Merges `overrides` into `base` key by key (objects recursively), refusing unknown keys.
void merge_config(nlohmann::json& base, const nlohmann::json& overrides, const std::string& where);

// One JSON file of a model folder; errors name the file (missing, or not JSON).
nlohmann::json read_json_file(const std::string& path);

}  // namespace graft::finetune
