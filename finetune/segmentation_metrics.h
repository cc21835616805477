#pragma once

#include <cstdint>
#include <map>

#include "io/image.h"

namespace graft::finetune {

// Dice = 2|P ∩ R| / (|P| + |R|) for every label present in either map except background 0. A
// label absent from both is not reported; one absent from just one scores 0.
std::map<std::int64_t, double> dice_per_label(const io::Image& prediction,
                                              const io::Image& reference);

}  // namespace graft::finetune
