// The graft command. It parses arguments and calls the library; no logic lives only here.
#include <unistd.h>

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "backbones/factory.h"
#include "backbones/registry.h"
#include "backbones/weight_loading.h"
#include "cli/progress.h"
#include "finetune/batch_predict.h"
#include "finetune/demo.h"
#include "finetune/predictor.h"
#include "finetune/run_config.h"
#include "finetune/segmentation_metrics.h"
#include "finetune/trainer.h"
#include "io/npy.h"
#include "io/atomic_file.h"
#include "io/dicom_seg.h"
#include "io/dicom_series.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/image_info.h"
#include "preprocess/plan.h"
#include "preprocess/reorient.h"

namespace {

using graft::Error;
using graft::UsageError;
namespace io = graft::io;
namespace preprocess = graft::preprocess;

void print_error(const std::string& kind, const std::string& message) {
  const bool colour = isatty(2) != 0;
  std::fprintf(stderr, "%sgraft: %s:%s %s\n", colour ? "\033[31m" : "", kind.c_str(),
               colour ? "\033[0m" : "", message.c_str());
}

preprocess::Contract contract_for(const std::string& backbone, const std::string& contract_path) {
  if (!contract_path.empty()) return preprocess::read_contract(contract_path);
  if (backbone.empty()) throw UsageError("give --backbone NAME or --contract FILE");
  return graft::backbones::find_backbone(backbone).contract;
}

int run_info(const std::string& path, bool json) {
  const io::DicomPath dicom = io::split_dicom_path(path);
  if (dicom.series.empty() && io::sniff_format(dicom.path) == io::FileFormat::kDicom) {
    // A DICOM folder holds any number of series: list them, with the selector for each.
    const auto series = io::find_dicom_series(dicom.path);
    if (json) std::cout << io::dicom_series_info_json(series).dump(2) << "\n";
    else std::cout << path << ": " << io::dicom_series_info_text(series);
    return 0;
  }
  const io::Image image = io::read(path);
  if (json) std::cout << io::image_info_json(image).dump(2) << "\n";
  else std::cout << path << "\n" << io::image_info_text(image);
  return 0;
}

// Split "a,b,c" into names; empty pieces stay empty so positions keep their label values.
std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  if (text.empty()) return names;
  std::size_t start = 0;
  for (std::size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1) {
    names.push_back(text.substr(start, comma - start));
  }
  names.push_back(text.substr(start));
  return names;
}

struct SegOutput {
  std::string reference_dicom;
  std::string segment_names;
  bool anonymize = false;
};

int run_convert(const std::string& in, const std::string& out, const std::string& dtype, const SegOutput& seg_output) {
  graft::cli::Progress progress("convert", 2);
  progress.step("read");
  io::Image image = io::read(in);
  if (io::is_dicom_seg_path(out)) {
    if (seg_output.reference_dicom.empty()) {
      throw UsageError(out + ": a DICOM SEG references its source series: give --reference-dicom FOLDER[#SERIES]");
    }
    const io::DicomVolumeSource source = io::dicom_volume_source(seg_output.reference_dicom);
    // Masks saved by other tools (dcm2niix's voxel order, say) lie on the same grid re-indexed.
    const io::Image labels = preprocess::onto_same_grid(image, source.geometry, in);
    io::DicomSegOptions options;
    options.anonymize = seg_output.anonymize;
    progress.step("write");
    io::write_dicom_seg(labels, source, io::segments_for_labels(labels, split_names(seg_output.segment_names)), out,
                        options);
    return 0;
  }
  if (!dtype.empty()) image = image.cast(io::dtype_from_name(dtype));
  progress.step("write");
  io::write(image, out);
  return 0;
}

int run_plan(const std::string& backbone, const std::string& contract_path, const std::string& in,
             bool json) {
  const preprocess::Contract contract = contract_for(backbone, contract_path);
  const io::Image image = io::read(in);
  const preprocess::Plan plan = preprocess::make_plan(contract, image);
  if (json) std::cout << preprocess::to_json(plan).dump(2) << "\n";
  else std::cout << preprocess::to_text(plan);
  return 0;
}

