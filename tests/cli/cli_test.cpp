// Runs the built graft executable exactly as a user would, and checks exit codes, the one-line
// error contract, and round trips through files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace {

using graft::testing::run_command;

struct Result {
  int exit_code;
  std::string output;
};

Result graft(const std::string& arguments, const std::string& prefix = "") {
  Result result;
  result.exit_code = run_command(prefix + graft::testing::graft_executable() + " " + arguments, &result.output);
  return result;
}

std::size_t line_count(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(Cli, EverySubcommandHasHelp) {
  const std::vector<std::string> commands = {
      "info",    "convert", "stack",          "plan",  "preprocess",      "backbones",   "demo",      "train",
      "check",   "predict", "evaluate",       "embed", "slide-features",  "bench", "bench load", "bench embed",
      "bench train-step", "import", "import nnunet", "rank", "merge-adapter"};
  for (const std::string& command : commands) {
    const Result result = graft(command + " --help");
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_NE(result.output.find("Usage"), std::string::npos) << command;
  }
  // Every subcommand graft lists is among those checked.
  for (const std::string& parent : {std::string(""), std::string("bench "), std::string("import ")}) {
    const Result listing = graft(parent + "--help");
    // CLI11 heads the list "Subcommands:" (or "SUBCOMMANDS:" in other versions).
    std::string lowered = listing.output;
    std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::size_t heading = lowered.find("subcommands:");
    ASSERT_NE(heading, std::string::npos) << listing.output;
    const std::string listed = listing.output.substr(heading);
    std::istringstream lines(listed);
    std::string line;
    std::getline(lines, line);
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string name;
      if (!(words >> name)) continue;
      EXPECT_NE(std::find(commands.begin(), commands.end(), parent + name), commands.end()) << parent + name;
    }
  }
}

