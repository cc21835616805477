// Med3D ResNets against PyTorch: tests/tools/med3d_reference.py (Debian python3-torch) defines the
// MedicalNet network independently, saves its weights in every checkpoint format, and computes
// reference features; graft must load each file and reproduce the features to 1e-5.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backbones/checkpoint_file.h"
#include "backbones/factory.h"
#include "backbones/med3d_resnet.h"
#include "backbones/weight_loading.h"
#include "io/error.h"
#include "io/numpy/npy.h"
#include "tests/backbones/pytorch_reference.h"
#include "tests/support/test_support.h"

namespace graft::backbones {
namespace {

using testing::expect_resnet_features_match;
using testing::max_relative_difference;
using testing::npy_tensor;

struct Reference {
  std::string folder;  // empty when python3-torch is missing
};


// Runs the PyTorch reference once per depth and channel count, into a temporary folder.
const Reference& reference(int depth, int in_channels = 1) {
  static std::map<std::pair<int, int>, Reference> cache;
  auto& entry = cache[{depth, in_channels}];
  if (!entry.folder.empty() || graft::testing::python_with("torch").empty()) return entry;
  const std::string folder = (std::filesystem::temp_directory_path() /
                              ("graft-med3d-" + std::to_string(getpid()) + "-" + std::to_string(depth) +
                               "-" + std::to_string(in_channels))).string();
  std::filesystem::create_directories(folder);
  std::string output;
  const int status = graft::testing::run_command(
      "/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/med3d_reference.py --depth " + std::to_string(depth) +
          " --in-channels " + std::to_string(in_channels) + " --out-dir " + folder +
          " --write-safetensors " + folder + "/python.safetensors",
      &output);
  EXPECT_EQ(status, 0) << output;
  entry.folder = folder;
  return entry;
}

class Med3dReference : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    // Each reference run writes hundreds of MB of checkpoints.
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
      if (entry.path().filename().string().rfind("graft-med3d-" + std::to_string(getpid()), 0) == 0) {
        std::filesystem::remove_all(entry.path());
      }
    }
  }
};

#define REQUIRE_TORCH_REFERENCE(ref)                                                    \
  if ((ref).folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed"



TEST_F(Med3dReference, NetworkKeysAndShapesEqualPyTorchs) {
  for (int depth : {10, 18}) {
    const Reference& ref = reference(depth);
    REQUIRE_TORCH_REFERENCE(ref);
    std::ifstream keys_file(ref.folder + "/keys.json");
    const auto keys = nlohmann::json::parse(keys_file);
    auto network = create_backbone("med3d-resnet" + std::to_string(depth));
    std::map<std::string, std::vector<std::int64_t>> ours;
    for (const auto& [name, tensor] : state_dict_of(*network)) ours[name] = tensor.shape;
    EXPECT_EQ(ours.size(), keys.size());
    for (const auto& key : keys) {
      const std::string name = key[0];
      ASSERT_TRUE(ours.count(name)) << "graft lacks " << name;
      EXPECT_EQ(ours[name], key[1].get<std::vector<std::int64_t>>()) << name;
    }
  }
}

TEST_F(Med3dReference, ZipLegacyBareAndTrainingCheckpointsReproducePyTorchFeatures) {
  for (int depth : {10, 18}) {
    const Reference& ref = reference(depth);
    REQUIRE_TORCH_REFERENCE(ref);
    for (const char* file : {"zip.pth", "legacy.pth", "bare.pth", "with_optimizer.pth", "python.safetensors"}) {
      SCOPED_TRACE(std::to_string(depth) + " " + file);
      auto network = create_backbone("med3d-resnet" + std::to_string(depth));
      const LoadReport report = load_weights(*network, ref.folder + "/" + file);
      EXPECT_TRUE(report.clean()) << report.summary();
      expect_resnet_features_match(*network, ref.folder);
    }
  }
}

TEST_F(Med3dReference, CheckpointFormatsAndPrefixesAreReported) {
  const Reference& ref = reference(10);
  REQUIRE_TORCH_REFERENCE(ref);
  const CheckpointFile legacy = read_checkpoint(ref.folder + "/legacy.pth");
  EXPECT_EQ(legacy.format, "torch-legacy");
  const CheckpointFile zip = read_checkpoint(ref.folder + "/zip.pth");
  EXPECT_EQ(zip.format, "torch-zip");
  const std::string notes = nlohmann::json(zip.notes).dump();
  EXPECT_NE(notes.find("state_dict"), std::string::npos) << notes;
  EXPECT_NE(notes.find("module."), std::string::npos) << notes;
  EXPECT_EQ(zip.tensors.front().first, "conv1.weight");
}

TEST_F(Med3dReference, SafetensorsWrittenByGraftReadBackInPythonAndGraft) {
  const Reference& ref = reference(10);
  REQUIRE_TORCH_REFERENCE(ref);
  auto network = create_backbone("med3d-resnet10");
  load_weights(*network, ref.folder + "/bare.pth");
  const std::string path = ref.folder + "/graft.safetensors";
  write_safetensors(state_dict_of(*network), path);
  std::string output;
  ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR
                                        "/tests/tools/med3d_reference.py --safetensors-check " + path,
                                        &output),
            0)
      << output;
  EXPECT_NE(output.find("\"conv1.weight\": [\"F32\", [64, 1, 7, 7, 7]"), std::string::npos) << output.substr(0, 300);
  auto again = create_backbone("med3d-resnet10");
  load_weights(*again, path);
  expect_resnet_features_match(*again, ref.folder);
}

