// Data-parallel training over c10d's Gloo process group: where a rank comes from, and two real
// processes reaching the weights one process reaches at the same global batch.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "backbones/checkpoint_file.h"
#include "backbones/weight_loading.h"
#include "datasets/chip_data.h"
#include "finetune/tasks/classification/classification.h"
#include "finetune/distributed.h"
#include "finetune/run_config.h"
#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

EnvironmentLookup lookup_in(const std::map<std::string, std::string>& variables) {
  return [variables](const char* name) -> const char* {
    const auto found = variables.find(name);
    return found == variables.end() ? nullptr : found->second.c_str();
  };
}

TEST(Distributed, RankComesFromTorchrunSlurmOrOpenMpiVariables) {
  const DistributedEnvironment alone = distributed_environment(lookup_in({}));
  EXPECT_EQ(alone.world_size, 1);
  EXPECT_EQ(alone.source, "");
  const DistributedEnvironment torchrun = distributed_environment(lookup_in(
      {{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29555"}}));
  EXPECT_EQ(torchrun.source, "torchrun");
  EXPECT_EQ(torchrun.rank, 3);
  EXPECT_EQ(torchrun.world_size, 8);
  EXPECT_EQ(torchrun.local_rank, 1);
  EXPECT_EQ(torchrun.master_address, "node7");
  EXPECT_EQ(torchrun.master_port, 29555);
  const DistributedEnvironment slurm = distributed_environment(
      lookup_in({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "2"}, {"MASTER_ADDR", "head"}}));
  EXPECT_EQ(slurm.source, "slurm");
  EXPECT_EQ(slurm.rank, 5);
  EXPECT_EQ(slurm.local_rank, 2);
  EXPECT_EQ(slurm.master_port, 29500);
  const DistributedEnvironment mpi = distributed_environment(
      lookup_in({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}}));
  EXPECT_EQ(mpi.source, "openmpi");
  EXPECT_EQ(mpi.rank, 1);
  // torchrun's variables win over Slurm's when both are set (torchrun inside an allocation).
  EXPECT_EQ(distributed_environment(lookup_in({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "9"},
                                               {"SLURM_NTASKS", "16"}}))
                .world_size,
            2);
  const std::string bad = graft::testing::error_message(
      [&] { distributed_environment(lookup_in({{"RANK", "two"}, {"WORLD_SIZE", "4"}})); });
  EXPECT_NE(bad.find("RANK is 'two'"), std::string::npos) << bad;
  const std::string beyond = graft::testing::error_message(
      [&] { distributed_environment(lookup_in({{"RANK", "4"}, {"WORLD_SIZE", "4"}})); });
  EXPECT_NE(beyond.find("not below WORLD_SIZE"), std::string::npos) << beyond;
}

// Eight 3 x 32 x 32 chips of two classes (a brighter first channel marks class 1).
std::vector<datasets::PreparedChip> two_class_chips() {
  std::mt19937 random(11);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<datasets::PreparedChip> chips;
  for (int i = 0; i < 8; ++i) {
    datasets::PreparedChip chip;
    chip.id = "chip" + std::to_string(i);
    chip.image = torch::empty({3, 32, 32});
    auto values = chip.image.accessor<float, 3>();
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) values[c][y][x] = noise(random) + (c == 0 && i % 2 ? 1.5f : 0.0f);
    chip.classes = {i % 2};
    chips.push_back(chip);
  }
  return chips;
}

// A ViT-S/16 (LayerNorm only: no batch statistics that would differ per rank) trained 2 epochs
// of 2 steps at a global batch of 4, without augmentation, by SGD with momentum. (Adam divides by
// the gradient's own size, so on parameters whose true gradient is zero, such as the attention's
// key bias, it turns summation-order noise of 1e-9 into full-size steps in both runs alike.)
RunConfig vit_run(const std::string& output) {
  RunConfig config = default_run_config();
  config.task = "classification";
  config.backbone = "vit-s16";
  config.classes = 2;
  config.class_names = {"plain", "bright"};
  config.output = output;
  config.data.batch_size = 4;
  config.data.augment = false;
  config.train.epochs = 2;
  config.train.optimizer = "sgd";
  config.train.lr = 1e-2;
  config.train.schedule = "constant";
  config.train.threads = 1;
  return config;
}

