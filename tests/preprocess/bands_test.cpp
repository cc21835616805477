// Band semantics: a contract's bands found in an input by name across the spellings real files
// use, reordered, refused or zero-filled when missing, on a real BigEarthNet patch's band names.
#include "preprocess/bands.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "io/error.h"
#include "io/raster/gdal_raster.h"
#include "preprocess/plan.h"
#include "tests/support/test_support.h"

namespace graft::preprocess {
namespace {

// TorchGeo's Sentinel-2 TOA order (ANCHORS.md).
const std::vector<std::string> kTorchGeoS2 = {"B1", "B2",  "B3", "B4",  "B5",  "B6", "B7",
                                              "B8", "B8A", "B9", "B10", "B11", "B12"};
// BigEarthNet's 12 L2A band files, in the order a folder listing gives them (no B10).
const std::vector<std::string> kBigEarthNet = {"B01", "B02", "B03", "B04", "B05", "B06",
                                               "B07", "B08", "B09", "B11", "B12", "B8A"};

io::Image patch_with_band_values() {
  io::Geometry g;
  g.size_xyz = {4, 3, 1};
  io::Image image(io::DType::kU16, static_cast<std::int64_t>(kBigEarthNet.size()), g);
  // Channel c holds 1000 * (c + 1) everywhere, so each output channel says where it came from.
  for (std::int64_t c = 0; c < image.channels(); ++c) {
    for (std::int64_t i = 0; i < image.voxels_per_channel(); ++i) {
      image.data<std::uint16_t>()[c * image.voxels_per_channel() + i] =
          static_cast<std::uint16_t>(1000 * (c + 1));
    }
  }
  image.metadata().band_names = kBigEarthNet;
  return image;
}

Contract sentinel2_contract() {
  Contract contract;
  contract.name = "s2-13band";
  contract.spatial_dims = 2;
  contract.channels = kTorchGeoS2;
  IntensityStep divide;
  divide.kind = IntensityKind::kScaleOffset;
  divide.scale = 1.0 / 10000.0;
  IntensityStep standardise;
  standardise.kind = IntensityKind::kChannelMeanStd;
  standardise.mean.assign(13, 0.1);
  standardise.std.assign(13, 0.05);
  contract.intensity = {divide, standardise};
  return contract;
}

TEST(Bands, CanonicalNamesJoinTheSpellingsOfOneBand) {
  EXPECT_EQ(canonical_band_name("B01"), "B1");
  EXPECT_EQ(canonical_band_name("b8a"), "B8A");
  EXPECT_EQ(canonical_band_name("B08"), "B8");
  EXPECT_EQ(canonical_band_name("B10"), "B10");
  EXPECT_EQ(canonical_band_name("B0"), "B0");
  EXPECT_EQ(canonical_band_name("Red"), "RED");
  EXPECT_EQ(canonical_band_name("B2_mask"), "B2_MASK");
}

TEST(Bands, MissingBandIsRefusedNamingItAndWhatTheInputHas) {
  const std::string message = graft::testing::error_message(
      [] { make_plan(sentinel2_contract(), patch_with_band_values()); });
  EXPECT_NE(message.find("lacks band(s) B10 that s2-13band expects"), std::string::npos) << message;
  EXPECT_NE(message.find("input has B01, B02"), std::string::npos) << message;
  EXPECT_NE(message.find("--fill-missing-bands"), std::string::npos) << message;
}

TEST(Bands, BandsAreReorderedByNameAndAMissingOneIsZeroAfterNormalisation) {
  PlanOptions options;
  options.fill_missing_bands = true;
  const Plan plan = make_plan(sentinel2_contract(), patch_with_band_values(), options);
  // B8A comes from the input's last channel; B10 is missing.
  EXPECT_EQ(plan.channel_order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 11, 8, -1, 9, 10}));
  EXPECT_NE(to_text(plan).find("B10 <- zeros (missing)"), std::string::npos) << to_text(plan);
  bool noted = false;
  for (const auto& note : plan.notes)
    noted = noted || note.find("band B10 is missing") != std::string::npos;
  EXPECT_TRUE(noted);
  const io::Image out = apply(plan, patch_with_band_values());
  ASSERT_EQ(out.channels(), 13);
  EXPECT_EQ(out.metadata().band_names, kTorchGeoS2);
  const std::int64_t n = out.voxels_per_channel();
  for (std::int64_t c = 0; c < 13; ++c) {
    const int source = plan.channel_order[c];
    // (1000 (source + 1) / 10000 - 0.1) / 0.05, or 0 for the filled band.
    const double expected = source < 0 ? 0.0 : (1000.0 * (source + 1) / 10000.0 - 0.1) / 0.05;
    EXPECT_NEAR(out.value_at(c * n), expected, 1e-5) << kTorchGeoS2[c];
    EXPECT_NEAR(out.value_at(c * n + n - 1), expected, 1e-5) << kTorchGeoS2[c];
  }
  // The Plan round-trips through JSON with its filled band.
  EXPECT_EQ(plan_from_json(to_json(plan), "test").channel_order, plan.channel_order);
}

