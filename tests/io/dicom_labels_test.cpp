// Labels from PACS: DICOM SEG (graft's and another writer's, binary and fractional) through
// graft's front door, and RTSTRUCT written by graft and by another writer, rasterised onto the
// TotalSegmentator CT series in ../shared/data and checked against the mask they came from and
// against an independent rasteriser (tests/tools/dicom_labels_reference.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/dicom/rtstruct.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/label_file.h"
#include "io/segment_names.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

using graft::testing::run_command;

std::string dicom_data(const std::string& name) { return graft::testing::shared_data_dir() + "/dicom/" + name; }
std::string mask_path() { return dicom_data("ct-j2k-series.Ref/totalsegmentator-mask.nii.gz"); }

#define GRAFT_REQUIRE_SERIES(series)                                             \
  GRAFT_REQUIRE_SHARED_DATA();                                                   \
  const std::string series = graft::testing::dicom_series_with_uids(dicom_data("ct-j2k-series")); \
  if (series.empty()) GTEST_SKIP() << "dcmodify (Debian dcmtk) is absent"

std::string reference_tool() {
  const std::string python = graft::testing::python_with("skimage");
  return python.empty() ? "" : python + " " GRAFT_SOURCE_DIR "/tests/tools/dicom_labels_reference.py ";
}

// The TotalSegmentator mask on the series' own grid (it is stored in dcm2niix's voxel order).
Image mask_on_series(const DicomVolumeSource& source) {
  return labels_onto_grid(read(mask_path()), source.geometry, mask_path(), "the series");
}

double dice(const Image& a, double a_value, const Image& b, double b_value) {
  std::int64_t both = 0, in_a = 0, in_b = 0;
  for (std::int64_t i = 0; i < a.element_count(); ++i) {
    const bool x = a.value_at(i) == a_value, y = b.value_at(i) == b_value;
    both += x && y, in_a += x, in_b += y;
  }
  return in_a + in_b == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(in_a + in_b);
}

std::set<int> label_values(const Image& labels) {
  std::set<int> values;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) {
    if (labels.value_at(i) != 0) values.insert(static_cast<int>(labels.value_at(i)));
  }
  return values;
}

int dciodvfy_errors(const std::string& path, std::string* output) {
  run_command("dciodvfy " + path + " 2>&1", output);
  int errors = 0;
  for (std::size_t at = output->find("Error"); at != std::string::npos; at = output->find("Error", at + 1)) ++errors;
  return errors;
}

TEST(DicomSegFrontDoor, GraftsOwnSegReadsThroughIoReadWithSegmentNames) {
  GRAFT_REQUIRE_SERIES(series);
  const DicomVolumeSource source = dicom_volume_source(series);
  Image labels = mask_on_series(source);
  const std::set<int> values = label_values(labels);
  std::vector<std::string> names(static_cast<std::size_t>(*std::next(values.begin())));
  names[*values.begin() - 1] = "spleen";
  names.back() = "right kidney";
  labels.metadata().segments = named_segments(labels, names);
  const std::string path = graft::testing::temp_dir() + "/organs.dcm";
  write_dicom_seg(labels, source, segments_for_labels(labels, {}), path, DicomSegOptions{});

  const Image read_back = read(path);
  EXPECT_EQ(read_back.metadata().modality, "SEG");
  ASSERT_TRUE(read_back.geometry().same_grid(labels.geometry(), 1e-3))
      << read_back.geometry().describe_difference(labels.geometry(), 1e-3);
  for (std::int64_t i = 0; i < labels.element_count(); ++i) ASSERT_EQ(read_back.value_at(i), labels.value_at(i)) << i;
  const auto& segments = read_back.metadata().segments;
  ASSERT_EQ(segments.size(), values.size());
  EXPECT_EQ(segments[0].name, "spleen");
  EXPECT_EQ(segments[1].name, "right kidney");
  // The colour survives the CIELab round trip to within DICOM's 16-bit steps.
  ASSERT_TRUE(segments[0].color_rgb.has_value());
  for (int c = 0; c < 3; ++c) EXPECT_NEAR((*segments[0].color_rgb)[c], default_segment_color(1)[c], 2e-3);
}

