#include "io/nifti/nifti_writer.h"

#include <libdeflate.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "io/error.h"
#include "io/image.h"
#include "io/text.h"

namespace graft::io {
namespace {

constexpr int kHeaderBytes = 348;
constexpr int kVoxelOffset = 352;  // header + the 4-byte extension flag (no extensions)
constexpr short kXformScannerAnat = 1;
constexpr char kUnitsMillimetreSecond = 2 | 8;

short nifti_datatype(DType dtype) {
  switch (dtype) {
    case DType::kU8: return 2;
    case DType::kI16: return 4;
    case DType::kI32: return 8;
    case DType::kF32: return 16;
    case DType::kF64: return 64;
    case DType::kI8: return 256;
    case DType::kU16: return 512;
    case DType::kU32: return 768;
  }
  return 0;
}

// The NIfTI-1 header's fields at their offsets in the 348-byte layout.
struct HeaderBytes {
  std::array<std::uint8_t, kVoxelOffset> bytes{};
  template <typename T>
  void put(int offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
  }
};

double column_length(const Mat3& m, int column) {
  return std::sqrt(m[0][column] * m[0][column] + m[1][column] * m[1][column] + m[2][column] * m[2][column]);
}

struct Quaternion {
  double b = 0, c = 0, d = 0;
  double qfac = 1;  // -1 when the rotation's third column was negated to make it proper
};

// The qform quaternion of an orthonormal direction matrix (columns are the index axes in RAS).
// An improper matrix (determinant -1) is stored with qfac = -1 and its third column negated, as
// the NIfTI-1 standard prescribes.
Quaternion quaternion_of(Mat3 r) {
  Quaternion q;
  for (int column = 0; column < 3; ++column) {
    const double length = column_length(r, column);
    for (auto& row : r) row[column] /= length;
  }
  const double determinant = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) -
                             r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) +
                             r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
  if (determinant < 0) {
    q.qfac = -1;
    for (auto& row : r) row[2] = -row[2];
  }
  // Choose the largest of 4a^2, 4b^2, 4c^2, 4d^2 to divide by, for accuracy.
  const double trace = r[0][0] + r[1][1] + r[2][2];
  double a;
  if (trace > 0) {
    a = 0.5 * std::sqrt(1.0 + trace);
    q.b = 0.25 * (r[2][1] - r[1][2]) / a;
    q.c = 0.25 * (r[0][2] - r[2][0]) / a;
    q.d = 0.25 * (r[1][0] - r[0][1]) / a;
  } else if (r[0][0] >= r[1][1] && r[0][0] >= r[2][2]) {
    q.b = 0.5 * std::sqrt(1.0 + r[0][0] - r[1][1] - r[2][2]);
    q.c = 0.25 * (r[0][1] + r[1][0]) / q.b;
    q.d = 0.25 * (r[0][2] + r[2][0]) / q.b;
    a = 0.25 * (r[2][1] - r[1][2]) / q.b;
  } else if (r[1][1] >= r[2][2]) {
    q.c = 0.5 * std::sqrt(1.0 - r[0][0] + r[1][1] - r[2][2]);
    q.b = 0.25 * (r[0][1] + r[1][0]) / q.c;
    q.d = 0.25 * (r[1][2] + r[2][1]) / q.c;
    a = 0.25 * (r[0][2] - r[2][0]) / q.c;
  } else {
    q.d = 0.5 * std::sqrt(1.0 - r[0][0] - r[1][1] + r[2][2]);
    q.b = 0.25 * (r[0][2] + r[2][0]) / q.d;
    q.c = 0.25 * (r[1][2] + r[2][1]) / q.d;
    a = 0.25 * (r[1][0] - r[0][1]) / q.d;
  }
  if (a < 0) {  // the stored quaternion has a = sqrt(1 - b^2 - c^2 - d^2) >= 0
    q.b = -q.b;
    q.c = -q.c;
    q.d = -q.d;
  }
  return q;
}

