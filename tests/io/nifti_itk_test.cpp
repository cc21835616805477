// graft writes NIfTI itself (io/nifti_writer); these tests hold it to what ITK's NiftiImageIO,
// the writer it replaced and the reader Slicer uses, writes and reads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/error.h"
#include "io/nrrd/itk_formats.h"
#include "io/nifti/nifti_header.h"
#include "io/nifti/nifti_writer.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

// An oblique grid whose direction has determinant -1 (a left-handed index frame, as a DICOM
// series stacked against its normal gives), so the qform needs qfac = -1.
Image improper_oblique_image(std::int64_t channels) {
  Geometry g;
  g.size_xyz = {6, 5, 4};
  g.spacing_xyz = {0.7, 1.5, 2.5};
  g.origin_world = {12.5, -40.25, 77.0};
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {{{c, -s, 0}, {s, c, 0}, {0, 0, -1}}};
  Image image(DType::kI16, channels, g);
  std::int16_t* voxels = image.data<std::int16_t>();
  for (std::int64_t i = 0; i < image.element_count(); ++i) voxels[i] = static_cast<std::int16_t>(i * 13 % 997 - 400);
  return image;
}

TEST(NiftiWriter, WritesTheHeaderItksNiftiImageIoWrites) {
  const std::string folder = graft::testing::temp_dir();
  for (std::int64_t channels : {1, 2}) {
    SCOPED_TRACE(channels);
    const Image image = improper_oblique_image(channels);
    write_nifti(image, folder + "/graft.nii");
    write_itk(image, folder + "/itk.nii", ItkFormat::kNifti);
    const NiftiHeader ours = read_nifti_header(folder + "/graft.nii");
    const NiftiHeader itks = read_nifti_header(folder + "/itk.nii");
    EXPECT_EQ(ours.dim, itks.dim);
    EXPECT_EQ(ours.datatype, itks.datatype);
    EXPECT_EQ(ours.qform_code, itks.qform_code);
    EXPECT_EQ(ours.sform_code, itks.sform_code);
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(ours.pixdim[k], itks.pixdim[k], 1e-6) << "pixdim[" << k << "]";
    // A quaternion and its negation are the same rotation; NIfTI stores the one with a >= 0.
    EXPECT_NEAR(ours.quatern_b, itks.quatern_b, 1e-6);
    EXPECT_NEAR(ours.quatern_c, itks.quatern_c, 1e-6);
    EXPECT_NEAR(ours.quatern_d, itks.quatern_d, 1e-6);
    for (int axis = 0; axis < 3; ++axis) EXPECT_NEAR(ours.qoffset[axis], itks.qoffset[axis], 1e-5);
    for (int row = 0; row < 3; ++row)
      for (int column = 0; column < 4; ++column)
        EXPECT_NEAR(ours.srow[row][column], itks.srow[row][column], 1e-5) << "srow " << row << "," << column;
  }
}

TEST(NiftiWriter, ItkReadsTheWrittenFileOnTheSameGridWithTheSameVoxels) {
  const std::string folder = graft::testing::temp_dir();
  const Image image = improper_oblique_image(1);
  for (const char* name : {"/graft.nii", "/graft.nii.gz"}) {
    write_nifti(image, folder + name);
    const Image back = read_itk(folder + name, ItkFormat::kNifti);
    EXPECT_TRUE(back.geometry().same_grid(image.geometry(), 1e-4))
        << name << ": " << back.geometry().describe_difference(image.geometry(), 1e-4);
    ASSERT_EQ(back.byte_count(), image.byte_count());
    EXPECT_EQ(std::memcmp(back.bytes(), image.bytes(), image.byte_count()), 0) << name;
  }
}

TEST(NiftiWriter, RefusesAMapCrsGridAndSkewedAxesNamingTheFile) {
  const std::string folder = graft::testing::temp_dir();
  Image raster = improper_oblique_image(1);
  raster.geometry().frame = Frame::kCRS;
  try {
    write_nifti(raster, folder + "/map.nii");
    FAIL() << "a map-CRS raster was written as NIfTI";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("map.nii"), std::string::npos) << e.what();
  }
  Image skewed = improper_oblique_image(1);
  skewed.geometry().direction = {{{1, 0.5, 0}, {0, 0.866, 0}, {0, 0, 1}}};
  try {
    write_nifti(skewed, folder + "/skewed.nii");
    FAIL() << "a skewed grid was written as NIfTI";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("orthogonal"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace graft::io
