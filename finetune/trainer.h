#pragma once

#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "backbones/weight_loading.h"
#include "datasets/segmentation_data.h"
#include "finetune/model_folder.h"
#include "finetune/training_loop.h"
#include "finetune/tasks/segmentation/segmentation_model.h"
#include "preprocess/contract.h"
#include "preprocess/plan.h"

namespace graft::finetune {

// The effective Contract of a run: the backbone's, with data.contract's fields laid over it.
preprocess::Contract run_contract(const RunConfig& config);

// Sets the run's compute threads and LibTorch's seed, before its model is built; returns the seed.
std::uint64_t seed_run(const RunConfig& config);

// Loads config.weights into `backbone` (the report goes to task.notes), moves `model` to
// train.device, and writes contract.json into config.output, which it creates.
void start_run_folder(const RunConfig& config, torch::nn::Module& model, backbones::BackboneImpl& backbone,
                      TrainingTask& task);

// The Plan options a run config asks for (data.band_names, data.fill_missing_bands).
preprocess::PlanOptions run_plan_options(const RunConfig& config, std::uint64_t seed);

// One line on stderr: how many prepared cases came from the cache and how many were stored.
void report_cache_use(const datasets::PreprocessedCache& cache);

// Builds the backbone + head a run config describes (weights untouched).
SegmentationModel build_model(const RunConfig& config);
// A segmentation model folder's network with its best weights, strictly (a model folder must match
// its own config exactly), in eval mode on `device`.
SegmentationModel load_segmentation_model(const ModelFolder& folder, torch::Device device);
// Whether the run's network comes from config.network (an imported nnU-Net) rather than from a
// registered backbone and a head; its Contract is then data.contract, whole.
bool uses_network_description(const RunConfig& config);

// The manifest's labelled cases, prepared (through data.cache_dir when set) and split into
// training and validation (test cases are left out); errors name the manifest and the case.
struct CaseSplits {
  std::vector<datasets::PreparedCase> train, val;
};
CaseSplits read_case_splits(const RunConfig& config);

// Patch size, foreground fraction and augmentation from data.*; errors say what a 2D backbone needs.
datasets::PatchOptions patch_options(const RunConfig& config);

// The patch loader data.* describes (batch size, batches per epoch, workers, prefetch) over
// `cases`, for every patch-trained task.
std::unique_ptr<datasets::BatchLoader> patch_loader(const RunConfig& config,
                                                    const std::vector<datasets::PreparedCase>& cases,
                                                    std::uint64_t seed);

// The parts of a TrainingTask every patch-trained task (segmentation, detection) fills alike:
// model, backbone and head, layer decay, steps per epoch, frozen epochs, and the loader's epoch
// start and batch skipping (the loader must outlive the run).
void describe_patch_task(TrainingTask& task, const RunConfig& config, torch::nn::Module& model,
                         backbones::BackboneImpl& backbone, torch::nn::Module& head, datasets::BatchLoader& loader);

// The conv_seg.* tensors of a checkpoint saved by MedicalNet's own training (beside its backbone)
// into graft's MedicalNet head, whose module names are MedicalNet's. Strict, except that a last
// layer for another number of classes is left at its initialisation, as a new classifier is.
// Loads init_from's weights into the whole model, strictly except for the class layers when the
// class count differs (they start afresh, with a note).
backbones::LoadReport load_initial_model(torch::nn::Module& model, const RunConfig& config);
backbones::LoadReport load_medicalnet_head(torch::nn::Module& head, const std::string& path, int classes);

// classes 0 ("from the data"): the labels of an nnU-Net dataset.json beside imagesTr/ (their names
// become class_names when those are unset), or else one more than the largest value in the
// training and validation label files. Region-based dataset.json labels are refused.
void infer_segmentation_classes(RunConfig& config);

// Trains a segmentation model as the resolved config says and writes a model folder at
// config.output (run_training's files, contract.json, model.safetensors at the best validation
// Dice). With resume, training continues from checkpoint.pt exactly where it stopped: batches
// depend only on (seed, epoch, index).
TrainResult train(const RunConfig& config, const std::vector<TrainEventSink>& sinks, bool resume);

// Same, on cases already prepared (the demo and tests use this to skip file I/O).
TrainResult train_prepared(const RunConfig& config, const std::vector<datasets::PreparedCase>& train_cases,
                           const std::vector<datasets::PreparedCase>& val_cases,
                           const std::vector<TrainEventSink>& sinks, bool resume);

// Mean foreground Dice of a model on prepared validation cases, per class (index 0 unused).
std::vector<double> validation_dice(SegmentationModelImpl& model, const std::vector<datasets::PreparedCase>& cases,
                                    const RunConfig& config);

}  // namespace graft::finetune
