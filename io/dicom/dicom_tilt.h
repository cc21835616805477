// Gantry tilt correction: a sheared CT stack resampled onto an orthogonal grid, kept apart from
// assembly (which only measures the shear) and decoding (which only fills the stack).
#pragma once

#include "io/dicom/dicom_assembly.h"
#include "io/image.h"

namespace graft::io::dicom_detail {

// The volume of a sheared stack on an orthogonal grid: axes row x column x normal, slice 0's
// pixel lattice extended by whole rows until every slice fits, as dcm2niix's grid is. Each slice
// is shifted back along its columns with linear interpolation; voxels no slice covers take the
// channel's minimum (dcm2niix's fill when PixelPaddingValue is absent). Integer voxels are
// rounded to the nearest integer, so the dtype stays. `stacked` is the slices decoded onto
// slice 0's grid (Assembly::geometry); Metadata records the tilt.
Image correct_shear(const Image& stacked, const SliceShear& shear);

}  // namespace graft::io::dicom_detail
