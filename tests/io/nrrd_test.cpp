#include <gtest/gtest.h>

#include <cstring>

#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

TEST(Nrrd, ReadsBrainImageWithTheHeadersGeometry) {
  GRAFT_REQUIRE_SHARED_DATA();
  const Image image = read(graft::testing::shared_data_dir() + "/nrrd/brain1_image.nrrd");
  // Numbers from the file's own header: sizes, space directions, space origin (LPS).
  EXPECT_EQ(image.dtype(), DType::kI16);
  EXPECT_EQ(image.geometry().size_xyz, (std::array<std::int64_t, 3>{256, 256, 25}));
  EXPECT_NEAR(image.geometry().spacing_xyz[0], 0.78125, 1e-9);
  EXPECT_NEAR(image.geometry().spacing_xyz[2], 6.5, 1e-9);
  EXPECT_NEAR(image.geometry().direction[1][1], -1.0, 1e-12);
  EXPECT_NEAR(image.geometry().origin_world[0], -99.609375, 1e-9);
  EXPECT_NEAR(image.geometry().origin_world[2], -78.0, 1e-9);
}

TEST(Nrrd, LabelMapSharesTheImagesGrid) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::shared_data_dir() + "/nrrd/";
  const Image image = read(folder + "brain1_image.nrrd");
  const Image labels = read(folder + "brain1_label.nrrd");
  EXPECT_TRUE(labels.geometry().same_grid(image.geometry()))
      << labels.geometry().describe_difference(image.geometry());
}

TEST(Nrrd, NrrdToNiftiToNrrdKeepsGeometryAndVoxels) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const Image original = read(graft::testing::shared_data_dir() + "/nrrd/brain1_image.nrrd");
  write(original, folder + "/brain.nii.gz");
  write(read(folder + "/brain.nii.gz"), folder + "/brain.nrrd");
  const Image back = read(folder + "/brain.nrrd");
  EXPECT_TRUE(back.geometry().same_grid(original.geometry(), 1e-4));
  ASSERT_EQ(back.byte_count(), original.byte_count());
  EXPECT_EQ(std::memcmp(back.bytes(), original.bytes(), original.byte_count()), 0);
}

}  // namespace
}  // namespace graft::io
