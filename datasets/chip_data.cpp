#include "datasets/chip_data.h"

#include <algorithm>
#include <random>
#include <set>

#include "datasets/image_tensor.h"
#include "datasets/segmentation_data.h"
#include "io/error.h"
#include "io/image_file.h"

namespace graft::datasets {

std::vector<std::string> class_names_of(const std::vector<CaseEntry>& cases) {
  std::set<std::string> names;
  for (const auto& entry : cases) names.insert(entry.classes.begin(), entry.classes.end());
  return {names.begin(), names.end()};
}

PreparedChip prepare_chip(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label) {
  if (entry.classes.empty()) throw Error(entry.image + ": the manifest gives this chip no class");
  if (!multi_label && entry.classes.size() > 1) {
    throw Error(entry.image + ": the manifest gives this chip " + std::to_string(entry.classes.size()) +
                " classes in a single-label run (set multi_label: true for a multi-label task)");
  }
  PreparedChip chip;
  chip.id = entry.id;
  chip.image_path = entry.image;
  for (const std::string& name : entry.classes) {
    const auto found = std::find(class_names.begin(), class_names.end(), name);
    if (found == class_names.end()) {
      std::string known;
      for (const auto& n : class_names) known += (known.empty() ? "" : ", ") + n;
      throw Error(entry.image + ": class '" + name + "' is not one of the run's class_names (" + known + ")");
    }
    chip.classes.push_back(static_cast<int>(found - class_names.begin()));
  }
  const io::Image image = io::read(entry.image);
  if (image.geometry().size_xyz[2] != 1) {
    throw Error(entry.image + ": a scene-classification chip must be 2D (it has " +
                std::to_string(image.geometry().size_xyz[2]) + " slices)");
  }
  refuse_nan_voxels(image, entry.image);
  chip.plan = preprocess::make_plan(contract, image, plan_options);
  chip.image = image_to_tensor(preprocess::apply(chip.plan, image)).squeeze(1);
  return chip;
}

std::vector<std::int64_t> epoch_order(std::int64_t count, std::uint64_t seed, int epoch) {
  std::vector<std::int64_t> order(count);
  for (std::int64_t i = 0; i < count; ++i) order[i] = i;
  std::mt19937_64 random(seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), random);
  return order;
}

ChipBatch chip_batch(const std::vector<PreparedChip>& chips, const std::vector<std::int64_t>& indices, int classes,
                     bool multi_label, bool augment, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<torch::Tensor> images;
  ChipBatch batch;
  batch.targets = multi_label ? torch::zeros({static_cast<std::int64_t>(indices.size()), classes})
                              : torch::empty({static_cast<std::int64_t>(indices.size())}, torch::kInt64);
  for (std::size_t b = 0; b < indices.size(); ++b) {
    const PreparedChip& chip = chips.at(indices[b]);
    torch::Tensor image = chip.image;
    if (augment) {
      const auto draw = random();
      if (draw & 1) image = image.flip({2});
      const int quarter_turns = static_cast<int>((draw >> 1) & 3);
      // rot90 needs a square chip; a non-square one keeps only the flips.
      if (quarter_turns && image.size(1) == image.size(2)) image = image.rot90(quarter_turns, {1, 2});
    }
    images.push_back(image);
    if (multi_label) {
      for (int c : chip.classes) batch.targets[b][c] = 1.0f;
    } else {
      batch.targets[b] = chip.classes.front();
    }
  }
  batch.image = torch::stack(images).contiguous();
  return batch;
}

}  // namespace graft::datasets
