#include "finetune/tasks/detection/detection_training.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "backbones/factory.h"
#include "datasets/image_tensor.h"
#include "finetune/tasks/detection/detection_metrics.h"
#include "finetune/device.h"
#include "finetune/run_config.h"
#include "finetune/inference/sliding_window.h"
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

DetectionModel build_detector(const RunConfig& config) {
  auto backbone = backbones::create_backbone(config.backbone, config.in_channels);
  const int classes = config.classes - 1;
  return DetectionModel(backbone, classes, config.detection.fpn_channels);
}

DetectionDecodeOptions decode_options(const RunConfig& config) {
  DetectionDecodeOptions options;
  options.score_threshold = config.detection.score_threshold;
  options.nms_iou = config.detection.nms_iou;
  options.max_detections = config.detection.max_detections;
  return options;
}

namespace {

// Detections on one (1, C, Z, Y, X) block, in its own continuous index space: the block is padded
// at the far end of each axis to a multiple of the backbone's coarsest stride.
std::vector<io::Box> detect_block(DetectionModelImpl& model, const torch::Tensor& block,
                                  const DetectionDecodeOptions& options) {
  std::int64_t multiple = 1;
  for (const auto& level : model.backbone().feature_info()) multiple = std::max(multiple, level.stride);
  const bool planar = model.spatial_dims() == 2;
  std::vector<std::int64_t> padding;  // F::pad order: last axis first
  for (int axis = 4; axis >= (planar ? 3 : 2); --axis) {
    const std::int64_t length = block.size(axis);
    padding.push_back(0);
    padding.push_back((multiple - length % multiple) % multiple);
  }
  const DetectionOutput output = model.forward(to_device(torch::constant_pad_nd(block, padding, 0.0), device_of(model)));
  return decode_detections(output, block.sizes(), options)[0];
}

}  // namespace

std::vector<std::array<double, 2>> window_cores(const std::vector<std::int64_t>& starts, std::int64_t window) {
  const double infinity = std::numeric_limits<double>::infinity();
  std::vector<std::array<double, 2>> cores;
  for (std::size_t i = 0; i < starts.size(); ++i) {
    // Window i spans [start - 0.5, start + window - 0.5); neighbours split their overlap in half.
    const double lower = i == 0 ? -infinity : 0.5 * (starts[i] + starts[i - 1] + window) - 0.5;
    const double upper = i + 1 == starts.size() ? infinity : 0.5 * (starts[i + 1] + starts[i] + window) - 0.5;
    cores.push_back({lower, upper});
  }
  return cores;
}

DetectionWindow detection_window(const RunConfig& config) {
  DetectionWindow window;
  const std::vector<std::int64_t>& size = config.detection.window_size;
  const auto patch = config.data.patch_size;
  if (!size.empty() && size.size() != 3) {
    throw Error("detection.window_size must be [] or three sizes (x, y, z)");
  }
  for (int a = 0; a < 3; ++a) {
    window.size_xyz[a] = size.empty() ? (patch[a] == 1 ? 1 : 2 * patch[a]) : size[a];
    if (window.size_xyz[a] < 1) throw Error("detection.window_size: every size must be at least 1");
  }
  window.overlap_fraction = config.predict.overlap;
  if (window.overlap_fraction < 0 || window.overlap_fraction >= 1) throw Error("predict.overlap must be in [0, 1)");
  return window;
}