TEST(Cli, BadUsageExitsTwoWithOneLine) {
  for (const char* arguments : {"", "frobnicate", "info", "convert only_one.nii",
                                "plan --backbone no-such-net x.nii"}) {
    const Result result = graft(arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments << ": " << result.output;
    EXPECT_EQ(line_count(result.output), 1u) << arguments << ": " << result.output;
  }
}

// graft starts without LibTorch (format commands answer in milliseconds) and hands the model
// commands to graft-ml beside it; without graft-ml those fail with one line that names it.
TEST(Cli, FormatCommandsRunWithoutLibTorchAndModelCommandsInGraftMl) {
  std::string libraries;
  ASSERT_EQ(run_command("ldd " + graft::testing::graft_executable(), &libraries), 0) << libraries;
  EXPECT_EQ(libraries.find("libtorch"), std::string::npos) << libraries;
  EXPECT_EQ(libraries.find("libc10"), std::string::npos) << libraries;

  const std::string alone = graft::testing::temp_dir() + "/graft";
  std::filesystem::copy_file(graft::testing::graft_executable(), alone);
  std::filesystem::permissions(alone, std::filesystem::perms::owner_all);
  Result result;
  result.exit_code = run_command(alone + " demo --quick", &result.output);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_EQ(line_count(result.output), 1u) << result.output;
  EXPECT_NE(result.output.find("graft-ml"), std::string::npos) << result.output;
  EXPECT_EQ(run_command(alone + " info --help"), 0);
  // Contracts are data: listing them, planning and checking a dataset need no LibTorch.
  std::string listed;
  EXPECT_EQ(run_command(alone + " backbones", &listed), 0) << listed;
  EXPECT_NE(listed.find("med3d-resnet10"), std::string::npos) << listed;
  graft::io::Geometry grid;
  grid.size_xyz = {8, 8, 4};
  const std::string small = std::filesystem::path(alone).parent_path().string() + "/small.nii.gz";
  graft::io::write(graft::io::Image(graft::io::DType::kI16, 1, grid), small);
  std::string plan;
  EXPECT_EQ(run_command(alone + " plan --backbone test-ct-1mm " + small, &plan), 0) << plan;
  EXPECT_NE(plan.find("window"), std::string::npos) << plan;
}

// GDAL, HDF5, OpenSlide and ITK come with ~180 shared libraries between them; they are modules
// that load only for their own formats, so a NIfTI command starts without them.
TEST(Cli, GdalHdf5OpenSlideAndItkLoadOnlyForFilesOfTheirFormats) {
  const std::string folder = graft::testing::temp_dir();
  graft::io::Geometry grid;
  grid.size_xyz = {4, 3, 1};
  const graft::io::Image image(graft::io::DType::kI16, 1, grid);
  for (const char* name : {"/a.nii.gz", "/a.tif", "/a.h5", "/a.nrrd"}) graft::io::write(image, folder + name);
  // The dynamic loader lists every library it opens ("file=libgdal.so.32 [0];  needed by ...").
  auto libraries_loaded_by = [&](const std::string& name) {
    const Result result = graft("info " + folder + name, "LD_DEBUG=files ");
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return result.output;
  };
  const std::string nifti = libraries_loaded_by("/a.nii.gz");
  for (const char* library : {"libgdal", "libhdf5", "libopenslide", "libITKCommon", "libgraft_io_"}) {
    EXPECT_EQ(nifti.find(library), std::string::npos) << library;
  }
  const std::string raster = libraries_loaded_by("/a.tif");
  EXPECT_NE(raster.find("libgraft_io_gdal.so"), std::string::npos);
  EXPECT_NE(raster.find("libgdal"), std::string::npos);
  const std::string hdf5 = libraries_loaded_by("/a.h5");
  EXPECT_NE(hdf5.find("libgraft_io_hdf5.so"), std::string::npos);
  EXPECT_EQ(hdf5.find("libgdal"), std::string::npos);
  const std::string nrrd = libraries_loaded_by("/a.nrrd");
  EXPECT_NE(nrrd.find("libgraft_io_itk.so"), std::string::npos);
  EXPECT_NE(nrrd.find("libITKCommon"), std::string::npos);
  EXPECT_EQ(nrrd.find("libgdal"), std::string::npos);
}

// An installation that lost a module says which file needed it and which module is missing.
TEST(Cli, AMissingFormatModuleIsAnErrorNamingTheFileAndTheModule) {
  const std::string folder = graft::testing::temp_dir();
  const std::filesystem::path io_library =
      std::filesystem::path(graft::testing::graft_executable()).parent_path().parent_path() / "io" / "libgraft_io.so";
  ASSERT_TRUE(std::filesystem::exists(io_library)) << io_library;
  // libgraft_io alone in a folder the loader searches first (LD_LIBRARY_PATH precedes RUNPATH),
  // so it looks for its modules there.
  std::filesystem::copy_file(io_library, folder + "/libgraft_io.so");
  graft::io::Geometry grid;
  grid.size_xyz = {4, 3, 1};
  graft::io::write(graft::io::Image(graft::io::DType::kU8, 1, grid), folder + "/a.tif");
  const Result nifti_still_works = graft("info --help", "LD_LIBRARY_PATH=" + folder + " ");
  EXPECT_EQ(nifti_still_works.exit_code, 0) << nifti_still_works.output;
  const Result result = graft("info " + folder + "/a.tif", "LD_LIBRARY_PATH=" + folder + " ");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_EQ(line_count(result.output), 1u) << result.output;
  EXPECT_NE(result.output.find(folder + "/a.tif: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(folder + "/libgraft_io_gdal.so"), std::string::npos) << result.output;
}

TEST(Cli, InfoJsonHasTheSameKeysForEveryFormat) {
  const std::string folder = graft::testing::temp_dir();
  graft::io::Geometry g;
  g.size_xyz = {4, 3, 2};
  graft::io::Image image(graft::io::DType::kI16, 1, g);
  std::vector<std::string> keys_seen;
  for (const char* name : {"/a.nii.gz", "/a.nrrd", "/a.npy"}) {
    graft::io::write(image, folder + name);
    const Result result = graft("info --json " + folder + name);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto json = nlohmann::json::parse(result.output);
    std::string keys;
    for (const auto& item : json.items()) keys += item.key() + ",";
    keys_seen.push_back(keys);
    for (const char* key : {"format", "dtype", "size", "channels", "spacing", "origin", "direction",
                            "frame", "crs_wkt", "geotransform", "nodata", "band_names", "modality"}) {
      EXPECT_TRUE(json.contains(key)) << key;
    }
    EXPECT_EQ(json["direction"].size(), 9u);
    EXPECT_EQ(json["size"], nlohmann::json({4, 3, 2}));
    EXPECT_EQ(json["dtype"], "i16");
  }
  EXPECT_EQ(keys_seen[0], keys_seen[1]);
  EXPECT_EQ(keys_seen[0], keys_seen[2]);
  // A GeoTIFF is one plane; its info, read from the header alone, has every key and "overviews".
  g.size_xyz = {4, 3, 1};
  graft::io::write(graft::io::Image(graft::io::DType::kI16, 2, g), folder + "/a.tif");
  const Result tif = graft("info --json " + folder + "/a.tif");
  ASSERT_EQ(tif.exit_code, 0) << tif.output;
  const auto json = nlohmann::json::parse(tif.output);
  const auto nrrd = nlohmann::json::parse(graft("info --json " + folder + "/a.nrrd").output);
  for (const auto& item : nrrd.items()) {
    EXPECT_TRUE(json.contains(item.key())) << item.key();
  }
  EXPECT_EQ(json["size"], nlohmann::json({4, 3, 1}));
  EXPECT_EQ(json["channels"], 2);
  EXPECT_TRUE(json.contains("overviews"));
}

// Sentinel-2 bands at 10, 20 and 60 m stack into one 10 m GeoTIFF, here as a COG (too small for
// overviews: GDAL makes none under one 512-pixel block).
TEST(Cli, StackWritesOneGeoTiffFromBandFiles) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string patch = graft::testing::shared_data_dir() +
                            "/geotiff/bigearthnet/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48/"
                            "S2A_MSIL2A_20170613T101031_87_48_";
  const std::string out = graft::testing::temp_dir() + "/stack.tif";
  const Result result = graft("stack " + out + " " + patch + "B04.tif " + patch + "B03.tif " + patch + "B02.tif " +
                              patch + "B05.tif " + patch + "B01.tif --cog --compress LZW");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto json = nlohmann::json::parse(graft("info --json " + out).output);
  EXPECT_EQ(json["size"], nlohmann::json({120, 120, 1}));
  EXPECT_EQ(json["band_names"], nlohmann::json({"B04", "B03", "B02", "B05", "B01"}));
  // NIfTI has no place for a map CRS: converting a map raster to it is refused in one line.
  const Result nifti = graft("convert " + out + " " + out.substr(0, out.size() - 4) + ".nii.gz");
  EXPECT_EQ(nifti.exit_code, 1) << nifti.output;
  EXPECT_EQ(line_count(nifti.output), 1u) << nifti.output;
  EXPECT_NE(nifti.output.find("this image is in a map CRS"), std::string::npos) << nifti.output;
  const Result wrong = graft("stack " + out + " " + patch + "labels_metadata.json");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_EQ(line_count(wrong.output), 1u) << wrong.output;
}

// The acceptance check: graft convert round trips each NIfTI with the same world affine and
// voxels as nibabel reads them.
void expect_convert_round_trip(const std::vector<std::string>& inputs) {
  const std::string folder = graft::testing::temp_dir();
  std::vector<std::string> outputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    outputs.push_back(folder + "/out" + std::to_string(i) + ".nii.gz");
    const Result result = graft("convert " + inputs[i] + " " + outputs.back());
    ASSERT_EQ(result.exit_code, 0) << inputs[i] << ": " << result.output;
  }
  const auto before = graft::testing::nibabel_reference(inputs);
  const auto after = graft::testing::nibabel_reference(outputs);
  if (before.empty()) GTEST_SKIP() << "Debian python3-nibabel is not installed";
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE(inputs[i]);
    // A file with no stored transform gets ITK's identity grid on read (see io/nifti_reader.h),
    // which graft then writes explicitly; nibabel's Analyze fallback cannot match that.
    if (before[i]["qform_code"] != 0 || before[i]["sform_code"] != 0) {
      const auto a = before[i]["affine_lps"].get<std::vector<std::vector<double>>>();
      const auto b = after[i]["affine_lps"].get<std::vector<std::vector<double>>>();
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) EXPECT_NEAR(a[r][c], b[r][c], 1e-4);
    }
    EXPECT_EQ(after[i]["nan_count"], before[i]["nan_count"]);
    const double checksum = before[i]["checksum_weighted"].get<double>();
    EXPECT_NEAR(after[i]["checksum_weighted"].get<double>(), checksum, 1e-6 * std::max(1.0, std::abs(checksum)));
    EXPECT_NEAR(after[i]["sum"].get<double>(), before[i]["sum"].get<double>(),
                1e-6 * std::max(1.0, std::abs(before[i]["sum"].get<double>())));
  }
}

