#pragma once

#include <string>

namespace graft::io {

// Parses just the NRRD header and throws a graft::Error naming the path and field when it is
// malformed or claims more voxels than the file can hold. It runs before NrrdIO, so absurd
// headers never reach an allocation.
void check_nrrd_header(const std::string& path);

}  // namespace graft::io
