#pragma once

// Inside libgraft_io: how io::Slide reaches OpenSlide, whose cairo, GLib, gdk-pixbuf and libxml2
// come to about 30 shared libraries. The wrapper is a module, libgraft_io_openslide.so, opened
// the first time a slide is opened (io/io_module.h).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/io_module.h"
#include "io/slide/slide.h"

namespace graft::io::slide_module {

// One open slide.
class SlideReader {
 public:
  virtual ~SlideReader() = default;
  virtual const std::string& vendor() const = 0;
  virtual const std::vector<SlideLevel>& levels() const = 0;
  virtual std::optional<double> microns_per_pixel() const = 0;
  // width x height premultiplied ARGB pixels of `level` at level-0 (x, y), row by row. Throws
  // graft::Error naming the file with OpenSlide's reason. Safe to call from several threads.
  virtual void read_argb(int level, std::int64_t x, std::int64_t y, std::int64_t width, std::int64_t height,
                         std::uint32_t* argb) const = 0;
};

inline constexpr int kEntryPointsVersion = 1;

struct EntryPoints {
  int version;
  // Throws graft::Error naming the file when OpenSlide does not recognise or cannot open it.
  std::unique_ptr<SlideReader> (*open_slide)(const std::string& path);
};

}  // namespace graft::io::slide_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::slide_module::EntryPoints* graft_io_openslide_entry_points();
