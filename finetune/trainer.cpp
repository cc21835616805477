#include "finetune/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "backbones/checkpoint_file.h"
#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "datasets/manifest.h"
#include "finetune/sliding_window.h"
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
  std::vector<double> base_lr;  // per parameter group: backbone, head
};

Optimizer make_optimizer(SegmentationModelImpl& model, const nlohmann::json& train) {
  const double lr = train["lr"], multiplier = train["head_lr_multiplier"], decay = train["weight_decay"];
  std::vector<torch::Tensor> backbone_parameters = model.backbone().parameters();
  std::vector<torch::Tensor> head_parameters = model.head().parameters();
  Optimizer result;
  result.base_lr = {lr, lr * multiplier};
  const std::string name = train["optimizer"];
  if (name == "sgd") {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(backbone_parameters, std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(lr).momentum(train["momentum"]).weight_decay(decay)));
    groups.emplace_back(head_parameters, std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(lr * multiplier).momentum(train["momentum"]).weight_decay(decay)));
    result.optimizer = std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(lr));
  } else if (name == "adamw") {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(backbone_parameters, std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).weight_decay(decay)));
    groups.emplace_back(head_parameters, std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr * multiplier).weight_decay(decay)));
    result.optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(lr));
  } else {
    throw Error("unknown train.optimizer '" + name + "' (expected sgd or adamw)");
  }
  return result;
}

void set_learning_rates(Optimizer& optimizer, double factor) {
  auto& groups = optimizer.optimizer->param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(optimizer.base_lr[g] * factor);
}

torch::Tensor loss_of(const std::string& name, const torch::Tensor& logits, const torch::Tensor& labels) {
  if (name == "dice_ce") return dice_ce_loss(logits, labels);
  if (name == "focal") return focal_loss(logits, labels);
  if (name == "ce") return torch::nn::functional::cross_entropy(logits, labels);
  throw Error("unknown train.loss '" + name + "' (expected dice_ce, focal or ce)");
}

void set_backbone_frozen(SegmentationModelImpl& model, bool frozen) {
  for (auto& parameter : model.backbone().parameters()) parameter.set_requires_grad(!frozen);
}

datasets::PatchOptions patch_options(const nlohmann::json& config) {
  datasets::PatchOptions options;
  const auto patch = config["data"]["patch_size"].get<std::vector<std::int64_t>>();
  if (patch.size() != 3 || patch[0] < 8 || patch[1] < 8 || patch[2] < 8) {
    throw Error("data.patch_size must be three sizes (x, y, z) of at least 8");
  }
  options.patch_xyz = {patch[0], patch[1], patch[2]};
  options.foreground_fraction = config["data"]["foreground_fraction"];
  options.augment.enabled = config["data"]["augment"];
  return options;
}

void write_state_safetensors(torch::nn::Module& model, const std::string& path) {
  backbones::write_safetensors(backbones::state_dict_of(model), path);
}

}  // namespace

preprocess::Contract run_contract(const nlohmann::json& config) {
  const auto& info = backbones::find_backbone(config["backbone"]);
  nlohmann::json contract = preprocess::to_json(info.contract);
  for (const auto& item : config["data"]["contract"].items()) {
    if (!contract.contains(item.key())) throw Error("data.contract: unknown contract field '" + item.key() + "'");
    contract[item.key()] = item.value();
  }
  if (!config["data"]["contract"].empty()) {
    auto deviations = contract["deviations"].get<std::vector<std::string>>();
    deviations.push_back("this run overrides the contract: " + config["data"]["contract"].dump());
    contract["deviations"] = deviations;
  }
  return preprocess::contract_from_json(contract, "run config data.contract");
}

SegmentationModel build_model(const nlohmann::json& config) {
  auto backbone = backbones::create_backbone(config["backbone"], config["in_channels"].get<int>());
  return SegmentationModel(backbone, head_kind_from_name(config["head"]), config["classes"].get<int>());
}

std::vector<double> validation_dice(SegmentationModelImpl& model, const std::vector<datasets::PreparedCase>& cases,
                                    const nlohmann::json& config) {
  const int classes = model.classes();
  std::vector<double> overlap(classes, 0.0), total(classes, 0.0);
  SlidingWindowOptions options;
  const auto patch = config["data"]["patch_size"].get<std::vector<std::int64_t>>();
  options.patch_xyz = {patch[0], patch[1], patch[2]};
  options.overlap_fraction = config["predict"]["overlap"];
  options.windows_per_batch = 4;
  std::vector<double> dice(classes, 0.0);
  std::vector<int> counted(classes, 0);
  for (const auto& item : cases) {
    const SlidingWindowResult result = predict_sliding_window(model, item.image, options);
    const std::uint8_t* predicted = result.labels.data<std::uint8_t>();
    const std::uint8_t* reference = item.labels.data<std::uint8_t>();
    std::vector<std::int64_t> both(classes, 0), sum(classes, 0);
    for (std::int64_t i = 0; i < item.labels.element_count(); ++i) {
      ++sum[predicted[i]];
      ++sum[reference[i]];
      if (predicted[i] == reference[i]) ++both[predicted[i]];
    }
    // Per case, then averaged over cases, as nnU-Net reports it; a class absent from both the
    // prediction and the reference of a case is skipped for that case.
    for (int c = 1; c < classes; ++c) {
      if (sum[c] == 0) continue;
      dice[c] += 2.0 * both[c] / sum[c];
      ++counted[c];
    }
  }
  for (int c = 1; c < classes; ++c) dice[c] = counted[c] ? dice[c] / counted[c] : 0.0;
  return dice;
}

