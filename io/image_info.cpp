#include "io/image_info.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/dicom/dicom_series.h"
#include "io/raster/gdal_raster.h"

namespace graft::io {

namespace {

// The info keys every format shares, from what a header gives: no voxels needed.
struct GridInfo {
  std::string format;
  DType dtype;
  std::int64_t channels;
  const Geometry& geometry;
  const Metadata& metadata;
};

nlohmann::json grid_info_json(const GridInfo& grid) {
  const Geometry& g = grid.geometry;
  nlohmann::json direction = nlohmann::json::array();
  for (const auto& row : g.direction) for (double v : row) direction.push_back(v);
  nlohmann::json info{{"format", grid.format},
                      {"dtype", dtype_name(grid.dtype)},
                      {"size", g.size_xyz},
                      {"channels", grid.channels},
                      {"spacing", g.spacing_xyz},
                      {"origin", g.origin_world},
                      {"direction", direction},
                      {"frame", g.frame == Frame::kLPS ? "LPS" : "CRS"},
                      {"crs_wkt", g.crs_wkt},
                      {"band_names", grid.metadata.band_names},
                      {"modality", grid.metadata.modality},
                      {"orientation", orientation_code(g.direction)},
                      {"rescale_applied", grid.metadata.rescale_applied}};
  nlohmann::json segments = nlohmann::json::array();
  for (const LabelSegment& segment : grid.metadata.segments) {
    nlohmann::json entry{{"label_value", segment.label_value}, {"name", segment.name}};
    entry["color_rgb"] = segment.color_rgb ? nlohmann::json(*segment.color_rgb) : nlohmann::json(nullptr);
    segments.push_back(entry);
  }
  info["segments"] = segments;
  const auto& tilt = grid.metadata.gantry_tilt_corrected_degrees;
  info["gantry_tilt_corrected_degrees"] = tilt ? nlohmann::json(*tilt) : nlohmann::json(nullptr);
  info["geotransform"] = g.geotransform ? nlohmann::json(*g.geotransform) : nlohmann::json(nullptr);
  // Per band, null where a band has none; non-finite values as gdalinfo -json writes them.
  const auto& values = grid.metadata.nodata;
  nlohmann::json nodata = nullptr;
  if (std::any_of(values.begin(), values.end(), [](const auto& v) { return v.has_value(); })) {
    nodata = nlohmann::json::array();
    for (const auto& value : values) {
      if (!value) nodata.push_back(nullptr);
      else if (std::isnan(*value)) nodata.push_back("nan");
      else if (std::isinf(*value)) nodata.push_back(*value > 0 ? "inf" : "-inf");
      else nodata.push_back(*value);
    }
  }
  info["nodata"] = nodata;
  return info;
}

// "WGS 84 / UTM zone 18N (EPSG:32618)": the CRS's name and its own authority code (an ID at the
// top level of the WKT, not one of a parameter's inside it).
std::string crs_summary(const std::string& wkt) {
  const auto open = wkt.find('"');
  const auto close = open == std::string::npos ? open : wkt.find('"', open + 1);
  std::string summary = close == std::string::npos ? "unnamed" : wkt.substr(open + 1, close - open - 1);
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < wkt.size(); ++i) {
    const char c = wkt[i];
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth == 1 && wkt.compare(i, 10, "ID[\"EPSG\",") == 0) {
      const auto end = wkt.find(']', i);
      if (end != std::string::npos) summary += " (EPSG:" + wkt.substr(i + 10, end - i - 10) + ")";
    }
  }
  return summary;
}

