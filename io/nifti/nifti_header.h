#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace graft::io {

// The fields of a NIfTI-1 or NIfTI-2 header that graft uses, in native byte order.
struct NiftiHeader {
  int version = 1;            // 1 or 2
  bool byte_swapped = false;  // the file's byte order differs from this machine's
  bool single_file = true;    // .nii (n+1 / n+2) rather than a .hdr/.img pair
  std::string data_path;      // where the voxels are: the file itself or the sibling .img
  std::array<std::int64_t, 8> dim{};
  std::array<double, 8> pixdim{};
  int datatype = 0;
  std::uint64_t vox_offset = 0;
  double scl_slope = 0.0;
  double scl_inter = 0.0;
  int qform_code = 0;
  int sform_code = 0;
  double quatern_b = 0, quatern_c = 0, quatern_d = 0;
  std::array<double, 3> qoffset{};
  std::array<std::array<double, 4>, 3> srow{};

  // NIfTI's rule: voxels are scaled when scl_slope is finite, nonzero and not the identity.
  bool rescales() const;
};

// Parses and validates the header: sizeof_hdr, dim, datatype, pixdim and that the voxels the
// header claims fit in the file (gzip bounded by DEFLATE's maximum ratio). Throws graft::Error
// naming the path and field; nothing large is allocated here.
NiftiHeader read_nifti_header(const std::string& path);

// Bytes per voxel of a NIfTI datatype code; throws graft::Error for unsupported codes.
int nifti_bytes_per_voxel(int datatype, const std::string& path);

}  // namespace graft::io
