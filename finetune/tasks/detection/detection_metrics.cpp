#include "finetune/tasks/detection/detection_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace graft::finetune {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A detection of one case, ranked with every other case's.
struct Ranked {
  double score;
  std::size_t case_index;
  std::size_t detection_index;
};

std::vector<Ranked> ranked_detections(const std::vector<DetectionCase>& cases, int label, double min_score) {
  std::vector<Ranked> ranked;
  for (std::size_t c = 0; c < cases.size(); ++c) {
    for (std::size_t d = 0; d < cases[c].detections.size(); ++d) {
      const io::Box& box = cases[c].detections[d];
      if ((label < 0 || box.label == label) && box.score >= min_score) ranked.push_back({box.score, c, d});
    }
  }
  // Ties keep case and detection order, so the metric does not depend on the sort's whims.
  std::stable_sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) { return a.score > b.score; });
  return ranked;
}

// Greedy matching in rank order: true for each ranked detection that takes an unmatched
// reference of its case (same label) with IoU >= threshold, the best-overlapping one.
std::vector<bool> match_by_iou(const std::vector<DetectionCase>& cases, const std::vector<Ranked>& ranked,
                               double iou_threshold, std::size_t* references_counted, int label) {
  std::vector<std::vector<bool>> taken(cases.size());
  std::size_t references = 0;
  for (std::size_t c = 0; c < cases.size(); ++c) {
    taken[c].assign(cases[c].references.size(), false);
    for (const io::Box& reference : cases[c].references) references += label < 0 || reference.label == label;
  }
  if (references_counted) *references_counted = references;
  std::vector<bool> matched;
  for (const Ranked& r : ranked) {
    const io::Box& detection = cases[r.case_index].detections[r.detection_index];
    const auto& references_of_case = cases[r.case_index].references;
    double best = iou_threshold;
    int best_index = -1;
    for (std::size_t g = 0; g < references_of_case.size(); ++g) {
      if (taken[r.case_index][g] || references_of_case[g].label != detection.label) continue;
      const double iou = io::box_iou(detection, references_of_case[g]);
      if (iou >= best) best = iou, best_index = static_cast<int>(g);
    }
    if (best_index >= 0) taken[r.case_index][best_index] = true;
    matched.push_back(best_index >= 0);
  }
  return matched;
}

bool centre_inside(const io::Box& detection, const io::Box& reference) {
  const io::Vec3 centre = io::box_centre(detection);
  for (int a = 0; a < 3; ++a) {
    if (centre[a] < reference.start_xyz[a] || centre[a] > reference.end_xyz[a]) return false;
  }
  return true;
}

}  // namespace

std::vector<io::Box> non_max_suppression(std::vector<io::Box> boxes, double iou_threshold) {
  std::stable_sort(boxes.begin(), boxes.end(), [](const io::Box& a, const io::Box& b) { return a.score > b.score; });
  std::vector<io::Box> kept;
  for (const io::Box& box : boxes) {
    bool suppressed = false;
    for (const io::Box& k : kept) {
      if (k.label == box.label && io::box_iou(k, box) > iou_threshold) {
        suppressed = true;
        break;
      }
    }
    if (!suppressed) kept.push_back(box);
  }
  return kept;
}

double average_precision(const std::vector<DetectionCase>& cases, int label, double iou_threshold) {
  const std::vector<Ranked> ranked = ranked_detections(cases, label, -std::numeric_limits<double>::infinity());
  std::size_t references = 0;
  const std::vector<bool> matched = match_by_iou(cases, ranked, iou_threshold, &references, label);
  if (references == 0) return kNaN;
  std::vector<double> precision, recall;
  std::size_t true_positives = 0;
  for (std::size_t i = 0; i < matched.size(); ++i) {
    true_positives += matched[i];
    precision.push_back(static_cast<double>(true_positives) / (i + 1));
    recall.push_back(static_cast<double>(true_positives) / references);
  }
  for (std::size_t i = precision.size(); i-- > 1;) precision[i - 1] = std::max(precision[i - 1], precision[i]);
  double sum = 0.0;
  for (int point = 0; point <= 100; ++point) {
    const double r = point / 100.0;
    const auto at = std::lower_bound(recall.begin(), recall.end(), r - 1e-12);
    if (at != recall.end()) sum += precision[at - recall.begin()];
  }
  return sum / 101.0;
}

