#pragma once

// Detection runs (task: detection): the boxes of a case are the connected components of its
// label map (a label value is a class), so a segmentation manifest trains a detector as it is.
// Patches are drawn and augmented as for segmentation, and each patch's boxes are taken from its
// own augmented label patch, so flips, rotations and the small affine move the boxes with the
// image by construction.
#include <array>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/segmentation_data.h"
#include "finetune/tasks/detection/detection_model.h"
#include "finetune/device.h"
#include "finetune/training_loop.h"
#include "preprocess/contract.h"

namespace graft::finetune {

// The detector a run config describes: its backbone, classes - 1 object classes, and the
// detection block's fpn_channels.
DetectionModel build_detector(const RunConfig& config);
DetectionDecodeOptions decode_options(const RunConfig& config);

// How a prepared image is cut for detection: windows of size_xyz voxels overlapping by
// overlap_fraction, or one pass when the image fits in a window.
struct DetectionWindow {
  std::array<std::int64_t, 3> size_xyz{1 << 20, 1 << 20, 1 << 20};  // whole image by default
  double overlap_fraction = 0.5;
  std::function<void(double fraction_done)> progress;  // optional, after each window
};

// The run's window: detection.window_size, or twice data.patch_size when that is empty (an
// object as wide as a training patch is then whole in some window), and predict.overlap.
DetectionWindow detection_window(const RunConfig& config);

// Detections on one prepared image (C, Z, Y, X on the Plan's grid), in its continuous index
// space. An image larger than the window is detected window by window; each window keeps the
// detections centred in its core (see window_cores), then NMS and max_detections apply to all.
std::vector<io::Box> detect_image(DetectionModelImpl& model, const io::Image& image, const DetectionDecodeOptions& options,
                                  const DetectionWindow& window = {});

// The core of each window along one axis, in continuous index: neighbouring windows split their
// overlap at its middle, and the first and last cores reach to infinity, so the cores partition
// the axis and each lies at least half the overlap inside its window's edges.
std::vector<std::array<double, 2>> window_cores(const std::vector<std::int64_t>& starts, std::int64_t window);

// Validation metrics of a detector on prepared cases against their reference boxes
// (references[i] for cases[i], on its grid): "val_froc" (LUNA16's average sensitivity),
// "val_map", "val_map_50", "val_completeness" and "val_purity" (IoU 0.5, score 0.5).
std::map<std::string, double> detection_validation(DetectionModelImpl& model,
                                                   const std::vector<datasets::PreparedCase>& cases,
                                                   const std::vector<std::vector<io::Box>>& references,
                                                   const DetectionDecodeOptions& options,
                                                   const DetectionWindow& window = {});

// Trains as the resolved config says, through the shared loop; the metric is val_froc for 3D
// backbones and val_map_50 for 2D ones.
TrainResult train_detector_prepared(const RunConfig& config, const std::vector<datasets::PreparedCase>& train_cases,
                                    const std::vector<datasets::PreparedCase>& val_cases,
                                    const std::vector<TrainEventSink>& sinks, bool resume);
TrainResult train_detector(const RunConfig& config, const std::vector<TrainEventSink>& sinks, bool resume);

// A trained detector from its model folder, for `graft predict`: each image goes through the saved Plan, is detected in the run's windows, and its boxes
// come back on the image's own grid.
class Detector {
 public:
  // The model runs on `target.device` at `target.precision` (autocast for the forward passes).
  explicit Detector(const ModelFolder& model_folder, const ComputeTarget& target = {});
  std::vector<io::Box> detect(const io::Image& image, const std::string& source);
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  RunConfig config_;
  preprocess::Contract contract_;
  std::vector<std::string> class_names_;
  DetectionModel model_{nullptr};
  Precision precision_ = Precision::kFloat32;
};

}  // namespace graft::finetune
