#pragma once

#include <array>
#include <string>
#include <utility>

#include "io/error.h"

namespace graft::preprocess {

// One table per enum maps values to the names used in JSON and on the command line, so the
// parser, the printer and the "expected ..." part of an error message can never disagree.
template <typename Enum, std::size_t N>
using NameTable = std::array<std::pair<Enum, const char*>, N>;

template <typename Enum, std::size_t N>
std::string name_of(const NameTable<Enum, N>& table, Enum value) {
  for (const auto& [candidate, name] : table) {
    if (candidate == value) return name;
  }
  return table[0].second;
}

template <typename Enum, std::size_t N>
Enum value_of(const NameTable<Enum, N>& table, const std::string& name, const std::string& what) {
  std::string expected;
  for (std::size_t i = 0; i < N; ++i) {
    if (table[i].second == name) return table[i].first;
    expected += (i == 0 ? "" : (i + 1 == N ? " or " : ", ")) + std::string(table[i].second);
  }
  throw Error("unknown " + what + " '" + name + "' (expected " + expected + ")");
}

}  // namespace graft::preprocess
