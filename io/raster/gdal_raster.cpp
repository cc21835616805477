#include "io/raster/gdal_raster.h"
#include "io/raster/gdal_module.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/file_bytes.h"

namespace graft::io::gdal_module {

namespace {

// WKT as files carry it, or what a user types ("EPSG:32632"); files and URLs are not followed.
bool parse_crs(const std::string& text, OGRSpatialReference& crs) {
  return crs.SetFromUserInput(text.c_str(), OGRSpatialReference::SET_FROM_USER_INPUT_LIMITATIONS_get()) ==
         OGRERR_NONE;
}

std::once_flag drivers_registered;

void register_drivers() {
  std::call_once(drivers_registered, [] {
    GDALAllRegister();
    // GDAL caches 5% of RAM in blocks by default; a scene streamed window by window needs far
    // less, and memory must not grow with the scene. GDAL_CACHEMAX still overrides it.
    if (!CPLGetConfigOption("GDAL_CACHEMAX", nullptr)) GDALSetCacheMax64(std::int64_t{256} << 20);
  });
}

// Collects GDAL's errors for one call on this thread instead of letting GDAL print them, so that
// a failure becomes one graft::Error line that names the file.
class GdalErrorCapture {
 public:
  GdalErrorCapture() { CPLPushErrorHandlerEx(&GdalErrorCapture::handle, this); }
  ~GdalErrorCapture() { CPLPopErrorHandler(); }
  GdalErrorCapture(const GdalErrorCapture&) = delete;
  GdalErrorCapture& operator=(const GdalErrorCapture&) = delete;

  bool failed() const { return !first_failure_.empty(); }
  // GDAL's first failure message on one line, or `fallback` when GDAL said nothing.
  std::string reason(const std::string& fallback) const {
    std::string text = first_failure_.empty() ? fallback : first_failure_;
    std::replace(text.begin(), text.end(), '\n', ' ');
    return text;
  }

