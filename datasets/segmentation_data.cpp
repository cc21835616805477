#include "datasets/segmentation_data.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <random>

#include "datasets/image_tensor.h"
#include "io/label_file.h"
#include "io/error.h"
#include "io/image_file.h"

namespace graft::datasets {

void refuse_nan_voxels(const io::Image& image, const std::string& path) {
  if (io::dtype_is_integer(image.dtype())) return;
  std::int64_t nan_count = 0;
  for (std::int64_t i = 0; i < image.element_count(); ++i) nan_count += std::isnan(image.value_at(i));
  if (nan_count > 0) throw Error(path + ": " + std::to_string(nan_count) + " voxels are NaN; fix or mask them first");
}

PreparedCase prepare_case(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, int classes, PreprocessedCache& cache,
                          const std::vector<std::string>& foreground_names) {
  PreparedCase prepared;
  prepared.id = entry.id;
  prepared.image_path = entry.image;
  prepared.label_path = entry.label;
  std::vector<std::string> sources{entry.image};
  if (!entry.label.empty()) sources.push_back(entry.label);
  nlohmann::json recipe = preprocessing_recipe(contract, plan_options);
  recipe["kind"] = "segmentation case";
  recipe["classes"] = classes;
  recipe["class_names"] = foreground_names;
  PreprocessedVolumes volumes = cache.get_or_make(sources, recipe, [&] {
    PreprocessedVolumes made;
    const io::Image image = io::read(entry.image);
    refuse_nan_voxels(image, entry.image);
    made.plan = preprocess::make_plan(contract, image, plan_options);
    made.image = preprocess::apply(made.plan, image);
    if (entry.label.empty()) return made;
    const io::Image labels = io::read_label_map(entry.label, entry.image, image.geometry(), foreground_names);
    for (std::int64_t i = 0; i < labels.element_count(); ++i) {
      const double value = labels.value_at(i);
      if (value < 0 || value >= classes || value != std::floor(value)) {
        throw Error(entry.label + ": label value " + std::to_string(value) + " at voxel " + std::to_string(i) +
                    " is outside 0.." + std::to_string(classes - 1) + " (classes = " + std::to_string(classes) + ")");
      }
    }
    made.labels = preprocess::apply_to_labels(made.plan, labels.cast(io::DType::kU8));
    return made;
  });
  prepared.plan = std::move(volumes.plan);
  prepared.image = std::move(volumes.image);
  prepared.labels = std::move(volumes.labels);
  if (entry.label.empty()) return prepared;
  const std::uint8_t* mapped = prepared.labels.data<std::uint8_t>();
  std::vector<std::int64_t> all;
  for (std::int64_t i = 0; i < prepared.labels.element_count(); ++i) {
    if (mapped[i] > 0) all.push_back(i);
  }
  // A bounded, evenly spread sample is enough to centre patches on foreground.
  const std::size_t keep = std::min<std::size_t>(all.size(), 20000);
  for (std::size_t k = 0; k < keep; ++k) prepared.foreground.push_back(all[k * all.size() / keep]);
  return prepared;
}

PreparedCase prepare_case(const CaseEntry& entry, const preprocess::Contract& contract,
                          const preprocess::PlanOptions& plan_options, int classes) {
  PreprocessedCache no_cache;
  return prepare_case(entry, contract, plan_options, classes, no_cache);
}

namespace {

// Copies the patch starting at start_zyx (may reach outside; outside is 0) into out.
template <typename T, typename Out>
void extract_patch(const T* volume, std::int64_t channels, const std::array<std::int64_t, 3>& size_zyx,
                   const std::array<std::int64_t, 3>& start_zyx, const std::array<std::int64_t, 3>& patch_zyx,
                   Out* out) {
  const std::int64_t voxels = size_zyx[0] * size_zyx[1] * size_zyx[2];
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t z = 0; z < patch_zyx[0]; ++z) {
      for (std::int64_t y = 0; y < patch_zyx[1]; ++y) {
        Out* row = out + ((c * patch_zyx[0] + z) * patch_zyx[1] + y) * patch_zyx[2];
        const std::int64_t sz = start_zyx[0] + z, sy = start_zyx[1] + y;
        if (sz < 0 || sz >= size_zyx[0] || sy < 0 || sy >= size_zyx[1]) {
          std::fill(row, row + patch_zyx[2], Out{0});
          continue;
        }
        const T* source = volume + c * voxels + (sz * size_zyx[1] + sy) * size_zyx[2];
        for (std::int64_t x = 0; x < patch_zyx[2]; ++x) {
          const std::int64_t sx = start_zyx[2] + x;
          row[x] = sx < 0 || sx >= size_zyx[2] ? Out{0} : static_cast<Out>(source[sx]);
        }
      }
    }
  }
}

