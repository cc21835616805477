#pragma once

// A run folder's log files, each a sink of the training event stream like the terminal's progress
// bar and the desktop app's chart. No LibTorch.
#include <string>
#include <vector>

#include "finetune/train_events.h"

namespace graft::finetune {

// events.jsonl: every event but "step", one JSON object a line, flushed as it comes, so a killed
// run leaves every finished epoch logged. A resumed run appends.
TrainEventSink events_log_sink(const std::string& folder, bool resume);

// metrics.csv: epoch,train_loss,METRIC,learning_rate,seconds, one row per "epoch_end" (METRIC empty
// for an epoch without validation). A resumed run appends.
TrainEventSink metrics_table_sink(const std::string& folder, const std::string& metric,
                                  bool resume);

// training.svg: the training loss and, once validated, `metric` per epoch, redrawn at every
// "epoch_end". A resumed run passes the curves it already has (NaN: an epoch without validation).
TrainEventSink training_plot_sink(const std::string& folder, const std::string& metric,
                                  const std::string& metric_label,
                                  std::vector<double> loss_per_epoch = {},
                                  std::vector<double> metric_per_epoch = {});

}  // namespace graft::finetune
