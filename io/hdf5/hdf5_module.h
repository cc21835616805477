#pragma once

// Inside libgraft_io: the table through which the functions of hdf5_file.h reach the HDF5
// library, whose build brings about 30 shared libraries (curl, TLS, SSH, LDAP, ...) for its
// remote drivers. The wrapper is a module, libgraft_io_hdf5.so, opened the first time an HDF5
// file is listed, read or written (io/io_module.h).
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "io/hdf5/hdf5_file.h"
#include "io/io_module.h"

namespace graft::io::hdf5_module {

// Debian's serial HDF5 is not thread-safe: one caller at a time, across the module and the
// listing child process that libgraft_io forks (held across the fork). Defined in libgraft_io.
std::mutex& library_mutex();

inline constexpr int kEntryPointsVersion = 1;

struct EntryPoints {
  int version;
  // Lists datasets depth first in name order (io::list_hdf5's work, in this process).
  Hdf5Contents (*list_in_this_process)(const std::string& path);
  bool (*hdf5_has_dataset)(const std::string& path, const std::string& dataset);
  // Reads the dataset `dataset_path` (already chosen).
  Image (*read_hdf5)(const std::string& path, const std::string& dataset_path);
  void (*write_hdf5_images)(const std::string& path, const std::vector<std::pair<std::string, const Image*>>& images,
                            const std::map<std::string, std::string>& root_attributes, int gzip_level);
  void (*write_feature_bag)(const std::string& path, const std::vector<float>& features, std::int64_t dim,
                            const std::vector<std::array<std::int64_t, 2>>& coords,
                            const nlohmann::json& coords_attributes);
};

}  // namespace graft::io::hdf5_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::hdf5_module::EntryPoints* graft_io_hdf5_entry_points();
