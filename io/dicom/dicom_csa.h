#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace graft::io {

// Siemens' private CSA header (0029,1010 "CSA Image Header Info"): named elements, each a list of
// strings. Both layouts exist in the wild: CSA2 starts with "SV10", CSA1 has no signature.
using CsaHeader = std::map<std::string, std::vector<std::string>>;

// Throws graft::Error naming `source` when the bytes are not a CSA header or run past the end.
CsaHeader parse_csa_header(const std::uint8_t* bytes, std::size_t size, const std::string& source);

// The element's values as numbers; empty when the element is absent or has no numeric items.
std::vector<double> csa_numbers(const CsaHeader& header, const std::string& name);

}  // namespace graft::io
