#include "datasets/chip_data.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <set>

#include "datasets/image_tensor.h"
#include "datasets/segmentation_data.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/numpy/npy.h"

namespace graft::datasets {

std::vector<std::string> class_names_of(const std::vector<CaseEntry>& cases) {
  std::set<std::string> names;
  for (const auto& entry : cases) names.insert(entry.classes.begin(), entry.classes.end());
  return {names.begin(), names.end()};
}

namespace {

std::vector<int> class_indices(const std::string& source, const std::vector<std::string>& names,
                               const std::vector<std::string>& class_names, bool multi_label) {
  if (names.empty()) throw Error(source + ": the chip has no class");
  if (!multi_label && names.size() > 1) {
    throw Error(source + ": the chip has " + std::to_string(names.size()) +
                " classes in a single-label run (set multi_label: true for a multi-label task)");
  }
  std::vector<int> indices;
  for (const std::string& name : names) {
    const auto found = std::find(class_names.begin(), class_names.end(), name);
    if (found == class_names.end()) {
      std::string known;
      for (const auto& n : class_names) known += (known.empty() ? "" : ", ") + n;
      throw Error(source + ": class '" + name + "' is not one of the run's class_names (" + known + ")");
    }
    indices.push_back(static_cast<int>(found - class_names.begin()));
  }
  return indices;
}

PreparedChip assemble(const std::string& id, const std::string& source, std::vector<int> classes,
                      PreprocessedVolumes volumes) {
  PreparedChip chip;
  chip.id = id;
  chip.image_path = source;
  chip.classes = std::move(classes);
  chip.plan = std::move(volumes.plan);
  chip.image = image_to_tensor(volumes.image).squeeze(1);
  return chip;
}

}  // namespace

PreprocessedVolumes prepare_chip_pixels(const std::string& source, const io::Image& image,
                                        const preprocess::Contract& contract,
                                        const preprocess::PlanOptions& plan_options) {
  if (image.geometry().size_xyz[2] != 1) {
    throw Error(source + ": a scene-classification chip must be 2D (it has " +
                std::to_string(image.geometry().size_xyz[2]) + " slices)");
  }
  refuse_nan_voxels(image, source);
  PreprocessedVolumes volumes;
  volumes.plan = preprocess::make_plan(contract, image, plan_options);
  volumes.image = preprocess::apply(volumes.plan, image);
  return volumes;
}

PreparedChip prepare_chip(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label, PreprocessedCache& cache) {
  // Labels are checked before the pixels are read, so a manifest typo fails fast.
  if (entry.classes.empty()) throw Error(entry.image + ": the manifest gives this chip no class");
  std::vector<int> classes = class_indices(entry.image, entry.classes, class_names, multi_label);
  nlohmann::json recipe = preprocessing_recipe(contract, plan_options);
  recipe["kind"] = "classification chip";
  PreprocessedVolumes volumes = cache.get_or_make({entry.image}, recipe, [&] {
    return prepare_chip_pixels(entry.image, io::read(entry.image), contract, plan_options);
  });
  return assemble(entry.id, entry.image, std::move(classes), std::move(volumes));
}

PreparedChip prepare_chip(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label) {
  PreprocessedCache no_cache;
  return prepare_chip(entry, contract, plan_options, class_names, multi_label, no_cache);
}

PreparedChip prepare_chip(const InMemoryChip& chip, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, const std::vector<std::string>& class_names,
                          bool multi_label) {
  std::vector<int> classes = class_indices(chip.id, chip.classes, class_names, multi_label);
  return assemble(chip.id, chip.id, std::move(classes), prepare_chip_pixels(chip.id, chip.image, contract, plan_options));
}

std::vector<InMemoryChip> read_medmnist_npz(const std::string& path, const std::vector<std::string>& class_names,
                                            bool multi_label) {
  const auto arrays = io::read_npz(path);
  std::vector<InMemoryChip> chips;
  for (const std::string split : {"train", "val", "test"}) {
    const auto images = arrays.find(split + "_images"), labels = arrays.find(split + "_labels");
    if (images == arrays.end() && labels == arrays.end()) continue;
    if (images == arrays.end() || labels == arrays.end()) {
      throw Error(path + ": has " + (images == arrays.end() ? split + "_labels but no " + split + "_images"
                                                            : split + "_images but no " + split + "_labels"));
    }
    const io::NpyArray& pixels = images->second;
    const io::NpyArray& label = labels->second;
    const auto& shape = pixels.shape;
    const bool colour = shape.size() == 4 && shape[3] == 3;
    if (pixels.dtype != io::DType::kU8 || (shape.size() != 3 && !colour)) {
      throw Error(path + ": " + split + "_images must be uint8 (N, H, W) or (N, H, W, 3)");
    }
    const std::int64_t count = shape[0], height = shape[1], width = shape[2];
    if (label.shape.size() != 2 || label.shape[0] != count || !io::dtype_is_integer(label.dtype)) {
      throw Error(path + ": " + split + "_labels must be integer (" + std::to_string(count) + ", K)");
    }
    const std::int64_t columns = label.shape[1];
    if (!multi_label && columns != 1) {
      throw Error(path + ": " + split + "_labels has " + std::to_string(columns) +
                  " columns: a multi-label dataset (set multi_label: true)");
    }
    auto label_at = [&](std::int64_t i) {
      return io::visit_dtype(label.dtype, [&](auto type) -> std::int64_t {
        using T = decltype(type);
        T value;
        std::memcpy(&value, label.bytes.data() + i * sizeof(T), sizeof(T));
        return static_cast<std::int64_t>(value);
      });
    };
    auto name_of = [&](std::int64_t k) {
      if (class_names.empty()) return std::to_string(k);
      if (k < 0 || k >= static_cast<std::int64_t>(class_names.size())) {
        throw Error(path + ": " + split + "_labels holds " + std::to_string(k) + ", beyond the run's " +
                    std::to_string(class_names.size()) + " class_names");
      }
      return class_names[k];
    };
    io::Geometry grid;
    grid.size_xyz = {width, height, 1};
    const std::int64_t plane = width * height;
    for (std::int64_t n = 0; n < count; ++n) {
      InMemoryChip chip{path + "#" + split + "/" + std::to_string(n), split, io::Image(io::DType::kU8, colour ? 3 : 1, grid), {}};
      const std::uint8_t* source = pixels.bytes.data() + n * plane * (colour ? 3 : 1);
      std::uint8_t* target = chip.image.data<std::uint8_t>();
      if (colour) {
        for (std::int64_t i = 0; i < plane; ++i)
          for (int c = 0; c < 3; ++c) target[c * plane + i] = source[i * 3 + c];
        chip.image.metadata().band_names = {"Red", "Green", "Blue"};
      } else {
        std::memcpy(target, source, plane);
      }
      if (multi_label) {
        for (std::int64_t k = 0; k < columns; ++k) {
          if (label_at(n * columns + k) != 0) chip.classes.push_back(name_of(k));
        }
      } else {
        chip.classes.push_back(name_of(label_at(n)));
      }
      chips.push_back(std::move(chip));
    }
  }
  if (chips.empty()) throw Error(path + ": no {train,val,test}_images / _labels arrays (MedMNIST's layout)");
  return chips;
}

std::vector<std::int64_t> epoch_order(std::int64_t count, std::uint64_t seed, int epoch) {
  std::vector<std::int64_t> order(count);
  for (std::int64_t i = 0; i < count; ++i) order[i] = i;
  std::mt19937_64 random(seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), random);
  return order;
}

torch::Tensor chip_targets(const std::vector<PreparedChip>& chips, const std::vector<std::int64_t>& indices, int classes,
                          bool multi_label) {
  const auto count = static_cast<std::int64_t>(indices.size());
  torch::Tensor targets = multi_label ? torch::zeros({count, classes}) : torch::empty({count}, torch::kInt64);
  for (std::int64_t b = 0; b < count; ++b) {
    const PreparedChip& chip = chips.at(indices[b]);
    if (multi_label) {
      for (int c : chip.classes) targets[b][c] = 1.0f;
    } else {
      targets[b] = chip.classes.front();
    }
  }
  return targets;
}

ChipBatch chip_batch(const std::vector<PreparedChip>& chips, const std::vector<std::int64_t>& indices, int classes,
                     bool multi_label, bool augment, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<torch::Tensor> images;
  ChipBatch batch;
  batch.targets = chip_targets(chips, indices, classes, multi_label);
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
  }
  batch.image = torch::stack(images).contiguous();
  return batch;
}

}  // namespace graft::datasets
