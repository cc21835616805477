#include "io/header_checks.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "io/error.h"
#include "io/file_bytes.h"

namespace graft::io {
namespace {

template <typename T>
T load(const std::vector<std::uint8_t>& bytes, std::size_t offset, bool swap) {
  T value;
  std::uint8_t raw[sizeof(T)];
  std::memcpy(raw, bytes.data() + offset, sizeof(T));
  if (swap) {
    for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(raw[i], raw[sizeof(T) - 1 - i]);
  }
  std::memcpy(&value, raw, sizeof(T));
  return value;
}

// Multiplies with overflow saturating to the largest value, so absurd headers compare as huge.
std::uint64_t saturating_multiply(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return std::numeric_limits<std::uint64_t>::max();
  return out;
}

int nifti_bytes_per_voxel(int datatype, const std::string& path) {
  switch (datatype) {
    case 2: case 256: return 1;      // u8, i8
    case 4: case 512: return 2;      // i16, u16
    case 8: case 768: case 16: return 4;  // i32, u32, f32
    case 64: return 8;               // f64
    case 128: return 3;              // RGB24
    case 2304: return 4;             // RGBA32
    case 1024: case 1280:
      throw Error(path + ": datatype " + std::to_string(datatype) +
                  " (64-bit integer) is not supported; convert to int32 or float64");
    case 32: case 1792: case 2048:
      throw Error(path + ": datatype " + std::to_string(datatype) +
                  " (complex) is not supported");
    default:
      throw Error(path + ": datatype " + std::to_string(datatype) + " is not a NIfTI datatype");
  }
}

}  // namespace

NiftiHeaderFacts check_nifti_header(const std::string& path) {
  const std::vector<std::uint8_t> header = read_file_prefix(path, 540);
  if (header.size() < 348) {
    throw Error(path + ": NIfTI header is truncated (" + std::to_string(header.size()) +
                " bytes, needs at least 348)");
  }
  const std::int32_t sizeof_hdr = load<std::int32_t>(header, 0, false);
  const std::int32_t sizeof_hdr_swapped = load<std::int32_t>(header, 0, true);
  bool nifti2 = false;
  bool swap = false;
  if (sizeof_hdr == 348 || sizeof_hdr_swapped == 348) {
    swap = sizeof_hdr != 348;
  } else if (sizeof_hdr == 540 || sizeof_hdr_swapped == 540) {
    nifti2 = true;
    swap = sizeof_hdr != 540;
    if (header.size() < 540) throw Error(path + ": NIfTI-2 header is truncated");
  } else {
    throw Error(path + ": sizeof_hdr is " + std::to_string(sizeof_hdr) +
                ", expected 348 (NIfTI-1) or 540 (NIfTI-2)");
  }

  std::int64_t dims[8];
  double pixdim[8];
  int datatype;
  std::uint64_t vox_offset;
  for (int i = 0; i < 8; ++i) {
    dims[i] = nifti2 ? load<std::int64_t>(header, 16 + 8 * i, swap)
                     : load<std::int16_t>(header, 40 + 2 * i, swap);
    pixdim[i] = nifti2 ? load<double>(header, 104 + 8 * i, swap)
                       : load<float>(header, 76 + 4 * i, swap);
  }
  datatype = nifti2 ? load<std::int16_t>(header, 12, swap) : load<std::int16_t>(header, 70, swap);
  const double raw_offset = nifti2 ? static_cast<double>(load<std::int64_t>(header, 168, swap))
                                   : load<float>(header, 108, swap);
  if (!std::isfinite(raw_offset) || raw_offset < 0) {
    throw Error(path + ": vox_offset is not a valid byte offset");
  }
  vox_offset = static_cast<std::uint64_t>(raw_offset);

  if (dims[0] < 1 || dims[0] > 7) {
    throw Error(path + ": dim[0] is " + std::to_string(dims[0]) + ", must be 1..7");
  }
  std::uint64_t voxels = 1;
  for (int i = 1; i <= dims[0]; ++i) {
    if (dims[i] < 1) {
      throw Error(path + ": dim[" + std::to_string(i) + "] is " + std::to_string(dims[i]) +
                  ", must be positive");
    }
    voxels = saturating_multiply(voxels, static_cast<std::uint64_t>(dims[i]));
  }
  for (int i = 1; i <= std::min<std::int64_t>(dims[0], 3); ++i) {
    if (!std::isfinite(pixdim[i]) || pixdim[i] < 0) {
      std::ostringstream why;
      why << path << ": pixdim[" << i << "] (voxel spacing) is " << pixdim[i]
          << ", must be finite and not negative";
      throw Error(why.str());
    }
  }
  const std::uint64_t payload =
      saturating_multiply(voxels, static_cast<std::uint64_t>(nifti_bytes_per_voxel(datatype, path)));

  const std::string magic(reinterpret_cast<const char*>(header.data()) + (nifti2 ? 4 : 344), 3);
  const bool single_file = magic == "n+1" || magic == "n+2";
  std::uint64_t available = 0;
  if (single_file) {
    const std::uint64_t stored = file_size_bytes(path);
    const std::uint64_t content = is_gzip_file(path) ? max_gunzipped_bytes(stored) : stored;
    available = content > vox_offset ? content - vox_offset : 0;
  } else {
    // A .hdr/.img pair: the voxels live in the sibling .img (possibly .img.gz).
    std::string image_path = path;
    const auto dot = image_path.rfind(".hdr");
    if (dot == std::string::npos) throw Error(path + ": NIfTI magic is missing");
    image_path.replace(dot, 4, ".img");
    std::ifstream probe(image_path);
    if (!probe) image_path += ".gz";
    const std::uint64_t stored = file_size_bytes(image_path);
    available = is_gzip_file(image_path) ? max_gunzipped_bytes(stored) : stored;
  }
  check_payload_fits(path, "the header's dim and datatype", payload, available);
  NiftiHeaderFacts facts;
  facts.scl_slope = nifti2 ? load<double>(header, 176, swap) : load<float>(header, 112, swap);
  facts.scl_inter = nifti2 ? load<double>(header, 184, swap) : load<float>(header, 116, swap);
  if (!std::isfinite(facts.scl_slope)) facts.scl_slope = 0.0;  // NIfTI: treat as "no scaling"
  if (!std::isfinite(facts.scl_inter)) facts.scl_inter = 0.0;
  return facts;
}

void check_nrrd_header(const std::string& path) {
  const std::vector<std::uint8_t> prefix = read_file_prefix(path, 64 * 1024);
  std::string text(prefix.begin(), prefix.end());
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  if (line.rfind("NRRD000", 0) != 0) throw Error(path + ": NRRD magic line is missing");

  std::uint64_t voxels = 0;
  int dimension = -1;
  int bytes_per_element = 0;
  std::string encoding = "raw";
  std::string data_file;
  std::size_t header_bytes = line.size() + 1;
  bool header_ended = false;
  while (std::getline(lines, line)) {
    header_bytes += line.size() + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      header_ended = true;
      break;
    }
    if (line[0] == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == '=') continue;  // key/value pairs, not fields
    while (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (key == "dimension") {
      dimension = std::atoi(value.c_str());
    } else if (key == "sizes") {
      std::istringstream parts(value);
      std::string part;
      voxels = 1;
      while (parts >> part) {
        char* end = nullptr;
        const long long n = std::strtoll(part.c_str(), &end, 10);
        if (n < 1 || *end != '\0') {
          throw Error(path + ": sizes field has '" + part + "', each size must be positive");
        }
        voxels = saturating_multiply(voxels, static_cast<std::uint64_t>(n));
      }
    } else if (key == "type") {
      static const std::pair<const char*, int> kTypes[] = {
          {"uchar", 1}, {"unsigned char", 1}, {"uint8", 1}, {"uint8_t", 1}, {"signed char", 1},
          {"int8", 1}, {"int8_t", 1}, {"char", 1}, {"short", 2}, {"short int", 2}, {"int16", 2},
          {"signed short", 2}, {"signed short int", 2}, {"int16_t", 2}, {"ushort", 2},
          {"unsigned short", 2}, {"unsigned short int", 2}, {"uint16", 2}, {"uint16_t", 2},
          {"int", 4}, {"signed int", 4}, {"int32", 4}, {"int32_t", 4}, {"uint", 4},
          {"unsigned int", 4}, {"uint32", 4}, {"uint32_t", 4}, {"float", 4}, {"double", 8},
          {"longlong", 8}, {"long long", 8}, {"int64", 8}, {"ulonglong", 8}, {"uint64", 8},
          {"unsigned long long", 8}, {"long long int", 8}, {"int64_t", 8}, {"uint64_t", 8}};
      for (const auto& [name, size] : kTypes) {
        if (value == name) bytes_per_element = size;
      }
      if (bytes_per_element == 0) throw Error(path + ": type '" + value + "' is not a NRRD type");
    } else if (key == "encoding") {
      encoding = value;
    } else if (key == "data file" || key == "datafile") {
      data_file = value;
    }
  }
  if (!header_ended && data_file.empty() && prefix.size() == 64 * 1024) {
    throw Error(path + ": NRRD header has no end within 64 KiB");
  }
  if (dimension < 1 || dimension > 16) {
    throw Error(path + ": dimension field is missing or out of range 1..16");
  }
  if (voxels == 0) throw Error(path + ": sizes field is missing");
  if (bytes_per_element == 0) throw Error(path + ": type field is missing");

  std::uint64_t stored = 0;
  if (data_file.empty()) {
    const std::uint64_t total = file_size_bytes(path);
    stored = total > header_bytes ? total - header_bytes : 0;
  } else if (data_file.find('%') == std::string::npos && data_file.rfind("LIST", 0) != 0) {
    std::string data_path = data_file;
    if (data_path[0] != '/') {
      const auto slash = path.rfind('/');
      data_path = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
                  data_file;
    }
    stored = file_size_bytes(data_path);
  } else {
    return;  // multi-file data sets: NrrdIO checks each part itself
  }
  std::uint64_t available = stored;
  if (encoding == "gzip" || encoding == "gz") available = max_gunzipped_bytes(stored);
  else if (encoding == "bzip2" || encoding == "bz2") available = saturating_multiply(stored, 1u << 20);
  else if (encoding == "ascii" || encoding == "text" || encoding == "txt")
    available = saturating_multiply(stored, static_cast<std::uint64_t>(bytes_per_element));
  else if (encoding == "hex") available = stored / 2;
  check_payload_fits(path, "the header's sizes and type",
                     saturating_multiply(voxels, static_cast<std::uint64_t>(bytes_per_element)),
                     available);
}

}  // namespace graft::io
