#include "io/numpy/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "io/error.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

TEST(Npy, WriteThenReadKeepsShapeTypeAndBytes) {
  const std::string folder = graft::testing::temp_dir();
  for (DType dtype : {DType::kU8, DType::kI16, DType::kU32, DType::kF32, DType::kF64}) {
    Geometry g;
    g.size_xyz = {5, 4, 3};
    Image image(dtype, 2, g);
    for (std::size_t i = 0; i < image.byte_count(); ++i) image.bytes()[i] = static_cast<std::uint8_t>(i * 13);
    write(image, folder + "/a.npy");
    const Image back = read(folder + "/a.npy");
    EXPECT_EQ(back.dtype(), dtype);
    EXPECT_EQ(back.channels(), 2);
    EXPECT_EQ(back.geometry().size_xyz, g.size_xyz);
    EXPECT_EQ(std::memcmp(back.bytes(), image.bytes(), image.byte_count()), 0);
  }
}

TEST(Npy, ReadsNumpyBigEndianAndFortranOrderArrays) {
  const std::string python = graft::testing::python_with("numpy");
  if (python.empty()) GTEST_SKIP() << "Debian python3-numpy is not installed";
  const std::string folder = graft::testing::temp_dir();
  const std::string script =
      "import numpy as np; a = np.arange(24, dtype='>i4').reshape(2, 3, 4); "
      "np.save('" + folder + "/big.npy', a); "
      "np.save('" + folder + "/fortran.npy', np.asfortranarray(a.astype('<f8'))); "
      "np.save('" + folder + "/c.npy', a.astype('<u2'))";
  ASSERT_EQ(graft::testing::run_command(python + " -c \"" + script + "\""), 0);
  for (const char* name : {"big.npy", "fortran.npy", "c.npy"}) {
    SCOPED_TRACE(name);
    const Image image = read(folder + "/" + name);
    EXPECT_EQ(image.geometry().size_xyz, (std::array<std::int64_t, 3>{4, 3, 2}));
    // arange in C order: element (z, y, x) = 12 z + 4 y + x, so x is fastest in graft's layout.
    for (std::int64_t i = 0; i < 24; ++i) EXPECT_EQ(image.value_at(i), static_cast<double>(i));
  }
}

TEST(Npy, NumpyReadsWhatGraftWrites) {
  const std::string python = graft::testing::python_with("numpy");
  if (python.empty()) GTEST_SKIP() << "Debian python3-numpy is not installed";
  const std::string folder = graft::testing::temp_dir();
  NpyArray array;
  array.dtype = DType::kF32;
  array.shape = {2, 3};
  const float values[6] = {0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f};
  array.bytes.assign(reinterpret_cast<const std::uint8_t*>(values),
                     reinterpret_cast<const std::uint8_t*>(values) + sizeof(values));
  write_npy_array(array, folder + "/w.npy");
  std::string output;
  ASSERT_EQ(graft::testing::run_command(
                python + " -c \"import numpy as np; a = np.load('" + folder +
                    "/w.npy'); print(a.shape, a.dtype, a[1, 2])\"",
                &output),
            0);
  EXPECT_EQ(output, "(2, 3) float32 5.5\n");
}

TEST(Npz, StoredAndDeflatedArchivesFromNumpyReadBack) {
  const std::string python = graft::testing::python_with("numpy");
  if (python.empty()) GTEST_SKIP() << "Debian python3-numpy is not installed";
  const std::string folder = graft::testing::temp_dir();
  const std::string script =
      "import numpy as np; a = (np.arange(600, dtype=np.uint8) * 7).reshape(6, 10, 10); "
      "b = np.arange(6, dtype=np.uint8).reshape(6, 1) % 2; "
      "np.savez('" + folder + "/stored.npz', train_images=a, train_labels=b); "
      "np.savez_compressed('" + folder + "/deflated.npz', train_images=a, train_labels=b, extra=np.linspace(0, 1, 5))";
  ASSERT_EQ(graft::testing::run_command(python + " -c \"" + script + "\""), 0);
  for (const char* name : {"stored.npz", "deflated.npz"}) {
    SCOPED_TRACE(name);
    const auto arrays = read_npz(folder + "/" + name);
    ASSERT_TRUE(arrays.count("train_images"));
    const NpyArray& images = arrays.at("train_images");
    EXPECT_EQ(images.shape, (std::vector<std::int64_t>{6, 10, 10}));
    for (std::int64_t i = 0; i < 600; ++i) ASSERT_EQ(images.bytes[i], static_cast<std::uint8_t>(i * 7));
    EXPECT_EQ(arrays.at("train_labels").shape, (std::vector<std::int64_t>{6, 1}));
    EXPECT_EQ(arrays.at("train_labels").bytes[3], 1);
  }
  EXPECT_EQ(read_npz(folder + "/deflated.npz").at("extra").dtype, DType::kF64);
  const std::string not_zip = folder + "/plain.npz";
  std::ofstream(not_zip) << "not a zip archive at all, just text that is long enough";
  const std::string message = graft::testing::error_message([&] { read_npz(not_zip); });
  EXPECT_NE(message.find("plain.npz"), std::string::npos) << message;
}

}  // namespace
}  // namespace graft::io
