// LoRA adapters, side networks and activation checkpointing on the ViT: an untrained adapter or
// side network changes nothing, bit for bit; merging gives the adapted outputs; only adapters reach
// the optimizer; a side network's backward pass stays out of the backbone; and a checkpointed
// backward pass gives the plain backward pass's gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "backbones/block_checkpointing.h"
#include "backbones/lora.h"
#include "backbones/timm_vit.h"
#include "finetune/adapters.h"
#include "finetune/training_loop.h"
#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::backbones {
namespace {

// A small ViT with layer scale and registers (UNI2-h's shape in miniature), so every branch of the
// block takes part.
TimmVit small_vit(std::uint64_t seed) {
  torch::manual_seed(seed);
  TimmVitConfig config;
  config.in_channels = 3, config.patch_size = 8, config.image_size = 32, config.embed_dim = 64, config.depth = 3;
  config.heads = 4, config.layer_scale = true, config.register_tokens = 2;
  TimmVit vit(config);
  torch::NoGradGuard no_grad;
  // Layer scale 1e-5 would hide the blocks; pretrained values are near 1 for the later blocks.
  for (auto& item : vit->named_parameters()) {
    if (item.key().find("gamma") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  return vit;
}

torch::Tensor sample_input(std::int64_t batch = 2) {
  torch::manual_seed(7);
  return torch::randn({batch, 3, 32, 32});
}

std::set<std::string> trainable_names(torch::nn::Module& module) {
  std::set<std::string> names;
  for (const auto& item : module.named_parameters()) {
    if (item.value().requires_grad()) names.insert(item.key());
  }
  return names;
}

TEST(Lora, AnUntrainedAdapterLeavesTheViTFeaturesUnchangedBitForBit) {
  TimmVit vit = small_vit(1);
  vit->eval();
  const torch::Tensor input = sample_input();
  const torch::Tensor before = vit->features(input)[0];
  const torch::Tensor embedding_before = vit->embedding(input);
  const auto adapted = add_lora(*vit, LoraSettings{}, "test");
  EXPECT_EQ(adapted.size(), 6u) << "qkv and proj of 3 blocks";
  EXPECT_TRUE(has_lora(*vit));
  EXPECT_TRUE(torch::equal(vit->features(input)[0], before));
  EXPECT_TRUE(torch::equal(vit->embedding(input), embedding_before));
}

TEST(Lora, OnlyTheAdaptersTrainAndOnlyTheyReachTheOptimizer) {
  TimmVit vit = small_vit(2);
  LoraSettings settings;
  settings.rank = 4;
  settings.targets = {"qkv", "proj", "fc1", "fc2"};
  add_lora(*vit, settings, "test");
  const std::set<std::string> trainable = trainable_names(*vit);
  EXPECT_EQ(trainable.size(), 3u * 4u * 2u);
  for (const auto& name : trainable) EXPECT_TRUE(is_lora_parameter(name)) << name;
  EXPECT_TRUE(trainable.count("blocks.0.attn.qkv.lora_A"));
  EXPECT_TRUE(trainable.count("blocks.2.mlp.fc2.lora_B"));
  EXPECT_EQ(vit->named_parameters()["blocks.1.attn.qkv.lora_A"].sizes(), torch::IntArrayRef({4, 64}));
  EXPECT_EQ(vit->named_parameters()["blocks.1.attn.qkv.lora_B"].sizes(), torch::IntArrayRef({192, 4}));

  // The optimizer's groups hold the adapters and the head, with layer decay too; nothing frozen.
  torch::nn::Linear head(64, 2);
  finetune::TrainingTask task;
  task.backbone = vit.get();
  task.head = head.get();
  task.layer_of = [&](const std::string& name) { return vit->layer_of(name); };
  task.layer_count = vit->layer_count();
  for (const double decay : {1.0, 0.75}) {
    finetune::TrainSettings train;
    train.layer_decay = decay;
    std::set<std::string> in_optimizer;
    for (const auto& group : finetune::parameter_groups(task, train)) {
      for (const auto& name : group.names) in_optimizer.insert(name);
    }
    std::set<std::string> expected = trainable;
    expected.insert("weight");
    expected.insert("bias");
    EXPECT_EQ(in_optimizer, expected) << "layer decay " << decay;
  }

  // A backward pass gives gradients to the adapters alone; B starts at zero, so A's is zero too.
  vit->features(sample_input())[0].square().mean().backward();
  for (const auto& item : vit->named_parameters()) {
    if (!is_lora_parameter(item.key())) {
      EXPECT_FALSE(item.value().grad().defined()) << item.key();
    } else if (item.key().find("lora_B") != std::string::npos) {
      EXPECT_GT(item.value().grad().abs().max().item<double>(), 0.0) << item.key();
    }
  }
}

TEST(Lora, MergedWeightsGiveTheAdaptedOutputs) {
  TimmVit vit = small_vit(3);
  vit->eval();
  LoraSettings settings;
  settings.rank = 8;
  settings.alpha = 32.0;
  add_lora(*vit, settings, "test");
  {
    // A trained adapter: B no longer zero, and large enough to change the outputs visibly.
    torch::NoGradGuard no_grad;
    for (auto& item : vit->named_parameters()) {
      if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.05);
    }
  }
  const torch::Tensor input = sample_input();
  const torch::Tensor adapted = vit->features(input)[0];
  TimmVit plain = small_vit(3);
  plain->eval();
  ASSERT_GT((plain->features(input)[0] - adapted).abs().max().item<double>(), 0.1) << "the adapter changes the outputs";

  EXPECT_EQ(merge_lora(*vit), 6);
  EXPECT_FALSE(has_lora(*vit));
  for (const auto& item : vit->named_parameters()) {
    EXPECT_FALSE(is_lora_parameter(item.key())) << item.key();
    // A merged layer trains again; what add_lora froze elsewhere stays as it is.
    if (item.key().find(".qkv.") != std::string::npos || item.key().find(".attn.proj.") != std::string::npos) {
      EXPECT_TRUE(item.value().requires_grad()) << item.key() << " trains again once merged";
    }
  }
  const torch::Tensor merged = vit->features(input)[0];
  EXPECT_LT((merged - adapted).abs().max().item<double>(), 1e-5);
  // The merged model has plain parameter names, so it loads into a model built without adapters.
  EXPECT_EQ(vit->named_parameters().size(), plain->named_parameters().size());
}

TEST(Lora, TargetsNoLayerHasAreRefusedNamingTheAdaptableOnes) {
  TimmVit vit = small_vit(4);
  LoraSettings settings;
  settings.targets = {"query"};
  const std::string message = graft::testing::error_message([&] { add_lora(*vit, settings, "train.adapter"); });
  EXPECT_NE(message.find("train.adapter"), std::string::npos) << message;
  EXPECT_NE(message.find("fc1, fc2, proj, qkv"), std::string::npos) << message;
  settings.targets = {"qkv"};
  settings.rank = 0;
  const std::string rank = graft::testing::error_message([&] { add_lora(*vit, settings, "train.adapter"); });
  EXPECT_NE(rank.find("lora_rank must be at least 1"), std::string::npos) << rank;
}

TEST(Lora, FingerprintTellsWeightsApartAndIgnoresNothing) {
  TimmVit a = small_vit(5), b = small_vit(5), c = small_vit(6);
  const auto tensors = [](TimmVit& vit) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : vit->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  };
  EXPECT_EQ(tensors_fingerprint(tensors(a)), tensors_fingerprint(tensors(b)));
  EXPECT_NE(tensors_fingerprint(tensors(a)), tensors_fingerprint(tensors(c)));
  {
    torch::NoGradGuard no_grad;
    b->named_parameters()["blocks.2.norm2.bias"][5] += 1e-6;  // one value in the last tensor
  }
  EXPECT_NE(tensors_fingerprint(tensors(a)), tensors_fingerprint(tensors(b)));
}

// Gradients of every trainable parameter (and of the input when it needs one) for a fixed loss.
std::vector<torch::Tensor> gradients(TimmVit& vit, const torch::Tensor& input) {
  vit->zero_grad();
  torch::manual_seed(11);
  const torch::Tensor features = vit->features(input)[0];
  (features * torch::randn_like(features)).sum().backward();
  std::vector<torch::Tensor> out;
  for (const auto& parameter : vit->parameters()) {
    if (parameter.requires_grad()) out.push_back(parameter.grad().clone());
  }
  if (input.requires_grad()) out.push_back(input.grad().clone());
  return out;
}

TEST(ActivationCheckpointing, GradientsEqualThePlainBackwardPassForFullTuningAndLora) {
  for (const bool lora : {false, true}) {
    TimmVit vit = small_vit(8);
    vit->to(torch::kFloat64);
    if (lora) {
      add_lora(*vit, LoraSettings{}, "test");
      torch::NoGradGuard no_grad;
      for (auto& item : vit->named_parameters()) {
        if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.05);
      }
    }
    const torch::Tensor input = sample_input().to(torch::kFloat64).requires_grad_(!lora);
    EXPECT_EQ(set_activation_checkpointing(*vit, false), 1);
    const auto plain = gradients(vit, input);
    if (input.grad().defined()) input.grad().zero_();
    set_activation_checkpointing(*vit, true);
    const auto checkpointed = gradients(vit, input);
    ASSERT_EQ(plain.size(), checkpointed.size());
    ASSERT_FALSE(plain.empty());
    double largest = 0.0;
    for (std::size_t i = 0; i < plain.size(); ++i) {
      largest = std::max(largest, (plain[i] - checkpointed[i]).abs().max().item<double>());
    }
    EXPECT_LT(largest, 1e-12) << (lora ? "LoRA, frozen input" : "full fine-tuning");
  }
}

