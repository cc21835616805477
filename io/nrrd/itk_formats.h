#pragma once

#include <string>

#include "io/image.h"

namespace graft::io {

enum class ItkFormat { kNifti, kNrrd };

// NIfTI-1/2 and NRRD through ITK's ImageIO layer. NIfTI's qform/sform choice, scl_slope and
// scl_inter and byte order are resolved exactly as ITK resolves them; geometry comes back in LPS.
// A 4th dimension, and vector components, become channels.
Image read_itk(const std::string& path, ItkFormat format);
void write_itk(const Image& image, const std::string& path, ItkFormat format);

}  // namespace graft::io
