#include "finetune/training_loop.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backbones/batchnorm_mode.h"
#include "backbones/checkpoint_file.h"
#include "finetune/adapters.h"
#include "backbones/weight_loading.h"
#include "finetune/device.h"
#include "finetune/distributed.h"
#include "finetune/model_folder.h"
#include "finetune/run_logs.h"
#include "io/atomic_file.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

double schedule_factor(const TrainSettings& train, std::int64_t step, std::int64_t total_steps, int epoch) {
  const std::string schedule = train.schedule;
  const double progress = total_steps > 0 ? static_cast<double>(step) / total_steps : 0.0;
  if (schedule == "poly") return std::pow(1.0 - std::min(progress, 0.999999), train.poly_power);
  if (schedule == "cosine") return 0.5 * (1.0 + std::cos(M_PI * progress));
  if (schedule == "exponential") return std::pow(train.exponential_gamma, epoch);
  if (schedule == "constant") return 1.0;
  throw Error("unknown train.schedule '" + schedule + "' (expected poly, cosine, exponential or constant)");
}

struct Optimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> base_lr;  // per parameter group
};

Optimizer make_optimizer(const TrainingTask& task, const TrainSettings& train) {
  const double decay = train.weight_decay;
  std::vector<ParameterGroup> parameter_sets = parameter_groups(task, train);
  Optimizer result;
  const std::string name = train.optimizer;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto& set : parameter_sets) {
    result.base_lr.push_back(set.lr);
    if (name == "sgd") {
      groups.emplace_back(set.parameters, std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(set.lr).momentum(train.momentum).weight_decay(decay)));
    } else if (name == "adamw") {
      groups.emplace_back(set.parameters, std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(set.lr).weight_decay(decay)));
    } else {
      throw Error("unknown train.optimizer '" + name + "' (expected sgd or adamw)");
    }
  }
  const double lr = train.lr;
  if (name == "sgd") {
    result.optimizer = std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(lr));
  } else {
    result.optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(lr));
  }
  return result;
}

void set_learning_rates(Optimizer& optimizer, double factor) {
  auto& groups = optimizer.optimizer->param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(optimizer.base_lr[g] * factor);
}

// NaN is not JSON; an epoch without validation is stored as null and read back as NaN.
nlohmann::json to_json_with_nulls(const std::vector<double>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (double value : values) out.push_back(std::isnan(value) ? nlohmann::json(nullptr) : nlohmann::json(value));
  return out;
}

std::vector<double> from_json_with_nulls(const nlohmann::json& values) {
  std::vector<double> out;
  for (const auto& value : values) out.push_back(value.is_null() ? NAN : value.get<double>());
  return out;
}

}  // namespace

std::vector<ParameterGroup> parameter_groups(const TrainingTask& task, const TrainSettings& train) {
  const double lr = train.lr, multiplier = train.head_lr_multiplier;
  const double layer_decay = train.layer_decay;
  if (layer_decay <= 0.0 || layer_decay > 1.0) throw Error("train.layer_decay must be in (0, 1] (1 turns it off)");
  std::vector<ParameterGroup> groups;
  const bool by_layer = layer_decay < 1.0 && task.layer_of && task.layer_count > 0;
  // With adapters, the frozen base weights stay out of the optimizer and its state.
  const bool adapted = has_adapters(*task.backbone);
  std::vector<std::pair<std::string, torch::Tensor>> tuned;
  for (const auto& item : task.backbone->named_parameters()) {
    if (!adapted || is_adapter_parameter(item.key())) tuned.emplace_back(item.key(), item.value());
  }
  if (!by_layer) {
    ParameterGroup backbone{{}, {}, lr};
    for (const auto& item : tuned) {
      backbone.names.push_back(item.first);
      backbone.parameters.push_back(item.second);
    }
    groups.push_back(std::move(backbone));
  } else {
    // BEiT's layer-wise decay: layer l of L gets lr * decay^(L - l); parameters outside the
    // numbered layers (the final norm) count as layer L.
    std::map<int, ParameterGroup> by_id;
    for (const auto& item : tuned) {
      int layer = task.layer_of(item.first);
      if (layer < 0 || layer > task.layer_count) layer = task.layer_count;
      auto& group = by_id[layer];
      group.lr = lr * std::pow(layer_decay, task.layer_count - layer);
      group.names.push_back(item.first);
      group.parameters.push_back(item.second);
    }
    for (auto& [layer, group] : by_id) groups.push_back(std::move(group));
  }
  ParameterGroup head{{}, {}, lr * multiplier};
  for (const auto& item : task.head->named_parameters()) {
    head.names.push_back(item.key());
    head.parameters.push_back(item.value());
  }
  groups.push_back(std::move(head));
  return groups;
}

