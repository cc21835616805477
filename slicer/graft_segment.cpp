// GraftSegment: graft's predictor as a 3D Slicer CLI module. Slicer runs it with the flags and
// positional arguments its XML (GraftSegment.xml, also printed by --xml) declares, passes NRRD or
// NIfTI files, and reads progress from <filter-progress> lines on stdout. An output named
// .seg.nrrd (the extension the XML asks Slicer for) is a Segmentation with the model's class names.
#include <string>

#include "finetune/blas_kernels.h"
#include "finetune/inference/predict.h"
#include "slicer/module_support.h"
#include "slicer/module_xml.h"

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  CLI::App app{"GraftSegment: segment a volume with a graft model folder (3D Slicer CLI module)"};
  std::string input, output, model, probabilities, return_parameters;
  double overlap = 0.5;
  int threads = 0;
  bool mirror = false;
  app.add_option("inputVolume", input, "volume to segment (NRRD or NIfTI)");
  app.add_option("outputSegmentation", output, "segmentation to write (.seg.nrrd names the segments)");
  app.add_option("--model", model, "model folder written by graft train");
  app.add_option("--probabilities", probabilities, "optional per-class probability map");
  app.add_option("--overlap", overlap, "window overlap fraction")->capture_default_str();
  app.add_option("--threads", threads, "threads (0: all cores)")->capture_default_str();
  app.add_flag("--tta", mirror, "mirror test-time augmentation");
  if (const auto status =
          graft::slicer::parse_module_command_line(app, argc, argv, graft::slicer::kModuleXml, return_parameters)) {
    return *status;
  }
  if (input.empty() || output.empty() || model.empty()) {
    return graft::slicer::usage_error("GraftSegment", "--model DIR, an input volume and an output segmentation");
  }
  return graft::slicer::run_module("GraftSegment", "segmenting " + input, [&] {
    graft::finetune::PredictRequest request;
    request.inputs = {input};
    request.output = output;
    request.overlap_fraction = overlap;
    request.mirror = mirror;
    request.write_plan = false;
    request.probabilities_path = probabilities;
    request.threads = threads;
    request.progress = [](double fraction) { graft::slicer::report_progress(0.05 + 0.9 * fraction); };
    graft::finetune::predict(graft::finetune::ModelFolder(model), request);
    if (!return_parameters.empty()) graft::slicer::write_return_parameters(return_parameters, {});
  });
}
