#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "io/dicom/dicom_series.h"
#include "io/image.h"

namespace graft::io {

class DicomUidMap;

// One segment of a DICOM SEG: voxels equal to label_value in a label Image belong to it.
struct DicomSegment {
  int label_value = 0;      // 1..65535
  std::string label;        // Segment Label, e.g. "liver"
  std::string description;  // optional Segment Description
  std::optional<std::array<double, 3>> color_rgb;  // RecommendedDisplayCIELabValue, as sRGB 0..1
};

struct DicomSegOptions {
  std::string series_description = "graft segmentation";
  int series_number = 9001;
  std::string algorithm_name = "graft";
  std::string algorithm_version;  // Software Versions and Algorithm Version; "unversioned" if empty
  // De-identify the SEG (PS3.15 Basic Profile, see io/dicom_anonymize.h) before it is saved.
  bool anonymize = false;
  // Replacement UIDs for anonymize. Pass the map the source series was anonymized with so the SEG
  // keeps referencing it; when null, the SEG gets a map of its own and its references point at
  // UIDs no other file carries.
  DicomUidMap* uid_map = nullptr;
};

// Writes `labels` (one channel, an integer dtype, on source.geometry within 1e-3 mm, with one
// slice per source.slices entry and the source's Columns x Rows) as a binary DICOM
// Segmentation that belongs to the source's patient, study and frame of reference and references
// every source instance (frame by frame for multi-frame sources). Voxel value v > 0 belongs to the
// segment with label_value v; a non-zero value that no segment claims is an error. Frames with no
// voxel of their segment are omitted, except that segment 1 keeps the first and last slice so a
// reader recovers the whole grid from the SEG alone. The file appears atomically. Throws
// graft::Error naming output_path and what failed.
void write_dicom_seg(const Image& labels, const DicomVolumeSource& source,
                     const std::vector<DicomSegment>& segments, const std::string& output_path,
                     const DicomSegOptions& options);

// True for outputs that are DICOM SEG files: the ".dcm" extension.
inline bool is_dicom_seg_path(const std::string& path) {
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".dcm") == 0;
}

// One segment for each label value > 0 present in `labels`, named and coloured as
// named_segments (io/segment_names.h) names them. Throws graft::Error for a non-integer dtype or a
// negative value.
std::vector<DicomSegment> segments_for_labels(const Image& labels, const std::vector<std::string>& names);

struct DicomSegContents {
  Image labels;  // u16 (u8 when every label_value fits), one channel; 0 = no segment
  std::vector<DicomSegment> segments;
  std::string referenced_series_instance_uid;  // the first series the SEG references
};

// Reads a binary DICOM SEG back into a label Image. The grid is rebuilt from the frames' plane
// positions (sorted along the slice normal row x column, which becomes index axis z), orientation
// and pixel measures. Voxel values are label values: graft records each segment's label value in
// its Segmentation Algorithm Identification (Algorithm Parameters "label_value=N"); a SEG from
// elsewhere gets label value = segment number. Where segments overlap, the higher segment number
// wins. Throws graft::Error naming `path` and the field.
DicomSegContents read_dicom_seg(const std::string& path);

// True when a series found by find_dicom_series holds Segmentation Storage instances, which
// read_dicom_series reads as label images through read_dicom_seg.
bool is_dicom_seg_series(const DicomSeries& series);
// A SEG series (one file; several are refused, naming them) as a label Image whose metadata names
// its segments; the source carries the SEG's own UIDs and grid, with no slices to reference.
DicomVolume read_dicom_seg_series(const DicomSeries& series);

}  // namespace graft::io
