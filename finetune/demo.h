#pragma once

#include <string>

namespace graft::finetune {

struct DemoResult {
  double pretrained_dice = 0.0;
  double scratch_dice = 0.0;
  int epochs = 0;
};

// graft's main job on built-in data: synthetic CT cases (random spacing and orientation) are
// written as NIfTI; a Med3D ResNet-10 is pretrained on a source task (segment one organ), or the
// cached result of an earlier run is reused; then a different target organ is learned from a few
// labelled volumes, once from the pretrained backbone and once from scratch, with equal epochs.
// Prints both validation Dice curves, writes dice_curves.svg and the predicted masks as NIfTI, and
// ends with "demo: validation dice X.XX (pretrained) vs Y.YY (scratch) after N epochs".
DemoResult run_demo(const std::string& folder, bool quick = false);

}  // namespace graft::finetune