 private:
  static void CPL_STDCALL handle(CPLErr level, CPLErrorNum, const char* message) {
    auto* self = static_cast<GdalErrorCapture*>(CPLGetErrorHandlerUserData());
    if (self && level >= CE_Failure && self->first_failure_.empty() && message)
      self->first_failure_ = message;
  }
  std::string first_failure_;
};

struct DatasetCloser {
  void operator()(GDALDataset* dataset) const { GDALClose(GDALDataset::ToHandle(dataset)); }
};
using DatasetPointer = std::unique_ptr<GDALDataset, DatasetCloser>;

DatasetPointer open_raster(const std::string& path, const GdalErrorCapture& errors) {
  register_drivers();
  GDALDataset* dataset = GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY);
  if (!dataset)
    throw Error(path + ": not readable as a raster (" + errors.reason("GDAL cannot open it") + ")");
  return DatasetPointer(dataset);
}

DType dtype_from_gdal(GDALDataType type, const std::string& where) {
  switch (type) {
    case GDT_Byte:
      return DType::kU8;
    case GDT_UInt16:
      return DType::kU16;
    case GDT_Int16:
      return DType::kI16;
    case GDT_UInt32:
      return DType::kU32;
    case GDT_Int32:
      return DType::kI32;
    case GDT_Float32:
      return DType::kF32;
    case GDT_Float64:
      return DType::kF64;
    default:
      throw Error(where + ": data type " + GDALGetDataTypeName(type) +
                  " is not supported (graft reads 8-32 bit integers and 32/64 bit floats)");
  }
}

GDALDataType gdal_from_dtype(DType dtype) {
  switch (dtype) {
    case DType::kU8:
      return GDT_Byte;
    case DType::kU16:
      return GDT_UInt16;
    case DType::kI16:
      return GDT_Int16;
    case DType::kU32:
      return GDT_UInt32;
    case DType::kI32:
      return GDT_Int32;
    case DType::kF32:
      return GDT_Float32;
    case DType::kF64:
      return GDT_Float64;
    case DType::kI8:
      break;
  }
  return GDT_Int16;  // callers widen int8 first: GDAL 3.6 has no signed byte type
}

std::string crs_wkt_of(const GDALDataset& dataset) {
  const OGRSpatialReference* crs = dataset.GetSpatialRef();
  if (!crs) return "";
  char* text = nullptr;
  // What gdalinfo prints: WKT2 (2019), multi-line.
  const char* const options[] = {"FORMAT=WKT2_2019", "MULTILINE=YES", nullptr};
  std::string wkt;
  if (crs->exportToWkt(&text, options) == OGRERR_NONE && text) wkt = text;
  CPLFree(text);
  return wkt;
}

GdalBand describe_band(GDALRasterBand& band, int number, const std::string& path) {
  GdalBand out;
  out.number = number;
  out.description = band.GetDescription();
  const GDALColorInterp colour = band.GetColorInterpretation();
  out.colour = GDALGetColorInterpretationName(colour);
  out.name = !out.description.empty()                               ? out.description
             : (colour != GCI_Undefined && colour != GCI_GrayIndex) ? out.colour
                                                                    : "";
  out.dtype = dtype_from_gdal(band.GetRasterDataType(), path + " band " + std::to_string(number));
  int has_nodata = 0;
  const double nodata = band.GetNoDataValue(&has_nodata);
  if (has_nodata) out.nodata = nodata;
  for (int level = 0; level < band.GetOverviewCount(); ++level) {
    if (GDALRasterBand* overview = band.GetOverview(level)) {
      out.overview_sizes.push_back({overview->GetXSize(), overview->GetYSize()});
    }
  }
  return out;
}

std::string source_format_of(const std::string& driver) {
  if (driver == "GTiff" || driver == "COG") return "geotiff";
  std::string name = driver;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return "gdal:" + name;
}

GdalRasterInfo describe(GDALDataset& dataset, const std::string& path) {
  GdalRasterInfo info;
  info.driver = dataset.GetDriver() ? dataset.GetDriver()->GetDescription() : "";
  info.source_format = source_format_of(info.driver);
  info.width = dataset.GetRasterXSize();
  info.height = dataset.GetRasterYSize();
  GeoTransform transform{};
  if (dataset.GetGeoTransform(transform.data()) == CE_None) info.geotransform = transform;
  info.crs_wkt = crs_wkt_of(dataset);
  for (int b = 1; b <= dataset.GetRasterCount(); ++b) {
    info.bands.push_back(describe_band(*dataset.GetRasterBand(b), b, path));
  }
  if (info.bands.empty()) throw Error(path + ": the raster has no bands");
  return info;
}

GDALRIOResampleAlg resampling_from_name(const std::string& name) {
  if (name == "nearest") return GRIORA_NearestNeighbour;
  if (name == "bilinear") return GRIORA_Bilinear;
  if (name == "cubic") return GRIORA_Cubic;
  if (name == "average") return GRIORA_Average;
  throw UsageError("resampling '" + name + "' is not one of nearest, bilinear, cubic, average");
}

}  // namespace

bool gdal_can_read(const std::string& path) {
  register_drivers();
  GdalErrorCapture quiet;
  return GDALIdentifyDriverEx(path.c_str(), GDAL_OF_RASTER, nullptr, nullptr) != nullptr;
}

GdalRasterInfo read_gdal_info(const std::string& path) {
  GdalErrorCapture errors;
  DatasetPointer dataset = open_raster(path, errors);
  return describe(*dataset, path);
}

