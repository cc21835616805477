#pragma once

#include <torch/torch.h>

namespace graft::backbones {

// Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"):
// a block run this way keeps only its input for the backward pass, and runs its forward again there
// to compute its gradients. Memory for the activations falls from every block's intermediates to
// the block inputs plus one block's intermediates, for about one more forward pass per step.

// A block that can be run that way: its forward must be a function of its input and parameters
// alone (no dropout, nothing random), so running it twice gives the same result.
class CheckpointableBlock {
 public:
  virtual ~CheckpointableBlock() = default;
  virtual torch::Tensor run(const torch::Tensor& input) = 0;
};

// What a backbone whose blocks can be checkpointed inherits, so set_activation_checkpointing finds it.
struct BlockCheckpointingHolder {
  virtual ~BlockCheckpointingHolder() = default;
  bool checkpoint_blocks = false;
};

// Turns checkpointing on or off for every holder in `model`; returns how many took it (0: none).
int set_activation_checkpointing(torch::nn::Module& model, bool on);

// block.run(input), checkpointed when gradients are being recorded and the input or one of the
// block's parameters needs one. `block` is a module that inherits CheckpointableBlock, and must
// outlive the backward pass (a model's own submodule does).
torch::Tensor run_checkpointed(torch::nn::Module& block, const torch::Tensor& input);

}  // namespace graft::backbones
