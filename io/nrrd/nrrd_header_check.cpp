#include "io/nrrd/nrrd_header_check.h"

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
