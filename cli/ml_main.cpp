// graft-ml: the graft commands that need LibTorch (backbones, plan, preprocess, train, predict,
// evaluate, embed, bench train-step). `graft` hands these to it with the same arguments.
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

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "cli/command_line.h"
#include "cli/progress.h"
#include "datasets/manifest.h"
#include "finetune/batch_predict.h"
#include "finetune/blas_kernels.h"
#include "finetune/classification.h"
#include "finetune/demo.h"
#include "finetune/device.h"
#include "finetune/distributed.h"
#include "finetune/detection_metrics.h"
#include "finetune/detection_training.h"
#include "finetune/mil.h"
#include "finetune/predictor.h"
#include "finetune/run_config.h"
#include "finetune/run_task.h"
#include "finetune/segmentation_metrics.h"
#include "finetune/slide_features.h"
#include "finetune/trainer.h"
#include "io/atomic_file.h"
#include "io/boxes.h"
#include "io/dicom_seg.h"
#include "io/text.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/npy.h"
#include "preprocess/plan.h"

namespace {

using graft::Error;
using graft::UsageError;
using graft::cli::print_error;
namespace io = graft::io;
namespace preprocess = graft::preprocess;

preprocess::Contract contract_for(const std::string& backbone, const std::string& contract_path) {
  if (!contract_path.empty()) return preprocess::read_contract(contract_path);
  if (backbone.empty()) throw UsageError("give --backbone NAME or --contract FILE");
  return graft::backbones::find_backbone(backbone).contract;
}

preprocess::PlanOptions plan_options(const graft::cli::CommandLine& l) {
  preprocess::PlanOptions options;
  options.band_names = graft::cli::split_names(l.band_names);
  options.fill_missing_bands = l.fill_missing_bands;
  return options;
}

int run_plan(const preprocess::PlanOptions& options, const std::string& backbone, const std::string& contract_path,
             const std::string& in,
             bool json) {
  const preprocess::Contract contract = contract_for(backbone, contract_path);
  const io::Image image = io::read(in);
  const preprocess::Plan plan = preprocess::make_plan(contract, image, options);
  if (json)
    std::cout << preprocess::to_json(plan).dump(2) << "\n";
  else
    std::cout << preprocess::to_text(plan);
  return 0;
}

int run_preprocess(const preprocess::PlanOptions& options, const std::string& backbone,
                   const std::string& contract_path,
                   const std::string& in, const std::string& out, const std::string& plan_out,
                   const std::string& labels_in, const std::string& labels_out) {
  if (labels_in.empty() != labels_out.empty()) {
    throw UsageError("--labels and --labels-out go together");
  }
  const preprocess::Contract contract = contract_for(backbone, contract_path);
  graft::cli::Progress progress("preprocess", labels_in.empty() ? 4 : 6);
  progress.step("read");
  const io::Image image = io::read(in);
  progress.step("plan");
  const preprocess::Plan plan = preprocess::make_plan(contract, image, options);
  progress.step("apply");
  const io::Image result = preprocess::apply(plan, image);
  progress.step("write");
  io::write(result, out);
  if (!labels_in.empty()) {
    progress.step("labels");
    const io::Image labels = io::read(labels_in);
    io::write(preprocess::apply_to_labels(plan, labels), labels_out);
  }
  if (!plan_out.empty())
    graft::io::write_text_atomically(plan_out, preprocess::to_json(plan).dump(2) + "\n");
  progress.finish();
  std::cout << preprocess::to_text(plan);
  return 0;
}

int run_backbones(bool json) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& backbone : graft::backbones::registered_backbones()) {
    if (json) {
      list.push_back({{"name", backbone.name},
                      {"summary", backbone.summary},
                      {"contract", preprocess::to_json(backbone.contract)}});
    } else {
      std::cout << backbone.name << "  (" << backbone.summary << ")\n"
                << preprocess::describe(backbone.contract) << "\n";
    }
  }
  if (json) std::cout << list.dump(2) << "\n";
  return 0;
}

