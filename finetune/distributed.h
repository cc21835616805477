#pragma once

// Data-parallel training over LibTorch's c10d process groups (Gloo): one process per device, each
// computing the loss on its shard of every global batch, gradients averaged by allreduce before
// each optimizer step, so every rank keeps the same weights.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datasets/segmentation_data.h"

namespace graft::finetune {

// Where this process sits in a run: torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT; else Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; else Open MPI's
// OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK (MASTER_ADDR and
// MASTER_PORT still say where rank 0 listens). One process when none is set.
struct DistributedEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_address = "127.0.0.1";
  int master_port = 29500;
  std::string source;  // "torchrun", "slurm", "openmpi" or "" (one process)
};
using EnvironmentLookup = std::function<const char*(const char*)>;
// Throws graft::Error naming the variable when a value is not a number or out of range.
DistributedEnvironment distributed_environment(const EnvironmentLookup& lookup);
DistributedEnvironment distributed_environment();  // this process's environment

// The process group of this run, made on first use from the environment; nullptr for one
// process. Every rank must reach its first use (the training loop's start).
class ProcessGroup {
 public:
  explicit ProcessGroup(const DistributedEnvironment& environment);
  ~ProcessGroup();
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // Averages the gradients of `parameters` over the ranks, in one flattened bucket per dtype.
  void average_gradients(const std::vector<torch::Tensor>& parameters);
  // The mean of a number over the ranks (a logged loss).
  double mean(double value);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_size_ = 1;
};
ProcessGroup* process_group();

// This rank's items of a global batch of `batch_size`: [rank * B / W, (rank + 1) * B / W), the
// whole batch for one process. The batch size must divide by the world size, so the ranks' mean
// losses average to the global batch's mean; else graft::Error says so.
datasets::BatchShare rank_share_of_batch(int batch_size);
// The same items cut from a whole global batch along dimension 0 (for tasks whose batches are
// drawn whole: classification chips).
torch::Tensor shard_of_batch(const torch::Tensor& batch);
// graft train --nproc N: runs this program N times with the same arguments as ranks 0..N-1 of
// one run on this machine (torchrun's variables, LOCAL_WORLD_SIZE, MASTER_ADDR 127.0.0.1 and a
// free port), waits for all, and returns the first failing rank's exit status, or 0. When a rank
// fails, the others are stopped (SIGTERM) rather than left waiting for it in an allreduce.
int launch_local_ranks(char** argv, int nproc);

// How many ranks share this machine's cores: LOCAL_WORLD_SIZE (torchrun and graft train --nproc
// set it), 1 otherwise.
int local_world_size();

// True for rank 0 or a single process: the one that writes checkpoints, logs and the model.
bool is_writing_rank();

}  // namespace graft::finetune
