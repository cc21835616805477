#include "io/file_bytes.h"

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sys/stat.h>

#include "io/error.h"

namespace graft::io {

std::uint64_t file_size_bytes(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) throw Error(path + ": cannot open file (does it exist?)");
  if (S_ISDIR(info.st_mode)) throw Error(path + ": is a folder, not a file");
  return static_cast<std::uint64_t>(info.st_size);
}

bool is_gzip_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<std::uint8_t> read_file_prefix(const std::string& path, std::size_t max_bytes) {
  file_size_bytes(path);  // a clear error for a missing path or a folder
  std::vector<std::uint8_t> bytes(max_bytes);
  if (is_gzip_file(path)) {
    gzFile file = gzopen(path.c_str(), "rb");
    if (file == nullptr) throw Error(path + ": cannot open gzip stream");
    const int got = gzread(file, bytes.data(), static_cast<unsigned>(max_bytes));
    gzclose(file);
    bytes.resize(got < 0 ? 0 : static_cast<std::size_t>(got));
    return bytes;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(max_bytes));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

std::uint64_t saturating_multiply(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return std::numeric_limits<std::uint64_t>::max();
  return out;
}

std::uint64_t max_gunzipped_bytes(std::uint64_t compressed_bytes) {
  return compressed_bytes * 1032ULL + 4096ULL;
}

void check_payload_fits(const std::string& path, const std::string& field,
                        std::uint64_t payload_bytes, std::uint64_t available_bytes) {
  if (payload_bytes > available_bytes) {
    throw Error(path + ": " + field + " needs " + std::to_string(payload_bytes) +
                " bytes of voxel data but the file holds at most " +
                std::to_string(available_bytes) + " (truncated file or wrong header)");
  }
  double limit_gib = 64.0;
  if (const char* env = std::getenv("GRAFT_MAX_IMAGE_GIB")) limit_gib = std::atof(env);
  const double payload_gib = static_cast<double>(payload_bytes) / (1024.0 * 1024.0 * 1024.0);
  if (payload_gib > limit_gib) {
    throw Error(path + ": " + field + " claims " + std::to_string(payload_gib) +
                " GiB of voxels, over the limit of " + std::to_string(limit_gib) +
                " GiB (raise GRAFT_MAX_IMAGE_GIB to allow it)");
  }
}

bool has_hdf5_signature(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  file.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(file.tellg());
  for (std::uint64_t offset = 0; offset + 8 <= size; offset = offset == 0 ? 512 : offset * 2) {
    char signature[8];
    file.seekg(static_cast<std::streamoff>(offset));
    if (!file.read(signature, 8)) return false;
    if (std::memcmp(signature, "\x89HDF\r\n\x1a\n", 8) == 0) return true;
  }
  return false;
}

}  // namespace graft::io
