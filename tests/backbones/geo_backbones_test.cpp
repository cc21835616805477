// timm/TorchGeo 2D ResNets and ViT-S/16 against PyTorch: tests/tools/timm_{resnet,vit}_reference.py
// (Debian python3-torch) define the networks independently with timm's key names, save torch.save
// state_dicts with 13 (Sentinel-2) or 11 (Landsat 8) input channels, and compute the features;
// graft must load the files strictly and reproduce every feature map.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "io/error.h"
#include "io/numpy/npy.h"
#include "tests/backbones/pytorch_reference.h"
#include "tests/support/test_support.h"

namespace graft::backbones {
namespace {

using testing::expect_resnet_features_match;
using testing::max_relative_difference;
using testing::npy_tensor;



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


TEST(GeoResNet, Sentinel2ResNet18LoadsStrictlyAndReproducesPyTorch) {
  const std::string folder = reference(18, 13, false);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  auto network = create_backbone("geo-resnet18-s2");
  const LoadReport report = load_weights(*network, folder + "/model.pth");
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.loaded.size(), 120u);  // 20 convolutions, 20 batch norms with 5 tensors each
  expect_resnet_features_match(*network, folder);
  // The same through the command line: graft embed's pooled features are PyTorch's to 1e-4.
  std::string output;
  ASSERT_EQ(
      graft::testing::run_command(
          graft::testing::graft_executable() + " embed --backbone geo-resnet18-s2 --weights " +
              folder + "/model.pth --input-npy " + folder + "/input.npy --features pooled --output " +
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
  expect_resnet_features_match(*network, folder);
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

// ViT-S/16 on 13 bands: patch tokens and the class-token embedding at the trained 224 px, and at
// 128 x 96 px with pos_embed resampled bicubically as timm does; the checkpoint's head is dropped.
TEST(GeoVit, Sentinel2VitSmallReproducesPyTorchAtAnyMultipleOf16) {
  if (graft::testing::python_with("torch").empty())
    GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string folder = graft::testing::temp_dir() + "/vit";
  std::string output;
  ASSERT_EQ(
      graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR
                                  "/tests/tools/timm_vit_reference.py --in-chans 13 --out-dir " +
                                      folder,
                                  &output),
      0)
      << output;
  auto network = create_backbone("geo-vit-s16-s2");
  const LoadReport report = load_weights(*network, folder + "/model.pth");
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_NE(
      report.summary().find("classifier tensors not used by the backbone: head.weight, head.bias"),
      std::string::npos)
      << report.summary();
  network->eval();
  torch::NoGradGuard no_grad;
  for (const char* size : {"224", "small"}) {
    SCOPED_TRACE(size);
    const torch::Tensor x = npy_tensor(folder + "/input_" + size + ".npy");
    const torch::Tensor tokens = network->features(x).at(0);
    const torch::Tensor expected = npy_tensor(folder + "/tokens_" + size + ".npy");
    ASSERT_EQ(tokens.sizes(), expected.sizes());
    EXPECT_LT(max_relative_difference(tokens, expected), 1e-4);
    EXPECT_LT(max_relative_difference(network->embedding(x),
                                      npy_tensor(folder + "/cls_" + size + ".npy")),
              1e-4);
  }
  EXPECT_THROW(network->features(torch::zeros({1, 13, 100, 96})), Error);  // not a multiple of 16
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