TEST(DicomSegFrontDoor, ASegInsideADicomFolderIsListedAsItsOwnSeriesAndSelectable) {
  GRAFT_REQUIRE_SERIES(series);
  const DicomVolumeSource source = dicom_volume_source(series);
  const Image labels = mask_on_series(source);
  write_dicom_seg(labels, source, segments_for_labels(labels, {}), series + "/seg.dcm", DicomSegOptions{});
  const std::vector<DicomSeries> found = find_dicom_series(series);
  ASSERT_EQ(found.size(), 2u);
  const auto seg = std::find_if(found.begin(), found.end(), [](const DicomSeries& s) { return s.modality == "SEG"; });
  ASSERT_NE(seg, found.end());
  EXPECT_EQ(seg->files.size(), 1u);
  const Image selected = read(series + "#" + dicom_series_selector(*seg));
  EXPECT_EQ(selected.metadata().source_format, "dicom-seg");
  EXPECT_EQ(label_values(selected), label_values(labels));
}

TEST(DicomSegFrontDoor, AnotherWritersBinarySegReadsVoxelForVoxel) {
  GRAFT_REQUIRE_SERIES(series);
  const std::string tool = reference_tool();
  if (tool.empty()) GTEST_SKIP() << "/usr/bin/python3 with scikit-image is absent";
  const std::string path = graft::testing::temp_dir() + "/reference_seg.dcm";
  std::string output;
  ASSERT_EQ(run_command(tool + "seg " + series + " " + mask_path() + " " + path, &output), 0) << output;
  const Image mask = mask_on_series(dicom_volume_source(series));
  // Not graft's own: segments are numbered 1..K and named "label V" for mask value V.
  const Image seg = read_label_map(path, series, mask.geometry());
  ASSERT_EQ(seg.metadata().segments.size(), label_values(mask).size());
  for (const LabelSegment& segment : seg.metadata().segments) {
    const int value = std::stoi(segment.name.substr(6));
    EXPECT_EQ(dice(seg, segment.label_value, mask, value), 1.0) << segment.name;
  }
}

TEST(DicomSegFrontDoor, AFractionalSegKeepsTheVoxelsAtOrAboveOneHalf) {
  GRAFT_REQUIRE_SERIES(series);
  const std::string tool = reference_tool();
  if (tool.empty()) GTEST_SKIP() << "/usr/bin/python3 with scikit-image is absent";
  const std::string path = graft::testing::temp_dir() + "/fractional.dcm";
  const Image mask = mask_on_series(dicom_volume_source(series));
  std::string kept;
  for (const int value : label_values(mask)) {
    if (std::count(kept.begin(), kept.end(), ',') < 3) kept += (kept.empty() ? "" : ",") + std::to_string(value);
  }
  std::string output;
  ASSERT_EQ(run_command(tool + "seg " + series + " " + mask_path() + " " + path + " --fractional --labels " + kept, &output),
            0)
      << output;
  // Inside each segment the probability is 200/255; on the ring just outside it, 100/255.
  const Image seg = read(path);
  ASSERT_TRUE(seg.geometry().same_grid(mask.geometry(), 1e-3) ||
              seg.geometry().size_xyz[2] < mask.geometry().size_xyz[2]);
  const Image placed = labels_onto_grid(seg, mask.geometry(), path, "the series", /*part_of_grid=*/true);
  ASSERT_EQ(placed.metadata().segments.size(), 4u);
  for (const LabelSegment& segment : placed.metadata().segments) {
    EXPECT_EQ(dice(placed, segment.label_value, mask, std::stoi(segment.name.substr(6))), 1.0) << segment.name;
  }
}