// SplitMix64 of (batch seed, item): neighbouring items get unrelated generator states.
std::uint64_t item_seed(std::uint64_t batch_seed, int item) {
  std::uint64_t z = batch_seed + 0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(item) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void augment(torch::Tensor& image, torch::Tensor& labels, const AugmentOptions& options,
             std::mt19937_64& random) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (options.flip) {
    for (int axis = 1; axis <= 3; ++axis) {
      if (uniform(random) < 0.5) {
        image = image.flip({axis});
        labels = labels.flip({axis - 1});
      }
    }
  }
  if (options.rotate90 && image.size(2) == image.size(3)) {
    const int turns = static_cast<int>(random() % 4);
    if (turns > 0) {
      image = torch::rot90(image, turns, {2, 3});
      labels = torch::rot90(labels, turns, {1, 2});
    }
  }
  if (uniform(random) < options.affine_probability) {
    const double angle = (uniform(random) - 0.5) * 2.0 * 15.0 * M_PI / 180.0;
    const double scale = 0.85 + 0.3 * uniform(random);
    const double c = std::cos(angle) / scale, s = std::sin(angle) / scale;
    // affine_grid's theta maps output to input coordinates in (x, y, z) order.
    const torch::Tensor theta = torch::tensor({c, -s, 0.0, 0.0, s, c, 0.0, 0.0, 0.0, 0.0, 1.0 / scale, 0.0},
                                              torch::kFloat32).reshape({1, 3, 4});
    const torch::Tensor grid = torch::nn::functional::affine_grid(theta, {1, image.size(0), image.size(1), image.size(2), image.size(3)}, false);
    image = torch::grid_sampler(image.unsqueeze(0), grid, 0, 0, false).squeeze(0);
    labels = torch::grid_sampler(labels.unsqueeze(0).unsqueeze(0).to(torch::kFloat32), grid, 1, 0, false)
                 .squeeze(0).squeeze(0).round().to(torch::kInt64);
  }
  if (uniform(random) < options.intensity_probability) {
    image = image * (0.9 + 0.2 * uniform(random)) + (uniform(random) - 0.5) * 0.2;
  }
  if (uniform(random) < options.gamma_probability) {
    const double gamma = 0.7 + 0.8 * uniform(random);
    const torch::Tensor low = image.min(), high = image.max();
    const torch::Tensor range = (high - low).clamp_min(1e-8);
    image = ((image - low) / range).pow(gamma) * range + low;
  }
  if (uniform(random) < options.noise_probability) {
    auto generator = at::detail::createCPUGenerator(random());
    image = image + torch::randn(image.sizes(), generator, torch::kFloat32) * (0.1 * uniform(random));
  }
}

}  // namespace