std::vector<io::Box> detect_image(DetectionModelImpl& model, const io::Image& image, const DetectionDecodeOptions& options,
                                  const DetectionWindow& window) {
  const torch::Tensor input = datasets::image_to_tensor(image).unsqueeze(0);  // (1, C, Z, Y, X)
  torch::NoGradGuard no_grad;
  model.eval();
  const auto& size = image.geometry().size_xyz;
  bool whole = true;
  for (int a = 0; a < 3; ++a) whole &= size[a] <= window.size_xyz[a];
  if (whole) return detect_block(model, input, options);

  // Each window keeps the detections whose centre lies in its core, so an object no wider than
  // the overlap is kept once, from a window that holds it whole; NMS then settles the rest.
  std::array<std::vector<std::int64_t>, 3> starts;
  std::array<std::vector<std::array<double, 2>>, 3> cores;
  for (int a = 0; a < 3; ++a) {
    const std::int64_t extent = std::min(size[a], window.size_xyz[a]);
    starts[a] = window_starts(size[a], extent, window.overlap_fraction);
    cores[a] = window_cores(starts[a], extent);
  }
  DetectionDecodeOptions per_window = options;
  per_window.max_detections = std::numeric_limits<int>::max();
  const std::int64_t windows = static_cast<std::int64_t>(starts[0].size() * starts[1].size() * starts[2].size());
  std::int64_t done = 0;
  std::vector<io::Box> kept;
  for (std::size_t k = 0; k < starts[2].size(); ++k) {
    for (std::size_t j = 0; j < starts[1].size(); ++j) {
      for (std::size_t i = 0; i < starts[0].size(); ++i) {
        const std::array<std::size_t, 3> index{i, j, k};
        torch::Tensor block = input;
        for (int a = 0; a < 3; ++a) {
          block = block.narrow(4 - a, starts[a][index[a]], std::min(size[a], window.size_xyz[a]));
        }
        for (io::Box box : detect_block(model, block.contiguous(), per_window)) {
          bool in_core = true;
          for (int a = 0; a < 3; ++a) {
            const double offset = static_cast<double>(starts[a][index[a]]);
            box.start_xyz[a] += offset;
            box.end_xyz[a] += offset;
            const double centre = 0.5 * (box.start_xyz[a] + box.end_xyz[a]);
            in_core &= centre >= cores[a][index[a]][0] && centre < cores[a][index[a]][1];
          }
          if (in_core) kept.push_back(box);
        }
        if (window.progress) window.progress(static_cast<double>(++done) / windows);
      }
    }
  }
  kept = non_max_suppression(std::move(kept), options.nms_iou);
  if (static_cast<int>(kept.size()) > options.max_detections) kept.resize(options.max_detections);
  return kept;
}

std::map<std::string, double> detection_validation(DetectionModelImpl& model,
                                                   const std::vector<datasets::PreparedCase>& cases,
                                                   const std::vector<std::vector<io::Box>>& references,
                                                   const DetectionDecodeOptions& options,
                                                   const DetectionWindow& window) {
  std::vector<DetectionCase> evaluated;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    DetectionCase c;
    c.references = references.at(i);
    c.detections = detect_image(model, cases[i].image, options, window);
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

TrainResult train_detector_prepared(const RunConfig& config, const std::vector<datasets::PreparedCase>& train_cases,
                                    const std::vector<datasets::PreparedCase>& val_cases,
                                    const std::vector<TrainEventSink>& sinks, bool resume) {
  if (train_cases.empty()) throw Error("no training cases (every case went to validation?)");
  const std::uint64_t seed = seed_run(config);
  DetectionModel model = build_detector(config);
  TrainingTask task;
  start_run_folder(config, *model, model->backbone(), task);
  const auto loader = patch_loader(config, train_cases, seed);
  const DetectionDecodeOptions options = decode_options(config);
  const DetectionWindow window = detection_window(config);
  describe_patch_task(task, config, *model, model->backbone(), model->head(), *loader);
  const bool planar = model->spatial_dims() == 2;
  task.metric = planar ? "val_map_50" : "val_froc";
  task.metric_label = planar ? "validation mAP@0.5" : "validation FROC";
  task.next_loss = [&] {
    datasets::Batch batch = loader->next();
    return detection_loss(model->forward(to_device(batch.image, device_of(*model))), boxes_of_batch(batch.labels));
  };
  // The reference boxes (connected components) do not change between epochs.
  std::vector<std::vector<io::Box>> val_references;
  for (const auto& prepared : val_cases) val_references.push_back(io::boxes_from_labels(prepared.labels));
  if (!val_cases.empty()) {
    task.validate = [&] { return detection_validation(*model, val_cases, val_references, options, window); };
  }
  return run_training(config, task, sinks, resume);
}

TrainResult train_detector(const RunConfig& config, const std::vector<TrainEventSink>& sinks, bool resume) {
  const CaseSplits splits = read_case_splits(config);
  return train_detector_prepared(config, splits.train, splits.val, sinks, resume);
}

Detector::Detector(const ModelFolder& model_folder, const ComputeTarget& target) : precision_(target.precision) {
  model_folder.require_task(Task::kDetection);
  config_ = model_folder.config();
  contract_ = model_folder.contract();
  class_names_ = model_folder.class_names();
  model_ = build_detector(config_);
  load_best_weights(*model_, model_folder.path());
  model_->to(target.device);
}

std::vector<io::Box> Detector::detect(const io::Image& image, const std::string& source) {
  AutocastScope autocast(device_of(*model_), precision_);
  datasets::refuse_nan_voxels(image, source);
  const preprocess::Plan plan = preprocess::make_plan(contract_, image, run_plan_options(config_, config_.seed));
  std::vector<io::Box> boxes = detect_image(*model_, preprocess::apply(plan, image), decode_options(config_), detection_window(config_));
  for (io::Box& box : boxes) box = io::map_box(box, plan.output_geometry, plan.input_geometry);
  return boxes;
}

}  // namespace graft::finetune
