#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/image_file.h"

namespace graft::io {

// Where one slice of an assembled volume came from, so results can be written back as DICOM
// that references the exact source instances. Holds UIDs and paths only, never patient fields.
struct DicomSliceSource {
  std::string file;
  std::string sop_class_uid;
  std::string sop_instance_uid;
  int frame_number = 0;  // 1-based frame of a multi-frame instance; 0 for single-frame files
};

// One series (or sub-series) found in a folder tree. Everything here may be printed: patient
// name, ID, birth date and accession number are never read into it.
struct DicomSeries {
  std::string series_instance_uid;
  std::string study_instance_uid;
  std::string frame_of_reference_uid;
  // Empty for a whole series; otherwise what sets this sub-series apart ("echo 2",
  // "orientation 2", "size 256x256"), shown to the user and usable to pick it.
  std::string sub_series;
  std::string modality;
  std::string series_description;
  int series_number = 0;
  std::int64_t rows = 0;
  std::int64_t columns = 0;
  std::int64_t frame_count = 0;  // images (slices, frames or mosaic tiles) before assembly
  std::vector<std::string> files;  // sorted by path, for a stable order
  // The headers parsed while discovering, so assembly does not parse them again.
  std::shared_ptr<const struct DicomSeriesHeaders> headers;
};

// The DICOM identity of an assembled volume: slice z of the Image came from slices[z] (for
// every channel; a 4D series keeps the first temporal position's instances here).
struct DicomVolumeSource {
  std::string study_instance_uid;
  std::string series_instance_uid;
  std::string frame_of_reference_uid;
  std::string modality;
  Geometry geometry;  // the grid of the assembled volume
  std::vector<DicomSliceSource> slices;
};

struct DicomVolume {
  Image image;
  DicomVolumeSource source;
};

// Every series under a folder (recursively) or in one file, split into sub-series where
// orientation, size or echo differs. Non-DICOM files are skipped. Sorted by series number, then
// description. Throws graft::Error when nothing DICOM with pixels is found.
std::vector<DicomSeries> find_dicom_series(const std::string& folder_or_file);

// Picks one series: by SeriesInstanceUID, by "UID/sub-series", by exact SeriesDescription, or,
// when `selector` is empty, the only one. The error lists the candidates (no patient fields).
const DicomSeries& select_dicom_series(const std::vector<DicomSeries>& series,
                                       const std::string& selector, const std::string& source);

// Assembles a series into one LPS volume: slices sorted along the slice normal, spacing from the
// positions, rescale applied, MONOCHROME1 inverted, mosaics split, multi-frame functional groups
// read, temporal positions as channels. Uneven slice spacing is refused with a message naming the
// series and the measurement, and so is gantry tilt unless options.correct_tilt asks for the
// slices to be resampled: graft never resamples silently.
DicomVolume read_dicom_series(const DicomSeries& series, const DicomReadOptions& options = {});

// The text that selects this series with select_dicom_series or "FOLDER#SELECTOR": the UID, plus
// "/sub-series" when the series was split.
std::string dicom_series_selector(const DicomSeries& series);

// The DICOM identity of the volume read_dicom_series would assemble, without decoding pixels:
// for writing results (DICOM SEG) that reference the source. A tilted series is refused: its
// slices do not lie on one grid.
DicomVolumeSource dicom_volume_source(const DicomSeries& series);
// The same for "FOLDER", "FILE" or "FOLDER#SELECTOR" (see split_dicom_path in io/image_file.h).
DicomVolumeSource dicom_volume_source(const std::string& dicom_path);

// SOP Class UIDs of the DICOM objects graft reads as labels.
constexpr const char* kSegmentationStorageUid = "1.2.840.10008.5.1.4.1.1.66.4";
constexpr const char* kRtStructureSetStorageUid = "1.2.840.10008.5.1.4.1.1.481.3";

// The SOP Class UID of one DICOM file (its meta header's, else its dataset's), read without the
// pixel data; empty when the file is not DICOM.
std::string dicom_sop_class_uid(const std::string& file);

// find + select + read, for a folder or a single file.
DicomVolume read_dicom(const std::string& folder_or_file, const std::string& selector = "",
                       const DicomReadOptions& options = {});

}  // namespace graft::io
