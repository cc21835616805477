#pragma once

// Inside libgraft_io: the table through which the functions of gdal_raster.h reach GDAL. GDAL
// brings about 110 shared libraries of its own (PROJ, GEOS, Poppler, Xerces, netCDF, ...), so its
// wrapper is a module, libgraft_io_gdal.so, opened the first time a raster is sniffed, read or
// written (io/io_module.h).
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/io_module.h"
#include "io/raster/gdal_raster.h"

namespace graft::io::gdal_module {

// A GeoTIFF or COG written window by window (GdalRasterWriter's work).
class WindowWriter {
 public:
  virtual ~WindowWriter() = default;
  virtual void write(const Image& window, std::int64_t x, std::int64_t y) = 0;
  virtual void finish() = 0;
};

// The module and libgraft_io are built together; a module from another build is refused.
inline constexpr int kEntryPointsVersion = 1;

struct EntryPoints {
  int version;
  bool (*gdal_can_read)(const std::string& path);
  GdalRasterInfo (*read_gdal_info)(const std::string& path);
  Image (*read_gdal)(const std::string& path, const GdalReadOptions& options);
  void (*write_gdal)(const Image& image, const std::string& path, const GdalWriteOptions& options);
  Image (*read_band_stack)(const std::vector<std::string>& files, const BandStackOptions& options);
  bool (*same_crs)(const std::string& wkt_a, const std::string& wkt_b);
  std::vector<std::array<double, 2>> (*lon_lat_from_crs)(const std::string& crs_wkt,
                                                         const std::vector<std::array<double, 2>>& map_xy,
                                                         const std::string& what);
  std::unique_ptr<WindowWriter> (*open_window_writer)(const std::string& path, const RasterLayout& layout,
                                                      const GdalWriteOptions& options);
};

// The module's side, defined in gdal_raster.cpp.
std::unique_ptr<WindowWriter> open_window_writer(const std::string& path, const RasterLayout& layout,
                                                 const GdalWriteOptions& options);

}  // namespace graft::io::gdal_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::gdal_module::EntryPoints* graft_io_gdal_entry_points();
