#include "finetune/inference/predict.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "datasets/manifest.h"
#include "finetune/device.h"
#include "finetune/inference/batch_predict.h"
#include "finetune/inference/predictor.h"
#include "finetune/tasks/classification/classification.h"
#include "finetune/tasks/detection/detection_training.h"
#include "finetune/tasks/mil/mil.h"
#include "io/atomic_file.h"
#include "io/boxes.h"
#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/text.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

// Refuses every option given that `task` does not have, naming the first.
void refuse_options_of_other_tasks(const ModelFolder& model, const PredictRequest& request) {
  struct Given {
    bool given;
    const char* name;
    bool segmentation_only;
  };
  const Given options[] = {
      {request.overlap_fraction.has_value(), "--overlap", true},
      {request.mirror, "--tta", true},
      {request.probabilities || !request.probabilities_path.empty(), "--probabilities", true},
      {request.anonymize, "--anonymize", true},
      {request.cloud_optimized, "--cog", true},
      {request.workers != 1, "--workers", true},
      {!request.shard.empty(), "--shard", true},
  };
  for (const Given& option : options) {
    if (option.given && option.segmentation_only && model.task() != Task::kSegmentation) {
      throw UsageError(std::string(option.name) + " applies to segmentation models; " +
                       model.path() + " holds a " + task_name(model.task()) + " model");
    }
  }
  if (model.task() == Task::kMil && request.precision != "fp32") {
    throw UsageError("--precision " + request.precision + ": a MIL model runs at fp32 (" +
                     model.path() + ")");
  }
  if (request.workers < 1) throw UsageError("--workers must be at least 1");
}

