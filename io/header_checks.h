#pragma once

#include <string>

namespace graft::io {

// Each check parses just the header of a file of that format and throws a graft::Error naming the
// path and field when the header is malformed or claims more voxels than the file can hold. They
// run before any third-party reader, so absurd headers never reach an allocation.
// The NIfTI fields graft needs beyond what ITK reports.
struct NiftiHeaderFacts {
  double scl_slope = 0.0;
  double scl_inter = 0.0;
  // NIfTI's rule: voxels are scaled when scl_slope is nonzero and not the identity.
  bool rescales() const { return scl_slope != 0.0 && (scl_slope != 1.0 || scl_inter != 0.0); }
};

NiftiHeaderFacts check_nifti_header(const std::string& path);
void check_nrrd_header(const std::string& path);

}  // namespace graft::io
