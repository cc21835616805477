// Whole-slide feature extraction end to end through OpenSlide: a pyramidal tiled TIFF the test
// makes is tiled over its tissue, every patch embedded by a ViT, and the HDF5 feature bag holds
// the same features as embedding those patches one by one.
#include "finetune/inference/slide_features.h"

#include <gtest/gtest.h>

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "backbones/checkpoint_file.h"
#include "finetune/adapters.h"
#include "finetune/tasks/classification/classification.h"
#include "finetune/trainer.h"
#include "datasets/image_tensor.h"
#include "io/hdf5/hdf5_file.h"
#include "preprocess/plan.h"
#include "tests/support/slide_fixture.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

TEST(SlideFeatures, TissuePatchesAreEmbeddedIntoAnHdf5FeatureBag) {
  const std::string folder = graft::testing::temp_dir();
  const auto fixture = graft::testing::make_synthetic_slide(folder);
  if (fixture.path.empty()) GTEST_SKIP() << "gdal_translate/gdaladdo (Debian gdal-bin) are not installed";
  torch::manual_seed(3);
  auto backbone = backbones::create_backbone("vit-s16");
  preprocess::Contract contract = backbones::find_backbone("vit-s16").contract;
  contract.target_size_xyz = {64, 64, 1};  // keeps the test short; the rule is the same as at 224
  SlideFeatureOptions options;
  options.tiling.target_microns_per_pixel = 1.0;  // 4x the scan's 0.25 um: level 2
  options.tiling.patch_px = 64;
  options.tiling.min_tissue_fraction = 0.5;
  options.batch_size = 8;
  const std::string output = folder + "/features.h5";
  const SlideFeatureStats stats = extract_slide_features(*backbone, "vit-s16", contract, fixture.path, output, options);
  EXPECT_GT(stats.patches, 5);
  EXPECT_EQ(stats.dim, 384);
  EXPECT_EQ(stats.grid_patches, 6 * 4);

  const io::Hdf5Contents contents = io::list_hdf5(output);
  ASSERT_EQ(contents.datasets.size(), 2u);
  const auto& coords_info = contents.datasets[0];
  EXPECT_EQ(coords_info.path, "/coords");
  EXPECT_EQ(coords_info.shape, (std::vector<std::int64_t>{stats.patches, 2}));
  EXPECT_EQ(coords_info.attributes["patch_size"], 256);
  EXPECT_EQ(coords_info.attributes["patch_level"], 2);
  EXPECT_EQ(coords_info.attributes["backbone"], "vit-s16");
  EXPECT_EQ(contents.datasets[1].shape, (std::vector<std::int64_t>{stats.patches, 384}));

  // The first patch embedded on its own gives the stored features.
  const io::Image coords = io::read_hdf5(output, "/coords");
  const io::Image features = io::read_hdf5(output, "/features");
  const std::int64_t x = static_cast<std::int64_t>(coords.value_at(0)), y = static_cast<std::int64_t>(coords.value_at(1));
  EXPECT_TRUE(fixture.tissue(x + 128, y + 128)) << "first patch at " << x << "," << y;
  const io::Slide slide(fixture.path);
  const io::Image patch = slide.read_region(2, x, y, 64, 64);
  const torch::Tensor input =
      datasets::image_to_tensor(preprocess::apply(preprocess::make_plan(contract, patch, 0), patch)).squeeze(1).unsqueeze(0);
  torch::NoGradGuard no_grad;
  backbone->eval();
  const torch::Tensor expected = backbone->embedding(input)[0];
  for (std::int64_t d = 0; d < 384; d += 37) EXPECT_NEAR(features.value_at(d), expected[d].item<double>(), 1e-4);
}

// MIL features from a LoRA-tuned classifier: the model folder holds only adapters and head, and
// its backbone, rebuilt from the base checkpoint and the adapters, gives the adapted embeddings.
TEST(SlideFeatures, ALoraModelFolderEmbedsWithItsAdaptedBackbone) {
  const std::string folder = graft::testing::temp_dir();
  const auto fixture = graft::testing::make_synthetic_slide(folder);
  if (fixture.path.empty()) GTEST_SKIP() << "gdal_translate/gdaladdo (Debian gdal-bin) are not installed";
  torch::manual_seed(5);
  backbones::write_safetensors(backbones::state_dict_of(*backbones::create_backbone("vit-s16")), folder + "/base.safetensors");

  RunConfig config = default_run_config();
  config.task = "classification";
  config.backbone = "vit-s16";
  config.weights = folder + "/base.safetensors";
  config.classes = 2;
  config.class_names = {"benign", "tumour"};
  config.train.adapter = "lora";
  config.data.contract["target_size_xyz"] = {64, 64, 1};
  const std::string model_folder = folder + "/lora";
  config.output = model_folder;
  ClassificationModel model = build_classifier(config);
  const auto report = backbones::load_weights(model->backbone(), config.weights);
  const auto base = apply_tuning_settings(model->backbone(), config, &report);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.05);
    }
  }
  std::filesystem::create_directories(model_folder);
  write_model_weights(*model, base, model_weights_path(model_folder));
  write_run_folder_config(model_folder, config);
  write_run_folder_contract(model_folder, run_contract(config));

  const auto backbone = load_folder_backbone(ModelFolder(model_folder));
  const torch::Tensor input = torch::rand({2, 3, 64, 64});
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Tensor adapted = model->backbone().embedding(input);
  EXPECT_LT((backbone->embedding(input) - adapted).abs().max().item<double>(), 1e-6);
  auto plain = backbones::create_backbone("vit-s16");
  backbones::load_weights(*plain, config.weights);
  plain->eval();
  EXPECT_GT((plain->embedding(input) - adapted).abs().max().item<double>(), 1e-3) << "the adapters change the embedding";

  SlideFeatureOptions options;
  options.tiling.target_microns_per_pixel = 1.0;
  options.tiling.patch_px = 64;
  options.tiling.min_tissue_fraction = 0.5;
  options.batch_size = 8;
  const ModelFolder loaded(model_folder);
  const SlideFeatureStats stats = extract_slide_features(*backbone, loaded.config().backbone, loaded.contract(),
                                                         fixture.path, folder + "/features.h5", options);
  EXPECT_GT(stats.patches, 5);
  const io::Image coords = io::read_hdf5(folder + "/features.h5", "/coords");
  const io::Image features = io::read_hdf5(folder + "/features.h5", "/features");
  const io::Slide slide(fixture.path);
  const io::Image patch = slide.read_region(2, static_cast<std::int64_t>(coords.value_at(0)),
                                            static_cast<std::int64_t>(coords.value_at(1)), 64, 64);
  const torch::Tensor first = datasets::image_to_tensor(
      preprocess::apply(preprocess::make_plan(loaded.contract(), patch, 0), patch)).squeeze(1).unsqueeze(0);
  const torch::Tensor expected = model->backbone().embedding(first)[0];
  for (std::int64_t d = 0; d < 384; d += 37) EXPECT_NEAR(features.value_at(d), expected[d].item<double>(), 1e-4);
}

}  // namespace
}  // namespace graft::finetune