// The table graft writes for classification and MIL: KEY,predicted,p_NAME... one row per input.
std::string probability_table_header(const std::string& key,
                                     const std::vector<std::string>& names) {
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

template <typename Work>
PredictedCase timed_case(const std::string& input, Work work) {
  PredictedCase item;
  item.input = input;
  const auto start = std::chrono::steady_clock::now();
  work(item);
  item.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return item;
}

void finish_case(PredictSummary& summary, PredictedCase item, const PredictedCaseSink& on_case) {
  if (on_case) on_case(item);
  summary.cases.push_back(std::move(item));
}

void predict_classification(const ModelFolder& model, const PredictRequest& request,
                            const ComputeTarget& target, const PredictedCaseSink& on_case,
                            PredictSummary& summary) {
  Classifier classifier(model, target);
  const auto& names = classifier.class_names();
  std::string csv = probability_table_header("image", names);
  for (const std::string& file : list_inputs(request.inputs, model.task())) {
    finish_case(
        summary,
        timed_case(file,
                   [&](PredictedCase& item) {
                     const auto probabilities = classifier.probabilities(io::read(file, request.dicom), file);
                     if (classifier.multi_label()) {
                       for (std::size_t c = 0; c < names.size(); ++c) {
                         if (probabilities[c] >= 0.5)
                           item.result += (item.result.empty() ? "" : ";") + names[c];
                       }
                     } else {
                       item.result =
                           names[std::max_element(probabilities.begin(), probabilities.end()) -
                                 probabilities.begin()];
                     }
                     csv += probability_table_row(file, item.result, probabilities);
                   }),
        on_case);
  }
  if (!request.output.empty()) {
    io::write_text_atomically(request.output, csv);
    summary.run_outputs.push_back(request.output);
  }
}

// Besides the table, each slide's attention per patch (x, y, attention) goes to
// OUTPUT_attention/SLIDE.csv, for heatmaps.
void predict_mil(const ModelFolder& model, const PredictRequest& request,
                 const ComputeTarget& target, const PredictedCaseSink& on_case,
                 PredictSummary& summary) {
  MilPredictor predictor(model, target);
  const auto& names = predictor.class_names();
  std::string csv = probability_table_header("slide", names);
  const std::string& output = request.output;
  const std::string attention_folder =
      io::strip_image_extension(io::ends_with(output, ".csv") ? output.substr(0, output.size() - 4)
                                                              : output) +
      "_attention";
  for (const std::string& input : list_inputs(request.inputs, model.task())) {
    finish_case(
        summary,
        timed_case(input,
                   [&](PredictedCase& item) {
                     const auto prediction = predictor.predict(input);
                     const auto best = std::max_element(prediction.probabilities.begin(),
                                                        prediction.probabilities.end()) -
                                       prediction.probabilities.begin();
                     csv += probability_table_row(input, names[best], prediction.probabilities);
                     char probability[32];
                     std::snprintf(probability, sizeof probability, " (%.3f)",
                                   prediction.probabilities[best]);
                     item.result = names[best] + probability;
                     if (output.empty()) return;
                     std::ostringstream attention;
                     attention << "x,y,attention\n";
                     for (std::size_t i = 0; i < prediction.attention.size(); ++i) {
                       if (i < prediction.coords.size())
                         attention << prediction.coords[i][0] << "," << prediction.coords[i][1];
                       else
                         attention << ",";
                       attention << "," << prediction.attention[i] << "\n";
                     }
                     fs::create_directories(attention_folder);
                     const std::string path =
                         attention_folder + "/" + fs::path(input).stem().string() + ".csv";
                     io::write_text_atomically(path, attention.str());
                     item.outputs.push_back(path);
                   }),
        on_case);
  }
  if (!output.empty()) {
    io::write_text_atomically(output, csv);
    summary.run_outputs.push_back(output);
    summary.run_outputs.push_back(attention_folder);
  }
}

// graft's box JSON for each input, plus Slicer ROI markups for a patient (LPS) image or GeoJSON
// for a georeferenced raster. One input may name its output file (.json, .mrk.json or
// .geojson); otherwise the output is a folder of CASE_boxes.json and CASE_boxes.mrk.json /
// CASE_boxes.geojson.
void predict_detection(const ModelFolder& model, const PredictRequest& request,
                       const ComputeTarget& target, const PredictedCaseSink& on_case,
                       PredictSummary& summary) {
  Detector detector(model, target);
  const std::vector<std::string> files = list_inputs(request.inputs, model.task());
  const std::string& output = request.output;
  const bool one_named_file =
      files.size() == 1 && (io::ends_with(output, ".json") || io::ends_with(output, ".geojson"));
  if (!one_named_file) fs::create_directories(output);
  const auto& names = detector.class_names();
  for (const std::string& file : files) {
    finish_case(summary,
                timed_case(file,
                           [&](PredictedCase& item) {
                             const io::Image image = io::read(file, request.dicom);
                             const std::vector<io::Box> boxes = detector.detect(image, file);
                             const auto& grid = image.geometry();
                             item.result = std::to_string(boxes.size()) + " boxes";
                             if (!one_named_file) {
                               item.outputs = io::write_box_files(
                                   boxes, grid, names,
                                   output + "/" + io::image_stem(file) + "_boxes");
                               return;
                             }
                             const nlohmann::json json =
                                 io::ends_with(output, ".mrk.json")
                                     ? io::boxes_to_slicer_markups(boxes, grid, names)
                                 : io::ends_with(output, ".geojson")
                                     ? io::boxes_to_geojson(boxes, grid, names)
                                     : io::boxes_to_json(boxes, grid, names);
                             io::write_text_atomically(output, json.dump(2) + "\n");
                             item.outputs.push_back(output);
                           }),
                on_case);
  }
}

std::pair<int, int> parse_shard(const std::string& shard) {
  if (shard.empty()) return {0, 1};
  const auto slash = shard.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument(shard);
    return {std::stoi(shard.substr(0, slash)), std::stoi(shard.substr(slash + 1))};
  } catch (const std::exception&) {
    throw UsageError("--shard expects i/n, e.g. --shard 0/8 (got '" + shard + "')");
  }
}