HeaderBytes nifti_header_for(const Image& image) {
  const Geometry& grid = image.geometry();
  HeaderBytes header;
  header.put<std::int32_t>(0, kHeaderBytes);
  const bool has_channels = image.channels() > 1;
  std::int16_t dim[8] = {static_cast<std::int16_t>(has_channels ? 4 : 3), 1, 1, 1, 1, 1, 1, 1};
  for (int axis = 0; axis < 3; ++axis) dim[axis + 1] = static_cast<std::int16_t>(grid.size_xyz[axis]);
  if (has_channels) dim[4] = static_cast<std::int16_t>(image.channels());
  for (int k = 0; k < 8; ++k) header.put<std::int16_t>(40 + 2 * k, dim[k]);
  header.put<std::int16_t>(70, nifti_datatype(image.dtype()));
  header.put<std::int16_t>(72, static_cast<std::int16_t>(8 * dtype_size_bytes(image.dtype())));

  // RAS = diag(-1, -1, 1) * LPS; column j of `ras_direction` is index axis j in RAS.
  Mat3 ras_direction = grid.direction;
  for (int column = 0; column < 3; ++column) {
    ras_direction[0][column] = -ras_direction[0][column];
    ras_direction[1][column] = -ras_direction[1][column];
  }
  const Vec3 ras_origin{-grid.origin_world[0], -grid.origin_world[1], grid.origin_world[2]};
  const Quaternion q = quaternion_of(ras_direction);
  float pixdim[8] = {static_cast<float>(q.qfac), 1, 1, 1, 1, 1, 1, 1};
  for (int axis = 0; axis < 3; ++axis) pixdim[axis + 1] = static_cast<float>(grid.spacing_xyz[axis]);
  for (int k = 0; k < 8; ++k) header.put<float>(76 + 4 * k, pixdim[k]);
  header.put<float>(108, static_cast<float>(kVoxelOffset));
  header.put<float>(112, 1.0f);  // scl_slope: voxels are stored as they are
  header.put<char>(123, kUnitsMillimetreSecond);
  header.put<std::int16_t>(252, kXformScannerAnat);  // qform_code
  header.put<std::int16_t>(254, kXformScannerAnat);  // sform_code
  header.put<float>(256, static_cast<float>(q.b));
  header.put<float>(260, static_cast<float>(q.c));
  header.put<float>(264, static_cast<float>(q.d));
  for (int axis = 0; axis < 3; ++axis) header.put<float>(268 + 4 * axis, static_cast<float>(ras_origin[axis]));
  for (int row = 0; row < 3; ++row) {
    for (int column = 0; column < 3; ++column) {
      const float value = static_cast<float>(ras_direction[row][column] * grid.spacing_xyz[column]);
      header.put<float>(280 + 16 * row + 4 * column, value);
    }
    header.put<float>(280 + 16 * row + 12, static_cast<float>(ras_origin[row]));
  }
  std::memcpy(header.bytes.data() + 344, "n+1\0", 4);
  return header;
}

// gzip's level for .nii.gz, as gzip, zlib and dcm2niix default to: libdeflate at 6 compresses a
// CT to within about 2 % of its level 9 and at about twice its level 12's speed.
constexpr int kGzipLevel = 6;

void write_all(std::FILE* file, const std::uint8_t* bytes, std::uint64_t count, const std::string& path) {
  if (count > 0 && std::fwrite(bytes, 1, count, file) != count) {
    throw Error(path + ": cannot write the voxels (disk full?)");
  }
}

