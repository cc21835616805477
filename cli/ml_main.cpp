// graft-ml: the graft commands that need LibTorch (demo, train, predict, evaluate, embed,
// slide-features, bench train-step, bench embed). `graft` hands these to it with the same arguments.
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "backbones/batchnorm_mode.h"
#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "cli/command_line.h"
#include "cli/progress.h"
#include "finetune/adapters.h"
#include "finetune/blas_kernels.h"
#include "finetune/demo.h"
#include "finetune/device.h"
#include "finetune/run_logs.h"
#include "finetune/distributed.h"
#include "finetune/inference/evaluation.h"
#include "finetune/inference/predict.h"
#include "finetune/model_folder.h"
#include "finetune/nnunet_import.h"
#include "finetune/run_config.h"
#include "finetune/run_task.h"
#include "finetune/tasks/segmentation/segmentation_model.h"
#include "finetune/transferability.h"
#include "finetune/inference/slide_features.h"
#include "finetune/trainer.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/numpy/npy.h"
#include "io/text.h"

namespace {

using graft::Error;
using graft::UsageError;
using graft::cli::print_error;
namespace io = graft::io;
namespace preprocess = graft::preprocess;

int run_demo(const std::string& folder, bool quick) {
  graft::finetune::run_demo(folder, quick);
  return 0;
}

int run_train(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& output, bool resume, bool merge) {
  graft::finetune::RunConfig config = graft::finetune::resolve_run_config(config_path, overrides);
  if (!output.empty()) config.output = output;
  if (merge && config.train.adapter != "lora") {
    throw UsageError("--merge folds LoRA adapters into the weights; this run's train.adapter is '" +
                     config.train.adapter + "'");
  }
  std::unique_ptr<graft::cli::Progress> bar;
  // In a data-parallel run rank 0 speaks for all; the others train quietly.
  const bool speaking = graft::finetune::is_writing_rank();
  const auto progress = [&](const graft::finetune::TrainEvent& event) {
    if (!speaking) return;
    if (event.kind == "epoch_start") {
      bar = std::make_unique<graft::cli::Progress>(
          "epoch " + std::to_string(event.epoch + 1) + "/" + std::to_string(event.epochs),
          event.steps_per_epoch);
    } else if (event.kind == "step" && bar) {
      char loss[32];
      std::snprintf(loss, sizeof(loss), "loss %.4f", event.loss);
      bar->step(loss);
    } else if (event.kind == "epoch_end") {
      if (bar) bar->finish();
      std::printf("epoch %d/%d  train loss %.4f", event.epoch + 1, event.epochs, event.loss);
      std::printf("%s  (%.0f s)\n", graft::finetune::metrics_summary(event.metrics).c_str(), event.seconds);
      std::fflush(stdout);
    } else if (event.kind == "early_stop") {
      std::printf("early stop after epoch %d: the validation metric stopped improving\n",
                  event.epoch + 1);
    }
  };
  // Ctrl-C stops after the current step with a checkpoint that --resume continues from.
  static std::atomic<bool> interrupted{false};
  std::signal(SIGINT, [](int) { interrupted = true; });
  const auto stop_on_interrupt = [&](const graft::finetune::TrainEvent& event) {
    if (event.kind == "step" && interrupted) throw graft::finetune::TrainingCancelled{};
  };
  const auto result = graft::finetune::train_task(config, {progress, stop_on_interrupt}, resume);
  std::signal(SIGINT, SIG_DFL);
  if (result.cancelled) {
    if (bar) bar->finish();
    if (speaking) {
      std::printf("train: interrupted; checkpoint %s/checkpoint.pt, continue with --resume\n",
                  config.output.c_str());
    }
    return 130;
  }
  if (!speaking) return 0;
  if (merge) {
    const int layers = graft::finetune::merge_adapter_folder(config.output, config.output);
    std::printf("train: merged the adapters of %d layers into the weights\n", layers);
  }
  std::printf("train: model folder %s (best %s %.4f at epoch %d)\n",
              config.output.c_str(), result.metric.c_str(),
              result.best_val_metric, result.best_epoch + 1);
  if (!result.test_metrics.empty()) {
    std::printf("test:");
    for (const auto& [name, value] : result.test_metrics) std::printf("  %s %.4f", name.c_str(), value);
    std::printf("\n");
  }
  return 0;
}

// Every task through the one library entry point; this prints each case as it ends.
int run_predict(const graft::cli::PredictOptions& l) {
  const graft::finetune::ModelFolder model(l.model_folder);
  graft::finetune::PredictRequest request;
  request.inputs = l.inputs;
  request.output = l.output;
  request.overlap_fraction = l.overlap_fraction;
  request.mirror = l.mirror;
  request.probabilities = l.probabilities;
  request.anonymize = l.anonymize;
  request.reference_dicom = l.reference_dicom;
  request.cloud_optimized = l.cloud_optimized;
  request.dicom = l.dicom;
  request.workers = l.workers;
  request.shard = l.shard;
  request.threads = l.threads;
  if (!l.compute.device.empty()) request.device = l.compute.device;
  if (!l.compute.precision.empty()) request.precision = l.compute.precision;
  std::unique_ptr<graft::cli::Progress> bar;
  int shown = 0;
  if (l.inputs.size() == 1) {
    bar = std::make_unique<graft::cli::Progress>("predict " + std::filesystem::path(l.inputs[0]).filename().string(), 100);
    request.progress = [&](double fraction) {
      for (; shown < static_cast<int>(fraction * 100); ++shown) bar->step("windows");
    };
  }
  const auto print_case = [&](const graft::finetune::PredictedCase& item) {
    if (bar) bar->finish();
    bar.reset();
    const std::string outputs = item.outputs.size() == 1 ? " -> " + item.outputs[0] : "";
    if (item.status == "done") {
      std::printf("%s%s%s%s\n", item.input.c_str(), item.result.empty() ? "" : ": ", item.result.c_str(),
                  outputs.c_str());
    } else {
      std::printf("%-8s %s%s%s\n", item.status.c_str(), item.input.c_str(), outputs.c_str(),
                  item.error.empty() ? "" : ("  (" + item.error + ")").c_str());
    }
    if (item.outputs.size() > 1) {
      for (const std::string& path : item.outputs) std::printf("  %s\n", path.c_str());
    }
    std::fflush(stdout);
  };
  const graft::finetune::PredictSummary summary = graft::finetune::predict(model, request, print_case);
  const int failed = summary.count("failed");
  if (summary.task == graft::finetune::Task::kSegmentation && summary.cases.size() > 1) {
    std::printf("predict: %d done, %d skipped (already there), %d failed; summary in %s\n", summary.count("done"),
                summary.count("skipped"), failed, l.output.c_str());
  } else if (!summary.run_outputs.empty()) {
    std::printf("predict: %zu inputs;", summary.cases.size());
    for (const std::string& path : summary.run_outputs) std::printf(" %s", path.c_str());
    std::printf("\n");
  }
  for (const auto& item : summary.cases) {
    if (item.status == "failed") print_error("failed", item.input + ": " + item.error);
  }
  return failed == 0 ? 0 : 1;
}

int run_evaluate(const std::string& prediction_path, const std::string& reference_path,
                 const std::string& csv_path, double tolerance_mm) {
  if (graft::io::ends_with(prediction_path, ".json")) {
    const graft::finetune::BoxScores scores = graft::finetune::evaluate_boxes(prediction_path, reference_path);
    std::printf("evaluate: %zu detections, %zu reference boxes\n", scores.detections, scores.references);
    for (const auto& [name, value] : scores.metrics) std::printf("  %-32s %.4f\n", name.c_str(), value);
    if (!csv_path.empty()) graft::io::write_text_atomically(csv_path, graft::finetune::metrics_csv(scores.metrics));
    return 0;
  }
  const auto scores = graft::finetune::evaluate_label_maps(prediction_path, reference_path, tolerance_mm);
  for (const auto& s : scores) {
    std::printf("label %lld  dice %.4f  hd95 %.2f mm  surface dice (%.1f mm) %.4f\n", static_cast<long long>(s.label),
                s.dice, s.hd95_mm, tolerance_mm, s.surface_dice);
  }
  if (!csv_path.empty()) graft::io::write_text_atomically(csv_path, graft::finetune::label_scores_csv(scores));
  return 0;
}

void write_float_npy(torch::Tensor result, const std::string& output) {
  result = graft::finetune::to_host_float(result).contiguous();
  io::NpyArray out;
  out.dtype = io::DType::kF32;
  out.shape = result.sizes().vec();
  out.bytes.assign(
      static_cast<const std::uint8_t*>(result.data_ptr()),
      static_cast<const std::uint8_t*>(result.data_ptr()) + result.numel() * sizeof(float));
  io::write_npy_array(out, output);
}

int run_embed(const graft::cli::EmbedOptions& l, const graft::finetune::ComputeTarget& target) {
  // The reference tools' spelling: --output names what is written when --out names the file.
  const std::string features = l.out.empty() ? l.features : l.output;
  const std::string output = l.out.empty() ? l.output : l.out;
  if (features != "pooled" && features != "map" && features != "logits") {
    throw UsageError("embed writes pooled, map or logits, not '" + features + "'");
  }
  if (l.model_folder.empty() == l.backbone.empty()) throw UsageError("embed takes --backbone NAME or --model MODEL_DIR");
  if ((features == "logits") != !l.model_folder.empty()) {
    throw UsageError("logits are a model folder's (--model with --features logits); a backbone gives pooled or map");
  }
  const io::NpyArray array = io::read_npy_array(l.input);
  if (array.dtype != io::DType::kF32 || array.shape.size() < 3) {
    throw Error(l.input + ": embed needs a float32 array shaped N x C x spatial...");
  }
  graft::finetune::set_compute_threads(0);
  torch::NoGradGuard no_grad;
  const auto input = [&] {
    return graft::finetune::to_device(
        torch::from_blob(const_cast<std::uint8_t*>(array.bytes.data()), array.shape, torch::kFloat32), target.device);
  };
  if (!l.model_folder.empty()) {
    graft::finetune::SegmentationModel model =
        graft::finetune::load_segmentation_model(graft::finetune::ModelFolder(l.model_folder), target.device);
    const torch::Tensor x = input();
    if (x.dim() != 5 && x.dim() != 4) throw Error(l.input + ": logits need N x C x Z x Y x X (or N x C x Y x X)");
    torch::Tensor logits;
    {
      graft::finetune::AutocastScope autocast(target.device, target.precision);
      // A 2D model's forward takes one-slice volumes.
      logits = x.dim() == 4 ? model->forward(x.unsqueeze(2)).squeeze(2) : model->forward(x);
    }
    write_float_npy(logits, output);
    return 0;
  }
  auto backbone = graft::backbones::create_backbone(l.backbone, static_cast<int>(array.shape[1]));
  if (!l.weights.empty()) {
    const auto report = graft::backbones::load_weights(*backbone, l.weights, !l.lenient);
    std::fprintf(stderr, "%s", report.summary().c_str());
  }
  backbone->to(target.device);
  backbone->eval();
  const torch::Tensor x = input();
  torch::Tensor result;
  {
    graft::finetune::AutocastScope autocast(target.device, target.precision);
    result = features == "pooled" ? backbone->embedding(x) : backbone->features(x).back();
  }
  write_float_npy(result, output);
  return 0;
}

int run_import_nnunet(const graft::cli::ImportNnUNetOptions& l) {
  graft::finetune::NnUNetImportOptions options;
  options.folder = l.folder;
  options.configuration = l.configuration;
  options.fold = l.fold;
  options.checkpoint = l.checkpoint;
  options.output = l.output;
  options.orientation = l.orientation;
  const graft::finetune::NnUNetImport result = graft::finetune::import_nnunet(options);
  for (const auto& note : result.notes) std::printf("%s\n", note.c_str());
  std::printf("%s", preprocess::describe(graft::finetune::run_contract(result.config)).c_str());
  return 0;
}

int run_rank(const graft::cli::RankOptions& l) {
  graft::finetune::RankRequest request;
  std::vector<std::string> overrides = l.overrides;
  overrides.push_back("data.manifest=" + l.manifest);
  overrides.push_back("train.threads=" + std::to_string(l.threads));
  request.settings = graft::finetune::resolve_run_config(l.config_path, overrides);
  request.task = l.task;
  request.backbones = l.backbones;
  request.weights = l.weights;
  request.patches_per_case = l.patches_per_case;
  request.level = l.level;
  request.samples_per_class = l.samples_per_class;
  const auto rows = graft::finetune::rank_backbones(request, [](const std::string& step) {
    std::fprintf(stderr, "rank: %s\n", step.c_str());
  });
  std::printf("%s", graft::finetune::rank_table(rows).c_str());
  if (!l.csv_path.empty()) {
    std::ostringstream csv;
    csv << "rank,backbone,weights,logme,samples,dims,features,seconds\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& row = rows[i];
      csv << i + 1 << ',' << row.backbone << ',' << row.weights << ',' << row.logme << ',' << row.samples << ','
          << row.dims << ',' << row.level << ',' << row.seconds << '\n';
    }
    graft::io::write_text_atomically(l.csv_path, csv.str());
  }
  return 0;
}