TEST(RtStruct, WrittenFromTheTotalSegmentatorMaskRasterisesBackExactlyAndPassesDciodvfy) {
  GRAFT_REQUIRE_SERIES(series);
  const DicomVolumeSource source = dicom_volume_source(series);
  const Image mask = mask_on_series(source);
  const std::string path = graft::testing::temp_dir() + "/organs.rtstruct.dcm";
  write_rtstruct(mask, source, path, RtStructWriteOptions{});

  const Image read_back = read_label_map(path, series, mask.geometry());
  const auto& segments = read_back.metadata().segments;
  const std::set<int> values = label_values(mask);
  ASSERT_EQ(segments.size(), values.size());
  double worst = 1.0;
  for (const LabelSegment& segment : segments) {
    // Each ROI is numbered by its label value, so the label map comes back with its own values.
    ASSERT_TRUE(values.count(segment.label_value)) << segment.label_value;
    EXPECT_EQ(segment.name, "class " + std::to_string(segment.label_value));
    worst = std::min(worst, dice(read_back, segment.label_value, mask, segment.label_value));
  }
  EXPECT_GE(worst, 0.98);
  EXPECT_EQ(worst, 1.0) << "voxel-edge contours rasterise back to the very voxels";

  if (run_command("command -v dciodvfy >/dev/null") == 0) {
    std::string output;
    EXPECT_EQ(dciodvfy_errors(path, &output), 0) << output;
  }
}

TEST(RtStruct, AnIndependentRasteriserGetsTheSameVoxelsFromGraftsContours) {
  GRAFT_REQUIRE_SERIES(series);
  const std::string tool = reference_tool();
  if (tool.empty()) GTEST_SKIP() << "/usr/bin/python3 with scikit-image is absent";
  const DicomVolumeSource source = dicom_volume_source(series);
  const Image mask = mask_on_series(source);
  const std::string folder = graft::testing::temp_dir();
  write_rtstruct(mask, source, folder + "/organs.rtstruct.dcm", RtStructWriteOptions{});
  std::string output;
  ASSERT_EQ(run_command(tool + "rasterize " + folder + "/organs.rtstruct.dcm " + series + " " + folder + "/raster.npy",
                        &output),
            0)
      << output;
  const Image reference = read(folder + "/raster.npy");  // (slice, row, column): graft's z, y, x
  const Image graft = read_label_map(folder + "/organs.rtstruct.dcm", series, mask.geometry());
  ASSERT_EQ(reference.element_count(), graft.element_count());
  std::int64_t differing = 0;
  for (std::int64_t i = 0; i < graft.element_count(); ++i) differing += graft.value_at(i) != reference.value_at(i);
  EXPECT_EQ(differing, 0);
}

TEST(RtStruct, AnotherWritersMarchingSquaresContoursRasteriseCloseToTheMask) {
  GRAFT_REQUIRE_SERIES(series);
  const std::string tool = reference_tool();
  if (tool.empty()) GTEST_SKIP() << "/usr/bin/python3 with scikit-image is absent";
  const std::string path = graft::testing::temp_dir() + "/reference_rtstruct.dcm";
  std::string output;
  ASSERT_EQ(run_command(tool + "rtstruct " + series + " " + mask_path() + " " + path, &output), 0) << output;
  const Image mask = mask_on_series(dicom_volume_source(series));
  const Image labels = read_label_map(path, series, mask.geometry());
  std::int64_t mask_voxels = 0, agreeing = 0;
  for (const LabelSegment& segment : labels.metadata().segments) {
    const int value = std::stoi(segment.name.substr(6));
    for (std::int64_t i = 0; i < mask.element_count(); ++i) {
      if (mask.value_at(i) != value) continue;
      ++mask_voxels;
      agreeing += labels.value_at(i) == segment.label_value;
    }
  }
  // Contours through the midpoints between inside and outside voxels cut the corners of the
  // staircase, so a voxel here and there on the boundary falls out; over every organ, nearly all
  // voxels come back.
  EXPECT_GE(static_cast<double>(agreeing) / static_cast<double>(mask_voxels), 0.98);
}