int run_demo(const std::string& folder, bool quick) {
  graft::finetune::run_demo(folder, quick);
  return 0;
}

// One line per case: id, split, image grid and "ok" or what is wrong; exit code 1 when any case
// has a problem. The desktop app's dataset panel shows the same check.
int run_check(const std::string& manifest, int folds) {
  std::vector<graft::datasets::CaseEntry> entries = graft::datasets::read_manifest(manifest);
  graft::datasets::assign_folds(entries, folds, 0, 0);
  int problems = 0;
  for (const auto& entry : entries) {
    const graft::datasets::CaseCheck check = graft::datasets::check_case(entry);
    std::printf("%s\t%s\t%s\t%s\n", entry.id.c_str(), entry.split.c_str(), check.grid.c_str(),
                check.problem.empty() ? "ok" : check.problem.c_str());
    problems += !check.problem.empty();
  }
  std::printf("check: %zu cases, %d with problems\n", entries.size(), problems);
  return problems == 0 ? 0 : 1;
}

int run_train(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& output, bool resume) {
  nlohmann::json config = graft::finetune::resolve_run_config(config_path, overrides);
  if (!output.empty()) config["output"] = output;
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
      for (const auto& [name, value] : event.metrics) {
        if (name.rfind("val_", 0) == 0) std::printf("  %s %.4f", name.c_str(), value);
      }
      std::printf("  (%.0f s)\n", event.seconds);
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
                  config["output"].get<std::string>().c_str());
    }
    return 130;
  }
  if (!speaking) return 0;
  std::printf("train: model folder %s (best %s %.4f at epoch %d)\n",
              config["output"].get<std::string>().c_str(), result.metric.c_str(),
              result.best_val_metric, result.best_epoch + 1);
  if (!result.test_metrics.empty()) {
    std::printf("test:");
    for (const auto& [name, value] : result.test_metrics) std::printf("  %s %.4f", name.c_str(), value);
    std::printf("\n");
  }
  return 0;
}

// Scene classification: one row per input image with the predicted class(es) and every class's
// probability, printed and, with an output path, written as CSV.
// A table of class probabilities: header KEY,predicted,p_NAME... and one row per input.
std::string probability_table_header(const std::string& key, const std::vector<std::string>& names) {
  std::string header = key + ",predicted";
  for (const auto& name : names) header += ",p_" + name;
  return header + "\n";
}
std::string probability_table_row(const std::string& key, const std::string& predicted,
                                  const std::vector<double>& probabilities) {
  std::ostringstream row;
  row << key << "," << predicted;
  for (double p : probabilities) row << "," << p;
  row << "\n";
  return row.str();
}

int run_classify(const std::string& model, const std::vector<std::string>& inputs, const std::string& output,
                 const graft::finetune::ComputeTarget& target) {
  graft::finetune::Classifier classifier(model, target);
  const auto& names = classifier.class_names();
  std::string csv = probability_table_header("image", names);
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    const bool listing = std::filesystem::is_directory(input) ||
                         graft::io::sniff_format(input) == graft::io::FileFormat::kUnknown;
    const auto listed = listing ? graft::finetune::batch_inputs(input) : std::vector<std::string>{input};
    files.insert(files.end(), listed.begin(), listed.end());
  }
  for (const std::string& file : files) {
    const auto probabilities = classifier.probabilities(io::read(file), file);
    std::string predicted;
    if (classifier.multi_label()) {
      for (std::size_t c = 0; c < names.size(); ++c) {
        if (probabilities[c] >= 0.5) predicted += (predicted.empty() ? "" : ";") + names[c];
      }
    } else {
      predicted = names[std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin()];
    }
    csv += probability_table_row(file, predicted, probabilities);
    std::printf("%s: %s\n", file.c_str(), predicted.c_str());
  }
  if (!output.empty()) {
    graft::io::write_text_atomically(output, csv);
    std::printf("predict: %zu images classified; table in %s\n", files.size(), output.c_str());
  }
  return 0;
}