Batch sample_batch(const std::vector<PreparedCase>& cases, const PatchOptions& options,
                   int batch_size, std::uint64_t seed, const BatchShare& share) {
  if (cases.empty()) throw Error("no training cases to sample from");
  const int first = share.count < 0 ? 0 : share.first;
  const int end = share.count < 0 ? batch_size : share.first + share.count;
  if (first < 0 || end > batch_size || end <= first) {
    throw Error("batch share [" + std::to_string(first) + ", " + std::to_string(end) + ") is not inside a batch of " +
                std::to_string(batch_size));
  }
  const std::int64_t channels = cases.front().image.channels();
  const std::array<std::int64_t, 3> patch{options.patch_xyz[2], options.patch_xyz[1], options.patch_xyz[0]};
  std::vector<torch::Tensor> images, labels;
  for (int b = first; b < end; ++b) {
    std::mt19937_64 random(item_seed(seed, b));
    const PreparedCase& item = cases[random() % cases.size()];
    const auto& n = item.image.geometry().size_xyz;
    const std::array<std::int64_t, 3> size{n[2], n[1], n[0]};
    std::array<std::int64_t, 3> start{};
    const bool foreground = !item.foreground.empty() &&
                            std::uniform_real_distribution<double>(0, 1)(random) < options.foreground_fraction;
    if (foreground) {
      const std::int64_t voxel = item.foreground[random() % item.foreground.size()];
      const std::array<std::int64_t, 3> centre{voxel / (n[0] * n[1]), (voxel / n[0]) % n[1], voxel % n[0]};
      for (int a = 0; a < 3; ++a) {
        // Jitter so the foreground voxel is anywhere in the patch's middle half.
        const std::int64_t jitter = patch[a] / 4 > 0 ? static_cast<std::int64_t>(random() % (patch[a] / 2 + 1)) - patch[a] / 4 : 0;
        start[a] = centre[a] - patch[a] / 2 + jitter;
      }
    } else {
      for (int a = 0; a < 3; ++a) {
        const std::int64_t room = size[a] - patch[a];
        start[a] = room > 0 ? static_cast<std::int64_t>(random() % (room + 1)) : room / 2;
      }
    }
    torch::Tensor image = torch::empty({channels, patch[0], patch[1], patch[2]}, torch::kFloat32);
    extract_patch(item.image.data<float>(), channels, size, start, patch, image.data_ptr<float>());
    torch::Tensor label = torch::zeros({patch[0], patch[1], patch[2]}, torch::kInt64);
    if (item.labels.element_count() > 0) {
      extract_patch(item.labels.data<std::uint8_t>(), 1, size, start, patch, label.data_ptr<std::int64_t>());
    }
    if (options.augment.enabled) augment(image, label, options.augment, random);
    images.push_back(image.contiguous());
    labels.push_back(label.contiguous());
  }
  return {torch::stack(images), torch::stack(labels)};
}

BatchLoader::BatchLoader(const std::vector<PreparedCase>& cases, PatchOptions options, int batch_size,
                         int batches_per_epoch, int workers, int prefetch, std::uint64_t seed, BatchShare share)
    : cases_(cases),
      options_(std::move(options)),
      batch_size_(batch_size),
      batches_per_epoch_(batches_per_epoch),
      prefetch_(std::max(1, prefetch)),
      share_(share),
      seed_(seed) {
  workers_ = std::make_unique<io::WorkerGroup>(std::max(1, workers), [this](int) { work(); });
}

BatchLoader::~BatchLoader() { stop(); }

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  workers_.reset();  // work() keeps its errors for next(); joining has nothing to rethrow
}

void BatchLoader::start_epoch(int epoch) {
  std::lock_guard<std::mutex> lock(mutex_);
  epoch_ = epoch;
  next_to_make_ = 0;
  next_to_take_ = 0;
  ready_.clear();
  changed_.notify_all();
}

void BatchLoader::work() {
  while (true) {
    int index, epoch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] {
        return stopping_ || (epoch_ >= 0 && next_to_make_ < batches_per_epoch_ &&
                             next_to_make_ < next_to_take_ + prefetch_);
      });
      if (stopping_) return;
      index = next_to_make_++;
      epoch = epoch_;
    }
    // The seed depends only on (run seed, epoch, batch index).
    const std::uint64_t seed = seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch) * 100003ULL +
                               static_cast<std::uint64_t>(index);
    Batch batch;
    try {
      batch = sample_batch(cases_, options_, batch_size_, seed, share_);
      if (options_.pin_memory) {
        batch.image = batch.image.pin_memory();
        batch.labels = batch.labels.pin_memory();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
      changed_.notify_all();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (epoch == epoch_) ready_[index] = std::move(batch);
    }
    changed_.notify_all();
  }
}

Batch BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_take_ >= batches_per_epoch_) throw Error("BatchLoader: the epoch has no batches left");
  const int index = next_to_take_;
  changed_.wait(lock, [&] { return ready_.count(index) > 0 || failure_; });
  if (failure_) std::rethrow_exception(failure_);
  Batch batch = std::move(ready_[index]);
  ready_.erase(index);
  ++next_to_take_;
  changed_.notify_all();
  return batch;
}

}  // namespace graft::datasets
