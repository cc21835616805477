#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "io/image.h"

namespace graft::io {

// The same keys for every format: format, dtype, size [x,y,z], channels, spacing, origin,
// direction (9 numbers, row-major, LPS), frame, crs_wkt, geotransform, nodata, band_names,
// modality, orientation.
nlohmann::json image_info_json(const Image& image);
std::string image_info_text(const Image& image);

}  // namespace graft::io
