#pragma once

// Which input channel feeds each band a Contract names: matched by band name, with the spelling
// differences real files have (BigEarthNet's B01 is TorchGeo's B1), or filled when missing.
#include <string>
#include <vector>

namespace graft::preprocess {

// Upper case, and a band number without leading zeros: "b01" -> "B1", "B8A" -> "B8A",
// "B08" -> "B8". Other names ("Red", "NIR") are only upper-cased.
std::string canonical_band_name(const std::string& name);

struct BandMatch {
  // For each wanted band, the input channel that holds it, or -1 when it is filled with zeros.
  std::vector<int> input_channel;
  std::vector<std::string> missing;  // wanted bands the input lacks (filled, when allowed)
};

// Finds each of `wanted` among `available` by canonical name. A wanted band the input lacks is
// refused (graft::Error listing what is missing and what the input has) unless fill_missing;
// two input channels with one canonical name are refused as ambiguous.
BandMatch match_bands(const std::vector<std::string>& wanted,
                      const std::vector<std::string>& available, bool fill_missing,
                      const std::string& contract_name);

}  // namespace graft::preprocess
