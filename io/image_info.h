#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/image.h"

namespace graft::io {

// The same keys for every format: format, dtype, size [x,y,z], channels, spacing, origin,
// direction (9 numbers, row-major, LPS), frame, crs_wkt, geotransform, nodata (per band, or
// null), band_names, modality, orientation.
nlohmann::json image_info_json(const Image& image);
std::string image_info_text(const Image& image);

struct GdalRasterInfo;
// A GDAL raster's header with the same keys as image_info_json (plus "overviews"), read without
// its pixels, so that a 10980 x 10980 scene answers at once.
nlohmann::json gdal_info_json(const GdalRasterInfo& info);
std::string gdal_info_text(const GdalRasterInfo& info);

struct DicomSeries;
// The series found in a DICOM folder: number, modality, description, image count, size and the
// selector that picks each. Never a patient field.
nlohmann::json dicom_series_info_json(const std::vector<DicomSeries>& series);
std::string dicom_series_info_text(const std::vector<DicomSeries>& series);

}  // namespace graft::io
