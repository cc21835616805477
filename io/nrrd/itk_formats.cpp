// libgraft_io's side of itk_formats.h: calls go through the ITK module (itk_module.h).
#include "io/nrrd/itk_formats.h"

#include "io/nrrd/itk_module.h"

namespace graft::io {

namespace {

const itk_module::EntryPoints& itk(const std::string& needed_by) {
#ifdef GRAFT_IO_MODULES_LINKED
  (void)needed_by;
  return *graft_io_itk_entry_points();
#else
  static IoModule<itk_module::EntryPoints> module("libgraft_io_itk.so", "graft_io_itk_entry_points",
                                                  itk_module::kEntryPointsVersion, "NRRD");
  return module.entry_points(needed_by);
#endif
}

}  // namespace

Image read_itk(const std::string& path, ItkFormat format) { return itk(path).read_itk(path, format); }

void write_itk(const Image& image, const std::string& path, ItkFormat format) {
  itk(path).write_itk(image, path, format);
}

}  // namespace graft::io
