#pragma once

// Comparing a graft backbone with the outputs a tests/tools/*_reference.py script saved from its
// independently written PyTorch network.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <string>

#include "backbones/backbone.h"
#include "io/numpy/npy.h"

namespace graft::backbones::testing {

// A float32 NPY as a tensor of the same shape.
inline torch::Tensor npy_tensor(const std::string& path) {
  const io::NpyArray array = io::read_npy_array(path);
  torch::Tensor tensor = torch::empty(array.shape, torch::kFloat32);
  std::memcpy(tensor.data_ptr(), array.bytes.data(), array.bytes.size());
  return tensor;
}

inline double max_relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

// FOLDER/input.npy through the network: stem and layer1..layer4 equal FOLDER/<name>.npy to 1e-5
// (relative to each map's largest value), and the mean of layer4 over space equals pooled.npy.
inline void expect_resnet_features_match(BackboneImpl& network, const std::string& folder,
                                         double pooled_tolerance = 1e-5) {
  network.eval();
  torch::NoGradGuard no_grad;
  const auto features = network.features(npy_tensor(folder + "/input.npy"));
  const char* names[] = {"stem", "layer1", "layer2", "layer3", "layer4"};
  ASSERT_EQ(features.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor expected = npy_tensor(folder + "/" + names[i] + ".npy");
    ASSERT_EQ(features[i].sizes(), expected.sizes()) << names[i];
    EXPECT_LT(max_relative_difference(features[i], expected), 1e-5) << names[i];
  }
  EXPECT_LT(
      max_relative_difference(features[4].flatten(2).mean(2), npy_tensor(folder + "/pooled.npy")),
      pooled_tolerance);
}

}  // namespace graft::backbones::testing
