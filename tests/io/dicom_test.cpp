// DICOM series against dcm2niix's references, pydicom's and nibabel's test files, and broken
// files that must fail with one clear line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/dicom_series.h"
#include "io/error.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

namespace fs = std::filesystem;

std::string dicom_data(const std::string& relative) {
  return graft::testing::shared_data_dir() + "/dicom/" + relative;
}

// Compares two volumes in world space, as dcm2niix stores its own voxel order: every voxel
// centre of `ours` must coincide (within tolerance_mm) with a voxel centre of `reference` that
// holds the same value, and the two grids must cover the same voxels.
void expect_same_in_world(const Image& ours, const Image& reference, double tolerance_mm) {
  ASSERT_EQ(ours.voxels_per_channel(), reference.voxels_per_channel());
  ASSERT_EQ(ours.channels(), reference.channels());
  const Geometry& g = ours.geometry();
  const Geometry& r = reference.geometry();
  // The reference index of our voxel (i, j, k) is affine in (i, j, k); each of our axes must map
  // to one reference axis, forward or backward.
  const Vec3 origin_index = r.world_to_index(g.index_to_world({0, 0, 0}));
  std::array<std::array<std::int64_t, 3>, 3> step{};
  for (int axis = 0; axis < 3; ++axis) {
    Vec3 unit{0, 0, 0};
    unit[axis] = 1;
    const Vec3 moved = r.world_to_index(g.index_to_world(unit));
    for (int d = 0; d < 3; ++d) {
      const double delta = moved[d] - origin_index[d];
      step[axis][d] = std::llround(delta);
      ASSERT_NEAR(delta, static_cast<double>(step[axis][d]), tolerance_mm / r.spacing_xyz[d])
          << "axis " << axis << " does not map onto the reference grid";
    }
  }
  std::array<std::int64_t, 3> start{};
  for (int d = 0; d < 3; ++d) {
    start[d] = std::llround(origin_index[d]);
    ASSERT_NEAR(origin_index[d], static_cast<double>(start[d]), tolerance_mm / r.spacing_xyz[d]);
  }
  // The far corner too: both grids must end at the same world point.
  const Vec3 far{static_cast<double>(g.size_xyz[0] - 1), static_cast<double>(g.size_xyz[1] - 1),
                 static_cast<double>(g.size_xyz[2] - 1)};
  const Vec3 ours_far = g.index_to_world(far);
  const Vec3 reference_index_far = r.world_to_index(ours_far);
  for (int d = 0; d < 3; ++d) {
    ASSERT_NEAR(reference_index_far[d], std::round(reference_index_far[d]), tolerance_mm / r.spacing_xyz[d]);
    ASSERT_GE(std::llround(reference_index_far[d]), 0);
    ASSERT_LT(std::llround(reference_index_far[d]), r.size_xyz[d]);
  }
  std::int64_t mismatches = 0;
  for (std::int64_t c = 0; c < ours.channels(); ++c) {
    for (std::int64_t k = 0; k < g.size_xyz[2]; ++k) {
      for (std::int64_t j = 0; j < g.size_xyz[1]; ++j) {
        for (std::int64_t i = 0; i < g.size_xyz[0]; ++i) {
          std::array<std::int64_t, 3> index{};
          for (int d = 0; d < 3; ++d) index[d] = start[d] + i * step[0][d] + j * step[1][d] + k * step[2][d];
          const double mine = ours.value_at(ours.offset(c, k, j, i));
          const double theirs = reference.value_at(reference.offset(c, index[2], index[1], index[0]));
          if (mine != theirs && ++mismatches <= 3) {
            ADD_FAILURE() << "voxel (" << i << "," << j << "," << k << ") is " << mine << ", reference " << theirs;
          }
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(DicomSeries, EveryTransferSyntaxDecodesToDcm2niixVoxels) {
  GRAFT_REQUIRE_SHARED_DATA();
  const Image reference = read(dicom_data("transfer-syntaxes.Ref/reference.nii"));
  for (int syntax = 1; syntax <= 9; ++syntax) {
    SCOPED_TRACE("transfer syntax file " + std::to_string(syntax));
    const DicomVolume volume = read_dicom(dicom_data("transfer-syntaxes/" + std::to_string(syntax) + ".dcm"));
    // A Siemens mosaic: 384x384 frame, 35 tiles of 64x64.
    EXPECT_EQ(volume.image.geometry().size_xyz, (std::array<std::int64_t, 3>{64, 64, 35}));
    EXPECT_NEAR(volume.image.geometry().spacing_xyz[2], 3.6, 1e-6);  // SpacingBetweenSlices, not SliceThickness 3
    expect_same_in_world(volume.image, reference, 1e-3);
  }
}

TEST(DicomSeries, Jpeg2000CtSeriesMatchesDcm2niixInWorldSpace) {
  GRAFT_REQUIRE_SHARED_DATA();
  const DicomVolume volume = read_dicom(dicom_data("ct-j2k-series"));
  const Image reference = read(dicom_data("ct-j2k-series.Ref/reference.nii.gz"));
  EXPECT_EQ(volume.image.geometry().size_xyz, (std::array<std::int64_t, 3>{512, 512, 20}));
  // Slices lie 2 mm apart although SliceThickness says 3 mm: spacing comes from the positions.
  EXPECT_NEAR(volume.image.geometry().spacing_xyz[2], 2.0, 1e-6);
  EXPECT_EQ(volume.image.metadata().modality, "CT");
  EXPECT_EQ(volume.image.metadata().units, "HU");
  EXPECT_TRUE(volume.image.metadata().rescale_applied);
  expect_same_in_world(volume.image, reference, 1e-3);
  ASSERT_EQ(volume.source.slices.size(), 20u);
  for (const auto& slice : volume.source.slices) EXPECT_FALSE(slice.sop_instance_uid.empty());
}

TEST(DicomSeries, ObliqueGeMprageMatchesDcm2niixInWorldSpace) {
  GRAFT_REQUIRE_SHARED_DATA();
  const DicomVolume volume = read_dicom(dicom_data("mr-oblique-3d"));
  const Image reference = read(dicom_data("mr-oblique-3d.Ref/reference.nii.gz"));
  EXPECT_EQ(volume.image.geometry().size_xyz, (std::array<std::int64_t, 3>{256, 256, 130}));
  expect_same_in_world(volume.image, reference, 1e-3);
}

}  // namespace
}  // namespace graft::io
