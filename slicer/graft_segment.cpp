// GraftSegment: graft's predictor as a 3D Slicer CLI module. Slicer runs it with the flags and
// positional arguments its XML (GraftSegment.xml, also printed by --xml) declares, passes NRRD or
// NIfTI files, and reads progress from <filter-progress> lines on stdout.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "finetune/blas_kernels.h"
#include "finetune/inference/predict.h"
#include "io/error.h"
#include "slicer/graft_segment_xml.h"

namespace {

void report(const char* tag, const std::string& text) {
  std::printf("<%s>%s</%s>\n", tag, text.c_str(), tag);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  CLI::App app{"GraftSegment: segment a volume with a graft model folder (3D Slicer CLI module)"};
  std::string input, output, model, probabilities, return_parameters;
  double overlap = 0.5;
  int threads = 0;
  bool mirror = false, xml = false;
  app.add_flag("--xml", xml, "print the Slicer Execution Model description and exit");
  app.add_option("inputVolume", input, "volume to segment (NRRD or NIfTI)");
  app.add_option("outputLabelMap", output, "label map to write");
  app.add_option("--model", model, "model folder written by graft train");
  app.add_option("--probabilities", probabilities, "optional per-class probability map");
  app.add_option("--overlap", overlap, "window overlap fraction")->capture_default_str();
  app.add_option("--threads", threads, "threads (0: all cores)")->capture_default_str();
  app.add_flag("--tta", mirror, "mirror test-time augmentation");
  // Slicer may pass a file for simple return parameters; this module has none.
  app.add_option("--returnparameterfile", return_parameters, "written empty");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (xml) {
    std::fputs(graft::slicer::kGraftSegmentXml, stdout);
    return 0;
  }
  if (input.empty() || output.empty() || model.empty()) {
    std::fprintf(stderr, "GraftSegment: usage error: needs --model DIR, an input volume and an output label map\n");
    return 2;
  }
  try {
    const auto start = std::chrono::steady_clock::now();
    report("filter-start", "<filter-name>GraftSegment</filter-name><filter-comment>loading the model</filter-comment>");
    graft::finetune::PredictRequest request;
    request.inputs = {input};
    request.output = output;
    request.overlap_fraction = overlap;
    request.mirror = mirror;
    request.write_plan = false;
    request.probabilities_path = probabilities;
    request.threads = threads;
    request.progress = [](double fraction) { report("filter-progress", std::to_string(0.05 + 0.9 * fraction)); };
    graft::finetune::predict(graft::finetune::ModelFolder(model), request);
    if (!return_parameters.empty()) std::fclose(std::fopen(return_parameters.c_str(), "w"));
    report("filter-progress", "1");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report("filter-end", "<filter-name>GraftSegment</filter-name><filter-time>" + std::to_string(seconds) +
                             "</filter-time>");
  } catch (const std::exception& e) {
    std::string message = e.what();
    std::fprintf(stderr, "GraftSegment: error: %s\n", message.substr(0, message.find('\n')).c_str());
    return 1;
  }
  return 0;
}
