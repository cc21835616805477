#include "finetune/run_task.h"

#include "finetune/tasks/classification/classification.h"
#include "finetune/tasks/detection/detection_training.h"
#include "finetune/tasks/mil/mil.h"
#include "finetune/trainer.h"
#include "io/error.h"

namespace graft::finetune {

TrainResult train_task(const RunConfig& config, const std::vector<TrainEventSink>& sinks, bool resume) {
  const std::string task = config.task;
  if (task == "segmentation") return train(config, sinks, resume);
  if (task == "detection" && config.classes == 0) {
    RunConfig resolved = config;
    infer_segmentation_classes(resolved);  // detection learns boxes of the label images' classes
    return train_detector(resolved, sinks, resume);
  }
  if (task == "classification") return train_classifier(config, sinks, resume);
  if (task == "mil") return train_mil(config, sinks, resume);
  if (task == "detection") return train_detector(config, sinks, resume);
  throw Error("task '" + task + "' is not one of segmentation, classification, mil, detection");
}

}  // namespace graft::finetune
