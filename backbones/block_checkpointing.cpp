#include "backbones/block_checkpointing.h"

#include <ATen/autocast_mode.h>

#include "backbones/backbone.h"
#include "io/error.h"

namespace graft::backbones {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The autocast state of the forward pass, put back for the recomputation in the backward pass,
// which runs after the training step's autocast scope has closed.
struct AutocastState {
  bool cpu = false, gpu = false;
  at::ScalarType cpu_dtype = at::kBFloat16, gpu_dtype = at::kHalf;

  static AutocastState current() {
    return {at::autocast::is_cpu_enabled(), at::autocast::is_enabled(), at::autocast::get_autocast_cpu_dtype(),
            at::autocast::get_autocast_gpu_dtype()};
  }
  void apply() const {
    at::autocast::set_cpu_enabled(cpu);
    at::autocast::set_enabled(gpu);
    at::autocast::set_autocast_cpu_dtype(cpu_dtype);
    at::autocast::set_autocast_gpu_dtype(gpu_dtype);
  }
};

std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& block) {
  std::vector<torch::Tensor> trainable;
  for (const auto& parameter : block.parameters()) {
    if (parameter.requires_grad()) trainable.push_back(parameter);
  }
  return trainable;
}

CheckpointableBlock& as_checkpointable(torch::nn::Module& block) {
  auto* checkpointable = dynamic_cast<CheckpointableBlock*>(&block);
  if (checkpointable == nullptr) throw Error("module " + block.name() + " cannot be checkpointed");
  return *checkpointable;
}

class CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
 public:
  // The trainable parameters are inputs, so the output needs a gradient whenever one of them does,
  // even when the input does not (a frozen embedding before LoRA-adapted blocks).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, torch::TensorList /*parameters*/,
                               torch::nn::Module* block) {
    ctx->save_for_backward({input});
    ctx->saved_data["block"] = reinterpret_cast<std::int64_t>(block);
    const AutocastState autocast = AutocastState::current();
    ctx->saved_data["autocast_cpu"] = autocast.cpu;
    ctx->saved_data["autocast_gpu"] = autocast.gpu;
    ctx->saved_data["autocast_cpu_dtype"] = static_cast<std::int64_t>(autocast.cpu_dtype);
    ctx->saved_data["autocast_gpu_dtype"] = static_cast<std::int64_t>(autocast.gpu_dtype);
    // Autograd records nothing here: a Function's forward runs with gradients off.
    return as_checkpointable(*block).run(input);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const torch::Tensor input = ctx->get_saved_variables()[0];
    auto* block = reinterpret_cast<torch::nn::Module*>(ctx->saved_data["block"].toInt());
    const std::vector<torch::Tensor> parameters = trainable_parameters(*block);
    const bool want_input = ctx->needs_input_grad(0);
    const torch::Tensor detached = input.detach().requires_grad_(want_input);
    const AutocastState outside = AutocastState::current();
    AutocastState{ctx->saved_data["autocast_cpu"].toBool(), ctx->saved_data["autocast_gpu"].toBool(),
                  static_cast<at::ScalarType>(ctx->saved_data["autocast_cpu_dtype"].toInt()),
                  static_cast<at::ScalarType>(ctx->saved_data["autocast_gpu_dtype"].toInt())}
        .apply();
    torch::Tensor output;
    try {
      torch::AutoGradMode recording(true);
      output = as_checkpointable(*block).run(detached);
    } catch (...) {
      outside.apply();
      throw;
    }
    outside.apply();
    variable_list wanted = parameters;
    if (want_input) wanted.insert(wanted.begin(), detached);
    variable_list grads = torch::autograd::grad({output}, wanted, {grad_outputs[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    variable_list result;
    result.push_back(want_input ? grads[0] : torch::Tensor());
    result.insert(result.end(), grads.begin() + (want_input ? 1 : 0), grads.end());
    result.push_back(torch::Tensor());  // the block's address
    return result;
  }
};

}  // namespace

int set_activation_checkpointing(torch::nn::Module& model, bool on) {
  return apply_to_holders<BlockCheckpointingHolder>(model, [&](BlockCheckpointingHolder& holder) {
    holder.checkpoint_blocks = on;
  });
}

torch::Tensor run_checkpointed(torch::nn::Module& block, const torch::Tensor& input) {
  const std::vector<torch::Tensor> parameters = trainable_parameters(block);
  const bool records = torch::GradMode::is_enabled() && (input.requires_grad() || !parameters.empty());
  if (!records) return as_checkpointable(block).run(input);
  return CheckpointedBlock::apply(input, torch::TensorList(parameters), &block);
}

}  // namespace graft::backbones
