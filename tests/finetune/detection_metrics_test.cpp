#include "finetune/tasks/detection/detection_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace graft::finetune {
namespace {

io::Box cube(double x, double y, double z, double side, int label = 1, double score = 1.0) {
  return {{x, y, z}, {x + side, y + side, z + side}, label, score};
}

TEST(DetectionMetrics, NmsKeepsTheBestOfEachOverlappingGroupPerLabel) {
  const std::vector<io::Box> kept = non_max_suppression(
      {cube(0, 0, 0, 2, 1, 0.5), cube(0.2, 0, 0, 2, 1, 0.9), cube(0.2, 0, 0, 2, 2, 0.4), cube(10, 10, 10, 2, 1, 0.7)}, 0.5);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].score, 0.9);
  EXPECT_EQ(kept[1].score, 0.7);
  EXPECT_EQ(kept[2].label, 2);  // another label is never suppressed
}

// Two cases, three references; detections ranked 0.9 (hit), 0.8 (miss), 0.7 (hit), 0.6 (duplicate
// of an already matched reference: a false positive for AP). Precision after each: 1, 1/2, 2/3,
// 1/2; recall 1/3, 1/3, 2/3, 2/3. Monotone precision: 1, 2/3, 2/3, 1/2. Recall points 0..0.33 read
// 1 (34 points), 0.34..0.66 read 2/3 (33 points), 0.67..1 read 0 (34 points):
// AP = (34 + 33 * 2/3) / 101.
TEST(DetectionMetrics, AveragePrecisionFollowsCocoInterpolation) {
  std::vector<DetectionCase> cases(2);
  cases[0].references = {cube(0, 0, 0, 4), cube(10, 0, 0, 4)};
  cases[1].references = {cube(0, 0, 0, 4)};
  cases[0].detections = {cube(0, 0, 0, 4, 1, 0.9), cube(30, 0, 0, 4, 1, 0.8), cube(0.1, 0, 0, 4, 1, 0.6)};
  cases[1].detections = {cube(0, 0, 0, 4, 1, 0.7)};
  EXPECT_NEAR(average_precision(cases, 1, 0.5), (34 + 33 * 2.0 / 3.0) / 101.0, 1e-12);
  EXPECT_TRUE(std::isnan(average_precision(cases, 2, 0.5)));
  // A perfect detector scores 1 at every threshold.
  std::vector<DetectionCase> perfect(1);
  perfect[0].references = {cube(0, 0, 0, 4), cube(10, 0, 0, 4, 2)};
  perfect[0].detections = {cube(0, 0, 0, 4, 1, 0.5), cube(10, 0, 0, 4, 2, 0.5)};
  const auto metrics = coco_map(perfect);
  EXPECT_DOUBLE_EQ(metrics.at("map"), 1.0);
  EXPECT_DOUBLE_EQ(metrics.at("map_50"), 1.0);
  EXPECT_DOUBLE_EQ(metrics.at("ap_50_2"), 1.0);
  // Shifted by a quarter of the side: IoU 3/5 = 0.6 counts at 0.50 and 0.55 and 0.60, not above.
  perfect[0].detections = {cube(1, 0, 0, 4, 1, 0.5), cube(11, 0, 0, 4, 2, 0.5)};
  EXPECT_DOUBLE_EQ(coco_map(perfect).at("map"), 0.3);
}

// Four scans, four nodules. Ranked: 0.95 hit A, 0.9 FP, 0.85 hit B, 0.8 hit A again (ignored),
// 0.7 FP, 0.6 FP, 0.5 FP, 0.4 hit C. FP/scan after each: 0, .25, .25, .25, .5, .75, 1, 1.
// Sensitivity at 1/8: 1/4 (before the first FP); 1/4: 2/4; 1/2: 2/4; 1: 3/4; 2, 4, 8: 3/4.
TEST(DetectionMetrics, FrocCountsHitsByCentreAndIgnoresRepeatHits) {
  std::vector<DetectionCase> scans(4);
  scans[0].references = {cube(0, 0, 0, 10), cube(50, 50, 50, 10)};  // A, B
  scans[1].references = {cube(0, 0, 0, 10)};                         // C
  scans[2].references = {cube(20, 20, 20, 4)};                       // D, never found
  scans[0].detections = {cube(2, 2, 2, 4, 1, 0.95), cube(30, 30, 30, 4, 1, 0.9), cube(52, 52, 52, 4, 1, 0.85),
                         cube(4, 4, 4, 4, 1, 0.8)};
  scans[1].detections = {cube(80, 80, 80, 4, 1, 0.7), cube(3, 3, 3, 4, 1, 0.4)};
  scans[3].detections = {cube(0, 0, 0, 4, 1, 0.6), cube(9, 9, 9, 4, 1, 0.5)};
  const Froc result = froc(scans);
  const std::vector<double> expected{0.25, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75};
  ASSERT_EQ(result.sensitivity.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ(result.sensitivity[i], expected[i]) << i;
  EXPECT_DOUBLE_EQ(result.average_sensitivity, (0.25 + 0.5 + 0.5 + 0.75 * 4) / 7);
}

TEST(DetectionMetrics, CompletenessAndPurityAtAnIouAndScoreThreshold) {
  std::vector<DetectionCase> images(1);
  images[0].references = {cube(0, 0, 0, 4), cube(10, 0, 0, 4), cube(20, 0, 0, 4)};
  images[0].detections = {cube(0, 0, 0, 4, 1, 0.9), cube(10.4, 0, 0, 4, 1, 0.8), cube(40, 0, 0, 4, 1, 0.7),
                          cube(20, 0, 0, 4, 1, 0.2)};
  // Scores >= 0.5: three detections, two matches (IoU 1 and 3.6/4.4 = 0.82).
  const auto at_half = completeness_purity(images, 0.5, 0.5);
  EXPECT_DOUBLE_EQ(at_half.completeness, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(at_half.purity, 2.0 / 3.0);
  const auto everything = completeness_purity(images, 0.5, 0.0);
  EXPECT_DOUBLE_EQ(everything.completeness, 1.0);
  EXPECT_DOUBLE_EQ(everything.purity, 3.0 / 4.0);
}

}  // namespace
}  // namespace graft::finetune
