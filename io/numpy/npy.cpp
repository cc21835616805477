#include "io/numpy/npy.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <iterator>
#include <sstream>


#include "io/error.h"
#include "io/zip_archive.h"
#include "io/file_bytes.h"

namespace graft::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

std::string npy_descr(DType dtype) {
  switch (dtype) {
    case DType::kU8: return "|u1";
    case DType::kI8: return "|i1";
    case DType::kU16: return "<u2";
    case DType::kI16: return "<i2";
    case DType::kU32: return "<u4";
    case DType::kI32: return "<i4";
    case DType::kF32: return "<f4";
    case DType::kF64: return "<f8";
  }
  return "<f8";
}

// The value text after `'key':` in the header dict, up to the next top-level comma or brace.
std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) throw Error(path + ": NPY header has no '" + key + "' field");
  auto start = header.find(':', at);
  if (start == std::string::npos) throw Error(path + ": NPY header field '" + key + "' is broken");
  ++start;
  int depth = 0;
  std::size_t end = start;
  for (; end < header.size(); ++end) {
    const char ch = header[end];
    if (ch == '(' || ch == '[') ++depth;
    if (ch == ')' || ch == ']') --depth;
    if (depth == 0 && (ch == ',' || ch == '}')) break;
  }
  std::string value = header.substr(start, end - start);
  value.erase(0, value.find_first_not_of(" "));
  value.erase(value.find_last_not_of(" ") + 1);
  return value;
}

void transpose_fortran_to_c(NpyArray& array) {
  const std::size_t element = dtype_size_bytes(array.dtype);
  const std::size_t ndim = array.shape.size();
  if (ndim < 2) return;
  std::vector<std::uint8_t> c_order(array.bytes.size());
  std::vector<std::int64_t> index(ndim, 0);
  std::vector<std::int64_t> fortran_stride(ndim, 1);
  for (std::size_t k = 1; k < ndim; ++k) fortran_stride[k] = fortran_stride[k - 1] * array.shape[k - 1];
  const std::int64_t count = array.element_count();
  for (std::int64_t linear = 0; linear < count; ++linear) {
    std::int64_t source = 0;
    for (std::size_t k = 0; k < ndim; ++k) source += index[k] * fortran_stride[k];
    std::memcpy(c_order.data() + linear * element, array.bytes.data() + source * element, element);
    for (std::size_t k = ndim; k-- > 0;) {  // advance the C-order index, last axis fastest
      if (++index[k] < array.shape[k]) break;
      index[k] = 0;
    }
  }
  array.bytes.swap(c_order);
}

}  // namespace

std::int64_t NpyArray::element_count() const {
  std::int64_t count = 1;
  for (std::int64_t n : shape) count *= n;
  return count;
}

NpyArray read_npy_array(std::istream& in, std::uint64_t file_bytes, const std::string& path) {
  char preamble[10] = {};
  in.read(preamble, 10);
  if (in.gcount() < 10 || std::memcmp(preamble, kMagic, 6) != 0) {
    throw Error(path + ": not an NPY file (magic \\x93NUMPY missing)");
  }
  const int major = static_cast<unsigned char>(preamble[6]);
  std::uint64_t header_length = 0;
  std::uint64_t preamble_bytes = 10;
  if (major == 1) {
    header_length = static_cast<unsigned char>(preamble[8]) |
                    (static_cast<unsigned>(static_cast<unsigned char>(preamble[9])) << 8);
  } else if (major == 2 || major == 3) {
    char more[2] = {};
    in.read(more, 2);
    std::uint32_t length32 = 0;
    const char four[4] = {preamble[8], preamble[9], more[0], more[1]};
    std::memcpy(&length32, four, 4);
    header_length = length32;
    preamble_bytes = 12;
  } else {
    throw Error(path + ": NPY version " + std::to_string(major) + " is not supported");
  }
  if (header_length > file_bytes || header_length > (1u << 20)) {
    throw Error(path + ": NPY header length " + std::to_string(header_length) + " is invalid");
  }
  std::string header(header_length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_length));
  if (static_cast<std::uint64_t>(in.gcount()) != header_length) {
    throw Error(path + ": NPY header is truncated");
  }

  NpyArray array;
  std::string descr = dict_value(header, "descr", path);
  descr.erase(std::remove(descr.begin(), descr.end(), '\''), descr.end());
  if (descr.size() != 3) throw Error(path + ": NPY descr '" + descr + "' is not supported");
  const char byte_order = descr[0];
  const std::string kind = descr.substr(1);
  const std::pair<const char*, DType> kKinds[] = {
      {"u1", DType::kU8}, {"i1", DType::kI8}, {"u2", DType::kU16}, {"i2", DType::kI16},
      {"u4", DType::kU32}, {"i4", DType::kI32}, {"f4", DType::kF32}, {"f8", DType::kF64},
      {"b1", DType::kU8}};
  bool known = false;
  for (const auto& [name, dtype] : kKinds) {
    if (kind == name) {
      array.dtype = dtype;
      known = true;
    }
  }
  if (!known) {
    throw Error(path + ": NPY descr '" + descr +
                "' is not supported (use u1, i1, u2, i2, u4, i4, f4 or f8)");
  }
  const bool fortran = dict_value(header, "fortran_order", path) == "True";
  const std::string shape_text = dict_value(header, "shape", path);
  std::istringstream shape_stream(shape_text.substr(1, shape_text.size() - 2));
  std::string part;
  std::uint64_t count = 1;
  while (std::getline(shape_stream, part, ',')) {
    if (part.find_first_not_of(" ") == std::string::npos) continue;
    char* end = nullptr;
    const long long n = std::strtoll(part.c_str(), &end, 10);
    if (n < 0 || (*end != '\0' && *end != ' ')) {
      throw Error(path + ": NPY shape " + shape_text + " is invalid");
    }
    array.shape.push_back(n);
    if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(n), &count)) {
      count = std::numeric_limits<std::uint64_t>::max();
    }
  }
  std::uint64_t payload = 0;
  if (__builtin_mul_overflow(count, dtype_size_bytes(array.dtype), &payload)) {
    payload = std::numeric_limits<std::uint64_t>::max();
  }
  const std::uint64_t data_start = preamble_bytes + header_length;
  check_payload_fits(path, "the NPY shape " + shape_text, payload,
                     file_bytes > data_start ? file_bytes - data_start : 0);
  array.bytes.resize(payload);
  in.read(reinterpret_cast<char*>(array.bytes.data()), static_cast<std::streamsize>(payload));

  const std::size_t element = dtype_size_bytes(array.dtype);
  if (byte_order == '>' && element > 1) {
    for (std::size_t i = 0; i < array.bytes.size(); i += element) {
      std::reverse(array.bytes.begin() + i, array.bytes.begin() + i + element);
    }
  }
  if (fortran) transpose_fortran_to_c(array);
  return array;
}

