// Whole-slide feature extraction end to end through OpenSlide: a pyramidal tiled TIFF the test
// makes is tiled over its tissue, every patch embedded by a ViT, and the HDF5 feature bag holds
// the same features as embedding those patches one by one.
#include "finetune/inference/slide_features.h"

#include <gtest/gtest.h>

#include "backbones/factory.h"
#include "backbones/registry.h"
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

}  // namespace
}  // namespace graft::finetune
