#include "finetune/inference/predictor.h"

#include <filesystem>
#include <fstream>

#include "backbones/checkpoint_file.h"
#include "backbones/weight_loading.h"
#include "finetune/inference/sliding_window.h"
#include "finetune/run_config.h"
#include "finetune/inference/scene_prediction.h"
#include "finetune/trainer.h"
#include "finetune/training_loop.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/dicom/dicom_seg.h"
#include "io/segment_names.h"
#include "io/dicom/dicom_series.h"
#include "io/dicom/rtstruct.h"
#include "io/label_file.h"
#include "io/image_file.h"
#include "preprocess/plan.h"

namespace graft::finetune {
Predictor::Predictor(const ModelFolder& model_folder, const ComputeTarget& target) : precision_(target.precision) {
  model_ = load_segmentation_model(model_folder, target.device);
  config_ = model_folder.config();
  contract_ = model_folder.contract();
}

void Predictor::predict_file(const std::string& input, const std::string& output, const PredictOptions& options) {
  // A DICOM SEG output references the instances the input was assembled from, so a DICOM input
  // is read together with that identity: one discovery pass, not a second one at write time.
  if (model_->backbone().spatial_dims() == 2 && io::sniff_format(input) == io::FileFormat::kGdal) {
    if (io::format_from_extension(output) != io::FileFormat::kGdal) {
      throw UsageError(output + ": a raster's prediction is written as GeoTIFF; name the output .tif");
    }
    // A scene streams tile by tile: no mirrored passes and no probability maps are kept.
    if (options.mirror) throw UsageError(input + ": --tta does not apply to a raster scene predicted tile by tile");
    if (options.write_probabilities || !options.probabilities_path.empty()) {
      throw UsageError(input + ": --probabilities does not apply to a raster scene predicted tile by tile");
    }
    ScenePredictOptions scene;
    scene.tile_px = config_.data.patch_size[0];
    scene.overlap_fraction = options.overlap_fraction >= 0 ? options.overlap_fraction
                                                           : config_.predict.overlap;
    scene.write.cloud_optimized = options.cloud_optimized;
    scene.progress = options.progress;
    AutocastScope autocast(device_of(*model_), precision_);
    predict_scene(*model_, contract_, run_plan_options(config_, config_.seed), input, output, scene);
    return;
  }
  // A DICOM SEG or RTSTRUCT output references the series the labels lie on.
  const bool dicom_seg_output = io::is_dicom_seg_path(output);
  const bool from_reference = dicom_seg_output && !options.reference_dicom.empty();
  io::DicomVolume dicom;
  if (dicom_seg_output && !from_reference) {
    const io::DicomPath split = io::split_dicom_path(input);
    dicom = io::read_dicom(split.path, split.series, options.dicom);
    // A DICOM SEG's frames lie on its source images; a tilt-corrected volume's grid is not theirs.
    if (dicom.image.metadata().gantry_tilt_corrected_degrees) {
      throw UsageError(output + ": a DICOM SEG or RTSTRUCT must lie on the grid of its source images, and the "
                                "tilt-corrected volume does not; write the prediction as NIfTI (.nii.gz) instead");
    }
  }
  if (from_reference) dicom.source = io::dicom_volume_source(options.reference_dicom);
  const io::Image image =
      dicom_seg_output && !from_reference ? std::move(dicom.image) : io::read(input, options.dicom);
  Prediction prediction = predict(image, options);
  if (from_reference) {
    // The input is the series saved another way (dcm2niix's NIfTI, say): the same voxel centres.
    prediction.labels = io::labels_onto_grid(prediction.labels, dicom.source.geometry, input, options.reference_dicom);
  }
  io::Image& labels = prediction.labels;
  // Every writer that names segments (DICOM SEG, .seg.nrrd, RTSTRUCT) takes the model's names.
  labels.metadata().segments = io::named_segments(labels, io::foreground_class_names(config_.class_names, config_.classes));
  if (dicom_seg_output) {
    io::DicomSegOptions seg;
    seg.anonymize = options.anonymize;
    seg.algorithm_name = "graft " + config_.backbone;
    if (io::is_rtstruct_path(output)) {
      io::RtStructWriteOptions rtstruct;
      rtstruct.anonymize = options.anonymize;
      io::write_rtstruct(labels, dicom.source, output, rtstruct);
    } else {
      io::write_dicom_seg(labels, dicom.source, io::segments_for_labels(labels, {}), output, seg);
    }
  } else {
    io::write(labels, output);
  }
  const std::string stem = io::strip_image_extension(output);
  if (prediction.probabilities) {
    io::write(*prediction.probabilities, options.probabilities_path.empty() ? stem + "_probabilities.nii.gz"
                                                                            : options.probabilities_path);
  }
  if (options.write_plan) {
    io::write_text_atomically(stem + ".plan.json", preprocess::to_json(prediction.plan).dump(2) + "\n");
  }
}

Prediction Predictor::predict(const io::Image& image, const PredictOptions& options) {
  Prediction prediction;
  prediction.plan = preprocess::make_plan(contract_, image, run_plan_options(config_, config_.seed));
  const io::Image prepared = preprocess::apply(prediction.plan, image);
  SlidingWindowOptions window;
  const auto patch = config_.data.patch_size;
  window.patch_xyz = {patch[0], patch[1], patch[2]};
  window.overlap_fraction = options.overlap_fraction >= 0 ? options.overlap_fraction
                                                          : config_.predict.overlap;
  window.mirror = options.mirror || config_.predict.mirror;
  window.mirror_axes_xyz = {false, false, false};
  for (int axis : config_.predict.mirror_axes) {
    if (axis < 0 || axis > 2) throw Error("predict.mirror_axes: " + std::to_string(axis) + " is not an axis (0 x, 1 y, 2 z)");
    window.mirror_axes_xyz[axis] = true;
  }
  window.keep_probabilities = options.write_probabilities || !options.probabilities_path.empty();
  window.progress = options.progress;
  window.precision = precision_;
  const SlidingWindowResult result = predict_sliding_window(*model_, prepared, window);
  prediction.labels = preprocess::invert(prediction.plan, result.labels, preprocess::PredictionKind::kLabels);
  prediction.labels.metadata() = io::Metadata{};
  prediction.labels.metadata().source_format = image.metadata().source_format;
  if (result.probabilities) {
    prediction.probabilities =
        preprocess::invert(prediction.plan, *result.probabilities, preprocess::PredictionKind::kProbabilities);
  }
  return prediction;
}

}  // namespace graft::finetune
