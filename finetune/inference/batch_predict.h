#pragma once

#include <functional>
#include <string>
#include <vector>

#include "finetune/inference/predictor.h"
#include "io/image_file.h"

namespace graft::finetune {

struct BatchCase;

struct BatchOptions {
  int workers = 1;        // each worker holds its own copy of the model
  ComputeTarget target;   // device and precision every worker's model runs at
  int shard_index = 0;    // this job's shard, 0-based (Slurm's SLURM_ARRAY_TASK_ID)
  int shard_count = 1;    // shards in all; case k belongs to shard k % shard_count
  PredictOptions predict;
  std::function<void(const BatchCase&)> on_case;  // as each case ends, one call at a time
};

struct BatchCase {
  std::string id, input, output;
  std::string status;  // "done", "skipped" (output already there), "failed"
  double seconds = 0.0;
  std::string error;
};

struct BatchResult {
  std::vector<BatchCase> cases;
  std::string summary_path;
};

// Segments many inputs into output_folder/<id>_seg.nii.gz. An output that exists is complete
// (every write is atomic), so it is skipped: a run killed halfway resumes without redoing or
// corrupting finished cases. A failed case is recorded and the others still run. Writes
// output_folder/summary[-shard-i-of-n].csv.
BatchResult predict_batch(const ModelFolder& model_folder, const std::vector<std::string>& inputs,
                          const std::string& output_folder, const BatchOptions& options);

// The formats a batch lists from a folder: volumes and rasters.
inline const std::vector<io::FileFormat> kBatchImageFormats{io::FileFormat::kNifti, io::FileFormat::kNrrd,
                                                           io::FileFormat::kGdal};

// The files directly in `folder` whose extension names one of `formats`, sorted; empty when none.
std::vector<std::string> image_files_in(const std::string& folder, const std::vector<io::FileFormat>& formats);

// Inputs from a folder (image_files_in) or a manifest or nnU-Net dataset (its images); throws
// naming the formats when there are none.
std::vector<std::string> batch_inputs(const std::string& folder_or_manifest,
                                      const std::vector<io::FileFormat>& formats = kBatchImageFormats);

}  // namespace graft::finetune