Image read_gdal(const std::string& path, const GdalReadOptions& options) {
  GdalErrorCapture errors;
  DatasetPointer dataset = open_raster(path, errors);
  const GdalRasterInfo info = describe(*dataset, path);

  std::vector<int> bands = options.bands;
  if (bands.empty()) {
    for (const auto& band : info.bands) bands.push_back(band.number);
  }
  for (int number : bands) {
    if (number < 1 || number > static_cast<int>(info.bands.size())) {
      throw Error(path + ": band " + std::to_string(number) + " does not exist (the raster has " +
                  std::to_string(info.bands.size()) + ")");
    }
  }
  const DType dtype = info.bands[bands.front() - 1].dtype;
  for (int number : bands) {
    if (info.bands[number - 1].dtype != dtype) {
      throw Error(path + ": bands " + std::to_string(bands.front()) + " and " +
                  std::to_string(number) + " differ in data type (" + dtype_name(dtype) + " vs " +
                  dtype_name(info.bands[number - 1].dtype) + "); read them separately");
    }
  }

  // The level's size, and how many full-resolution pixels one of its pixels covers.
  std::int64_t level_width = info.width, level_height = info.height;
  if (options.overview >= 0) {
    const auto& sizes = info.bands[bands.front() - 1].overview_sizes;
    if (options.overview >= static_cast<int>(sizes.size())) {
      throw Error(path + ": overview level " + std::to_string(options.overview) +
                  " does not exist (the raster has " + std::to_string(sizes.size()) + ")");
    }
    level_width = sizes[options.overview][0];
    level_height = sizes[options.overview][1];
  }
  const double scale_x = static_cast<double>(info.width) / static_cast<double>(level_width);
  const double scale_y = static_cast<double>(info.height) / static_cast<double>(level_height);
  PixelWindow window{0, 0, level_width, level_height};
  if (options.window) {
    // The window is given in full-resolution pixels; at an overview it covers fewer pixels.
    const PixelWindow& w = *options.window;
    if (w.width <= 0 || w.height <= 0 || w.x < 0 || w.y < 0 || w.x + w.width > info.width ||
        w.y + w.height > info.height) {
      throw Error(path + ": window x " + std::to_string(w.x) + ", y " + std::to_string(w.y) + ", " +
                  std::to_string(w.width) + " x " + std::to_string(w.height) +
                  " lies outside the " + std::to_string(info.width) + " x " +
                  std::to_string(info.height) + " raster");
    }
    window = {
        static_cast<std::int64_t>(std::floor(w.x / scale_x)),
        static_cast<std::int64_t>(std::floor(w.y / scale_y)),
        std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(w.width / scale_x))),
        std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(w.height / scale_y)))};
    window.width = std::min(window.width, level_width - window.x);
    window.height = std::min(window.height, level_height - window.y);
  }

  const GeoTransform full = info.geotransform.value_or(GeoTransform{0, 1, 0, 0, 0, 1});
  const GeoTransform read_transform =
      subgrid_geotransform(full, window.x * scale_x, window.y * scale_y, scale_x, scale_y);
  Geometry geometry =
      geometry_from_geotransform(read_transform, window.width, window.height, info.crs_wkt);
  if (!info.geotransform) {
    // No georeferencing: pixel indices, with rows down, as GDAL's default transform has it.
    geometry.geotransform.reset();
  }
  geometry.validate(path);
  // An uncompressed TIFF stores every pixel it has, so its size bounds them: a damaged header
  // claiming thousands of bands is refused here, before the image's memory is reserved.
  const char* compression = dataset->GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE");
  if (info.driver == "GTiff" && options.overview < 0 && (compression == nullptr || *compression == '\0')) {
    const std::uint64_t payload = saturating_multiply(
        saturating_multiply(static_cast<std::uint64_t>(bands.size()), dtype_size_bytes(dtype)),
        saturating_multiply(static_cast<std::uint64_t>(window.width), static_cast<std::uint64_t>(window.height)));
    check_payload_fits(path, std::to_string(bands.size()) + " bands of " + std::to_string(window.width) + " x " +
                                 std::to_string(window.height) + " " + dtype_name(dtype) + " pixels, uncompressed,",
                       payload, file_size_bytes(path));
  }
  Image image = Image::uninitialized(dtype, static_cast<std::int64_t>(bands.size()), geometry);

  const std::size_t element = dtype_size_bytes(dtype);
  const GDALDataType buffer_type = gdal_from_dtype(dtype);
  const auto plane_bytes = static_cast<GSpacing>(window.width * window.height * element);
  CPLErr status = CE_None;
  if (options.overview < 0) {
    status = dataset->RasterIO(
        GF_Read, static_cast<int>(window.x), static_cast<int>(window.y),
        static_cast<int>(window.width), static_cast<int>(window.height), image.bytes(),
        static_cast<int>(window.width), static_cast<int>(window.height), buffer_type,
        static_cast<int>(bands.size()), bands.data(), static_cast<GSpacing>(element),
        static_cast<GSpacing>(window.width * element), plane_bytes, nullptr);
  } else {
    for (std::size_t c = 0; c < bands.size() && status == CE_None; ++c) {
      GDALRasterBand* overview = dataset->GetRasterBand(bands[c])->GetOverview(options.overview);
      status = overview->RasterIO(GF_Read, static_cast<int>(window.x), static_cast<int>(window.y),
                                  static_cast<int>(window.width), static_cast<int>(window.height),
                                  image.bytes() + c * plane_bytes, static_cast<int>(window.width),
                                  static_cast<int>(window.height), buffer_type,
                                  static_cast<GSpacing>(element),
                                  static_cast<GSpacing>(window.width * element), nullptr);
    }
  }
  if (status != CE_None)
    throw Error(path + ": pixels unreadable (" + errors.reason("GDAL RasterIO failed") + ")");

  Metadata& metadata = image.metadata();
  metadata.source_format = info.source_format;
  for (int number : bands) {
    metadata.band_names.push_back(info.bands[number - 1].name);
    metadata.nodata.push_back(info.bands[number - 1].nodata);
  }
  return image;
}

