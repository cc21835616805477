#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/error.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

using graft::testing::nibabel_reference;

// Compares graft's reading of each file with nibabel's: the world affine (LPS), the shape with
// everything past z folded into channels, and voxel sums that catch any permutation or flip.
void expect_matches_nibabel(const std::vector<std::string>& paths) {
  const auto references = nibabel_reference(paths);
  if (references.empty()) GTEST_SKIP() << "Debian python3-nibabel is not installed";
  ASSERT_EQ(references.size(), paths.size());
  for (std::size_t f = 0; f < paths.size(); ++f) {
    SCOPED_TRACE(paths[f]);
    const auto& reference = references[f];
    ASSERT_FALSE(reference.contains("error")) << reference.dump();
    const Image image = read(paths[f]);
    const auto shape = reference["shape"].get<std::vector<std::int64_t>>();
    std::int64_t channels = 1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (i < 3) EXPECT_EQ(image.geometry().size_xyz[i], shape[i]);
      else channels *= shape[i];
    }
    EXPECT_EQ(image.channels(), channels);
    const auto affine = image.geometry().affine();
    if (reference["qform_code"] == 0 && reference["sform_code"] == 0) {
      // No transform stored: graft follows ITK (identity direction, zero origin), where nibabel
      // falls back to an Analyze-style affine. Only the spacing is common ground.
      for (int a = 0; a < 3; ++a) {
        EXPECT_EQ(image.geometry().origin_world[a], 0.0);
        for (int b = 0; b < 3; ++b) EXPECT_EQ(image.geometry().direction[a][b], a == b ? 1.0 : 0.0);
      }
    } else {
      const auto expected = reference["affine_lps"].get<std::vector<std::vector<double>>>();
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 4; ++c) EXPECT_NEAR(affine[r][c], expected[r][c], 1e-4) << r << "," << c;
      }
    }
    EXPECT_EQ(graft::testing::nan_count(image), reference["nan_count"].get<std::int64_t>());
    const double sum = reference["sum"].get<double>();
    const double checksum = reference["checksum_weighted"].get<double>();
    EXPECT_NEAR(graft::testing::voxel_sum(image), sum, 1e-6 * std::max(1.0, std::abs(sum)));
    EXPECT_NEAR(graft::testing::weighted_checksum(image), checksum,
                1e-6 * std::max(1.0, std::abs(checksum)));
    const auto first = reference["first_values"].get<std::vector<double>>();
    for (std::size_t i = 0; i < first.size(); ++i) {
      const double value = image.value_at(static_cast<std::int64_t>(i));
      EXPECT_NEAR(std::isnan(value) ? 0.0 : value, first[i], 1e-5 * std::max(1.0, std::abs(first[i])));
    }
  }
}

TEST(Nifti, ReadsTotalSegmentatorFilesLikeNibabel) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::shared_data_dir() + "/nifti/";
  expect_matches_nibabel({folder + "example_ct_sm.nii.gz", folder + "example_seg.nii.gz",
                          folder + "example_mr_sm.nii.gz", folder + "example_seg_mr.nii.gz"});
}

TEST(Nifti, KeepsStoredVoxelTypes) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::shared_data_dir() + "/nifti/";
  EXPECT_EQ(read(folder + "example_ct_sm.nii.gz").dtype(), DType::kI16);
  EXPECT_EQ(read(folder + "example_seg.nii.gz").dtype(), DType::kU8);
}

TEST(Nifti, ReadsBigEndianAnatomicalLikeNibabel) {
  const std::string folder = graft::testing::nibabel_data_dir();
  if (folder.empty()) GTEST_SKIP() << "nibabel's test data is absent (Debian python3-nibabel)";
  expect_matches_nibabel({folder + "/anatomical.nii"});
}

