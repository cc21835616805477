#include "finetune/training_loop.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "backbones/checkpoint_file.h"
#include "backbones/weight_loading.h"
#include "finetune/device.h"
#include "finetune/distributed.h"
#include "finetune/training_plot.h"
#include "io/atomic_file.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

double schedule_factor(const nlohmann::json& train, std::int64_t step, std::int64_t total_steps, int epoch) {
  const std::string schedule = train["schedule"];
  const double progress = total_steps > 0 ? static_cast<double>(step) / total_steps : 0.0;
  if (schedule == "poly") return std::pow(1.0 - std::min(progress, 0.999999), train["poly_power"].get<double>());
  if (schedule == "cosine") return 0.5 * (1.0 + std::cos(M_PI * progress));
  if (schedule == "exponential") return std::pow(train["exponential_gamma"].get<double>(), epoch);
  if (schedule == "constant") return 1.0;
  throw Error("unknown train.schedule '" + schedule + "' (expected poly, cosine, exponential or constant)");
}

struct Optimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> base_lr;  // per parameter group
};

Optimizer make_optimizer(const TrainingTask& task, const nlohmann::json& train) {
  const double decay = train["weight_decay"];
  std::vector<ParameterGroup> parameter_sets = parameter_groups(task, train);
  Optimizer result;
  const std::string name = train["optimizer"];
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto& set : parameter_sets) {
    result.base_lr.push_back(set.lr);
    if (name == "sgd") {
      groups.emplace_back(set.parameters, std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(set.lr).momentum(train["momentum"].get<double>()).weight_decay(decay)));
    } else if (name == "adamw") {
      groups.emplace_back(set.parameters, std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(set.lr).weight_decay(decay)));
    } else {
      throw Error("unknown train.optimizer '" + name + "' (expected sgd or adamw)");
    }
  }
  const double lr = train["lr"];
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