std::string grid_info_text(const GridInfo& grid) {
  const Geometry& g = grid.geometry;
  const bool lps = g.frame == Frame::kLPS;
  std::ostringstream out;
  out << "format       " << grid.format << "\n";
  out << "dtype        " << dtype_name(grid.dtype) << "\n";
  out << "size         " << g.size_xyz[0] << " x " << g.size_xyz[1] << " x " << g.size_xyz[2]
      << " (x, y, z), " << grid.channels << " channel(s)\n";
  out << "spacing      " << g.spacing_xyz[0] << " x " << g.spacing_xyz[1] << " x "
      << g.spacing_xyz[2] << (lps ? " mm" : " CRS units") << "\n";
  out << "origin       " << g.origin_world[0] << ", " << g.origin_world[1] << ", "
      << g.origin_world[2] << (lps ? "" : " (centre of the first pixel)") << "\n";
  if (lps) out << "orientation  " << orientation_code(g.direction) << " (frame LPS)\n";
  else out << "crs          " << (g.crs_wkt.empty() ? "none" : crs_summary(g.crs_wkt)) << "\n";
  out << "direction    ";
  for (int r = 0; r < 3; ++r) {
    out << "[" << g.direction[r][0] << ", " << g.direction[r][1] << ", " << g.direction[r][2] << "]"
        << (r < 2 ? " " : "\n");
  }
  const Metadata& m = grid.metadata;
  if (std::any_of(m.band_names.begin(), m.band_names.end(), [](const auto& n) { return !n.empty(); })) {
    out << "bands       ";
    for (const auto& name : m.band_names) out << " " << (name.empty() ? "?" : name);
    out << "\n";
  }
  if (std::any_of(m.nodata.begin(), m.nodata.end(), [](const auto& v) { return v.has_value(); })) {
    out << "nodata      ";
    for (const auto& value : m.nodata) {
      if (value) out << " " << *value;
      else out << " none";
    }
    out << "\n";
  }
  if (m.rescale_applied) out << "rescale      slope/intercept applied\n";
  if (m.gantry_tilt_corrected_degrees) {
    out << "tilt         gantry tilt of " << *m.gantry_tilt_corrected_degrees
        << " degrees corrected (slices resampled, linear)\n";
  }
  if (!m.modality.empty()) out << "modality     " << m.modality << "\n";
  if (!m.segments.empty()) {
    out << "segments     " << m.segments.size() << "\n";
    for (const LabelSegment& segment : m.segments) out << "  " << segment.label_value << "  " << segment.name << "\n";
  }
  return out.str();
}

// A GDAL header as graft's grid and metadata, as read_gdal would make them.
struct GdalGrid {
  Geometry geometry;
  Metadata metadata;
  explicit GdalGrid(const GdalRasterInfo& info) {
    geometry = geometry_from_geotransform(info.geotransform.value_or(GeoTransform{0, 1, 0, 0, 0, 1}), info.width,
                                          info.height, info.crs_wkt);
    if (!info.geotransform) geometry.geotransform.reset();
    for (const auto& band : info.bands) {
      metadata.band_names.push_back(band.name);
      metadata.nodata.push_back(band.nodata);
    }
    metadata.source_format = info.source_format;
  }
  GridInfo grid(const GdalRasterInfo& info) const {
    return {metadata.source_format, info.bands.front().dtype, static_cast<std::int64_t>(info.bands.size()), geometry,
            metadata};
  }
};

}  // namespace

nlohmann::json image_info_json(const Image& image) {
  return grid_info_json(
      {image.metadata().source_format, image.dtype(), image.channels(), image.geometry(), image.metadata()});
}

std::string image_info_text(const Image& image) {
  return grid_info_text(
      {image.metadata().source_format, image.dtype(), image.channels(), image.geometry(), image.metadata()});
}

nlohmann::json gdal_info_json(const GdalRasterInfo& info) {
  const GdalGrid gdal(info);
  nlohmann::json json = grid_info_json(gdal.grid(info));
  json["overviews"] = info.bands.front().overview_sizes;
  return json;
}

std::string gdal_info_text(const GdalRasterInfo& info) {
  const GdalGrid gdal(info);
  std::string text = grid_info_text(gdal.grid(info));
  if (!info.bands.front().overview_sizes.empty()) {
    text += "overviews   ";
    for (const auto& size : info.bands.front().overview_sizes) {
      text += " " + std::to_string(size[0]) + "x" + std::to_string(size[1]);
    }
    text += "\n";
  }
  return text;
}

nlohmann::json dicom_series_info_json(const std::vector<DicomSeries>& series) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : series) {
    list.push_back({{"series_instance_uid", s.series_instance_uid},
                    {"sub_series", s.sub_series},
                    {"selector", dicom_series_selector(s)},
                    {"series_number", s.series_number},
                    {"series_description", s.series_description},
                    {"modality", s.modality},
                    {"images", s.frame_count},
                    {"files", s.files.size()},
                    {"rows", s.rows},
                    {"columns", s.columns}});
  }
  return {{"format", "dicom"}, {"series", list}};
}

std::string dicom_series_info_text(const std::vector<DicomSeries>& series) {
  std::ostringstream out;
  out << series.size() << " DICOM series\n";
  for (const auto& s : series) {
    out << "  #" << s.series_number << "  " << (s.modality.empty() ? "?" : s.modality) << "  \""
        << s.series_description << "\"  " << s.frame_count << " images in " << s.files.size() << " files, "
        << s.columns << " x " << s.rows << "\n      select with #" << dicom_series_selector(s) << "\n";
  }
  return out.str();
}

}  // namespace graft::io