int run_bench_train_step(const graft::cli::BenchTrainStepOptions& l, const graft::finetune::ComputeTarget& target) {
  const graft::preprocess::Contract& contract = graft::backbones::find_backbone(l.backbone).contract;
  graft::finetune::set_compute_threads(l.threads);
  torch::manual_seed(0);
  const int channels = contract.channel_count();
  const std::string head = !l.head.empty() ? l.head : contract.spatial_dims == 2 ? "unet" : "medicalnet";
  graft::finetune::SegmentationModel model(graft::backbones::create_backbone(l.backbone, channels),
                                           graft::finetune::head_kind_from_name(head), 2);
  std::vector<std::int64_t> size = l.patch_size_xyz;
  if (size.empty()) {
    size = model->backbone().spatial_dims() == 2
               ? std::vector<std::int64_t>{contract.target_size_xyz[0], contract.target_size_xyz[1], 1}
               : std::vector<std::int64_t>{64, 64, 32};
  }
  if (size.size() != 3) throw UsageError("--patch-size takes X Y Z");
  const auto batchnorm = graft::backbones::batchnorm_mode_from_name(l.batchnorm, "--batchnorm");
  if (graft::backbones::set_batchnorm_mode(model->backbone(), batchnorm) == 0 &&
      batchnorm != graft::backbones::BatchNormMode::kTrain) {
    throw UsageError("--batchnorm " + l.batchnorm + ": backbone " + l.backbone + " has no convolution + BatchNorm pairs");
  }
  // The run settings a training run would apply, on random weights.
  graft::finetune::RunConfig settings;
  settings.backbone = l.backbone;
  settings.train.adapter = l.adapter;
  settings.train.lora_rank = l.lora_rank;
  settings.train.side_reduction = l.side_reduction;
  settings.train.activation_checkpointing = l.activation_checkpointing;
  graft::finetune::apply_tuning_settings(model->backbone(), settings, nullptr);
  model->to(target.device);
  // The batch is made on the host and copied every step, as a loader's batches are (B, C, D, H, W).
  const torch::Tensor x = torch::randn({l.batch, channels, size[2], size[1], size[0]});
  const torch::Tensor y = torch::randint(0, 2, {l.batch, size[2], size[1], size[0]}, torch::kInt64);
  const double seconds_per_step =
      graft::finetune::seconds_per_training_step(*model, x, y, target, l.steps, l.optimizer);
  std::int64_t trained = 0;
  for (const auto& parameter : model->parameters()) trained += parameter.requires_grad() ? parameter.numel() : 0;
  std::printf("backbone %s\nhead %s\n", l.backbone.c_str(), head.c_str());
  std::printf("input_xyz %lld %lld %lld\nbatch %d\n", static_cast<long long>(size[0]),
              static_cast<long long>(size[1]), static_cast<long long>(size[2]), l.batch);
  std::printf("batchnorm %s\nadapter %s\nactivation_checkpointing %s\noptimizer %s\n", l.batchnorm.c_str(),
              l.adapter.c_str(), l.activation_checkpointing ? "on" : "off", l.optimizer.c_str());
  std::printf("trained_parameters %lld\n", static_cast<long long>(trained));
  std::printf("device %s\nprecision %s\nthreads %d\nseconds_per_step %.6f\n", target.device.str().c_str(),
              graft::finetune::precision_name(target.precision).c_str(), torch::get_num_threads(), seconds_per_step);
  // The process's peak resident memory: weights, optimizer state and the activations one step keeps.
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) std::printf("peak_rss_mb %.1f\n", std::stod(line.substr(6)) / 1024.0);
  }
  return 0;
}

