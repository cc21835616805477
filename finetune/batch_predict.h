#pragma once

#include <string>
#include <vector>

#include "finetune/predictor.h"

namespace graft::finetune {

struct BatchOptions {
  int workers = 1;        // each worker holds its own copy of the model
  ComputeTarget target;   // device and precision every worker's model runs at
  int shard_index = 0;    // this job's shard, 0-based (Slurm's SLURM_ARRAY_TASK_ID)
  int shard_count = 1;    // shards in all; case k belongs to shard k % shard_count
  PredictOptions predict;
};

struct BatchCase {
  std::string id, input, output;
  std::string status;  // "done", "skipped" (output already there), "failed"
  double seconds = 0.0;
  std::string error;
};

// Segments many inputs into output_folder/<id>_seg.nii.gz. An output that exists is complete
// (every write is atomic), so it is skipped: a run killed halfway resumes without redoing or
// corrupting finished cases. A failed case is recorded and the others still run. Writes
// output_folder/summary[-shard-i-of-n].csv.
std::vector<BatchCase> predict_batch(const std::string& model_folder, const std::vector<std::string>& inputs,
                                     const std::string& output_folder, const BatchOptions& options);

// Inputs from a folder (every NIfTI/NRRD file in it) or a manifest (its image column).
std::vector<std::string> batch_inputs(const std::string& folder_or_manifest);

}  // namespace graft::finetune
