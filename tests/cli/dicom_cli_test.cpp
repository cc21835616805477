// DICOM through the graft command: listing series, converting, and writing DICOM SEG results that
// DCMTK, pydicom and dicom3tools' validator accept.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace {

using graft::testing::run_command;

int graft(const std::string& arguments, std::string* output) {
  return run_command(graft::testing::graft_executable() + " " + arguments, output);
}

std::string dicom_data(const std::string& relative) {
  return graft::testing::shared_data_dir() + "/dicom/" + relative;
}

TEST(DicomCli, InfoListsEverySeriesWithoutPatientFields) {
  GRAFT_REQUIRE_SHARED_DATA();
  std::string output;
  ASSERT_EQ(graft("info --json " + dicom_data(""), &output), 0) << output;
  const auto info = nlohmann::json::parse(output);
  ASSERT_EQ(info["series"].size(), 3u);
  std::map<std::string, std::int64_t> images;
  for (const auto& series : info["series"]) images[series["series_description"]] = series["images"];
  EXPECT_EQ(images["CT Body 3.0"], 20);
  EXPECT_EQ(images["3D Ax T1 MP-RAGE_R22"], 130);
  ASSERT_EQ(graft("info " + dicom_data(""), &output), 0) << output;
  // The transfer-syntax files name their patient stc_test, ID crlab, born 19800707.
  for (const char* field : {"stc_test", "crlab", "19800707"}) EXPECT_EQ(output.find(field), std::string::npos);
  EXPECT_NE(output.find("MP-RAGE"), std::string::npos) << output;
}

TEST(DicomCli, ConvertPicksASeriesBySelectorAndRefusesAmbiguity) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  EXPECT_EQ(graft("convert " + dicom_data("") + " " + folder + "/all.nii.gz", &output), 1);
  EXPECT_NE(output.find("3 series"), std::string::npos) << output;
  ASSERT_EQ(graft("convert '" + dicom_data("") + "#3D Ax T1 MP-RAGE_R22' " + folder + "/mprage.nrrd", &output), 0)
      << output;
  EXPECT_EQ(graft::io::read(folder + "/mprage.nrrd").geometry().size_xyz[2], 130);
}

// A real organ mask (TotalSegmentator, on dcm2niix's grid) written as a DICOM SEG of the CT
// series it was drawn on, then read back by graft, DCMTK's dcmseg (inside read_dicom_seg),
// pydicom and dicom3tools' dciodvfy.
TEST(DicomCli, TotalSegmentatorMaskBecomesAValidDicomSegOfItsCtSeries) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string series = graft::testing::dicom_series_with_uids(dicom_data("ct-j2k-series"));
  if (series.empty()) GTEST_SKIP() << "dcmodify (Debian dcmtk) is absent";
  const std::string mask_path = dicom_data("ct-j2k-series.Ref/totalsegmentator-mask.nii.gz");
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(graft("convert " + mask_path + " " + folder + "/organs.dcm --reference-dicom " + series +
                      " --segment-names liver,spleen",
                  &output),
            0)
      << output;
  const graft::io::DicomSegContents seg = graft::io::read_dicom_seg(folder + "/organs.dcm");
  EXPECT_EQ(seg.referenced_series_instance_uid, "1.2.826.0.1.3680043.10.1331.2");
  const graft::io::Image mask = graft::io::read(mask_path);
  std::map<std::int64_t, std::int64_t> mask_counts;
  for (std::int64_t i = 0; i < mask.element_count(); ++i) ++mask_counts[static_cast<std::int64_t>(mask.value_at(i))];
  mask_counts.erase(0);
  ASSERT_EQ(seg.segments.size(), mask_counts.size());
  EXPECT_EQ(seg.segments.front().label, "liver");  // names follow label values 1, 2, ...
  // Every voxel, compared in world space: each SEG voxel centre must hit the same label in the mask.
  const auto& g = seg.labels.geometry();
  std::int64_t mismatches = 0;
  for (std::int64_t z = 0; z < g.size_xyz[2]; ++z) {
    for (std::int64_t y = 0; y < g.size_xyz[1]; ++y) {
      for (std::int64_t x = 0; x < g.size_xyz[0]; ++x) {
        const auto index = mask.geometry().world_to_index(
            g.index_to_world({static_cast<double>(x), static_cast<double>(y), static_cast<double>(z)}));
        const auto mx = std::llround(index[0]), my = std::llround(index[1]), mz = std::llround(index[2]);
        ASSERT_NEAR(index[0], static_cast<double>(mx), 1e-2);
        const double expected = mask.value_at(mask.offset(0, mz, my, mx));
        if (seg.labels.value_at(seg.labels.offset(0, z, y, x)) != expected) ++mismatches;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);

  const std::string python = graft::testing::python_with("pydicom");
  if (!python.empty()) {
    ASSERT_EQ(run_command(python + " -c \"import pydicom; d = pydicom.dcmread('" + folder +
                              "/organs.dcm'); print(d.Modality, len(d.SegmentSequence), "
                              "d.ReferencedSeriesSequence[0].SeriesInstanceUID)\"",
                          &output),
              0)
        << output;
    EXPECT_NE(output.find("SEG " + std::to_string(mask_counts.size()) + " 1.2.826.0.1.3680043.10.1331.2"),
              std::string::npos)
        << output;
  }
  if (run_command("command -v dciodvfy >/dev/null") == 0) {
    run_command("dciodvfy " + folder + "/organs.dcm", &output);
    EXPECT_EQ(output.find("Error"), std::string::npos) << output;
  }
}

TEST(DicomCli, SegWithoutReferenceSeriesOrOffGridIsOneLineError) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  const std::string mask = dicom_data("ct-j2k-series.Ref/totalsegmentator-mask.nii.gz");
  EXPECT_EQ(graft("convert " + mask + " " + folder + "/x.dcm", &output), 2);
  EXPECT_NE(output.find("--reference-dicom"), std::string::npos) << output;
  EXPECT_EQ(graft("convert " + mask + " " + folder + "/x.dcm --reference-dicom " + dicom_data("mr-oblique-3d"), &output),
            1);
  EXPECT_NE(output.find("not on the grid of"), std::string::npos) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
}