namespace {

// Where a run stands between steps: what checkpoint.pt holds besides the weights.
struct RunPosition {
  int next_epoch = 0;
  int next_step = 0;
  double epoch_loss_sum = 0.0;
  int epochs_without_improvement = 0;
};

// The loop's moving parts, so each piece of a step is a function of its own.
struct LoopState {
  TrainingTask& task;
  Optimizer optimizer;
  LossScaler scaler;
  ComputeTarget target;
  ProcessGroup* group;  // null in a one-process run
  std::string checkpoint_path;
};

RunPosition restore_checkpoint(LoopState& state, TrainResult& result) {
  const std::string& path = state.checkpoint_path;
  if (!fs::exists(path)) throw Error(path + ": nothing to resume from");
  torch::serialize::InputArchive archive;
  archive.load_from(path, state.target.device);  // a GPU run's checkpoint resumes on the CPU too
  torch::serialize::InputArchive model_archive, optimizer_archive;
  archive.read("model", model_archive);
  archive.read("optimizer", optimizer_archive);
  state.task.model->load(model_archive);
  state.optimizer.optimizer->load(optimizer_archive);
  c10::IValue stored;
  archive.read("state", stored);
  const auto saved = nlohmann::json::parse(stored.toStringRef());
  if (saved.value("metric", state.task.metric) != state.task.metric) {
    throw Error(path + ": field 'metric' is " + saved["metric"].dump() + ", this run tracks '" + state.task.metric +
                "' (a checkpoint of another task?)");
  }
  RunPosition position;
  position.next_epoch = saved["next_epoch"];
  position.next_step = saved.value("next_step", 0);
  position.epoch_loss_sum = saved.value("epoch_loss_sum", 0.0);
  position.epochs_without_improvement = saved["epochs_without_improvement"];
  result.best_val_metric = saved["best_val_metric"];
  result.best_epoch = saved["best_epoch"];
  result.val_metric_per_epoch = from_json_with_nulls(saved["val_metric_per_epoch"]);
  result.train_loss_per_epoch = saved["train_loss_per_epoch"].get<std::vector<double>>();
  state.scaler.restore(saved.value("loss_scale", state.scaler.scale()), saved.value("loss_scale_good_steps", 0));
  return position;
}

// checkpoint.pt: written beside, then renamed, so a kill never leaves a broken file.
void save_checkpoint(LoopState& state, const TrainResult& result, const RunPosition& position) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  state.task.model->save(model_archive);
  state.optimizer.optimizer->save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  const nlohmann::json saved{{"metric", state.task.metric},
                             {"next_epoch", position.next_epoch},
                             {"next_step", position.next_step},
                             {"epoch_loss_sum", position.epoch_loss_sum},
                             {"best_val_metric", result.best_val_metric},
                             {"best_epoch", result.best_epoch},
                             {"epochs_without_improvement", position.epochs_without_improvement},
                             {"val_metric_per_epoch", to_json_with_nulls(result.val_metric_per_epoch)},
                             {"train_loss_per_epoch", result.train_loss_per_epoch},
                             {"loss_scale", state.scaler.scale()},
                             {"loss_scale_good_steps", state.scaler.good_steps()}};
  archive.write("state", c10::IValue(saved.dump()));
  io::write_atomically(state.checkpoint_path, [&](const std::string& temporary) { write_archive(archive, temporary); });
}

// One optimizer step on the next batch; returns the global batch's mean loss.
double train_step(LoopState& state, double clip_norm, int epoch, int step) {
  state.optimizer.optimizer->zero_grad();
  torch::Tensor loss;
  {
    AutocastScope autocast(state.target.device, state.target.precision);
    loss = state.task.next_loss();
  }
  // A rank's loss is the mean over its shard; the shards are equal, so their mean is the global
  // batch's mean loss, as one process would report it.
  const double loss_value = state.group ? state.group->mean(loss.item<double>()) : loss.item<double>();
  if (!std::isfinite(loss_value)) {
    throw Error("training diverged at epoch " + std::to_string(epoch) + " step " + std::to_string(step) +
                " (loss is not finite); lower train.lr. The last good checkpoint is " + state.checkpoint_path);
  }
  state.scaler.scale_loss(loss).backward();
  std::vector<torch::Tensor> parameters;
  for (const auto& parameter : state.task.model->parameters()) {
    if (parameter.requires_grad()) parameters.push_back(parameter);
  }
  if (state.group) state.group->average_gradients(parameters);
  // fp16: a step whose gradients overflowed is skipped (the scale halves), as GradScaler does.
  // Every rank holds the same averaged gradients, so every rank skips the same steps.
  if (state.scaler.unscale_and_check(parameters)) {
    if (clip_norm > 0) torch::nn::utils::clip_grad_norm_(parameters, clip_norm);
    state.optimizer.optimizer->step();
    state.scaler.step_taken();
  }
  return loss_value;
}

