#include "finetune/tasks/segmentation/segmentation_metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "io/error.h"

namespace graft::finetune {
namespace {

TEST(SegmentationMetrics, DiceOfKnownOverlaps) {
  io::Geometry g;
  g.size_xyz = {10, 1, 1};
  io::Image prediction(io::DType::kU8, 1, g), reference(io::DType::kU8, 1, g);
  const std::uint8_t p[10] = {1, 1, 1, 1, 0, 0, 2, 2, 0, 0};
  const std::uint8_t r[10] = {1, 1, 0, 0, 0, 0, 2, 2, 2, 3};
  std::copy(p, p + 10, prediction.data<std::uint8_t>());
  std::copy(r, r + 10, reference.data<std::uint8_t>());
  const auto dice = dice_per_label(prediction, reference);
  EXPECT_DOUBLE_EQ(dice.at(1), 2.0 * 2 / (4 + 2));
  EXPECT_DOUBLE_EQ(dice.at(2), 2.0 * 2 / (2 + 3));
  EXPECT_DOUBLE_EQ(dice.at(3), 0.0);
  EXPECT_EQ(dice.count(0), 0u);
}

TEST(SegmentationMetrics, RefusesMasksOnDifferentGrids) {
  io::Geometry a, b;
  b.spacing_xyz[0] = 2.0;
  EXPECT_THROW(dice_per_label(io::Image(io::DType::kU8, 1, a), io::Image(io::DType::kU8, 1, b)),
               std::runtime_error);
}

// A label map of `size_xyz` voxels whose voxel (x, y, z) holds label(x, y, z).
template <typename T = std::uint8_t>
io::Image label_map(std::array<std::int64_t, 3> size_xyz, io::Vec3 spacing_xyz,
                    const std::function<int(std::int64_t, std::int64_t, std::int64_t)>& label) {
  io::Geometry g;
  g.size_xyz = size_xyz;
  g.spacing_xyz = spacing_xyz;
  io::Image image(io::DTypeOf<T>::value, 1, g);
  T* voxels = image.data<T>();
  for (std::int64_t z = 0; z < size_xyz[2]; ++z) {
    for (std::int64_t y = 0; y < size_xyz[1]; ++y) {
      for (std::int64_t x = 0; x < size_xyz[0]; ++x) {
        voxels[image.offset(0, z, y, x)] = static_cast<T>(label(x, y, z));
      }
    }
  }
  return image;
}

// 1 inside the 4x4x4 cube whose lowest corner is (2, 2, 2) + shift.
std::function<int(std::int64_t, std::int64_t, std::int64_t)> cube(std::int64_t dx, std::int64_t dy,
                                                                  std::int64_t dz) {
  return [=](std::int64_t x, std::int64_t y, std::int64_t z) {
    const auto in = [](std::int64_t v, std::int64_t lo) { return v >= lo && v < lo + 4; };
    return in(x, 2 + dx) && in(y, 2 + dy) && in(z, 2 + dz) ? 1 : 0;
  };
}

TEST(SegmentationMetrics, IdenticalMasksHaveZeroSurfaceDistanceAndFullSurfaceDice) {
  const auto labels = [](std::int64_t x, std::int64_t y, std::int64_t z) {
    if (x >= 1 && x <= 5 && y >= 2 && y <= 6 && z >= 1 && z <= 3) return 1;
    return x + y + z > 14 ? 2 : 0;  // touches the image border, which counts as background
  };
  const auto image = label_map({10, 9, 8}, {0.7, 1.1, 3.0}, labels);
  const auto metrics = surface_metrics_per_label(image, image, 0.0);
  ASSERT_EQ(metrics.size(), 2u);
  for (const auto& [label, m] : metrics) {
    EXPECT_DOUBLE_EQ(m.hd95_mm, 0.0) << label;
    EXPECT_DOUBLE_EQ(m.mean_surface_distance_mm, 0.0) << label;
    EXPECT_DOUBLE_EQ(m.surface_dice, 1.0) << label;
  }
}

TEST(SegmentationMetrics, SingleVoxelsThreeApartAlongXAreSixMmApartAtTwoMmSpacing) {
  const auto prediction = label_map({8, 3, 3}, {2.0, 1.0, 1.0}, [](auto x, auto y, auto z) {
    return x == 1 && y == 1 && z == 1 ? 1 : 0;
  });
  const auto reference = label_map({8, 3, 3}, {2.0, 1.0, 1.0}, [](auto x, auto y, auto z) {
    return x == 4 && y == 1 && z == 1 ? 1 : 0;
  });
  const auto strict = surface_metrics_per_label(prediction, reference, 1.0).at(1);
  EXPECT_DOUBLE_EQ(strict.hd95_mm, 6.0);
  EXPECT_DOUBLE_EQ(strict.mean_surface_distance_mm, 6.0);
  EXPECT_DOUBLE_EQ(strict.surface_dice, 0.0);
  // The tolerance is inclusive, as in MONAI's compute_surface_dice.
  EXPECT_DOUBLE_EQ(surface_metrics_per_label(prediction, reference, 6.0).at(1).surface_dice, 1.0);
  EXPECT_DOUBLE_EQ(surface_metrics_per_label(prediction, reference, 5.9).at(1).surface_dice, 0.0);
}

TEST(SegmentationMetrics, CubeShiftedOneSliceAlongZIsOneZSpacingAway) {
  const io::Vec3 spacing{1.0, 1.0, 2.5};
  const auto prediction = label_map({8, 8, 9}, spacing, cube(0, 0, 0));
  const auto reference = label_map({8, 8, 9}, spacing, cube(0, 0, 1));
  // Each 4x4x4 cube has 56 surface voxels. Per direction: the 16 of the face that the other cube
  // does not share lie 2.5 mm (one slice) from it; the 4 inner voxels of the face inside the
  // other cube lie 1 mm from its side walls; the other 36 lie on the other surface.
  const auto m = surface_metrics_per_label(prediction, reference, 1.0).at(1);
  EXPECT_DOUBLE_EQ(m.hd95_mm, 2.5);
  EXPECT_DOUBLE_EQ(m.mean_surface_distance_mm, (32 * 2.5 + 8 * 1.0) / 112);
  EXPECT_DOUBLE_EQ(m.surface_dice, 80.0 / 112);
  EXPECT_DOUBLE_EQ(surface_metrics_per_label(prediction, reference, 2.5).at(1).surface_dice, 1.0);
}

TEST(SegmentationMetrics, SameIndexShiftMeasuresTheSpacingOfItsAxis) {
  const io::Vec3 spacing{1.0, 1.0, 2.5};
  const auto cube_at_origin = label_map({9, 8, 9}, spacing, cube(0, 0, 0));
  const auto along_x =
      surface_metrics_per_label(cube_at_origin, label_map({9, 8, 9}, spacing, cube(1, 0, 0)), 1.0);
  const auto along_z =
      surface_metrics_per_label(cube_at_origin, label_map({9, 8, 9}, spacing, cube(0, 0, 1)), 1.0);
  EXPECT_DOUBLE_EQ(along_x.at(1).hd95_mm, 1.0);
  EXPECT_DOUBLE_EQ(along_x.at(1).surface_dice, 1.0);
  EXPECT_DOUBLE_EQ(along_z.at(1).hd95_mm, 2.5);
  EXPECT_LT(along_z.at(1).surface_dice, 1.0);
}

TEST(SegmentationMetrics, Hd95IsTheLargerDirectedPercentileLikeMonai) {
  // In a single row every foreground voxel is surface (its y and z neighbours lie outside).
  // Distances: {0} from the prediction's voxel and {0, ..., 9} from the reference's, so the
  // directed 95th percentiles are 0 and numpy.percentile(0..9, 95) = 8.55; HD95 is the larger.
  const auto prediction =
      label_map({12, 1, 1}, {1.0, 1.0, 1.0}, [](auto x, auto, auto) { return x == 0 ? 1 : 0; });
  const auto reference =
      label_map({12, 1, 1}, {1.0, 1.0, 1.0}, [](auto x, auto, auto) { return x <= 9 ? 1 : 0; });
  const auto m = surface_metrics_per_label(prediction, reference, 3.0).at(1);
  EXPECT_NEAR(m.hd95_mm, 8.55, 1e-12);
  EXPECT_DOUBLE_EQ(m.mean_surface_distance_mm, 45.0 / 11);
  EXPECT_DOUBLE_EQ(m.surface_dice, 5.0 / 11);  // 0 and 0, 1, 2, 3 are within 3 mm
}

TEST(SegmentationMetrics, LabelMissingFromOneMapHasInfiniteDistanceAndZeroSurfaceDice) {
  const auto prediction = label_map({8, 8, 8}, {1.0, 1.0, 1.0}, [](auto x, auto y, auto z) {
    return x == 7 && y == 7 && z == 7 ? 3 : 0;
  });
  const auto reference = label_map({8, 8, 8}, {1.0, 1.0, 1.0}, cube(0, 0, 0));
  const auto metrics = surface_metrics_per_label(prediction, reference);
  ASSERT_EQ(metrics.size(), 2u);  // neither background nor a label absent from both
  for (const std::int64_t label : {1, 3}) {
    const auto& m = metrics.at(label);
    EXPECT_EQ(m.hd95_mm, std::numeric_limits<double>::infinity()) << label;
    EXPECT_EQ(m.mean_surface_distance_mm, std::numeric_limits<double>::infinity()) << label;
    EXPECT_EQ(m.surface_dice, 0.0) << label;
  }
}

// Surface voxels, index xyz, by the definition itself: foreground with a background or
// out-of-image 6-neighbour.
std::vector<std::array<std::int64_t, 3>> surface_voxels(const std::vector<int>& labels,
                                                        const std::array<std::int64_t, 3>& n,
                                                        int label) {
  const auto at = [&](std::int64_t x, std::int64_t y, std::int64_t z) {
    if (x < 0 || y < 0 || z < 0 || x >= n[0] || y >= n[1] || z >= n[2]) return false;
    return labels[(z * n[1] + y) * n[0] + x] == label;
  };
  std::vector<std::array<std::int64_t, 3>> surface;
  for (std::int64_t z = 0; z < n[2]; ++z) {
    for (std::int64_t y = 0; y < n[1]; ++y) {
      for (std::int64_t x = 0; x < n[0]; ++x) {
        if (at(x, y, z) && !(at(x - 1, y, z) && at(x + 1, y, z) && at(x, y - 1, z) &&
                             at(x, y + 1, z) && at(x, y, z - 1) && at(x, y, z + 1))) {
          surface.push_back({x, y, z});
        }
      }
    }
  }
  return surface;
}

TEST(SegmentationMetrics, SurfaceMetricsMatchBruteForceOnRandomMasks) {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 20; ++trial) {
    const std::array<std::int64_t, 3> n{std::uniform_int_distribution<std::int64_t>(1, 14)(rng),
                                        std::uniform_int_distribution<std::int64_t>(1, 11)(rng),
                                        std::uniform_int_distribution<std::int64_t>(1, 9)(rng)};
    std::uniform_real_distribution<double> spacing_mm(0.4, 3.0);
    const io::Vec3 spacing{spacing_mm(rng), spacing_mm(rng), spacing_mm(rng)};
    const double tolerance_mm = std::uniform_real_distribution<double>(0.0, 4.0)(rng);
    // Labels scattered anywhere, so one label's voxels can lie far from each other.
    // Odd trials make label 1 dense, so it has an interior and long runs between surfaces.
    std::discrete_distribution<int> pick_label =
        trial % 2 ? std::discrete_distribution<int>({25, 60, 10, 5})
                  : std::discrete_distribution<int>({60, 12, 12, 4});
    const int label_values[4] = {0, 1, 300, 7};
    std::vector<int> predicted(static_cast<std::size_t>(n[0] * n[1] * n[2]));
    std::vector<int> expected(predicted.size());
    for (auto& v : predicted) v = label_values[pick_label(rng)];
    for (auto& v : expected) v = label_values[pick_label(rng)];
    const auto index = [&](auto x, auto y, auto z) { return (z * n[1] + y) * n[0] + x; };
    const auto prediction = label_map<std::int16_t>(
        n, spacing, [&](auto x, auto y, auto z) { return predicted[index(x, y, z)]; });
    const auto reference = label_map<std::int16_t>(
        n, spacing, [&](auto x, auto y, auto z) { return expected[index(x, y, z)]; });

    const auto metrics = surface_metrics_per_label(prediction, reference, tolerance_mm);
    for (const int label : {1, 300, 7}) {
      const auto a = surface_voxels(predicted, n, label);
      const auto b = surface_voxels(expected, n, label);
      if (a.empty() && b.empty()) {
        EXPECT_EQ(metrics.count(label), 0u);
        continue;
      }
      const auto& m = metrics.at(label);
      if (a.empty() || b.empty()) {
        EXPECT_EQ(m.hd95_mm, std::numeric_limits<double>::infinity());
        EXPECT_EQ(m.surface_dice, 0.0);
        continue;
      }
      std::vector<double> distances_mm;
      std::int64_t within = 0;
      double hd95_mm = 0.0;
      for (const auto* from : {&a, &b}) {
        const auto& to = from == &a ? b : a;
        std::vector<double> directed_mm;
        for (const auto& p : *from) {
          double nearest = std::numeric_limits<double>::infinity();
          for (const auto& q : to) {
            double squared = 0.0;
            for (int axis = 0; axis < 3; ++axis) {
              const double d = (p[axis] - q[axis]) * spacing[axis];
              squared += d * d;
            }
            nearest = std::min(nearest, std::sqrt(squared));
          }
          distances_mm.push_back(nearest);
          directed_mm.push_back(nearest);
          if (nearest <= tolerance_mm) ++within;
        }
        // MONAI: the larger of the two directed 95th percentiles (numpy's linear rule).
        std::sort(directed_mm.begin(), directed_mm.end());
        const double rank = 0.95 * static_cast<double>(directed_mm.size() - 1);
        const auto lower = static_cast<std::size_t>(rank);
        const std::size_t upper = std::min(lower + 1, directed_mm.size() - 1);
        hd95_mm = std::max(hd95_mm, directed_mm[lower] + (directed_mm[upper] - directed_mm[lower]) * (rank - lower));
      }
      double sum_mm = 0.0;
      for (const double d : distances_mm) sum_mm += d;
      const auto count = static_cast<double>(distances_mm.size());
      EXPECT_NEAR(m.hd95_mm, hd95_mm, 1e-9) << "trial " << trial << " label " << label;
      EXPECT_NEAR(m.mean_surface_distance_mm, sum_mm / count, 1e-9) << "trial " << trial;
      EXPECT_NEAR(m.surface_dice, within / count, 1e-12) << "trial " << trial;
    }
  }
}

TEST(SegmentationMetrics, SurfaceMetricsRefuseMismatchedGridsChannelsAndTolerance) {
  io::Geometry a, b;
  b.spacing_xyz[2] = 2.0;
  EXPECT_THROW(
      surface_metrics_per_label(io::Image(io::DType::kU8, 1, a), io::Image(io::DType::kU8, 1, b)),
      Error);
  EXPECT_THROW(
      surface_metrics_per_label(io::Image(io::DType::kU8, 2, a), io::Image(io::DType::kU8, 2, a)),
      Error);
  const io::Image one(io::DType::kU8, 1, a);
  EXPECT_THROW(surface_metrics_per_label(one, one, -1.0), Error);
  EXPECT_THROW(surface_metrics_per_label(one, one, std::nan("")), Error);
  EXPECT_TRUE(surface_metrics_per_label(one, one).empty());
}

}  // namespace
}  // namespace graft::finetune
