// Segmentation on raster tiles with a 2D backbone, and whole-scene prediction streamed strip by
// strip into a GeoTIFF, on synthetic Sentinel-2 scenes whose water mask is known.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <random>

#include "finetune/inference/predictor.h"
#include "finetune/run_config.h"
#include "finetune/inference/scene_prediction.h"
#include "finetune/trainer.h"
#include "io/error.h"
#include "io/raster/gdal_raster.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

const std::vector<std::string> kSentinel2Bands{"B1", "B2", "B3",  "B4", "B5",  "B6", "B7",
                                               "B8", "B8A", "B9", "B10", "B11", "B12"};

// Water where a pixel lies in a disc or on a diagonal stripe: an asymmetric mask, so a strip
// written one row off, or a tile placed at the wrong column, shows up as lost Dice.
bool is_water(std::int64_t x, std::int64_t y, std::int64_t width, std::int64_t height) {
  const double dx = x - 0.3 * width, dy = y - 0.35 * height;
  const bool disc = dx * dx + dy * dy < 0.04 * width * height;
  const bool stripe = std::abs((x - 2 * y) % 60) < 9 && x > width / 2;
  return disc || stripe;
}

struct Scene {
  io::Image image;   // 13 bands uint16, nodata 0
  io::Image labels;  // 1 band uint8
};

// Water raises B3 and lowers B8 (as open water does); land is noise around 1500. Rows below
// nodata_from_row are nodata (0 in every band), like the edge of a Sentinel-2 orbit.
Scene synthetic_scene(std::int64_t width, std::int64_t height, std::uint32_t seed, std::int64_t nodata_from_row) {
  const io::GeoTransform transform{600000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0};
  const io::Geometry geometry = io::geometry_from_geotransform(transform, width, height, "EPSG:32632");
  Scene scene{io::Image(io::DType::kU16, 13, geometry), io::Image(io::DType::kU8, 1, geometry)};
  scene.image.metadata().band_names = kSentinel2Bands;
  scene.image.metadata().nodata.assign(13, 0.0);
  std::mt19937 random(seed);
  std::normal_distribution<double> noise(1500.0, 250.0);
  auto* values = scene.image.data<std::uint16_t>();
  auto* labels = scene.labels.data<std::uint8_t>();
  const std::int64_t pixels = width * height;
  for (std::int64_t y = 0; y < height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      const std::int64_t i = y * width + x;
      const bool water = is_water(x, y, width, height);
      labels[i] = water;
      for (int band = 0; band < 13; ++band) {
        double value = noise(random);
        if (water && band == 2) value += 2500;
        if (water && band == 7) value -= 1000;
        values[band * pixels + i] = y >= nodata_from_row ? 0 : static_cast<std::uint16_t>(std::clamp(value, 1.0, 65535.0));
      }
    }
  }
  return scene;
}

// An H&E-like RGB tile: pink stroma with noise, purple tumour (the is_water mask), as uint8.
Scene stained_tile(std::int64_t size, std::uint32_t seed) {
  io::Geometry geometry;
  geometry.size_xyz = {size, size, 1};
  geometry.spacing_xyz = {0.5, 0.5, 1.0};  // µm at UNI's 20x
  Scene tile{io::Image(io::DType::kU8, 3, geometry), io::Image(io::DType::kU8, 1, geometry)};
  tile.image.metadata().band_names = {"Red", "Green", "Blue"};
  std::mt19937 random(seed);
  std::normal_distribution<double> noise(0.0, 18.0);
  const double stroma[3] = {225, 170, 200}, tumour[3] = {135, 70, 165};
  auto* rgb = tile.image.data<std::uint8_t>();
  auto* labels = tile.labels.data<std::uint8_t>();
  const std::int64_t pixels = size * size;
  for (std::int64_t i = 0; i < pixels; ++i) {
    labels[i] = is_water(i % size, i / size, size, size);
    for (int c = 0; c < 3; ++c) {
      rgb[c * pixels + i] = static_cast<std::uint8_t>(std::clamp((labels[i] ? tumour : stroma)[c] + noise(random), 0.0, 255.0));
    }
  }
  return tile;
}

// Three tiles from make_tile(0..2) (the last for validation) as GeoTIFFs with a manifest, and a
// run config that trains `backbone` with the U-Net head on 64 px patches of them for 4 short
// epochs with AdamW.
RunConfig tile_run_config(const std::string& folder, const std::string& backbone,
                               const std::function<Scene(int)>& make_tile) {
  std::ofstream manifest(folder + "/tiles.csv");
  manifest << "image,label,split\n";
  for (int t = 0; t < 3; ++t) {
    const Scene tile = make_tile(t);
    io::write(tile.image, folder + "/tile" + std::to_string(t) + ".tif");
    io::write(tile.labels, folder + "/tile" + std::to_string(t) + "_mask.tif");
    manifest << "tile" << t << ".tif,tile" << t << "_mask.tif," << (t == 2 ? "val" : "train") << "\n";
  }
  manifest.close();
  RunConfig config = default_run_config();
  config.backbone = backbone;
  config.head = "unet";
  config.output = folder + "/model";
  config.data.manifest = folder + "/tiles.csv";
  config.data.patch_size = {64, 64, 1};
  config.data.batch_size = 4;
  config.data.batches_per_epoch = 10;
  config.data.workers = 1;
  config.train.epochs = 4;
  config.train.optimizer = "adamw";
  return config;
}