TEST(RtStruct, NestedContoursAreHolesByTheEvenOddRule) {
  Geometry grid;
  grid.size_xyz = {12, 12, 3};
  grid.spacing_xyz = {1.0, 1.0, 2.0};
  RtStruct structure_set;
  structure_set.sop_instance_uid = "1.2.3";
  RtStructRoi ring;
  ring.number = 7;
  ring.name = "ring";
  auto square = [](double low, double high, double z) {
    return std::vector<Vec3>{{low, low, z}, {high, low, z}, {high, high, z}, {low, high, z}};
  };
  ring.contours = {square(1.5, 9.5, 2.0), square(3.5, 7.5, 2.0)};  // on slice 1 (z = 2 mm)
  structure_set.rois = {ring};
  const Image labels = rasterize_rtstruct(structure_set, {1}, grid, "ring.dcm");
  auto at = [&](int x, int y, int z) { return labels.value_at(labels.offset(0, z, y, x)); };
  EXPECT_EQ(at(2, 2, 1), 1);  // between the two squares
  EXPECT_EQ(at(5, 5, 1), 0);  // inside the inner one: a hole
  EXPECT_EQ(at(10, 10, 1), 0);
  EXPECT_EQ(at(2, 2, 0), 0);  // other slices untouched
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) count += labels.value_at(i) == 1;
  EXPECT_EQ(count, 8 * 8 - 4 * 4);
}

TEST(RtStruct, RoisMapToClassesByNameAndAMissingClassNamesTheFileAndItsRois) {
  GRAFT_REQUIRE_SERIES(series);
  const DicomVolumeSource source = dicom_volume_source(series);
  Image mask = mask_on_series(source);
  const std::set<int> values = label_values(mask);
  const int first = *values.begin(), second = *std::next(values.begin());
  std::vector<std::string> names(static_cast<std::size_t>(second));
  names[first - 1] = "Spleen";
  names[second - 1] = "kidney_right";
  mask.metadata().segments = named_segments(mask, names);
  const std::string path = graft::testing::temp_dir() + "/named.rtstruct.dcm";
  write_rtstruct(mask, source, path, RtStructWriteOptions{});

  // Classes in another order, spelt another way: the names decide, not the ROI numbers.
  const Image labels = read_label_map(path, series, mask.geometry(), {"Kidney Right", "spleen"});
  EXPECT_EQ(label_values(labels), (std::set<int>{1, 2}));
  EXPECT_EQ(dice(labels, 1, mask, second), 1.0);
  EXPECT_EQ(dice(labels, 2, mask, first), 1.0);

  const std::string message =
      graft::testing::error_message([&] { read_label_map(path, series, mask.geometry(), {"liver"}); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("SOP Instance UID"), std::string::npos) << message;
  EXPECT_NE(message.find("no ROI is named \"liver\""), std::string::npos) << message;
  EXPECT_NE(message.find("\"Spleen\""), std::string::npos) << message;
}

TEST(RtStruct, ContoursOfAnotherSeriesAreRefusedNamingTheSeries) {
  GRAFT_REQUIRE_SERIES(series);
  const DicomVolumeSource source = dicom_volume_source(series);
  const Image mask = mask_on_series(source);
  const std::string folder = graft::testing::temp_dir();
  write_rtstruct(mask, source, folder + "/organs.rtstruct.dcm", RtStructWriteOptions{});
  // The same pixels under another series UID: the structure set does not reference it.
  std::string output;
  ASSERT_EQ(run_command("cp -r " + series + " " + folder + "/other && dcmodify -nb -q -m "
                        "'(0020,000e)=1.2.826.0.1.3680043.10.1331.99' " + folder + "/other/*",
                        &output),
            0)
      << output;
  const std::string message = graft::testing::error_message(
      [&] { read_label_map(folder + "/organs.rtstruct.dcm", folder + "/other", mask.geometry()); });
  EXPECT_NE(message.find("1.2.826.0.1.3680043.10.1331.99"), std::string::npos) << message;
  EXPECT_NE(message.find(source.series_instance_uid), std::string::npos) << message;
  EXPECT_NE(message.find("SOP Instance UID"), std::string::npos) << message;
}

}  // namespace
}  // namespace graft::io
