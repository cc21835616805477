#pragma once

// Inside libgraft_io: the table through which itk_formats.h reaches ITK, whose IO libraries come
// to a dozen shared libraries (ITKCommon, VNL, ICU, ...) that only NRRD needs. The wrapper is a
// module, libgraft_io_itk.so, opened the first time an NRRD file is read or written
// (io/io_module.h).
#include <string>

#include "io/io_module.h"
#include "io/nrrd/itk_formats.h"

namespace graft::io::itk_module {

inline constexpr int kEntryPointsVersion = 1;

struct EntryPoints {
  int version;
  Image (*read_itk)(const std::string& path, ItkFormat format);
  void (*write_itk)(const Image& image, const std::string& path, ItkFormat format);
};

}  // namespace graft::io::itk_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::itk_module::EntryPoints* graft_io_itk_entry_points();
