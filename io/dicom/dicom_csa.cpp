#include "io/dicom/dicom_csa.h"

#include <cstdlib>
#include <cstring>

#include "io/error.h"

namespace graft::io {
namespace {

class CsaCursor {
 public:
  CsaCursor(const std::uint8_t* bytes, std::size_t size, const std::string& source)
      : bytes_(bytes), size_(size), source_(source) {}

  std::int32_t int32() {
    require(4, "an integer field");
    std::int32_t value;
    std::memcpy(&value, bytes_ + position_, 4);  // CSA is little-endian, as is every host we build for
    position_ += 4;
    return value;
  }
  std::string text(std::size_t length) {
    require(length, "a text field");
    const char* start = reinterpret_cast<const char*>(bytes_ + position_);
    position_ += length;
    // Values are NUL-terminated inside fixed or padded fields, often followed by garbage.
    return std::string(start, strnlen(start, length));
  }
  void skip(std::size_t length) {
    require(length, "padding");
    position_ += length;
  }
  std::size_t position() const { return position_; }

 private:
  void require(std::size_t length, const char* what) const {
    if (position_ + length > size_) {
      throw Error(source_ + ": Siemens CSA header (0029,1010) ends inside " + what + " at byte " +
                  std::to_string(position_));
    }
  }
  const std::uint8_t* bytes_;
  std::size_t size_;
  std::size_t position_ = 0;
  const std::string& source_;
};

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

CsaHeader parse_csa_header(const std::uint8_t* bytes, std::size_t size, const std::string& source) {
  CsaCursor cursor(bytes, size, source);
  const bool is_csa2 = size >= 4 && std::memcmp(bytes, "SV10", 4) == 0;
  if (is_csa2) cursor.skip(8);  // signature and four bytes that carry nothing
  const std::int32_t tag_count = cursor.int32();
  cursor.skip(4);
  // Real headers hold about 100 elements; a larger count means these bytes are not a CSA header.
  if (tag_count < 0 || tag_count > 1000) {
    throw Error(source + ": Siemens CSA header (0029,1010) claims " + std::to_string(tag_count) +
                " elements");
  }
  CsaHeader header;
  for (std::int32_t tag = 0; tag < tag_count; ++tag) {
    const std::string name = cursor.text(64);
    cursor.int32();  // value multiplicity; the item count below is what is stored
    cursor.skip(4);  // VR
    cursor.int32();  // Siemens data type
    const std::int32_t item_count = cursor.int32();
    const std::int32_t check_value = cursor.int32();  // 77 or 205; CSA1 item lengths count from it
    if (item_count < 0 || item_count > 10000) {
      throw Error(source + ": Siemens CSA header element " + name + " claims " +
                  std::to_string(item_count) + " items");
    }
    std::vector<std::string> values;
    for (std::int32_t item = 0; item < item_count; ++item) {
      const std::int32_t first = cursor.int32();
      const std::int32_t second = cursor.int32();
      cursor.skip(8);
      const std::int64_t length = is_csa2 ? second : first - check_value;
      if (length < 0 || static_cast<std::size_t>(length) > size) {
        throw Error(source + ": Siemens CSA header element " + name + " has an item of length " +
                    std::to_string(length));
      }
      const std::string value = trim(cursor.text(static_cast<std::size_t>(length)));
      cursor.skip((4 - length % 4) % 4);
      if (!value.empty()) values.push_back(value);
    }
    header[name] = std::move(values);
  }
  return header;
}

std::vector<double> csa_numbers(const CsaHeader& header, const std::string& name) {
  std::vector<double> numbers;
  const auto found = header.find(name);
  if (found == header.end()) return numbers;
  for (const auto& value : found->second) {
    char* end = nullptr;
    const double number = std::strtod(value.c_str(), &end);
    if (end != value.c_str()) numbers.push_back(number);
  }
  return numbers;
}

}  // namespace graft::io