TEST(SceneSegmentation, TilesTrainA2DUNetAndTheWholeScenePredictionIsAlignedAndKeepsNodata) {
  const std::string folder = graft::testing::temp_dir();
  RunConfig config = tile_run_config(folder, "geo-resnet18-s2", [](int t) { return synthetic_scene(96, 96, 10 + t, 96); });
  config.train.lr = 1e-3;
  config.train.head_lr_multiplier = 3.0;
  config.train.loss = "dice_ce";
  const TrainResult result = train(config, {}, false);
  EXPECT_GE(result.best_val_metric, 0.8) << "tiled segmentation learns a band threshold";
  // The contract's 224 px became the tile size, not a resize.
  const auto contract = read_json_file(folder + "/model/contract.json");
  EXPECT_EQ(contract["resize"], "none");

  // A scene several tiles wide and tall, not a multiple of the tile, with nodata rows at the end.
  const Scene scene = synthetic_scene(250, 190, 77, 170);
  io::write(scene.image, folder + "/scene.tif");
  Predictor predictor(ModelFolder(folder + "/model"));
  PredictOptions options;
  options.overlap_fraction = 0.25;
  predictor.predict_file(folder + "/scene.tif", folder + "/scene_water.tif", options);

  const io::GdalRasterInfo in = io::read_gdal_info(folder + "/scene.tif");
  const io::GdalRasterInfo out = io::read_gdal_info(folder + "/scene_water.tif");
  EXPECT_EQ(out.width, 250);
  EXPECT_EQ(out.height, 190);
  ASSERT_TRUE(out.geotransform && in.geotransform);
  EXPECT_EQ(*out.geotransform, *in.geotransform);
  EXPECT_TRUE(io::same_crs(out.crs_wkt, in.crs_wkt));
  ASSERT_TRUE(out.bands[0].nodata);
  EXPECT_EQ(*out.bands[0].nodata, 255.0);

  const io::Image predicted = io::read(folder + "/scene_water.tif");
  const auto* p = predicted.data<std::uint8_t>();
  const auto* truth = scene.labels.data<std::uint8_t>();
  std::int64_t both = 0, sum = 0, nodata_right = 0, nodata_wrong = 0;
  for (std::int64_t y = 0; y < 190; ++y) {
    for (std::int64_t x = 0; x < 250; ++x) {
      const std::int64_t i = y * 250 + x;
      if (y >= 170) {
        (p[i] == 255 ? nodata_right : nodata_wrong) += 1;
        continue;
      }
      EXPECT_NE(p[i], 255) << "valid pixel " << x << "," << y << " written as nodata";
      sum += (p[i] == 1) + (truth[i] == 1);
      both += p[i] == 1 && truth[i] == 1;
    }
  }
  EXPECT_EQ(nodata_right, 20 * 250);
  EXPECT_EQ(nodata_wrong, 0);
  const double dice = 2.0 * both / sum;
  EXPECT_GE(dice, 0.8) << "whole-scene water Dice";
  std::printf("tiled segmentation: validation Dice %.4f, whole-scene Dice %.4f\n", result.best_val_metric, dice);
}

TEST(SceneSegmentation, AVitSegmentsThroughTheUNetHeadAtFullResolution) {
  RunConfig config = default_run_config();
  config.backbone = "vit-s16";
  config.head = "unet";
  config.classes = 3;
  SegmentationModel model = build_model(config);
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->forward(torch::rand({2, 3, 1, 64, 96}));
  EXPECT_EQ(logits.sizes(), (torch::IntArrayRef{2, 3, 1, 64, 96}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

// The segmentation head on ViT features is trained, not only shaped: tumour vs stroma on
// H&E-like tiles from random ViT-S/16 weights, with layer-wise lr decay.
TEST(SceneSegmentation, AVitWithTheUNetHeadLearnsToSegmentStainedTiles) {
  const std::string folder = graft::testing::temp_dir();
  RunConfig config = tile_run_config(folder, "vit-s16", [](int t) { return stained_tile(128, 20 + t); });
  config.train.lr = 3e-4;
  config.train.layer_decay = 0.75;
  config.train.head_lr_multiplier = 10.0;
  const TrainResult result = train(config, {}, false);
  std::printf("ViT-S/16 + U-Net head on stained tiles: validation Dice per epoch");
  for (const double dice : result.val_metric_per_epoch) std::printf(" %.3f", dice);
  std::printf("\n");
  EXPECT_GE(result.best_val_metric, 0.9);
}

TEST(SceneSegmentation, A2DBackboneRefusesVolumePatchesAndTheMedicalNetHead) {
  RunConfig config = default_run_config();
  config.backbone = "geo-resnet18-s2";
  config.head = "medicalnet";
  const std::string head = graft::testing::error_message([&] { build_model(config); });
  EXPECT_NE(head.find("head: unet"), std::string::npos) << head;
}

}  // namespace
}  // namespace graft::finetune