void write_gdal(const Image& source, const std::string& path, const GdalWriteOptions& options) {
  register_drivers();
  // GDAL 3.6's GeoTIFF has no signed byte type; int16 holds every int8 value.
  const Image widened = source.dtype() == DType::kI8 ? source.cast(DType::kI16) : Image();
  const Image& image = source.dtype() == DType::kI8 ? widened : source;
  GdalErrorCapture errors;
  const Geometry& g = image.geometry();
  GeoTransform transform{};
  try {
    transform = geotransform_of(g);
  } catch (const Error& e) {
    throw Error(path + ": cannot write as GeoTIFF: " + e.what());
  }
  const Metadata& metadata = image.metadata();
  std::optional<double> nodata;
  for (const auto& value : metadata.nodata) {
    if (!value) continue;
    const bool same = !nodata || *nodata == *value || (std::isnan(*nodata) && std::isnan(*value));
    if (!same) {
      throw Error(path +
                  ": bands carry different nodata values, and a GeoTIFF holds one for all bands");
    }
    nodata = value;
  }

  const int width = static_cast<int>(g.size_xyz[0]), height = static_cast<int>(g.size_xyz[1]);
  const int band_count = static_cast<int>(image.channels());
  const GDALDataType type = gdal_from_dtype(image.dtype());
  // COG is written by copying a finished dataset; plain GeoTIFF is written in place.
  GDALDriver* driver =
      GetGDALDriverManager()->GetDriverByName(options.cloud_optimized ? "MEM" : "GTiff");
  if (!driver) throw Error(path + ": GDAL lacks the GeoTIFF driver");
  CPLStringList create_options;
  if (!options.cloud_optimized) {
    create_options.SetNameValue("TILED", "YES");
    create_options.SetNameValue("COMPRESS", options.compression.c_str());
    create_options.SetNameValue("BIGTIFF", "IF_SAFER");
    if (options.compression != "NONE") {
      create_options.SetNameValue("PREDICTOR", GDALDataTypeIsFloating(type) ? "3" : "2");
    }
  }
  DatasetPointer dataset(driver->Create(options.cloud_optimized ? "" : path.c_str(), width, height,
                                        band_count, type, create_options.List()));
  if (!dataset) throw Error(path + ": cannot create (" + errors.reason("GDAL Create failed") + ")");
  dataset->SetGeoTransform(transform.data());
  if (!g.crs_wkt.empty()) {
    OGRSpatialReference crs;
    if (!parse_crs(g.crs_wkt, crs)) {
      throw Error(path + ": the image's CRS does not parse (" + errors.reason("not WKT or an authority code") + ")");
    }
    dataset->SetSpatialRef(&crs);
  }
  const std::size_t element = dtype_size_bytes(image.dtype());
  const auto plane_bytes = static_cast<std::size_t>(width) * height * element;
  for (int b = 1; b <= band_count; ++b) {
    GDALRasterBand* band = dataset->GetRasterBand(b);
    if (static_cast<std::size_t>(b - 1) < metadata.band_names.size() &&
        !metadata.band_names[b - 1].empty()) {
      band->SetDescription(metadata.band_names[b - 1].c_str());
    }
    if (nodata) band->SetNoDataValue(*nodata);
    const CPLErr status = band->RasterIO(
        GF_Write, 0, 0, width, height,
        const_cast<std::uint8_t*>(image.bytes() + (b - 1) * plane_bytes), width, height, type,
        static_cast<GSpacing>(element), static_cast<GSpacing>(width * element), nullptr);
    if (status != CE_None)
      throw Error(path + ": writing band " + std::to_string(b) + " failed (" + errors.reason("") +
                  ")");
  }
  if (options.cloud_optimized) {
    GDALDriver* cog = GetGDALDriverManager()->GetDriverByName("COG");
    if (!cog) throw Error(path + ": GDAL lacks the COG driver");
    CPLStringList cog_options;
    cog_options.SetNameValue("COMPRESS", options.compression.c_str());
    cog_options.SetNameValue("BIGTIFF", "IF_SAFER");
    DatasetPointer copy(
        cog->CreateCopy(path.c_str(), dataset.get(), FALSE, cog_options.List(), nullptr, nullptr));
    if (!copy)
      throw Error(path + ": cannot write the COG (" + errors.reason("GDAL CreateCopy failed") +
                  ")");
    copy.reset();  // GDAL 3.6 closes without a status: a failure shows as a captured error
    if (errors.failed()) throw Error(path + ": writing the COG failed (" + errors.reason("") + ")");
    return;
  }
  // Closing flushes every block; its failure (a full disk) must not pass silently.
  dataset.reset();
  if (errors.failed()) throw Error(path + ": writing failed (" + errors.reason("") + ")");
}

