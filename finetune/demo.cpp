#include "finetune/demo.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "backbones/checkpoint_file.h"
#include "backbones/weight_loading.h"
#include "datasets/segmentation_data.h"
#include "datasets/synthetic_volumes.h"
#include "finetune/inference/predictor.h"
#include "finetune/run_config.h"
#include "finetune/trainer.h"
#include "finetune/training_plot.h"
#include "io/error.h"
#include "io/image_file.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

// Writes case `seed` with only `organ` as foreground (label 1).
datasets::CaseEntry write_case(const std::string& folder, std::uint64_t seed, int organ) {
  const auto synthetic = datasets::make_synthetic_ct(seed, datasets::random_ct_geometry(seed));
  io::Image labels = synthetic.labels;
  std::uint8_t* values = labels.data<std::uint8_t>();
  for (std::int64_t i = 0; i < labels.element_count(); ++i) values[i] = values[i] == organ ? 1 : 0;
  datasets::CaseEntry entry;
  entry.id = "case" + std::to_string(seed);
  entry.image = folder + "/" + entry.id + "_ct.nii.gz";
  entry.label = folder + "/" + entry.id + "_organ" + std::to_string(organ) + ".nii.gz";
  if (!fs::exists(entry.image)) io::write(synthetic.image, entry.image);
  if (!fs::exists(entry.label)) io::write(labels, entry.label);
  return entry;
}

RunConfig demo_config(const std::string& output, int epochs, int batches_per_epoch) {
  RunConfig config = default_run_config();
  config.backbone = "med3d-resnet10";
  config.head = "unet";
  config.classes = 2;
  config.output = output;
  config.data.patch_size = {32, 32, 32};
  config.data.batch_size = 2;
  config.data.batches_per_epoch = batches_per_epoch;
  config.data.workers = 1;
  config.data.foreground_fraction = 0.5;
  // The demo's volumes are small; 2 mm voxels keep a run within minutes on two cores.
  config.data.contract = {{"resize", "spacing"}, {"target_spacing_mm", {2.0, 2.0, 2.0}}, {"crop_nonzero", false}};
  config.train.epochs = epochs;
  config.train.optimizer = "adamw";
  config.train.lr = 0.002;
  config.train.weight_decay = 0.0001;
  config.train.head_lr_multiplier = 1.0;
  config.train.schedule = "cosine";
  config.predict.overlap = 0.25;
  // One thread makes every run of the demo give the same numbers: with two, LibTorch's parallel
  // reductions reorder sums and the curves wander by a few hundredths. It costs about a minute.
  config.train.threads = 1;
  return config;
}

std::vector<datasets::PreparedCase> prepare(const std::vector<datasets::CaseEntry>& entries,
                                            const preprocess::Contract& contract) {
  std::vector<datasets::PreparedCase> cases;
  for (std::size_t i = 0; i < entries.size(); ++i) cases.push_back(datasets::prepare_case(entries[i], contract, {i}, 2));
  return cases;
}

TrainEventSink epoch_printer(const std::string& label) {
  return [label](const TrainEvent& event) {
    if (event.kind != "epoch_end") return;
    const auto dice = event.metrics.find("val_dice");
    char validation[48] = "";
    if (dice != event.metrics.end()) std::snprintf(validation, sizeof(validation), "  validation dice %.3f", dice->second);
    std::printf("demo: %-10s epoch %2d  loss %.3f%s  (%.0f s)\n", label.c_str(), event.epoch + 1, event.loss,
                validation, event.seconds);
    std::fflush(stdout);
  };
}

}  // namespace

DemoResult run_demo(const std::string& folder, bool quick) {
  const auto started = std::chrono::steady_clock::now();
  const std::string data = folder + "/data";
  fs::create_directories(data);
  const int source_cases = quick ? 4 : 10, target_train = 4, target_val = 4;
  const int pretrain_epochs = quick ? 1 : 8, finetune_epochs = quick ? 1 : 6;
  const int batches = quick ? 4 : 25;

  std::printf("demo: writing %d synthetic CT cases (random spacing and orientation) to %s\n",
              source_cases + target_train + target_val, data.c_str());
  std::vector<datasets::CaseEntry> source, target_training, target_validation;
  for (int i = 0; i < source_cases; ++i) source.push_back(write_case(data, 100 + i, 1));
  for (int i = 0; i < target_train; ++i) target_training.push_back(write_case(data, 200 + i, 2));
  for (int i = 0; i < target_val; ++i) target_validation.push_back(write_case(data, 300 + i, 2));

  RunConfig config = demo_config(folder + "/pretrain", pretrain_epochs, batches);
  const preprocess::Contract contract = run_contract(config);

  // Source task: the larger organ. The backbone it learns is cached for later runs.
  const std::string cache = folder + "/pretrained-med3d-resnet10-source-task.safetensors";
  if (fs::exists(cache)) {
    std::printf("demo: reusing the pretrained backbone in %s\n", cache.c_str());
  } else {
    std::printf("demo: pretraining med3d-resnet10 on the source task (organ 1, %d volumes)\n", source_cases);
    const auto source_prepared = prepare(source, contract);
    train_prepared(config, source_prepared, {}, {epoch_printer("pretrain")}, false);
    auto model = build_model(config);
    const auto weights = backbones::read_checkpoint(folder + "/pretrain/model.safetensors");
    backbones::LoadOptions all;
    backbones::load_state_dict(*model, weights.tensors, all, "pretrained model");
    backbones::write_safetensors(backbones::state_dict_of(model->backbone()), cache);
  }

  std::printf("demo: target task (organ 2): %d labelled volumes for training, %d for validation\n", target_train, target_val);
  const auto train_cases = prepare(target_training, contract);
  const auto val_cases = prepare(target_validation, contract);
  RunConfig pretrained = demo_config(folder + "/finetuned", finetune_epochs, batches);
  pretrained.weights = cache;
  const TrainResult with = train_prepared(pretrained, train_cases, val_cases, {epoch_printer("pretrained")}, false);
  RunConfig scratch = demo_config(folder + "/scratch", finetune_epochs, batches);
  const TrainResult without = train_prepared(scratch, train_cases, val_cases, {epoch_printer("scratch")}, false);

  std::vector<double> epochs;
  for (int e = 1; e <= finetune_epochs; ++e) epochs.push_back(e);
  write_plot_svg({{"validation Dice, target organ", "epoch", "Dice",
                   {{"pretrained", epochs, with.val_metric_per_epoch}, {"scratch", epochs, without.val_metric_per_epoch}}},
                  {"training loss", "epoch", "loss",
                   {{"pretrained", epochs, with.train_loss_per_epoch}, {"scratch", epochs, without.train_loss_per_epoch}}}},
                 folder + "/dice_curves.svg");
  Predictor predictor(ModelFolder(folder + "/finetuned"));
  for (const auto& entry : target_validation) {
    predictor.predict_file(entry.image, folder + "/" + entry.id + "_predicted_organ2.nii.gz", PredictOptions{});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("demo: curves in %s/dice_curves.svg, predicted masks in %s/*_predicted_organ2.nii.gz (%.0f s)\n",
              folder.c_str(), folder.c_str(), seconds);
  DemoResult result{with.val_metric_per_epoch.back(), without.val_metric_per_epoch.back(), finetune_epochs};
  std::printf("demo: validation dice %.2f (pretrained) vs %.2f (scratch) after %d epochs\n", result.pretrained_dice,
              result.scratch_dice, result.epochs);
  return result;
}

}  // namespace graft::finetune
