#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/dtype.h"
#include "io/geometry.h"

namespace graft::io {

// Asks the kernel to back a large, untouched allocation with transparent huge pages where it
// allows them on request: a volume's first touch then takes one fault per 2 MiB instead of one
// per 4 KiB, which is most of the system time of reading and resampling a CT.
void ask_for_huge_pages(void* memory, std::size_t bytes);

// What one value of a label image means, when the file names its segments (DICOM SEG, Slicer's
// .seg.nrrd, an RTSTRUCT's ROIs).
struct LabelSegment {
  int label_value = 0;
  std::string name;
  std::optional<std::array<double, 3>> color_rgb;  // each 0..1, when the file gives one
};

// What is known about the voxels beyond their grid. Patient-identifying DICOM fields never go
// here: nothing in Metadata may identify a person, because Metadata is printed and logged.
struct Metadata {
  std::string modality;  // "CT", "MR", "optical", ... or empty when unknown
  std::vector<std::string> band_names;  // one per channel when known
  std::vector<double> wavelengths_nm;   // one per channel when known
  std::string units;
  std::vector<std::optional<double>> nodata;  // per channel (band), when the format says so
  bool rescale_applied = false;  // scl_slope/intercept or RescaleSlope/Intercept already in voxels
  std::string source_format;     // "nifti", "nrrd", "npy", ...
  // Set when a DICOM series' sheared slices (CT gantry tilt of this many degrees) were resampled
  // onto an orthogonal grid, linearly along the columns (DicomReadOptions::correct_tilt).
  std::optional<double> gantry_tilt_corrected_degrees;
  // Label images only: the named segments, in the file's order.
  std::vector<LabelSegment> segments;
};

// A contiguous voxel buffer laid out channels x z x y x x (x fastest), with its dtype, the grid
// it lies on, and its metadata. Geometry never travels separately from the voxels.
class Image {
 public:
  // Value-initialises only on request (Image's constructor), never on resize().
  template <typename T>
  struct DefaultInitAllocator : std::allocator<T> {
    template <typename U>
    struct rebind {
      using other = DefaultInitAllocator<U>;
    };
    using std::allocator<T>::allocator;
    T* allocate(std::size_t count) {
      T* memory = std::allocator<T>::allocate(count);
      ask_for_huge_pages(memory, count * sizeof(T));
      return memory;
    }
    template <typename U>
    void construct(U* place) noexcept {
      ::new (static_cast<void*>(place)) U;
    }
    template <typename U, typename... Args>
    void construct(U* place, Args&&... args) {
      ::new (static_cast<void*>(place)) U(std::forward<Args>(args)...);
    }
  };
  // A byte buffer that resize() leaves uninitialised, for producers that write every byte.
  using Bytes = std::vector<std::uint8_t, DefaultInitAllocator<std::uint8_t>>;

  Image() = default;
  // Voxels start at zero.
  Image(DType dtype, std::int64_t channels, const Geometry& geometry);
  // Voxels start undefined, for producers that write every voxel anyway: zero-filling large
  // buffers first is a measurable share of a read or resample.
  static Image uninitialized(DType dtype, std::int64_t channels, const Geometry& geometry);
  // Takes over a buffer a reader has already filled (a whole inflated file, trimmed to its
  // voxels), so the voxels are neither copied nor faulted in a second time. Its size must be
  // exactly the image's byte count.
  static Image adopt(DType dtype, std::int64_t channels, const Geometry& geometry, Bytes bytes);

  DType dtype() const { return dtype_; }
  std::int64_t channels() const { return channels_; }
  const Geometry& geometry() const { return geometry_; }
  Geometry& geometry() { return geometry_; }
  const Metadata& metadata() const { return metadata_; }
  Metadata& metadata() { return metadata_; }

  std::int64_t voxels_per_channel() const { return geometry_.voxel_count(); }
  std::int64_t element_count() const { return channels_ * voxels_per_channel(); }
  std::size_t byte_count() const { return bytes_.size(); }
  std::uint8_t* bytes() { return bytes_.data(); }
  const std::uint8_t* bytes() const { return bytes_.data(); }

  template <typename T>
  T* data() {
    check_type(DTypeOf<T>::value);
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <typename T>
  const T* data() const {
    check_type(DTypeOf<T>::value);
    return reinterpret_cast<const T*>(bytes_.data());
  }

  // Linear offset of (channel, z, y, x) in elements.
  std::int64_t offset(std::int64_t channel, std::int64_t z, std::int64_t y, std::int64_t x) const {
    const auto& n = geometry_.size_xyz;
    return ((channel * n[2] + z) * n[1] + y) * n[0] + x;
  }

  // Any voxel as a double, whatever the dtype (for statistics and tests, not hot loops).
  double value_at(std::int64_t element_index) const;

  // A copy with voxels converted to `dtype` (values are cast, rounding to nearest for integers
  // and clamping to the type's range) and the same geometry and metadata.
  Image cast(DType dtype) const;

  // Reads the same bytes as another integer dtype of the same width (uint16 as int16), for
  // producers that transform values in place; any other change is an error.
  void relabel_integer_dtype(DType same_width_integer);

 private:
  void check_type(DType requested) const;

  DType dtype_ = DType::kF32;
  std::int64_t channels_ = 0;
  Geometry geometry_;
  Metadata metadata_;
  Bytes bytes_;
};

// A vector whose resize() leaves new elements uninitialised, for scratch buffers written in full.
template <typename T>
using UninitializedVector = std::vector<T, Image::DefaultInitAllocator<T>>;

}  // namespace graft::io