// A Sentinel-2 contract on a real BigEarthNet stack: the Plan takes each band by name, resizes the
// 120 px patch to the weights' 224 px, and fills the L2A product's missing B10 only when asked.
TEST(Cli, PlanMapsRealBandsToTheContractAndFillsOnlyWhenAsked) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string patch = graft::testing::shared_data_dir() +
                            "/geotiff/bigearthnet/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48/"
                            "S2A_MSIL2A_20170613T101031_87_48_";
  std::string bands;
  for (const char* band : {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A"}) {
    bands += " " + patch + band + ".tif";
  }
  ASSERT_EQ(graft("stack " + folder + "/patch.tif" + bands).exit_code, 0);
  std::ofstream(folder + "/s2.json") << R"({"name": "s2-test", "spatial_dims": 2,
    "channels": ["B1","B2","B3","B4","B5","B6","B7","B8","B8A","B9","B10","B11","B12"],
    "resize": "size", "target_size_xyz": [224, 224, 1],
    "intensity": [{"kind": "scale_offset", "scale": 0.0001, "offset": 0}]})";
  const Result refused = graft("plan --contract " + folder + "/s2.json " + folder + "/patch.tif");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("lacks band(s) B10"), std::string::npos) << refused.output;
  const Result filled =
      graft("plan --json --fill-missing-bands --contract " + folder + "/s2.json " + folder + "/patch.tif");
  ASSERT_EQ(filled.exit_code, 0) << filled.output;
  const auto plan = nlohmann::json::parse(filled.output);
  EXPECT_EQ(plan["channel_order"], nlohmann::json({0, 1, 2, 3, 4, 5, 6, 7, 11, 8, -1, 9, 10}));
  EXPECT_EQ(plan["output_geometry"]["size"], nlohmann::json({224, 224, 1}));
  // The user's names win over the file's: calling the first three bands B4, B3, B2 makes them RGB.
  std::ofstream(folder + "/rgb.json") << R"({"name": "rgb", "spatial_dims": 2, "channels": ["B2","B3","B4"]})";
  const Result renamed = graft("plan --json --bands B4,B3,B2,x4,x5,x6,x7,x8,x9,x10,x11,x12 --contract " + folder +
                               "/rgb.json " + folder + "/patch.tif");
  ASSERT_EQ(renamed.exit_code, 0) << renamed.output;
  EXPECT_EQ(nlohmann::json::parse(renamed.output)["channel_order"], nlohmann::json({2, 1, 0}));
}

