#include "finetune/inference/evaluation.h"

#include <cstdio>
#include <sstream>

#include "finetune/run_config.h"
#include "finetune/tasks/detection/detection_metrics.h"
#include "finetune/tasks/segmentation/segmentation_metrics.h"
#include "io/boxes.h"
#include "io/image_file.h"
#include "io/text.h"

namespace graft::finetune {

std::vector<LabelScores> evaluate_label_maps(const std::string& prediction_path,
                                             const std::string& reference_path,
                                             double tolerance_mm) {
  const io::Image prediction = io::read(prediction_path);
  const io::Image reference = io::read(reference_path);
  const auto dice = dice_per_label(prediction, reference);
  const auto surface = surface_metrics_per_label(prediction, reference, tolerance_mm);
  std::vector<LabelScores> scores;
  for (const auto& [label, value] : dice) {
    const auto& s = surface.at(label);
    scores.push_back({label, value, s.hd95_mm, s.surface_dice, s.mean_surface_distance_mm});
  }
  return scores;
}

std::string label_scores_csv(const std::vector<LabelScores>& scores) {
  std::ostringstream csv;
  csv << "label,dice,hd95_mm,surface_dice,mean_surface_distance_mm\n";
  for (const LabelScores& s : scores) {
    csv << s.label << "," << s.dice << "," << s.hd95_mm << "," << s.surface_dice << ","
        << s.mean_surface_distance_mm << "\n";
  }
  return csv.str();
}

BoxScores evaluate_boxes(const std::string& prediction_path, const std::string& reference_path) {
  const nlohmann::json predicted = read_json_file(prediction_path);
  DetectionCase evaluated;
  if (io::ends_with(reference_path, ".json")) {
    // Both sides as index boxes on the image they were made for.
    auto index_only = [](nlohmann::json json) {
      for (auto& box : json.is_object() && json.contains("boxes") ? json["boxes"] : json) {
        box.erase("centre_world");
        box.erase("size_world");
      }
      return json;
    };
    const io::Geometry unused;
    evaluated.detections = io::boxes_from_json(index_only(predicted), unused, prediction_path);
    evaluated.references =
        io::boxes_from_json(index_only(read_json_file(reference_path)), unused, reference_path);
  } else {
    const io::Image labels = io::read(reference_path);
    evaluated.references = io::boxes_from_labels(labels);
    evaluated.detections = io::boxes_from_json(predicted, labels.geometry(), prediction_path);
  }
  const std::vector<DetectionCase> cases{evaluated};
  BoxScores scores;
  scores.detections = evaluated.detections.size();
  scores.references = evaluated.references.size();
  scores.metrics = coco_map(cases);
  const auto found = froc(cases);
  for (std::size_t i = 0; i < found.sensitivity.size(); ++i) {
    char name[48];
    std::snprintf(name, sizeof name, "froc_sensitivity_at_%g_fp",
                  found.false_positives_per_case[i]);
    scores.metrics[name] = found.sensitivity[i];
  }
  scores.metrics["froc"] = found.average_sensitivity;
  const auto completeness = completeness_purity(cases, 0.5, 0.5);
  scores.metrics["completeness"] = completeness.completeness;
  scores.metrics["purity"] = completeness.purity;
  return scores;
}

std::string metrics_csv(const std::map<std::string, double>& metrics) {
  std::ostringstream csv;
  csv << "metric,value\n";
  for (const auto& [name, value] : metrics) csv << name << "," << value << "\n";
  return csv.str();
}

}  // namespace graft::finetune