std::map<std::string, double> coco_map(const std::vector<DetectionCase>& cases) {
  std::set<int> labels;
  for (const auto& c : cases)
    for (const auto& reference : c.references) labels.insert(reference.label);
  std::map<std::string, double> metrics;
  double all = 0.0, at_50 = 0.0, at_75 = 0.0;
  for (int label : labels) {
    double sum = 0.0;
    for (int step = 0; step < 10; ++step) {
      const double threshold = (50 + 5 * step) / 100.0;  // 0.6 exactly as written, not 0.5 + 0.1
      const double ap = average_precision(cases, label, threshold);
      sum += ap;
      if (step == 0) at_50 += ap, metrics["ap_50_" + std::to_string(label)] = ap;
      if (step == 5) at_75 += ap;
    }
    all += sum / 10.0;
  }
  const double count = static_cast<double>(labels.size());
  metrics["map"] = labels.empty() ? kNaN : all / count;
  metrics["map_50"] = labels.empty() ? kNaN : at_50 / count;
  metrics["map_75"] = labels.empty() ? kNaN : at_75 / count;
  return metrics;
}

Froc froc(const std::vector<DetectionCase>& cases) {
  Froc result;
  const std::vector<Ranked> ranked = ranked_detections(cases, -1, -std::numeric_limits<double>::infinity());
  std::size_t references = 0;
  std::vector<std::vector<bool>> hit(cases.size());
  for (std::size_t c = 0; c < cases.size(); ++c) {
    hit[c].assign(cases[c].references.size(), false);
    references += cases[c].references.size();
  }
  // The curve after each detection, in rank order: (false positives, references found).
  std::vector<std::pair<std::size_t, std::size_t>> curve;
  std::size_t false_positives = 0, found = 0;
  for (const Ranked& r : ranked) {
    const io::Box& detection = cases[r.case_index].detections[r.detection_index];
    bool hits_any = false;
    for (std::size_t g = 0; g < cases[r.case_index].references.size(); ++g) {
      if (!centre_inside(detection, cases[r.case_index].references[g])) continue;
      hits_any = true;
      if (!hit[r.case_index][g]) {
        hit[r.case_index][g] = true;
        ++found;
        break;
      }
    }
    if (!hits_any) ++false_positives;
    curve.emplace_back(false_positives, found);
  }
  const double case_count = std::max<double>(1.0, static_cast<double>(cases.size()));
  double sum = 0.0;
  for (const double rate : result.false_positives_per_case) {
    std::size_t best = 0;
    for (const auto& [fp, hits] : curve) {
      if (fp / case_count <= rate + 1e-12) best = std::max(best, hits);
    }
    const double sensitivity = references ? static_cast<double>(best) / references : kNaN;
    result.sensitivity.push_back(sensitivity);
    sum += sensitivity;
  }
  result.average_sensitivity = sum / result.false_positives_per_case.size();
  return result;
}

CompletenessPurity completeness_purity(const std::vector<DetectionCase>& cases, double iou_threshold, double min_score) {
  const std::vector<Ranked> ranked = ranked_detections(cases, -1, min_score);
  std::size_t references = 0;
  const std::vector<bool> matched = match_by_iou(cases, ranked, iou_threshold, &references, -1);
  const auto hits = static_cast<double>(std::count(matched.begin(), matched.end(), true));
  return {references ? hits / references : kNaN, ranked.empty() ? kNaN : hits / ranked.size()};
}

}  // namespace graft::finetune