// One gzip member (RFC 1952): the header goes in stored deflate blocks and the voxels are
// compressed by libdeflate where they lie, so they are not copied next to the header first.
// Readers see one ordinary deflate stream.
void write_gzip(std::FILE* file, const std::uint8_t* header, std::size_t header_bytes, const std::uint8_t* voxels,
                std::uint64_t voxel_bytes, const std::string& path) {
  const std::uint8_t gzip_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  write_all(file, gzip_header, sizeof gzip_header, path);
  for (std::size_t done = 0; done < header_bytes;) {
    const std::size_t length = std::min<std::size_t>(header_bytes - done, 65535);
    const std::uint8_t block[5] = {0,  // BFINAL 0, BTYPE 00 (stored), padded to the byte
                                   static_cast<std::uint8_t>(length), static_cast<std::uint8_t>(length >> 8),
                                   static_cast<std::uint8_t>(~length), static_cast<std::uint8_t>(~length >> 8)};
    write_all(file, block, sizeof block, path);
    write_all(file, header + done, length, path);
    done += length;
  }
  libdeflate_compressor* compressor = libdeflate_alloc_compressor(kGzipLevel);
  if (compressor == nullptr) throw Error(path + ": cannot allocate a compressor");
  UninitializedVector<std::uint8_t> compressed(libdeflate_deflate_compress_bound(compressor, voxel_bytes));
  const std::size_t compressed_bytes =
      libdeflate_deflate_compress(compressor, voxels, voxel_bytes, compressed.data(), compressed.size());
  libdeflate_free_compressor(compressor);
  if (compressed_bytes == 0) throw Error(path + ": the voxels did not compress within libdeflate's bound");
  write_all(file, compressed.data(), compressed_bytes, path);
  const std::uint32_t crc = libdeflate_crc32(libdeflate_crc32(0, header, header_bytes), voxels, voxel_bytes);
  const std::uint64_t total = header_bytes + voxel_bytes;
  std::uint8_t trailer[8];
  for (int i = 0; i < 4; ++i) {
    trailer[i] = static_cast<std::uint8_t>(crc >> (8 * i));
    trailer[4 + i] = static_cast<std::uint8_t>(total >> (8 * i));  // ISIZE: the length mod 2^32
  }
  write_all(file, trailer, sizeof trailer, path);
}

}  // namespace

void write_nifti(const Image& image, const std::string& path) {
  const Geometry& grid = image.geometry();
  if (grid.frame != Frame::kLPS) {
    throw Error(path + ": NIfTI stores patient (LPS) geometry; this image is in a map CRS");
  }
  for (int axis = 0; axis < 3; ++axis) {
    if (grid.size_xyz[axis] > 32767) {
      throw Error(path + ": NIfTI-1 holds at most 32767 voxels per axis; size_xyz[" + std::to_string(axis) +
                  "] is " + std::to_string(grid.size_xyz[axis]));
    }
  }
  if (image.channels() > 32767) throw Error(path + ": NIfTI-1 holds at most 32767 channels");
  // The qform holds a rotation only, so skewed axes cannot be stored faithfully.
  const Mat3& d = grid.direction;
  for (int a = 0; a < 3; ++a) {
    for (int b = a + 1; b < 3; ++b) {
      const double cosine = (d[0][a] * d[0][b] + d[1][a] * d[1][b] + d[2][a] * d[2][b]) /
                            (column_length(d, a) * column_length(d, b));
      if (std::abs(cosine) > 1e-4) {
        throw Error(path + ": NIfTI's qform needs orthogonal axes; direction columns " + std::to_string(a) +
                    " and " + std::to_string(b) + " have cosine " + std::to_string(cosine));
      }
    }
  }
  const HeaderBytes header = nifti_header_for(image);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw Error(path + ": cannot create file");
  try {
    if (ends_with(path, ".gz")) {
      write_gzip(file, header.bytes.data(), header.bytes.size(), image.bytes(), image.byte_count(), path);
    } else {
      write_all(file, header.bytes.data(), header.bytes.size(), path);
      write_all(file, image.bytes(), image.byte_count(), path);
    }
  } catch (...) {
    std::fclose(file);
    throw;
  }
  if (std::fclose(file) != 0) throw Error(path + ": cannot finish writing the file (disk full?)");
}

}  // namespace graft::io
