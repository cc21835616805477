#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace graft::backbones {

// Element types that appear in PyTorch and safetensors checkpoints.
enum class TensorDType { kF32, kF64, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

std::size_t tensor_dtype_size(TensorDType dtype);
std::string tensor_dtype_name(TensorDType dtype);  // safetensors names: "F32", "I64", ...

// One tensor from a checkpoint: contiguous, C order, little-endian bytes. Kept free of LibTorch
// so parsing checkpoints costs no LibTorch compile time.
struct TensorData {
  TensorDType dtype = TensorDType::kF32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;

  std::int64_t element_count() const;
  std::string shape_text() const;  // "[64, 1, 7, 7, 7]"
};

// Name -> tensor, in the checkpoint's order.
using StateDict = std::vector<std::pair<std::string, TensorData>>;

}  // namespace graft::backbones
