// Ordering a series' frames into slices and channels and deriving the volume's geometry, without
// touching pixels: shared by decoding and by dicom_volume_source.
#pragma once

#include <optional>
#include <vector>

#include "io/dicom/dicom_header.h"
#include "io/dicom/dicom_series.h"
#include "io/geometry.h"

namespace graft::io::dicom_detail {

// One 2D image of the volume: a frame, or one tile of a mosaic frame.
struct PlaneImage {
  const DicomFrameHeader* header = nullptr;
  int tile = -1;
  Vec3 position_lps{0, 0, 0};
  double distance_mm = 0.0;  // along the slice normal
};

// A stack whose slices drift in-plane along the column direction, as a tilted CT gantry makes
// them: slice z lies column_shift_px[z] rows from slice 0 (so column_shift_px[0] == 0).
struct SliceShear {
  std::vector<double> column_shift_px;
  double tilt_degrees = 0.0;  // the drift's angle to the slice normal over the whole stack
};

struct Assembly {
  std::vector<std::vector<PlaneImage>> slices;  // [z][channel]
  // The grid of slice 0 stacked along the normal: every slice's pixels decode onto it, and it is
  // the volume's grid unless the slices are sheared.
  Geometry geometry;
  std::optional<SliceShear> shear;  // only when the caller allowed it
};

// Sorts the series' images along the slice normal into slices (temporal positions as channels) and
// derives the grid. Throws graft::Error, naming the series, for mixed image types, unstackable
// images, incomplete positions, uneven spacing, and gantry tilt unless `allow_shear` (then the
// shear is returned for correct_shear in dicom_tilt.h, as long as it runs along the columns).
Assembly assemble(const DicomSeries& series, bool allow_shear = false);

// Throws graft::Error when the series carries no parsed headers (it did not come from
// find_dicom_series).
void check_has_headers(const DicomSeries& series);

// The DICOM identity of the assembled volume: the first channel's instance of every slice.
DicomVolumeSource volume_source(const DicomSeries& series, const Geometry& geometry,
                                const std::vector<std::vector<PlaneImage>>& slices);

}  // namespace graft::io::dicom_detail
