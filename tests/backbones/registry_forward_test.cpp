// Every registered backbone builds and runs forward, as timm tests each model of its registry:
// one test per name, so a new registration is tested without anyone writing a test for it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backbones/factory.h"
#include "backbones/registry.h"

namespace {

using graft::backbones::find_backbone;

std::vector<std::string> backbones_with_a_network() {
  std::vector<std::string> names;
  for (const auto& info : graft::backbones::registered_backbones()) {
    if (!info.architecture.empty() && !info.needs_model_folder) names.push_back(info.name);
  }
  return names;
}

class EveryRegisteredBackbone : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryRegisteredBackbone, ForwardGivesEachDeclaredLevelItsStrideAndChannels) {
  const auto& info = find_backbone(GetParam());
  torch::manual_seed(0);
  const auto backbone = graft::backbones::create_backbone(info.name);
  backbone->eval();
  torch::NoGradGuard no_grad;
  const auto levels = backbone->feature_info();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(backbone->spatial_dims(), info.contract.spatial_dims);
  std::int64_t deepest_stride = 1;
  for (const auto& level : levels) deepest_stride = std::max(deepest_stride, level.stride);
  // The smallest input every level divides, twice over, in the Contract's channels.
  const std::int64_t side = 2 * deepest_stride;
  std::vector<std::int64_t> shape{1, info.contract.channel_count()};
  for (int axis = 0; axis < backbone->spatial_dims(); ++axis) shape.push_back(side);
  const torch::Tensor input = torch::randn(shape);

  const std::vector<torch::Tensor> features = backbone->features(input);
  ASSERT_EQ(features.size(), levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const torch::Tensor& level = features[i];
    ASSERT_EQ(level.dim(), 2 + backbone->spatial_dims()) << levels[i].name;
    EXPECT_EQ(level.size(1), levels[i].channels) << levels[i].name;
    for (int axis = 0; axis < backbone->spatial_dims(); ++axis) {
      EXPECT_EQ(level.size(2 + axis), side / levels[i].stride)
          << levels[i].name << " axis " << axis;
    }
    EXPECT_TRUE(torch::isfinite(level).all().item<bool>()) << levels[i].name;
  }
  const torch::Tensor embedding = backbone->embedding(input);
  ASSERT_EQ(embedding.dim(), 2);
  EXPECT_EQ(embedding.size(0), 1);
  EXPECT_TRUE(torch::isfinite(embedding).all().item<bool>());
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); },
      '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryRegisteredBackbone,
                         ::testing::ValuesIn(backbones_with_a_network()), test_name);

}  // namespace
