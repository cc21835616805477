#include "preprocess/intensity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::preprocess {
namespace {

using io::Image;

Image values_image(const std::vector<float>& values, std::int64_t channels = 1) {
  io::Geometry g;
  g.size_xyz = {static_cast<std::int64_t>(values.size()) / channels, 1, 1};
  Image image(io::DType::kF32, channels, g);
  std::copy(values.begin(), values.end(), image.data<float>());
  return image;
}

TEST(Intensity, ZScoreOverAllVoxelsGivesKnownNumbers) {
  IntensityStep step;
  const Image out = apply_intensity(values_image({1, 2, 3, 4}), step);
  const double std = std::sqrt(1.25);  // population std of 1..4
  EXPECT_NEAR(out.data<float>()[0], (1 - 2.5) / std, 1e-6);
  EXPECT_NEAR(out.data<float>()[3], (4 - 2.5) / std, 1e-6);
}

TEST(Intensity, ZScoreOverNonzeroVoxelsKeepsOrFillsTheBackground) {
  IntensityStep step;
  step.over_nonzero = true;
  step.outside_mask = OutsideMask::kZero;
  Image out = apply_intensity(values_image({0, 2, 4, 0, 6}), step);
  EXPECT_NEAR(out.data<float>()[1], (2 - 4) / std::sqrt(8.0 / 3.0), 1e-6);
  EXPECT_EQ(out.data<float>()[0], 0.0f);
  EXPECT_EQ(out.data<float>()[3], 0.0f);

  step.outside_mask = OutsideMask::kNoise;
  std::vector<float> values(20000, 0.0f);
  for (std::size_t i = 0; i < values.size(); i += 2) values[i] = static_cast<float>(i % 7 + 1);
  const Image noisy = apply_intensity(values_image(values), step, 42);
  const Image again = apply_intensity(values_image(values), step, 42);
  double sum = 0, sum_squares = 0;
  for (std::size_t i = 1; i < values.size(); i += 2) {
    sum += noisy.data<float>()[i];
    sum_squares += noisy.data<float>()[i] * noisy.data<float>()[i];
    ASSERT_EQ(noisy.data<float>()[i], again.data<float>()[i]);  // seeded
  }
  const double n = values.size() / 2.0;
  EXPECT_NEAR(sum / n, 0.0, 0.05);
  EXPECT_NEAR(std::sqrt(sum_squares / n), 1.0, 0.05);
}

TEST(Intensity, PercentilesMatchNumpysLinearRule) {
  std::vector<float> values;
  for (int i = 100; i >= 0; --i) values.push_back(static_cast<float>(i));
  const Image image = values_image(values);
  EXPECT_NEAR(channel_percentile(image, 0, 10.0), 10.0, 1e-9);
  EXPECT_NEAR(channel_percentile(image, 0, 99.5), 99.5, 1e-9);
  IntensityStep clip;
  clip.kind = IntensityKind::kPercentileClip;
  clip.lower_percentile = 5;
  clip.upper_percentile = 90;
  const Image out = apply_intensity(image, clip);
  EXPECT_FLOAT_EQ(out.data<float>()[0], 90.0f);   // was 100
  EXPECT_FLOAT_EQ(out.data<float>()[100], 5.0f);  // was 0
  EXPECT_FLOAT_EQ(out.data<float>()[50], 50.0f);
}

TEST(Intensity, CtWindowMapsItsEdgesToZeroAndOne) {
  IntensityStep window;
  window.kind = IntensityKind::kWindow;
  window.window_center = 40;
  window.window_width = 400;
  Image hu(io::DType::kI16, 1, values_image({-1000, -160, 40, 240, 3000}).geometry());
  const std::int16_t values[5] = {-1000, -160, 40, 240, 3000};
  std::copy(values, values + 5, hu.data<std::int16_t>());
  const Image out = apply_intensity(hu, window);
  EXPECT_EQ(out.dtype(), io::DType::kF32);
  const float expected[5] = {0.0f, 0.0f, 0.5f, 1.0f, 1.0f};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(out.data<float>()[i], expected[i], 1e-6);
}

TEST(Intensity, FixedScaleAndPerChannelMeanStdGiveKnownNumbers) {
  IntensityStep scale;
  scale.kind = IntensityKind::kScaleOffset;
  scale.scale = 1.0 / 255.0;
  EXPECT_NEAR(apply_intensity(values_image({255, 51}), scale).data<float>()[1], 0.2, 1e-6);

  IntensityStep imagenet;
  imagenet.kind = IntensityKind::kChannelMeanStd;
  imagenet.mean = {0.485, 0.456, 0.406};
  imagenet.std = {0.229, 0.224, 0.225};
  const Image out = apply_intensity(values_image({0.485f, 1.0f, 0.0f}, 3), imagenet);
  EXPECT_NEAR(out.data<float>()[0], 0.0, 1e-6);
  EXPECT_NEAR(out.data<float>()[1], (1.0 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(out.data<float>()[2], -0.406 / 0.225, 1e-5);

  imagenet.mean.pop_back();
  EXPECT_THROW(apply_intensity(values_image({1, 2, 3}, 3), imagenet), Error);
}

// nnU-Net normalises each channel by its own scheme: a step with a channel leaves the others.
TEST(Intensity, AStepForOneChannelLeavesTheOthersAndRescaleTo01MapsItsRange) {
  IntensityStep rescale;
  rescale.kind = IntensityKind::kRescaleTo01;
  rescale.channel = 1;
  const Image out = apply_intensity(values_image({5.0f, 7.0f, 10.0f, 20.0f, 30.0f, 40.0f}, 2), rescale);
  const float* v = out.data<float>();
  EXPECT_EQ(v[0], 5.0f);
  EXPECT_EQ(v[2], 10.0f);
  EXPECT_EQ(v[3], 0.0f);
  EXPECT_NEAR(v[4], 0.5, 1e-7);
  EXPECT_EQ(v[5], 1.0f);
  // A constant channel becomes 0, as nnU-Net's 1e-8 floor on the range makes it.
  rescale.channel = 0;
  EXPECT_EQ(apply_intensity(values_image({3.0f, 3.0f, 3.0f, 1.0f, 2.0f, 3.0f}, 2), rescale).data<float>()[1], 0.0f);

  IntensityStep ct;
  ct.kind = IntensityKind::kChannelMeanStd;
  ct.channel = 1;
  ct.mean = {100.0};
  ct.std = {50.0};
  const Image normalised = apply_intensity(values_image({1.0f, 2.0f, 150.0f, 0.0f}, 2), ct);
  EXPECT_EQ(normalised.data<float>()[1], 2.0f);
  EXPECT_EQ(normalised.data<float>()[2], 1.0f);
  EXPECT_EQ(normalised.data<float>()[3], -2.0f);
  ct.channel = 2;
  const std::string message = graft::testing::error_message([&] { apply_intensity(values_image({1, 2}, 2), ct); });
  EXPECT_NE(message.find("channel 2 met an image with 2 channels"), std::string::npos) << message;
}

// A hollow shell in channel 0 and a blob in channel 1: the region is both, with the shell's
// enclosed zeros filled; zeros joined to a face through zeros stay out (scipy's binary_fill_holes,
// 6-connected).
TEST(Intensity, TheNnUNetMaskIsTheNonzeroRegionOfAllChannelsWithHolesFilled) {
  io::Geometry g;
  g.size_xyz = {7, 7, 7};
  Image image(io::DType::kF32, 2, g);
  float* shell = image.data<float>();
  float* blob = shell + image.voxels_per_channel();
  for (std::int64_t z = 1; z <= 5; ++z)
    for (std::int64_t y = 1; y <= 5; ++y)
      for (std::int64_t x = 1; x <= 5; ++x) {
        const bool edge = x == 1 || x == 5 || y == 1 || y == 5 || z == 1 || z == 5;
        if (edge) shell[image.offset(0, z, y, x)] = 10.0f;
      }
  blob[image.offset(0, 0, 0, 6)] = 4.0f;  // a corner voxel of channel 1
  const std::vector<std::uint8_t> region = nonzero_region_holes_filled(image);
  EXPECT_EQ(region[image.offset(0, 3, 3, 3)], 1);  // the shell's inside
  EXPECT_EQ(region[image.offset(0, 1, 1, 1)], 1);  // the shell
  EXPECT_EQ(region[image.offset(0, 0, 0, 6)], 1);  // channel 1's voxel
  EXPECT_EQ(region[image.offset(0, 0, 0, 0)], 0);  // joined to a face
  std::int64_t inside = 0;
  for (auto v : region) inside += v;
  EXPECT_EQ(inside, 5 * 5 * 5 + 1);

  // Over that region channel 0 holds 98 tens and 28 zeros (the 27 enclosed, and channel 1's voxel).
  IntensityStep zscore;
  zscore.over_nonzero = true;
  zscore.nonzero_mask = NonzeroMask::kAnyChannelHolesFilled;
  zscore.outside_mask = OutsideMask::kZero;
  zscore.channel = 0;
  const Image out = apply_intensity(image, zscore);
  const double mean = 980.0 / 126.0;
  const double std = std::sqrt((98 * (10 - mean) * (10 - mean) + 28 * mean * mean) / 126.0);
  EXPECT_NEAR(out.data<float>()[image.offset(0, 3, 3, 3)], -mean / std, 1e-6);
  EXPECT_NEAR(out.data<float>()[image.offset(0, 1, 1, 1)], (10 - mean) / std, 1e-6);
  EXPECT_EQ(out.data<float>()[image.offset(0, 0, 0, 0)], 0.0f);
}

}  // namespace
}  // namespace graft::preprocess
