#include "io/zip_archive.h"

#include <zlib.h>

#include "io/error.h"

namespace graft::io {
namespace {

std::uint64_t little_endian(const std::vector<std::uint8_t>& bytes, std::uint64_t at, int count) {
  std::uint64_t value = 0;
  for (int i = count; i-- > 0;) value = (value << 8) | bytes[at + i];
  return value;
}

constexpr std::uint64_t kEndOfDirectory = 0x06054b50, kZip64Locator = 0x07064b50,
                        kZip64End = 0x06064b50;
constexpr std::uint64_t kDirectoryEntry = 0x02014b50, kLocalHeader = 0x04034b50;

}  // namespace

std::vector<ZipMember> zip_directory(const std::vector<std::uint8_t>& zip,
                                     const std::string& path) {
  // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
  if (zip.size() < 22) throw Error(path + ": not a ZIP archive (too short; truncated?)");
  const std::uint64_t search_from = zip.size() > 65557 ? zip.size() - 65557 : 0;
  std::uint64_t end = zip.size() - 22;
  while (little_endian(zip, end, 4) != kEndOfDirectory) {
    if (end == search_from)
      throw Error(path + ": ZIP end-of-directory record is missing (truncated?)");
    --end;
  }
  std::uint64_t entries = little_endian(zip, end + 10, 2);
  std::uint64_t directory = little_endian(zip, end + 16, 4);
  if (directory == 0xffffffffu || entries == 0xffffu) {
    // ZIP64: the locator precedes the record and points at the ZIP64 end-of-directory record.
    if (end < 20 || little_endian(zip, end - 20, 4) != kZip64Locator)
      throw Error(path + ": ZIP64 locator is missing");
    const std::uint64_t record = little_endian(zip, end - 20 + 8, 8);
    if (record > zip.size() || zip.size() - record < 56 ||
        little_endian(zip, record, 4) != kZip64End) {
      throw Error(path + ": ZIP64 end-of-directory record is broken");
    }
    entries = little_endian(zip, record + 32, 8);
    directory = little_endian(zip, record + 48, 8);
  }
  std::vector<ZipMember> members;
  std::uint64_t at = directory;
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (at > zip.size() || zip.size() - at < 46 || little_endian(zip, at, 4) != kDirectoryEntry) {
      throw Error(path + ": ZIP directory entry " + std::to_string(e) + " is broken");
    }
    ZipMember member;
    member.method = static_cast<std::uint16_t>(little_endian(zip, at + 10, 2));
    member.compressed_size = little_endian(zip, at + 20, 4);
    member.size = little_endian(zip, at + 24, 4);
    const std::uint64_t name_length = little_endian(zip, at + 28, 2),
                        extra_length = little_endian(zip, at + 30, 2);
    const std::uint64_t comment_length = little_endian(zip, at + 32, 2);
    std::uint64_t local = little_endian(zip, at + 42, 4);
    if (zip.size() - at - 46 < name_length + extra_length) {
      throw Error(path + ": ZIP directory entry " + std::to_string(e) + " is truncated");
    }
    member.name.assign(reinterpret_cast<const char*>(&zip[at + 46]), name_length);
    // ZIP64 extra field 0x0001: the 64-bit values of the fields that hold 0xffffffff, in order.
    const std::uint64_t extra_end = at + 46 + name_length + extra_length;
    for (std::uint64_t x = at + 46 + name_length; x + 4 <= extra_end;) {
      const std::uint64_t id = little_endian(zip, x, 2), length = little_endian(zip, x + 2, 2);
      if (id == 0x0001) {
        std::uint64_t field = x + 4;
        const auto take = [&](std::uint64_t& value) {
          if (value != 0xffffffffu) return;
          if (field + 8 > extra_end)
            throw Error(path + ": ZIP64 field of " + member.name + " is truncated");
          value = little_endian(zip, field, 8);
          field += 8;
        };
        take(member.size);
        take(member.compressed_size);
        take(local);
      }
      x += 4 + length;
    }
    if (local > zip.size() || zip.size() - local < 30 ||
        little_endian(zip, local, 4) != kLocalHeader) {
      throw Error(path + ": ZIP local header of " + member.name + " is broken");
    }
    member.data_offset =
        local + 30 + little_endian(zip, local + 26, 2) + little_endian(zip, local + 28, 2);
    if (member.data_offset > zip.size() ||
        zip.size() - member.data_offset < member.compressed_size) {
      throw Error(path + ": ZIP member " + member.name + " is truncated");
    }
    members.push_back(std::move(member));
    at += 46 + name_length + extra_length + comment_length;
  }
  return members;
}

std::vector<std::uint8_t> zip_member_bytes(const std::vector<std::uint8_t>& zip,
                                           const ZipMember& member, const std::string& path) {
  const std::string where = path + ": member " + member.name;
  const auto* data = zip.data() + member.data_offset;
  if (member.method == 0) return {data, data + member.compressed_size};
  if (member.method != 8) {
    throw Error(where + ": ZIP compression method " + std::to_string(member.method) +
                " (graft reads stored and deflated members)");
  }
  // A deflated member cannot grow beyond 1032:1; a size claiming more is a broken directory, and is
  // refused before anything that large is allocated.
  if (member.size / 1032 > member.compressed_size + 1)
    throw Error(where + ": its size does not fit its data");
  if (member.size > 0xffffffffu || member.compressed_size > 0xffffffffu) {
    throw Error(where + ": a deflated member over 4 GiB (store it uncompressed)");
  }
  std::vector<std::uint8_t> out(member.size);
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) throw Error(where + ": cannot start inflating");
  stream.next_in = const_cast<Bytef*>(data);
  stream.avail_in = static_cast<uInt>(member.compressed_size);
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(member.size);
  const int status = inflate(&stream, Z_FINISH);
  inflateEnd(&stream);
  if (status != Z_STREAM_END || stream.total_out != member.size)
    throw Error(where + ": deflated data is corrupt");
  return out;
}

}  // namespace graft::io
