#include "io/image_info.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "io/dicom_series.h"

namespace graft::io {

nlohmann::json image_info_json(const Image& image) {
  const Geometry& g = image.geometry();
  nlohmann::json direction = nlohmann::json::array();
  for (const auto& row : g.direction) for (double v : row) direction.push_back(v);
  nlohmann::json info{{"format", image.metadata().source_format},
                      {"dtype", dtype_name(image.dtype())},
                      {"size", g.size_xyz},
                      {"channels", image.channels()},
                      {"spacing", g.spacing_xyz},
                      {"origin", g.origin_world},
                      {"direction", direction},
                      {"frame", g.frame == Frame::kLPS ? "LPS" : "CRS"},
                      {"crs_wkt", g.crs_wkt},
                      {"band_names", image.metadata().band_names},
                      {"modality", image.metadata().modality},
                      {"orientation", orientation_code(g.direction)},
                      {"rescale_applied", image.metadata().rescale_applied}};
  info["geotransform"] = g.geotransform ? nlohmann::json(*g.geotransform) : nlohmann::json(nullptr);
  info["nodata"] = image.metadata().nodata ? nlohmann::json(*image.metadata().nodata)
                                           : nlohmann::json(nullptr);
  return info;
}

std::string image_info_text(const Image& image) {
  const Geometry& g = image.geometry();
  std::ostringstream out;
  out << "format       " << image.metadata().source_format << "\n";
  out << "dtype        " << dtype_name(image.dtype()) << "\n";
  out << "size         " << g.size_xyz[0] << " x " << g.size_xyz[1] << " x " << g.size_xyz[2]
      << " (x, y, z), " << image.channels() << " channel(s)\n";
  out << "spacing      " << g.spacing_xyz[0] << " x " << g.spacing_xyz[1] << " x "
      << g.spacing_xyz[2] << (g.frame == Frame::kLPS ? " mm" : " CRS units") << "\n";
  out << "origin       " << g.origin_world[0] << ", " << g.origin_world[1] << ", "
      << g.origin_world[2] << "\n";
  out << "orientation  " << orientation_code(g.direction) << " (frame "
      << (g.frame == Frame::kLPS ? "LPS" : "CRS") << ")\n";
  out << "direction    ";
  for (int r = 0; r < 3; ++r) {
    out << "[" << g.direction[r][0] << ", " << g.direction[r][1] << ", " << g.direction[r][2] << "]"
        << (r < 2 ? " " : "\n");
  }
  if (image.metadata().rescale_applied) out << "rescale      slope/intercept applied\n";
  if (!image.metadata().modality.empty()) out << "modality     " << image.metadata().modality << "\n";
  return out.str();
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
