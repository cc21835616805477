#pragma once

#include <string>

#include "io/image.h"

namespace graft::io {

enum class FileFormat { kNifti, kNrrd, kNpy, kUnknown };

std::string format_name(FileFormat format);

// The format from the file's content (magic bytes, gunzipped when needed), never its extension.
FileFormat sniff_format(const std::string& path);
// The format a path's extension names, for writing: .nii, .nii.gz, .nrrd, .nhdr, .npy.
FileFormat format_from_extension(const std::string& path);

// The path without a known image extension (.nii.gz, .nii, .nrrd, .nhdr, .npy), for naming
// outputs after inputs; unchanged when it has none.
std::string strip_image_extension(const std::string& path);

// Reads any supported file into an Image, choosing the reader by content. Every failure is a
// graft::Error that names the path and the field.
Image read(const std::string& path);

// Writes the format that the path's extension names, keeping the geometry. The file appears
// atomically: it is written beside the target and renamed into place.
void write(const Image& image, const std::string& path);

}  // namespace graft::io
