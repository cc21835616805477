// DICOM series against dcm2niix's references, pydicom's and nibabel's test files, and broken
// files that must fail with one clear line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/dicom/dicom_series.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/image_info.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

namespace fs = std::filesystem;

#define REQUIRE_FILE(path)                                                              \
  do {                                                                                  \
    if (!graft::testing::file_exists(path)) GTEST_SKIP() << (path) << " is absent";     \
  } while (0)

std::string dicom_data(const std::string& relative) {
  return graft::testing::shared_data_dir() + "/dicom/" + relative;
}

// Where each voxel of one grid lies on another grid that holds the same points in its own voxel
// order (dcm2niix's): reference index = start + i * step[0] + j * step[1] + k * step[2].
struct GridOnReference {
  std::array<std::int64_t, 3> start{};
  std::array<std::array<std::int64_t, 3>, 3> step{};
  std::array<std::int64_t, 3> index(std::int64_t i, std::int64_t j, std::int64_t k) const {
    std::array<std::int64_t, 3> at{};
    for (int d = 0; d < 3; ++d) at[d] = start[d] + i * step[0][d] + j * step[1][d] + k * step[2][d];
    return at;
  }
};

// Fails unless every voxel centre of `g` coincides (within tolerance_mm) with a voxel centre of
// `r` and the two grids cover the same voxels; fills `mapping` on success.
void map_onto_reference(const Geometry& g, const Geometry& r, double tolerance_mm,
                        GridOnReference& mapping) {
  ASSERT_EQ(g.voxel_count(), r.voxel_count());
  // The reference index of our voxel (i, j, k) is affine in (i, j, k); each of our axes must map
  // to one reference axis, forward or backward.
  const Vec3 origin_index = r.world_to_index(g.index_to_world({0, 0, 0}));
  for (int axis = 0; axis < 3; ++axis) {
    Vec3 unit{0, 0, 0};
    unit[axis] = 1;
    const Vec3 moved = r.world_to_index(g.index_to_world(unit));
    for (int d = 0; d < 3; ++d) {
      const double delta = moved[d] - origin_index[d];
      mapping.step[axis][d] = std::llround(delta);
      ASSERT_NEAR(delta, static_cast<double>(mapping.step[axis][d]),
                  tolerance_mm / r.spacing_xyz[d])
          << "axis " << axis << " does not map onto the reference grid";
    }
  }
  for (int d = 0; d < 3; ++d) {
    mapping.start[d] = std::llround(origin_index[d]);
    ASSERT_NEAR(origin_index[d], static_cast<double>(mapping.start[d]),
                tolerance_mm / r.spacing_xyz[d]);
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
}

// Compares two volumes in world space, as dcm2niix stores its own voxel order: every voxel
// centre of `ours` must coincide (within tolerance_mm) with a voxel centre of `reference` that
// holds the same value (to value_tolerance, relative, for float rescales that each tool rounds to
// float32 in its own order), and the two grids must cover the same voxels.
void expect_same_in_world(const Image& ours, const Image& reference, double tolerance_mm,
                          double value_tolerance = 0.0) {
  ASSERT_EQ(ours.channels(), reference.channels());
  const Geometry& g = ours.geometry();
  GridOnReference mapping;
  map_onto_reference(g, reference.geometry(), tolerance_mm, mapping);
  if (::testing::Test::HasFatalFailure()) return;
  std::int64_t mismatches = 0;
  for (std::int64_t c = 0; c < ours.channels(); ++c) {
    for (std::int64_t k = 0; k < g.size_xyz[2]; ++k) {
      for (std::int64_t j = 0; j < g.size_xyz[1]; ++j) {
        for (std::int64_t i = 0; i < g.size_xyz[0]; ++i) {
          const auto index = mapping.index(i, j, k);
          const double mine = ours.value_at(ours.offset(c, k, j, i));
          const double theirs = reference.value_at(reference.offset(c, index[2], index[1], index[0]));
          if (std::abs(mine - theirs) > value_tolerance * std::abs(theirs) && ++mismatches <= 3) {
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

// An fMRI-style run: three mosaic volumes of the real EPI, one file each, told apart only by
// AcquisitionNumber and written in reverse order (tests/tools/mosaic_series.py adds 100 per
// volume). The volumes become channels in acquisition order, as dcm2niix's 4th dimension.
TEST(DicomSeries, FourDimensionalMosaicRunMatchesDcm2niix) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string python = graft::testing::python_with("pydicom");
  if (python.empty()) GTEST_SKIP() << "Debian's python3 with pydicom is absent";
  if (graft::testing::run_command("command -v dcm2niix >/dev/null") != 0) GTEST_SKIP() << "dcm2niix is absent";
  const std::string dir = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(graft::testing::run_command(python + " " + GRAFT_SOURCE_DIR + "/tests/tools/mosaic_series.py '" +
                                            dicom_data("transfer-syntaxes/1.dcm") + "' '" + dir + "/series' 3",
                                        &output),
            0)
      << output;
  fs::create_directories(dir + "/reference");
  ASSERT_EQ(graft::testing::run_command("dcm2niix -z n -f reference -o '" + dir + "/reference' '" + dir + "/series'",
                                        &output),
            0)
      << output;
  const Image run = read_dicom(dir + "/series").image;
  ASSERT_EQ(run.channels(), 3);
  EXPECT_EQ(run.geometry().size_xyz, (std::array<std::int64_t, 3>{64, 64, 35}));
  const std::int64_t middle = run.offset(0, 17, 32, 32);
  for (std::int64_t k = 1; k < 3; ++k) {
    EXPECT_EQ(run.value_at(middle + k * run.voxels_per_channel()) - run.value_at(middle), 100.0 * k) << "volume " << k;
  }
  expect_same_in_world(run, read(dir + "/reference/reference.nii"), 1e-3);
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

// A real Philips Enhanced MR (nibabel's test copy, blank pixels) with a known pattern written into
// its 176 frames, stored out of spatial order: each frame must land where its own functional group
// puts it. dcm2niix, run on the same file, is the reference.
TEST(DicomFiles, EnhancedMultiFrameMrMatchesDcm2niixInWorldSpace) {
  const std::string source = "/usr/lib/python3/dist-packages/nibabel/nicom/tests/data/philips_mprage.dcm.gz";
  REQUIRE_FILE(source);
  const std::string python = graft::testing::python_with("pydicom");
  if (python.empty()) GTEST_SKIP() << "Debian's python3 with pydicom is absent";
  if (graft::testing::run_command("command -v dcm2niix >/dev/null") != 0) GTEST_SKIP() << "dcm2niix is absent";
  const std::string dir = graft::testing::temp_dir();
  fs::create_directories(dir + "/series");
  fs::create_directories(dir + "/reference");
  std::string output;
  ASSERT_EQ(graft::testing::run_command("gunzip -c '" + source + "' > '" + dir + "/blank.dcm' && " + python + " " +
                                            GRAFT_SOURCE_DIR + "/tests/tools/enhanced_frames.py '" + dir +
                                            "/blank.dcm' '" + dir + "/series/enhanced.dcm'",
                                        &output),
            0)
      << output;
  // -p n: the standard RescaleSlope, not Philips' private "precise" scaling.
  ASSERT_EQ(graft::testing::run_command("dcm2niix -p n -z n -f reference -o '" + dir + "/reference' '" + dir +
                                            "/series'",
                                        &output),
            0)
      << output;
  const DicomVolume volume = read_dicom(dir + "/series");
  EXPECT_EQ(volume.image.geometry().size_xyz, (std::array<std::int64_t, 3>{256, 256, 176}));
  EXPECT_NEAR(volume.image.geometry().spacing_xyz[2], 1.0, 1e-4);
  EXPECT_EQ(volume.image.dtype(), DType::kF32);  // RescaleSlope 2.1079365...
  expect_same_in_world(volume.image, read(dir + "/reference/reference.nii"), 1e-3, 1e-6);
}

std::string pydicom_file(const std::string& name) {
  return "/usr/lib/python3/dist-packages/pydicom/data/test_files/" + name;
}

void expect_same_voxels(const Image& ours, const Image& expected) {
  ASSERT_EQ(ours.element_count(), expected.element_count());
  ASSERT_TRUE(ours.geometry().same_grid(expected.geometry())) << ours.geometry().describe_difference(expected.geometry());
  for (std::int64_t i = 0; i < ours.element_count(); ++i) {
    if (ours.value_at(i) != expected.value_at(i)) {
      FAIL() << "element " << i << ": " << ours.value_at(i) << " vs " << expected.value_at(i);
    }
  }
}

// Reads each path with graft and hands the image, with the JSON object `script` (tests/tools)
// printed for that path, to check(image, reference). False when Debian's python3 lacks `module`.
template <typename Check>
bool check_against_python(const std::string& script, const std::string& module, const std::vector<std::string>& paths,
                          Check&& check) {
  const auto references = graft::testing::python_reference(script, module, paths);
  if (references.empty()) return false;
  EXPECT_EQ(references.size(), paths.size());
  for (std::size_t i = 0; i < std::min(paths.size(), references.size()); ++i) {
    SCOPED_TRACE(paths[i]);
    if (references[i].contains("error")) {
      ADD_FAILURE() << references[i].dump();
      continue;
    }
    check(read_dicom(paths[i]).image, references[i]);
  }
  return true;
}

TEST(DicomFiles, PydicomMrSmallDecodesIdenticallyInEveryTransferSyntax) {
  REQUIRE_FILE(pydicom_file("MR_small.dcm"));
  const Image uncompressed = read_dicom(pydicom_file("MR_small.dcm")).image;
  for (const char* variant : {"MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
                              "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                              "MR_small_padded.dcm"}) {
    SCOPED_TRACE(variant);
    expect_same_voxels(read_dicom(pydicom_file(variant)).image, uncompressed);
  }
}

// graft decodes RLE itself; DCMTK's decoder (dcmdrle) is the reference: 8, 16 and 32 bits, grey
// and RGB, and a 15-frame RT dose that DCMTK's encoder (dcmcrle) compressed.
TEST(DicomFiles, RleDecodesAsDcmtkDoes) {
  REQUIRE_FILE(pydicom_file("MR_small_RLE.dcm"));
  if (graft::testing::run_command("command -v dcmdrle >/dev/null && command -v dcmcrle >/dev/null") != 0) {
    GTEST_SKIP() << "dcmdrle/dcmcrle (dcmtk) absent";
  }
  const std::string dir = graft::testing::temp_dir();
  std::vector<std::pair<std::string, std::string>> compressed_and_native;
  for (const char* name : {"MR_small_RLE", "SC_rgb_rle", "SC_rgb_rle_16bit", "SC_rgb_rle_32bit", "rtdose_rle_1frame"}) {
    const std::string native = dir + "/" + name + ".native.dcm";
    std::string output;
    ASSERT_EQ(graft::testing::run_command("dcmdrle '" + pydicom_file(std::string(name) + ".dcm") + "' '" + native + "'",
                                          &output),
              0)
        << output;
    compressed_and_native.emplace_back(pydicom_file(std::string(name) + ".dcm"), native);
  }
  const std::string dose_rle = dir + "/rtdose.rle.dcm";
  ASSERT_EQ(graft::testing::run_command("dcmcrle '" + pydicom_file("rtdose.dcm") + "' '" + dose_rle + "'"), 0);
  compressed_and_native.emplace_back(dose_rle, pydicom_file("rtdose.dcm"));
  for (const auto& [compressed, native] : compressed_and_native) {
    SCOPED_TRACE(compressed);
    const Image image = read_dicom(compressed).image;
    expect_same_voxels(image, read_dicom(native).image);
    EXPECT_GT(graft::testing::voxel_sum(image), 0.0);  // not a blank that matches a blank
  }
  EXPECT_EQ(read_dicom(dose_rle).image.geometry().size_xyz[2], 15);
}

// pydicom's own decoders (numpy for native and RLE data, Pillow's libjpeg for baseline JPEG) as
// an independent reference: colour by plane in big endian, RLE at 8, 16 and 32 bits, odd sizes.
TEST(DicomFiles, ColourAndRleMatchPydicomsDecoders) {
  REQUIRE_FILE(pydicom_file("SC_rgb_rle.dcm"));
  std::vector<std::string> paths;
  for (const char* name : {"ExplVR_BigEnd", "SC_rgb_rle", "SC_rgb_rle_16bit", "SC_rgb_rle_32bit", "SC_rgb_small_odd",
                           "SC_rgb_dcmtk_+eb+cr", "SC_jpeg_no_color_transform", "MR_small_RLE"}) {
    paths.push_back(pydicom_file(std::string(name) + ".dcm"));
  }
  const bool ran = check_against_python("pydicom_pixels.py", "pydicom", paths,
                                        [](const Image& image, const nlohmann::json& reference) {
    ASSERT_EQ(image.channels(), reference["channels"].get<std::int64_t>());
    const std::int64_t per_channel = image.voxels_per_channel();
    for (std::int64_t c = 0; c < image.channels(); ++c) {
      double sum = 0;
      for (std::int64_t v = 0; v < per_channel; ++v) sum += image.value_at(c * per_channel + v);
      EXPECT_EQ(sum, reference["sums"][c].get<double>()) << "channel " << c;
    }
    EXPECT_NEAR(graft::testing::weighted_checksum(image), reference["checksum_weighted"].get<double>(),
                1e-12 * std::abs(reference["checksum_weighted"].get<double>()));
  });
  if (!ran) GTEST_SKIP() << "Debian's python3 with pydicom is absent";
}

// nibabel's DICOM wrappers (through pydicom) as the reference for geometry and scaled values:
// CT with an intercept, MR, a float rescale, and Siemens diffusion mosaics.
TEST(DicomFiles, MatchNibabelOnPydicomAndNibabelTestFiles) {
  const std::string nibabel_data = "/usr/lib/python3/dist-packages/nibabel/nicom/tests/data/";
  REQUIRE_FILE(nibabel_data + "siemens_dwi_1000.dcm.gz");
  const std::string dir = graft::testing::temp_dir();
  std::vector<std::string> paths = {pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm"),
                                    nibabel_data + "decimal_rescale.dcm"};
  for (const char* mosaic : {"siemens_dwi_0", "siemens_dwi_1000"}) {
    const std::string unpacked = dir + "/" + mosaic + ".dcm";
    ASSERT_EQ(graft::testing::run_command("gunzip -c '" + nibabel_data + mosaic + ".dcm.gz' > '" + unpacked + "'"), 0);
    paths.push_back(unpacked);
  }
  const bool ran = check_against_python("dicom_reference.py", "nibabel", paths,
                                        [](const Image& image, const nlohmann::json& reference) {
    const auto& g = image.geometry();
    EXPECT_EQ(g.size_xyz[0], reference["size"][0].get<std::int64_t>());
    EXPECT_EQ(g.size_xyz[1], reference["size"][1].get<std::int64_t>());
    EXPECT_EQ(g.size_xyz[2], reference["size"][2].get<std::int64_t>());
    const auto affine = g.affine();
    // A single slice has no second position, so its third axis is a convention; compare the
    // in-plane axes and the origin there, everything for stacks and mosaics.
    for (int column : g.size_xyz[2] > 1 ? std::vector<int>{0, 1, 2, 3} : std::vector<int>{0, 1, 3}) {
      for (int row = 0; row < 3; ++row) {
        EXPECT_NEAR(affine[row][column], reference["affine_lps"][row][column].get<double>(), 1e-3)
            << "affine row " << row << " column " << column;
      }
    }
    EXPECT_NEAR(graft::testing::voxel_sum(image), reference["sum"].get<double>(),
                1e-9 * std::abs(reference["sum"].get<double>()) + 1e-3);
    EXPECT_NEAR(graft::testing::weighted_checksum(image), reference["checksum_weighted"].get<double>(),
                1e-9 * std::abs(reference["checksum_weighted"].get<double>()) + 1e-3);
  });
  if (!ran) GTEST_SKIP() << "Debian's python3 with nibabel and pydicom is absent";
}

// The tools the gantry tilt tests build and check their series with: absent on a user's machine
// the tests skip, under CI (the CI variable set) they fail, so the check can never pass unrun.
#define REQUIRE_TOOL(tool)                                                            \
  do {                                                                                \
    if (graft::testing::run_command("command -v " tool " >/dev/null") != 0) {         \
      if (std::getenv("CI") != nullptr) FAIL() << "CI is set and " tool " is absent"; \
      GTEST_SKIP() << tool " is absent";                                              \
    }                                                                                 \
  } while (0)

// DCMTK's dcmodify on one file, without a backup copy.
void dcmodify(const std::string& file, const std::string& arguments) {
  std::string output;
  ASSERT_EQ(
      graft::testing::run_command("dcmodify -nb -q " + arguments + " '" + file + "'", &output), 0)
      << output;
}

// dcmodify's arguments that set ImagePositionPatient.
std::string position_argument(const Vec3& position) {
  char text[160];
  std::snprintf(text, sizeof text, "-m \"(0020,0032)=%.6f\\%.6f\\%.6f\"", position[0], position[1],
                position[2]);
  return text;
}

Vec3 axis_of(const Geometry& g, int axis) {
  return {g.direction[0][axis], g.direction[1][axis], g.direction[2][axis]};
}

// `start` moved `mm` along `direction`, to the 6 decimals position_argument writes: the position
// the file will hold.
Vec3 moved(const Vec3& start, const Vec3& direction, double mm) {
  Vec3 position{};
  for (int d = 0; d < 3; ++d) position[d] = std::round((start[d] + direction[d] * mm) * 1e6) / 1e6;
  return position;
}

// What a tilt-corrected voxel centred at `world` must hold, found from the DICOM positions alone:
// the sheared slice lay at `position` with the in-plane axes and size of `slice_grid`, so the
// point falls at some (column, row) of its pixels, pixel(column, row). Rows are blended linearly;
// a slice's pixels reach half a row beyond its edge rows, and past that lies `fill`.
template <typename Pixel>
double expected_after_tilt_correction(const Geometry& slice_grid, const Vec3& position,
                                      const Vec3& world, double fill, Pixel&& pixel) {
  // Solved, not projected: IOP's rounded cosines leave rows and columns a hair off perpendicular,
  // which a projection would turn into a hundred-thousandth of a row per column.
  Geometry placed = slice_grid;
  placed.origin_world = position;
  const Vec3 index = placed.world_to_index(world);
  const double column = index[0], row = index[1];
  EXPECT_NEAR(index[2], 0.0, 1e-3) << "the voxel must lie in its slice's plane";
  const auto x = std::llround(column);
  EXPECT_NEAR(column, static_cast<double>(x), 1e-4)
      << "correction must move slices along the columns only";
  const auto rows = slice_grid.size_xyz[1];
  if (row < -0.5 - 1e-6 || row > static_cast<double>(rows) - 0.5 + 1e-6) return fill;
  const double clamped = std::clamp(row, 0.0, static_cast<double>(rows - 1));
  const auto low = static_cast<std::int64_t>(std::floor(clamped));
  const std::int64_t high = std::min<std::int64_t>(low + 1, rows - 1);
  const double weight = clamped - static_cast<double>(low);
  return pixel(x, low) * (1.0 - weight) + pixel(x, high) * weight;
}

double minimum_voxel(const Image& image) {
  double lowest = image.value_at(0);
  for (std::int64_t i = 1; i < image.element_count(); ++i)
    lowest = std::min(lowest, image.value_at(i));
  return lowest;
}

// Copies of real slices, edited with DCMTK's dcmodify, for series with known defects.
class DicomSeriesEdits : public ::testing::Test {
 protected:
  void SetUp() override {
    GRAFT_REQUIRE_SHARED_DATA();
    if (graft::testing::run_command("command -v dcmodify >/dev/null") != 0) GTEST_SKIP() << "dcmodify (dcmtk) absent";
    dir_ = graft::testing::temp_dir();
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dicom_data("mr-oblique-3d"))) files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    // Five slices that are neighbours in space, so the copy is a valid small series.
    const auto series = find_dicom_series(dicom_data("mr-oblique-3d"));
    const DicomVolume volume = read_dicom_series(series.front());
    for (int z = 60; z < 65; ++z) {
      const std::string copy = dir_ + "/slice" + std::to_string(z) + ".dcm";
      fs::copy_file(volume.source.slices[z].file, copy);
      slices_.push_back(copy);
    }
  }
  void modify(const std::string& file, const std::string& arguments) { dcmodify(file, arguments); }
  // Moves slice z by z * mm_per_slice along one in-plane axis of `grid` (the five slices' own
  // grid; 1 for the columns, as a tilted gantry shifts them), and returns the new positions.
  std::vector<Vec3> shear(const Geometry& grid, int in_plane_axis, double mm_per_slice) {
    std::vector<Vec3> positions;
    for (int z = 0; z < 5; ++z) {
      positions.push_back(moved(grid.index_to_world({0, 0, static_cast<double>(z)}),
                                axis_of(grid, in_plane_axis), mm_per_slice * z));
      modify(slices_[z], position_argument(positions.back()));
    }
    return positions;
  }
  static std::string error_reading(const std::string& path) {
    return graft::testing::error_message([&] { read_dicom(path); });
  }
  std::string dir_;
  std::vector<std::string> slices_;
};

TEST_F(DicomSeriesEdits, ReadsTheCopyAndSkipsNonDicomFiles) {
  std::ofstream(dir_ + "/README.txt") << "notes from the scanner room\n";
  const DicomVolume volume = read_dicom(dir_);
  EXPECT_EQ(volume.image.geometry().size_xyz[2], 5);
  EXPECT_NEAR(volume.image.geometry().spacing_xyz[2], 1.2, 1e-4);
}

TEST_F(DicomSeriesEdits, MissingPositionIsOneLineNamingTheFile) {
  modify(slices_[2], "-e \"(0020,0032)\"");
  const std::string message = error_reading(dir_);
  EXPECT_NE(message.find(slices_[2]), std::string::npos) << message;
  EXPECT_NE(message.find("ImagePositionPatient"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST_F(DicomSeriesEdits, UnevenSpacingIsRefusedWithTheMeasuredGaps) {
  fs::remove(slices_[2]);
  const std::string message = error_reading(dir_);
  EXPECT_NE(message.find("uneven"), std::string::npos) << message;
  EXPECT_NE(message.find("1.2000 to 2.4000 mm"), std::string::npos) << message;
}

TEST_F(DicomSeriesEdits, GantryTiltIsRefusedWithItsAngle) {
  shear(read_dicom(dir_).image.geometry(), 1, 0.2);
  const std::string message = error_reading(dir_);
  EXPECT_NE(message.find("gantry tilt 9.46"), std::string::npos) << message;  // atan(0.2 / 1.2)
  EXPECT_NE(message.find("--correct-tilt"), std::string::npos) << message;
}

// The oblique MR slices sheared as a tilted gantry would: with correct_tilt each voxel of the
// orthogonal grid must hold what the sheared slice holds at that world point.
TEST_F(DicomSeriesEdits, CorrectTiltPutsEverySlicesPixelsBackAtTheirWorldPositions) {
  const Image original = read_dicom(dir_).image;
  const Geometry& slices = original.geometry();
  const std::vector<Vec3> positions = shear(slices, 1, 0.2);
  DicomReadOptions options;
  options.correct_tilt = true;
  const Image corrected = read_dicom(dir_, "", options).image;
  ASSERT_TRUE(corrected.metadata().gantry_tilt_corrected_degrees.has_value());
  EXPECT_NEAR(*corrected.metadata().gantry_tilt_corrected_degrees,
              std::atan(0.2 / 1.2) * 180 / M_PI, 1e-3);
  const Geometry& g = corrected.geometry();
  // Same axes and spacing; 0.8 mm of drift (0.85 rows) adds one row, on the side the slices drift
  // to.
  EXPECT_TRUE(g.direction == slices.direction);
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(g.spacing_xyz[d], slices.spacing_xyz[d], 1e-6);
  EXPECT_EQ(g.size_xyz, (std::array<std::int64_t, 3>{256, 257, 5}));
  EXPECT_EQ(corrected.dtype(), original.dtype());
  const double fill = minimum_voxel(original);
  std::int64_t mismatches = 0;
  for (std::int64_t k = 0; k < 5; ++k) {
    for (std::int64_t j = 0; j < g.size_xyz[1]; ++j) {
      for (std::int64_t i = 0; i < g.size_xyz[0]; ++i) {
        const Vec3 world = g.index_to_world(
            {static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)});
        const double expected = expected_after_tilt_correction(
            slices, positions[k], world, fill, [&](std::int64_t x, std::int64_t y) {
              return original.value_at(original.offset(0, k, y, x));
            });
        const double ours = corrected.value_at(corrected.offset(0, k, j, i));
        // int16 voxels: the blend rounded to the nearest integer.
        if (std::abs(ours - expected) > 0.5 + 1e-6 && ++mismatches <= 3) {
          ADD_FAILURE() << "voxel (" << i << "," << j << "," << k << ") is " << ours
                        << ", expected " << expected;
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(DicomSeriesEdits, CorrectTiltRefusesSlicesThatDriftAlongTheRows) {
  shear(read_dicom(dir_).image.geometry(), 0, 0.2);
  DicomReadOptions options;
  options.correct_tilt = true;
  const std::string message = graft::testing::error_message([&] { read_dicom(dir_, "", options); });
  EXPECT_NE(message.find("along the row direction"), std::string::npos) << message;
  EXPECT_NE(message.find("--correct-tilt does not resample"), std::string::npos) << message;
}

TEST_F(DicomSeriesEdits, TemporalPositionsBecomeChannelsInTimeOrder) {
  for (const auto& slice : slices_) {
    const std::string later = slice + ".t2.dcm";
    fs::copy_file(slice, later);
    modify(later, "-gin -i \"(0020,0100)=2\"");
    modify(slice, "-i \"(0020,0100)=1\"");
  }
  const DicomVolume volume = read_dicom(dir_);
  EXPECT_EQ(volume.image.channels(), 2);
  EXPECT_EQ(volume.image.geometry().size_xyz[2], 5);
}

TEST_F(DicomSeriesEdits, EchoesAndSizesSplitIntoSelectableSubSeries) {
  for (const auto& slice : slices_) {
    const std::string echo = slice + ".echo2.dcm";
    fs::copy_file(slice, echo);
    modify(echo, "-gin -i \"(0018,0086)=2\"");
  }
  const auto series = find_dicom_series(dir_);
  ASSERT_EQ(series.size(), 2u);
  EXPECT_NE(error_reading(dir_).find("pick one with --series"), std::string::npos);
  const std::string selector = series[0].series_instance_uid + "/echo 2";
  const DicomVolume echo2 = read_dicom(dir_, selector);
  EXPECT_EQ(echo2.image.geometry().size_xyz[2], 5);
  EXPECT_EQ(read(dir_ + "#" + selector).geometry().size_xyz[2], 5);
}

TEST_F(DicomSeriesEdits, Monochrome1IsInvertedOverTheStoredRange) {
  const Image original = read_dicom(dir_).image;
  for (const auto& slice : slices_) modify(slice, "-m \"(0028,0004)=MONOCHROME1\"");
  const Image inverted = read_dicom(dir_).image;
  // Signed 16-bit stored values: white is -32768 + 32767 - v = -1 - v, kept exactly as int16.
  ASSERT_EQ(original.dtype(), DType::kI16);
  ASSERT_EQ(inverted.dtype(), DType::kI16);
  ASSERT_EQ(inverted.element_count(), original.element_count());
  for (std::int64_t i = 0; i < original.element_count(); ++i) {
    ASSERT_EQ(inverted.value_at(i), -1.0 - original.value_at(i)) << "element " << i;
  }
}

TEST_F(DicomSeriesEdits, TruncatedPixelDataIsOneLineNamingTheFile) {
  const auto size = fs::file_size(slices_[1]);
  fs::resize_file(slices_[1], size - 20000);
  const std::string message = error_reading(dir_);
  EXPECT_NE(message.find(slices_[1]), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

// One real oblique MR slice copied into a stack whose positions drift along its columns: the
// shear is all there is to correct, so every voxel of the corrected volume must hold the slice's
// value at that world point. A drift of whole rows needs no blending, so a bright line stays
// exactly where each copy put it; a fractional drift (the other way) blends two rows linearly.
TEST(DicomTilt, CopiesOfOneSliceWithShearedPositionsKeepEveryWorldPointsValue) {
  GRAFT_REQUIRE_SHARED_DATA();
  REQUIRE_TOOL("dcmodify");
  const DicomVolume series = read_dicom(dicom_data("mr-oblique-3d"));
  const std::string source = series.source.slices[65].file;
  const Image slice = read_dicom(source).image;
  const Geometry& plane = slice.geometry();
  const Vec3 normal = axis_of(plane, 2), column = axis_of(plane, 1);
  const double fill = minimum_voxel(slice);
  constexpr int kSlices = 6;
  constexpr double kSliceSpacingMm = 1.2;
  for (const double rows_per_slice : {1.0, -0.3}) {
    SCOPED_TRACE("drift of " + std::to_string(rows_per_slice) + " rows per slice");
    const std::string dir = graft::testing::temp_dir() + "/drift" + std::to_string(rows_per_slice);
    fs::create_directories(dir);
    std::vector<Vec3> positions;
    for (int k = 0; k < kSlices; ++k) {
      const std::string copy = dir + "/copy" + std::to_string(k) + ".dcm";
      fs::copy_file(source, copy);
      positions.push_back(
          moved(plane.index_to_world({0, 0, 0}),
                {normal[0] * kSliceSpacingMm + column[0] * rows_per_slice * plane.spacing_xyz[1],
                 normal[1] * kSliceSpacingMm + column[1] * rows_per_slice * plane.spacing_xyz[1],
                 normal[2] * kSliceSpacingMm + column[2] * rows_per_slice * plane.spacing_xyz[1]},
                k));
      dcmodify(copy, position_argument(positions.back()) +
                         " -m \"(0020,0013)=" + std::to_string(k + 1) +
                         "\" -m \"(0008,0018)=1.2.826.0.1.3680043.10.1331.77." +
                         std::to_string(k + 1) + "\"");
    }
    DicomReadOptions options;
    options.correct_tilt = true;
    const Image corrected = read_dicom(dir, "", options).image;
    ASSERT_TRUE(corrected.metadata().gantry_tilt_corrected_degrees.has_value());
    EXPECT_NEAR(
        *corrected.metadata().gantry_tilt_corrected_degrees,
        std::atan(std::abs(rows_per_slice) * plane.spacing_xyz[1] / kSliceSpacingMm) * 180 / M_PI,
        1e-3);
    const Geometry& g = corrected.geometry();
    for (int axis = 0; axis < 3; ++axis) {
      for (int d = 0; d < 3; ++d) EXPECT_NEAR(g.direction[d][axis], plane.direction[d][axis], 1e-9);
    }
    const auto extra_rows =
        static_cast<std::int64_t>(std::ceil(std::abs(rows_per_slice) * (kSlices - 1)));
    EXPECT_EQ(g.size_xyz, (std::array<std::int64_t, 3>{256, 256 + extra_rows, kSlices}));
    const bool whole_rows = rows_per_slice == std::round(rows_per_slice);
    std::int64_t mismatches = 0;
    for (std::int64_t k = 0; k < kSlices; ++k) {
      for (std::int64_t j = 0; j < g.size_xyz[1]; ++j) {
        for (std::int64_t i = 0; i < g.size_xyz[0]; ++i) {
          const Vec3 world = g.index_to_world(
              {static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)});
          const double expected = expected_after_tilt_correction(
              plane, positions[k], world, fill, [&](std::int64_t x, std::int64_t y) {
                return slice.value_at(slice.offset(0, 0, y, x));
              });
          const double ours = corrected.value_at(corrected.offset(0, k, j, i));
          // Whole rows: the copy's own pixel (positions carry 6 decimals, so `expected` is within
          // a thousandth of it); a blend: rounded to the nearest integer, as int16 voxels are (a
          // tie, half way between two odd-summed rows, may round either way).
          if (std::abs(ours - expected) > (whole_rows ? 1e-2 : 0.5 + 1e-6) && ++mismatches <= 3) {
            ADD_FAILURE() << "voxel (" << i << "," << j << "," << k << ") is " << ours
                          << ", expected " << expected;
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

// The real CT series sheared as a 15 degree gantry tilt shears it, GantryDetectorTilt set to match,
// as dcm2niix's own tilt tests make them; dcm2niix's tilt-corrected output (its "_Tilt_1" file) is
// the reference. The slices drift towards -column and their InstanceNumbers rise along the slice
// normal: Debian's dcm2niix 1.0.20220720 places its output correctly only then. With the instance
// order reversed its origin is off by the whole drift (10.2 mm here), and with the drift reversed
// by the part of a row it pads (0.56 mm), both measured against the slice positions; the analytic
// tests above cover those layouts.
TEST(DicomTilt, CorrectedCtSeriesMatchesDcm2niixTiltOutputInWorldSpace) {
  GRAFT_REQUIRE_SHARED_DATA();
  REQUIRE_TOOL("dcmodify");
  REQUIRE_TOOL("dcm2niix");
  const DicomVolume original = read_dicom(dicom_data("ct-j2k-series"));
  const Geometry& stack = original.image.geometry();
  const Vec3 column = axis_of(stack, 1);
  constexpr double kTiltDegrees = 15.0;
  const double drift_mm_per_slice = stack.spacing_xyz[2] * std::tan(kTiltDegrees * M_PI / 180);
  const std::string dir = graft::testing::temp_dir();
  fs::create_directories(dir + "/series");
  fs::create_directories(dir + "/reference");
  std::vector<Vec3> positions;
  for (std::int64_t k = 0; k < stack.size_xyz[2]; ++k) {
    const std::string copy = dir + "/series/slice" + std::to_string(k) + ".dcm";
    fs::copy_file(original.source.slices[k].file, copy);
    positions.push_back(moved(stack.index_to_world({0, 0, static_cast<double>(k)}), column,
                              -drift_mm_per_slice * k));
    dcmodify(copy, position_argument(positions.back()) +
                       " -m \"(0018,1120)=15\" -m \"(0020,0013)=" + std::to_string(k + 1) + "\"");
  }
  std::string output;
  ASSERT_EQ(
      graft::testing::run_command(
          "dcm2niix -z n -f reference -o '" + dir + "/reference' '" + dir + "/series'", &output),
      0)
      << output;
  ASSERT_TRUE(graft::testing::file_exists(dir + "/reference/reference_Tilt_1.nii")) << output;
  const Image reference = read(dir + "/reference/reference_Tilt_1.nii");

  DicomReadOptions options;
  options.correct_tilt = true;
  const Image ours = read_dicom(dir + "/series", "", options).image;
  ASSERT_TRUE(ours.metadata().gantry_tilt_corrected_degrees.has_value());
  EXPECT_NEAR(*ours.metadata().gantry_tilt_corrected_degrees, kTiltDegrees, 1e-3);
  EXPECT_EQ(ours.dtype(), DType::kI16);
  const Geometry& g = ours.geometry();
  EXPECT_EQ(g.size_xyz,
            (std::array<std::int64_t, 3>{512, 523, 20}));  // ceil(10.2 mm / 0.977 mm) rows more

  // Geometry: both grids hold the same voxel centres; the eight corners measure how closely.
  GridOnReference mapping;
  map_onto_reference(g, reference.geometry(), 1e-3, mapping);
  if (HasFatalFailure()) return;
  double corner_mm = 0.0;
  for (int corner = 0; corner < 8; ++corner) {
    const std::int64_t i = (corner & 1) ? g.size_xyz[0] - 1 : 0,
                       j = (corner & 2) ? g.size_xyz[1] - 1 : 0,
                       k = (corner & 4) ? g.size_xyz[2] - 1 : 0;
    const auto index = mapping.index(i, j, k);
    const Vec3 a =
        g.index_to_world({static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)});
    const Vec3 b = reference.geometry().index_to_world({static_cast<double>(index[0]),
                                                        static_cast<double>(index[1]),
                                                        static_cast<double>(index[2])});
    corner_mm = std::max(corner_mm, norm(Vec3{a[0] - b[0], a[1] - b[1], a[2] - b[2]}));
  }
  EXPECT_LT(corner_mm, 1e-3);

  // Voxels, by where their centre falls in its sheared slice. Between the centres of two rows both
  // tools blend the same two rows linearly and round; dcm2niix weighs in float32, so a blend within
  // float rounding of .5 may round the other way: 1 HU. Beyond a whole row outside the slice both
  // fill with the series' minimum: equal. In the last row's width past an edge row the tools differ
  // by convention (graft extends edge rows by half a row, their pixels' footprint; dcm2niix, whose
  // rows run the other way, extends one edge a whole row and the other not at all), so those
  // voxels, at most two rows per slice, are counted, not compared.
  struct Tally {
    std::int64_t voxels = 0, differing = 0;
    double largest = 0.0;
  } inside, outside, edge;
  for (std::int64_t k = 0; k < g.size_xyz[2]; ++k) {
    for (std::int64_t j = 0; j < g.size_xyz[1]; ++j) {
      const Vec3 row_start = g.index_to_world({0, static_cast<double>(j), static_cast<double>(k)});
      const Vec3 offset{row_start[0] - positions[k][0], row_start[1] - positions[k][1],
                        row_start[2] - positions[k][2]};
      const double row = dot(offset, column) / stack.spacing_xyz[1];
      const double last_row = static_cast<double>(stack.size_xyz[1] - 1);
      Tally& tally = (row >= -1e-3 && row <= last_row + 1e-3)             ? inside
                     : (row <= -1.0 - 1e-3 || row >= last_row + 1 + 1e-3) ? outside
                                                                          : edge;
      for (std::int64_t i = 0; i < g.size_xyz[0]; ++i) {
        const auto index = mapping.index(i, j, k);
        const double difference =
            std::abs(ours.value_at(ours.offset(0, k, j, i)) -
                     reference.value_at(reference.offset(0, index[2], index[1], index[0])));
        ++tally.voxels;
        tally.differing += difference > 0;
        tally.largest = std::max(tally.largest, difference);
      }
    }
  }
  EXPECT_LE(inside.largest, 1.0);
  EXPECT_LT(inside.differing, inside.voxels / 1000);
  EXPECT_EQ(outside.differing, 0);
  EXPECT_LE(edge.voxels, 2 * g.size_xyz[0] * g.size_xyz[2]);
  std::printf(
      "graft vs dcm2niix _Tilt_1: corners %.2g mm apart; inside the slices %lld voxels, %lld "
      "differ, "
      "by at most %g HU; outside %lld voxels, %lld differ; edge rows %lld voxels, %lld differ, by "
      "at most %g HU\n",
      corner_mm, static_cast<long long>(inside.voxels), static_cast<long long>(inside.differing),
      inside.largest, static_cast<long long>(outside.voxels),
      static_cast<long long>(outside.differing), static_cast<long long>(edge.voxels),
      static_cast<long long>(edge.differing), edge.largest);
}

TEST(DicomFiles, PydicomTruncatedFileIsOneLineError) {
  REQUIRE_FILE(pydicom_file("MR_truncated.dcm"));
  const std::string message = graft::testing::error_message([] { read_dicom(pydicom_file("MR_truncated.dcm")); });
  ASSERT_FALSE(message.empty()) << "a truncated file must not read";
  EXPECT_NE(message.find("MR_truncated.dcm"), std::string::npos) << message;
}

// Patient name, ID and birth date live in the source files; no non-DICOM output may carry them.
TEST(DicomPrivacy, NoPatientFieldReachesInfoOrNiftiOrNrrd) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string source = dicom_data("transfer-syntaxes/1.dcm");
  std::string dump;
  graft::testing::run_command("dcmdump -q +P 0010,0010 +P 0010,0020 +P 0010,0030 '" + source + "'", &dump);
  ASSERT_NE(dump.find("stc_test"), std::string::npos) << "the source must hold the fields this test looks for";
  const std::vector<std::string> identifying = {"stc_test", "crlab", "19800707"};
  const DicomVolume volume = read_dicom(source);
  const std::string dir = graft::testing::temp_dir();
  std::vector<std::string> texts = {dicom_series_info_text(find_dicom_series(source)),
                                    dicom_series_info_json(find_dicom_series(source)).dump(),
                                    image_info_text(volume.image), image_info_json(volume.image).dump()};
  for (const char* name : {"/out.nii", "/out.nrrd"}) {
    write(volume.image, dir + name);
    std::ifstream stream(dir + name, std::ios::binary);
    texts.emplace_back(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
  }
  for (const auto& text : texts) {
    for (const auto& field : identifying) EXPECT_EQ(text.find(field), std::string::npos) << field;
  }
}

}  // namespace
}  // namespace graft::io