int run_preprocess(const std::string& backbone, const std::string& contract_path,
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
  const preprocess::Plan plan = preprocess::make_plan(contract, image);
  progress.step("apply");
  const io::Image result = preprocess::apply(plan, image);
  progress.step("write");
  io::write(result, out);
  if (!labels_in.empty()) {
    progress.step("labels");
    const io::Image labels = io::read(labels_in);
    io::write(preprocess::apply_to_labels(plan, labels), labels_out);
  }
  if (!plan_out.empty()) graft::io::write_text_atomically(plan_out, preprocess::to_json(plan).dump(2) + "\n");
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

int run_train(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& output, bool resume) {
  nlohmann::json config = graft::finetune::resolve_run_config(config_path, overrides);
  if (!output.empty()) config["output"] = output;
  std::unique_ptr<graft::cli::Progress> bar;
  const auto progress = [&](const graft::finetune::TrainEvent& event) {
    if (event.kind == "epoch_start") {
      bar = std::make_unique<graft::cli::Progress>(
          "epoch " + std::to_string(event.epoch + 1) + "/" + std::to_string(event.epochs), event.steps_per_epoch);
    } else if (event.kind == "step" && bar) {
      char loss[32];
      std::snprintf(loss, sizeof(loss), "loss %.4f", event.loss);
      bar->step(loss);
    } else if (event.kind == "epoch_end") {
      if (bar) bar->finish();
      std::printf("epoch %d/%d  train loss %.4f", event.epoch + 1, event.epochs, event.loss);
      for (const auto& [name, value] : event.metrics) {
        if (name.rfind("val_dice", 0) == 0) std::printf("  %s %.4f", name.c_str(), value);
      }
      std::printf("  (%.0f s)\n", event.seconds);
      std::fflush(stdout);
    } else if (event.kind == "early_stop") {
      std::printf("early stop after epoch %d: validation Dice stopped improving\n", event.epoch + 1);
    }
  };
  const auto result = graft::finetune::train(config, {progress}, resume);
  std::printf("train: model folder %s (best validation Dice %.4f at epoch %d)\n",
              config["output"].get<std::string>().c_str(), result.best_val_dice, result.best_epoch + 1);
  return 0;
}

int run_predict(const std::string& model, const std::vector<std::string>& inputs, const std::string& output,
                double overlap, bool mirror, bool probabilities, int workers, const std::string& shard, int threads,
                bool anonymize) {
  namespace fs = std::filesystem;
  // Batch workers share the cores between them.
  graft::finetune::set_compute_threads(threads > 0 ? threads
                                                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                                                     std::max(1, workers)));
  graft::finetune::PredictOptions options;
  options.overlap_fraction = overlap;
  options.mirror = mirror;
  options.write_probabilities = probabilities;
  options.anonymize = anonymize;
  // A DICOM folder is one case when the output names a file (out.nii.gz, seg.dcm); a folder
  // output means a batch.
  const bool output_is_file = !fs::is_directory(output) && (graft::io::is_dicom_seg_path(output) ||
                                                            graft::io::format_from_extension(output) !=
                                                                graft::io::FileFormat::kUnknown);
  const std::string first_input = inputs.empty() ? "" : graft::io::split_dicom_path(inputs[0]).path;
  const bool one_file = inputs.size() == 1 && shard.empty() && output_is_file &&
                        graft::io::sniff_format(first_input) != graft::io::FileFormat::kUnknown;
  if (one_file) {
    graft::finetune::Predictor predictor(model);
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
    const bool listing = fs::is_directory(input) || graft::io::sniff_format(input) == graft::io::FileFormat::kUnknown;
    if (listing) {
      const auto listed = graft::finetune::batch_inputs(input);
      files.insert(files.end(), listed.begin(), listed.end());
    } else {
      files.push_back(input);
    }
  }
  graft::finetune::BatchOptions batch;
  batch.workers = workers;
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
    if (item.status == "done") ++done;
    else if (item.status == "skipped") ++skipped;
    else failed.push_back(&item);
  }
  std::printf("predict: %d done, %d skipped (already there), %zu failed; summary in %s\n", done, skipped,
              failed.size(), output.c_str());
  for (const auto* item : failed) print_error("failed", item->input + ": " + item->error);
  return failed.empty() ? 0 : 1;
}

