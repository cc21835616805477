#include "io/nifti/nifti_reader.h"

#include <fcntl.h>
#include <libdeflate.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "io/error.h"
#include "io/file_bytes.h"
#include "io/nifti/nifti_header.h"

namespace graft::io {
namespace {

// Sequential reads of a plain or gzip file. A single-member gzip file under 4 GiB is inflated in
// one call with libdeflate, which is several times faster than zlib's streaming inflate; anything
// else streams through zlib (which reads plain files transparently too).
class ByteSource {
 public:
  explicit ByteSource(const std::string& path) : path_(path) {
    if (is_gzip_file(path) && inflate_whole_file()) return;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw Error(path + ": cannot open file");
  }
  ~ByteSource() {
    if (file_ != nullptr) gzclose(file_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  void read(void* destination, std::uint64_t bytes, const char* what) {
    auto* out = static_cast<std::uint8_t*>(destination);
    if (file_ == nullptr) {
      if (bytes > inflated_.size() - position_) {
        throw Error(path_ + ": file ends inside the " + std::string(what) + " (truncated?)");
      }
      std::memcpy(out, inflated_.data() + position_, bytes);
      position_ += bytes;
      return;
    }
    while (bytes > 0) {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(bytes, 1u << 30));
      const int got = gzread(file_, out, chunk);
      if (got <= 0) {
        throw Error(path_ + ": file ends inside the " + std::string(what) + " (truncated?)");
      }
      out += got;
      bytes -= static_cast<std::uint64_t>(got);
    }
  }
  // The next `bytes` as a buffer of their own, when the whole file was inflated in memory: they
  // are moved to its front in place, so they are neither copied to fresh memory nor faulted twice.
  std::optional<Image::Bytes> take(std::uint64_t bytes) {
    if (file_ != nullptr || bytes > inflated_.size() - position_) return std::nullopt;
    std::memmove(inflated_.data(), inflated_.data() + position_, bytes);
    inflated_.resize(bytes);
    position_ = inflated_.size();
    return std::move(inflated_);
  }

  void skip(std::uint64_t bytes, const char* what) {
    if (file_ == nullptr) {
      if (bytes > inflated_.size() - position_) {
        throw Error(path_ + ": file ends inside the " + std::string(what) + " (truncated?)");
      }
      position_ += bytes;
      return;
    }
    std::vector<std::uint8_t> sink(std::min<std::uint64_t>(std::max<std::uint64_t>(bytes, 1), 1 << 16));
    while (bytes > 0) {
      const std::uint64_t chunk = std::min<std::uint64_t>(bytes, sink.size());
      read(sink.data(), chunk, what);
      bytes -= chunk;
    }
  }

 private:
  bool inflate_whole_file() {
    // The compressed file is mapped, not copied: its pages come from the page cache.
    const std::uint64_t size = file_size_bytes(path_);
    if (size < 18) return false;
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (mapped == MAP_FAILED) return false;
    const auto* compressed = static_cast<const std::uint8_t*>(mapped);
    std::uint32_t size_mod_4gib;  // gzip's ISIZE trailer, little endian
    std::memcpy(&size_mod_4gib, compressed + size - 4, 4);
    // The header check has already bounded the payload by the compressed size.
    bool inflated = false;
    if (size_mod_4gib != 0 && size_mod_4gib <= max_gunzipped_bytes(size)) {
      inflated_.resize(size_mod_4gib);
      if (libdeflate_decompressor* decompressor = libdeflate_alloc_decompressor()) {
        std::size_t consumed = 0, produced = 0;
        const libdeflate_result result = libdeflate_gzip_decompress_ex(
            decompressor, compressed, size, inflated_.data(), inflated_.size(), &consumed, &produced);
        libdeflate_free_decompressor(decompressor);
        inflated = result == LIBDEFLATE_SUCCESS && consumed == size && produced == inflated_.size();
      }
    }
    ::munmap(mapped, size);
    // Multi-member or >4 GiB streams (or damage): let zlib stream it and report where it fails.
    if (!inflated) Image::Bytes().swap(inflated_);
    return inflated;
  }

  std::string path_;
  gzFile file_ = nullptr;
  Image::Bytes inflated_;
  std::uint64_t position_ = 0;
};

using Affine = std::array<std::array<double, 4>, 3>;  // RAS world, rows x y z

// nifti_quatern_to_mat44: the qform rotation from (b, c, d), with qfac flipping the third axis.
Affine qform_affine(const NiftiHeader& h, const Vec3& spacing) {
  double b = h.quatern_b, c = h.quatern_c, d = h.quatern_d;
  double a = 1.0 - (b * b + c * c + d * d);
  if (a < 1e-7) {  // a 180-degree rotation: renormalise (b, c, d)
    const double norm = 1.0 / std::sqrt(b * b + c * c + d * d);
    b *= norm;
    c *= norm;
    d *= norm;
    a = 0.0;
  } else {
    a = std::sqrt(a);
  }
  const double rotation[3][3] = {
      {a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
      {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
      {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
  const double scale[3] = {spacing[0], spacing[1], spacing[2] * (h.pixdim[0] < 0 ? -1.0 : 1.0)};
  Affine affine{};
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) affine[r][k] = rotation[r][k] * scale[k];
    affine[r][3] = h.qoffset[r];
  }
  return affine;
}

double column_norm(const Affine& affine, int column) {
  return std::sqrt(affine[0][column] * affine[0][column] + affine[1][column] * affine[1][column] +
                   affine[2][column] * affine[2][column]);
}

bool orthonormal_up_to_scale(const Affine& affine) {
  for (int i = 0; i < 3; ++i) {
    const double ni = column_norm(affine, i);
    if (!(ni > 0) || !std::isfinite(ni)) return false;
    for (int j = i + 1; j < 3; ++j) {
      double dot = 0.0;
      for (int r = 0; r < 3; ++r) dot += affine[r][i] * affine[r][j];
      if (std::abs(dot / (ni * column_norm(affine, j))) > 1e-4) return false;
    }
  }
  return true;
}

bool similar(const Affine& a, const Affine& b) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      if (std::abs(a[r][c] - b[r][c]) > (c < 3 ? 1e-5 : 1e-4)) return false;
  return true;
}

Geometry geometry_from_ras_affine(const Affine& affine, const std::array<std::int64_t, 3>& size) {
  Geometry geometry;
  geometry.size_xyz = size;
  for (int c = 0; c < 3; ++c) {
    const double norm = column_norm(affine, c);
    geometry.spacing_xyz[c] = norm;
    for (int r = 0; r < 3; ++r) {
      const double lps_sign = r < 2 ? -1.0 : 1.0;  // RAS -> LPS negates x and y
      geometry.direction[r][c] = lps_sign * affine[r][c] / norm;
    }
  }
  for (int r = 0; r < 3; ++r) geometry.origin_world[r] = (r < 2 ? -1.0 : 1.0) * affine[r][3];
  return geometry;
}

Geometry nifti_geometry(const NiftiHeader& h, const std::string& path) {
  std::array<std::int64_t, 3> size{1, 1, 1};
  Vec3 spacing{1.0, 1.0, 1.0};
  for (int i = 1; i <= std::min<std::int64_t>(h.dim[0], 3); ++i) {
    size[i - 1] = h.dim[i];
    spacing[i - 1] = h.pixdim[i] > 0 ? h.pixdim[i] : 1.0;
  }
  Geometry geometry;
  geometry.size_xyz = size;
  geometry.spacing_xyz = spacing;
  if (h.qform_code <= 0 && h.sform_code <= 0) return geometry;
  const Affine qform = qform_affine(h, spacing);
  Affine sform{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) sform[r][c] = h.srow[r][c];
  const bool sform_usable = h.sform_code > 0 && orthonormal_up_to_scale(sform);
  if (sform_usable && (h.qform_code <= 0 || h.sform_code == 1 || similar(sform, qform))) {
    return geometry_from_ras_affine(sform, size);
  }
  if (h.qform_code > 0) return geometry_from_ras_affine(qform, size);
  throw Error(path + ": sform has skew and there is no qform; the grid cannot be represented");
}

DType stored_dtype(int datatype) {
  switch (datatype) {
    case 256: return DType::kI8;
    case 4: return DType::kI16;
    case 512: return DType::kU16;
    case 8: return DType::kI32;
    case 768: return DType::kU32;
    case 16: return DType::kF32;
    case 64: return DType::kF64;
    default: return DType::kU8;  // u8, RGB24 and RGBA32 are bytes
  }
}

// Skips the NIfTI extensions (if any) and any gap, up to where the voxels start.
void seek_to_voxels(ByteSource& source, const NiftiHeader& h, const std::string& path) {
  const std::uint64_t header_bytes = h.version == 2 ? 540 : 348;
  if (!h.single_file) {
    source.skip(h.vox_offset, "gap before the voxels");
    return;
  }
  source.skip(header_bytes, "header");
  std::uint64_t position = header_bytes;
  std::uint8_t extender[4] = {0, 0, 0, 0};
  source.read(extender, 4, "extension flag");
  position += 4;
  if (extender[0] != 0) {
    while (position + 8 <= h.vox_offset) {
      std::uint8_t extension_header[8];
      source.read(extension_header, 8, "header extension");
      std::int32_t esize;
      std::memcpy(&esize, extension_header, 4);
      if (h.byte_swapped) {
        auto* raw = reinterpret_cast<std::uint8_t*>(&esize);
        std::reverse(raw, raw + 4);
      }
      if (esize < 16 || esize % 16 != 0) {
        throw Error(path + ": header extension has invalid esize " + std::to_string(esize));
      }
      source.skip(static_cast<std::uint64_t>(esize) - 8, "header extension");
      position += static_cast<std::uint64_t>(esize);
    }
  }
  // Some writers store vox_offset 0; the voxels then follow the header and its extensions.
  if (h.vox_offset > position) source.skip(h.vox_offset - position, "gap before the voxels");
}

}  // namespace

Image read_nifti(const std::string& path) {
  const NiftiHeader h = read_nifti_header(path);
  Geometry geometry = nifti_geometry(h, path);
  geometry.validate(path);
  std::int64_t channels = 1;
  for (int i = 4; i <= h.dim[0]; ++i) channels *= h.dim[i];
  const int components = h.datatype == 128 ? 3 : h.datatype == 2304 ? 4 : 1;
  const DType stored = stored_dtype(h.datatype);

  ByteSource source(h.data_path);
  seek_to_voxels(source, h, path);
  const std::uint64_t voxel_bytes = static_cast<std::uint64_t>(geometry.voxel_count()) * channels * components *
                                    dtype_size_bytes(stored);
  std::optional<Image::Bytes> inflated = components == 1 ? source.take(voxel_bytes) : std::nullopt;
  Image image = inflated ? Image::adopt(stored, channels * components, geometry, std::move(*inflated))
                         : Image::uninitialized(stored, channels * components, geometry);
  image.metadata().source_format = "nifti";
  if (!inflated && components == 1) {
    source.read(image.bytes(), image.byte_count(), "voxel data");
  } else if (!inflated) {
    // RGB(A) voxels are interleaved; graft keeps each component as its own channel.
    std::vector<std::uint8_t> interleaved(image.byte_count());
    source.read(interleaved.data(), interleaved.size(), "voxel data");
    const std::int64_t voxels = geometry.voxel_count();
    for (std::int64_t t = 0; t < channels; ++t)
      for (std::int64_t v = 0; v < voxels; ++v)
        for (int k = 0; k < components; ++k)
          image.bytes()[(t * components + k) * voxels + v] = interleaved[(t * voxels + v) * components + k];
  }
  const std::size_t element = dtype_size_bytes(stored);
  if (h.byte_swapped && element > 1) {
    for (std::size_t i = 0; i < image.byte_count(); i += element) {
      std::reverse(image.bytes() + i, image.bytes() + i + element);
    }
  }
  if (!h.rescales()) return image;
  Image scaled = image.cast(stored == DType::kF64 ? DType::kF64 : DType::kF32);
  scaled.metadata().rescale_applied = true;
  visit_dtype(scaled.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      T* values = scaled.data<T>();
      for (std::int64_t i = 0; i < scaled.element_count(); ++i) {
        values[i] = static_cast<T>(values[i] * h.scl_slope + h.scl_inter);
      }
    }
  });
  return scaled;
}

}  // namespace graft::io
