#include "preprocess/bands.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "io/error.h"

namespace graft::preprocess {

std::string canonical_band_name(const std::string& name) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  if (upper.size() < 2 || upper[0] != 'B' || !std::isdigit(static_cast<unsigned char>(upper[1])))
    return upper;
  std::size_t digits_end = 1;
  while (digits_end < upper.size() && std::isdigit(static_cast<unsigned char>(upper[digits_end])))
    ++digits_end;
  const std::string rest = upper.substr(digits_end);
  if (!rest.empty() && rest != "A") return upper;  // not a band number ("B2_MASK")
  std::size_t first = 1;
  while (first + 1 < digits_end && upper[first] == '0') ++first;
  return "B" + upper.substr(first, digits_end - first) + rest;
}

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names)
    text += (text.empty() ? "" : ", ") + (name.empty() ? std::string("?") : name);
  return text;
}

}  // namespace

BandMatch match_bands(const std::vector<std::string>& wanted,
                      const std::vector<std::string>& available, bool fill_missing,
                      const std::string& contract_name) {
  std::map<std::string, int> by_name;
  for (std::size_t i = 0; i < available.size(); ++i) {
    if (available[i].empty()) continue;
    const std::string key = canonical_band_name(available[i]);
    const auto [where, inserted] = by_name.emplace(key, static_cast<int>(i));
    if (!inserted) {
      throw Error("input channels " + std::to_string(where->second) + " (" +
                  available[where->second] + ") and " + std::to_string(i) + " (" + available[i] +
                  ") are both band " + key + "; name them apart");
    }
  }
  BandMatch match;
  for (const auto& band : wanted) {
    const auto found = by_name.find(canonical_band_name(band));
    if (found != by_name.end()) {
      match.input_channel.push_back(found->second);
    } else {
      match.input_channel.push_back(-1);
      match.missing.push_back(band);
    }
  }
  if (!match.missing.empty() && !fill_missing) {
    throw Error("input lacks band(s) " + joined(match.missing) + " that " + contract_name +
                " expects (input has " + joined(available) +
                "); supply them, name the input's bands, or fill the missing ones with zeros " +
                "after normalisation (--fill-missing-bands)");
  }
  return match;
}

}  // namespace graft::preprocess
