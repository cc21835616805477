#pragma once

// `graft evaluate`'s numbers, for any front end: a predicted label map against a reference, or
// predicted boxes against reference boxes or a label map's components.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace graft::finetune {

struct LabelScores {
  std::int64_t label = 0;
  double dice = 0.0;
  double hd95_mm = 0.0;
  double surface_dice = 0.0;
  double mean_surface_distance_mm = 0.0;
};

// Dice, HD95 and surface Dice at `tolerance_mm` for every label of either image (files on the
// same grid).
std::vector<LabelScores> evaluate_label_maps(const std::string& prediction_path,
                                             const std::string& reference_path,
                                             double tolerance_mm);
std::string label_scores_csv(const std::vector<LabelScores>& scores);

struct BoxScores {
  std::size_t detections = 0, references = 0;
  std::map<std::string, double>
      metrics;  // COCO mAP, FROC (with sensitivity per rate), completeness, purity
};

// Boxes JSON (graft predict's) against a label map (one box per component, on the map's grid)
// or another boxes JSON (compared on the prediction's index grid). Completeness and purity are
// at IoU 0.5 and score 0.5.
BoxScores evaluate_boxes(const std::string& prediction_path, const std::string& reference_path);
std::string metrics_csv(const std::map<std::string, double>& metrics);

}  // namespace graft::finetune
