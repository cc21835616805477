// DICOM series against dcm2niix's references, pydicom's and nibabel's test files, and broken
// files that must fail with one clear line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>

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

// Compares two volumes in world space, as dcm2niix stores its own voxel order: every voxel
// centre of `ours` must coincide (within tolerance_mm) with a voxel centre of `reference` that
// holds the same value (to value_tolerance, relative, for float rescales that each tool rounds to
// float32 in its own order), and the two grids must cover the same voxels.
void expect_same_in_world(const Image& ours, const Image& reference, double tolerance_mm,
                          double value_tolerance = 0.0) {
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
  void modify(const std::string& file, const std::string& arguments) {
    std::string output;
    ASSERT_EQ(graft::testing::run_command("dcmodify -nb -q " + arguments + " '" + file + "'", &output), 0) << output;
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
  // Shift each slice along the column direction, as a tilted gantry does.
  const DicomVolume volume = read_dicom(dir_);
  const auto& g = volume.image.geometry();
  for (int z = 0; z < 5; ++z) {
    Vec3 position = g.index_to_world({0, 0, static_cast<double>(z)});
    for (int d = 0; d < 3; ++d) position[d] += g.direction[d][1] * 0.2 * z;
    char text[128];
    std::snprintf(text, sizeof text, "%.6f\\%.6f\\%.6f", position[0], position[1], position[2]);
    modify(slices_[z], "-m \"(0020,0032)=" + std::string(text) + "\"");
  }
  const std::string message = error_reading(dir_);
  EXPECT_NE(message.find("gantry tilt 9.46"), std::string::npos) << message;  // atan(0.2 / 1.2)
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