// The CT series sheared as a 15 degree gantry tilt shears it: refused by default with the option
// to use, converted and described with --correct-tilt exactly as the library reads it, and the
// option refused for an input that is not DICOM rather than silently dropped.
TEST(DicomCli, CorrectTiltConvertsATiltedSeriesThatIsOtherwiseRefused) {
  GRAFT_REQUIRE_SHARED_DATA();
  if (run_command("command -v dcmodify >/dev/null") != 0) {
    if (std::getenv("CI") != nullptr) FAIL() << "CI is set and dcmodify is absent";
    GTEST_SKIP() << "dcmodify (Debian dcmtk) is absent";
  }
  const std::string folder = graft::testing::temp_dir();
  ASSERT_FALSE(graft::testing::tilted_dicom_series(dicom_data("ct-j2k-series"), 15.0, folder).empty());
  std::string output;
  EXPECT_EQ(graft("convert " + folder + "/series " + folder + "/refused.nii", &output), 1);
  EXPECT_NE(output.find("gantry tilt 15.000 degrees"), std::string::npos) << output;
  EXPECT_NE(output.find("--correct-tilt"), std::string::npos) << output;
  EXPECT_FALSE(graft::testing::file_exists(folder + "/refused.nii"));

  ASSERT_EQ(graft("convert --correct-tilt " + folder + "/series " + folder + "/corrected.nii.gz",
                  &output),
            0)
      << output;
  graft::io::DicomReadOptions options;
  options.correct_tilt = true;
  const graft::io::Image expected = graft::io::read_dicom(folder + "/series", "", options).image;
  const graft::io::Image written = graft::io::read(folder + "/corrected.nii.gz");
  ASSERT_TRUE(written.geometry().same_grid(expected.geometry(), 1e-3))
      << written.geometry().describe_difference(expected.geometry(), 1e-3);
  ASSERT_EQ(written.element_count(), expected.element_count());
  std::int64_t differing = 0;
  for (std::int64_t i = 0; i < expected.element_count(); ++i)
    differing += written.value_at(i) != expected.value_at(i);
  EXPECT_EQ(differing, 0);

  ASSERT_EQ(graft("info --json --correct-tilt '" + folder + "/series#CT Body 3.0'", &output), 0)
      << output;
  const auto info = nlohmann::json::parse(output);
  EXPECT_NEAR(info["gantry_tilt_corrected_degrees"].get<double>(), 15.0, 1e-3);
  EXPECT_EQ(info["size"][1], 523);

  EXPECT_EQ(graft("convert --correct-tilt " + folder + "/corrected.nii.gz " + folder + "/again.nii",
                  &output),
            2);
  EXPECT_NE(output.find("--correct-tilt is for DICOM series"), std::string::npos) << output;
}

