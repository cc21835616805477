#pragma once

#include <array>
#include <string>
#include <vector>

#include "io/dicom/dicom_series.h"
#include "io/geometry.h"
#include "io/image.h"

namespace graft::io {

// One ROI of an RT Structure Set: its closed planar contours in patient coordinates (LPS, mm).
struct RtStructRoi {
  int number = 0;  // ROINumber
  std::string name;
  std::optional<std::array<double, 3>> color_rgb;  // ROIDisplayColor, 0..1
  std::string frame_of_reference_uid;
  std::vector<std::vector<Vec3>> contours;  // CLOSED_PLANAR contours; the first point is not repeated
};

struct RtStruct {
  std::string sop_instance_uid;
  std::string study_instance_uid;
  std::string referenced_series_instance_uid;  // the series the contours were drawn on, when named
  std::vector<RtStructRoi> rois;
};

// Reads every ROI and its contours. POINT and OPEN contours are skipped (they enclose nothing).
// Throws graft::Error naming the path, the SOP Instance UID and the ROI for a malformed entry.
RtStruct read_rtstruct(const std::string& path);

// Which label value each ROI becomes: with `class_names` (the label values 1, 2, ... in order), the
// ROI whose name matches a class name (ignoring case, spaces, '-' and '_') takes that class's value
// and ROIs that match none are left out; without them, each ROI takes its ROINumber (graft writes
// the label value there, so a label map round-trips), or its place in the file (1, 2, ...) when
// the numbers are not all in 1..65535.
// Throws graft::Error when a class name matches no ROI, listing the ROIs there are.
std::vector<int> rtstruct_label_values(const RtStruct& structure_set, const std::vector<std::string>& class_names,
                                       const std::string& path);

// Rasterises the ROIs onto `grid`: a voxel belongs to an ROI when its centre lies inside an odd
// number of that ROI's contours on its slice (the even-odd rule, so a contour inside another is a
// hole), which is how dicompyler-core and XOR-mode plastimatch read nested contours. Each contour
// must lie in one slice of the grid (within a quarter of the slice spacing); a voxel in several
// ROIs takes the later one. The labels' metadata names the segments.
Image rasterize_rtstruct(const RtStruct& structure_set, const std::vector<int>& label_values, const Geometry& grid,
                         const std::string& path);

struct RtStructWriteOptions {
  std::string series_description = "graft contours";
  int series_number = 9002;
  std::string structure_set_label = "graft";  // SH: cut to 16 characters
  bool anonymize = false;  // de-identify as write_dicom_seg does (PS3.15 Basic Profile)
};

// Writes `labels` (one channel, integer, on source.geometry) as an RT Structure Set that belongs
// to the source's patient, study and frame of reference: one ROI per segment, numbered by its label
// value and named and coloured from labels.metadata().segments (see named_segments), and on each
// slice one CLOSED_PLANAR
// contour per boundary of that segment, traced along the voxel edges so that even-odd
// rasterisation gives back exactly the voxels it came from. Each contour references its slice's
// source image. The file appears atomically. Throws graft::Error naming output_path.
void write_rtstruct(const Image& labels, const DicomVolumeSource& source, const std::string& output_path,
                    const RtStructWriteOptions& options);

// True for outputs that are RT Structure Sets: the ".rtstruct.dcm" extension.
inline bool is_rtstruct_path(const std::string& path) {
  return path.size() > 13 && path.compare(path.size() - 13, 13, ".rtstruct.dcm") == 0;
}

}  // namespace graft::io
