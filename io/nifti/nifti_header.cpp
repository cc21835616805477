#include "io/nifti/nifti_header.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "io/error.h"
#include "io/file_bytes.h"

namespace graft::io {
namespace {

template <typename T>
T load(const std::vector<std::uint8_t>& bytes, std::size_t offset, bool swap) {
  std::uint8_t raw[sizeof(T)];
  std::memcpy(raw, bytes.data() + offset, sizeof(T));
  if (swap) std::reverse(raw, raw + sizeof(T));
  T value;
  std::memcpy(&value, raw, sizeof(T));
  return value;
}

// Byte offsets of the fields in the two header layouts.
struct Layout {
  std::size_t dim, pixdim, datatype, vox_offset, scl_slope, scl_inter, qform_code, sform_code,
      quatern, srow, magic;
};
constexpr Layout kNifti1{40, 76, 70, 108, 112, 116, 252, 254, 256, 280, 344};
constexpr Layout kNifti2{16, 104, 12, 168, 176, 184, 344, 348, 352, 400, 4};

}  // namespace

bool NiftiHeader::rescales() const {
  return std::isfinite(scl_slope) && std::isfinite(scl_inter) && scl_slope != 0.0 &&
         (scl_slope != 1.0 || scl_inter != 0.0);
}

int nifti_bytes_per_voxel(int datatype, const std::string& path) {
  switch (datatype) {
    case 2: case 256: return 1;           // u8, i8
    case 4: case 512: return 2;           // i16, u16
    case 8: case 768: case 16: return 4;  // i32, u32, f32
    case 64: return 8;                    // f64
    case 128: return 3;                   // RGB24
    case 2304: return 4;                  // RGBA32
    case 1024: case 1280:
      throw Error(path + ": datatype " + std::to_string(datatype) +
                  " (64-bit integer) is not supported; convert to int32 or float64");
    case 32: case 1792: case 2048:
      throw Error(path + ": datatype " + std::to_string(datatype) + " (complex) is not supported");
    default:
      throw Error(path + ": datatype " + std::to_string(datatype) + " is not a NIfTI datatype");
  }
}

NiftiHeader read_nifti_header(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_prefix(path, 540);
  if (bytes.size() < 348) {
    throw Error(path + ": NIfTI header is truncated (" + std::to_string(bytes.size()) +
                " bytes, needs at least 348)");
  }
  NiftiHeader header;
  const std::int32_t sizeof_hdr = load<std::int32_t>(bytes, 0, false);
  const std::int32_t swapped = load<std::int32_t>(bytes, 0, true);
  if (sizeof_hdr == 348 || swapped == 348) {
    header.version = 1;
    header.byte_swapped = sizeof_hdr != 348;
  } else if (sizeof_hdr == 540 || swapped == 540) {
    header.version = 2;
    header.byte_swapped = sizeof_hdr != 540;
    if (bytes.size() < 540) throw Error(path + ": NIfTI-2 header is truncated");
  } else {
    throw Error(path + ": sizeof_hdr is " + std::to_string(sizeof_hdr) +
                ", expected 348 (NIfTI-1) or 540 (NIfTI-2)");
  }
  const bool v2 = header.version == 2;
  const bool swap = header.byte_swapped;
  const Layout& at = v2 ? kNifti2 : kNifti1;
  auto real = [&](std::size_t offset) {
    return v2 ? load<double>(bytes, offset, swap) : static_cast<double>(load<float>(bytes, offset, swap));
  };
  auto code = [&](std::size_t offset) {
    return v2 ? load<std::int32_t>(bytes, offset, swap) : load<std::int16_t>(bytes, offset, swap);
  };
  for (int i = 0; i < 8; ++i) {
    header.dim[i] = v2 ? load<std::int64_t>(bytes, at.dim + 8 * i, swap)
                       : load<std::int16_t>(bytes, at.dim + 2 * i, swap);
    header.pixdim[i] = real(at.pixdim + (v2 ? 8 : 4) * i);
  }
  header.datatype = load<std::int16_t>(bytes, at.datatype, swap);
  const double raw_offset = v2 ? static_cast<double>(load<std::int64_t>(bytes, at.vox_offset, swap))
                               : real(at.vox_offset);
  if (!std::isfinite(raw_offset) || raw_offset < 0) {
    throw Error(path + ": vox_offset is not a valid byte offset");
  }
  header.vox_offset = static_cast<std::uint64_t>(raw_offset);
  header.scl_slope = real(at.scl_slope);
  header.scl_inter = real(at.scl_inter);
  header.qform_code = code(at.qform_code);
  header.sform_code = code(at.sform_code);
  const std::size_t step = v2 ? 8 : 4;
  header.quatern_b = real(at.quatern);
  header.quatern_c = real(at.quatern + step);
  header.quatern_d = real(at.quatern + 2 * step);
  for (int i = 0; i < 3; ++i) header.qoffset[i] = real(at.quatern + (3 + i) * step);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) header.srow[r][c] = real(at.srow + (4 * r + c) * step);

  if (header.dim[0] < 1 || header.dim[0] > 7) {
    throw Error(path + ": dim[0] is " + std::to_string(header.dim[0]) + ", must be 1..7");
  }
  std::uint64_t voxels = 1;
  for (int i = 1; i <= header.dim[0]; ++i) {
    if (header.dim[i] < 1) {
      throw Error(path + ": dim[" + std::to_string(i) + "] is " + std::to_string(header.dim[i]) +
                  ", must be positive");
    }
    voxels = saturating_multiply(voxels, static_cast<std::uint64_t>(header.dim[i]));
  }
  for (int i = 1; i <= std::min<std::int64_t>(header.dim[0], 3); ++i) {
    if (!std::isfinite(header.pixdim[i]) || header.pixdim[i] < 0) {
      std::ostringstream why;
      why << path << ": pixdim[" << i << "] (voxel spacing) is " << header.pixdim[i]
          << ", must be finite and not negative";
      throw Error(why.str());
    }
  }
  const std::uint64_t payload = saturating_multiply(
      voxels, static_cast<std::uint64_t>(nifti_bytes_per_voxel(header.datatype, path)));

  const std::string magic(reinterpret_cast<const char*>(bytes.data()) + at.magic, 3);
  header.single_file = magic == "n+1" || magic == "n+2";
  std::uint64_t available = 0;
  if (header.single_file) {
    header.data_path = path;
    const std::uint64_t stored = file_size_bytes(path);
    const std::uint64_t content = is_gzip_file(path) ? max_gunzipped_bytes(stored) : stored;
    available = content > header.vox_offset ? content - header.vox_offset : 0;
  } else {
    // A .hdr/.img pair: the voxels live in the sibling .img (or .img.gz), from vox_offset on.
    const auto dot = path.rfind(".hdr");
    if (dot == std::string::npos) throw Error(path + ": NIfTI magic is missing");
    header.data_path = path.substr(0, dot) + ".img" + path.substr(dot + 4);
    if (!std::ifstream(header.data_path)) {
      const std::string gzipped = path.substr(0, dot) + ".img.gz";
      if (!std::ifstream(gzipped)) {
        throw Error(path + ": the voxel file " + header.data_path + " is missing");
      }
      header.data_path = gzipped;
    }
    const std::uint64_t stored = file_size_bytes(header.data_path);
    available = is_gzip_file(header.data_path) ? max_gunzipped_bytes(stored) : stored;
  }
  check_payload_fits(path, "the header's dim and datatype", payload, available);
  return header;
}

}  // namespace graft::io
