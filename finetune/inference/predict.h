#pragma once

// graft's one prediction entry point: a model folder, inputs and options in; files out, whatever
// the model's task. The CLI, the desktop app and the Slicer module all call it (or, for an
// image already in memory, the task's own class). LibTorch stays out of this header.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "finetune/model_folder.h"
#include "io/image_file.h"

namespace graft::finetune {

struct PredictRequest {
  // Image files, folders of them, manifests (their image column), DICOM folders (FOLDER or
  // FOLDER#SERIES, one case each); HDF5 feature bags for a MIL model.
  std::vector<std::string> inputs;
  // Segmentation: a file (.nii.gz, .nrrd, .tif, .dcm for DICOM SEG) for one input, else a
  // folder. Classification and MIL: the CSV table. Detection: a .json/.mrk.json/.geojson file
  // for one input, else a folder.
  std::string output;

  // Options that only some tasks have. One given to a model whose task lacks it is refused with
  // a graft::UsageError naming the option, never silently dropped.
  std::optional<double> overlap_fraction;  // --overlap: segmentation
  bool mirror = false;                     // --tta: segmentation
  bool probabilities = false;              // --probabilities: segmentation
  std::string probabilities_path;          // segmentation, one input: where they go
  bool write_plan = true;                  // segmentation: OUT.plan.json beside each prediction
  bool anonymize = false;                  // --anonymize: segmentation into DICOM SEG or RTSTRUCT
  std::string reference_dicom;             // --reference-dicom: the series of a non-DICOM input
  bool cloud_optimized = false;            // --cog: segmentation of a raster
  int workers = 1;                         // --workers: segmentation batches
  std::string shard;                       // --shard i/n: segmentation batches

  // Every task.
  io::DicomReadOptions dicom;            // --correct-tilt: how DICOM inputs are read
  int threads = 0;                       // 0: the cores, shared among workers
  std::string device = "cpu";            // cpu, cuda, cuda:N
  std::string precision = "fp32";        // fp32, bf16, fp16 (MIL: fp32 only)
  std::function<void(double)> progress;  // one input's fraction done (segmentation)
};

struct PredictedCase {
  std::string input;
  std::vector<std::string> outputs;  // files written for this case
  std::string status = "done";       // "done", "skipped" (its output was already there), "failed"
  std::string error;                 // one line, when failed
  // What the model said, in words: the predicted class(es), "class (p)" for a slide, "N boxes".
  std::string result;
  double seconds = 0.0;
};

struct PredictSummary {
  Task task = Task::kSegmentation;
  std::vector<PredictedCase> cases;
  // Files for the whole run: a probability table, a batch's summary.csv, the attention folder.
  std::vector<std::string> run_outputs;
  int count(const std::string& status) const;
};

// Called as each case finishes (from worker threads in turn, never at once).
using PredictedCaseSink = std::function<void(const PredictedCase&)>;

PredictSummary predict(const ModelFolder& model, const PredictRequest& request,
                       const PredictedCaseSink& on_case = {});

// The cases a list of inputs names, in order: a folder's image files (HDF5 bags for `task` mil)
// or an nnU-Net dataset's, a manifest's images; any other folder (a DICOM series, or FOLDER#SERIES)
// and plain files as they are.
std::vector<std::string> list_inputs(const std::vector<std::string>& inputs, Task task);

}  // namespace graft::finetune