// The task's validation metrics, added to the epoch's end event; NaN when it has none.
double validate_epoch(LoopState& state, TrainEvent& end) {
  if (!state.task.validate) return NAN;
  torch::NoGradGuard no_grad;
  AutocastScope autocast(state.target.device, state.target.precision);
  state.task.model->eval();
  const std::map<std::string, double> metrics = state.task.validate();
  if (metrics.empty()) return NAN;
  end.metrics.insert(metrics.begin(), metrics.end());
  return metrics.at(state.task.metric);
}

// Passes a step's event on; true when a sink asked to stop (on any rank: ranks stop together, at
// the same step, or one would wait forever in the next allreduce).
template <typename Emit>
bool cancelled_at(LoopState& state, Emit& emit, TrainEvent& event) {
  bool cancel = false;
  try {
    emit(event);
  } catch (const TrainingCancelled&) {
    cancel = true;
  }
  if (state.group) cancel = state.group->mean(cancel ? 1.0 : 0.0) > 0.0;
  return cancel;
}

}  // namespace

TrainResult run_training(const RunConfig& config, TrainingTask& task, const std::vector<TrainEventSink>& sinks,
                         bool resume) {
  const TrainSettings& train_settings = config.train;
  const std::string output = config.output;
  fs::create_directories(output);
  // Model folders from before these settings existed lack them.
  const ComputeTarget target = compute_target(train_settings.device,
                                              train_settings.precision, "train.device/precision");
  task.model->to(target.device);
  const backbones::BatchNormMode batchnorm =
      backbones::batchnorm_mode_from_name(train_settings.batchnorm, "train.batchnorm");
  const int conv_bn_modules = task.backbone ? backbones::set_batchnorm_mode(*task.backbone, batchnorm) : 0;
  if (conv_bn_modules == 0 && batchnorm != backbones::BatchNormMode::kTrain) {
    throw UsageError("train.batchnorm: " + train_settings.batchnorm + " needs convolution + BatchNorm pairs, and backbone " +
                     config.backbone + " has none (the ResNets have them)");
  }
  LoopState state{task, make_optimizer(task, train_settings), LossScaler(target.precision == Precision::kFloat16),
                  target, process_group(), run_checkpoint_path(output)};
  const int epochs = train_settings.epochs;
  const int batches = task.steps_per_epoch;
  if (batches < 1) throw Error("no training batches in an epoch");
  const std::int64_t total_steps = static_cast<std::int64_t>(epochs) * batches;
  TrainResult result;
  result.metric = task.metric;
  RunPosition position;
  if (resume) position = restore_checkpoint(state, result);

  // Data-parallel runs: every rank trains; rank 0 alone writes the run folder.
  const bool writer = is_writing_rank();
  std::vector<TrainEventSink> all_sinks;
  if (writer) {
    write_run_folder_config(output, config);
    all_sinks = {events_log_sink(output, resume), metrics_table_sink(output, task.metric, resume),
                 training_plot_sink(output, task.metric, task.metric_label, result.train_loss_per_epoch,
                                    result.val_metric_per_epoch)};
  }
  all_sinks.insert(all_sinks.end(), sinks.begin(), sinks.end());
  const auto started = std::chrono::steady_clock::now();
  auto emit = [&](TrainEvent& event) {
    event.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    event.epochs = epochs;
    event.steps_per_epoch = batches;
    for (const auto& sink : all_sinks) sink(event);
  };
  for (const auto& note : task.notes) {
    TrainEvent weights{"weights"};
    weights.note = note;
    emit(weights);
  }

  const double clip_norm = train_settings.grad_clip_norm;
  const int patience = train_settings.early_stopping_patience;
  const std::vector<torch::Tensor> tunable = tunable_parameters(*task.backbone);
  for (int epoch = position.next_epoch; epoch < epochs; ++epoch) {
    const bool frozen = epoch < task.frozen_epochs;
    for (auto parameter : tunable) parameter.set_requires_grad(!frozen);
    task.model->train();
    if (frozen) task.backbone->eval();  // a linear probe keeps the backbone's statistics too
    TrainEvent epoch_start{"epoch_start", epoch};
    emit(epoch_start);
    task.start_epoch(epoch);
    const bool resumed_epoch = epoch == position.next_epoch;
    const int first_step = resumed_epoch ? position.next_step : 0;
    for (int skipped = 0; skipped < first_step && task.skip_batch; ++skipped) task.skip_batch();
    double loss_sum = resumed_epoch ? position.epoch_loss_sum : 0.0, learning_rate = 0.0;
    for (int step = first_step; step < batches; ++step) {
      const std::int64_t global_step = static_cast<std::int64_t>(epoch) * batches + step;
      const double factor = schedule_factor(train_settings, global_step, total_steps, epoch);
      set_learning_rates(state.optimizer, factor);
      learning_rate = state.optimizer.base_lr[0] * factor;
      const double loss_value = train_step(state, clip_norm, epoch, step);
      loss_sum += loss_value;
      TrainEvent event{"step", epoch, step};
      event.loss = loss_value;
      event.learning_rate = learning_rate;
      if (cancelled_at(state, emit, event)) {
        // After the last step: validation is still to come.
        if (writer) save_checkpoint(state, result, {epoch, step + 1, loss_sum, position.epochs_without_improvement});
        TrainEvent cancelled{"cancelled", epoch, step};
        cancelled.path = state.checkpoint_path;
        emit(cancelled);
        result.cancelled = true;
        return result;
      }
    }
    const double train_loss = loss_sum / batches;
    result.train_loss_per_epoch.push_back(train_loss);
    TrainEvent end{"epoch_end", epoch};
    end.loss = train_loss;
    end.learning_rate = learning_rate;
    end.metrics["train_loss"] = train_loss;
    const double val_metric = validate_epoch(state, end);
    const bool validated = !std::isnan(val_metric);
    result.val_metric_per_epoch.push_back(val_metric);
    result.epochs_run = epoch + 1;
    if (!validated || val_metric > result.best_val_metric || result.best_epoch < 0) {
      result.best_val_metric = validated ? val_metric : 0.0;
      result.best_epoch = epoch;
      position.epochs_without_improvement = 0;
      if (writer) write_model_weights(*task.model, task.frozen_base, model_weights_path(output));
    } else {
      ++position.epochs_without_improvement;
    }
    emit(end);

    if (writer) save_checkpoint(state, result, {epoch + 1, 0, 0.0, position.epochs_without_improvement});
    TrainEvent saved{"checkpoint", epoch};
    saved.path = state.checkpoint_path;
    emit(saved);

    if (patience > 0 && position.epochs_without_improvement >= patience) {
      TrainEvent early_stop{"early_stop", epoch};
      emit(early_stop);
      break;
    }
  }
  TrainEvent done{"done", result.epochs_run};
  emit(done);
  return result;
}

