#pragma once

// An anchor-free detector (FCOS, Tian et al. 2019, with its centre sampling and normalised
// regression) on any backbone's features, in 2D and 3D: an FPN over the backbone's distinct
// strides of 4 and more, and one head shared by every level that predicts, per location, class
// scores, the distances to the box's faces (2 per axis) and centre-ness. Trained with sigmoid
// focal loss, GIoU loss (3D IoU for volumes) weighted by centre-ness, and centre-ness BCE.
//
// Anchor-free rather than RetinaNet: anchors must be tuned to the object sizes of each dataset
// (nodules of 3 to 30 mm, clumps of a few pixels, cells), their count multiplies with every
// added dimension (MONAI's 3D RetinaNet carries scales x aspect ratios per voxel), and ATSS
// showed that once positives are sampled alike the anchor-free and anchor-based detectors reach
// the same accuracy. FCOS's targets follow the box from the location itself, the same in 2D
// and 3D.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "backbones/backbone.h"
#include "io/boxes.h"

namespace graft::finetune {

struct DetectionOutput {
  std::vector<torch::Tensor> class_logits;  // per level (B, K, *spatial)
  std::vector<torch::Tensor> distances;     // per level (B, 2 * dims, *spatial), input voxels, > 0
  std::vector<torch::Tensor> centreness;    // per level (B, 1, *spatial), logits
  std::vector<std::int64_t> strides;        // per level, input voxels per location
};

struct DetectionDecodeOptions {
  double score_threshold = 0.05;
  double nms_iou = 0.3;
  int candidates_per_level = 1000;
  int max_detections = 100;
};

class DetectionModelImpl : public torch::nn::Module {
 public:
  // `classes` counts foreground classes (label 1..classes).
  DetectionModelImpl(std::shared_ptr<backbones::BackboneImpl> backbone, int classes, std::int64_t fpn_channels = 64);

  // Input (B, C, D, H, W); a 2D backbone takes (B, C, 1, H, W), as segmentation does.
  DetectionOutput forward(const torch::Tensor& input);

  backbones::BackboneImpl& backbone() { return *backbone_; }
  torch::nn::Module& head() { return *head_; }
  int classes() const { return classes_; }
  int spatial_dims() const { return backbone_->spatial_dims(); }

 private:
  std::shared_ptr<backbones::BackboneImpl> backbone_;
  std::shared_ptr<torch::nn::Module> head_;
  int classes_;
};
TORCH_MODULE(DetectionModel);

// FCOS's training loss for a batch: `boxes[b]` are the reference boxes of batch item b in its
// input's continuous index space (labels 1..K). Returns focal + GIoU + centre-ness.
torch::Tensor detection_loss(const DetectionOutput& output, const std::vector<std::vector<io::Box>>& boxes);

// Detections of batch item b, in its input's continuous index space (2D: z spans [-0.5, 0.5]),
// clipped to the input, after per-class NMS, highest score first.
std::vector<std::vector<io::Box>> decode_detections(const DetectionOutput& output, torch::IntArrayRef input_size,
                                                    const DetectionDecodeOptions& options);

}  // namespace graft::finetune
