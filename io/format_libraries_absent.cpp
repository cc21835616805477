// The compute-only build (GRAFT_COMPUTE_ONLY) compiles this file instead of the wrappers of ITK,
// DCMTK, GDAL, HDF5 and OpenSlide. Every entry point the rest of graft calls is here and throws
// graft::FormatUnavailable naming the file, its format and the missing library, so a DICOM folder
// or GeoTIFF handed to this build stops with a clear message instead of failing to link or, worse,
// being misread. NIfTI and NPY are graft's own code and work in both builds.
#include <nlohmann/json.hpp>

#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/dicom/rtstruct.h"
#include "io/error.h"
#include "io/raster/gdal_raster.h"
#include "io/hdf5/hdf5_file.h"
#include "io/nrrd/itk_formats.h"
#include "io/slide/slide.h"

namespace graft::io {
namespace {

[[noreturn]] void unavailable(const std::string& path, const std::string& format, const std::string& library) {
  throw FormatUnavailable(path + ": " + format + " needs " + library +
                          ", which this compute-only build of graft leaves out (GRAFT_COMPUTE_ONLY=ON); it reads "
                          "and writes NIfTI and NPY, so convert the file with a full build of graft");
}

}  // namespace

// --- ITK (NRRD) ---
Image read_itk(const std::string& path, ItkFormat) { unavailable(path, "NRRD", "ITK"); }
void write_itk(const Image&, const std::string& path, ItkFormat) { unavailable(path, "NRRD", "ITK"); }

// --- DCMTK (DICOM series and DICOM SEG) ---
std::vector<DicomSeries> find_dicom_series(const std::string& folder_or_file) {
  unavailable(folder_or_file, "DICOM", "DCMTK");
}
DicomVolume read_dicom(const std::string& folder_or_file, const std::string&,
                       const DicomReadOptions&) {
  unavailable(folder_or_file, "DICOM", "DCMTK");
}
std::string dicom_series_selector(const DicomSeries& series) {
  unavailable(series.series_instance_uid, "a DICOM series", "DCMTK");
}
DicomVolumeSource dicom_volume_source(const std::string& dicom_path) { unavailable(dicom_path, "DICOM", "DCMTK"); }
void write_dicom_seg(const Image&, const DicomVolumeSource&, const std::vector<DicomSegment>&, const std::string& path,
                     const DicomSegOptions&) {
  unavailable(path, "DICOM SEG", "DCMTK");
}
std::vector<DicomSegment> segments_for_labels(const Image&, const std::vector<std::string>&) {
  unavailable("labels", "DICOM SEG", "DCMTK");
}
std::string dicom_sop_class_uid(const std::string& file) { unavailable(file, "DICOM", "DCMTK"); }
DicomSegContents read_dicom_seg(const std::string& path) { unavailable(path, "DICOM SEG", "DCMTK"); }
RtStruct read_rtstruct(const std::string& path) { unavailable(path, "DICOM RTSTRUCT", "DCMTK"); }
std::vector<int> rtstruct_label_values(const RtStruct&, const std::vector<std::string>&, const std::string& path) {
  unavailable(path, "DICOM RTSTRUCT", "DCMTK");
}
Image rasterize_rtstruct(const RtStruct&, const std::vector<int>&, const Geometry&, const std::string& path) {
  unavailable(path, "DICOM RTSTRUCT", "DCMTK");
}
void write_rtstruct(const Image&, const DicomVolumeSource&, const std::string& path, const RtStructWriteOptions&) {
  unavailable(path, "DICOM RTSTRUCT", "DCMTK");
}

// --- GDAL (GeoTIFF and every other raster) ---
bool gdal_can_read(const std::string&) { return false; }  // no raster driver in this build
GdalRasterInfo read_gdal_info(const std::string& path) { unavailable(path, "a GDAL raster (GeoTIFF, ...)", "GDAL"); }
Image read_gdal(const std::string& path, const GdalReadOptions&) {
  unavailable(path, "a GDAL raster (GeoTIFF, ...)", "GDAL");
}
void write_gdal(const Image&, const std::string& path, const GdalWriteOptions&) { unavailable(path, "GeoTIFF", "GDAL"); }
Image read_band_stack(const std::vector<std::string>& files, const BandStackOptions&) {
  unavailable(files.empty() ? std::string("band stack") : files.front(), "a band stack", "GDAL");
}
std::vector<std::array<double, 2>> lon_lat_from_crs(const std::string&, const std::vector<std::array<double, 2>>&,
                                                    const std::string& what) {
  unavailable(what, "a map CRS transformation", "GDAL");
}
struct GdalRasterWriter::State {};
GdalRasterWriter::GdalRasterWriter(const std::string& path, const RasterLayout&, const GdalWriteOptions&) {
  unavailable(path, "GeoTIFF", "GDAL");
}
GdalRasterWriter::~GdalRasterWriter() = default;
void GdalRasterWriter::write(const Image&, std::int64_t, std::int64_t) { unavailable("raster", "GeoTIFF", "GDAL"); }
void GdalRasterWriter::finish() { unavailable("raster", "GeoTIFF", "GDAL"); }

// --- HDF5 (HDF5 and NetCDF-4 images, feature bags, the preprocessed cache) ---
Hdf5Contents list_hdf5(const std::string& path, Hdf5Walk) { unavailable(path, "HDF5", "the HDF5 library"); }
nlohmann::json hdf5_info_json(const Hdf5Contents&) { unavailable("contents", "HDF5", "the HDF5 library"); }
std::string hdf5_info_text(const Hdf5Contents&) { unavailable("contents", "HDF5", "the HDF5 library"); }
bool hdf5_has_dataset(const std::string& path, const std::string&) { unavailable(path, "HDF5", "the HDF5 library"); }
Image read_hdf5(const std::string& path, const std::string&) { unavailable(path, "HDF5", "the HDF5 library"); }
void write_hdf5(const Image&, const std::string& path, const std::string&) {
  unavailable(path, "HDF5", "the HDF5 library");
}
void write_hdf5_images(const std::string& path, const std::vector<std::pair<std::string, const Image*>>&,
                       const std::map<std::string, std::string>&, int) {
  unavailable(path, "HDF5", "the HDF5 library");
}
void write_feature_bag(const std::string& path, const std::vector<float>&, std::int64_t,
                       const std::vector<std::array<std::int64_t, 2>>&, const nlohmann::json&) {
  unavailable(path, "an HDF5 feature bag", "the HDF5 library");
}

// --- OpenSlide (whole-slide images) ---
struct Slide::Handle {};
Slide::Slide(const std::string& path) : path_(path) { unavailable(path, "a whole-slide image", "OpenSlide"); }
Slide::~Slide() = default;
Image Slide::read_region(int, std::int64_t, std::int64_t, std::int64_t, std::int64_t) const {
  unavailable(path_, "a whole-slide image", "OpenSlide");
}
SlidePatches tissue_patches(const Slide& slide, const SlideTilingOptions&) {
  unavailable(slide.path(), "a whole-slide image", "OpenSlide");
}

}  // namespace graft::io
