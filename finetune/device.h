#pragma once

// Where the tensors of a run live and at which precision the forward pass computes: `--device
// cpu|cuda|cuda:N` and `--precision fp32|bf16|fp16` on every command that runs a model, and
// train.device / train.precision in a run file.
#include <torch/torch.h>

#include <string>

namespace graft::finetune {

enum class Precision { kFloat32, kBFloat16, kFloat16 };

struct ComputeTarget {
  torch::Device device = torch::kCPU;
  Precision precision = Precision::kFloat32;
};

// "cpu", "cuda" (this process's GPU: cuda:LOCAL_RANK in a data-parallel run) or "cuda:N".
// Throws graft::UsageError naming `where` (the flag or run-file field) for an unknown spelling,
// and graft::Error when this LibTorch has no CUDA or N is not one of the visible GPUs.
torch::Device parse_device(const std::string& spec, const std::string& where);

// "fp32", "bf16" or "fp16". fp16 needs CUDA (its loss scaling guards half's narrow range; CPU
// autocast computes in bf16 only). Errors name `where`.
Precision parse_precision(const std::string& name, torch::Device device, const std::string& where);
std::string precision_name(Precision precision);

ComputeTarget compute_target(const std::string& device, const std::string& precision, const std::string& where);

// The device of a module's first parameter (CPU for a module without parameters): tasks move each
// batch to where the model is.
torch::Device device_of(torch::nn::Module& module);

// A CPU batch on `device`: for CUDA from pinned memory without blocking, so the copy overlaps the
// work already queued on the GPU; unchanged on the CPU.
torch::Tensor to_device(const torch::Tensor& batch, torch::Device device);

// Waits for the work queued on a CUDA device (for timing); nothing on the CPU.
void synchronize(torch::Device device);

// A model output on the host in fp32, whatever device and autocast produced it, for reading its
// values.
torch::Tensor to_host_float(const torch::Tensor& output);

// Automatic mixed precision for the scope's forward passes (LibTorch's autocast, as
// torch.autocast): matrix products and convolutions in bf16/fp16, reductions and losses in fp32.
// Does nothing at fp32. Weights and their gradients stay fp32.
class AutocastScope {
 public:
  AutocastScope(torch::Device device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

// fp16's dynamic loss scaling (torch.cuda.amp.GradScaler's rule): the loss is multiplied by the
// scale before backward; the gradients are divided by it before clipping; a step whose gradients
// hold an inf or NaN is skipped and the scale halves; after `growth_interval` good steps in a row
// it doubles. Inactive (scale 1, never skips) for fp32 and bf16, whose range needs no scaling.
class LossScaler {
 public:
  explicit LossScaler(bool active, double initial_scale = 65536.0, int growth_interval = 2000);
  bool active() const { return active_; }
  double scale() const { return scale_; }
  torch::Tensor scale_loss(const torch::Tensor& loss) const;
  // Divides every gradient by the scale; returns false (and updates the scale) when one is not
  // finite, in which case the caller skips the optimizer step.
  bool unscale_and_check(const std::vector<torch::Tensor>& parameters);
  // Called after a step was taken, for the growth count.
  void step_taken();
  // Kept in the checkpoint so a resumed fp16 run continues with the same scale.
  void restore(double scale, int good_steps);
  int good_steps() const { return good_steps_; }

 private:
  bool active_;
  double scale_;
  int growth_interval_;
  int good_steps_ = 0;
};

}  // namespace graft::finetune
