#include "io/dicom/jpeg2000_decoder.h"

// ITK bundles an older OpenJPEG whose openjpeg.h sits on graft_io's include path too, so name
// Debian's 2.5 explicitly.
#include <openjpeg-2.5/openjpeg.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

#include "io/error.h"

namespace graft::io {
namespace {

constexpr std::uint8_t kJ2kMagic[] = {0xFF, 0x4F, 0xFF, 0x51};  // SOC then SIZ marker
constexpr std::uint8_t kJp2Magic[] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50,
                                      0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A};
// OpenJPEG can report an error per code-block; a user needs only the first few.
constexpr std::size_t kMaxMessageChars = 400;

struct CodecDeleter {
  void operator()(opj_codec_t* codec) const { opj_destroy_codec(codec); }
};
struct StreamDeleter {
  void operator()(opj_stream_t* stream) const { opj_stream_destroy(stream); }
};
struct ImageDeleter {
  void operator()(opj_image_t* image) const { opj_image_destroy(image); }
};

// The codestream as an OpenJPEG input stream, read straight from the caller's buffer.
struct MemorySource {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t position;
};

OPJ_SIZE_T read_memory(void* buffer, OPJ_SIZE_T byte_count, void* user_data) {
  auto* source = static_cast<MemorySource*>(user_data);
  const std::size_t left = source->size - source->position;
  if (left == 0) return static_cast<OPJ_SIZE_T>(-1);  // OpenJPEG's end-of-stream answer
  const std::size_t count = std::min<std::size_t>(byte_count, left);
  std::memcpy(buffer, source->data + source->position, count);
  source->position += count;
  return count;
}

OPJ_OFF_T skip_memory(OPJ_OFF_T byte_count, void* user_data) {
  auto* source = static_cast<MemorySource*>(user_data);
  const auto position = static_cast<OPJ_OFF_T>(source->position);
  if (position + byte_count < 0 || position + byte_count > static_cast<OPJ_OFF_T>(source->size)) {
    return -1;
  }
  source->position = static_cast<std::size_t>(position + byte_count);
  return byte_count;
}

OPJ_BOOL seek_memory(OPJ_OFF_T offset, void* user_data) {
  auto* source = static_cast<MemorySource*>(user_data);
  if (offset < 0 || offset > static_cast<OPJ_OFF_T>(source->size)) return OPJ_FALSE;
  source->position = static_cast<std::size_t>(offset);
  return OPJ_TRUE;
}

// OpenJPEG's messages end in newlines and arrive one at a time; keep them as one short line.
void collect_error(const char* message, void* client_data) noexcept {
  auto* text = static_cast<std::string*>(client_data);
  if (!message || text->size() >= kMaxMessageChars) return;
  try {
    std::string line(message);
    std::replace(line.begin(), line.end(), '\n', ' ');
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (line.empty()) return;
    if (!text->empty()) *text += "; ";
    *text += line;
    if (text->size() > kMaxMessageChars) text->resize(kMaxMessageChars);
  } catch (...) {
    // Out of memory while formatting a message: the decode result still reports the failure.
  }
}

void ignore_message(const char*, void*) noexcept {}

std::string with_details(const std::string& what, const std::string& errors) {
  return errors.empty() ? what : what + ": " + errors;
}

bool starts_with(const std::uint8_t* data, std::size_t size, const std::uint8_t* magic,
                 std::size_t magic_size) {
  return size >= magic_size && std::memcmp(data, magic, magic_size) == 0;
}

void check_layout(const PixelLayout& layout, const std::string& source) {
  if (layout.rows <= 0 || layout.columns <= 0) {
    throw Error(source + ": Rows/Columns " + std::to_string(layout.rows) + "x" +
                std::to_string(layout.columns) + " describe no pixels");
  }
  if (layout.samples_per_pixel < 1) {
    throw Error(source + ": SamplesPerPixel is " + std::to_string(layout.samples_per_pixel));
  }
  if (layout.bits_allocated != 8 && layout.bits_allocated != 16 && layout.bits_allocated != 32) {
    throw Error(source + ": BitsAllocated " + std::to_string(layout.bits_allocated) +
                " is not supported for JPEG 2000 (8, 16 or 32)");
  }
}

// Called after the header (to refuse a mismatch before allocating) and again after decoding,
// because a JP2 palette can change the component count.
void check_image_matches(const opj_image_t& image, const PixelLayout& layout,
                         const std::string& source) {
  const std::int64_t width = static_cast<std::int64_t>(image.x1) - image.x0;
  const std::int64_t height = static_cast<std::int64_t>(image.y1) - image.y0;
  if (width != layout.columns || height != layout.rows) {
    throw Error(source + ": JPEG 2000 codestream is " + std::to_string(height) + "x" +
                std::to_string(width) + " (rows x columns), but Rows/Columns say " +
                std::to_string(layout.rows) + "x" + std::to_string(layout.columns));
  }
  if (static_cast<std::int64_t>(image.numcomps) != layout.samples_per_pixel) {
    throw Error(source + ": JPEG 2000 codestream has " + std::to_string(image.numcomps) +
                " components, but SamplesPerPixel is " + std::to_string(layout.samples_per_pixel));
  }
  for (OPJ_UINT32 c = 0; c < image.numcomps; ++c) {
    const opj_image_comp_t& component = image.comps[c];
    if (component.dx != 1 || component.dy != 1) {
      throw Error(source + ": JPEG 2000 component " + std::to_string(c) + " is subsampled " +
                  std::to_string(component.dx) + "x" + std::to_string(component.dy) +
                  ", which DICOM pixel data cannot hold");
    }
    if (component.prec < 1 || component.prec > static_cast<OPJ_UINT32>(layout.bits_allocated)) {
      throw Error(source + ": JPEG 2000 component " + std::to_string(c) + " has " +
                  std::to_string(component.prec) + "-bit samples, but BitsAllocated is " +
                  std::to_string(layout.bits_allocated));
    }
  }
}

// Signedness follows PixelRepresentation, not the codestream's SIZ sgnd flag. Some encoders
// write an unsigned codestream for signed pixel data or the reverse (pydicom's
// J2K_pixelrep_mismatch.dcm: unsigned 13-bit samples, PixelRepresentation 1), and graft reads
// every other transfer syntax by the DICOM header too. So each sample is cut to its `prec` low
// bits, and those bits are read the DICOM way: sign-extended from bit prec-1 when
// PixelRepresentation is 1, taken as unsigned when it is 0. When the two agree, every sample
// the codestream can hold passes through unchanged.
template <typename T>
void copy_component(const opj_image_comp_t& component, std::int64_t pixel_count, int stride,
                    int offset, std::uint8_t* out) {
  constexpr bool is_signed = std::is_signed_v<T>;
  const int prec = static_cast<int>(component.prec);
  const std::int64_t mask = (std::int64_t{1} << prec) - 1;
  const std::int64_t sign_bit = std::int64_t{1} << (prec - 1);
  const OPJ_INT32* samples = component.data;
  for (std::int64_t i = 0; i < pixel_count; ++i) {
    std::int64_t value = static_cast<std::int64_t>(samples[i]) & mask;
    if constexpr (is_signed) {
      if (value & sign_bit) value -= mask + 1;
    }
    const T typed = static_cast<T>(value);
    std::memcpy(out + (i * stride + offset) * static_cast<std::int64_t>(sizeof(T)), &typed,
                sizeof(T));
  }
}

template <typename Unsigned, typename Signed>
void copy_as(const opj_image_comp_t& component, const PixelLayout& layout, int offset,
             std::uint8_t* out) {
  const std::int64_t pixel_count = layout.rows * layout.columns;
  if (layout.is_signed) {
    copy_component<Signed>(component, pixel_count, layout.samples_per_pixel, offset, out);
  } else {
    copy_component<Unsigned>(component, pixel_count, layout.samples_per_pixel, offset, out);
  }
}

void copy_image(const opj_image_t& image, const PixelLayout& layout, std::uint8_t* out,
                const std::string& source) {
  for (int c = 0; c < layout.samples_per_pixel; ++c) {
    const opj_image_comp_t& component = image.comps[c];
    if (!component.data || static_cast<std::int64_t>(component.w) != layout.columns ||
        static_cast<std::int64_t>(component.h) != layout.rows) {
      throw Error(source + ": JPEG 2000 decoder returned no full-size data for component " +
                  std::to_string(c));
    }
    switch (layout.bits_allocated) {
      case 8:
        copy_as<std::uint8_t, std::int8_t>(component, layout, c, out);
        break;
      case 16:
        copy_as<std::uint16_t, std::int16_t>(component, layout, c, out);
        break;
      default:
        copy_as<std::uint32_t, std::int32_t>(component, layout, c, out);
        break;
    }
  }
}

std::string leading_bytes(const std::uint8_t* data, std::size_t size) {
  std::string text;
  char hex[4];
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 4); ++i) {
    std::snprintf(hex, sizeof(hex), "%s%02X", i ? " " : "", data[i]);
    text += hex;
  }
  return text;
}

}  // namespace

