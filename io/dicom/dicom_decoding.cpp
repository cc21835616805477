// Decoding an assembled series' pixels into one Image: native reads by offset, RLE and JPEG 2000
// through graft's decoders, JPEG and JPEG-LS through DCMTK, then rescale and MONOCHROME1.
#include "io/dicom/dicom_decoding.h"

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "io/dicom/dicom_assembly.h"
#include "io/dicom/dicom_header.h"
#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/dicom/dicom_tags.h"
#include "io/dicom/dicom_tilt.h"
#include "io/dicom/jpeg2000_decoder.h"
#include "io/dicom/rle_decoder.h"
#include "io/dtype.h"
#include "io/error.h"
#include "io/image.h"
#include "io/parallel.h"
#include "io/pixel_layout.h"

namespace graft::io {
namespace dicom_detail {

namespace {

std::once_flag codecs_registered;

}  // namespace

void register_codecs() {
  std::call_once(codecs_registered, [] {
    // DCMTK logs decoder chatter at WARN through its own logger; graft reports through errors.
    OFLog::configure(OFLogger::ERROR_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

}  // namespace dicom_detail

using dicom_detail::assemble;
using dicom_detail::Assembly;
using dicom_detail::check_has_headers;
using dicom_detail::correct_shear;
using dicom_detail::get_int;
using dicom_detail::load_file;
using dicom_detail::PlaneImage;
using dicom_detail::register_codecs;
using dicom_detail::volume_source;

namespace {

bool is_jpeg2000(const std::string& transfer_syntax_uid) {
  return transfer_syntax_uid == "1.2.840.10008.1.2.4.90" ||
         transfer_syntax_uid == "1.2.840.10008.1.2.4.91";
}

// The bytes of one encapsulated frame. A frame in one fragment (nearly every file) is DCMTK's
// own buffer, valid while the dataset lives; a frame in several is joined into `joined`.
struct EncapsulatedFrame {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  std::vector<std::uint8_t> joined;
};

// One frame's fragments, found through the basic offset table, or one fragment per frame, or all
// fragments when the object has a single frame.
EncapsulatedFrame encapsulated_frame(DcmPixelData* pixel_data, const DicomFrameHeader& h, int frame_count) {
  DcmPixelSequence* sequence = nullptr;
  const DcmRepresentationParameter* parameters = nullptr;
  const E_TransferSyntax xfer = DcmXfer(h.transfer_syntax_uid.c_str()).getXfer();
  if (pixel_data->getEncapsulatedRepresentation(xfer, parameters, sequence).bad() || !sequence) {
    throw Error(h.file + ": PixelData is not encapsulated although the transfer syntax " +
                h.transfer_syntax_uid + " says so");
  }
  const unsigned long item_count = sequence->card();
  if (item_count < 2) throw Error(h.file + ": PixelData holds no compressed fragment");
  std::vector<unsigned long> fragments_of_frame;
  const unsigned long fragments = item_count - 1;
  if (frame_count == 1) {
    for (unsigned long i = 1; i < item_count; ++i) fragments_of_frame.push_back(i);
  } else if (fragments == static_cast<unsigned long>(frame_count)) {
    fragments_of_frame.push_back(static_cast<unsigned long>(h.frame_index) + 1);
  } else {
    // Fragments of several frames: the offset table (item 0) gives each frame's first byte.
    DcmPixelItem* table = nullptr;
    Uint8* table_bytes = nullptr;
    sequence->getItem(table, 0);
    const Uint32 table_length = table ? table->getLength() : 0;
    if (table_length < 4u * frame_count || table->getUint8Array(table_bytes).bad()) {
      throw Error(h.file + ": " + std::to_string(fragments) + " fragments for " +
                  std::to_string(frame_count) +
                  " frames and no basic offset table to tell them apart");
    }
    std::vector<Uint32> offsets(static_cast<std::size_t>(frame_count));
    std::memcpy(offsets.data(), table_bytes, 4u * frame_count);
    const Uint32 begin = offsets[h.frame_index];
    const Uint32 end = h.frame_index + 1 < frame_count ? offsets[h.frame_index + 1]
                                                       : std::numeric_limits<Uint32>::max();
    Uint32 position = 0;
    for (unsigned long i = 1; i < item_count; ++i) {
      DcmPixelItem* item = nullptr;
      sequence->getItem(item, i);
      if (position >= begin && position < end) fragments_of_frame.push_back(i);
      position += 8 + (item ? item->getLength() : 0);  // each fragment has an 8-byte item header
    }
  }
  EncapsulatedFrame frame;
  for (const unsigned long index : fragments_of_frame) {
    DcmPixelItem* item = nullptr;
    Uint8* bytes = nullptr;
    if (sequence->getItem(item, index).bad() || !item || item->getUint8Array(bytes).bad()) {
      throw Error(h.file + ": PixelData fragment " + std::to_string(index) +
                  " is unreadable (truncated?)");
    }
    if (fragments_of_frame.size() == 1) {
      frame.data = bytes;
      frame.size = item->getLength();
      return frame;
    }
    frame.joined.insert(frame.joined.end(), bytes, bytes + item->getLength());
  }
  frame.data = frame.joined.data();
  frame.size = frame.joined.size();
  return frame;
}

std::size_t frame_byte_count(const DicomFrameHeader& h) {
  return static_cast<std::size_t>(h.rows * h.columns) * h.samples_per_pixel *
         (h.bits_allocated / 8);
}

// Decodes one frame into `destination`, frame_byte_count(h) bytes (rows x columns x samples,
// samples interleaved, native order).
void decode_frame(DcmDataset* dataset, const DicomFrameHeader& h, int frame_count,
                  std::uint8_t* destination) {
  const std::string where =
      h.file + (h.multi_frame ? " frame " + std::to_string(h.frame_index + 1) : "");
  DcmElement* element = nullptr;
  if (dataset->findAndGetElement(DCM_PixelData, element).bad() || !element) {
    throw Error(where + ": PixelData missing (only integer PixelData is supported)");
  }
  auto* pixel_data = static_cast<DcmPixelData*>(element);
  const std::size_t frame_bytes = frame_byte_count(h);
  const PixelLayout layout{h.rows, h.columns, h.samples_per_pixel, h.bits_allocated,
                           h.pixel_representation == 1};
  if (is_jpeg2000(h.transfer_syntax_uid)) {
    const EncapsulatedFrame codestream = encapsulated_frame(pixel_data, h, frame_count);
    decode_jpeg2000_frame(codestream.data, codestream.size, layout, destination, where);
    return;
  }
  if (h.transfer_syntax_uid == "1.2.840.10008.1.2.5") {
    // graft's own RLE decoder writes straight into place: 3.8x fewer CPU samples than DCMTK's
    // on the synthetic RLE CT (perf).
    const EncapsulatedFrame compressed = encapsulated_frame(pixel_data, h, frame_count);
    decode_rle_frame(compressed.data, compressed.size, layout, destination, where);
    return;
  }
  if (!DcmXfer(h.transfer_syntax_uid.c_str()).isEncapsulated()) {
    // Uncompressed: check the length first, because a truncated file is the common failure.
    const Uint32 stored = element->getLength();
    const std::size_t needed = frame_bytes * static_cast<std::size_t>(h.frame_index + 1);
    if (stored < needed) {
      throw Error(where + ": PixelData is truncated: " + std::to_string(stored) +
                  " bytes, but Rows x Columns x " + "SamplesPerPixel x BitsAllocated need " +
                  std::to_string(needed));
    }
  }
  Uint32 start_fragment = 0;
  OFString color_model;
  const OFCondition status =
      pixel_data->getUncompressedFrame(dataset, static_cast<Uint32>(h.frame_index), start_fragment,
                                       destination, static_cast<Uint32>(frame_bytes), color_model);
  if (status.bad()) {
    throw Error(where + ": cannot decode PixelData in transfer syntax " + h.transfer_syntax_uid +
                " (" + status.text() + ")");
  }
  if (h.samples_per_pixel == 3 && color_model != "RGB") {
    throw Error(where + ": color model " + std::string(color_model.c_str()) +
                " is not supported (RGB only)");
  }
}

// Uncompressed little-endian files nearly always end with PixelData: its value is then the file's
// last pixel_data_bytes bytes, behind an element header that says so. When the bytes there match
// exactly, frames are read by offset, and the file is never parsed a second time; anything else
// (trailing elements, truncation, other syntaxes) leaves the frame to DCMTK.
class NativePixelFile {
 public:
  explicit NativePixelFile(const DicomFrameHeader& h) {
    const bool little_endian_native = h.transfer_syntax_uid == "1.2.840.10008.1.2" ||
                                      h.transfer_syntax_uid == "1.2.840.10008.1.2.1";
    if (!little_endian_native || gLocalByteOrder != EBO_LittleEndian || h.pixel_data_bytes == 0 ||
        h.pixel_data_bytes == DCM_UndefinedLength) {
      return;
    }
    fd_ = ::open(h.file.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat status {};
    if (fd_ < 0 || ::fstat(fd_, &status) != 0 ||
        status.st_size < static_cast<off_t>(h.pixel_data_bytes) + 12)
      return;
    const off_t value_offset = status.st_size - static_cast<off_t>(h.pixel_data_bytes);
    std::uint8_t header[12];
    if (::pread(fd_, header, sizeof header, value_offset - 12) !=
        static_cast<ssize_t>(sizeof header))
      return;
    const std::uint8_t tag[4] = {0xE0, 0x7F, 0x10, 0x00};
    std::uint8_t length[4];
    for (int i = 0; i < 4; ++i)
      length[i] = static_cast<std::uint8_t>(h.pixel_data_bytes >> (8 * i));
    const bool is_explicit = h.transfer_syntax_uid == "1.2.840.10008.1.2.1";
    // Explicit VR: tag, "OW" or "OB", two reserved bytes, 4-byte length. Implicit: tag, length.
    const bool matches =
        is_explicit
            ? std::memcmp(header, tag, 4) == 0 && header[4] == 'O' &&
                  (header[5] == 'W' || header[5] == 'B') && header[6] == 0 && header[7] == 0 &&
                  std::memcmp(header + 8, length, 4) == 0
            : std::memcmp(header + 4, tag, 4) == 0 && std::memcmp(header + 8, length, 4) == 0;
    if (matches) value_offset_ = value_offset;
  }
  ~NativePixelFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  NativePixelFile(const NativePixelFile&) = delete;
  NativePixelFile& operator=(const NativePixelFile&) = delete;

  // Reads frame h.frame_index into `destination`; false when this file cannot be read by offset.
  bool read_frame(const DicomFrameHeader& h, std::uint8_t* destination) const {
    if (value_offset_ < 0) return false;
    const std::size_t frame_bytes = frame_byte_count(h);
    const std::size_t start = frame_bytes * static_cast<std::size_t>(h.frame_index);
    if (start + frame_bytes > h.pixel_data_bytes) return false;
    std::size_t done = 0;
    while (done < frame_bytes) {
      const ssize_t got = ::pread(fd_, destination + done, frame_bytes - done,
                                  value_offset_ + static_cast<off_t>(start + done));
      if (got <= 0) return false;
      done += static_cast<std::size_t>(got);
    }
    return true;
  }

 private:
  int fd_ = -1;
  off_t value_offset_ = -1;
};

// Masks bits above BitsStored (overlays may live there) and sign-extends signed data.
template <typename T>
void normalize_stored_bits(T* values, std::size_t count, int bits_stored, bool is_signed) {
  constexpr int kBits = sizeof(T) * 8;
  if (bits_stored >= kBits) return;
  using Unsigned = std::make_unsigned_t<T>;
  const Unsigned mask = static_cast<Unsigned>((Unsigned{1} << bits_stored) - 1);
  const Unsigned sign_bit = static_cast<Unsigned>(Unsigned{1} << (bits_stored - 1));
  for (std::size_t i = 0; i < count; ++i) {
    Unsigned bits = static_cast<Unsigned>(values[i]) & mask;
    if (is_signed && (bits & sign_bit)) bits = static_cast<Unsigned>(bits | ~mask);
    values[i] = static_cast<T>(bits);
  }
}

// The smallest and largest stored value seen, over every plane of a series.
struct StoredRange {
  std::int64_t low = std::numeric_limits<std::int64_t>::max();
  std::int64_t high = std::numeric_limits<std::int64_t>::min();
  void include(const StoredRange& other) {
    low = std::min(low, other.low);
    high = std::max(high, other.high);
  }
};

template <typename T>
void measure_stored_range(const T* values, std::size_t count, StoredRange& range) {
  if (count == 0) return;
  T low = values[0], high = values[0];
  for (std::size_t i = 1; i < count; ++i) {
    low = std::min(low, values[i]);
    high = std::max(high, values[i]);
  }
  range.include({static_cast<std::int64_t>(low), static_cast<std::int64_t>(high)});
}

DType stored_dtype(const DicomFrameHeader& h) {
  const bool is_signed = h.pixel_representation == 1;
  switch (h.bits_allocated) {
    case 8:
      return is_signed ? DType::kI8 : DType::kU8;
    case 16:
      return is_signed ? DType::kI16 : DType::kU16;
    default:
      return is_signed ? DType::kI32 : DType::kU32;
  }
}

// Uncompressed colour by plane (PlanarConfiguration 1) to the interleaved order place_plane reads.
void interleave_planes(std::vector<std::uint8_t>& frame, const DicomFrameHeader& h) {
  const auto sample_bytes = static_cast<std::size_t>(h.bits_allocated / 8);
  const auto pixels = static_cast<std::size_t>(h.rows * h.columns);
  const auto samples = static_cast<std::size_t>(h.samples_per_pixel);
  std::vector<std::uint8_t> interleaved(frame.size());
  for (std::size_t sample = 0; sample < samples; ++sample) {
    for (std::size_t pixel = 0; pixel < pixels; ++pixel) {
      std::memcpy(interleaved.data() + (pixel * samples + sample) * sample_bytes,
                  frame.data() + (sample * pixels + pixel) * sample_bytes, sample_bytes);
    }
  }
  frame.swap(interleaved);
}

// Copies a decoded frame (or one mosaic tile) into channel slots of the raw volume.
void place_plane(const std::vector<std::uint8_t>& frame, const PlaneImage& plane, std::int64_t z,
                 std::int64_t first_channel, Image& raw) {
  const DicomFrameHeader& h = *plane.header;
  const std::size_t bytes_per_sample = static_cast<std::size_t>(h.bits_allocated / 8);
  const std::int64_t columns = raw.geometry().size_xyz[0], rows = raw.geometry().size_xyz[1];
  std::int64_t tile_row = 0, tile_column = 0;
  if (plane.tile >= 0) {
    const auto per_side = static_cast<std::int64_t>(std::ceil(std::sqrt(h.mosaic_tiles)));
    tile_row = plane.tile / per_side;
    tile_column = plane.tile % per_side;
  }
  for (int sample = 0; sample < h.samples_per_pixel; ++sample) {
    std::uint8_t* destination =
        raw.bytes() + raw.offset(first_channel + sample, z, 0, 0) * bytes_per_sample;
    for (std::int64_t y = 0; y < rows; ++y) {
      const std::int64_t source_row = tile_row * rows + y;
      const std::uint8_t* source_line =
          frame.data() +
          (source_row * h.columns + tile_column * columns) * h.samples_per_pixel * bytes_per_sample;
      std::uint8_t* destination_line = destination + y * columns * bytes_per_sample;
      if (h.samples_per_pixel == 1) {
        std::memcpy(destination_line, source_line, columns * bytes_per_sample);
      } else {
        for (std::int64_t x = 0; x < columns; ++x) {
          std::memcpy(destination_line + x * bytes_per_sample,
                      source_line + (x * h.samples_per_pixel + sample) * bytes_per_sample,
                      bytes_per_sample);
        }
      }
    }
  }
}

template <typename Out, typename In>
void rescale_into(const In* raw, Out* out, std::size_t count, double slope, double intercept,
                  bool invert, double stored_min, double stored_max) {
  for (std::size_t i = 0; i < count; ++i) {
    double value = static_cast<double>(raw[i]);
    if (invert) value = stored_min + stored_max - value;
    value = value * slope + intercept;
    if constexpr (std::is_integral_v<Out>) {
      out[i] = static_cast<Out>(std::llround(value));
    } else {
      out[i] = static_cast<Out>(value);
    }
  }
}

// Integer slope and intercept (CT's -1024) in place: exact in integer arithmetic, several times
// faster than rounding a double per voxel, and no second buffer. Out has In's width, so the bits
// written are Out's value.
template <typename Out, typename In>
void rescale_integral_in_place(In* values, std::size_t count, std::int64_t slope,
                               std::int64_t intercept) {
  static_assert(sizeof(Out) == sizeof(In), "in place needs one width");
  for (std::size_t i = 0; i < count; ++i) {
    values[i] =
        static_cast<In>(static_cast<Out>(static_cast<std::int64_t>(values[i]) * slope + intercept));
  }
}

// Applies RescaleSlope/Intercept per slice (they may differ between slices) and inverts
// MONOCHROME1, into the narrowest of int16, int32 and float32 that holds every result exactly.
// `stored` is the range of the values actually stored, so a 16-bit CT with intercept -1024 stays
// int16 when its data allow.
Image apply_rescale(Image raw, const std::vector<std::vector<PlaneImage>>& slices,
                    StoredRange stored) {
  const DicomFrameHeader& first = *slices.front().front().header;
  const bool invert = first.photometric == "MONOCHROME1";
  bool identity = !invert, integral = true;
  for (const auto& at_position : slices) {
    for (const auto& p : at_position) {
      const auto& h = *p.header;
      if (h.rescale_slope != 1.0 || h.rescale_intercept != 0.0) identity = false;
      if (h.rescale_slope != std::round(h.rescale_slope) ||
          h.rescale_intercept != std::round(h.rescale_intercept)) {
        integral = false;
      }
    }
  }
  if (identity) return raw;
  const bool is_signed = first.pixel_representation == 1;
  const double stored_min = is_signed ? -std::ldexp(1.0, first.bits_stored - 1) : 0.0;
  const double stored_max = is_signed ? std::ldexp(1.0, first.bits_stored - 1) - 1
                                      : std::ldexp(1.0, first.bits_stored) - 1;
  double raw_min = raw.element_count() > 0 ? static_cast<double>(stored.low) : 0.0;
  double raw_max = raw.element_count() > 0 ? static_cast<double>(stored.high) : 0.0;
  if (invert)
    std::tie(raw_min, raw_max) =
        std::make_pair(stored_min + stored_max - raw_max, stored_min + stored_max - raw_min);
  double low = std::numeric_limits<double>::max(), high = std::numeric_limits<double>::lowest();
  for (const auto& at_position : slices) {
    for (const auto& p : at_position) {
      for (double value : {raw_min, raw_max}) {
        const double rescaled = value * p.header->rescale_slope + p.header->rescale_intercept;
        low = std::min(low, rescaled);
        high = std::max(high, rescaled);
      }
    }
  }
  const DType out_dtype = !integral                                        ? DType::kF32
                          : (low >= -32768 && high <= 32767)               ? DType::kI16
                          : (low >= -2147483648.0 && high <= 2147483647.0) ? DType::kI32
                                                                           : DType::kF32;
  const std::int64_t plane_voxels = raw.geometry().size_xyz[0] * raw.geometry().size_xyz[1];
  const std::int64_t samples = first.samples_per_pixel;
  const auto slice_count = static_cast<std::size_t>(slices.size());
  if (!invert && dtype_is_integer(out_dtype) &&
      dtype_size_bytes(out_dtype) == dtype_size_bytes(raw.dtype())) {
    visit_dtype(raw.dtype(), [&](auto stored_tag) {
      using In = decltype(stored_tag);
      In* values = reinterpret_cast<In*>(raw.bytes());
      parallel_for_each(slice_count, [&](std::size_t z) {
        for (std::int64_t c = 0; c < raw.channels(); ++c) {
          const auto& h = *slices[z][c / samples].header;
          In* plane = values + raw.offset(c, static_cast<std::int64_t>(z), 0, 0);
          const auto slope = static_cast<std::int64_t>(h.rescale_slope);
          const auto intercept = static_cast<std::int64_t>(h.rescale_intercept);
          if constexpr (std::is_integral_v<In> && sizeof(In) == 2) {
            rescale_integral_in_place<std::int16_t>(plane, plane_voxels, slope, intercept);
          } else if constexpr (std::is_integral_v<In> && sizeof(In) == 4) {
            rescale_integral_in_place<std::int32_t>(plane, plane_voxels, slope, intercept);
          }
        }
      });
    });
    raw.relabel_integer_dtype(out_dtype);
    raw.metadata().rescale_applied = true;
    return raw;
  }
  Image out = Image::uninitialized(out_dtype, raw.channels(), raw.geometry());
  out.metadata() = raw.metadata();
  visit_dtype(raw.dtype(), [&](auto stored_tag) {
    using In = decltype(stored_tag);
    const In* in = reinterpret_cast<const In*>(raw.bytes());
    parallel_for_each(slice_count, [&](std::size_t slice) {
      const auto z = static_cast<std::int64_t>(slice);
      for (std::int64_t c = 0; c < raw.channels(); ++c) {
        const auto& h = *slices[slice][c / samples].header;
        const std::int64_t offset = raw.offset(c, z, 0, 0);
        switch (out_dtype) {
          case DType::kI16:
            rescale_into(in + offset, out.data<std::int16_t>() + offset, plane_voxels,
                         h.rescale_slope, h.rescale_intercept, invert, stored_min, stored_max);
            break;
          case DType::kI32:
            rescale_into(in + offset, out.data<std::int32_t>() + offset, plane_voxels,
                         h.rescale_slope, h.rescale_intercept, invert, stored_min, stored_max);
            break;
          default:
            rescale_into(in + offset, out.data<float>() + offset, plane_voxels, h.rescale_slope,
                         h.rescale_intercept, invert, stored_min, stored_max);
        }
      }
    });
  });
  out.metadata().rescale_applied = true;
  return out;
}

}  // namespace

DicomVolume read_dicom_series(const DicomSeries& series, const DicomReadOptions& options) {
  register_codecs();
  check_has_headers(series);
  // Bit-packed (or fractional) segment frames on their own grid: a label image, not pixels.
  if (is_dicom_seg_series(series)) return read_dicom_seg_series(series);
  Assembly assembly = assemble(series, options.correct_tilt);
  const auto& slices = assembly.slices;
  const DicomFrameHeader& first = *slices.front().front().header;
  const std::int64_t channels =
      static_cast<std::int64_t>(slices.front().size()) * first.samples_per_pixel;
  Image raw = Image::uninitialized(stored_dtype(first), channels, assembly.geometry);

  // Every plane a file supplies, so each file is opened and parsed once.
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>>
      planes_by_file;  // (z, position in slice)
  for (std::int64_t z = 0; z < static_cast<std::int64_t>(slices.size()); ++z) {
    for (std::int64_t k = 0; k < static_cast<std::int64_t>(slices[z].size()); ++k) {
      planes_by_file[slices[z][k].header->file].emplace_back(z, k);
    }
  }
  std::vector<std::string> files;
  for (const auto& entry : planes_by_file) files.push_back(entry.first);
  const auto bytes_per_sample = static_cast<std::size_t>(first.bits_allocated / 8);
  const std::int64_t plane_voxels = assembly.geometry.size_xyz[0] * assembly.geometry.size_xyz[1];
  std::vector<StoredRange> ranges(files.size());
  parallel_for_each(files.size(), [&](std::size_t i) {
    auto wanted = planes_by_file.at(files[i]);
    std::sort(wanted.begin(), wanted.end(), [&](const auto& a, const auto& b) {
      return slices[a.first][a.second].header->frame_index <
             slices[b.first][b.second].header->frame_index;
    });
    const DicomFrameHeader& file_header =
        *slices[wanted.front().first][wanted.front().second].header;
    const NativePixelFile native(file_header);
    // DCMTK parses the file only for frames that cannot be read by offset. Uncompressed: headers
    // only, and DCMTK reads each frame straight into place. Compressed: the whole file at once
    // (fragment by fragment from the file is slower).
    DcmFileFormat file_format;
    DcmDataset* dataset = nullptr;
    int frame_count = 1;
    auto decode = [&](const DicomFrameHeader& h, std::uint8_t* destination) {
      if (native.read_frame(h, destination)) return;
      if (!dataset) {
        load_file(file_format, files[i], !DcmXfer(h.transfer_syntax_uid.c_str()).isEncapsulated());
        dataset = file_format.getDataset();
        frame_count = std::max(1, get_int(dataset, DCM_NumberOfFrames, 1));
      }
      decode_frame(dataset, h, frame_count, destination);
    };
    std::vector<std::uint8_t> frame;
    int decoded_frame = -1;
    for (const auto& [z, k] : wanted) {
      const PlaneImage& plane = slices[z][k];
      const DicomFrameHeader& h = *plane.header;
      const std::int64_t first_channel = k * first.samples_per_pixel;
      if (plane.tile < 0 && h.samples_per_pixel == 1) {
        // The frame is exactly the plane: decode into the volume, no copy.
        decode(h, raw.bytes() + raw.offset(first_channel, z, 0, 0) * bytes_per_sample);
      } else {
        if (h.frame_index != decoded_frame) {
          frame.resize(frame_byte_count(h));
          decode(h, frame.data());
          if (h.samples_per_pixel > 1 && h.planar_configuration == 1 &&
              !DcmXfer(h.transfer_syntax_uid.c_str()).isEncapsulated()) {
            interleave_planes(frame, h);
          }
          decoded_frame = h.frame_index;
        }
        place_plane(frame, plane, z, first_channel, raw);
      }
      visit_dtype(raw.dtype(), [&](auto stored_tag) {
        using T = decltype(stored_tag);
        if constexpr (std::is_integral_v<T>) {
          for (int sample = 0; sample < first.samples_per_pixel; ++sample) {
            T* values = raw.data<T>() + raw.offset(first_channel + sample, z, 0, 0);
            normalize_stored_bits(values, plane_voxels, first.bits_stored,
                                  first.pixel_representation == 1);
            measure_stored_range(values, plane_voxels, ranges[i]);
          }
        }
      });
    }
  });
  StoredRange stored;
  for (const auto& range : ranges) stored.include(range);

  raw.metadata().modality = series.modality;
  raw.metadata().source_format = "dicom";
  Image image = apply_rescale(std::move(raw), slices, stored);
  if (series.modality == "CT" && image.metadata().rescale_applied) image.metadata().units = "HU";
  if (assembly.shear) image = correct_shear(image, *assembly.shear);
  image.geometry().validate("series " + series.series_instance_uid);

  const Geometry geometry = image.geometry();
  return {std::move(image), volume_source(series, geometry, slices)};
}

}  // namespace graft::io