// The round trip a PACS user makes: graft's SEG and RTSTRUCT of the TotalSegmentator mask read
// back through graft info and graft convert as label images with their names.
TEST(DicomCli, SegAndRtstructOfTheMaskReadBackThroughInfoAndConvert) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string series = graft::testing::dicom_series_with_uids(dicom_data("ct-j2k-series"));
  if (series.empty()) GTEST_SKIP() << "dcmodify (Debian dcmtk) is absent";
  const std::string mask = dicom_data("ct-j2k-series.Ref/totalsegmentator-mask.nii.gz");
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(graft("convert " + mask + " " + folder + "/organs.dcm --reference-dicom " + series +
                      " --segment-names spleen,kidney_right,kidney_left,gallbladder,liver",
                  &output),
            0)
      << output;
  // graft info on the SEG: a label image with its segments, not "BitsAllocated 1 is not supported".
  ASSERT_EQ(graft("info " + folder + "/organs.dcm", &output), 0) << output;
  EXPECT_NE(output.find("modality     SEG"), std::string::npos) << output;
  EXPECT_NE(output.find("  1  spleen\n"), std::string::npos) << output;
  EXPECT_NE(output.find("  5  liver\n"), std::string::npos) << output;  // the slab holds no value 2, 3 or 4
  ASSERT_EQ(graft("info --json " + folder + "/organs.dcm", &output), 0) << output;
  EXPECT_EQ(nlohmann::json::parse(output)["segments"][0]["name"], "spleen");

  // graft convert: a NIfTI with the same voxels as the mask, and a .seg.nrrd that keeps the names.
  ASSERT_EQ(graft("convert " + folder + "/organs.dcm " + folder + "/organs.nii.gz", &output), 0) << output;
  ASSERT_EQ(graft("convert " + folder + "/organs.dcm " + folder + "/organs.seg.nrrd", &output), 0) << output;
  const graft::io::Image source_mask = graft::io::read(mask);
  const graft::io::Image nifti = graft::io::read(folder + "/organs.nii.gz");
  const graft::io::Image slicer = graft::io::read(folder + "/organs.seg.nrrd");
  EXPECT_EQ(slicer.metadata().segments.at(1).name, "liver");
  std::int64_t differing = 0, labelled = 0;
  const auto& g = nifti.geometry();
  for (std::int64_t z = 0; z < g.size_xyz[2]; ++z) {
    for (std::int64_t y = 0; y < g.size_xyz[1]; ++y) {
      for (std::int64_t x = 0; x < g.size_xyz[0]; ++x) {
        const auto at = source_mask.geometry().world_to_index(
            g.index_to_world({static_cast<double>(x), static_cast<double>(y), static_cast<double>(z)}));
        const double expected =
            source_mask.value_at(source_mask.offset(0, std::llround(at[2]), std::llround(at[1]), std::llround(at[0])));
        const std::int64_t i = nifti.offset(0, z, y, x);
        differing += nifti.value_at(i) != expected || slicer.value_at(i) != expected;
        labelled += expected != 0;
      }
    }
  }
  EXPECT_GT(labelled, 0);
  EXPECT_EQ(differing, 0);

  // RTSTRUCT out: valid for dciodvfy, described by graft info, and back to the same label map.
  ASSERT_EQ(graft("convert " + mask + " " + folder + "/organs.rtstruct.dcm --reference-dicom " + series +
                      " --segment-names spleen,kidney_right,kidney_left,gallbladder,liver",
                  &output),
            0)
      << output;
  if (run_command("command -v dciodvfy >/dev/null") == 0) {
    run_command("dciodvfy " + folder + "/organs.rtstruct.dcm 2>&1", &output);
    EXPECT_EQ(output.find("Error"), std::string::npos) << output;
  }
  ASSERT_EQ(graft("info " + folder + "/organs.rtstruct.dcm", &output), 0) << output;
  EXPECT_NE(output.find("DICOM RTSTRUCT"), std::string::npos) << output;
  EXPECT_NE(output.find("1.2.826.0.1.3680043.10.1331.2"), std::string::npos) << output;
  EXPECT_NE(output.find("  1  spleen  ("), std::string::npos) << output;
  ASSERT_EQ(graft("convert " + folder + "/organs.rtstruct.dcm " + folder + "/again.dcm --reference-dicom " + series,
                  &output),
            0)
      << output;
  const graft::io::Image again = graft::io::read(folder + "/again.dcm");
  const graft::io::Image first = graft::io::read(folder + "/organs.dcm");
  ASSERT_EQ(again.element_count(), first.element_count());
  differing = 0;
  for (std::int64_t i = 0; i < again.element_count(); ++i) differing += again.value_at(i) != first.value_at(i);
  EXPECT_EQ(differing, 0);
  EXPECT_EQ(again.metadata().segments.at(0).name, "spleen");
  // An RTSTRUCT to NIfTI: drawn onto the series named, the same voxels as the SEG's.
  EXPECT_EQ(graft("convert " + folder + "/organs.rtstruct.dcm " + folder + "/contours.nii.gz", &output), 2) << output;
  EXPECT_NE(output.find("--reference-dicom"), std::string::npos) << output;
  ASSERT_EQ(graft("convert " + folder + "/organs.rtstruct.dcm " + folder + "/contours.nii.gz --reference-dicom " + series,
                  &output),
            0)
      << output;
  const graft::io::Image contours = graft::io::read(folder + "/contours.nii.gz");
  ASSERT_EQ(contours.element_count(), first.element_count());
  differing = 0;
  for (std::int64_t i = 0; i < contours.element_count(); ++i) differing += contours.value_at(i) != first.value_at(i);
  EXPECT_EQ(differing, 0);
}

}  // namespace
