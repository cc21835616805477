#include "finetune/segmentation_metrics.h"

#include <cmath>

#include "io/error.h"

namespace graft::finetune {

std::map<std::int64_t, double> dice_per_label(const io::Image& prediction,
                                              const io::Image& reference) {
  if (!prediction.geometry().same_grid(reference.geometry(), 1e-3)) {
    throw Error("prediction and reference lie on different grids: " +
                prediction.geometry().describe_difference(reference.geometry(), 1e-3));
  }
  if (prediction.element_count() != reference.element_count()) {
    throw Error("prediction and reference have different channel counts");
  }
  struct Counts {
    std::int64_t predicted = 0, reference = 0, overlap = 0;
  };
  std::map<std::int64_t, Counts> counts;
  for (std::int64_t i = 0; i < prediction.element_count(); ++i) {
    const auto p = static_cast<std::int64_t>(std::llround(prediction.value_at(i)));
    const auto r = static_cast<std::int64_t>(std::llround(reference.value_at(i)));
    if (p != 0) ++counts[p].predicted;
    if (r != 0) ++counts[r].reference;
    if (p != 0 && p == r) ++counts[p].overlap;
  }
  std::map<std::int64_t, double> dice;
  for (const auto& [label, c] : counts) {
    dice[label] = 2.0 * static_cast<double>(c.overlap) / static_cast<double>(c.predicted + c.reference);
  }
  return dice;
}

}  // namespace graft::finetune
