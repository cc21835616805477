#include "finetune/inference/batch_predict.h"

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "datasets/manifest.h"
#include "io/atomic_file.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/parallel.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch == '\n' ? ' ' : ch);
  return quoted + "\"";
}

}  // namespace

std::vector<std::string> image_files_in(const std::string& folder, const std::vector<io::FileFormat>& formats) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const io::FileFormat format = io::format_from_extension(entry.path().string());
    if (entry.is_regular_file() && std::find(formats.begin(), formats.end(), format) != formats.end()) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> batch_inputs(const std::string& folder_or_manifest, const std::vector<io::FileFormat>& formats) {
  std::vector<std::string> inputs;
  if (fs::is_directory(folder_or_manifest) && !fs::exists(fs::path(folder_or_manifest) / "imagesTr")) {
    inputs = image_files_in(folder_or_manifest, formats);
  } else {
    for (const auto& entry : datasets::read_manifest(folder_or_manifest)) inputs.push_back(entry.image);
    std::sort(inputs.begin(), inputs.end());
  }
  if (inputs.empty()) {
    std::string names;
    for (io::FileFormat format : formats) names += (names.empty() ? "" : ", ") + io::format_name(format);
    throw Error(folder_or_manifest + ": no inputs found (looked for " + names + ")");
  }
  return inputs;
}

BatchResult predict_batch(const ModelFolder& model_folder, const std::vector<std::string>& inputs,
                          const std::string& output_folder, const BatchOptions& options) {
  if (options.shard_count < 1 || options.shard_index < 0 || options.shard_index >= options.shard_count) {
    throw UsageError("--shard i/n needs 0 <= i < n (got " + std::to_string(options.shard_index) + "/" +
                     std::to_string(options.shard_count) + ")");
  }
  fs::create_directories(output_folder);
  io::remove_abandoned_temporaries(output_folder);
  std::vector<BatchCase> cases;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (static_cast<int>(k % options.shard_count) != options.shard_index) continue;
    BatchCase item;
    item.input = inputs[k];
    item.id = io::image_stem(inputs[k]);
    item.output = (fs::path(output_folder) / (item.id + "_seg.nii.gz")).string();
    cases.push_back(item);
  }
  std::atomic<std::size_t> next{0};
  std::mutex reporting;
  auto work = [&] {
    std::unique_ptr<Predictor> predictor;
    while (true) {
      const std::size_t k = next++;
      if (k >= cases.size()) return;
      BatchCase& item = cases[k];
      const auto start = std::chrono::steady_clock::now();
      if (fs::exists(item.output)) {
        item.status = "skipped";
      } else {
        try {
          if (!predictor) predictor = std::make_unique<Predictor>(model_folder, options.target);
          PredictOptions predict = options.predict;
          predict.progress = nullptr;
          predictor->predict_file(item.input, item.output, predict);
          item.status = "done";
        } catch (const std::exception& e) {
          item.status = "failed";
          item.error = e.what();
          item.error = item.error.substr(0, item.error.find('\n'));
        }
      }
      item.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::lock_guard<std::mutex> lock(reporting);
      if (options.on_case) options.on_case(item);
    }
  };
  io::WorkerGroup(std::max(1, options.workers), [&](int) { work(); }).join();

  const std::string summary = (fs::path(output_folder) /
                               (options.shard_count == 1 ? std::string("summary.csv")
                                                         : "summary-shard-" + std::to_string(options.shard_index) +
                                                               "-of-" + std::to_string(options.shard_count) + ".csv"))
                                  .string();
  std::ostringstream csv;
  csv << "case,input,output,status,seconds,error\n";
  for (const auto& item : cases) {
    csv << csv_field(item.id) << "," << csv_field(item.input) << "," << csv_field(item.output) << "," << item.status
        << "," << item.seconds << "," << csv_field(item.error) << "\n";
  }
  io::write_text_atomically(summary, csv.str());
  return {cases, summary};
}

}  // namespace graft::finetune