bool same_crs(const std::string& wkt_a, const std::string& wkt_b) {
  if (wkt_a.empty() || wkt_b.empty()) return wkt_a.empty() && wkt_b.empty();
  if (wkt_a == wkt_b) return true;
  OGRSpatialReference a, b;
  if (!parse_crs(wkt_a, a) || !parse_crs(wkt_b, b)) return false;
  return a.IsSame(&b);
}

namespace {

class GdalWindowWriter final : public WindowWriter {
 public:
  GdalWindowWriter(const std::string& path, const RasterLayout& layout, const GdalWriteOptions& options);
  ~GdalWindowWriter() override;
  void write(const Image& window, std::int64_t x, std::int64_t y) override;
  void finish() override;

 private:
  struct State {
    std::string path, temporary;
    RasterLayout layout;
    GdalWriteOptions options;
    DatasetPointer dataset;
  };
  std::unique_ptr<State> state_;
};

GdalWindowWriter::GdalWindowWriter(const std::string& path, const RasterLayout& layout,
                                   const GdalWriteOptions& options)
    : state_(std::make_unique<State>()) {
  register_drivers();
  GdalErrorCapture errors;
  State& s = *state_;
  s.path = path;
  s.temporary = temporary_path_for(path) + (options.cloud_optimized ? ".tiles.tif" : "");
  s.layout = layout;
  s.options = options;
  if (layout.width <= 0 || layout.height <= 0 || layout.bands <= 0) {
    throw Error(path + ": a raster needs a positive size and at least one band");
  }
  GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  CPLStringList create_options;
  create_options.SetNameValue("TILED", "YES");
  create_options.SetNameValue("BIGTIFF", "IF_SAFER");
  // The tiles of a COG are recompressed when it is copied out; the intermediate stays fast.
  const std::string compression = options.cloud_optimized ? "NONE" : options.compression;
  create_options.SetNameValue("COMPRESS", compression.c_str());
  if (compression != "NONE") {
    create_options.SetNameValue("PREDICTOR",
                                GDALDataTypeIsFloating(gdal_from_dtype(layout.dtype)) ? "3" : "2");
  }
  const DType stored = layout.dtype == DType::kI8 ? DType::kI16 : layout.dtype;
  s.dataset.reset(driver->Create(s.temporary.c_str(), static_cast<int>(layout.width),
                                 static_cast<int>(layout.height), layout.bands,
                                 gdal_from_dtype(stored), create_options.List()));
  if (!s.dataset)
    throw Error(path + ": cannot create (" + errors.reason("GDAL Create failed") + ")");
  GeoTransform transform = layout.geotransform;
  s.dataset->SetGeoTransform(transform.data());
  if (!layout.crs_wkt.empty()) {
    OGRSpatialReference crs;
    if (!parse_crs(layout.crs_wkt, crs)) throw Error(path + ": the CRS does not parse (not WKT or an authority code)");
    s.dataset->SetSpatialRef(&crs);
  }
  for (int b = 1; b <= layout.bands; ++b) {
    GDALRasterBand* band = s.dataset->GetRasterBand(b);
    if (static_cast<std::size_t>(b - 1) < layout.band_names.size()) {
      band->SetDescription(layout.band_names[b - 1].c_str());
    }
    if (layout.nodata) band->SetNoDataValue(*layout.nodata);
  }
}

GdalWindowWriter::~GdalWindowWriter() {
  if (!state_ || !state_->dataset) return;
  GdalErrorCapture quiet;
  state_->dataset.reset();
  std::remove(state_->temporary.c_str());
}

void GdalWindowWriter::write(const Image& source, std::int64_t x, std::int64_t y) {
  State& s = *state_;
  if (!s.dataset) throw Error(s.path + ": the writer is finished");
  const RasterLayout& layout = s.layout;
  const auto& size = source.geometry().size_xyz;
  if (source.channels() != layout.bands || source.dtype() != layout.dtype || size[2] != 1) {
    throw Error(s.path + ": a window must have " + std::to_string(layout.bands) + " bands of " +
                dtype_name(layout.dtype) + " in one plane (got " +
                std::to_string(source.channels()) + " of " + dtype_name(source.dtype()) + ")");
  }
  if (x < 0 || y < 0 || x + size[0] > layout.width || y + size[1] > layout.height) {
    throw Error(s.path + ": window at (" + std::to_string(x) + ", " + std::to_string(y) + ") of " +
                std::to_string(size[0]) + " x " + std::to_string(size[1]) + " lies outside the " +
                std::to_string(layout.width) + " x " + std::to_string(layout.height) + " raster");
  }
  const Image widened = source.dtype() == DType::kI8 ? source.cast(DType::kI16) : Image();
  const Image& window = source.dtype() == DType::kI8 ? widened : source;
  GdalErrorCapture errors;
  const std::size_t element = dtype_size_bytes(window.dtype());
  std::vector<int> bands(static_cast<std::size_t>(layout.bands));
  for (int b = 0; b < layout.bands; ++b) bands[b] = b + 1;
  const CPLErr status = s.dataset->RasterIO(
      GF_Write, static_cast<int>(x), static_cast<int>(y), static_cast<int>(size[0]),
      static_cast<int>(size[1]), const_cast<std::uint8_t*>(window.bytes()),
      static_cast<int>(size[0]), static_cast<int>(size[1]), gdal_from_dtype(window.dtype()),
      layout.bands, bands.data(), static_cast<GSpacing>(element),
      static_cast<GSpacing>(size[0] * element), static_cast<GSpacing>(size[0] * size[1] * element),
      nullptr);
  if (status != CE_None)
    throw Error(s.path + ": writing a window failed (" + errors.reason("") + ")");
}

void GdalWindowWriter::finish() {
  State& s = *state_;
  if (!s.dataset) throw Error(s.path + ": the writer is already finished");
  GdalErrorCapture errors;
  if (!s.options.cloud_optimized) {
    s.dataset.reset();
    if (errors.failed()) {
      std::remove(s.temporary.c_str());
      throw Error(s.path + ": writing failed (" + errors.reason("") + ")");
    }
    move_into_place(s.temporary, s.path);
    return;
  }
  // The COG driver builds the overviews and the final tile order from the finished tiles.
  GDALDriver* cog = GetGDALDriverManager()->GetDriverByName("COG");
  const std::string copy_path = temporary_path_for(s.path);
  CPLStringList cog_options;
  cog_options.SetNameValue("COMPRESS", s.options.compression.c_str());
  cog_options.SetNameValue("BIGTIFF", "IF_SAFER");
  DatasetPointer copy(cog ? cog->CreateCopy(copy_path.c_str(), s.dataset.get(), FALSE,
                                            cog_options.List(), nullptr, nullptr)
                          : nullptr);
  copy.reset();
  s.dataset.reset();
  std::remove(s.temporary.c_str());
  if (errors.failed() || !std::filesystem::exists(copy_path)) {
    std::remove(copy_path.c_str());
    throw Error(s.path + ": writing the COG failed (" + errors.reason("GDAL CreateCopy failed") +
                ")");
  }
  move_into_place(copy_path, s.path);
}

}  // namespace