TrainResult train_prepared(const nlohmann::json& config, const std::vector<datasets::PreparedCase>& train_cases,
                           const std::vector<datasets::PreparedCase>& val_cases,
                           const std::vector<TrainEventSink>& sinks, bool resume) {
  if (train_cases.empty()) throw Error("no training cases (every case went to validation?)");
  const nlohmann::json& train_settings = config["train"];
  const std::string output = config["output"];
  fs::create_directories(output);
  set_compute_threads(train_settings["threads"].get<int>());
  const std::uint64_t seed = config["seed"];
  torch::manual_seed(seed);

  SegmentationModel model = build_model(config);
  std::vector<std::string> load_notes;
  if (!config["weights"].get<std::string>().empty()) {
    const auto report = backbones::load_weights(model->backbone(), config["weights"], !config["lenient"].get<bool>());
    load_notes.push_back(report.summary());
  }
  Optimizer optimizer = make_optimizer(*model, train_settings);
  const int epochs = train_settings["epochs"];
  const int batches = config["data"]["batches_per_epoch"];
  const std::int64_t total_steps = static_cast<std::int64_t>(epochs) * batches;
  TrainResult result;
  int start_epoch = 0, epochs_without_improvement = 0;
  const std::string checkpoint_path = output + "/checkpoint.pt";

  if (resume) {
    if (!fs::exists(checkpoint_path)) throw Error(checkpoint_path + ": nothing to resume from");
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint_path);
    torch::serialize::InputArchive model_archive, optimizer_archive;
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    model->load(model_archive);
    optimizer.optimizer->load(optimizer_archive);
    c10::IValue state;
    archive.read("state", state);
    const auto saved = nlohmann::json::parse(state.toStringRef());
    start_epoch = saved["next_epoch"];
    result.best_val_dice = saved["best_val_dice"];
    result.best_epoch = saved["best_epoch"];
    epochs_without_improvement = saved["epochs_without_improvement"];
    result.val_dice_per_epoch = saved["val_dice_per_epoch"].get<std::vector<double>>();
    result.train_loss_per_epoch = saved["train_loss_per_epoch"].get<std::vector<double>>();
  }
  io::write_text_atomically(output + "/config.json", config.dump(2) + "\n");
  io::write_text_atomically(output + "/contract.json", preprocess::to_json(run_contract(config)).dump(2) + "\n");

  std::ofstream events(output + "/events.jsonl", resume ? std::ios::app : std::ios::trunc);
  std::ofstream csv(output + "/metrics.csv", resume ? std::ios::app : std::ios::trunc);
  if (!resume) csv << "epoch,train_loss,val_dice,learning_rate,seconds\n";
  for (const auto& note : load_notes) events << nlohmann::json{{"kind", "weights"}, {"report", note}}.dump() << "\n";
  const auto started = std::chrono::steady_clock::now();
  auto emit = [&](TrainEvent event) {
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

  datasets::BatchLoader loader(train_cases, patch_options(config), config["data"]["batch_size"], batches,
                               config["data"]["workers"], config["data"]["prefetch"], seed);
  const std::string loss_name = train_settings["loss"];
  const double clip = train_settings["grad_clip_norm"];
  const int freeze_epochs = train_settings["freeze_backbone_epochs"];
  const int patience = train_settings["early_stopping_patience"];

  for (int epoch = start_epoch; epoch < epochs; ++epoch) {
    const bool frozen = epoch < freeze_epochs;
    set_backbone_frozen(*model, frozen);
    model->train();
    if (frozen) model->backbone().eval();  // a linear probe keeps the backbone's statistics too
    emit({"epoch_start", epoch});
    loader.start_epoch(epoch);
    double loss_sum = 0.0, learning_rate = 0.0;
    for (int step = 0; step < batches; ++step) {
      const std::int64_t global_step = static_cast<std::int64_t>(epoch) * batches + step;
      const double factor = schedule_factor(train_settings, global_step, total_steps, epoch);
      set_learning_rates(optimizer, factor);
      learning_rate = optimizer.base_lr[0] * factor;
      datasets::Batch batch = loader.next();
      optimizer.optimizer->zero_grad();
      const torch::Tensor loss = loss_of(loss_name, model->forward(batch.image), batch.labels);
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        throw Error("training diverged at epoch " + std::to_string(epoch) + " step " + std::to_string(step) +
                    " (loss is not finite); lower train.lr. The last good checkpoint is " + checkpoint_path);
      }
      loss.backward();
      if (clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), clip);
      optimizer.optimizer->step();
      loss_sum += loss_value;
      TrainEvent event{"step", epoch, step};
      event.loss = loss_value;
      event.learning_rate = learning_rate;
      emit(event);
    }
    const double train_loss = loss_sum / batches;
    result.train_loss_per_epoch.push_back(train_loss);
    TrainEvent end{"epoch_end", epoch};
    end.loss = train_loss;
    end.learning_rate = learning_rate;
    end.metrics["train_loss"] = train_loss;
    double val_dice = NAN;
    if (!val_cases.empty()) {
      const auto dice = validation_dice(*model, val_cases, config);
      double sum = 0;
      for (int c = 1; c < model->classes(); ++c) {
        end.metrics["val_dice_" + std::to_string(c)] = dice[c];
        sum += dice[c];
      }
      val_dice = sum / (model->classes() - 1);
      end.metrics["val_dice"] = val_dice;
    }
    result.val_dice_per_epoch.push_back(val_dice);
    result.epochs_run = epoch + 1;
    const bool improved = val_cases.empty() || val_dice > result.best_val_dice || result.best_epoch < 0;
    if (improved) {
      result.best_val_dice = val_cases.empty() ? 0.0 : val_dice;
      result.best_epoch = epoch;
      epochs_without_improvement = 0;
      write_state_safetensors(*model, output + "/model.safetensors");
    } else {
      ++epochs_without_improvement;
    }
    emit(end);
    csv << epoch << "," << train_loss << "," << (std::isnan(val_dice) ? std::string("") : std::to_string(val_dice))
        << "," << learning_rate << "," << end.seconds << "\n" << std::flush;

    // checkpoint.pt: written beside, then renamed, so a kill never leaves a broken file.
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
    model->save(model_archive);
    optimizer.optimizer->save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    nlohmann::json state{{"next_epoch", epoch + 1}, {"best_val_dice", result.best_val_dice},
                         {"best_epoch", result.best_epoch}, {"epochs_without_improvement", epochs_without_improvement},
                         {"val_dice_per_epoch", result.val_dice_per_epoch},
                         {"train_loss_per_epoch", result.train_loss_per_epoch}};
    // NaN is not JSON; an epoch without validation is stored as null.
    for (auto& value : state["val_dice_per_epoch"]) if (value.is_number() && std::isnan(value.get<double>())) value = nullptr;
    archive.write("state", c10::IValue(state.dump()));
    io::write_atomically(checkpoint_path, [&](const std::string& temporary) { archive.save_to(temporary); });
    TrainEvent saved{"checkpoint", epoch};
    saved.path = checkpoint_path;
    emit(saved);

    std::vector<double> epoch_numbers;
    for (std::size_t e = 0; e < result.train_loss_per_epoch.size(); ++e) epoch_numbers.push_back(static_cast<double>(e + 1));
    std::vector<PlotPanel> panels{{"training loss", "epoch", "loss", {{"train", epoch_numbers, result.train_loss_per_epoch}}}};
    if (!val_cases.empty()) {
      panels.push_back({"validation Dice", "epoch", "Dice", {{"val", epoch_numbers, result.val_dice_per_epoch}}});
    }
    write_plot_png(panels, output + "/training.png");

    if (patience > 0 && epochs_without_improvement >= patience) {
      emit({"early_stop", epoch});
      break;
    }
  }
  emit({"done", result.epochs_run});
  return result;
}

