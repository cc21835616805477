#pragma once

// ZIP archives as NumPy (.npz) and torch.save (zip checkpoints) write them: the central directory,
// ZIP64 included, and members stored or deflated. One reader for both, without LibTorch.
#include <cstdint>
#include <string>
#include <vector>

namespace graft::io {

struct ZipMember {
  std::string name;
  std::uint16_t method = 0;       // 0 stored, 8 deflated
  std::uint64_t data_offset = 0;  // where the member's bytes start in the archive
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
};

// The members of an archive held in memory, in directory order. Errors name `path` and what is
// broken (a truncated archive, a directory entry or local header out of bounds).
std::vector<ZipMember> zip_directory(const std::vector<std::uint8_t>& archive,
                                     const std::string& path);

// A member's bytes: stored ones as they are, deflated ones inflated; other methods are refused.
std::vector<std::uint8_t> zip_member_bytes(const std::vector<std::uint8_t>& archive,
                                           const ZipMember& member, const std::string& path);

}  // namespace graft::io
