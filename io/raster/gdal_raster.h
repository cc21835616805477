#pragma once

// Rasters through GDAL: GeoTIFF, COG and anything else GDAL opens, into graft's Image (bands as
// channels, a 2D CRS grid with the geotransform kept exactly) and back out as GeoTIFF or COG.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/image.h"

namespace graft::io {

// Whether GDAL recognises the file as a raster (its drivers' own sniffing, not the extension).
bool gdal_can_read(const std::string& path);

struct GdalBand {
  int number = 1;            // 1-based, as GDAL counts
  std::string name;          // description, else colour interpretation (Red, ...), else ""
  std::string description;   // as stored
  std::string colour;        // GDAL's colour interpretation name
  DType dtype = DType::kU8;  // as stored
  std::optional<double> nodata;
  std::vector<std::array<std::int64_t, 2>> overview_sizes;  // (width, height) per level
};

struct GdalRasterInfo {
  std::string driver;         // GDAL's short name: "GTiff" (COG files too), "PNG", ...
  std::string source_format;  // graft's name for it: "geotiff", or "gdal:png" and the like
  std::int64_t width = 0, height = 0;
  std::optional<GeoTransform> geotransform;
  std::string crs_wkt;  // WKT2 (2019), multi-line, as gdalinfo prints it; "" when absent
  std::vector<GdalBand> bands;
};

// Header only: size, bands, geotransform, CRS, nodata, overviews. No pixels are read.
GdalRasterInfo read_gdal_info(const std::string& path);

// A pixel rectangle of the full-resolution raster.
struct PixelWindow {
  std::int64_t x = 0, y = 0, width = 0, height = 0;
};

struct GdalReadOptions {
  std::optional<PixelWindow> window;  // only these pixels are read from the file
  int overview = -1;                  // -1: full resolution; k: GDAL's overview level k
  std::vector<int> bands;             // 1-based band numbers in the order wanted; empty: all
};

// Reads bands as channels. A window or an overview keeps the geotransform exact for what was
// read (shifted or scaled). Throws graft::Error naming the file and GDAL's reason (a corrupt
// block, a window outside the raster, a band that does not exist, a complex-valued band).
Image read_gdal(const std::string& path, const GdalReadOptions& options = {});

struct GdalWriteOptions {
  bool cloud_optimized = false;         // COG: tiled, with overviews, through GDAL's COG driver
  std::string compression = "DEFLATE";  // NONE, DEFLATE, LZW, ZSTD, PACKBITS
};

// Writes a 2D image as GeoTIFF (or COG): bands from channels, the geotransform (kept or derived),
// the CRS, band names as descriptions, and nodata. GDAL takes one nodata value for all bands of a
// GeoTIFF, so differing per-band values are refused. Writes `path` directly; io::write makes it
// atomic.
void write_gdal(const Image& image, const std::string& path, const GdalWriteOptions& options = {});

// What a raster written window by window will hold.
struct RasterLayout {
  std::int64_t width = 0, height = 0;
  int bands = 1;
  DType dtype = DType::kU8;
  GeoTransform geotransform{0, 1, 0, 0, 0, 1};
  std::string crs_wkt;
  std::optional<double> nodata;
  std::vector<std::string> band_names;
};

// Writes a GeoTIFF (or COG) window by window, so a scene larger than memory can be produced: each
// window goes to disk when written. The file appears under `path` only when finish() succeeds;
// a writer destroyed before that removes its temporary, so no half-written scene is left.
class GdalRasterWriter {
 public:
  GdalRasterWriter(const std::string& path, const RasterLayout& layout,
                   const GdalWriteOptions& options = {});
  ~GdalRasterWriter();
  GdalRasterWriter(const GdalRasterWriter&) = delete;
  GdalRasterWriter& operator=(const GdalRasterWriter&) = delete;

  // Writes `window` (layout.bands channels, layout.dtype, one plane) with its top-left pixel at
  // (x, y). Throws graft::Error naming the file when it does not fit the raster.
  void write(const Image& window, std::int64_t x, std::int64_t y);
  void finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One image from one file per band (Sentinel-2, Landsat, BigEarthNet), on the grid of the file
// with the finest pixels (or of `reference`, when given). A band on a coarser grid of the same
// CRS and orientation is resampled onto it by GDAL, pixel areas aligned exactly; a band in
// another CRS or rotated is refused with the reason. Channel names come from the file names
// (..._B8A.tif -> "B8A", l8_B4.tif -> "B4").
struct BandStackOptions {
  std::optional<std::string> reference;  // the file whose grid the stack takes
  std::string resampling = "bilinear";   // nearest, bilinear, cubic, average (GDAL's RasterIO)
};
Image read_band_stack(const std::vector<std::string>& files, const BandStackOptions& options = {});

// Whether two WKT strings name the same CRS (GDAL's IsSame: same definition, whatever the WKT
// flavour or the way GDAL built it). Two empty strings are the same; an unparsable one is not.
bool same_crs(const std::string& wkt_a, const std::string& wkt_b);

// Map coordinates (x, y in the CRS `crs_wkt`) as WGS 84 longitude, latitude in degrees, the axis
// order RFC 7946 prescribes whatever the CRS's own order. Errors start with `what`.
std::vector<std::array<double, 2>> lon_lat_from_crs(const std::string& crs_wkt,
                                                    const std::vector<std::array<double, 2>>& map_xy,
                                                    const std::string& what);

// The band name a file name carries: the last "_"-separated part of the stem when it looks like
// a band (B1..B12, B8A, BQA), else "".
std::string band_name_from_file(const std::string& path);

}  // namespace graft::io
