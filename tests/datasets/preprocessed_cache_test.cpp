#include "datasets/preprocessed_cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "backbones/registry.h"
#include "datasets/chip_data.h"
#include "datasets/segmentation_data.h"
#include "datasets/synthetic_volumes.h"
#include "io/image_file.h"
#include "preprocess/plan.h"
#include "tests/support/test_support.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

datasets::CaseEntry write_case(const std::string& folder, std::uint64_t seed) {
  io::Geometry geometry = datasets::random_ct_geometry(seed);
  geometry.size_xyz = {48, 40, 12};
  const auto synthetic = datasets::make_synthetic_ct(seed, geometry);
  const std::string id = "c" + std::to_string(seed);
  io::write(synthetic.image, folder + "/" + id + ".nii.gz");
  io::write(synthetic.labels, folder + "/" + id + "_seg.nii.gz");
  return {id, folder + "/" + id + ".nii.gz", folder + "/" + id + "_seg.nii.gz", ""};
}

void expect_same_image(const io::Image& a, const io::Image& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.channels(), b.channels());
  EXPECT_TRUE(a.geometry().same_grid(b.geometry(), 0.0)) << a.geometry().describe_difference(b.geometry(), 0.0);
  ASSERT_EQ(a.byte_count(), b.byte_count());
  EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.byte_count()), 0);
}

void expect_same_case(const datasets::PreparedCase& a, const datasets::PreparedCase& b) {
  expect_same_image(a.image, b.image);
  expect_same_image(a.labels, b.labels);
  EXPECT_EQ(preprocess::to_json(a.plan), preprocess::to_json(b.plan));
  EXPECT_EQ(a.foreground, b.foreground);
}

std::vector<fs::path> entries_in(const std::string& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) files.push_back(entry.path());
  return files;
}

// MedicalNet's contract resamples to 1 mm and z-scores: the cached case must be exactly what
// preparing it again gives, bit for bit, and the second run must not read the NIfTI files.
TEST(PreprocessedCache, SecondPreparationReadsTheCachedCaseBitForBit) {
  const std::string data = testing::temp_dir(), cache_folder = testing::temp_dir() + "/cache";
  const auto entry = write_case(data, 3);
  const preprocess::Contract contract = backbones::find_backbone("med3d-resnet10").contract;
  const datasets::PreparedCase uncached = datasets::prepare_case(entry, contract, {0}, 3);

  datasets::PreprocessedCache cache(cache_folder);
  const datasets::PreparedCase first = datasets::prepare_case(entry, contract, {0}, 3, cache);
  EXPECT_EQ(cache.misses(), 1);
  ASSERT_EQ(entries_in(cache_folder).size(), 1u);
  expect_same_case(first, uncached);

  // Unreadable sources prove the second preparation comes from the cache alone, while keeping
  // their size and modification time (the cache's validity check).
  const auto modified = fs::last_write_time(entry.image);
  const auto size = fs::file_size(entry.image);
  std::ofstream(entry.image, std::ios::binary) << std::string(size, 'x');
  fs::last_write_time(entry.image, modified);
  const datasets::PreparedCase second = datasets::prepare_case(entry, contract, {0}, 3, cache);
  EXPECT_EQ(cache.hits(), 1);
  expect_same_case(second, uncached);
  EXPECT_EQ(second.image.metadata().band_names, uncached.plan.channel_names);
}

TEST(PreprocessedCache, ChangedSourceOrContractIsPreparedAgain) {
  const std::string data = testing::temp_dir(), cache_folder = testing::temp_dir() + "/cache";
  auto entry = write_case(data, 4);
  preprocess::Contract contract = backbones::find_backbone("med3d-resnet10").contract;
  datasets::PreprocessedCache cache(cache_folder);
  datasets::prepare_case(entry, contract, {0}, 3, cache);

  contract.target_size_xyz = {24, 20, 8};
  const auto coarse = datasets::prepare_case(entry, contract, {0}, 3, cache);
  EXPECT_EQ(cache.misses(), 2);
  EXPECT_EQ(entries_in(cache_folder).size(), 2u);
  EXPECT_EQ(coarse.image.geometry().size_xyz, (std::array<std::int64_t, 3>{24, 20, 8}));

  // Another case's volume written over this case's image: same path, new size and time.
  const auto other = write_case(data, 9);
  fs::copy_file(other.image, entry.image, fs::copy_options::overwrite_existing);
  fs::last_write_time(entry.image, fs::last_write_time(entry.image) + std::chrono::seconds(5));
  entry.label = other.label;
  const auto replaced = datasets::prepare_case(entry, contract, {0}, 3, cache);
  EXPECT_EQ(cache.hits(), 0);
  expect_same_case(replaced, datasets::prepare_case(other, contract, {0}, 3));
}

TEST(PreprocessedCache, UnreadableEntryIsPreparedAgainAndReplaced) {
  const std::string data = testing::temp_dir(), cache_folder = testing::temp_dir() + "/cache";
  const auto entry = write_case(data, 5);
  const preprocess::Contract contract = backbones::find_backbone("med3d-resnet10").contract;
  datasets::PreprocessedCache cache(cache_folder);
  datasets::prepare_case(entry, contract, {0}, 3, cache);
  const fs::path stored = entries_in(cache_folder).front();
  fs::resize_file(stored, fs::file_size(stored) / 2);  // a disk that filled up, say

  const auto again = datasets::prepare_case(entry, contract, {0}, 3, cache);
  EXPECT_EQ(cache.hits(), 0);
  EXPECT_EQ(cache.misses(), 2);
  expect_same_case(again, datasets::prepare_case(entry, contract, {0}, 3));
  datasets::prepare_case(entry, contract, {0}, 3, cache);
  EXPECT_EQ(cache.hits(), 1);
}

TEST(PreprocessedCache, ClassificationChipsComeBackAsTheSameTensor) {
  const std::string data = testing::temp_dir(), cache_folder = testing::temp_dir() + "/cache";
  io::Geometry geometry;
  geometry.size_xyz = {40, 30, 1};
  io::Image grey(io::DType::kU8, 1, geometry);
  for (std::int64_t i = 0; i < grey.element_count(); ++i) grey.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(i * 7);
  io::write(grey, data + "/chip.nii.gz");
  const datasets::CaseEntry entry{"chip", data + "/chip.nii.gz", "", "", {"b"}};
  const preprocess::Contract contract = backbones::find_backbone("vit-s16").contract;
  datasets::PreprocessedCache cache(cache_folder);
  const auto first = datasets::prepare_chip(entry, contract, {0}, {"a", "b"}, false, cache);
  const auto second = datasets::prepare_chip(entry, contract, {0}, {"a", "b"}, false, cache);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.hits(), 1);
  ASSERT_EQ(second.image.sizes(), (std::vector<std::int64_t>{3, 224, 224}));
  EXPECT_TRUE(torch::equal(first.image, second.image));
  EXPECT_EQ(second.classes, std::vector<int>{1});
  // Class names are the run's, not the cache's: the same chip under other names.
  const auto renamed = datasets::prepare_chip(entry, contract, {0}, {"b", "c", "d"}, false, cache);
  EXPECT_EQ(renamed.classes, std::vector<int>{0});
  EXPECT_EQ(cache.hits(), 2);
}

}  // namespace
}  // namespace graft
