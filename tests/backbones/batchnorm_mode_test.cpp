// ConvBN tune mode: the same function, and the same gradients, as eval-mode BatchNorm, on the 3D
// and 2D ResNets; and the running statistics stay as they were.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "backbones/batchnorm_mode.h"
#include "backbones/factory.h"
#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::backbones {
namespace {

// Running statistics and affine parameters far from their defaults, as pretrained ones are, so a
// mode that ignored them (or mixed up mean and variance) could not match by accident.
void randomize_batchnorm(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& module : model.modules()) {
    for (auto& buffer : module->named_buffers(/*recurse=*/false)) {
      if (buffer.key() == "running_mean") buffer.value().normal_(0.0, 0.5);
      if (buffer.key() == "running_var") buffer.value().uniform_(0.5, 2.0);
    }
    for (auto& parameter : module->named_parameters(/*recurse=*/false)) {
      if (module->name().find("BatchNorm") == std::string::npos) continue;
      if (parameter.key() == "weight") parameter.value().uniform_(0.5, 1.5);
      if (parameter.key() == "bias") parameter.value().normal_(0.0, 0.2);
    }
  }
}

struct Pass {
  std::vector<torch::Tensor> features;
  std::vector<torch::Tensor> gradients;
};

// Every feature level forward, then the gradient of a fixed weighted sum of them.
Pass run(BackboneImpl& backbone, const torch::Tensor& input, BatchNormMode mode) {
  set_batchnorm_mode(backbone, mode);
  backbone.zero_grad();
  Pass pass;
  pass.features = backbone.features(input);
  torch::Tensor loss = torch::zeros({}, torch::kFloat64);
  for (std::size_t level = 0; level < pass.features.size(); ++level) {
    torch::manual_seed(100 + static_cast<int>(level));
    loss = loss + (pass.features[level] * torch::randn_like(pass.features[level])).sum().to(torch::kFloat64);
  }
  loss.backward();
  for (const auto& parameter : backbone.parameters()) {
    pass.gradients.push_back(parameter.grad().defined() ? parameter.grad().clone() : torch::zeros_like(parameter));
  }
  return pass;
}

double largest_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double largest = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) largest = std::max(largest, (a[i] - b[i]).abs().max().item<double>());
  return largest;
}

// In float64, so that what is compared is the function and not float32's rounding, which the two
// orders of operations round differently.
void expect_tune_equals_eval(const std::string& name, const torch::Tensor& float_input) {
  torch::manual_seed(7);
  auto backbone = create_backbone(name);
  randomize_batchnorm(*backbone);
  backbone->to(torch::kFloat64);
  const torch::Tensor input = float_input.to(torch::kFloat64);
  backbone->train();  // the training loop's state: BatchNorm modules in training mode
  std::vector<torch::Tensor> statistics_before;
  for (const auto& buffer : backbone->buffers()) statistics_before.push_back(buffer.clone());

  const Pass eval = run(*backbone, input, BatchNormMode::kEval);
  const Pass tune = run(*backbone, input, BatchNormMode::kTune);
  ASSERT_EQ(eval.features.size(), tune.features.size());
  double scale = 0.0;
  for (const auto& feature : eval.features) scale = std::max(scale, feature.abs().max().item<double>());
  const double forward = largest_difference(eval.features, tune.features);
  const double backward = largest_difference(eval.gradients, tune.gradients);
  std::printf("%s (float64): largest feature %.3g; tune vs eval: forward %.3g, gradients %.3g\n", name.c_str(), scale,
              forward, backward);
  EXPECT_LE(forward, 1e-5) << name;
  EXPECT_LE(backward, 1e-5) << name;
  double gradient_scale = 0.0;
  for (const auto& gradient : eval.gradients) gradient_scale = std::max(gradient_scale, gradient.abs().max().item<double>());
  EXPECT_GT(gradient_scale, 1.0) << name;  // gradients that are there to compare

  // Neither mode touches the running statistics, although the modules are in training mode.
  const auto statistics_after = backbone->buffers();
  for (std::size_t i = 0; i < statistics_before.size(); ++i) {
    EXPECT_TRUE(torch::equal(statistics_before[i], statistics_after[i])) << name << " buffer " << i;
  }
  // Train mode, by contrast, normalises with the batch and moves the running statistics.
  const Pass train = run(*backbone, input, BatchNormMode::kTrain);
  EXPECT_GT(largest_difference(train.features, eval.features), 1e-2) << name;
}

TEST(ConvBnTuneMode, EqualsEvalModeBatchNormForwardAndBackwardOnTheMed3dResNet) {
  torch::manual_seed(3);
  expect_tune_equals_eval("med3d-resnet10", torch::randn({2, 1, 16, 32, 32}));
}

TEST(ConvBnTuneMode, EqualsEvalModeBatchNormForwardAndBackwardOnTheTimmResNetWithShortcutB) {
  torch::manual_seed(4);
  expect_tune_equals_eval("geo-resnet18-s2", torch::randn({2, 13, 64, 64}));
}

TEST(ConvBnTuneMode, BackbonesWithoutBatchNormTakeNoModeAndBadNamesAreRefused) {
  auto vit = create_backbone("vit-s16");
  EXPECT_EQ(set_batchnorm_mode(*vit, BatchNormMode::kTune), 0);
  auto resnet = create_backbone("med3d-resnet10");
  EXPECT_GT(set_batchnorm_mode(*resnet, BatchNormMode::kTune), 4);  // the stem, and every block
  const std::string message =
      graft::testing::error_message([] { batchnorm_mode_from_name("frozen", "train.batchnorm"); });
  EXPECT_NE(message.find("train.batchnorm"), std::string::npos) << message;
  EXPECT_NE(message.find("'frozen'"), std::string::npos) << message;
}

}  // namespace
}  // namespace graft::backbones
