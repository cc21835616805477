#include "io/image.h"

#include <sys/mman.h>

#include <cmath>
#include <limits>
#include <type_traits>

#include "io/error.h"

namespace graft::io {

void ask_for_huge_pages(void* memory, std::size_t bytes) {
  constexpr std::uintptr_t kHugePage = 2u << 20;
  if (bytes < 4 * kHugePage) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(memory) + kHugePage - 1) & ~(kHugePage - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(memory) + bytes) & ~(kHugePage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

Image::Image(DType dtype, std::int64_t channels, const Geometry& geometry)
    : dtype_(dtype), channels_(channels), geometry_(geometry) {
  if (channels <= 0) throw Error("an image needs at least one channel");
  bytes_.resize(static_cast<std::size_t>(element_count()) * dtype_size_bytes(dtype), 0);
}

Image Image::uninitialized(DType dtype, std::int64_t channels, const Geometry& geometry) {
  if (channels <= 0) throw Error("an image needs at least one channel");
  Image image;
  image.dtype_ = dtype;
  image.channels_ = channels;
  image.geometry_ = geometry;
  image.bytes_.resize(static_cast<std::size_t>(image.element_count()) * dtype_size_bytes(dtype));
  return image;
}

Image Image::adopt(DType dtype, std::int64_t channels, const Geometry& geometry, Bytes bytes) {
  if (channels <= 0) throw Error("an image needs at least one channel");
  Image image;
  image.dtype_ = dtype;
  image.channels_ = channels;
  image.geometry_ = geometry;
  if (bytes.size() != static_cast<std::size_t>(image.element_count()) * dtype_size_bytes(dtype)) {
    throw Error("an adopted buffer of " + std::to_string(bytes.size()) + " bytes does not hold the image's " +
                std::to_string(image.element_count()) + " " + dtype_name(dtype) + " voxels");
  }
  image.bytes_ = std::move(bytes);
  return image;
}

void Image::check_type(DType requested) const {
  if (requested != dtype_) {
    throw Error("image holds " + dtype_name(dtype_) + " voxels, not " + dtype_name(requested));
  }
}

double Image::value_at(std::int64_t element_index) const {
  return visit_dtype(dtype_, [&](auto zero) {
    using T = decltype(zero);
    T value;
    std::memcpy(&value, bytes_.data() + element_index * sizeof(T), sizeof(T));
    return static_cast<double>(value);
  });
}

namespace {

template <typename To, typename From>
void convert_elements(const From* in, To* out, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    if constexpr (std::is_integral_v<To> && !std::is_integral_v<From>) {
      double v = std::nearbyint(static_cast<double>(in[i]));
      if (std::isnan(v)) v = 0.0;
      const double lo = static_cast<double>(std::numeric_limits<To>::lowest());
      const double hi = static_cast<double>(std::numeric_limits<To>::max());
      out[i] = static_cast<To>(v < lo ? lo : (v > hi ? hi : v));
    } else if constexpr (std::is_integral_v<To> && std::is_integral_v<From>) {
      const auto lo = static_cast<long double>(std::numeric_limits<To>::lowest());
      const auto hi = static_cast<long double>(std::numeric_limits<To>::max());
      const auto v = static_cast<long double>(in[i]);
      out[i] = static_cast<To>(v < lo ? lo : (v > hi ? hi : v));
    } else {
      out[i] = static_cast<To>(in[i]);
    }
  }
}

}  // namespace

void Image::relabel_integer_dtype(DType same_width_integer) {
  if (!dtype_is_integer(dtype_) || !dtype_is_integer(same_width_integer) ||
      dtype_size_bytes(dtype_) != dtype_size_bytes(same_width_integer)) {
    throw Error("cannot relabel " + dtype_name(dtype_) + " voxels as " + dtype_name(same_width_integer) +
                ": only integer types of one width share their bytes");
  }
  dtype_ = same_width_integer;
}

Image Image::cast(DType dtype) const {
  Image out = Image::uninitialized(dtype, channels_, geometry_);
  out.metadata_ = metadata_;
  visit_dtype(dtype_, [&](auto from_zero) {
    using From = decltype(from_zero);
    visit_dtype(dtype, [&](auto to_zero) {
      using To = decltype(to_zero);
      convert_elements(reinterpret_cast<const From*>(bytes_.data()),
                       reinterpret_cast<To*>(out.bytes_.data()), element_count());
    });
  });
  return out;
}

}  // namespace graft::io