TEST(Bands, TheUsersNamesReplaceTheFilesAndAmbiguityIsRefused) {
  io::Image unnamed = patch_with_band_values();
  unnamed.metadata().band_names.clear();
  Contract rgb;
  rgb.name = "rgb";
  rgb.spatial_dims = 2;
  rgb.channels = {"B4", "B3", "B2"};
  PlanOptions options;
  options.band_names = kBigEarthNet;
  EXPECT_EQ(make_plan(rgb, unnamed, options).channel_order, (std::vector<int>{3, 2, 1}));
  options.band_names = {"B1", "B2"};
  EXPECT_NE(graft::testing::error_message([&] {
              make_plan(rgb, unnamed, options);
            }).find("--bands names 2 bands, the input has 12"),
            std::string::npos);
  options.band_names = kBigEarthNet;
  options.band_names[0] = "B4";  // "B4" and "B04" are one band
  const std::string ambiguous =
      graft::testing::error_message([&] { make_plan(rgb, unnamed, options); });
  EXPECT_NE(ambiguous.find("are both band B4"), std::string::npos) << ambiguous;
}

// A real BigEarthNet patch, its band files stacked in folder order: each band TorchGeo's weights
// expect is taken from the file that carries its name, and the patch's B10 (absent from L2A) is
// filled.
TEST(Bands, RealBigEarthNetPatchFeedsTheTorchGeoOrder) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder =
      graft::testing::shared_data_dir() +
      "/geotiff/bigearthnet/BigEarthNet-S2-Example/S2B_MSIL2A_20170924T93020_69_24";
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() == ".tif") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  const io::Image stack = io::read_band_stack(files);
  ASSERT_EQ(stack.channels(), 12);
  PlanOptions options;
  options.fill_missing_bands = true;
  const Plan plan = make_plan(sentinel2_contract(), stack, options);
  for (std::size_t c = 0; c < kTorchGeoS2.size(); ++c) {
    const int source = plan.channel_order[c];
    if (kTorchGeoS2[c] == "B10") {
      EXPECT_EQ(source, -1);
      continue;
    }
    ASSERT_GE(source, 0) << kTorchGeoS2[c];
    EXPECT_EQ(canonical_band_name(stack.metadata().band_names[source]),
              canonical_band_name(kTorchGeoS2[c]));
  }
}

TEST(Bands, AGreyImageIsReplicatedIntoAnRgbContractsThreeChannels) {
  Contract contract;
  contract.name = "rgb";
  contract.spatial_dims = 2;
  contract.channels = {"Red", "Green", "Blue"};
  IntensityStep imagenet;
  imagenet.kind = IntensityKind::kChannelMeanStd;
  imagenet.mean = {0.5, 0.25, 0.0};
  imagenet.std = {1.0, 1.0, 2.0};
  contract.intensity = {imagenet};
  io::Geometry g;
  g.size_xyz = {2, 2, 1};
  io::Image grey(io::DType::kF32, 1, g);
  std::fill(grey.data<float>(), grey.data<float>() + 4, 1.0f);
  const Plan plan = make_plan(contract, grey, 0);
  EXPECT_EQ(plan.channel_order, (std::vector<int>{0, 0, 0}));
  const io::Image out = apply(plan, grey);
  ASSERT_EQ(out.channels(), 3);
  EXPECT_FLOAT_EQ(out.data<float>()[0], 0.5f);       // (1 - 0.5) / 1
  EXPECT_FLOAT_EQ(out.data<float>()[4], 0.75f);      // (1 - 0.25) / 1
  EXPECT_FLOAT_EQ(out.data<float>()[8], 0.5f);       // (1 - 0) / 2
  // Two unnamed channels are not grey: refused.
  EXPECT_THROW(make_plan(contract, io::Image(io::DType::kF32, 2, g), 0), Error);
}

}  // namespace
}  // namespace graft::preprocess
