// The record of one frame's header, and reading it from a file: discovery groups these records
// into series, assembly orders them, decoding reads the pixels they point at.
#pragma once

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/geometry.h"

namespace graft::io {

// Everything parsed from one frame's header: a single-frame file has one, a multi-frame file one
// per frame. Patient fields are never read.
struct DicomFrameHeader {
  std::string file;
  int frame_index = 0;  // 0-based within the file
  bool multi_frame = false;
  std::string series_instance_uid, study_instance_uid, frame_of_reference_uid;
  std::string modality, series_description;
  int series_number = 0;
  std::string sop_class_uid, sop_instance_uid, transfer_syntax_uid;
  std::uint32_t pixel_data_bytes = 0;  // PixelData's declared length (undefined when encapsulated)
  std::int64_t rows = 0, columns = 0;
  int samples_per_pixel = 1, bits_allocated = 16, bits_stored = 16, pixel_representation = 0;
  int planar_configuration = 0;  // 1: colour by plane (RRR...GGG...BBB) in uncompressed pixel data
  std::string photometric = "MONOCHROME2";
  bool has_position = false;
  Vec3 position_lps{0, 0, 0};
  bool has_orientation = false;
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  bool has_pixel_spacing = false;
  double row_spacing_mm = 1.0, column_spacing_mm = 1.0;
  double slice_thickness_mm = 0.0, spacing_between_slices_mm = 0.0;
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  std::string echo;           // echo number or echo time, as text: only compared
  int temporal_position = 0;  // 0 when absent
  double trigger_time_ms = 0.0;
  int acquisition_number = 0, instance_number = 0;
  int mosaic_tiles = 0;  // Siemens mosaic: images tiled into this frame
  bool has_mosaic_normal = false;
  Vec3 mosaic_normal{0, 0, 1};
};

struct DicomSeriesHeaders {
  std::vector<DicomFrameHeader> frames;
};

namespace dicom_detail {

// Vector arithmetic on slice positions, and a header's row and column directions.
inline Vec3 scaled(const Vec3& a, double s) { return {a[0] * s, a[1] * s, a[2] * s}; }
inline Vec3 plus(const Vec3& a, const Vec3& b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
inline Vec3 minus(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }

inline Vec3 row_direction(const DicomFrameHeader& h) {
  return {h.orientation[0], h.orientation[1], h.orientation[2]};
}
inline Vec3 column_direction(const DicomFrameHeader& h) {
  return {h.orientation[3], h.orientation[4], h.orientation[5]};
}

// One header per frame. Enhanced multi-frame objects carry geometry and rescale per frame in
// functional groups; classic multi-frame objects (RT dose, NM) in GridFrameOffsetVector.
std::vector<DicomFrameHeader> read_frame_headers(DcmFileFormat& file_format,
                                                 const std::string& file);

// Whether the dataset holds any pixel data: reports, structured sets and presentation states do
// not.
bool has_pixel_data(DcmDataset* dataset);

// Loads `path` into `file_format`; with `headers_only`, large values such as the pixels stay in
// the file. Throws graft::Error when the file is not readable as DICOM.
void load_file(DcmFileFormat& file_format, const std::string& path, bool headers_only);

}  // namespace dicom_detail
}  // namespace graft::io