// Slide labels from feature bags: one row per slide with every class's probability, printed and,
// with an output path, written as CSV, plus each slide's attention per patch (x, y, attention)
// in OUTPUT_attention/SLIDE.csv for heatmaps.
int run_mil_predict(const std::string& model, const std::vector<std::string>& inputs, const std::string& output,
                    const graft::finetune::ComputeTarget& target) {
  graft::finetune::MilPredictor predictor(model, target);
  const auto& names = predictor.class_names();
  std::string csv = probability_table_header("slide", names);
  const std::string attention_folder =
      graft::io::strip_image_extension(graft::io::ends_with(output, ".csv") ? output.substr(0, output.size() - 4) : output) +
      "_attention";
  for (const std::string& input : inputs) {
    const auto prediction = predictor.predict(input);
    const auto best = std::max_element(prediction.probabilities.begin(), prediction.probabilities.end()) -
                      prediction.probabilities.begin();
    csv += probability_table_row(input, names[best], prediction.probabilities);
    std::printf("%s: %s (%.3f)\n", input.c_str(), names[best].c_str(), prediction.probabilities[best]);
    if (output.empty()) continue;
    std::ostringstream attention;
    attention << "x,y,attention\n";
    for (std::size_t i = 0; i < prediction.attention.size(); ++i) {
      if (i < prediction.coords.size()) attention << prediction.coords[i][0] << "," << prediction.coords[i][1];
      else attention << ",";
      attention << "," << prediction.attention[i] << "\n";
    }
    std::filesystem::create_directories(attention_folder);
    graft::io::write_text_atomically(
        attention_folder + "/" + std::filesystem::path(input).stem().string() + ".csv", attention.str());
  }
  if (!output.empty()) {
    graft::io::write_text_atomically(output, csv);
    std::printf("predict: %zu slides; table in %s, attention in %s/\n", inputs.size(), output.c_str(),
                attention_folder.c_str());
  }
  return 0;
}

