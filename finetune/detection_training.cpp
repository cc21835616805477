#include "finetune/detection_training.h"

#include <algorithm>
#include <cstring>

#include "backbones/factory.h"
#include "datasets/image_tensor.h"
#include "finetune/detection_metrics.h"
#include "finetune/run_config.h"
#include "finetune/trainer.h"
#include "preprocess/plan.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

// Boxes of each batch item from its label patch (B, D, H, W) int64.
std::vector<std::vector<io::Box>> boxes_of_batch(const torch::Tensor& labels) {
  std::vector<std::vector<io::Box>> boxes;
  const torch::Tensor bytes = labels.to(torch::kUInt8).contiguous();
  for (std::int64_t b = 0; b < bytes.size(0); ++b) {
    io::Geometry grid;
    grid.size_xyz = {bytes.size(3), bytes.size(2), bytes.size(1)};
    io::Image patch(io::DType::kU8, 1, grid);
    std::memcpy(patch.bytes(), bytes[b].data_ptr<std::uint8_t>(), patch.byte_count());
    boxes.push_back(io::boxes_from_labels(patch));
  }
  return boxes;
}

}  // namespace

DetectionModel build_detector(const nlohmann::json& config) {
  auto backbone = backbones::create_backbone(config["backbone"], config["in_channels"].get<int>());
  const int classes = config["classes"].get<int>() - 1;
  return DetectionModel(backbone, classes, config["detection"]["fpn_channels"].get<std::int64_t>());
}

DetectionDecodeOptions decode_options(const nlohmann::json& config) {
  const nlohmann::json& detection = config["detection"];
  DetectionDecodeOptions options;
  options.score_threshold = detection["score_threshold"];
  options.nms_iou = detection["nms_iou"];
  options.max_detections = detection["max_detections"];
  return options;
}

std::vector<io::Box> detect_image(DetectionModelImpl& model, const io::Image& image, const DetectionDecodeOptions& options) {
  std::int64_t multiple = 1;
  for (const auto& level : model.backbone().feature_info()) multiple = std::max(multiple, level.stride);
  torch::Tensor input = datasets::image_to_tensor(image).unsqueeze(0);  // (1, C, Z, Y, X)
  const bool planar = model.spatial_dims() == 2;
  std::vector<std::int64_t> padding;  // F::pad order: last axis first
  for (int axis = 4; axis >= (planar ? 3 : 2); --axis) {
    const std::int64_t length = input.size(axis);
    padding.push_back(0);
    padding.push_back((multiple - length % multiple) % multiple);
  }
  const torch::Tensor padded = torch::constant_pad_nd(input, padding, 0.0);
  torch::NoGradGuard no_grad;
  model.eval();
  const DetectionOutput output = model.forward(padded);
  std::vector<io::Box> boxes = decode_detections(output, input.sizes(), options)[0];
  return boxes;
}

std::map<std::string, double> detection_validation(DetectionModelImpl& model,
                                                   const std::vector<datasets::PreparedCase>& cases,
                                                   const DetectionDecodeOptions& options) {
  std::vector<DetectionCase> evaluated;
  for (const auto& prepared : cases) {
    DetectionCase c;
    c.references = io::boxes_from_labels(prepared.labels);
    c.detections = detect_image(model, prepared.image, options);
    evaluated.push_back(std::move(c));
  }
  const auto coco = coco_map(evaluated);
  const auto found = froc(evaluated);
  const auto completeness = completeness_purity(evaluated, 0.5, 0.5);
  return {{"val_froc", found.average_sensitivity},
          {"val_map", coco.at("map")},
          {"val_map_50", coco.at("map_50")},
          {"val_completeness", completeness.completeness},
          {"val_purity", completeness.purity}};
}

TrainResult train_detector_prepared(const nlohmann::json& config, const std::vector<datasets::PreparedCase>& train_cases,
                                    const std::vector<datasets::PreparedCase>& val_cases,
                                    const std::vector<TrainEventSink>& sinks, bool resume) {
  if (train_cases.empty()) throw Error("no training cases (every case went to validation?)");
  const std::uint64_t seed = seed_run(config);
  DetectionModel model = build_detector(config);
  TrainingTask task;
  start_run_folder(config, model->backbone(), task);
  const auto loader = patch_loader(config, train_cases, seed);
  const DetectionDecodeOptions options = decode_options(config);
  describe_patch_task(task, config, *model, model->backbone(), model->head());
  const bool planar = model->spatial_dims() == 2;
  task.metric = planar ? "val_map_50" : "val_froc";
  task.metric_label = planar ? "validation mAP@0.5" : "validation FROC";
  task.start_epoch = [&](int epoch) { loader->start_epoch(epoch); };
  task.next_loss = [&] {
    datasets::Batch batch = loader->next();
    return detection_loss(model->forward(batch.image), boxes_of_batch(batch.labels));
  };
  if (!val_cases.empty()) {
    task.validate = [&] { return detection_validation(*model, val_cases, options); };
  }
  return run_training(config, task, sinks, resume);
}

TrainResult train_detector(const nlohmann::json& config, const std::vector<TrainEventSink>& sinks, bool resume) {
  const CaseSplits splits = read_case_splits(config);
  return train_detector_prepared(config, splits.train, splits.val, sinks, resume);
}

Detector::Detector(const std::string& model_folder) {
  config_ = read_json_file(model_folder + "/config.json");
  if (config_.value("task", "") != "detection") throw Error(model_folder + "/config.json: field 'task' is not 'detection'");
  contract_ = preprocess::contract_from_json(read_json_file(model_folder + "/contract.json"), model_folder + "/contract.json");
  class_names_ = config_["class_names"].get<std::vector<std::string>>();
  model_ = build_detector(config_);
  load_best_weights(*model_, model_folder);
}

std::vector<io::Box> Detector::detect(const io::Image& image, const std::string& source) {
  datasets::refuse_nan_voxels(image, source);
  const preprocess::Plan plan = preprocess::make_plan(contract_, image, run_plan_options(config_, config_["seed"]));
  std::vector<io::Box> boxes = detect_image(*model_, preprocess::apply(plan, image), decode_options(config_));
  for (io::Box& box : boxes) box = io::map_box(box, plan.output_geometry, plan.input_geometry);
  return boxes;
}

}  // namespace graft::finetune
