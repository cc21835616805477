#include "finetune/segmentation_metrics.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace graft::finetune
