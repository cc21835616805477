#pragma once

// Detection runs (task: detection): the boxes of a case are the connected components of its
// label map (a label value is a class), so a segmentation manifest trains a detector as it is.
// Patches are drawn and augmented as for segmentation, and each patch's boxes are taken from its
// own augmented label patch, so flips, rotations and the small affine move the boxes with the
// image by construction.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/segmentation_data.h"
#include "finetune/detection_model.h"
#include "finetune/training_loop.h"
#include "preprocess/contract.h"

namespace graft::finetune {

// The detector a run config describes: its backbone, classes - 1 object classes, and the
// detection block's fpn_channels.
DetectionModel build_detector(const nlohmann::json& config);
DetectionDecodeOptions decode_options(const nlohmann::json& config);

// Detections on one prepared image (C, Z, Y, X on the Plan's grid), whole: the image is padded
// at the far end of each axis to a multiple of the backbone's coarsest stride.
std::vector<io::Box> detect_image(DetectionModelImpl& model, const io::Image& image, const DetectionDecodeOptions& options);

// Validation metrics of a detector on prepared cases whose label maps hold the references:
// "val_froc" (LUNA16's average sensitivity), "val_map", "val_map_50", "val_completeness" and
// "val_purity" (IoU 0.5, score 0.5).
std::map<std::string, double> detection_validation(DetectionModelImpl& model,
                                                   const std::vector<datasets::PreparedCase>& cases,
                                                   const DetectionDecodeOptions& options);

// Trains as the resolved config says, through the shared loop; the metric is val_froc for 3D
// backbones and val_map_50 for 2D ones.
TrainResult train_detector_prepared(const nlohmann::json& config, const std::vector<datasets::PreparedCase>& train_cases,
                                    const std::vector<datasets::PreparedCase>& val_cases,
                                    const std::vector<TrainEventSink>& sinks, bool resume);
TrainResult train_detector(const nlohmann::json& config, const std::vector<TrainEventSink>& sinks, bool resume);

// A trained detector from its model folder (config.json, contract.json, model.safetensors),
// for `graft predict`: each image goes through the saved Plan, is detected whole, and its boxes
// come back on the image's own grid.
class Detector {
 public:
  explicit Detector(const std::string& model_folder);
  std::vector<io::Box> detect(const io::Image& image, const std::string& source);
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  nlohmann::json config_;
  preprocess::Contract contract_;
  std::vector<std::string> class_names_;
  DetectionModel model_{nullptr};
};

}  // namespace graft::finetune