NpyArray read_npy_array(const std::string& path) {
  const std::uint64_t file_bytes = file_size_bytes(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  return read_npy_array(in, file_bytes, path);
}

void write_npy_array(const NpyArray& array, const std::string& path) {
  std::ostringstream header;
  header << "{'descr': '" << npy_descr(array.dtype) << "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < array.shape.size(); ++i) {
    header << array.shape[i] << (array.shape.size() == 1 || i + 1 < array.shape.size() ? "," : "");
    if (i + 1 < array.shape.size()) header << " ";
  }
  header << "), }";
  std::string text = header.str();
  // Pad with spaces so the data starts on a 64-byte boundary, as NumPy writes it.
  const std::size_t unpadded = 10 + text.size() + 1;
  text.append((64 - unpadded % 64) % 64, ' ');
  text.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot open for writing");
  out.write(kMagic, 6);
  const char version[2] = {1, 0};
  out.write(version, 2);
  const std::uint16_t length = static_cast<std::uint16_t>(text.size());
  const char length_bytes[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
  out.write(length_bytes, 2);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.write(reinterpret_cast<const char*>(array.bytes.data()),
            static_cast<std::streamsize>(array.bytes.size()));
  if (!out) throw Error(path + ": write failed (disk full?)");
}

Image read_npy(const std::string& path) {
  NpyArray array = read_npy_array(path);
  const std::size_t ndim = array.shape.size();
  if (ndim < 1 || ndim > 4) {
    throw Error(path + ": NPY array has " + std::to_string(ndim) +
                " dimensions; graft reads (x), (y,x), (z,y,x) or (c,z,y,x)");
  }
  Geometry geometry;
  std::int64_t channels = 1;
  for (std::size_t i = 0; i < ndim; ++i) {
    const std::int64_t n = array.shape[ndim - 1 - i];  // last axis is x
    if (n < 1) throw Error(path + ": NPY shape has an empty axis");
    if (i < 3) geometry.size_xyz[i] = n;
    else channels = n;
  }
  Image image = Image::uninitialized(array.dtype, channels, geometry);
  std::memcpy(image.bytes(), array.bytes.data(), array.bytes.size());
  image.metadata().source_format = "npy";
  return image;
}

void write_npy(const Image& image, const std::string& path) {
  NpyArray array;
  array.dtype = image.dtype();
  const auto& n = image.geometry().size_xyz;
  if (image.channels() > 1) array.shape = {image.channels(), n[2], n[1], n[0]};
  else if (n[2] == 1) array.shape = {n[1], n[0]};
  else array.shape = {n[2], n[1], n[0]};
  array.bytes.assign(image.bytes(), image.bytes() + image.byte_count());
  write_npy_array(array, path);
}

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  const std::vector<std::uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, NpyArray> arrays;
  for (const ZipMember& member : zip_directory(file, path)) {
    const std::vector<std::uint8_t> bytes = zip_member_bytes(file, member, path);
    const std::string& name = member.name;
    const std::string key = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0 ? name.substr(0, name.size() - 4) : name;
    std::istringstream stream(std::string(bytes.begin(), bytes.end()));
    arrays[key] = read_npy_array(stream, bytes.size(), path + ": member " + name);
  }
  return arrays;
}

}  // namespace graft::io
