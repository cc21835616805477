// timm ViTs beyond ViT-S/16: UNI2-h's architecture (patch 14, register tokens, positions on the
// patches only, packed SwiGLU, layer scale) against an independently written PyTorch network, and
// the registered UNI configurations' shapes.
#include <gtest/gtest.h>

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/timm_vit.h"
#include "backbones/weight_loading.h"
#include "io/error.h"
#include "tests/backbones/pytorch_reference.h"
#include "tests/support/test_support.h"

namespace graft::backbones {
namespace {

using testing::max_relative_difference;
using testing::npy_tensor;

std::map<std::string, std::vector<std::int64_t>> shapes_of(torch::nn::Module& module) {
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& item : module.named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  return shapes;
}

TEST(Vit, RegistersSwigluLayerScaleAndPatch14ReproducePyTorch) {
  if (graft::testing::python_with("torch").empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string folder = graft::testing::temp_dir() + "/vit";
  std::string output;
  ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR
                                        "/tests/tools/timm_vit_reference.py --in-chans 3 --patch 14 --dim 48 "
                                        "--depth 2 --heads 4 --mlp-ratio 5.33334 --layer-scale --registers 4 "
                                        "--no-embed-class --swiglu --out-dir " +
                                            folder,
                                        &output),
            0)
      << output;
  TimmVitConfig config;
  config.patch_size = 14;
  config.embed_dim = 48;
  config.depth = 2;
  config.heads = 4;
  config.mlp_ratio = 5.33334;  // int(48 * 5.33334) = 256, split into two 128-wide halves
  config.layer_scale = true;
  config.register_tokens = 4;
  config.no_embed_class = true;
  config.swiglu_packed = true;
  TimmVit network(config);
  const LoadReport report = load_weights(*network, folder + "/model.pth");
  EXPECT_TRUE(report.clean()) << report.summary();
  network->eval();
  torch::NoGradGuard no_grad;
  for (const char* size : {"224", "small"}) {  // 16 x 16 patches, and 9 x 6 with positions resampled
    SCOPED_TRACE(size);
    const torch::Tensor x = npy_tensor(folder + "/input_" + size + ".npy");
    const torch::Tensor expected = npy_tensor(folder + "/tokens_" + size + ".npy");
    const torch::Tensor tokens = network->features(x).at(0);
    ASSERT_EQ(tokens.sizes(), expected.sizes());
    EXPECT_LT(max_relative_difference(tokens, expected), 1e-4);
    EXPECT_LT(max_relative_difference(network->embedding(x), npy_tensor(folder + "/cls_" + size + ".npy")), 1e-4);
  }
  EXPECT_THROW(network->features(torch::zeros({1, 3, 224, 220})), Error);  // 220 is not a multiple of 14
}

TEST(Vit, UniConfigurationsHaveTheReleasedShapes) {
  auto uni = create_backbone("uni-vit-l16");
  auto shapes = shapes_of(*uni);
  EXPECT_EQ(shapes["pos_embed"], (std::vector<std::int64_t>{1, 197, 1024}));
  EXPECT_EQ(shapes["blocks.23.ls2.gamma"], (std::vector<std::int64_t>{1024}));
  EXPECT_EQ(shapes["blocks.0.mlp.fc1.weight"], (std::vector<std::int64_t>{4096, 1024}));
  EXPECT_EQ(shapes.count("blocks.24.norm1.weight"), 0u);
  std::int64_t parameters = 0;
  for (const auto& p : uni->parameters()) parameters += p.numel();
  EXPECT_NEAR(parameters / 1e6, 303.3, 0.5);  // "about 303M"
  uni.reset();

  auto uni2 = create_backbone("uni2-vit-h14");
  shapes = shapes_of(*uni2);
  EXPECT_EQ(shapes["pos_embed"], (std::vector<std::int64_t>{1, 256, 1536}));  // patches only
  EXPECT_EQ(shapes["reg_token"], (std::vector<std::int64_t>{1, 8, 1536}));
  EXPECT_EQ(shapes["blocks.0.mlp.fc1.weight"], (std::vector<std::int64_t>{8192, 1536}));
  EXPECT_EQ(shapes["blocks.0.mlp.fc2.weight"], (std::vector<std::int64_t>{1536, 4096}));
  EXPECT_EQ(shapes["patch_embed.proj.weight"], (std::vector<std::int64_t>{1536, 3, 14, 14}));
  EXPECT_EQ(shapes.count("blocks.24.norm1.weight"), 0u);

  const auto& contract = find_backbone("uni-vit-l16").contract;
  EXPECT_EQ(contract.channels, (std::vector<std::string>{"Red", "Green", "Blue"}));
  EXPECT_EQ(contract.target_size_xyz[0], 224);
  ASSERT_EQ(contract.intensity.size(), 2u);
  EXPECT_DOUBLE_EQ(contract.intensity[0].scale, 1.0 / 255.0);
  EXPECT_EQ(contract.intensity[1].mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(contract.intensity[1].std, (std::vector<double>{0.229, 0.224, 0.225}));
}

}  // namespace
}  // namespace graft::backbones