std::unique_ptr<WindowWriter> open_window_writer(const std::string& path, const RasterLayout& layout,
                                                 const GdalWriteOptions& options) {
  return std::make_unique<GdalWindowWriter>(path, layout, options);
}

Image read_band_stack(const std::vector<std::string>& files, const BandStackOptions& options) {
  if (files.empty()) throw UsageError("a band stack needs at least one file");
  const GDALRIOResampleAlg resampling = resampling_from_name(options.resampling);
  // Each file is opened once: its header here, its pixels below.
  std::vector<GdalRasterInfo> infos;
  std::vector<DatasetPointer> datasets;
  for (const auto& file : files) {
    GdalErrorCapture errors;
    datasets.push_back(open_raster(file, errors));
    infos.push_back(describe(*datasets.back(), file));
    if (infos.back().bands.size() != 1) {
      throw Error(file + ": a band stack takes single-band files; this one has " +
                  std::to_string(infos.back().bands.size()) + " bands");
    }
    if (!infos.back().geotransform)
      throw Error(file + ": no geotransform, so it cannot be aligned with other bands");
  }
  // The reference grid: the named file, else the finest pixels (first such file on ties).
  std::size_t reference = 0;
  if (options.reference) {
    const auto found = std::find(files.begin(), files.end(), *options.reference);
    if (found == files.end())
      throw UsageError(*options.reference + ": the reference is not one of the band files");
    reference = static_cast<std::size_t>(found - files.begin());
  } else {
    for (std::size_t i = 1; i < infos.size(); ++i) {
      if (std::abs((*infos[i].geotransform)[1]) < std::abs((*infos[reference].geotransform)[1]))
        reference = i;
    }
  }
  const GdalRasterInfo& target = infos[reference];
  const GeoTransform& t = *target.geotransform;
  const DType dtype = target.bands[0].dtype;
  Geometry geometry = geometry_from_geotransform(t, target.width, target.height, target.crs_wkt);
  Image stack = Image::uninitialized(dtype, static_cast<std::int64_t>(files.size()), geometry);
  const std::size_t element = dtype_size_bytes(dtype);
  const auto plane_bytes = static_cast<std::size_t>(target.width * target.height) * element;

  for (std::size_t i = 0; i < files.size(); ++i) {
    const GdalRasterInfo& info = infos[i];
    const GeoTransform& s = *info.geotransform;
    if (info.bands[0].dtype != dtype) {
      throw Error(files[i] + ": data type " + dtype_name(info.bands[0].dtype) +
                  " differs from the reference's " + dtype_name(dtype) + " (" + files[reference] +
                  ")");
    }
    if (t[2] != 0 || t[4] != 0 || s[2] != 0 || s[4] != 0) {
      throw Error(
          files[i] +
          ": rotated rasters are not stacked by pixel windows; warp them onto one grid first "
          "(gdalwarp)");
    }
    if (!same_crs(info.crs_wkt, target.crs_wkt)) {
      throw Error(files[i] + ": its CRS differs from " + files[reference] +
                  "'s; warp the bands onto one CRS first "
                  "(gdalwarp)");
    }
    // The reference grid's extent in this file's pixels: where its corners fall, exactly.
    const double x0 = (t[0] - s[0]) / s[1], y0 = (t[3] - s[3]) / s[5];
    const double width = target.width * t[1] / s[1], height = target.height * t[5] / s[5];
    constexpr double kSlack = 1e-6;
    if (x0 < -kSlack || y0 < -kSlack || x0 + width > info.width + kSlack ||
        y0 + height > info.height + kSlack) {
      throw Error(files[i] + ": does not cover the reference grid of " + files[reference] +
                  " (it spans pixels " + std::to_string(x0) + ".." + std::to_string(x0 + width) +
                  " x " + std::to_string(y0) + ".." + std::to_string(y0 + height) + " of " +
                  std::to_string(info.width) + " x " + std::to_string(info.height) + ")");
    }
    GdalErrorCapture errors;
    GDALDataset* dataset = datasets[i].get();
    const int x = static_cast<int>(std::floor(std::max(0.0, x0) + kSlack));
    const int y = static_cast<int>(std::floor(std::max(0.0, y0) + kSlack));
    const int read_width = std::min<int>(static_cast<int>(info.width) - x,
                                         static_cast<int>(std::ceil(x0 + width - kSlack)) - x);
    const int read_height = std::min<int>(static_cast<int>(info.height) - y,
                                          static_cast<int>(std::ceil(y0 + height - kSlack)) - y);
    GDALRasterIOExtraArg extra;
    INIT_RASTERIO_EXTRA_ARG(extra);
    extra.eResampleAlg = resampling;
    extra.bFloatingPointWindowValidity = TRUE;
    extra.dfXOff = std::max(0.0, x0);
    extra.dfYOff = std::max(0.0, y0);
    extra.dfXSize = std::min(width, info.width - extra.dfXOff);
    extra.dfYSize = std::min(height, info.height - extra.dfYOff);
    const CPLErr status = dataset->GetRasterBand(1)->RasterIO(
        GF_Read, x, y, read_width, read_height, stack.bytes() + i * plane_bytes,
        static_cast<int>(target.width), static_cast<int>(target.height), gdal_from_dtype(dtype),
        static_cast<GSpacing>(element), static_cast<GSpacing>(target.width * element), &extra);
    if (status != CE_None)
      throw Error(files[i] + ": pixels unreadable (" + errors.reason("GDAL RasterIO failed") + ")");
    stack.metadata().band_names.push_back(band_name_from_file(files[i]));
    stack.metadata().nodata.push_back(info.bands[0].nodata);
  }
  stack.metadata().source_format = "geotiff";
  return stack;
}

