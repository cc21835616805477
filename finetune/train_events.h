#pragma once

// Training progress as one stream of events, without LibTorch, so front ends (the desktop app's
// widgets) can read it without compiling LibTorch's headers.
#include <functional>
#include <map>
#include <string>

namespace graft::finetune {

// One stream of training progress. The terminal progress bar, the JSON-lines log, the metrics
// CSV and the GUI's chart all read these.
struct TrainEvent {
  // "weights", "epoch_start", "step", "epoch_end", "checkpoint", "early_stop", "cancelled", "done"
  std::string kind;
  int epoch = 0;
  int step = 0;
  int steps_per_epoch = 0;
  int epochs = 0;
  double loss = 0.0;
  double learning_rate = 0.0;
  double seconds = 0.0;                   // since the run (or resume) started
  std::map<std::string, double> metrics;  // "train_loss", "val_dice", "val_accuracy", ...
  std::string path;                       // for "checkpoint"
  std::string note;                       // for "weights": what loading the pretrained weights did
};
using TrainEventSink = std::function<void(const TrainEvent&)>;

// Thrown by a TrainEventSink on a "step" event to stop a run early (the GUI's Cancel, the CLI's
// Ctrl-C): the loop saves checkpoint.pt after that step, emits "cancelled" and returns with
// TrainResult::cancelled set, and a resumed run continues with the next batch.
struct TrainingCancelled {};

}  // namespace graft::finetune