int run_evaluate(const std::string& prediction_path, const std::string& reference_path, const std::string& csv_path,
                 double tolerance_mm) {
  const io::Image prediction = io::read(prediction_path);
  const io::Image reference = io::read(reference_path);
  const auto dice = graft::finetune::dice_per_label(prediction, reference);
  const auto surface = graft::finetune::surface_metrics_per_label(prediction, reference, tolerance_mm);
  std::ostringstream csv;
  csv << "label,dice,hd95_mm,surface_dice,mean_surface_distance_mm\n";
  for (const auto& [label, value] : dice) {
    const auto& s = surface.at(label);
    csv << label << "," << value << "," << s.hd95_mm << "," << s.surface_dice << "," << s.mean_surface_distance_mm << "\n";
    std::printf("label %lld  dice %.4f  hd95 %.2f mm  surface dice (%.1f mm) %.4f\n", static_cast<long long>(label), value,
                s.hd95_mm, tolerance_mm, s.surface_dice);
  }
  if (!csv_path.empty()) graft::io::write_text_atomically(csv_path, csv.str());
  return 0;
}

int run_embed(const std::string& backbone_name, const std::string& weights, bool lenient, const std::string& input,
              const std::string& mode, const std::string& output) {
  if (mode != "pooled" && mode != "features") throw UsageError("--output must be pooled or features");
  const io::NpyArray array = io::read_npy_array(input);
  if (array.dtype != io::DType::kF32 || array.shape.size() < 3) {
    throw Error(input + ": embed needs a float32 array shaped N x C x spatial...");
  }
  graft::finetune::set_compute_threads(0);
  auto backbone = graft::backbones::create_backbone(backbone_name, static_cast<int>(array.shape[1]));
  if (!weights.empty()) {
    const auto report = graft::backbones::load_weights(*backbone, weights, !lenient);
    std::fprintf(stderr, "%s", report.summary().c_str());
  }
  backbone->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::from_blob(const_cast<std::uint8_t*>(array.bytes.data()), array.shape, torch::kFloat32);
  torch::Tensor deepest = backbone->features(x).back();
  torch::Tensor result = mode == "pooled" ? deepest.flatten(2).mean(2) : deepest;
  result = result.contiguous();
  io::NpyArray out;
  out.dtype = io::DType::kF32;
  out.shape = result.sizes().vec();
  out.bytes.assign(static_cast<const std::uint8_t*>(result.data_ptr()),
                   static_cast<const std::uint8_t*>(result.data_ptr()) + result.numel() * sizeof(float));
  io::write_npy_array(out, output);
  return 0;
}

// Reads an image `repeats` times in this process and prints the median seconds: the load alone,
// without the process start (LibTorch's operator registration costs ~0.5 s before main).
int run_bench_load(const std::string& path, int repeats) {
  std::vector<double> seconds;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto start = std::chrono::steady_clock::now();
    const io::Image image = io::read(path);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (i == 0) std::printf("loaded %s: %lld voxels x %lld channel(s)\n", path.c_str(),
                            static_cast<long long>(image.voxels_per_channel()), static_cast<long long>(image.channels()));
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("median seconds per load: %.4f\n", seconds[seconds.size() / 2]);
  return 0;
}

