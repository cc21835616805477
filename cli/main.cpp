// The graft command. It parses arguments and calls the library; no logic lives only here.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backbones/registry.h"
#include "cli/progress.h"
#include "datasets/synthetic_volumes.h"
#include "finetune/segmentation_metrics.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/image_info.h"
#include "preprocess/plan.h"

namespace {

using graft::Error;
using graft::UsageError;
namespace io = graft::io;
namespace preprocess = graft::preprocess;

preprocess::Contract contract_for(const std::string& backbone, const std::string& contract_path) {
  if (!contract_path.empty()) return preprocess::read_contract(contract_path);
  if (backbone.empty()) throw UsageError("give --backbone NAME or --contract FILE");
  return graft::backbones::find_backbone(backbone).contract;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) throw Error(path + ": cannot open for writing");
  out << text;
  if (!out) throw Error(path + ": write failed");
}

int run_info(const std::string& path, bool json) {
  const io::Image image = io::read(path);
  if (json) std::cout << io::image_info_json(image).dump(2) << "\n";
  else std::cout << path << "\n" << io::image_info_text(image);
  return 0;
}

int run_convert(const std::string& in, const std::string& out, const std::string& dtype) {
  graft::cli::Progress progress("convert", 2);
  progress.step("read");
  io::Image image = io::read(in);
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
  if (!plan_out.empty()) write_text_file(plan_out, preprocess::to_json(plan).dump(2) + "\n");
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

// The most complete job graft has today: synthetic CT cases on scanner-like grids are written as
// NIfTI, read back, planned under a contract, preprocessed, and their labels mapped through the
// Plan and back. The round-trip Dice shows the inverse lands on the input's grid.
int run_demo(const std::string& folder) {
  namespace fs = std::filesystem;
  fs::create_directories(folder);
  const auto& contract = graft::backbones::find_backbone("test-ct-1mm").contract;
  std::cout << "demo: contract\n" << preprocess::describe(contract) << "\n";
  double worst_dice = 1.0;
  constexpr int kCases = 3;
  for (int case_index = 0; case_index < kCases; ++case_index) {
    const std::string stem = folder + "/case" + std::to_string(case_index);
    const auto synthetic =
        graft::datasets::make_synthetic_ct(case_index, graft::datasets::random_ct_geometry(case_index));
    io::write(synthetic.image, stem + "_ct.nii.gz");
    io::write(synthetic.labels, stem + "_labels.nii.gz");
    const io::Image image = io::read(stem + "_ct.nii.gz");
    const io::Image labels = io::read(stem + "_labels.nii.gz");
    const preprocess::Plan plan = preprocess::make_plan(contract, image);
    std::cout << "demo: case " << case_index << "\n" << preprocess::to_text(plan);
    io::write(preprocess::apply(plan, image), stem + "_preprocessed.nii.gz");
    const io::Image planned_labels = preprocess::apply_to_labels(plan, labels);
    const io::Image restored =
        preprocess::invert(plan, planned_labels, preprocess::PredictionKind::kLabels);
    io::write(restored, stem + "_labels_roundtrip.nii.gz");
    for (const auto& [label, dice] : graft::finetune::dice_per_label(restored, labels)) {
      std::printf("demo: case %d label %lld round-trip dice %.3f\n", case_index,
                  static_cast<long long>(label), dice);
      worst_dice = std::min(worst_dice, dice);
    }
  }
  std::printf("demo: %d cases preprocessed into %s; worst label round-trip dice %.3f\n", kCases,
              folder.c_str(), worst_dice);
  return 0;
}

void print_error(const std::string& kind, const std::string& message) {
  const bool colour = isatty(2) != 0;
  std::fprintf(stderr, "%sgraft: %s:%s %s\n", colour ? "\033[31m" : "", kind.c_str(),
               colour ? "\033[0m" : "", message.c_str());
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
  info->add_option("file", path, "image file (NIfTI, NRRD, NPY)")->required();
  info->add_flag("--json", json, "print JSON with the same keys for every format");

  auto* convert = app.add_subcommand("convert", "convert between formats, keeping geometry");
  convert->add_option("input", in, "any readable image")->required();
  convert->add_option("output", out, "output; its extension picks the format")->required();
  convert->add_option("--dtype", dtype, "voxel type of the output (u8 i8 u16 i16 u32 i32 f32 f64)");

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

  auto* demo = app.add_subcommand("demo", "run graft's main job on built-in synthetic data");
  demo->add_option("--output", demo_folder, "folder for the demo's files")->capture_default_str();

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
    if (*convert) return run_convert(in, out, dtype);
    if (*plan) return run_plan(backbone, contract_path, in, json);
    if (*prep) return run_preprocess(backbone, contract_path, in, out, plan_out, labels_in, labels_out);
    if (*list) return run_backbones(json);
    if (*demo) return run_demo(demo_folder);
  } catch (const UsageError& e) {
    print_error("usage error", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    print_error("error", "out of memory");
    return 1;
  } catch (const std::exception& e) {
    print_error("error", e.what());
    return 1;
  }
  return 2;
}
