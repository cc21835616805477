#include "finetune/blas_kernels.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace graft::finetune {
namespace {

// The kernel family OpenBLAS should use on this CPU, or nullptr when its own choice is kept.
const char* fitting_core() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

// OpenBLAS's names for cores without AVX2, i.e. the fallbacks it takes for CPUs it cannot name.
bool is_pre_avx2_core(const std::string& core) {
  for (const char* name : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
                           "Coppermine", "Northwood", "Banias", "Sandybridge", "Unknown"}) {
    if (core == name) return true;
  }
  return false;
}

}  // namespace

const char* blas_core_name() {
  using CoreName = char* (*)();
  const auto core_name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core_name != nullptr ? core_name() : "";
}

const char* fitting_blas_core_type() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return nullptr;  // the user's choice, or already set
  const char* core = fitting_core();
  return core != nullptr && is_pre_avx2_core(blas_core_name()) ? core : nullptr;
}

void use_fitting_blas_kernels(char** argv) {
  const char* core = fitting_blas_core_type();
  if (core == nullptr) return;
  setenv("OPENBLAS_CORETYPE", core, 0);
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // execv failed: carry on with the slow kernels
}

void reuse_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

}  // namespace graft::finetune