int run_predict(const std::string& model, const std::vector<std::string>& inputs,
                const std::string& output, double overlap, bool mirror, bool probabilities,
                int workers, const std::string& shard, int threads, bool anonymize, bool cloud_optimized,
                const graft::finetune::ComputeTarget& target) {
  namespace fs = std::filesystem;
  // Batch workers share the cores between them.
  graft::finetune::set_compute_threads(
      threads > 0 ? threads
                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                    std::max(1, workers)));
  graft::finetune::PredictOptions options;
  options.overlap_fraction = overlap;
  options.mirror = mirror;
  options.write_probabilities = probabilities;
  options.anonymize = anonymize;
  options.cloud_optimized = cloud_optimized;
  // A DICOM folder is one case when the output names a file (out.nii.gz, seg.dcm); a folder
  // output means a batch.
  const bool output_is_file =
      !fs::is_directory(output) &&
      (graft::io::is_dicom_seg_path(output) ||
       graft::io::format_from_extension(output) != graft::io::FileFormat::kUnknown);
  const std::string first_input = inputs.empty() ? "" : graft::io::split_dicom_path(inputs[0]).path;
  const bool one_file = inputs.size() == 1 && shard.empty() && output_is_file &&
                        graft::io::sniff_format(first_input) != graft::io::FileFormat::kUnknown;
  if (one_file) {
    graft::finetune::Predictor predictor(model, target);
    graft::cli::Progress bar("predict " + fs::path(inputs[0]).filename().string(), 100);
    int shown = 0;
    options.progress = [&](double fraction) {
      for (; shown < static_cast<int>(fraction * 100); ++shown) bar.step("windows");
    };
    predictor.predict_file(inputs[0], output, options);
    bar.finish();
    std::printf("%s -> %s\n", inputs[0].c_str(), output.c_str());
    return 0;
  }
  // Batch: a folder, a manifest, or several files, into the output folder.
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    const bool listing = fs::is_directory(input) ||
                         graft::io::sniff_format(input) == graft::io::FileFormat::kUnknown;
    if (listing) {
      const auto listed = graft::finetune::batch_inputs(input);
      files.insert(files.end(), listed.begin(), listed.end());
    } else {
      files.push_back(input);
    }
  }
  graft::finetune::BatchOptions batch;
  batch.workers = workers;
  batch.target = target;
  batch.predict = options;
  if (!shard.empty()) {
    const auto slash = shard.find('/');
    try {
      if (slash == std::string::npos) throw std::invalid_argument(shard);
      batch.shard_index = std::stoi(shard.substr(0, slash));
      batch.shard_count = std::stoi(shard.substr(slash + 1));
    } catch (const std::exception&) {
      throw UsageError("--shard expects i/n, e.g. --shard 0/8 (got '" + shard + "')");
    }
  }
  const auto cases = graft::finetune::predict_batch(model, files, output, batch);
  int done = 0, skipped = 0;
  std::vector<const graft::finetune::BatchCase*> failed;
  for (const auto& item : cases) {
    if (item.status == "done")
      ++done;
    else if (item.status == "skipped")
      ++skipped;
    else
      failed.push_back(&item);
  }
  std::printf("predict: %d done, %d skipped (already there), %zu failed; summary in %s\n", done,
              skipped, failed.size(), output.c_str());
  for (const auto* item : failed) print_error("failed", item->input + ": " + item->error);
  return failed.empty() ? 0 : 1;
}

// Detections against a reference: boxes JSON (graft predict's) against a label map (one box per
// component, on the map's grid) or another boxes JSON (compared on the prediction's index grid).
// Prints COCO mAP, LUNA16's FROC and completeness/purity at IoU 0.5 and score 0.5; with --csv,
// one metric per row.
int run_evaluate_boxes(const std::string& prediction_path, const std::string& reference_path,
                       const std::string& csv_path) {
  const nlohmann::json predicted = graft::finetune::read_json_file(prediction_path);
  graft::finetune::DetectionCase evaluated;
  if (graft::io::ends_with(reference_path, ".json")) {
    // Both sides as index boxes on the image they were made for.
    auto index_only = [](nlohmann::json json) {
      for (auto& box : json.is_object() && json.contains("boxes") ? json["boxes"] : json) {
        box.erase("centre_world");
        box.erase("size_world");
      }
      return json;
    };
    const graft::io::Geometry unused;
    evaluated.detections = graft::io::boxes_from_json(index_only(predicted), unused, prediction_path);
    evaluated.references = graft::io::boxes_from_json(index_only(graft::finetune::read_json_file(reference_path)), unused, reference_path);
  } else {
    const io::Image labels = io::read(reference_path);
    evaluated.references = graft::io::boxes_from_labels(labels);
    evaluated.detections = graft::io::boxes_from_json(predicted, labels.geometry(), prediction_path);
  }
  const std::vector<graft::finetune::DetectionCase> cases{evaluated};
  std::map<std::string, double> metrics = graft::finetune::coco_map(cases);
  const auto found = graft::finetune::froc(cases);
  for (std::size_t i = 0; i < found.sensitivity.size(); ++i) {
    char name[48];
    std::snprintf(name, sizeof name, "froc_sensitivity_at_%g_fp", found.false_positives_per_case[i]);
    metrics[name] = found.sensitivity[i];
  }
  metrics["froc"] = found.average_sensitivity;
  const auto completeness = graft::finetune::completeness_purity(cases, 0.5, 0.5);
  metrics["completeness"] = completeness.completeness;
  metrics["purity"] = completeness.purity;
  std::printf("evaluate: %zu detections, %zu reference boxes\n", evaluated.detections.size(),
              evaluated.references.size());
  std::ostringstream csv;
  csv << "metric,value\n";
  for (const auto& [name, value] : metrics) {
    std::printf("  %-32s %.4f\n", name.c_str(), value);
    csv << name << "," << value << "\n";
  }
  if (!csv_path.empty()) graft::io::write_text_atomically(csv_path, csv.str());
  return 0;
}