std::vector<std::array<double, 2>> lon_lat_from_crs(const std::string& crs_wkt,
                                                    const std::vector<std::array<double, 2>>& map_xy,
                                                    const std::string& what) {
  OGRSpatialReference source, wgs84;
  if (source.SetFromUserInput(crs_wkt.c_str(), OGRSpatialReference::SET_FROM_USER_INPUT_LIMITATIONS_get()) !=
      OGRERR_NONE) {
    throw Error(what + ": the raster's CRS cannot be parsed");
  }
  wgs84.SetWellKnownGeogCS("WGS84");
  source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> to_wgs84(OGRCreateCoordinateTransformation(&source, &wgs84));
  if (!to_wgs84) throw Error(what + ": no transformation from the raster's CRS to WGS 84");
  std::vector<std::array<double, 2>> lon_lat = map_xy;
  for (auto& point : lon_lat) {
    if (!to_wgs84->Transform(1, &point[0], &point[1])) {
      throw Error(what + ": a point cannot be transformed to WGS 84");
    }
  }
  return lon_lat;
}

}  // namespace graft::io::gdal_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::gdal_module::EntryPoints* graft_io_gdal_entry_points() {
  namespace module = graft::io::gdal_module;
  static const module::EntryPoints entry_points{
      module::kEntryPointsVersion, &module::gdal_can_read,   &module::read_gdal_info,
      &module::read_gdal,          &module::write_gdal,      &module::read_band_stack,
      &module::same_crs,           &module::lon_lat_from_crs, &module::open_window_writer,
  };
  return &entry_points;
}