TEST(Nifti, Reads4dAsChannelsAndAppliesSclSlopeLikeNibabel) {
  const std::string folder = graft::testing::nibabel_data_dir();
  if (folder.empty()) GTEST_SKIP() << "nibabel's test data is absent (Debian python3-nibabel)";
  expect_matches_nibabel({folder + "/example4d.nii.gz", folder + "/functional.nii"});
  EXPECT_EQ(read(folder + "/example4d.nii.gz").channels(), 2);
  EXPECT_TRUE(read(folder + "/functional.nii").metadata().rescale_applied);
}

TEST(Nifti, ReadsNifti2LikeNibabel) {
  const std::string folder = graft::testing::nibabel_data_dir();
  if (folder.empty()) GTEST_SKIP() << "nibabel's test data is absent (Debian python3-nibabel)";
  expect_matches_nibabel({folder + "/example_nifti2.nii.gz", folder + "/row_major.dconn.nii"});
}

TEST(Nifti, ReadsTheRestOfNibabelsNiftiFilesLikeNibabel) {
  const std::string folder = graft::testing::nibabel_data_dir();
  if (folder.empty()) GTEST_SKIP() << "nibabel's test data is absent (Debian python3-nibabel)";
  expect_matches_nibabel({folder + "/standard.nii.gz", folder + "/reoriented_anat_moved.nii",
                          folder + "/resampled_anat_moved.nii"});
}

Image oblique_test_image(DType dtype, std::int64_t channels) {
  Geometry g;
  g.size_xyz = {7, 5, 4};
  g.spacing_xyz = {0.8, 1.25, 3.0};
  g.origin_world = {-30.5, 12.25, 100.0};
  const double c = std::cos(0.4), s = std::sin(0.4);
  g.direction = {{{c, 0, s}, {0, 1, 0}, {-s, 0, c}}};
  Image image(dtype, channels, g);
  visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* data = image.data<T>();
    for (std::int64_t i = 0; i < image.element_count(); ++i) data[i] = static_cast<T>((i * 37) % 101);
  });
  return image;
}

TEST(Nifti, WriteThenReadKeepsGeometryTypeAndVoxels) {
  const std::string folder = graft::testing::temp_dir();
  for (DType dtype : {DType::kU8, DType::kI8, DType::kU16, DType::kI16, DType::kU32, DType::kI32,
                      DType::kF32, DType::kF64}) {
    for (const char* extension : {".nii", ".nii.gz"}) {
      for (std::int64_t channels : {1, 3}) {
        SCOPED_TRACE(dtype_name(dtype) + extension + std::to_string(channels));
        const Image original = oblique_test_image(dtype, channels);
        const std::string path = folder + "/image" + extension;
        write(original, path);
        const Image back = read(path);
        EXPECT_EQ(back.dtype(), dtype);
        EXPECT_EQ(back.channels(), channels);
        // NIfTI stores the transform in float32, so geometry survives to float precision.
        EXPECT_TRUE(back.geometry().same_grid(original.geometry(), 1e-4))
            << back.geometry().describe_difference(original.geometry(), 1e-4);
        ASSERT_EQ(back.byte_count(), original.byte_count());
        EXPECT_EQ(std::memcmp(back.bytes(), original.bytes(), original.byte_count()), 0);
      }
    }
  }
}

TEST(Nifti, WrittenFilesReadBackInNibabelOnTheSameWorldAffine) {
  const std::string folder = graft::testing::temp_dir();
  const Image original = oblique_test_image(DType::kI16, 1);
  write(original, folder + "/written.nii.gz");
  const auto references = nibabel_reference({folder + "/written.nii.gz"});
  if (references.empty()) GTEST_SKIP() << "Debian python3-nibabel is not installed";
  const auto expected = references[0]["affine_lps"].get<std::vector<std::vector<double>>>();
  const auto affine = original.geometry().affine();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(affine[r][c], expected[r][c], 1e-4);
  EXPECT_NEAR(references[0]["checksum_weighted"].get<double>(),
              graft::testing::weighted_checksum(original), 1e-6);
}

}  // namespace
}  // namespace graft::io