TEST(Cli, ConvertRoundTripsSharedNiftiFilesLikeNibabel) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::shared_data_dir() + "/nifti/";
  expect_convert_round_trip({folder + "example_ct_sm.nii.gz", folder + "example_seg.nii.gz",
                             folder + "example_mr_sm.nii.gz", folder + "example_seg_mr.nii.gz"});
}

TEST(Cli, ConvertRoundTripsNibabelsNiftiFilesLikeNibabel) {
  const std::string folder = graft::testing::nibabel_data_dir();
  if (folder.empty()) GTEST_SKIP() << "nibabel's test data is absent (Debian python3-nibabel)";
  std::vector<std::string> files;
  for (const char* name : {"anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz",
                           "functional.nii", "standard.nii.gz", "reoriented_anat_moved.nii",
                           "resampled_anat_moved.nii", "row_major.dconn.nii"}) {
    files.push_back(folder + "/" + name);
  }
  expect_convert_round_trip(files);
}

TEST(Cli, ConvertKeepsTheVoxelTypeUnlessAsked) {
  const std::string folder = graft::testing::temp_dir();
  graft::io::Geometry g;
  g.size_xyz = {4, 3, 2};
  graft::io::write(graft::io::Image(graft::io::DType::kU16, 1, g), folder + "/in.nrrd");
  ASSERT_EQ(graft("convert " + folder + "/in.nrrd " + folder + "/same.nii").exit_code, 0);
  ASSERT_EQ(graft("convert --dtype f32 " + folder + "/in.nrrd " + folder + "/float.nii").exit_code, 0);
  EXPECT_EQ(graft::io::read(folder + "/same.nii").dtype(), graft::io::DType::kU16);
  EXPECT_EQ(graft::io::read(folder + "/float.nii").dtype(), graft::io::DType::kF32);
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Empty, truncated, random-byte and absurd-header files: exit 1, one line naming the file, and
// all of it within a 1 GiB address-space limit.
TEST(Cli, BadFilesExitOneWithOneLineUnderOneGibibyte) {
  const std::string folder = graft::testing::temp_dir();
  write_file(folder + "/empty.nii.gz", "");
  std::mt19937 random(5);
  std::string noise(10000, '\0');
  for (char& ch : noise) ch = static_cast<char>(random());
  write_file(folder + "/random.nii", noise);
  write_file(folder + "/huge.nrrd", "NRRD0004\ntype: float\ndimension: 3\nsizes: 32000 32000 32000\nencoding: raw\n\n");
  graft::io::Geometry g;
  g.size_xyz = {64, 64, 32};
  graft::io::write(graft::io::Image(graft::io::DType::kF32, 1, g), folder + "/whole.nii");
  std::ifstream in(folder + "/whole.nii", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(folder + "/truncated.nii", bytes.substr(0, bytes.size() / 2));
  std::string huge_header = bytes.substr(0, 352);
  const std::int16_t dims[4] = {3, 32000, 32000, 32000};
  huge_header.replace(40, sizeof(dims), reinterpret_cast<const char*>(dims), sizeof(dims));
  write_file(folder + "/absurd.nii", huge_header);

  for (const char* name : {"empty.nii.gz", "random.nii", "huge.nrrd", "truncated.nii", "absurd.nii"}) {
    for (const char* command : {"info ", "convert "}) {
      const std::string path = folder + "/" + name;
      const std::string arguments = command + path + (std::string(command) == "convert " ? " " + folder + "/o.nii" : "");
      const Result result = graft(arguments, "ulimit -v 1048576; ");
      EXPECT_EQ(result.exit_code, 1) << arguments << ": " << result.output;
      EXPECT_EQ(line_count(result.output), 1u) << arguments << ": " << result.output;
      EXPECT_NE(result.output.find(path), std::string::npos) << result.output;
    }
  }
}

TEST(Cli, PreprocessWritesTheImageOnThePlansGridAndThePlanJson) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string data = graft::testing::shared_data_dir() + "/nifti/";
  const Result result = graft("preprocess --backbone test-ct-1mm " + data + "example_ct_sm.nii.gz " +
                              folder + "/ct.nii.gz --plan-out " + folder + "/plan.json --labels " +
                              data + "example_seg.nii.gz --labels-out " + folder + "/seg.nii.gz");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const graft::io::Image image = graft::io::read(folder + "/ct.nii.gz");
  const graft::io::Image labels = graft::io::read(folder + "/seg.nii.gz");
  // 3 mm -> 1 mm: 122 x 101 x 30 becomes 366 x 303 x 90, in RAS.
  EXPECT_EQ(image.geometry().size_xyz, (std::array<std::int64_t, 3>{366, 303, 90}));
  EXPECT_EQ(graft::io::orientation_code(image.geometry().direction), "RAS");
  EXPECT_TRUE(labels.geometry().same_grid(image.geometry(), 1e-4));
  EXPECT_EQ(labels.dtype(), graft::io::DType::kU8);
  std::ifstream plan(folder + "/plan.json");
  const auto json = nlohmann::json::parse(plan);
  EXPECT_EQ(json["contract"], "test-ct-1mm");
  const Result shown = graft("plan --backbone test-ct-1mm " + data + "example_ct_sm.nii.gz");
  EXPECT_NE(shown.output.find("122 x 101 x 30 -> 366 x 303 x 90"), std::string::npos) << shown.output;
}

// graft check lists each case with its grid and says what is wrong, naming the file: here a
// label map written on a grid with another spacing.
TEST(Cli, CheckNamesTheCaseWhoseLabelLiesOnAnotherGrid) {
  const std::string folder = graft::testing::temp_dir();
  graft::io::Geometry grid;
  grid.size_xyz = {8, 8, 4};
  grid.spacing_xyz = {1.0, 1.0, 2.0};
  graft::io::write(graft::io::Image(graft::io::DType::kI16, 1, grid), folder + "/a.nii.gz");
  graft::io::write(graft::io::Image(graft::io::DType::kU8, 1, grid), folder + "/a_seg.nii.gz");
  graft::io::write(graft::io::Image(graft::io::DType::kI16, 1, grid), folder + "/b.nii.gz");
  grid.spacing_xyz = {1.0, 1.0, 3.0};
  graft::io::write(graft::io::Image(graft::io::DType::kU8, 1, grid), folder + "/b_seg.nii.gz");
  std::ofstream(folder + "/cases.csv") << "image,label\na.nii.gz,a_seg.nii.gz\nb.nii.gz,b_seg.nii.gz\n";
  const Result result = graft("check " + folder + "/cases.csv");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  std::istringstream lines(result.output);
  std::string a, b, summary;
  std::getline(lines, a);
  std::getline(lines, b);
  std::getline(lines, summary);
  EXPECT_NE(a.find("8 x 8 x 4 at 1 x 1 x 2 mm\tok"), std::string::npos) << a;
  EXPECT_NE(b.find("b_seg.nii.gz: not on the grid of "), std::string::npos) << b;
  EXPECT_NE(b.find("/b.nii.gz"), std::string::npos) << b;
  EXPECT_NE(b.find("spacing"), std::string::npos) << b;
  EXPECT_EQ(summary, "check: 2 cases, 1 with problems");
}

TEST(Cli, BackbonesListsContractsAsJson) {
  const Result result = graft("backbones --json");
  ASSERT_EQ(result.exit_code, 0);
  const auto json = nlohmann::json::parse(result.output);
  ASSERT_FALSE(json.empty());
  EXPECT_TRUE(json[0]["contract"].contains("target_spacing_mm"));
}

}  // namespace