// Runs only as a child of the test below, which sets RANK, WORLD_SIZE, MASTER_PORT and
// GRAFT_DDP_OUTPUT; it skips when run on its own.
TEST(Distributed, WorkerProcess) {
  const char* output = std::getenv("GRAFT_DDP_OUTPUT");
  if (!output) GTEST_SKIP() << "a worker of Distributed.TwoProcessesReachTheWeightsOfOneAtTheSameGlobalBatch";
  const char* cancel_at = std::getenv("GRAFT_DDP_CANCEL_AT_STEP");
  const TrainEventSink cancel = [&](const TrainEvent& event) {
    if (cancel_at && event.kind == "step" && event.epoch == 0 && event.step == std::atoi(cancel_at)) {
      throw TrainingCancelled{};
    }
  };
  const TrainResult result = train_classifier_prepared(vit_run(output), two_class_chips(), {}, {cancel}, false);
  EXPECT_EQ(result.cancelled, cancel_at != nullptr);
  if (!cancel_at) EXPECT_EQ(result.epochs_run, 2);
}

TEST(Distributed, TwoProcessesReachTheWeightsOfOneAtTheSameGlobalBatch) {
  const std::string folder = graft::testing::temp_dir();
  train_classifier_prepared(vit_run(folder + "/one"), two_class_chips(), {}, {}, false);

  std::random_device device;
  const int port = 29600 + static_cast<int>(device() % 300);
  const std::string binary = std::filesystem::read_symlink("/proc/self/exe").string();
  // Two ranks with torchrun's variables; `extra` adds environment variables to both.
  auto run_two_ranks = [&](const std::string& run, const std::string& extra, int port_offset) {
    auto worker = [&](int rank) {
      return "RANK=" + std::to_string(rank) + " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
             std::to_string(port + port_offset) + " GRAFT_DDP_OUTPUT=" + folder + "/" + run + " " + extra + " '" +
             binary + "' --gtest_filter=Distributed.WorkerProcess";
    };
    std::string output;
    const std::string log = folder + "/" + run + "_rank1.log";
    EXPECT_EQ(graft::testing::run_command("(" + worker(1) + " > " + log + " 2>&1 &) ; " + worker(0) +
                                              " && sleep 1 && cat " + log,
                                          &output),
              0)
        << output;
    EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
  };
  auto largest_difference = [&](const std::string& run) {
    const auto one = backbones::read_checkpoint(folder + "/one/model.safetensors");
    const auto other = backbones::read_checkpoint(folder + "/" + run + "/model.safetensors");
    double worst = 0.0;
    std::string worst_name;
    for (std::size_t i = 0; i < one.tensors.size(); ++i) {
      EXPECT_EQ(one.tensors[i].first, other.tensors[i].first);
      const torch::Tensor a = backbones::to_torch(one.tensors[i].second).to(torch::kFloat64);
      const torch::Tensor b = backbones::to_torch(other.tensors[i].second).to(torch::kFloat64);
      const double relative = ((a - b).norm() / a.norm().clamp_min(1e-12)).item<double>();
      if (relative > worst) {
        worst = relative;
        worst_name = one.tensors[i].first;
      }
    }
    std::printf("%s vs one process: largest relative weight difference %.2e (%s)\n", run.c_str(), worst,
                worst_name.c_str());
    return worst;
  };

  run_two_ranks("two", "", 0);
  // Rank 0 alone wrote the run folder.
  EXPECT_TRUE(graft::testing::file_exists(folder + "/two/model.safetensors"));
  EXPECT_LE(largest_difference("two"), 1e-5);

  // Cancelled by two ranks after the first step of epoch 0, resumed by one process: it continues
  // from the same epoch and batch, to the weights of the uninterrupted run.
  run_two_ranks("resumed", "GRAFT_DDP_CANCEL_AT_STEP=0", 1);
  EXPECT_FALSE(graft::testing::file_exists(folder + "/resumed/model.safetensors"));
  const TrainResult resumed = train_classifier_prepared(vit_run(folder + "/resumed"), two_class_chips(), {}, {}, true);
  EXPECT_EQ(resumed.epochs_run, 2);
  EXPECT_LE(largest_difference("resumed"), 1e-5);
}

}  // namespace
}  // namespace graft::finetune
