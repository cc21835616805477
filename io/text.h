#pragma once

// Small text helpers shared by the readers of manifests and annotation tables.
#include <string>
#include <vector>

namespace graft::io {

bool ends_with(const std::string& text, const std::string& suffix);

// One CSV line split at commas outside double quotes, quotes and carriage returns dropped, each
// field trimmed of spaces and tabs.
std::vector<std::string> split_csv_line(const std::string& line);

}  // namespace graft::io
