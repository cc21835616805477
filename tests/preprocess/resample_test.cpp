#include "preprocess/resample.h"
#include "preprocess/reorient.h"

#include <gtest/gtest.h>

#include <cstring>

#include <cmath>
#include <random>
#include <set>

namespace graft::preprocess {
namespace {

using io::DType;
using io::Image;

Image ramp_image(const io::Geometry& g, double (*f)(double, double, double)) {
  Image image(DType::kF32, 1, g);
  float* data = image.data<float>();
  for (std::int64_t z = 0; z < g.size_xyz[2]; ++z)
    for (std::int64_t y = 0; y < g.size_xyz[1]; ++y)
      for (std::int64_t x = 0; x < g.size_xyz[0]; ++x)
        data[image.offset(0, z, y, x)] = static_cast<float>(f(double(x), double(y), double(z)));
  return image;
}

io::Geometry test_geometry() {
  io::Geometry g;
  g.size_xyz = {20, 16, 12};
  g.spacing_xyz = {1.0, 1.5, 3.0};
  g.origin_world = {5.0, -3.0, 10.0};
  g.direction = {{{-1, 0, 0}, {0, 0, 1}, {0, -1, 0}}};
  return g;
}

double linear_function(double x, double y, double z) { return 2.0 * x + 3.0 * y - z + 5.0; }
double cubic_function(double x, double y, double z) {
  return 0.01 * x * x * x - 0.2 * x * x + 0.5 * y * y + z;
}

// Evaluates f at each output voxel's position in input index space, where that position lies
// at least `margin` input voxels inside the input, and compares.
void expect_reproduces(const Image& out, const io::Geometry& in, double (*f)(double, double, double),
                       double margin, double tolerance) {
  int checked = 0;
  const auto& n = out.geometry().size_xyz;
  for (std::int64_t z = 0; z < n[2]; ++z)
    for (std::int64_t y = 0; y < n[1]; ++y)
      for (std::int64_t x = 0; x < n[0]; ++x) {
        const io::Vec3 p = in.world_to_index(out.geometry().index_to_world({double(x), double(y), double(z)}));
        bool inside = true;
        for (int a = 0; a < 3; ++a) inside &= p[a] >= margin && p[a] <= in.size_xyz[a] - 1 - margin;
        if (!inside) continue;
        ++checked;
        ASSERT_NEAR(out.data<float>()[out.offset(0, z, y, x)], f(p[0], p[1], p[2]), tolerance)
            << "at " << x << "," << y << "," << z;
      }
  EXPECT_GT(checked, 100);
}

TEST(Resample, LinearReproducesALinearRampExactly) {
  const io::Geometry in = test_geometry();
  ResampleOptions options;
  options.anti_alias = false;
  const Image out = resample_image(ramp_image(in, linear_function), {31, 23, 17}, options);
  expect_reproduces(out, in, linear_function, 0.0, 1e-4);
}

TEST(Resample, LinearReproducesARampWhenShrinkingWithoutAntiAliasing) {
  const io::Geometry in = test_geometry();
  ResampleOptions options;
  options.anti_alias = false;
  const Image out = resample_image(ramp_image(in, linear_function), {9, 7, 5}, options);
  expect_reproduces(out, in, linear_function, 0.0, 1e-4);
}

TEST(Resample, BSplineReproducesACubicAwayFromTheBorder) {
  io::Geometry in = test_geometry();
  in.size_xyz = {40, 40, 24};
  ResampleOptions options;
  options.anti_alias = false;
  options.interpolation_xyz.fill(Interpolation::kBSpline);
  const Image out = resample_image(ramp_image(in, cubic_function), {53, 47, 31}, options);
  expect_reproduces(out, in, cubic_function, 10.0, 2e-3);
}

TEST(Resample, ResizedGridKeepsTheFieldOfView) {
  const io::Geometry in = test_geometry();
  const io::Geometry out = resized_geometry(in, {10, 8, 4});
  // The outer voxel edges, half a voxel beyond the first and last centres, stay in place.
  for (int corner = 0; corner < 2; ++corner) {
    const double s = corner == 0 ? -0.5 : 1.0;
    const io::Vec3 in_edge = in.index_to_world({s == -0.5 ? -0.5 : in.size_xyz[0] - 0.5,
                                                s == -0.5 ? -0.5 : in.size_xyz[1] - 0.5,
                                                s == -0.5 ? -0.5 : in.size_xyz[2] - 0.5});
    const io::Vec3 out_edge = out.index_to_world({s == -0.5 ? -0.5 : out.size_xyz[0] - 0.5,
                                                  s == -0.5 ? -0.5 : out.size_xyz[1] - 0.5,
                                                  s == -0.5 ? -0.5 : out.size_xyz[2] - 0.5});
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(in_edge[a], out_edge[a], 1e-9);
  }
  EXPECT_DOUBLE_EQ(out.spacing_xyz[0], 2.0);
  EXPECT_DOUBLE_EQ(out.spacing_xyz[2], 9.0);
}

TEST(Resample, SizeForSpacingRoundsTheExtent) {
  const io::Geometry in = test_geometry();  // extents 20, 24, 36 mm
  EXPECT_EQ(size_for_spacing(in, {1.0, 1.0, 1.0}), (SizeXyz{20, 24, 36}));
  EXPECT_EQ(size_for_spacing(in, {3.0, 7.0, 100.0}), (SizeXyz{7, 3, 1}));
}

TEST(Resample, AntiAliasSigmaFollowsTheDocumentedRule) {
  const io::Vec3 sigma = anti_alias_sigma_voxels({64, 30, 10}, {32, 10, 20});
  EXPECT_DOUBLE_EQ(sigma[0], 0.5);  // (2 - 1) / 2
  EXPECT_DOUBLE_EQ(sigma[1], 1.0);  // (3 - 1) / 2
  EXPECT_DOUBLE_EQ(sigma[2], 0.0);  // growing: no smoothing
}

double standard_deviation(const Image& image) {
  double sum = 0, sum_squares = 0;
  const std::int64_t n = image.element_count();
  for (std::int64_t i = 0; i < n; ++i) {
    sum += image.value_at(i);
    sum_squares += image.value_at(i) * image.value_at(i);
  }
  const double mean = sum / n;
  return std::sqrt(std::max(0.0, sum_squares / n - mean * mean));
}

TEST(Resample, CheckerboardFinerThanTheGridIsSmoothedWithAntiAliasingAndAliasesWithout) {
  io::Geometry g;
  g.size_xyz = {64, 64, 1};
  Image board(DType::kF32, 1, g);
  for (std::int64_t y = 0; y < 64; ++y)
    for (std::int64_t x = 0; x < 64; ++x) board.data<float>()[y * 64 + x] = ((x + y) % 2) ? 1.0f : -1.0f;
  ResampleOptions smoothed;
  const Image with = resample_image(board, {21, 21, 1}, smoothed);
  ResampleOptions aliased;
  aliased.anti_alias = false;
  const Image without = resample_image(board, {21, 21, 1}, aliased);
  EXPECT_LT(standard_deviation(with), 0.05);   // the true local mean is 0 everywhere
  EXPECT_GT(standard_deviation(without), 0.2);  // a spurious pattern survives
}

Image random_labels(const io::Geometry& g, std::set<int> values) {
  Image labels(DType::kU8, 1, g);
  std::mt19937 random(11);
  std::vector<int> choices(values.begin(), values.end());
  // Blobs: label by nearest of a few random seeds, so regions are compact.
  std::vector<std::array<double, 4>> seeds;
  for (int i = 0; i < 12; ++i) {
    seeds.push_back({double(random() % g.size_xyz[0]), double(random() % g.size_xyz[1]),
                     double(random() % g.size_xyz[2]), double(choices[i % choices.size()])});
  }
  for (std::int64_t z = 0; z < g.size_xyz[2]; ++z)
    for (std::int64_t y = 0; y < g.size_xyz[1]; ++y)
      for (std::int64_t x = 0; x < g.size_xyz[0]; ++x) {
        double best = 1e30, label = 0;
        for (const auto& s : seeds) {
          const double d = (x - s[0]) * (x - s[0]) + (y - s[1]) * (y - s[1]) + (z - s[2]) * (z - s[2]);
          if (d < best) best = d, label = s[3];
        }
        labels.data<std::uint8_t>()[labels.offset(0, z, y, x)] = static_cast<std::uint8_t>(label);
      }
  return labels;
}

std::set<int> label_set(const Image& labels) {
  std::set<int> values;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) values.insert(int(labels.value_at(i)));
  return values;
}

// Reversed axes folded into the passes give what reorienting first and resampling after gives,
// whichever axis goes first (z when it shrinks most), when an axis is only reversed, and for a
// single slice (resampled axis by axis).
TEST(Resample, FlipsFoldedIntoTheResamplingEqualReorientingFirst) {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> value(-1000, 3000);
  for (const SizeXyz& in_size : {SizeXyz{23, 19, 11}, SizeXyz{40, 31, 1}}) {
    io::Geometry g = test_geometry();
    g.size_xyz = in_size;
    Image image = Image::uninitialized(DType::kI16, 2, g);
    for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<std::int16_t>()[i] = value(random);
    for (const SizeXyz& out_size : {SizeXyz{17, 25, 7}, SizeXyz{30, 12, 15}, SizeXyz{23, 19, in_size[2]}}) {
      for (int flips = 0; flips < 8; ++flips) {
        const std::array<bool, 3> flip{(flips & 1) != 0, (flips & 2) != 0, (flips & 4) != 0};
        const SizeXyz size{out_size[0], out_size[1], in_size[2] == 1 ? 1 : out_size[2]};
        SCOPED_TRACE(::testing::Message() << "in " << in_size[0] << "x" << in_size[1] << "x" << in_size[2]
                                          << " out " << size[0] << "x" << size[1] << "x" << size[2]
                                          << " flips " << flips);
        ResampleOptions options;
        const Image folded = flip_and_resample_image(image, flip, size, options);
        const Image reference = resample_image(permute_axes(image, AxisPermutation{{0, 1, 2}, flip}), size, options);
        ASSERT_EQ(folded.geometry().size_xyz, reference.geometry().size_xyz);
        for (int a = 0; a < 3; ++a) {
          EXPECT_NEAR(folded.geometry().origin_world[a], reference.geometry().origin_world[a], 1e-9);
          for (int b = 0; b < 3; ++b) EXPECT_EQ(folded.geometry().direction[a][b], reference.geometry().direction[a][b]);
        }
        float worst = 0.0f;
        for (std::int64_t i = 0; i < folded.element_count(); ++i) {
          worst = std::max(worst, std::abs(folded.data<float>()[i] - reference.data<float>()[i]));
        }
        EXPECT_LE(worst, 1e-3f);  // of values up to 3000: float rounding only
      }
    }
  }
}

TEST(Resample, LabelResamplingKeepsTheLabelSetAndType) {
  const io::Geometry g = test_geometry();
  const Image labels = random_labels(g, {0, 3, 7, 200});
  for (LabelInterpolation rule : {LabelInterpolation::kNearest, LabelInterpolation::kPerLabelLinear}) {
    for (SizeXyz size : {SizeXyz{40, 32, 24}, SizeXyz{13, 11, 9}}) {
      const Image out = resample_labels(labels, size, rule);
      EXPECT_EQ(out.dtype(), DType::kU8);
      EXPECT_EQ(label_set(out), (std::set<int>{0, 3, 7, 200})) << label_interpolation_name(rule);
    }
  }
}

TEST(Resample, NearestLabelsUpsampledByTwoReplicateEachVoxel) {
  io::Geometry g;
  g.size_xyz = {3, 2, 1};
  Image labels(DType::kI16, 1, g);
  const std::int16_t values[6] = {1, 2, 3, 4, 5, 6};
  std::memcpy(labels.bytes(), values, sizeof(values));
  const Image out = resample_labels(labels, {6, 4, 1}, LabelInterpolation::kNearest);
  const std::int16_t expected_row0[6] = {1, 1, 2, 2, 3, 3};
  for (int x = 0; x < 6; ++x) {
    EXPECT_EQ(out.data<std::int16_t>()[x], expected_row0[x]);
    EXPECT_EQ(out.data<std::int16_t>()[6 + x], expected_row0[x]);
    EXPECT_EQ(out.data<std::int16_t>()[18 + x], expected_row0[x] + 3);
  }
}

}  // namespace
}  // namespace graft::preprocess
