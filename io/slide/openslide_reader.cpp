// The OpenSlide side of io::Slide, built as the module libgraft_io_openslide.so (slide_module.h).
#include <openslide/openslide.h>

#include <cmath>
#include <cstdlib>

#include "io/error.h"
#include "io/slide/slide_module.h"
#include "io/stderr_silencer.h"

namespace graft::io::slide_module {

namespace {

std::optional<double> number_property(openslide_t* slide, const char* name) {
  const char* text = openslide_get_property_value(slide, name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || !std::isfinite(value) || value <= 0) return std::nullopt;
  return value;
}

class OpenSlideReader final : public SlideReader {
 public:
  explicit OpenSlideReader(const std::string& path);
  ~OpenSlideReader() override {
    if (slide_) openslide_close(slide_);
  }
  OpenSlideReader(const OpenSlideReader&) = delete;
  OpenSlideReader& operator=(const OpenSlideReader&) = delete;

  const std::string& vendor() const override { return vendor_; }
  const std::vector<SlideLevel>& levels() const override { return levels_; }
  std::optional<double> microns_per_pixel() const override { return microns_per_pixel_; }
  void read_argb(int level, std::int64_t x, std::int64_t y, std::int64_t width, std::int64_t height,
                 std::uint32_t* argb) const override {
    openslide_read_region(slide_, argb, x, y, level, width, height);
    if (const char* error = openslide_get_error(slide_)) throw Error(path_ + ": " + error);
  }

 private:
  std::string path_, vendor_;
  openslide_t* slide_ = nullptr;
  std::vector<SlideLevel> levels_;
  std::optional<double> microns_per_pixel_;
};

OpenSlideReader::OpenSlideReader(const std::string& path) : path_(path) {
  // libtiff warns on stderr about tags it does not know (GDAL's, vendors'); errors still come
  // back through openslide_get_error and become one line.
  const StderrSilencer quiet;
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (!vendor) throw Error(path + ": not a slide OpenSlide recognises");
  vendor_ = vendor;
  slide_ = openslide_open(path.c_str());
  if (!slide_) throw Error(path + ": OpenSlide cannot open it");
  if (const char* error = openslide_get_error(slide_)) throw Error(path + ": " + error);
  const int count = openslide_get_level_count(slide_);
  for (int level = 0; level < count; ++level) {
    SlideLevel info;
    openslide_get_level_dimensions(slide_, level, &info.width, &info.height);
    info.downsample = openslide_get_level_downsample(slide_, level);
    levels_.push_back(info);
  }
  if (levels_.empty()) throw Error(path + ": the slide has no levels");
  microns_per_pixel_ = number_property(slide_, OPENSLIDE_PROPERTY_NAME_MPP_X);
  if (!microns_per_pixel_) {
    // Generic TIFFs carry only the resolution tags: pixels per centimetre or inch.
    const auto resolution = number_property(slide_, "tiff.XResolution");
    const char* unit = openslide_get_property_value(slide_, "tiff.ResolutionUnit");
    if (resolution && unit && std::string(unit) == "centimeter") microns_per_pixel_ = 10000.0 / *resolution;
    if (resolution && unit && std::string(unit) == "inch") microns_per_pixel_ = 25400.0 / *resolution;
  }
}

std::unique_ptr<SlideReader> open_slide(const std::string& path) { return std::make_unique<OpenSlideReader>(path); }

}  // namespace

}  // namespace graft::io::slide_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::slide_module::EntryPoints* graft_io_openslide_entry_points() {
  static const graft::io::slide_module::EntryPoints entry_points{graft::io::slide_module::kEntryPointsVersion,
                                                                 &graft::io::slide_module::open_slide};
  return &entry_points;
}
