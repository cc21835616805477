#include "datasets/image_tensor.h"

#include <cstring>

#include "io/error.h"

namespace graft::datasets {
namespace {

torch::ScalarType scalar_type(io::DType dtype) {
  switch (dtype) {
    case io::DType::kU8: return torch::kUInt8;
    case io::DType::kI8: return torch::kInt8;
    case io::DType::kI16: return torch::kInt16;
    case io::DType::kI32: return torch::kInt32;
    case io::DType::kF32: return torch::kFloat32;
    case io::DType::kF64: return torch::kFloat64;
    case io::DType::kU16:
    case io::DType::kU32: break;  // LibTorch 1.13 has no unsigned 16/32-bit tensors
  }
  return torch::kFloat32;
}

}  // namespace

torch::Tensor image_to_tensor(const io::Image& image) {
  const auto& n = image.geometry().size_xyz;
  const std::vector<std::int64_t> shape{image.channels(), n[2], n[1], n[0]};
  // u16 and u32 widen to a signed type that holds every value.
  if (image.dtype() == io::DType::kU16) return image_to_tensor(image.cast(io::DType::kI32));
  if (image.dtype() == io::DType::kU32) return image_to_tensor(image.cast(io::DType::kF64));
  torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(scalar_type(image.dtype())));
  std::memcpy(tensor.data_ptr(), image.bytes(), image.byte_count());
  return tensor;
}

io::Image tensor_to_image(const torch::Tensor& tensor, const io::Geometry& geometry) {
  torch::Tensor source = tensor.dim() == 3 ? tensor.unsqueeze(0) : tensor;
  if (source.dim() != 4) throw Error("tensor_to_image: expected a (C, Z, Y, X) tensor");
  const auto& n = geometry.size_xyz;
  if (source.size(1) != n[2] || source.size(2) != n[1] || source.size(3) != n[0]) {
    throw Error("tensor_to_image: tensor spatial shape does not match the geometry");
  }
  io::DType dtype;
  switch (source.scalar_type()) {
    case torch::kUInt8: dtype = io::DType::kU8; break;
    case torch::kInt8: dtype = io::DType::kI8; break;
    case torch::kInt16: dtype = io::DType::kI16; break;
    case torch::kInt32: dtype = io::DType::kI32; break;
    case torch::kFloat64: dtype = io::DType::kF64; break;
    case torch::kInt64:
      source = source.to(torch::kInt32);
      dtype = io::DType::kI32;
      break;
    default:
      source = source.to(torch::kFloat32);
      dtype = io::DType::kF32;
  }
  source = source.contiguous().cpu();
  io::Image image = io::Image::uninitialized(dtype, source.size(0), geometry);
  std::memcpy(image.bytes(), source.data_ptr(), image.byte_count());
  return image;
}

}  // namespace graft::datasets