int run_slide_features(const graft::cli::SlideFeaturesOptions& l, const graft::finetune::ComputeTarget& target) {
  graft::finetune::set_compute_threads(l.threads);
  std::shared_ptr<graft::backbones::BackboneImpl> backbone;
  std::string backbone_name = l.backbone;
  graft::preprocess::Contract contract;
  if (!l.model_folder.empty()) {
    const graft::finetune::ModelFolder folder(l.model_folder);
    backbone = graft::finetune::load_folder_backbone(folder);
    backbone_name = folder.config().backbone;
    contract = folder.contract();
  } else {
    backbone = graft::backbones::create_backbone(l.backbone);
    contract = graft::backbones::find_backbone(l.backbone).contract;
    if (!l.weights.empty()) {
      const auto report = graft::backbones::load_weights(*backbone, l.weights, !l.lenient);
      std::fprintf(stderr, "%s\n", report.summary().c_str());
    }
  }
  backbone->to(target.device);
  graft::finetune::AutocastScope autocast(target.device, target.precision);
  graft::finetune::SlideFeatureOptions options;
  options.tiling.target_microns_per_pixel = l.microns_per_pixel;
  options.tiling.patch_px = l.patch_size_px;
  options.tiling.min_tissue_fraction = l.min_tissue_fraction;
  options.batch_size = l.batch;
  graft::cli::Progress bar("slide-features", 100);
  int shown = 0;
  options.progress = [&](double fraction) {
    for (; shown < static_cast<int>(fraction * 100); ++shown) bar.step("patches");
  };
  const auto stats =
      graft::finetune::extract_slide_features(*backbone, backbone_name, contract, l.input, l.output, options);
  bar.finish();
  std::printf("slide-features: %lld tissue patches of %lld in the grid, %lld-dimensional, %.1f patches/s -> %s\n",
              static_cast<long long>(stats.patches), static_cast<long long>(stats.grid_patches),
              static_cast<long long>(stats.dim), stats.patches_per_second, l.output.c_str());
  return 0;
}