TrainResult train(const nlohmann::json& config, const std::vector<TrainEventSink>& sinks, bool resume) {
  const std::string manifest = config["data"]["manifest"];
  if (manifest.empty()) throw UsageError("data.manifest is not set (a CSV/JSON manifest or an imagesTr/labelsTr folder)");
  std::vector<datasets::CaseEntry> cases = datasets::read_manifest(manifest);
  const std::uint64_t seed = config["seed"];
  datasets::assign_folds(cases, config["data"]["folds"], config["data"]["fold"], seed);
  const preprocess::Contract contract = run_contract(config);
  std::vector<datasets::PreparedCase> train_cases, val_cases;
  const int max_val = config["train"]["max_validation_cases"];
  for (std::size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].label.empty()) throw Error(manifest + ": case " + cases[i].id + " has no label");
    if (cases[i].split == "test") continue;
    if (cases[i].split == "val" && max_val > 0 && static_cast<int>(val_cases.size()) >= max_val) continue;
    auto prepared = datasets::prepare_case(cases[i], contract, seed + i, config["classes"]);
    (cases[i].split == "val" ? val_cases : train_cases).push_back(std::move(prepared));
  }
  return train_prepared(config, train_cases, val_cases, sinks, resume);
}

}  // namespace graft::finetune
