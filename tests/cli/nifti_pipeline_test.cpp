// graft's main job through its command line on NIfTI alone: the one path every build has,
// including the compute-only build (GRAFT_COMPUTE_ONLY) that leaves out ITK, DCMTK, GDAL, HDF5,
// OpenSlide and Qt. In that build, formats it cannot read are refused with the library they need.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace {

using graft::testing::run_command;

int graft(const std::string& arguments, std::string* output) {
  return run_command(graft::testing::graft_executable() + " " + arguments, output);
}

// The quick demo writes synthetic CT cases as NIfTI, pretrains, fine-tunes and predicts; its model
// folder then predicts another case through graft predict, onto that case's own grid.
TEST(NiftiPipeline, DemoTrainsAndPredictWritesNiftiOnTheInputGrid) {
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(graft("demo --quick --output " + folder + "/demo", &output), 0) << output;
  EXPECT_NE(output.find("demo: validation dice"), std::string::npos) << output;
  const std::string scan = folder + "/demo/data/case300_ct.nii.gz";
  ASSERT_TRUE(graft::testing::file_exists(scan)) << output;
  ASSERT_EQ(graft("predict --model " + folder + "/demo/finetuned " + scan + " --output " + folder +
                      "/case300_pred.nii.gz",
                  &output),
            0)
      << output;
  const graft::io::Image input = graft::io::read(scan);
  const graft::io::Image labels = graft::io::read(folder + "/case300_pred.nii.gz");
  EXPECT_TRUE(labels.geometry().same_grid(input.geometry(), 1e-4))
      << labels.geometry().describe_difference(input.geometry(), 1e-4);
  EXPECT_EQ(labels.channels(), 1);
  std::filesystem::remove_all(folder);
}

#ifdef GRAFT_COMPUTE_ONLY
// A TIFF, a DICOM file, an HDF5 file and a NRRD header: each is recognised by its bytes and
// refused with its name, the library it needs and the build option that left it out.
TEST(NiftiPipeline, ComputeOnlyBuildRefusesOtherFormatsNamingTheFileAndLibrary) {
  const std::string folder = graft::testing::temp_dir();
  const std::string dicom_preamble(128, '\0');
  const struct {
    std::string name, bytes, library;
  } inputs[] = {{"scene.tif", std::string("II*\0", 4) + std::string(64, '\0'), "GDAL"},
                {"slice.dcm", dicom_preamble + "DICM" + std::string(64, '\0'), "DCMTK"},
                {"cube.h5", std::string("\x89HDF\r\n\x1a\n", 8) + std::string(64, '\0'), "HDF5"},
                {"head.nrrd", "NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\n" +
                                  std::string(16, '\0'),
                 "ITK"}};
  for (const auto& input : inputs) {
    const std::string path = folder + "/" + input.name;
    std::ofstream(path, std::ios::binary) << input.bytes;
    std::string output;
    EXPECT_EQ(graft("info " + path, &output), 1) << output;
    EXPECT_NE(output.find(path), std::string::npos) << output;
    EXPECT_NE(output.find(input.library), std::string::npos) << output;
    EXPECT_NE(output.find("GRAFT_COMPUTE_ONLY"), std::string::npos) << output;
  }
  std::filesystem::remove_all(folder);
}
#endif

}  // namespace
