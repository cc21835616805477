// main() of the LibTorch tests: gtest_main's, after OpenBLAS is given kernels that fit the CPU
// (finetune/blas_kernels.h); the python3-torch references the tests start inherit the choice.
#include <gtest/gtest.h>

#include "finetune/blas_kernels.h"

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
