#include "finetune/blas_kernels.h"

#include <gtest/gtest.h>

#include <string>

namespace {

// The test binary's main() ran use_fitting_blas_kernels, so on a CPU with AVX2 OpenBLAS must no
// longer be on its SSE3 fallback, whatever this CPU's model number is.
TEST(BlasKernels, OpenBlasUsesKernelsThatFitTheCpu) {
  const std::string core = graft::finetune::blas_core_name();
  if (core.empty()) GTEST_SKIP() << "BLAS here is not OpenBLAS";
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "this CPU has no AVX2";
  EXPECT_NE(core, "Prescott");
  EXPECT_NE(core, "Core2");
  EXPECT_NE(core, "Nehalem");
}

}  // namespace
