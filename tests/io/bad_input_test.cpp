#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>

#include "io/error.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A NIfTI-1 single-file header with the given dims, int16, unit spacing, and no voxels after it.
std::vector<std::uint8_t> nifti1_header(std::int16_t nx, std::int16_t ny, std::int16_t nz,
                                        float spacing_y = 1.0f) {
  std::vector<std::uint8_t> header(352, 0);
  const std::int32_t sizeof_hdr = 348;
  std::memcpy(&header[0], &sizeof_hdr, 4);
  const std::int16_t dims[8] = {3, nx, ny, nz, 1, 1, 1, 1};
  std::memcpy(&header[40], dims, sizeof(dims));
  const std::int16_t datatype = 4, bitpix = 16;
  std::memcpy(&header[70], &datatype, 2);
  std::memcpy(&header[72], &bitpix, 2);
  const float pixdim[8] = {1, 1, spacing_y, 1, 1, 1, 1, 1};
  std::memcpy(&header[76], pixdim, sizeof(pixdim));
  const float vox_offset = 352;
  std::memcpy(&header[108], &vox_offset, 4);
  std::memcpy(&header[344], "n+1\0", 4);
  return header;
}

// Every bad file must be refused with a graft::Error that names the file.
void expect_refused(const std::string& path, const std::string& field = "") {
  try {
    read(path);
    FAIL() << path << " was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    if (!field.empty()) EXPECT_NE(message.find(field), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "error spans lines: " << message;
  }
}

TEST(BadInput, MissingAndEmptyFilesAreRefused) {
  const std::string folder = graft::testing::temp_dir();
  expect_refused(folder + "/absent.nii", "cannot open");
  write_bytes(folder + "/empty.nii", {});
  expect_refused(folder + "/empty.nii", "empty");
  expect_refused(folder, "folder");
}

TEST(BadInput, RandomBytesAreRefused) {
  const std::string folder = graft::testing::temp_dir();
  std::mt19937 random(3);
  std::vector<std::uint8_t> bytes(4096);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
  for (const char* name : {"/random.nii", "/random.nii.gz", "/random.nrrd", "/random.npy"}) {
    write_bytes(folder + name, bytes);
    expect_refused(folder + name, "not a format");
  }
}

TEST(BadInput, AbsurdHeaderIsRefusedBeforeAllocating) {
  const std::string folder = graft::testing::temp_dir();
  write_bytes(folder + "/huge.nii", nifti1_header(32000, 32000, 32000));
  expect_refused(folder + "/huge.nii", "dim");
}

TEST(BadInput, NegativeAndNanSpacingAreRefused) {
  const std::string folder = graft::testing::temp_dir();
  auto negative = nifti1_header(2, 2, 2, -1.0f);
  negative.resize(352 + 16, 0);
  write_bytes(folder + "/negative.nii", negative);
  expect_refused(folder + "/negative.nii", "pixdim[2]");
  auto nan = nifti1_header(2, 2, 2, std::nanf(""));
  nan.resize(352 + 16, 0);
  write_bytes(folder + "/nan.nii", nan);
  expect_refused(folder + "/nan.nii", "pixdim[2]");
}

TEST(BadInput, TruncatedFilesAreRefused) {
  const std::string folder = graft::testing::temp_dir();
  Geometry g;
  g.size_xyz = {32, 32, 16};
  Image image(DType::kI16, 1, g);
  for (const char* name : {"/t.nii", "/t.nii.gz", "/t.nrrd", "/t.npy"}) {
    const std::string path = folder + name;
    write(image, path);
    std::ifstream in(path, std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(bytes.size() * 2 / 3);
    write_bytes(path, bytes);
    SCOPED_TRACE(name);
    expect_refused(path);
  }
}

TEST(BadInput, AbsurdNrrdAndNpyHeadersAreRefused) {
  const std::string folder = graft::testing::temp_dir();
  const std::string nrrd = "NRRD0004\ntype: short\ndimension: 3\nsizes: 32000 32000 32000\nencoding: raw\n\n";
  write_bytes(folder + "/huge.nrrd", std::vector<std::uint8_t>(nrrd.begin(), nrrd.end()));
  expect_refused(folder + "/huge.nrrd", "sizes");
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (32000, 32000, 32000), }";
  npy.push_back(static_cast<char>(dict.size()));
  npy.push_back(0);
  npy += dict;
  write_bytes(folder + "/huge.npy", std::vector<std::uint8_t>(npy.begin(), npy.end()));
  expect_refused(folder + "/huge.npy", "shape");
}

TEST(BadInput, UnknownOutputExtensionIsAUsageError) {
  Image image(DType::kU8, 1, Geometry());
  EXPECT_THROW(write(image, graft::testing::temp_dir() + "/out.xyz"), UsageError);
}

}  // namespace
}  // namespace graft::io