TEST_F(Med3dReference, MoreInputChannelsAdaptConv1SoRepeatedInputGivesTheSameFeatures) {
  const Reference& ref = reference(10);
  REQUIRE_TORCH_REFERENCE(ref);
  auto one = create_backbone("med3d-resnet10");
  load_weights(*one, ref.folder + "/zip.pth");
  auto four = create_backbone("med3d-resnet10", 4);
  const LoadReport report = load_weights(*four, ref.folder + "/zip.pth");
  ASSERT_EQ(report.adapted.size(), 1u);
  EXPECT_NE(report.adapted[0].find("1 -> 4"), std::string::npos);
  one->eval();
  four->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = npy_tensor(ref.folder + "/input.npy");
  const torch::Tensor a = one->features(x)[4];
  const torch::Tensor b = four->features(x.repeat({1, 4, 1, 1, 1}))[4];
  EXPECT_LT(max_relative_difference(b, a), 1e-5);
}

TEST_F(Med3dReference, CheckpointThatDoesNotFitIsRefusedStrictlyAndReportedLeniently) {
  const Reference& ref = reference(10);
  REQUIRE_TORCH_REFERENCE(ref);
  auto network = create_backbone("med3d-resnet18");
  const StateDict before = state_dict_of(*network);
  try {
    load_weights(*network, ref.folder + "/zip.pth");
    FAIL() << "a ResNet-10 checkpoint loaded strictly into a ResNet-18";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("zip.pth"), std::string::npos);
    EXPECT_NE(message.find("missing"), std::string::npos);
    EXPECT_NE(message.find("layer1.1.conv1.weight"), std::string::npos) << message;
  }
  // A refused checkpoint leaves the network untouched.
  const StateDict after = state_dict_of(*network);
  EXPECT_EQ(before.front().second.bytes, after.front().second.bytes);
  const LoadReport report = load_weights(*network, ref.folder + "/zip.pth", /*strict=*/false);
  EXPECT_FALSE(report.clean());
  EXPECT_FALSE(report.missing.empty());
  EXPECT_FALSE(report.unexpected.empty());  // downsample.* of the B-shortcut ResNet-10
  EXPECT_GT(report.loaded.size(), 10u);
}

TEST(Checkpoint, PicklesThatCallAnythingAreRefusedAndNeverRun) {
  if (graft::testing::python_with("torch").empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR
                                        "/tests/tools/med3d_reference.py --evil " + folder +
                                            "/evil.pth --evil-legacy " + folder + "/evil_legacy.pth",
                                        &output),
            0)
      << output;
  for (const char* name : {"/evil.pth", "/evil_legacy.pth"}) {
    try {
      read_checkpoint(folder + name);
      FAIL() << name << " was accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(folder + name), std::string::npos) << message;
      EXPECT_NE(message.find("posix.system"), std::string::npos) << message;
    }
  }
}

TEST(Checkpoint, TruncatedAndForeignFilesAreRefused) {
  const std::string folder = graft::testing::temp_dir();
  auto network = create_backbone("med3d-resnet10");
  write_safetensors(state_dict_of(*network), folder + "/whole.safetensors");
  std::ifstream in(folder + "/whole.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(folder + "/cut.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::ofstream(folder + "/text.pth") << "this is not a checkpoint at all";
  for (const char* name : {"/cut.safetensors", "/text.pth", "/absent.pth"}) {
    EXPECT_THROW(read_checkpoint(folder + name), Error) << name;
  }
}

TEST(Med3d, FeatureStridesAndChannelsMatchTheArchitecture) {
  auto network = create_backbone("med3d-resnet50");
  const auto info = network->feature_info();
  ASSERT_EQ(info.size(), 5u);
  EXPECT_EQ(info[4].channels, 2048);
  EXPECT_EQ(info[4].stride, 8);
  torch::NoGradGuard no_grad;
  network->eval();
  const auto features = network->features(torch::zeros({1, 1, 16, 32, 32}));
  for (std::size_t i = 0; i < info.size(); ++i) {
    EXPECT_EQ(features[i].size(1), info[i].channels);
    EXPECT_EQ(features[i].size(4), 32 / info[i].stride);
  }
  EXPECT_THROW(network->features(torch::zeros({1, 2, 16, 32, 32})), Error);
  EXPECT_THROW(create_backbone("med3d-resnet11"), UsageError);
}

}  // namespace
}  // namespace graft::backbones
