#pragma once

#include <torch/torch.h>

#include "io/image.h"

namespace graft::datasets {

// The voxels as a (C, Z, Y, X) tensor of the image's own dtype. The tensor owns a copy, so it
// outlives the image.
torch::Tensor image_to_tensor(const io::Image& image);

// A (C, Z, Y, X) or (Z, Y, X) tensor back into an Image on `geometry`. Sizes must match.
io::Image tensor_to_image(const torch::Tensor& tensor, const io::Geometry& geometry);

}  // namespace graft::datasets
