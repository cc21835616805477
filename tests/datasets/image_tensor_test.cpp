#include "datasets/image_tensor.h"

#include <gtest/gtest.h>

namespace graft::datasets {
namespace {

TEST(ImageTensor, ImageBecomesAChannelsZYXTensorOfTheSameType) {
  io::Geometry g;
  g.size_xyz = {4, 3, 2};
  io::Image image(io::DType::kI16, 2, g);
  for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<std::int16_t>()[i] = static_cast<std::int16_t>(i - 10);
  const torch::Tensor tensor = image_to_tensor(image);
  EXPECT_EQ(tensor.sizes(), torch::IntArrayRef({2, 2, 3, 4}));
  EXPECT_EQ(tensor.scalar_type(), torch::kInt16);
  // (c=1, z=1, y=2, x=3) is element ((1*2 + 1)*3 + 2)*4 + 3 = 47 -> value 37.
  EXPECT_EQ(tensor[1][1][2][3].item<int>(), 37);
}

TEST(ImageTensor, UnsignedSixteenBitWidensWithoutLoss) {
  io::Geometry g;
  io::Image image(io::DType::kU16, 1, g);
  image.data<std::uint16_t>()[0] = 65000;
  const torch::Tensor tensor = image_to_tensor(image);
  EXPECT_EQ(tensor.scalar_type(), torch::kInt32);
  EXPECT_EQ(tensor.flatten()[0].item<int>(), 65000);
}

TEST(ImageTensor, TensorBackToImageKeepsGeometryAndValues) {
  io::Geometry g;
  g.size_xyz = {5, 4, 3};
  g.spacing_xyz = {0.5, 0.5, 2.0};
  const torch::Tensor tensor = torch::arange(60, torch::kFloat32).reshape({1, 3, 4, 5});
  const io::Image image = tensor_to_image(tensor, g);
  EXPECT_EQ(image.dtype(), io::DType::kF32);
  EXPECT_TRUE(image.geometry().same_grid(g));
  EXPECT_EQ(image.data<float>()[59], 59.0f);
  g.size_xyz = {5, 5, 3};
  EXPECT_THROW(tensor_to_image(tensor, g), std::runtime_error);
}

}  // namespace
}  // namespace graft::datasets