TEST(ActivationCheckpointing, WithoutGradientsTheForwardIsThePlainOne) {
  TimmVit vit = small_vit(9);
  const torch::Tensor input = sample_input();
  torch::NoGradGuard no_grad;
  const torch::Tensor plain = vit->features(input)[0];
  set_activation_checkpointing(*vit, true);
  EXPECT_TRUE(torch::equal(vit->features(input)[0], plain));
}

TEST(SideNetwork, AnUntrainedSideNetworkLeavesTheViTOutputsUnchangedBitForBit) {
  TimmVit vit = small_vit(11);
  vit->eval();
  const torch::Tensor input = sample_input();
  const torch::Tensor before = vit->features(input)[0];
  const torch::Tensor embedding_before = vit->embedding(input);
  vit->add_side_network(4, "test");
  EXPECT_TRUE(vit->has_side_network());
  EXPECT_TRUE(torch::equal(vit->features(input)[0], before));
  EXPECT_TRUE(torch::equal(vit->embedding(input), embedding_before));
}

TEST(SideNetwork, OnlyTheSideNetworkTrainsAndTheBackwardPassStaysOutOfTheBackbone) {
  TimmVit vit = small_vit(12);
  const std::int64_t backbone_parameters = [&] {
    std::int64_t count = 0;
    for (const auto& parameter : vit->parameters()) count += parameter.numel();
    return count;
  }();
  vit->add_side_network(4, "test");  // 64 wide: a 16-wide side network
  const std::set<std::string> trainable = trainable_names(*vit);
  for (const auto& name : trainable) EXPECT_TRUE(finetune::is_adapter_parameter(name)) << name;
  EXPECT_TRUE(trainable.count("side_network.down.0.weight"));
  EXPECT_TRUE(trainable.count("side_network.down.3.weight")) << "one down-projection per block output and the input";
  EXPECT_TRUE(trainable.count("side_network.blocks.2.attn.qkv.weight"));
  EXPECT_TRUE(trainable.count("side_network.gates"));
  EXPECT_EQ(vit->named_parameters()["side_network.up.weight"].sizes(), torch::IntArrayRef({64, 16}));
  std::int64_t side_parameters = 0;
  for (const auto& tensor : finetune::tunable_parameters(*vit)) side_parameters += tensor.numel();
  EXPECT_LT(side_parameters * 5, backbone_parameters);
  EXPECT_EQ(vit->layer_of("side_network.blocks.0.attn.qkv.weight"), vit->layer_count());

  // The input asks for a gradient and gets none: nothing of the backward pass runs in the backbone.
  const torch::Tensor input = sample_input().requires_grad_(true);
  torch::optim::SGD optimizer(finetune::tunable_parameters(*vit), torch::optim::SGDOptions(0.5));
  const torch::Tensor first = vit->features(input)[0];
  // Not a loss of the squares: after the final LayerNorm their sum hardly depends on the input.
  torch::manual_seed(3);
  const torch::Tensor direction = torch::randn(first.sizes());
  (first * direction).sum().backward();
  EXPECT_FALSE(input.grad().defined());
  for (const auto& item : vit->named_parameters()) {
    if (!finetune::is_adapter_parameter(item.key())) EXPECT_FALSE(item.value().grad().defined()) << item.key();
  }
  // The up-projection starts at zero, so only it has a gradient at first; after a step, all do.
  EXPECT_GT(vit->named_parameters()["side_network.up.weight"].grad().abs().max().item<double>(), 0.0);
  optimizer.step();
  optimizer.zero_grad();
  const torch::Tensor second = vit->features(input)[0];
  EXPECT_GT((second - first).abs().max().item<double>(), 1e-4) << "the step changed the outputs";
  (second * direction).sum().backward();
  for (const char* name : {"side_network.down.1.weight", "side_network.blocks.0.mlp.fc1.weight", "side_network.gates"}) {
    EXPECT_GT(vit->named_parameters()[name].grad().abs().max().item<double>(), 0.0) << name;
  }
}

TEST(SideNetwork, AReductionThatDoesNotDivideTheWidthIsRefused) {
  TimmVit vit = small_vit(13);
  const std::string message = graft::testing::error_message([&] { vit->add_side_network(3, "train.side_reduction"); });
  EXPECT_NE(message.find("width 64"), std::string::npos) << message;
  EXPECT_NE(message.find("train.side_reduction"), std::string::npos) << message;
  EXPECT_FALSE(vit->has_side_network());
}

}  // namespace
}  // namespace graft::backbones
