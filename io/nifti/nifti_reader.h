#pragma once

#include <string>

#include "io/image.h"

namespace graft::io {

// NIfTI-1 and NIfTI-2 (.nii, .nii.gz, .hdr/.img pairs), either byte order.
//
// graft reads NIfTI itself rather than through ITK 5.2's NiftiImageIO, which cannot open NIfTI-2
// and turns NaN voxels into 0; writing still goes through ITK. The qform/sform choice follows
// ITK's NiftiImageIO rule, so a file lands where ITK (and Slicer) put it:
//   - neither code set: identity direction, zero origin, spacing from pixdim (ITK's choice;
//     nibabel instead falls back to an Analyze-style RAS affine);
//   - the sform wins when it is orthonormal up to scale and the qform code is unset, or the sform
//     code is SCANNER_ANAT (1), or the two transforms agree;
//   - otherwise the qform is used when its code is set; a skewed sform alone is refused.
// Dimensions 4..7 become channels, RGB and RGBA become 3 or 4 u8 channels, and scl_slope and
// scl_inter promote integers to f32 (f64 stays f64), as ITK does.
Image read_nifti(const std::string& path);

}  // namespace graft::io