// Inference throughput of a backbone's embedding on random patches, for bench/run_embed_bench.sh.
int run_bench_embed(const graft::cli::BenchEmbedOptions& l, const graft::finetune::ComputeTarget& target) {
  const std::string& backbone_name = l.backbone;
  const int batch = l.batch, size_px = l.patch_size_px, steps = l.steps;
  graft::finetune::set_compute_threads(l.threads);
  torch::manual_seed(0);
  auto backbone = graft::backbones::create_backbone(backbone_name);
  backbone->to(target.device);
  backbone->eval();
  torch::NoGradGuard no_grad;
  graft::finetune::AutocastScope autocast(target.device, target.precision);
  const int channels = graft::backbones::find_backbone(backbone_name).contract.channel_count();
  const torch::Tensor x = torch::rand({batch, channels, size_px, size_px});
  auto embed = [&] { return graft::finetune::to_host_float(backbone->embedding(graft::finetune::to_device(x, target.device))); };
  embed();  // warm-up: first-call allocations
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) embed();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("device %s\nprecision %s\nthreads %d\nblas_core %s\npatches_per_second %.4f\n",
              target.device.str().c_str(), graft::finetune::precision_name(target.precision).c_str(),
              torch::get_num_threads(), graft::finetune::blas_core_name(), steps * batch / seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  graft::cli::CommandLine l;
  if (const int status = graft::cli::parse_command_line(argc, argv, l); status >= 0) return status;
  return graft::cli::run_reporting_errors([&] {
    const std::string& c = l.command;
    if (c == "demo") return run_demo(l.demo.output, l.demo.quick);
    if (c == "train" && l.train.nproc > 1 && graft::finetune::distributed_environment().world_size == 1) {
      return graft::finetune::launch_local_ranks(argv, l.train.nproc);
    }
    if (c == "train") {
      std::vector<std::string> overrides = l.train.overrides;
      if (!l.train.compute.device.empty()) overrides.push_back("train.device=" + l.train.compute.device);
      if (!l.train.compute.precision.empty()) overrides.push_back("train.precision=" + l.train.compute.precision);
      return run_train(l.train.config_path, overrides, l.train.output, l.train.resume, l.train.merge);
    }
    if (c == "rank") return run_rank(l.rank);
    if (c == "merge-adapter") {
      const int layers = graft::finetune::merge_adapter_folder(l.merge_adapter.model_folder, l.merge_adapter.output);
      std::printf("merge-adapter: %d layers merged; model folder %s\n", layers, l.merge_adapter.output.c_str());
      return 0;
    }
    if (c == "predict") return run_predict(l.predict);
    if (c == "evaluate") {
      return run_evaluate(l.evaluate.prediction, l.evaluate.reference, l.evaluate.csv_path, l.evaluate.tolerance_mm);
    }
    // Every other command that runs a model: --device and --precision, else the CPU at fp32.
    const auto target = [](const graft::cli::ComputeChoice& compute) {
      return graft::finetune::compute_target(compute.device.empty() ? "cpu" : compute.device,
                                             compute.precision.empty() ? "fp32" : compute.precision,
                                             "--device/--precision");
    };
    if (c == "embed") return run_embed(l.embed, target(l.embed.compute));
    if (c == "import nnunet") return run_import_nnunet(l.import_nnunet);
    if (c == "slide-features") return run_slide_features(l.slide_features, target(l.slide_features.compute));
    if (c == "bench embed") return run_bench_embed(l.bench_embed, target(l.bench_embed.compute));
    if (c == "bench train-step") return run_bench_train_step(l.bench_train_step, target(l.bench_train_step.compute));
    throw UsageError("'" + c + "' runs in graft, not graft-ml");
  });
}
