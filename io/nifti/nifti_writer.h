#pragma once

#include <string>

#include "io/image.h"

namespace graft::io {

// Writes a NIfTI-1 single file (.nii, or gzip for .nii.gz) without ITK, so the compute-only build
// writes what it reads. The layout follows ITK 5.2's NiftiImageIO, so ITK, Slicer and nibabel
// place the file as ITK's writer would: dim[0] = 3 (4 with channels as the 4th dimension),
// qform and sform both SCANNER_ANAT (1) from the same LPS grid turned into NIfTI's RAS, pixdim[0]
// the quaternion's handedness, units mm. Patient (LPS) grids only; a map-CRS raster is refused.
void write_nifti(const Image& image, const std::string& path);

}  // namespace graft::io
