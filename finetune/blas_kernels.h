#pragma once

namespace graft::finetune {

// OpenBLAS picks its matrix kernels once, when it loads, from the CPU's family and model numbers.
// Debian 12's OpenBLAS (0.3.21) does not know recent Xeons (Sapphire and Emerald Rapids) and falls
// back to its generic SSE3 "Prescott" kernels, which multiply 3.5-4x slower than its AVX-512 ones
// on the same CPU; every LibTorch layer that is a matrix product (linear, conv through im2col)
// pays that. The choice can only be changed before the library loads, so when OpenBLAS reports a
// pre-AVX2 core on a CPU that has AVX2 or AVX-512, this sets OPENBLAS_CORETYPE and executes the
// program again with the same arguments (same PID). It returns, changing nothing, when the
// kernels already fit the CPU, when BLAS is not OpenBLAS, when the user set OPENBLAS_CORETYPE,
// or when the re-execution fails. Call it first thing in main().
void use_fitting_blas_kernels(char** argv);

// The OPENBLAS_CORETYPE that use_fitting_blas_kernels would set here, or nullptr when it would
// change nothing. For a launcher of a LibTorch program (the light `graft` starting `graft-ml`):
// set it in the environment before the exec, and the program starts once instead of twice.
// LibTorch-free: this file is compiled into the light executable too.
const char* fitting_blas_core_type();

// glibc returns every block of more than 128 KiB-32 MiB (its threshold moves) to the kernel when
// it is freed, so a tensor of that size made and dropped once per window or per training step is
// faulted in page by page each time: predicting a CT volume took 3.6 M page faults and 26 s of
// system time. This fixes the threshold at 32 MiB, glibc's largest, and keeps up to 512 MiB of
// freed memory for reuse. A process-wide setting, so executables call it first thing in main()
// and the library never does.
void reuse_freed_memory();

// The OpenBLAS core in use ("SkylakeX", "Prescott", ...), or "" when BLAS is not OpenBLAS.
const char* blas_core_name();

}  // namespace graft::finetune
