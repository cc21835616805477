#pragma once

#include <string>

#include "io/error.h"
#include "io/image.h"

namespace graft::io {

enum class FileFormat { kNifti, kNrrd, kNpy, kDicom, kGdal, kHdf5, kUnknown };

std::string format_name(FileFormat format);

// The format from the file's content (magic bytes, gunzipped when needed), never its extension.
// A folder is a DICOM folder. TIFF, and any other raster GDAL's drivers recognise, is kGdal.
FileFormat sniff_format(const std::string& path);

// True when the file starts like DICOM: the "DICM" preamble, or (for files without a meta
// header) a first element in group 0002 or 0008.
bool looks_like_dicom(const std::string& path);
// The format a path's extension names, for writing: .nii, .nii.gz, .nrrd, .nhdr, .npy, .tif, .tiff
// (GeoTIFF), .h5, .hdf5.
FileFormat format_from_extension(const std::string& path);

// The path without a known image extension (.nii.gz, .nii, .seg.nrrd, .rtstruct.dcm, .nrrd, .nhdr,
// .npy, .dcm, .tif, .tiff, .h5, .hdf5), for naming outputs after inputs; unchanged when it has none.
std::string strip_image_extension(const std::string& path);
// The file name without folder and image extension: a case's id ("case_007" for
// "/data/case_007.nii.gz").
std::string image_stem(const std::string& path);

// A DICOM input names a folder (or file) and optionally one series in it, as "FOLDER#SELECTOR"
// where SELECTOR is a SeriesInstanceUID, "UID/sub-series" or a SeriesDescription. A path that
// exists as written is never split, so files with '#' in their names still read.
struct DicomPath {
  std::string path;
  std::string series;  // empty: the only series
};
DicomPath split_dicom_path(const std::string& path);

// Choices for assembling a DICOM series; other formats have no slice positions, so they ignore
// them. Every choice that changes voxels is off by default: graft never resamples silently.
struct DicomReadOptions {
  // A series whose slices are sheared (CT gantry tilt) is resampled onto an orthogonal grid,
  // linearly along the columns, as dcm2niix does by default; the image's Metadata records the
  // angle. Off, such a series is refused with its angle.
  bool correct_tilt = false;
};

// What reading a sheared series without correct_tilt throws, so a program can offer the
// correction (the desktop app asks) instead of matching the message.
class GantryTiltRefused : public graft::Error {
 public:
  GantryTiltRefused(const std::string& message, double tilt_degrees) : graft::Error(message), tilt_degrees(tilt_degrees) {}
  double tilt_degrees;
};

// Reads any supported file into an Image, choosing the reader by content: NIfTI, NRRD, NPY, DICOM
// (a folder of series, a single file, or "FOLDER#SELECTOR"), or a GDAL raster (bands as channels). Every failure is a
// graft::Error that names the path and the field.
Image read(const std::string& path, const DicomReadOptions& dicom = {});

// Writes the format that the path's extension names, keeping the geometry. A ".seg.nrrd" path
// writes a label image as 3D Slicer's segmentation file, its segments named by its metadata (see
// named_segments in io/segment_names.h). The file appears
// atomically: it is written beside the target and renamed into place.
void write(const Image& image, const std::string& path);

}  // namespace graft::io
