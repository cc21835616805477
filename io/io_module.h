#pragma once

// Format libraries that bring dozens of shared libraries of their own (GDAL, HDF5, OpenSlide,
// ITK) are wrapped in modules that libgraft_io opens on first use, so a command that never meets
// their formats never loads them: binding their ~180 libraries took most of every graft
// command's start-up. A module lives in the folder libgraft_io itself was
// loaded from (the build's io/, or the installed lib/), exports one C function returning its
// table of entry points, and is built with libgraft_io: a table of another version is refused.
// A static build (BUILD_SHARED_LIBS=OFF) links the wrappers in instead (GRAFT_IO_MODULES_LINKED).
#include <atomic>
#include <string>
#include <utility>

#include "io/error.h"

#if defined(__GNUC__)
#define GRAFT_IO_MODULE_EXPORT __attribute__((visibility("default")))
#else
#define GRAFT_IO_MODULE_EXPORT
#endif

namespace graft::io {

// The address of `symbol` in `module_file` ("libgraft_io_gdal.so"). The module is opened once
// and stays loaded. When it cannot be found or opened, throws graft::FormatUnavailable naming
// `needed_by` (the file being read or written), `format`, the module's path and the loader's
// reason.
void* io_module_symbol(const std::string& module_file, const char* symbol, const std::string& needed_by,
                       const std::string& format);

// One module's entry points, loaded by the first call of entry_points() and kept: `symbol`
// returns them, and their first member, `version`, must equal `version`.
template <typename EntryPoints>
class IoModule {
 public:
  IoModule(std::string module_file, const char* symbol, int version, std::string format)
      : module_file_(std::move(module_file)), symbol_(symbol), version_(version), format_(std::move(format)) {}

  const EntryPoints& entry_points(const std::string& needed_by) {
    if (const EntryPoints* loaded = loaded_.load(std::memory_order_acquire)) return *loaded;
    using EntryFunction = const EntryPoints* (*)();
    const auto entry = reinterpret_cast<EntryFunction>(io_module_symbol(module_file_, symbol_, needed_by, format_));
    const EntryPoints* loaded = entry();
    if (loaded->version != version_) {
      throw FormatUnavailable(needed_by + ": " + format_ + " needs " + module_file_ + " from this build of graft " +
                              "(its entry points are version " + std::to_string(loaded->version) + ", not " +
                              std::to_string(version_) + ")");
    }
    loaded_.store(loaded, std::memory_order_release);
    return *loaded;
  }

 private:
  std::string module_file_;
  const char* symbol_;
  int version_;
  std::string format_;
  std::atomic<const EntryPoints*> loaded_{nullptr};
};

}  // namespace graft::io