std::vector<ParameterGroup> parameter_groups(const TrainingTask& task, const nlohmann::json& train) {
  const double lr = train["lr"], multiplier = train["head_lr_multiplier"];
  const double layer_decay = train.value("layer_decay", 1.0);
  if (layer_decay <= 0.0 || layer_decay > 1.0) throw Error("train.layer_decay must be in (0, 1] (1 turns it off)");
  std::vector<ParameterGroup> groups;
  const bool by_layer = layer_decay < 1.0 && task.layer_of && task.layer_count > 0;
  if (!by_layer) {
    ParameterGroup backbone{{}, {}, lr};
    for (const auto& item : task.backbone->named_parameters()) {
      backbone.names.push_back(item.key());
      backbone.parameters.push_back(item.value());
    }
    groups.push_back(std::move(backbone));
  } else {
    // BEiT's layer-wise decay: layer l of L gets lr * decay^(L - l); parameters outside the
    // numbered layers (the final norm) count as layer L.
    std::map<int, ParameterGroup> by_id;
    for (const auto& item : task.backbone->named_parameters()) {
      int layer = task.layer_of(item.key());
      if (layer < 0 || layer > task.layer_count) layer = task.layer_count;
      auto& group = by_id[layer];
      group.lr = lr * std::pow(layer_decay, task.layer_count - layer);
      group.names.push_back(item.key());
      group.parameters.push_back(item.value());
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

TrainResult run_training(const nlohmann::json& config, TrainingTask& task, const std::vector<TrainEventSink>& sinks,
                         bool resume) {
  const nlohmann::json& train_settings = config["train"];
  const std::string output = config["output"];
  fs::create_directories(output);
  // Model folders from before these settings existed lack them.
  const ComputeTarget target = compute_target(train_settings.value("device", "cpu"),
                                              train_settings.value("precision", "fp32"), "train.device/precision");
  task.model->to(target.device);
  LossScaler scaler(target.precision == Precision::kFloat16);
  Optimizer optimizer = make_optimizer(task, train_settings);
  const int epochs = train_settings["epochs"];
  const int batches = task.steps_per_epoch;
  if (batches < 1) throw Error("no training batches in an epoch");
  const std::int64_t total_steps = static_cast<std::int64_t>(epochs) * batches;
  TrainResult result;
  result.metric = task.metric;
  int start_epoch = 0, start_step = 0, epochs_without_improvement = 0;
  double start_loss_sum = 0.0;
  const std::string checkpoint_path = output + "/checkpoint.pt";
  // Data-parallel runs: every rank trains; rank 0 alone writes the run folder.
  ProcessGroup* group = process_group();
  const bool writer = is_writing_rank();

  if (resume) {
    if (!fs::exists(checkpoint_path)) throw Error(checkpoint_path + ": nothing to resume from");
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint_path, target.device);  // a GPU run's checkpoint resumes on the CPU too
    torch::serialize::InputArchive model_archive, optimizer_archive;
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    task.model->load(model_archive);
    optimizer.optimizer->load(optimizer_archive);
    c10::IValue state;
    archive.read("state", state);
    const auto saved = nlohmann::json::parse(state.toStringRef());
    if (saved.value("metric", task.metric) != task.metric) {
      throw Error(checkpoint_path + ": field 'metric' is " + saved["metric"].dump() + ", this run tracks '" +
                  task.metric + "' (a checkpoint of another task?)");
    }
    start_epoch = saved["next_epoch"];
    start_step = saved.value("next_step", 0);
    start_loss_sum = saved.value("epoch_loss_sum", 0.0);
    result.best_val_metric = saved["best_val_metric"];
    result.best_epoch = saved["best_epoch"];
    epochs_without_improvement = saved["epochs_without_improvement"];
    result.val_metric_per_epoch = from_json_with_nulls(saved["val_metric_per_epoch"]);
    result.train_loss_per_epoch = saved["train_loss_per_epoch"].get<std::vector<double>>();
    scaler.restore(saved.value("loss_scale", scaler.scale()), saved.value("loss_scale_good_steps", 0));
  }
  std::ofstream events, csv;  // unopened on other ranks: their writes go nowhere
  if (writer) {
    io::write_text_atomically(output + "/config.json", config.dump(2) + "\n");
    events.open(output + "/events.jsonl", resume ? std::ios::app : std::ios::trunc);
    csv.open(output + "/metrics.csv", resume ? std::ios::app : std::ios::trunc);
  }
  if (writer && !resume) csv << "epoch,train_loss," << task.metric << ",learning_rate,seconds\n";
  for (const auto& note : task.notes) events << nlohmann::json{{"kind", "weights"}, {"report", note}}.dump() << "\n";
  const auto started = std::chrono::steady_clock::now();
  auto emit = [&](TrainEvent& event) {
    event.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    event.epochs = epochs;
    event.steps_per_epoch = batches;
    if (event.kind != "step") {
      nlohmann::json line{{"kind", event.kind}, {"epoch", event.epoch}, {"seconds", event.seconds},
                          {"loss", event.loss}, {"learning_rate", event.learning_rate}, {"metrics", event.metrics}};
      if (!event.path.empty()) line["path"] = event.path;
      events << line.dump() << "\n" << std::flush;
    }
    for (const auto& sink : sinks) sink(event);
  };

  // checkpoint.pt: written beside, then renamed, so a kill never leaves a broken file.
  auto save_checkpoint = [&](int next_epoch, int next_step, double epoch_loss_sum) {
    if (!writer) return;
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
    task.model->save(model_archive);
    optimizer.optimizer->save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    const nlohmann::json state{{"metric", task.metric},
                               {"next_epoch", next_epoch},
                               {"next_step", next_step},
                               {"epoch_loss_sum", epoch_loss_sum},
                               {"best_val_metric", result.best_val_metric},
                               {"best_epoch", result.best_epoch},
                               {"epochs_without_improvement", epochs_without_improvement},
                               {"val_metric_per_epoch", to_json_with_nulls(result.val_metric_per_epoch)},
                               {"train_loss_per_epoch", result.train_loss_per_epoch},
                               {"loss_scale", scaler.scale()},
                               {"loss_scale_good_steps", scaler.good_steps()}};
    archive.write("state", c10::IValue(state.dump()));
    io::write_atomically(checkpoint_path, [&](const std::string& temporary) { archive.save_to(temporary); });
  };

  const double clip = train_settings["grad_clip_norm"];
  const int patience = train_settings["early_stopping_patience"];
  for (int epoch = start_epoch; epoch < epochs; ++epoch) {
    const bool frozen = epoch < task.frozen_epochs;
    for (auto& parameter : task.backbone->parameters()) parameter.set_requires_grad(!frozen);
    task.model->train();
    if (frozen) task.backbone->eval();  // a linear probe keeps the backbone's statistics too
    TrainEvent epoch_start{"epoch_start", epoch};
    emit(epoch_start);
    task.start_epoch(epoch);
    const int first_step = epoch == start_epoch ? start_step : 0;
    for (int skipped = 0; skipped < first_step && task.skip_batch; ++skipped) task.skip_batch();
    double loss_sum = epoch == start_epoch ? start_loss_sum : 0.0, learning_rate = 0.0;
    for (int step = first_step; step < batches; ++step) {
      const std::int64_t global_step = static_cast<std::int64_t>(epoch) * batches + step;
      const double factor = schedule_factor(train_settings, global_step, total_steps, epoch);
      set_learning_rates(optimizer, factor);
      learning_rate = optimizer.base_lr[0] * factor;
      optimizer.optimizer->zero_grad();
      torch::Tensor loss;
      {
        AutocastScope autocast(target.device, target.precision);
        loss = task.next_loss();
      }
      // A rank's loss is the mean over its shard; the shards are equal, so their mean is the
      // global batch's mean loss, as one process would report it.
      const double loss_value = group ? group->mean(loss.item<double>()) : loss.item<double>();
      if (!std::isfinite(loss_value)) {
        throw Error("training diverged at epoch " + std::to_string(epoch) + " step " + std::to_string(step) +
                    " (loss is not finite); lower train.lr. The last good checkpoint is " + checkpoint_path);
      }
      scaler.scale_loss(loss).backward();
      const std::vector<torch::Tensor> parameters = task.model->parameters();
      if (group) group->average_gradients(parameters);
      // fp16: a step whose gradients overflowed is skipped (the scale halves), as GradScaler does.
      // Every rank holds the same averaged gradients, so every rank skips the same steps.
      if (scaler.unscale_and_check(parameters)) {
        if (clip > 0) torch::nn::utils::clip_grad_norm_(parameters, clip);
        optimizer.optimizer->step();
        scaler.step_taken();
      }
      loss_sum += loss_value;
      TrainEvent event{"step", epoch, step};
      event.loss = loss_value;
      event.learning_rate = learning_rate;
      bool cancel = false;
      try {
        emit(event);
      } catch (const TrainingCancelled&) {
        cancel = true;
      }
      // Ranks stop together, at the same step, or one would wait forever in the next allreduce.
      if (group) cancel = group->mean(cancel ? 1.0 : 0.0) > 0.0;
      if (cancel) {
        save_checkpoint(epoch, step + 1, loss_sum);  // after the last step: validation is still to come
        TrainEvent cancelled{"cancelled", epoch, step};
        cancelled.path = checkpoint_path;
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
    double val_metric = NAN;
    if (task.validate) {
      torch::NoGradGuard no_grad;
      AutocastScope autocast(target.device, target.precision);
      task.model->eval();
      const std::map<std::string, double> metrics = task.validate();
      if (!metrics.empty()) {
        end.metrics.insert(metrics.begin(), metrics.end());
        val_metric = metrics.at(task.metric);
      }
    }
    const bool validated = !std::isnan(val_metric);
    result.val_metric_per_epoch.push_back(val_metric);
    result.epochs_run = epoch + 1;
    if (!validated || val_metric > result.best_val_metric || result.best_epoch < 0) {
      result.best_val_metric = validated ? val_metric : 0.0;
      result.best_epoch = epoch;
      epochs_without_improvement = 0;
      if (writer) backbones::write_safetensors(backbones::state_dict_of(*task.model), output + "/model.safetensors");
    } else {
      ++epochs_without_improvement;
    }
    emit(end);
    csv << epoch << "," << train_loss << "," << (validated ? std::to_string(val_metric) : std::string("")) << ","
        << learning_rate << "," << end.seconds << "\n" << std::flush;

    save_checkpoint(epoch + 1, 0, 0.0);
    TrainEvent saved{"checkpoint", epoch};
    saved.path = checkpoint_path;
    emit(saved);

    std::vector<double> epoch_numbers;
    for (std::size_t e = 0; e < result.train_loss_per_epoch.size(); ++e) epoch_numbers.push_back(e + 1.0);
    std::vector<PlotPanel> panels{{"training loss", "epoch", "loss", {{"train", epoch_numbers, result.train_loss_per_epoch}}}};
    if (validated) {
      panels.push_back({task.metric_label, "epoch", task.metric, {{"val", epoch_numbers, result.val_metric_per_epoch}}});
    }
    if (writer) write_plot_png(panels, output + "/training.png");

    if (patience > 0 && epochs_without_improvement >= patience) {
      TrainEvent early_stop{"early_stop", epoch};
      emit(early_stop);
      break;
    }
  }
  TrainEvent done{"done", result.epochs_run};
  emit(done);
  return result;
}

void load_best_weights(torch::nn::Module& model, const std::string& output) {
  const std::string path = output + "/model.safetensors";
  const auto weights = backbones::read_checkpoint(path);
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
