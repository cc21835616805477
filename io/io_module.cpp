#include "io/io_module.h"

#include <dlfcn.h>

#include <filesystem>

#include "io/error.h"

namespace graft::io {

namespace {

std::string folder_of_this_library() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&io_module_symbol), &info) == 0 || !info.dli_fname) return "";
  return std::filesystem::path(info.dli_fname).parent_path().string();
}

}  // namespace

void* io_module_symbol(const std::string& module_file, const char* symbol, const std::string& needed_by,
                       const std::string& format) {
  static const std::string folder = folder_of_this_library();
  const std::string module_path = folder.empty() ? module_file : folder + "/" + module_file;
  // RTLD_LOCAL keeps the format library's symbols to the module; RTLD_NOW makes a missing
  // dependency an error here rather than a crash in the middle of a read.
  void* module = dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!module) {
    const char* reason = dlerror();
    throw FormatUnavailable(needed_by + ": " + format + " needs graft's module " + module_path +
                            ", which did not load (" + (reason ? reason : "no reason given") +
                            "); reinstall graft with its libraries side by side");
  }
  void* address = dlsym(module, symbol);
  if (!address) {
    throw FormatUnavailable(needed_by + ": " + format + " needs " + symbol + " from " + module_path +
                            ", which does not define it; the module is from another build of graft");
  }
  return address;
}

}  // namespace graft::io
