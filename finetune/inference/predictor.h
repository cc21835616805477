#pragma once

#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "finetune/device.h"
#include "io/image_file.h"
#include "finetune/model_folder.h"
#include "finetune/tasks/segmentation/segmentation_model.h"
#include "preprocess/contract.h"
#include "preprocess/plan.h"

namespace graft::finetune {

struct PredictOptions {
  double overlap_fraction = -1;  // < 0: the model's own setting (config predict.overlap)
  bool mirror = false;
  bool write_probabilities = false;  // also OUT_probabilities.nii.gz (f32, one channel per class)
  std::string probabilities_path;    // where the probabilities go instead; implies writing them
  bool write_plan = true;            // OUT.plan.json beside the prediction
  bool anonymize = false;            // a DICOM SEG or RTSTRUCT output is de-identified (PS3.15 basic profile)
  // A DICOM SEG (OUT.dcm) or RTSTRUCT (OUT.rtstruct.dcm) output references this series,
  // FOLDER[#SERIES]; empty: the input, which must then be DICOM.
  std::string reference_dicom;
  bool cloud_optimized = false;      // a raster's prediction is written as a COG
  io::DicomReadOptions dicom;        // how a DICOM input is read (gantry tilt correction)
  std::function<void(double)> progress;
};

// A prediction on the input's own grid, with the Plan that produced it.
struct Prediction {
  io::Image labels;                         // u8 label map
  std::optional<io::Image> probabilities;   // f32, one channel per class, when asked for
  preprocess::Plan plan;
};

// A segmentation model folder ready to segment files. The Contract saved with the model is used
// as it is, so a prediction months later repeats the training run's preprocessing exactly.
class Predictor {
 public:
  // The model runs on `target.device` at `target.precision` (autocast for the forward passes).
  explicit Predictor(const ModelFolder& model_folder, const ComputeTarget& target = {});

  // Reads `input`, applies the Plan, runs sliding-window inference, maps the labels back onto the
  // input's grid and writes them to `output` (.nii, .nii.gz, .nrrd) with the input's geometry.
  // A 2D model on a GDAL raster streams it tile by tile instead (predict_scene) into a GeoTIFF.
  void predict_file(const std::string& input, const std::string& output, const PredictOptions& options);

  // The same steps on an image in memory (the desktop app's overlay): Plan, sliding window, labels
  // mapped back onto the image's grid. Probabilities are kept when options ask to write them.
  Prediction predict(const io::Image& image, const PredictOptions& options = {});

  const RunConfig& config() const { return config_; }


 private:
  RunConfig config_;
  preprocess::Contract contract_;
  SegmentationModel model_{nullptr};
  Precision precision_ = Precision::kFloat32;
};

}  // namespace graft::finetune