int run_evaluate(const std::string& prediction_path, const std::string& reference_path,
                 const std::string& csv_path, double tolerance_mm) {
  if (graft::io::ends_with(prediction_path, ".json")) {
    return run_evaluate_boxes(prediction_path, reference_path, csv_path);
  }
  const io::Image prediction = io::read(prediction_path);
  const io::Image reference = io::read(reference_path);
  const auto dice = graft::finetune::dice_per_label(prediction, reference);
  const auto surface =
      graft::finetune::surface_metrics_per_label(prediction, reference, tolerance_mm);
  std::ostringstream csv;
  csv << "label,dice,hd95_mm,surface_dice,mean_surface_distance_mm\n";
  for (const auto& [label, value] : dice) {
    const auto& s = surface.at(label);
    csv << label << "," << value << "," << s.hd95_mm << "," << s.surface_dice << ","
        << s.mean_surface_distance_mm << "\n";
    std::printf("label %lld  dice %.4f  hd95 %.2f mm  surface dice (%.1f mm) %.4f\n",
                static_cast<long long>(label), value, s.hd95_mm, tolerance_mm, s.surface_dice);
  }
  if (!csv_path.empty()) graft::io::write_text_atomically(csv_path, csv.str());
  return 0;
}

int run_embed(const std::string& backbone_name, const std::string& weights, bool lenient,
              const std::string& input, const std::string& mode, const std::string& output,
              const graft::finetune::ComputeTarget& target) {
  if (mode != "pooled" && mode != "features")
    throw UsageError("--output must be pooled or features");
  const io::NpyArray array = io::read_npy_array(input);
  if (array.dtype != io::DType::kF32 || array.shape.size() < 3) {
    throw Error(input + ": embed needs a float32 array shaped N x C x spatial...");
  }
  graft::finetune::set_compute_threads(0);
  auto backbone =
      graft::backbones::create_backbone(backbone_name, static_cast<int>(array.shape[1]));
  if (!weights.empty()) {
    const auto report = graft::backbones::load_weights(*backbone, weights, !lenient);
    std::fprintf(stderr, "%s", report.summary().c_str());
  }
  backbone->to(target.device);
  backbone->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = graft::finetune::to_device(
      torch::from_blob(const_cast<std::uint8_t*>(array.bytes.data()), array.shape, torch::kFloat32), target.device);
  torch::Tensor result;
  {
    graft::finetune::AutocastScope autocast(target.device, target.precision);
    result = mode == "pooled" ? backbone->embedding(x) : backbone->features(x).back();
  }
  result = graft::finetune::to_host_float(result).contiguous();
  io::NpyArray out;
  out.dtype = io::DType::kF32;
  out.shape = result.sizes().vec();
  out.bytes.assign(
      static_cast<const std::uint8_t*>(result.data_ptr()),
      static_cast<const std::uint8_t*>(result.data_ptr()) + result.numel() * sizeof(float));
  io::write_npy_array(out, output);
  return 0;
}

