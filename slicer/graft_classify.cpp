// GraftClassify: a graft classification model as a 3D Slicer CLI module. The class and the
// probability of every class come back as return parameters, which Slicer shows in the module's
// panel.
#include <algorithm>
#include <cstdio>
#include <string>

#include "finetune/blas_kernels.h"
#include "finetune/tasks/classification/classification.h"
#include "io/image_file.h"
#include "slicer/module_support.h"
#include "slicer/module_xml.h"

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  CLI::App app{"GraftClassify: classify an image with a graft classification model folder (3D Slicer CLI module)"};
  std::string input, model, return_parameters;
  app.add_option("inputVolume", input, "image to classify (NRRD or NIfTI)");
  app.add_option("--model", model, "classification model folder written by graft train");
  if (const auto status =
          graft::slicer::parse_module_command_line(app, argc, argv, graft::slicer::kModuleXml, return_parameters)) {
    return *status;
  }
  if (input.empty() || model.empty()) return graft::slicer::usage_error("GraftClassify", "--model DIR and an input volume");
  return graft::slicer::run_module("GraftClassify", "classifying " + input, [&] {
    graft::finetune::Classifier classifier{graft::finetune::ModelFolder(model)};
    graft::slicer::report_progress(0.2);
    const std::vector<double> probabilities = classifier.probabilities(graft::io::read(input), input);
    const auto& names = classifier.class_names();
    std::string predicted, listed;
    for (std::size_t c = 0; c < names.size(); ++c) {
      char text[64];
      std::snprintf(text, sizeof text, "%.4f", probabilities[c]);
      listed += (listed.empty() ? "" : ", ") + names[c] + ": " + text;
      if (classifier.multi_label() && probabilities[c] >= 0.5) predicted += (predicted.empty() ? "" : ";") + names[c];
    }
    if (!classifier.multi_label()) {
      predicted = names[std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin()];
    }
    std::printf("%s: %s (%s)\n", input.c_str(), predicted.c_str(), listed.c_str());
    if (!return_parameters.empty()) {
      graft::slicer::write_return_parameters(return_parameters, {{"predictedClass", predicted}, {"probabilities", listed}});
    }
  });
}
