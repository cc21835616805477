#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "backbones/backbone.h"
#include "finetune/device.h"

namespace graft::finetune {

enum class HeadKind {
  kMedicalNet,  // MedicalNet's conv_seg on the deepest features, upsampled to the input
  kUNet,        // a U-Net-style decoder over every feature level
  // nnU-Net's own decoder over an nnU-Net encoder: the backbone and head are registered as
  // "encoder" and "decoder", so the model's tensors keep nnU-Net's names.
  kNnUNet,
};

HeadKind head_kind_from_name(const std::string& name);  // "medicalnet", "unet" or "nnunet"

// A backbone (submodule "backbone") and a segmentation head (submodule "head") that returns
// logits (B, classes, D, H, W) at the input's resolution. With HeadKind::kNnUNet the backbone
// must be a backbones::NnUNetEncoderImpl, and the two are "encoder" and "decoder".
class SegmentationModelImpl : public torch::nn::Module {
 public:
  SegmentationModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone, HeadKind head, int classes);
  torch::Tensor forward(const torch::Tensor& input);
  // The logits before the head's last upsampling to the input, at a quarter of the input's size
  // for the MedicalNet head (whose forward upsamples them trilinearly, align_corners false) and at
  // the input's for the U-Net head: prediction with many classes upsamples them window by window
  // together with the softmax instead of holding every class at full resolution.
  torch::Tensor forward_before_upsampling(const torch::Tensor& input);

  // Another network of the same architecture whose logits are averaged with this one's (an
  // nnU-Net fold ensemble, as nnU-Net averages its folds' logits). Members are the submodules
  // ensemble.0, ensemble.1, ...; a model with members predicts but does not train.
  void add_ensemble_member(std::shared_ptr<SegmentationModelImpl> member);
  int ensemble_size() const { return 1 + static_cast<int>(members_.size()); }

  backbones::BackboneImpl& backbone() { return *backbone_; }
  torch::nn::Module& head() { return *head_; }
  int classes() const { return classes_; }

 private:
  std::shared_ptr<backbones::BackboneImpl> backbone_;
  std::shared_ptr<torch::nn::Module> head_;
  HeadKind head_kind_;
  int classes_;
  torch::nn::ModuleList ensemble_{nullptr};
  std::vector<std::shared_ptr<SegmentationModelImpl>> members_;

  torch::Tensor own_logits_before_upsampling(const torch::Tensor& input);
};
TORCH_MODULE(SegmentationModel);

// Sets LibTorch's intra-op threads: `requested`, or every core for 0. Debian's LibTorch starts
// with one thread, so without this a 2-core machine would train on half of it. Returns the count.
int set_compute_threads(int requested);

// The benches' training step: `optimizer` ("sgd": momentum 0.9, or "adamw") over the parameters
// that need gradients, on cross-entropy, the host batch (x, y) copied to target.device every step
// as a loader's batch is, autocast at target.precision and fp16 loss scaling. Returns seconds per
// step over `steps` timed steps, after one warm-up step.
double seconds_per_training_step(SegmentationModelImpl& model, const torch::Tensor& x, const torch::Tensor& y,
                                 const ComputeTarget& target, int steps, const std::string& optimizer = "sgd");

// Dice + cross-entropy (nnU-Net's default): CE plus 1 - soft Dice averaged over the foreground
// classes, with Dice computed over the whole batch.
torch::Tensor dice_ce_loss(const torch::Tensor& logits, const torch::Tensor& labels);
// Focal loss (Lin et al. 2017), gamma 2, mean over voxels.
torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& labels, double gamma = 2.0);

}  // namespace graft::finetune
