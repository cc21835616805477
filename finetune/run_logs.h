#pragma once

// A run folder's log files, each a sink of the training event stream like the terminal's progress
// bar and the desktop app's chart. No LibTorch.
#include <map>
#include <string>
#include <vector>

#include "finetune/train_events.h"

namespace graft::finetune {

// events.jsonl: every event but "step", one JSON object a line, flushed as it comes, so a killed
// run leaves every finished epoch logged. A resumed run appends.
TrainEventSink events_log_sink(const std::string& folder, bool resume);

// metrics.csv: epoch,train_loss,METRIC,learning_rate,seconds, then every other metric of the first
// "epoch_end" in metric_order (per-class Dice included), one row per "epoch_end"; a cell is empty
// for an epoch without that metric. A resumed run appends under the header it finds.
TrainEventSink metrics_table_sink(const std::string& folder, const std::string& metric,
                                  bool resume);

// Metric names with numbers in them sorted as numbers: val_dice_2 before val_dice_10.
bool metric_order(const std::string& a, const std::string& b);

// The epoch line's metrics: the validation metrics in metric_order, except that a family of more
// than `shown` per-class values (NAME_1, NAME_2, ...) is summed up as its worst and best `shown / 2`
// classes, each "NAME_N value". Every value stays in metrics.csv and events.jsonl.
std::string metrics_summary(const std::map<std::string, double>& metrics, std::size_t shown = 6);

// training.svg: the training loss and, once validated, `metric` per epoch, redrawn at every
// "epoch_end". A resumed run passes the curves it already has (NaN: an epoch without validation).
TrainEventSink training_plot_sink(const std::string& folder, const std::string& metric,
                                  const std::string& metric_label,
                                  std::vector<double> loss_per_epoch = {},
                                  std::vector<double> metric_per_epoch = {});

}  // namespace graft::finetune
