#include "io/image_file.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "io/dicom/dicom_series.h"
#include "io/error.h"
#include "io/file_bytes.h"
#include "io/raster/gdal_raster.h"
#include "io/hdf5/hdf5_file.h"
#include "io/nrrd/itk_formats.h"
#include "io/nifti/nifti_reader.h"
#include "io/nifti/nifti_writer.h"
#include "io/numpy/npy.h"
#include "io/nrrd/nrrd_header_check.h"
#include "io/nrrd/seg_nrrd.h"
#include "io/segment_names.h"
#include "io/text.h"

namespace graft::io {
std::string format_name(FileFormat format) {
  switch (format) {
    case FileFormat::kNifti: return "nifti";
    case FileFormat::kNrrd: return "nrrd";
    case FileFormat::kNpy: return "npy";
    case FileFormat::kDicom: return "dicom";
    case FileFormat::kGdal: return "gdal";
    case FileFormat::kHdf5: return "hdf5";
    case FileFormat::kUnknown: break;
  }
  return "unknown";
}

bool looks_like_dicom(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  unsigned char bytes[132] = {};
  stream.read(reinterpret_cast<char*>(bytes), sizeof bytes);
  const auto read = stream.gcount();
  if (read >= 132 && std::memcmp(bytes + 128, "DICM", 4) == 0) return true;
  if (read < 8) return false;
  // No preamble: the first tag's group, in either byte order.
  const unsigned little = bytes[0] | (bytes[1] << 8);
  const unsigned big = (bytes[0] << 8) | bytes[1];
  return little == 0x0002 || little == 0x0008 || big == 0x0002 || big == 0x0008;
}

FileFormat sniff_format(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return FileFormat::kDicom;
  const std::vector<std::uint8_t> head = read_file_prefix(path, 352);
  auto has = [&](std::size_t offset, const char* magic, std::size_t length) {
    return head.size() >= offset + length && std::memcmp(head.data() + offset, magic, length) == 0;
  };
  if (has(0, "\x93NUMPY", 6)) return FileFormat::kNpy;
  if (has(0, "NRRD000", 7)) return FileFormat::kNrrd;
  if (has(344, "n+1\0", 4) || has(344, "ni1\0", 4) || has(4, "n+2\0", 4) || has(4, "ni2\0", 4)) {
    return FileFormat::kNifti;
  }
  if (has(0, "II*\0", 4) || has(0, "MM\0*", 4) || has(0, "II+\0", 4) || has(0, "MM\0+", 4)) {
    return FileFormat::kGdal;  // TIFF and BigTIFF
  }
  // Before GDAL, whose netCDF/HDF5 drivers would otherwise claim these files.
  if (has_hdf5_signature(path)) return FileFormat::kHdf5;
  if (looks_like_dicom(path)) return FileFormat::kDicom;
  if (!head.empty() && gdal_can_read(path)) return FileFormat::kGdal;
  return FileFormat::kUnknown;
}

DicomPath split_dicom_path(const std::string& path) {
  std::error_code error;
  const auto hash = path.rfind('#');
  if (std::filesystem::exists(path, error) || hash == std::string::npos) return {path, ""};
  return {path.substr(0, hash), path.substr(hash + 1)};
}

FileFormat format_from_extension(const std::string& path) {
  if (ends_with(path, ".nii") || ends_with(path, ".nii.gz")) return FileFormat::kNifti;
  if (ends_with(path, ".nrrd") || ends_with(path, ".nhdr")) return FileFormat::kNrrd;
  if (ends_with(path, ".npy")) return FileFormat::kNpy;
  if (ends_with(path, ".tif") || ends_with(path, ".tiff")) return FileFormat::kGdal;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return FileFormat::kHdf5;
  return FileFormat::kUnknown;
}

std::string strip_image_extension(const std::string& path) {
  for (const char* suffix : {".nii.gz", ".nii", ".seg.nrrd", ".rtstruct.dcm", ".nrrd", ".nhdr", ".npy", ".dcm", ".tif", ".tiff", ".h5", ".hdf5"}) {
    if (ends_with(path, suffix)) return path.substr(0, path.size() - std::string(suffix).size());
  }
  return path;
}

std::string image_stem(const std::string& path) {
  return std::filesystem::path(strip_image_extension(path)).filename().string();
}

Image read(const std::string& path_and_series, const DicomReadOptions& dicom) {
  const auto [path, series] = split_dicom_path(path_and_series);
  std::error_code error;
  if (std::filesystem::is_directory(path, error) || !series.empty())
    return read_dicom(path, series, dicom).image;
  const std::uint64_t bytes = file_size_bytes(path);
  if (bytes == 0) throw Error(path + ": file is empty");
  switch (sniff_format(path)) {
    case FileFormat::kNifti:
      return read_nifti(path);
    case FileFormat::kNrrd:
      check_nrrd_header(path);
      // Slicer's segmentation files are NRRDs whose header names the segments.
      return labels_from_seg_nrrd(read_itk(path, ItkFormat::kNrrd), read_nrrd_key_values(path), path);
    case FileFormat::kNpy:
      return read_npy(path);
    case FileFormat::kDicom:
      return read_dicom(path, "", dicom).image;
    case FileFormat::kGdal:
      return read_gdal(path);
    case FileFormat::kHdf5:
      return read_hdf5(path, "");
    case FileFormat::kUnknown:
      break;
  }
  throw Error(path + ": not a format graft reads (expected NIfTI, NRRD, NPY, DICOM, HDF5 or a raster GDAL opens)");
}

void write(const Image& image, const std::string& path) {
  const FileFormat format = format_from_extension(path);
  if (format == FileFormat::kUnknown) {
    throw UsageError(path + ": unknown output extension (use .nii, .nii.gz, .nrrd, .nhdr, .npy, .tif or .h5; " +
                     "DICOM output is a DICOM SEG of a label image, written by graft convert --reference-dicom)");
  }
  auto write_to = [&](const std::string& target) {
    if (format == FileFormat::kNpy) return write_npy(image, target);
    if (format == FileFormat::kGdal) return write_gdal(image, target);
    if (format == FileFormat::kHdf5) return write_hdf5(image, target);
    if (format == FileFormat::kNifti) return write_nifti(image, target);
    write_itk(image, target, ItkFormat::kNrrd);
  };
  if (is_seg_nrrd_path(path)) {
    const std::vector<LabelSegment> segments = named_segments(image, {});
    write_seg_nrrd(image, segments, path);
    return;
  }
  if (ends_with(path, ".nhdr")) {
    // A detached header names its data file, so it cannot be written under a temporary name.
    write_to(path);
    return;
  }
  write_atomically(path, write_to);
}

}  // namespace graft::io
