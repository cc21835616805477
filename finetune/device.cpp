#include "finetune/device.h"

#include <ATen/autocast_mode.h>

#include <cmath>

#include "finetune/distributed.h"
#include "io/error.h"

namespace graft::finetune {

torch::Device parse_device(const std::string& spec, const std::string& where) {
  if (spec == "cpu") return torch::kCPU;
  int index = -1;
  if (spec == "cuda") {
    index = distributed_environment().local_rank;  // one process per GPU in a data-parallel run
  } else if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5 &&
             spec.find_first_not_of("0123456789", 5) == std::string::npos && spec.size() <= 8) {
    index = std::stoi(spec.substr(5));
  } else {
    throw UsageError(where + ": unknown device '" + spec + "' (expected cpu, cuda or cuda:N)");
  }
  if (!torch::cuda::is_available()) {
    throw Error(where + ": device '" + spec +
                "' asked for, but this LibTorch has no CUDA or no GPU is visible (Debian's libtorch is built for "
                "the CPU only; build graft against a CUDA LibTorch, e.g. with GRAFT_COMPUTE_ONLY=ON on the GPU "
                "machine)");
  }
  const int visible = static_cast<int>(torch::cuda::device_count());
  if (index >= visible) {
    throw Error(where + ": device '" + spec + "' asked for, but " + std::to_string(visible) +
                " GPU(s) are visible (cuda:0 .. cuda:" + std::to_string(visible - 1) + ")");
  }
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

Precision parse_precision(const std::string& name, torch::Device device, const std::string& where) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  if (name == "fp16") {
    if (!device.is_cuda()) {
      throw UsageError(where + ": fp16 needs a CUDA device (on the CPU, mixed precision is bf16)");
    }
    return Precision::kFloat16;
  }
  throw UsageError(where + ": unknown precision '" + name + "' (expected fp32, bf16 or fp16)");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::kBFloat16: return "bf16";
    case Precision::kFloat16: return "fp16";
    case Precision::kFloat32: break;
  }
  return "fp32";
}

ComputeTarget compute_target(const std::string& device, const std::string& precision, const std::string& where) {
  ComputeTarget target;
  target.device = parse_device(device, where);
  target.precision = parse_precision(precision, target.device, where);
  return target;
}

torch::Device device_of(torch::nn::Module& module) {
  const auto parameters = module.parameters();
  return parameters.empty() ? torch::Device(torch::kCPU) : parameters.front().device();
}

torch::Tensor to_device(const torch::Tensor& batch, torch::Device device) {
  if (batch.device() == device) return batch;
  if (device.is_cuda() && batch.device().is_cpu()) {
    // The loader's workers pin their batches ahead of time; anything else is pinned here.
    return (batch.is_pinned() ? batch : batch.pin_memory()).to(device, /*non_blocking=*/true);
  }
  return batch.to(device);
}

void synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

torch::Tensor to_host_float(const torch::Tensor& output) {
  return output.to(torch::TensorOptions().device(torch::kCPU).dtype(torch::kFloat32));
}

AutocastScope::AutocastScope(torch::Device device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  const at::ScalarType dtype = precision == Precision::kFloat16 ? at::kHalf : at::kBFloat16;
  if (cuda_) {
    was_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    was_enabled_ = at::autocast::is_cpu_enabled();
    previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The cast weights are cached for the scope; the outermost scope drops them, as torch.autocast.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  }
}

LossScaler::LossScaler(bool active, double initial_scale, int growth_interval)
    : active_(active), scale_(active ? initial_scale : 1.0), growth_interval_(growth_interval) {}

torch::Tensor LossScaler::scale_loss(const torch::Tensor& loss) const { return active_ ? loss * scale_ : loss; }

bool LossScaler::unscale_and_check(const std::vector<torch::Tensor>& parameters) {
  if (!active_) return true;
  torch::NoGradGuard no_grad;
  // One flag on the gradients' device, read once: an item() per tensor would wait for a GPU once
  // per parameter in every step.
  torch::Tensor all_finite;
  for (const auto& parameter : parameters) {
    if (!parameter.grad().defined()) continue;
    parameter.grad().div_(scale_);
    const torch::Tensor finite = torch::isfinite(parameter.grad()).all();
    all_finite = all_finite.defined() ? all_finite.logical_and(finite) : finite;
  }
  const bool finite = !all_finite.defined() || all_finite.item<bool>();
  if (!finite) {
    scale_ *= 0.5;
    good_steps_ = 0;
  }
  return finite;
}

void LossScaler::step_taken() {
  if (!active_) return;
  if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
}

void LossScaler::restore(double scale, int good_steps) {
  if (!active_) return;
  scale_ = scale;
  good_steps_ = good_steps;
}

}  // namespace graft::finetune