int run_bench_train_step(const std::string& backbone_name, const std::string& head, int batch,
                         const std::vector<std::int64_t>& patch_dhw, int steps, int threads,
                         const graft::finetune::ComputeTarget& target) {
  if (patch_dhw.size() != 3) throw UsageError("--patch takes D H W");
  graft::finetune::set_compute_threads(threads);
  torch::manual_seed(0);
  graft::finetune::SegmentationModel model(graft::backbones::create_backbone(backbone_name),
                                           graft::finetune::head_kind_from_name(head), 2);
  model->to(target.device);
  // The batch is made on the host and copied every step, as a loader's batches are.
  const torch::Tensor x = torch::randn({batch, 1, patch_dhw[0], patch_dhw[1], patch_dhw[2]});
  const torch::Tensor y =
      torch::randint(0, 2, {batch, patch_dhw[0], patch_dhw[1], patch_dhw[2]}, torch::kInt64);
  const double seconds_per_step = graft::finetune::seconds_per_training_step(*model, x, y, target, steps);
  std::printf("device %s\nprecision %s\nthreads %d\nseconds_per_step %.6f\n", target.device.str().c_str(),
              graft::finetune::precision_name(target.precision).c_str(), torch::get_num_threads(), seconds_per_step);
  return 0;
}

int run_slide_features(const graft::cli::CommandLine& l, const graft::finetune::ComputeTarget& target) {
  graft::finetune::set_compute_threads(l.threads);
  auto backbone = graft::backbones::create_backbone(l.backbone);
  if (!l.weights.empty()) {
    const auto report = graft::backbones::load_weights(*backbone, l.weights, !l.lenient);
    std::fprintf(stderr, "%s\n", report.summary().c_str());
  }
  backbone->to(target.device);
  graft::finetune::AutocastScope autocast(target.device, target.precision);
  graft::finetune::SlideFeatureOptions options;
  options.tiling.target_microns_per_pixel = l.microns_per_pixel;
  options.tiling.patch_px = l.size_px;
  options.tiling.min_tissue_fraction = l.min_tissue;
  options.batch_size = l.batch;
  graft::cli::Progress bar("slide-features", 100);
  int shown = 0;
  options.progress = [&](double fraction) {
    for (; shown < static_cast<int>(fraction * 100); ++shown) bar.step("patches");
  };
  const auto stats = graft::finetune::extract_slide_features(
      *backbone, l.backbone, graft::backbones::find_backbone(l.backbone).contract, l.in, l.out, options);
  bar.finish();
  std::printf("slide-features: %lld tissue patches of %lld in the grid, %lld-dimensional, %.1f patches/s -> %s\n",
              static_cast<long long>(stats.patches), static_cast<long long>(stats.grid_patches),
              static_cast<long long>(stats.dim), stats.patches_per_second, l.out.c_str());
  return 0;
}

// Boxes from a detection model: for each input, graft's box JSON, plus Slicer ROI markups for a
// patient (LPS) image or GeoJSON for a georeferenced raster. One input may name its output file
// (.json, .mrk.json or .geojson); otherwise OUTPUT is a folder of CASE_boxes.json and
// CASE_boxes.mrk.json / CASE_boxes.geojson.
int run_detect(const std::string& model, const std::vector<std::string>& inputs, const std::string& output,
               const graft::finetune::ComputeTarget& target) {
  namespace fs = std::filesystem;
  graft::finetune::set_compute_threads(0);
  graft::finetune::Detector detector(model, target);
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    const bool listing = fs::is_directory(input) && graft::io::sniff_format(input) != graft::io::FileFormat::kDicom;
    const auto listed = listing ? graft::finetune::batch_inputs(input) : std::vector<std::string>{input};
    files.insert(files.end(), listed.begin(), listed.end());
  }
  const bool one_named_file =
      files.size() == 1 && (graft::io::ends_with(output, ".json") || graft::io::ends_with(output, ".geojson"));
  if (!one_named_file) fs::create_directories(output);
  for (const std::string& file : files) {
    const graft::io::Image image = graft::io::read(file);
    const std::vector<graft::io::Box> boxes = detector.detect(image, file);
    const auto& grid = image.geometry();
    const auto& names = detector.class_names();
    const std::string stem = one_named_file ? "" : output + "/" + graft::io::image_stem(file) + "_boxes";
    auto write = [&](const std::string& path, const nlohmann::json& json) {
      graft::io::write_text_atomically(path, json.dump(2) + "\n");
      std::printf("  %s\n", path.c_str());
    };
    std::printf("%s: %zu boxes\n", file.c_str(), boxes.size());
    if (one_named_file) {
      if (graft::io::ends_with(output, ".mrk.json")) write(output, graft::io::boxes_to_slicer_markups(boxes, grid, names));
      else if (graft::io::ends_with(output, ".geojson")) write(output, graft::io::boxes_to_geojson(boxes, grid, names));
      else write(output, graft::io::boxes_to_json(boxes, grid, names));
      continue;
    }
    for (const std::string& path : graft::io::write_box_files(boxes, grid, names, stem)) std::printf("  %s\n", path.c_str());
  }
  return 0;
}

