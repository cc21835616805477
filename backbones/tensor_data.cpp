#include "backbones/tensor_data.h"

namespace graft::backbones {

std::size_t tensor_dtype_size(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF64: case TensorDType::kI64: return 8;
    case TensorDType::kF32: case TensorDType::kI32: return 4;
    case TensorDType::kF16: case TensorDType::kBF16: case TensorDType::kI16: return 2;
    case TensorDType::kI8: case TensorDType::kU8: case TensorDType::kBool: return 1;
  }
  return 1;
}

std::string tensor_dtype_name(TensorDType dtype) {
  switch (dtype) {
    case TensorDType::kF32: return "F32";
    case TensorDType::kF64: return "F64";
    case TensorDType::kF16: return "F16";
    case TensorDType::kBF16: return "BF16";
    case TensorDType::kI64: return "I64";
    case TensorDType::kI32: return "I32";
    case TensorDType::kI16: return "I16";
    case TensorDType::kI8: return "I8";
    case TensorDType::kU8: return "U8";
    case TensorDType::kBool: return "BOOL";
  }
  return "?";
}

std::int64_t TensorData::element_count() const {
  std::int64_t count = 1;
  for (std::int64_t n : shape) count *= n;
  return count;
}

std::string TensorData::shape_text() const {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace graft::backbones
