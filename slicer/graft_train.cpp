// GraftTrain: fine-tuning as a 3D Slicer CLI module, so a Slicer user trains without a terminal.
// The data is a folder of volumes with their labels beside them (CASE.nrrd with CASE-label.nrrd
// or CASE.seg.nrrd, as Slicer saves them), an nnU-Net imagesTr/labelsTr folder, or a manifest
// in that folder; the run file says the rest, and the panel's few settings override it.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "finetune/blas_kernels.h"
#include "finetune/run_config.h"
#include "finetune/run_task.h"
#include "slicer/module_support.h"
#include "slicer/module_xml.h"

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  CLI::App app{"GraftTrain: fine-tune a graft model on a folder of volumes and labels (3D Slicer CLI module)"};
  std::string data, output, run_file, backbone, return_parameters;
  int epochs = 0;
  app.add_option("dataDirectory", data, "volumes with labels beside them, imagesTr/labelsTr, or a folder with a manifest");
  app.add_option("outputDirectory", output, "the model folder to write");
  app.add_option("--run", run_file, "run file (YAML or JSON) as graft train takes it");
  app.add_option("--backbone", backbone, "backbone to fine-tune (overrides the run file's)");
  app.add_option("--epochs", epochs, "epochs (0: the run file's)");
  if (const auto status =
          graft::slicer::parse_module_command_line(app, argc, argv, graft::slicer::kModuleXml, return_parameters)) {
    return *status;
  }
  if (data.empty() || output.empty()) return graft::slicer::usage_error("GraftTrain", "a data folder and an output model folder");
  return graft::slicer::run_module("GraftTrain", "training on " + data, [&] {
    std::vector<std::string> overrides{"data.manifest=" + data, "output=" + output};
    if (!backbone.empty()) overrides.push_back("backbone=" + backbone);
    if (epochs > 0) overrides.push_back("train.epochs=" + std::to_string(epochs));
    const graft::finetune::RunConfig config = graft::finetune::resolve_run_config(run_file, overrides);
    graft::finetune::TrainEventSink progress = [](const graft::finetune::TrainEvent& event) {
      if (event.epochs <= 0) return;
      double done = event.epoch;
      if (event.kind == "step" && event.steps_per_epoch > 0) done += static_cast<double>(event.step + 1) / event.steps_per_epoch;
      if (event.kind == "epoch_end") done = event.epoch + 1;
      graft::slicer::report_progress(0.02 + 0.96 * done / event.epochs);
    };
    const graft::finetune::TrainResult result = graft::finetune::train_task(config, {progress}, /*resume=*/false);
    std::printf("GraftTrain: model folder %s\n", output.c_str());
    if (!return_parameters.empty()) {
      graft::slicer::write_return_parameters(
          return_parameters, {{"bestMetric", result.metric + " " + std::to_string(result.best_val_metric)},
                              {"epochsRun", std::to_string(result.epochs_run)}});
    }
  });
}
