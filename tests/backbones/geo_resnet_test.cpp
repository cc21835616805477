// timm/TorchGeo 2D ResNets against PyTorch: tests/tools/timm_resnet_reference.py (Debian
// python3-torch) defines the network independently with timm's key names, saves a torch.save
// state_dict with 13 (Sentinel-2) or 11 (Landsat 8) input channels, and computes the features;
// graft must load the file strictly and reproduce every feature map.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "io/npy.h"
#include "tests/support/test_support.h"

namespace graft::backbones {
namespace {

torch::Tensor npy_tensor(const std::string& path) {
  const io::NpyArray array = io::read_npy_array(path);
  torch::Tensor tensor = torch::empty(array.shape, torch::kFloat32);
  std::memcpy(tensor.data_ptr(), array.bytes.data(), array.bytes.size());
  return tensor;
}

double max_relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

// The reference for one depth and channel count, in a fresh folder; empty without python3-torch.
std::string reference(int depth, int in_channels, bool with_fc) {
  if (graft::testing::python_with("torch").empty()) return "";
  const std::string folder = graft::testing::temp_dir() + "/resnet" + std::to_string(depth) + "-" +
                             std::to_string(in_channels) + (with_fc ? "-fc" : "");
  std::string output;
  const int status = graft::testing::run_command(
      "/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/timm_resnet_reference.py --depth " +
          std::to_string(depth) + " --in-chans " + std::to_string(in_channels) + " --out-dir " +
          folder + (with_fc ? " --with-fc" : ""),
      &output);
  EXPECT_EQ(status, 0) << output;
  return folder;
}

void expect_features_match(BackboneImpl& network, const std::string& folder) {
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
  EXPECT_LT(max_relative_difference(features[4].mean({2, 3}), npy_tensor(folder + "/pooled.npy")),
            1e-4);
}

TEST(GeoResNet, Sentinel2ResNet18LoadsStrictlyAndReproducesPyTorch) {
  const std::string folder = reference(18, 13, false);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  auto network = create_backbone("geo-resnet18-s2");
  const LoadReport report = load_weights(*network, folder + "/model.pth");
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.loaded.size(), 120u);  // 20 convolutions, 20 batch norms with 5 tensors each
  expect_features_match(*network, folder);
  // The same through the command line: graft embed's pooled features are PyTorch's to 1e-4.
  std::string output;
  ASSERT_EQ(
      graft::testing::run_command(
          graft::testing::graft_executable() + " embed --backbone geo-resnet18-s2 --weights " +
              folder + "/model.pth --input-npy " + folder + "/input.npy --output pooled --out " +
              folder + "/pooled_graft.npy",
          &output),
      0)
      << output;
  EXPECT_LT(max_relative_difference(npy_tensor(folder + "/pooled_graft.npy"),
                                    npy_tensor(folder + "/pooled.npy")),
            1e-4);
}

// An ImageNet-style timm checkpoint carries its classifier; the backbone drops it with a note.
TEST(GeoResNet, LandsatResNet50DropsTheClassifierAndReproducesPyTorch) {
  const std::string folder = reference(50, 11, true);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  auto network = create_backbone("geo-resnet50-l8");
  const LoadReport report = load_weights(*network, folder + "/model.pth");
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_NE(
      report.summary().find("classifier tensors not used by the backbone: fc.weight, fc.bias"),
      std::string::npos)
      << report.summary();
  expect_features_match(*network, folder);
}

// timm's adapt_input_conv: RGB weights on 6 bands repeat the kernels twice and halve them, so the
// same RGB image given twice yields exactly the RGB network's features; 13 bands adapt too.
TEST(GeoResNet, RgbWeightsAdaptToMoreBands) {
  const std::string folder = reference(18, 3, false);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  auto rgb = create_backbone("geo-resnet18-s2", 3);
  load_weights(*rgb, folder + "/model.pth");
  auto six = create_backbone("geo-resnet18-s2", 6);
  const LoadReport report = load_weights(*six, folder + "/model.pth");
  ASSERT_EQ(report.adapted.size(), 1u);
  EXPECT_NE(report.adapted[0].find("3 -> 6"), std::string::npos) << report.adapted[0];
  rgb->eval();
  six->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = npy_tensor(folder + "/input.npy");
  EXPECT_LT(max_relative_difference(six->features(x.repeat({1, 2, 1, 1}))[4], rgb->features(x)[4]),
            1e-5);
  auto thirteen = create_backbone("geo-resnet18-s2");
  EXPECT_NE(load_weights(*thirteen, folder + "/model.pth").adapted.at(0).find("3 -> 13"),
            std::string::npos);
}

TEST(GeoResNet, ContractsCarryTheWeightsBandsScalingAndSize) {
  const auto& s2 = find_backbone("geo-resnet50-s2").contract;
  EXPECT_EQ(s2.spatial_dims, 2);
  ASSERT_EQ(s2.channels.size(), 13u);
  EXPECT_EQ(s2.channels[8], "B8A");  // after B8, not last as in TorchGeo's EuroSAT files
  EXPECT_DOUBLE_EQ(s2.intensity.at(0).scale, 1e-4);
  EXPECT_EQ(s2.target_size_xyz, (std::array<std::int64_t, 3>{224, 224, 1}));
  const auto& l8 = find_backbone("geo-resnet18-l8").contract;
  EXPECT_EQ(l8.channels.size(), 11u);
  EXPECT_DOUBLE_EQ(l8.intensity.at(0).scale, 1.0 / 255.0);
  const auto info = create_backbone("geo-resnet50-s2")->feature_info();
  EXPECT_EQ(info.back().stride, 32);
  EXPECT_EQ(info.back().channels, 2048);
}

}  // namespace
}  // namespace graft::backbones