// Inference throughput of a backbone's embedding on random patches, for bench/run_embed_bench.sh.
int run_bench_embed(const std::string& backbone_name, int batch, int size_px, int steps, int threads,
                    const graft::finetune::ComputeTarget& target) {
  graft::finetune::set_compute_threads(threads);
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
  graft::cli::CommandLine l;
  if (const int status = graft::cli::parse_command_line(argc, argv, l); status >= 0) return status;
  return graft::cli::run_reporting_errors([&] {
    const std::string& c = l.command;
    if (c == "plan") return run_plan(plan_options(l), l.backbone, l.contract_path, l.in, l.json);
    if (c == "preprocess") {
      return run_preprocess(plan_options(l), l.backbone, l.contract_path, l.in, l.out, l.plan_out, l.labels_in,
                            l.labels_out);
    }
    if (c == "backbones") return run_backbones(l.json);
    if (c == "demo") return run_demo(l.demo_folder, l.quick);
    if (c == "train" && l.nproc > 1 && graft::finetune::distributed_environment().world_size == 1) {
      return graft::finetune::launch_local_ranks(argv, l.nproc);
    }
    if (c == "train") {
      std::vector<std::string> overrides = l.overrides;
      if (!l.device.empty()) overrides.push_back("train.device=" + l.device);
      if (!l.precision.empty()) overrides.push_back("train.precision=" + l.precision);
      return run_train(l.config_path, overrides, l.out, l.resume);
    }
    // Every other command that runs a model: --device and --precision, else the CPU at fp32.
    const auto target = [&] {
      return graft::finetune::compute_target(l.device.empty() ? "cpu" : l.device,
                                             l.precision.empty() ? "fp32" : l.precision, "--device/--precision");
    };
    if (c == "predict") {
      const std::string task = graft::finetune::read_json_file(l.model_folder + "/config.json").value("task", "");
      if (task == "classification") return run_classify(l.model_folder, l.inputs, l.out, target());
      if (task == "mil") return run_mil_predict(l.model_folder, l.inputs, l.out, target());
      if (task == "detection") return run_detect(l.model_folder, l.inputs, l.out, target());
      return run_predict(l.model_folder, l.inputs, l.out, l.overlap, l.mirror, l.probabilities,
                         l.workers, l.shard, l.threads, l.anonymize, l.cog, target());
    }
    if (c == "check") return run_check(l.path, l.folds);
    if (c == "evaluate") return run_evaluate(l.path, l.reference, l.csv_path, l.tolerance_mm);
    if (c == "embed") return run_embed(l.backbone, l.weights, l.lenient, l.in, l.embed_mode, l.out, target());
    if (c == "slide-features") return run_slide_features(l, target());
    if (c == "bench embed") return run_bench_embed(l.backbone, l.batch, l.size_px, l.steps, l.threads, target());
    if (c == "bench train-step") {
      return run_bench_train_step(l.backbone, l.head, l.batch, l.patch_dhw, l.steps, l.threads, target());
    }
    throw UsageError("'" + c + "' runs in graft, not graft-ml");
  });
}