int run_bench_train_step(const std::string& backbone_name, const std::string& head, int batch,
                         const std::vector<std::int64_t>& patch_dhw, int steps, int threads) {
  if (patch_dhw.size() != 3) throw UsageError("--patch takes D H W");
  graft::finetune::set_compute_threads(threads);
  torch::manual_seed(0);
  graft::finetune::SegmentationModel model(graft::backbones::create_backbone(backbone_name),
                                           graft::finetune::head_kind_from_name(head), 2);
  model->train();
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(1e-3).momentum(0.9));
  const torch::Tensor x = torch::randn({batch, 1, patch_dhw[0], patch_dhw[1], patch_dhw[2]});
  const torch::Tensor y = torch::randint(0, 2, {batch, patch_dhw[0], patch_dhw[1], patch_dhw[2]}, torch::kInt64);
  auto step = [&] {
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    optimizer.step();
  };
  step();  // warm-up: first-call allocations and kernel selection
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("threads %d\nseconds_per_step %.6f\n", torch::get_num_threads(), seconds / steps);
  return 0;
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"graft: fit pretrained imaging backbones to your own data"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  std::string path, in, out, dtype, backbone, contract_path, plan_out, labels_in, labels_out;
  std::string demo_folder = "graft-demo";
  bool json = false;

  auto* info = app.add_subcommand("info", "print an image's grid, dtype and metadata");
  info->add_option("file", path, "image file (NIfTI, NRRD, NPY), or a DICOM folder or file; FOLDER#SERIES for one series")
      ->required();
  info->add_flag("--json", json, "print JSON with the same keys for every format");

  auto* convert = app.add_subcommand("convert", "convert between formats, keeping geometry");
  convert->add_option("input", in, "any readable image")->required();
  convert->add_option("output", out, "output; its extension picks the format")->required();
  convert->add_option("--dtype", dtype, "voxel type of the output (u8 i8 u16 i16 u32 i32 f32 f64)");
  SegOutput seg_output;
  convert->add_option("--reference-dicom", seg_output.reference_dicom,
                      "for a .dcm output (DICOM SEG of a label image): the source series, FOLDER[#SERIES]");
  convert->add_option("--segment-names", seg_output.segment_names, "DICOM SEG: names of labels 1, 2, ... (a,b,c)");
  convert->add_flag("--anonymize", seg_output.anonymize, "DICOM SEG: de-identify (DICOM PS3.15 basic profile)");

  auto* plan = app.add_subcommand("plan", "show the preprocessing Plan for an image");
  plan->add_option("--backbone", backbone, "registered backbone name (see graft backbones)");
  plan->add_option("--contract", contract_path, "contract JSON file instead of a backbone");
  plan->add_option("input", in, "image file")->required();
  plan->add_flag("--json", json, "print the Plan as JSON");

  auto* prep = app.add_subcommand("preprocess", "apply a backbone's Plan to an image");
  prep->add_option("--backbone", backbone, "registered backbone name");
  prep->add_option("--contract", contract_path, "contract JSON file instead of a backbone");
  prep->add_option("input", in, "image file")->required();
  prep->add_option("output", out, "preprocessed image (f32)")->required();
  prep->add_option("--plan-out", plan_out, "save the Plan as JSON");
  prep->add_option("--labels", labels_in, "a label map on the input's grid to transform too");
  prep->add_option("--labels-out", labels_out, "where the transformed label map goes");

  auto* list = app.add_subcommand("backbones", "list registered backbones and their contracts");
  list->add_flag("--json", json, "print JSON");

  bool quick = false, resume = false, mirror = false, probabilities = false, lenient = false;
  std::string config_path, model_folder, reference, csv_path, weights, embed_mode = "pooled", head = "medicalnet";
  std::vector<std::string> overrides, inputs;
  double overlap = -1, tolerance_mm = 1.0;
  int batch = 2, steps = 10, threads = 0, workers = 1;
  std::string shard;
  std::vector<std::int64_t> patch_dhw{32, 64, 64};

  auto* demo = app.add_subcommand("demo", "run graft's main job on built-in synthetic data");
  demo->add_option("--output", demo_folder, "folder for the demo's files")->capture_default_str();
  demo->add_flag("--quick", quick, "a smoke run of a few steps (numbers are meaningless)");

  auto* train = app.add_subcommand("train", "fine-tune a backbone on a labelled dataset");
  train->add_option("--config", config_path, "run config (YAML or JSON); every field has a default");
  train->add_option("--set", overrides, "override a field: --set train.epochs=5 (repeatable)");
  train->add_option("--output", out, "model folder (overrides the config's output)");
  train->add_flag("--resume", resume, "continue from OUTPUT/checkpoint.pt");

  auto* predict = app.add_subcommand("predict", "segment images with a trained model folder");
  predict->add_option("--model", model_folder, "model folder written by graft train")->required();
  predict->add_option("--input", inputs, "image files, a folder of them, or a manifest")->required();
  predict->add_option("--output", out, "output file, or a folder for a batch")->required();
  predict->add_option("--workers", workers, "batch: cases segmented at once")->capture_default_str();
  predict->add_option("--shard", shard, "batch: only shard i of n (0-based), e.g. $SLURM_ARRAY_TASK_ID/8");
  predict->add_option("--overlap", overlap, "sliding-window overlap fraction (default: the model's)");
  predict->add_flag("--tta", mirror, "mirror test-time augmentation (8 flips)");
  predict->add_flag("--probabilities", probabilities, "also write per-class probability maps");
  predict->add_option("--threads", threads, "LibTorch threads (0: the cores shared among workers)");
  predict->add_flag("--anonymize", seg_output.anonymize, "a DICOM SEG output (.dcm) is de-identified (PS3.15 basic profile)");

  auto* evaluate = app.add_subcommand("evaluate", "Dice, HD95 and surface Dice per label");
  evaluate->add_option("--pred", path, "predicted label map")->required();
  evaluate->add_option("--ref", reference, "reference label map")->required();
  evaluate->add_option("--csv", csv_path, "write the numbers to this CSV");
  evaluate->add_option("--tolerance-mm", tolerance_mm, "surface Dice tolerance")->capture_default_str();

  auto* embed = app.add_subcommand("embed", "run a backbone on a raw N x C x spatial float32 NPY");
  embed->add_option("--backbone", backbone, "registered backbone")->required();
  embed->add_option("--weights", weights, "checkpoint (torch.save or safetensors)");
  embed->add_flag("--lenient", lenient, "load what fits and report the rest");
  embed->add_option("--input-npy", in, "input NPY (float32, N x C x D x H x W)")->required();
  embed->add_option("--output", embed_mode, "pooled or features")->capture_default_str();
  embed->add_option("--out", out, "output NPY")->required();

  auto* bench = app.add_subcommand("bench", "measure graft's own speed");
  bench->require_subcommand(1);
  auto* train_step = bench->add_subcommand("train-step", "seconds per training step on random data");
  train_step->add_option("--backbone", backbone, "registered backbone")->default_val("med3d-resnet10");
  train_step->add_option("--head", head, "medicalnet or unet")->capture_default_str();
  train_step->add_option("--batch", batch, "batch size")->capture_default_str();
  train_step->add_option("--patch", patch_dhw, "patch D H W")->expected(3);
  train_step->add_option("--steps", steps, "timed steps")->capture_default_str();
  train_step->add_option("--threads", threads, "LibTorch threads (0: every core)")->capture_default_str();
  int repeats = 5;
  auto* load = bench->add_subcommand("load", "median seconds to read an image or DICOM series, in-process");
  load->add_option("input", in, "any readable image, DICOM folder or FOLDER#SERIES")->required();
  load->add_option("--repeats", repeats, "timed reads")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error("usage error", std::string(e.what()) + " (see graft --help)");
    return 2;
  }

  try {
    if (*info) return run_info(path, json);
    if (*convert) return run_convert(in, out, dtype, seg_output);
    if (*plan) return run_plan(backbone, contract_path, in, json);
    if (*prep) return run_preprocess(backbone, contract_path, in, out, plan_out, labels_in, labels_out);
    if (*list) return run_backbones(json);
    if (*demo) return run_demo(demo_folder, quick);
    if (*train) return run_train(config_path, overrides, out, resume);
    if (*predict) {
      return run_predict(model_folder, inputs, out, overlap, mirror, probabilities, workers, shard, threads,
                         seg_output.anonymize);
    }
    if (*evaluate) return run_evaluate(path, reference, csv_path, tolerance_mm);
    if (*embed) return run_embed(backbone, weights, lenient, in, embed_mode, out);
    if (*load) return run_bench_load(in, repeats);
    if (*train_step) return run_bench_train_step(backbone, head, batch, patch_dhw, steps, threads);
  } catch (const UsageError& e) {
    print_error("usage error", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    print_error("error", "out of memory");
    return 1;
  } catch (const std::exception& e) {
    // Only the first line: LibTorch's errors carry a C++ backtrace after it.
    std::string message = e.what();
    print_error("error", message.substr(0, message.find('\n')));
    return 1;
  }
  return 2;
}
