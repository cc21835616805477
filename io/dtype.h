#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace graft::io {

// Voxel types are kept exactly as stored; nothing is converted to float on read.
enum class DType { kU8, kI8, kU16, kI16, kU32, kI32, kF32, kF64 };

std::size_t dtype_size_bytes(DType dtype);
std::string dtype_name(DType dtype);      // "u8", "i16", "f32", ...
DType dtype_from_name(const std::string& name);  // throws graft::Error on an unknown name
bool dtype_is_integer(DType dtype);

template <typename T>
struct DTypeOf;
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value = DType::kU8; };
template <> struct DTypeOf<std::int8_t> { static constexpr DType value = DType::kI8; };
template <> struct DTypeOf<std::uint16_t> { static constexpr DType value = DType::kU16; };
template <> struct DTypeOf<std::int16_t> { static constexpr DType value = DType::kI16; };
template <> struct DTypeOf<std::uint32_t> { static constexpr DType value = DType::kU32; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };

// Calls fn(T{}) with T the C++ type of dtype, so per-type code is written once.
template <typename Fn>
decltype(auto) visit_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kU8: return fn(std::uint8_t{});
    case DType::kI8: return fn(std::int8_t{});
    case DType::kU16: return fn(std::uint16_t{});
    case DType::kI16: return fn(std::int16_t{});
    case DType::kU32: return fn(std::uint32_t{});
    case DType::kI32: return fn(std::int32_t{});
    case DType::kF32: return fn(float{});
    case DType::kF64: break;
  }
  return fn(double{});
}

}  // namespace graft::io