void write_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
  int write_errno = 0;
  // Reports every byte as written, so LibTorch's zip writer never throws from its destructor; the
  // first failure is kept and reported once the archive is complete.
  archive.save_to([&](const void* data, std::size_t size) -> std::size_t {
    const char* bytes = static_cast<const char*>(data);
    for (std::size_t done = 0; write_errno == 0 && done < size;) {
      const ssize_t written = ::write(fd, bytes + done, size - done);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) {
        write_errno = written < 0 ? errno : ENOSPC;
        break;
      }
      done += static_cast<std::size_t>(written);
    }
    return size;
  });
  if (::close(fd) != 0 && write_errno == 0) write_errno = errno;
  if (write_errno != 0) throw Error(path + ": writing the checkpoint failed (" + std::strerror(write_errno) + ")");
}

void load_best_weights(torch::nn::Module& model, const std::string& output) {
  const std::string path = model_weights_path(output);
  const auto weights = backbones::read_checkpoint(path);
  if (holds_adapters(weights)) return load_adapter_weights(model, weights, path, output);
  backbones::LoadOptions strict;
  backbones::load_state_dict(model, weights.tensors, strict, path);
  model.eval();
}

void record_test_metrics(TrainResult& result, const std::map<std::string, double>& metrics, std::size_t cases,
                         const std::string& output) {
  for (const auto& [name, value] : metrics) result.test_metrics["test_" + name] = value;
  nlohmann::json report = result.test_metrics;
  report["cases"] = cases;
  report["best_epoch"] = result.best_epoch;
  if (is_writing_rank()) io::write_text_atomically(output + "/test_metrics.json", report.dump(2) + "\n");
}

}  // namespace graft::finetune
