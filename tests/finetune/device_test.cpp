// --device and --precision: the parsing every command shares, LibTorch's autocast as graft scopes
// it, and fp16's loss scaling. CUDA itself is absent here (Debian's LibTorch is CPU-only), so its
// paths are checked for their refusal; bf16 autocast runs on the CPU and is checked for real.
#include <gtest/gtest.h>

#include <cmath>

#include "finetune/device.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

TEST(Device, ParsesCpuAndNamesTheFlagForBadSpellings) {
  EXPECT_EQ(parse_device("cpu", "--device"), torch::Device(torch::kCPU));
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""}) {
    try {
      parse_device(bad, "--device");
      FAIL() << "'" << bad << "' was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--device"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cpu, cuda or cuda:N"), std::string::npos) << e.what();
    }
  }
}

TEST(Device, CudaWithoutAGpuIsAClearErrorNotACrash) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible; this checks the refusal without one";
  for (const char* spec : {"cuda", "cuda:0", "cuda:3"}) {
    try {
      parse_device(spec, "train.device");
      FAIL() << spec << " was accepted without CUDA";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("train.device"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("no CUDA"), std::string::npos) << e.what();
    }
  }
}

TEST(Device, PrecisionNamesAndFp16NeedsCuda) {
  EXPECT_EQ(parse_precision("fp32", torch::kCPU, "--precision"), Precision::kFloat32);
  EXPECT_EQ(parse_precision("bf16", torch::kCPU, "--precision"), Precision::kBFloat16);
  EXPECT_EQ(precision_name(Precision::kFloat16), "fp16");
  EXPECT_THROW(parse_precision("fp16", torch::kCPU, "--precision"), UsageError);
  EXPECT_THROW(parse_precision("fp8", torch::kCPU, "--precision"), UsageError);
}

TEST(Autocast, Bf16ScopeComputesConvolutionsInBf16AndRestoresFp32After) {
  torch::manual_seed(0);
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(2, 4, 3).padding(1));
  const torch::Tensor input = torch::randn({1, 2, 6, 6, 6});
  const torch::Tensor reference = conv->forward(input);
  {
    AutocastScope outer(torch::kCPU, Precision::kBFloat16);
    {
      AutocastScope inner(torch::kCPU, Precision::kFloat32);  // fp32 scopes leave autocast as it is
      EXPECT_EQ(conv->forward(input).scalar_type(), torch::kBFloat16);
    }
    const torch::Tensor mixed = conv->forward(input);
    EXPECT_EQ(mixed.scalar_type(), torch::kBFloat16);
    // bf16 keeps 8 bits of mantissa: a relative error near 2^-8 on the output's scale.
    const double error = (mixed.to(torch::kFloat32) - reference).abs().max().item<double>();
    EXPECT_LT(error, 0.02 * reference.abs().max().item<double>());
    EXPECT_GT(error, 0.0) << "autocast did not change the computation";
  }
  EXPECT_EQ(conv->forward(input).scalar_type(), torch::kFloat32);
  EXPECT_EQ(conv->weight.scalar_type(), torch::kFloat32) << "weights stay fp32";
}

TEST(LossScaler, SkipsOverflowingStepsHalvesAndGrowsTheScale) {
  LossScaler scaler(true, /*initial_scale=*/8.0, /*growth_interval=*/2);
  torch::Tensor weight = torch::ones({3}, torch::requires_grad());
  scaler.scale_loss((weight * 2).sum()).backward();  // d/dw = 2, scaled by 8
  EXPECT_TRUE(scaler.unscale_and_check({weight}));
  EXPECT_TRUE(torch::allclose(weight.grad(), torch::full({3}, 2.0)));
  scaler.step_taken();
  weight.mutable_grad() = torch::tensor({1.0f, INFINITY, 0.0f});
  EXPECT_FALSE(scaler.unscale_and_check({weight}));
  EXPECT_EQ(scaler.scale(), 4.0);
  EXPECT_EQ(scaler.good_steps(), 0) << "an overflow restarts the growth count";
  weight.mutable_grad() = torch::ones({3});
  EXPECT_TRUE(scaler.unscale_and_check({weight}));
  scaler.step_taken();
  weight.mutable_grad() = torch::ones({3});
  EXPECT_TRUE(scaler.unscale_and_check({weight}));
  scaler.step_taken();
  EXPECT_EQ(scaler.scale(), 8.0) << "two good steps in a row double it";

  LossScaler inactive(false);
  EXPECT_EQ(inactive.scale(), 1.0);
  weight.mutable_grad() = torch::tensor({1.0f, NAN, 0.0f});
  EXPECT_TRUE(inactive.unscale_and_check({weight})) << "fp32 and bf16 never skip; a NaN loss stops the run";
}

}  // namespace
}  // namespace graft::finetune
