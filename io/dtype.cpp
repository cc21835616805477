#include "io/dtype.h"

#include "io/error.h"

namespace graft::io {

std::size_t dtype_size_bytes(DType dtype) {
  return visit_dtype(dtype, [](auto zero) { return sizeof(zero); });
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kU8: return "u8";
    case DType::kI8: return "i8";
    case DType::kU16: return "u16";
    case DType::kI16: return "i16";
    case DType::kU32: return "u32";
    case DType::kI32: return "i32";
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType dtype : {DType::kU8, DType::kI8, DType::kU16, DType::kI16, DType::kU32, DType::kI32,
                      DType::kF32, DType::kF64}) {
    if (dtype_name(dtype) == name) return dtype;
  }
  throw Error("unknown voxel type '" + name + "' (expected u8, i8, u16, i16, u32, i32, f32, f64)");
}

bool dtype_is_integer(DType dtype) { return dtype != DType::kF32 && dtype != DType::kF64; }

}  // namespace graft::io