void decode_jpeg2000_frame(const std::uint8_t* codestream, std::size_t size,
                           const PixelLayout& layout, std::uint8_t* out,
                           const std::string& source) {
  check_layout(layout, source);
  if (!codestream || size == 0) throw Error(source + ": JPEG 2000 frame is empty");
  OPJ_CODEC_FORMAT format;
  if (starts_with(codestream, size, kJ2kMagic, sizeof(kJ2kMagic))) {
    format = OPJ_CODEC_J2K;
  } else if (starts_with(codestream, size, kJp2Magic, sizeof(kJp2Magic))) {
    format = OPJ_CODEC_JP2;
  } else {
    throw Error(source + ": frame is not a JPEG 2000 codestream or JP2 file (starts with " +
                leading_bytes(codestream, size) + ")");
  }

  // Declared before the codec so that it outlives every callback that writes to it.
  std::string errors;
  std::unique_ptr<opj_codec_t, CodecDeleter> codec(opj_create_decompress(format));
  if (!codec) throw Error(source + ": cannot create a JPEG 2000 decoder");
  opj_set_info_handler(codec.get(), ignore_message, nullptr);
  opj_set_warning_handler(codec.get(), ignore_message, nullptr);
  opj_set_error_handler(codec.get(), collect_error, &errors);

  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(codec.get(), &parameters)) {
    throw Error(with_details(source + ": cannot set up the JPEG 2000 decoder", errors));
  }
  // Strict mode turns a truncated codestream into an error instead of a partly grey image.
  opj_decoder_set_strict_mode(codec.get(), OPJ_TRUE);
  // Zero worker threads: decode in the calling thread, whatever OPJ_NUM_THREADS says, so that
  // callers decoding frames in parallel do not multiply threads.
  opj_codec_set_threads(codec.get(), 0);

  MemorySource memory{codestream, size, 0};
  std::unique_ptr<opj_stream_t, StreamDeleter> stream(
      opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE));
  if (!stream) throw Error(source + ": cannot create a JPEG 2000 input stream");
  opj_stream_set_read_function(stream.get(), read_memory);
  opj_stream_set_skip_function(stream.get(), skip_memory);
  opj_stream_set_seek_function(stream.get(), seek_memory);
  opj_stream_set_user_data(stream.get(), &memory, nullptr);
  opj_stream_set_user_data_length(stream.get(), size);

  opj_image_t* raw_image = nullptr;
  const bool header_read = opj_read_header(stream.get(), codec.get(), &raw_image);
  std::unique_ptr<opj_image_t, ImageDeleter> image(raw_image);
  if (!header_read || !image) {
    throw Error(with_details(source + ": cannot read the JPEG 2000 header", errors));
  }
  check_image_matches(*image, layout, source);

  if (!opj_decode(codec.get(), stream.get(), image.get()) ||
      !opj_end_decompress(codec.get(), stream.get())) {
    throw Error(with_details(source + ": cannot decode the JPEG 2000 codestream", errors));
  }
  check_image_matches(*image, layout, source);
  copy_image(*image, layout, out, source);
}

}  // namespace graft::io
