#pragma once

// Detection metrics on boxes of one grid per image or scan (io/boxes.h): COCO's mean average
// precision, LUNA16's FROC, and the completeness and purity the galaxy-clump work reports; and
// the non-maximum suppression that turns a detector's raw boxes into detections.
#include <map>
#include <string>
#include <vector>

#include "io/boxes.h"

namespace graft::finetune {

// The boxes of one image: what the detector found (with scores) and the reference.
struct DetectionCase {
  std::vector<io::Box> detections;
  std::vector<io::Box> references;
};

// Keeps, per label, the highest-scoring box and drops every box overlapping a kept one by more
// than iou_threshold; the result is sorted by score, highest first.
std::vector<io::Box> non_max_suppression(std::vector<io::Box> boxes, double iou_threshold);

// COCO's average precision for one label at one IoU threshold: detections of every case ranked
// by score, each matched greedily to the unmatched reference of its case it overlaps most (IoU
// >= threshold), precision made monotone and read at the 101 recall points 0, 0.01, ..., 1.
// NaN when the label has no reference.
double average_precision(const std::vector<DetectionCase>& cases, int label, double iou_threshold);

// "map" (mean over labels with references and IoU 0.50:0.05:0.95), "map_50", "map_75", and
// "ap_50_LABEL" per label.
std::map<std::string, double> coco_map(const std::vector<DetectionCase>& cases);

// LUNA16's FROC: a detection hits a reference when its centre lies inside the reference box;
// the first hit on a reference counts, later hits on it are ignored, and a detection hitting
// nothing is a false positive. Sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per
// case (the best sensitivity reached without more false positives than that), and their mean.
struct Froc {
  std::vector<double> false_positives_per_case{0.125, 0.25, 0.5, 1, 2, 4, 8};
  std::vector<double> sensitivity;
  double average_sensitivity = 0.0;
};
Froc froc(const std::vector<DetectionCase>& cases);

// Completeness (matched references / references) and purity (matched detections / detections)
// over the detections scoring at least min_score, matched one to one by score at IoU >=
// iou_threshold. A side with nothing to count gives NaN.
struct CompletenessPurity {
  double completeness = 0.0;
  double purity = 0.0;
};
CompletenessPurity completeness_purity(const std::vector<DetectionCase>& cases, double iou_threshold, double min_score);

}  // namespace graft::finetune