// One input and an output file: that file. Otherwise a batch into the output folder, resumable
// and shardable (predict_batch).
void predict_segmentation(const ModelFolder& model, const PredictRequest& request,
                          const ComputeTarget& target, const PredictedCaseSink& on_case,
                          PredictSummary& summary) {
  PredictOptions options;
  options.overlap_fraction = request.overlap_fraction.value_or(-1.0);
  options.mirror = request.mirror;
  options.write_probabilities = request.probabilities;
  options.probabilities_path = request.probabilities_path;
  options.write_plan = request.write_plan;
  options.anonymize = request.anonymize;
  options.reference_dicom = request.reference_dicom;
  options.cloud_optimized = request.cloud_optimized;
  options.dicom = request.dicom;
  options.progress = request.progress;
  // A DICOM folder is one case when the output names a file (out.nii.gz, seg.dcm); a folder
  // output means a batch.
  const std::string& output = request.output;
  const bool output_is_file =
      !fs::is_directory(output) && (io::is_dicom_seg_path(output) ||
                                    io::format_from_extension(output) != io::FileFormat::kUnknown);
  const std::string first_input =
      request.inputs.empty() ? "" : io::split_dicom_path(request.inputs[0]).path;
  const bool one_file = request.inputs.size() == 1 && request.shard.empty() && output_is_file &&
                        io::sniff_format(first_input) != io::FileFormat::kUnknown;
  if (one_file) {
    Predictor predictor(model, target);
    finish_case(summary,
                timed_case(request.inputs[0],
                           [&](PredictedCase& item) {
                             predictor.predict_file(request.inputs[0], output, options);
                             item.outputs.push_back(output);
                           }),
                on_case);
    return;
  }
  if (!request.probabilities_path.empty()) {
    throw UsageError(request.probabilities_path +
                     ": a probabilities path is for one input and one output file");
  }
  BatchOptions batch;
  batch.workers = request.workers;
  batch.target = target;
  batch.predict = options;
  batch.predict.progress = nullptr;
  std::tie(batch.shard_index, batch.shard_count) = parse_shard(request.shard);
  const auto predicted = [](const BatchCase& done) {
    PredictedCase item;
    item.input = done.input;
    item.outputs = {done.output};
    item.status = done.status;
    item.error = done.error;
    item.seconds = done.seconds;
    return item;
  };
  batch.on_case = [&](const BatchCase& done) {
    if (on_case) on_case(predicted(done));
  };
  const std::vector<std::string> files = list_inputs(request.inputs, model.task());
  const BatchResult result = predict_batch(model, files, output, batch);
  for (const BatchCase& done : result.cases) summary.cases.push_back(predicted(done));
  summary.run_outputs.push_back(result.summary_path);
}

}  // namespace

int PredictSummary::count(const std::string& status) const {
  return static_cast<int>(std::count_if(cases.begin(), cases.end(), [&](const PredictedCase& item) {
    return item.status == status;
  }));
}

std::vector<std::string> list_inputs(const std::vector<std::string>& inputs, Task task) {
  const std::vector<io::FileFormat> listed_formats =
      task == Task::kMil ? std::vector<io::FileFormat>{io::FileFormat::kHdf5} : kBatchImageFormats;
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    const io::DicomPath dicom = io::split_dicom_path(input);
    const bool folder = dicom.series.empty() && fs::is_directory(dicom.path);
    const bool manifest =
        !fs::is_directory(dicom.path) && io::sniff_format(dicom.path) == io::FileFormat::kUnknown;
    // A folder holding image files is a list of cases, an nnU-Net dataset folder lists its
    // images; any other folder is one DICOM series, as is FOLDER#SERIES.
    const std::vector<std::string> in_folder =
        folder ? image_files_in(dicom.path, listed_formats) : std::vector<std::string>{};
    if (manifest || (folder && fs::exists(fs::path(dicom.path) / "imagesTr"))) {
      const auto listed = batch_inputs(input, listed_formats);
      files.insert(files.end(), listed.begin(), listed.end());
    } else if (!in_folder.empty()) {
      files.insert(files.end(), in_folder.begin(), in_folder.end());
    } else {
      files.push_back(input);
    }
  }
  if (files.empty()) throw UsageError("no inputs given");
  return files;
}

PredictSummary predict(const ModelFolder& model, const PredictRequest& request,
                       const PredictedCaseSink& on_case) {
  refuse_options_of_other_tasks(model, request);
  if (request.output.empty()) throw UsageError("no output given");
  const ComputeTarget target =
      compute_target(request.device, request.precision, "--device/--precision");
  // Batch workers share the cores between them.
  set_compute_threads(request.threads > 0
                          ? request.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                            std::max(1, request.workers)));
  PredictSummary summary;
  summary.task = model.task();
  switch (model.task()) {
    case Task::kSegmentation:
      predict_segmentation(model, request, target, on_case, summary);
      break;
    case Task::kClassification:
      predict_classification(model, request, target, on_case, summary);
      break;
    case Task::kDetection:
      predict_detection(model, request, target, on_case, summary);
      break;
    case Task::kMil:
      predict_mil(model, request, target, on_case, summary);
      break;
  }
  return summary;
}

}  // namespace graft::finetune
