// libgraft_io's side of gdal_raster.h: every call goes through the GDAL module's entry points,
// loaded on the first call (see gdal_module.h for why GDAL is a module).

#include "io/error.h"
#include "io/io_module.h"
#include "io/raster/gdal_module.h"
#include "io/raster/gdal_raster.h"

namespace graft::io {

namespace {

const gdal_module::EntryPoints& gdal(const std::string& needed_by) {
#ifdef GRAFT_IO_MODULES_LINKED
  (void)needed_by;
  return *graft_io_gdal_entry_points();
#else
  static IoModule<gdal_module::EntryPoints> module("libgraft_io_gdal.so", "graft_io_gdal_entry_points", gdal_module::kEntryPointsVersion,
                                              "a GDAL raster (GeoTIFF, COG, ...)");
  return module.entry_points(needed_by);
#endif
}

}  // namespace

bool gdal_can_read(const std::string& path) { return gdal(path).gdal_can_read(path); }

GdalRasterInfo read_gdal_info(const std::string& path) { return gdal(path).read_gdal_info(path); }

Image read_gdal(const std::string& path, const GdalReadOptions& options) {
  return gdal(path).read_gdal(path, options);
}

void write_gdal(const Image& image, const std::string& path, const GdalWriteOptions& options) {
  gdal(path).write_gdal(image, path, options);
}

Image read_band_stack(const std::vector<std::string>& files, const BandStackOptions& options) {
  return gdal(files.empty() ? std::string("band stack") : files.front()).read_band_stack(files, options);
}

bool same_crs(const std::string& wkt_a, const std::string& wkt_b) {
  if (wkt_a.empty() || wkt_b.empty()) return wkt_a.empty() && wkt_b.empty();
  if (wkt_a == wkt_b) return true;
  return gdal("a CRS comparison").same_crs(wkt_a, wkt_b);
}

std::vector<std::array<double, 2>> lon_lat_from_crs(const std::string& crs_wkt,
                                                    const std::vector<std::array<double, 2>>& map_xy,
                                                    const std::string& what) {
  return gdal(what).lon_lat_from_crs(crs_wkt, map_xy, what);
}

struct GdalRasterWriter::State {
  std::unique_ptr<gdal_module::WindowWriter> writer;
};

GdalRasterWriter::GdalRasterWriter(const std::string& path, const RasterLayout& layout,
                                   const GdalWriteOptions& options)
    : state_(std::make_unique<State>(State{gdal(path).open_window_writer(path, layout, options)})) {}

GdalRasterWriter::~GdalRasterWriter() = default;

void GdalRasterWriter::write(const Image& window, std::int64_t x, std::int64_t y) { state_->writer->write(window, x, y); }

void GdalRasterWriter::finish() { state_->writer->finish(); }

}  // namespace graft::io
