// HDF5 against h5py (Debian's python3-h5py): every dataset's shape, type, attributes and values,
// on a sample the test writes with h5py, on the NetCDF-4 files in ../shared/data/hdf5 and on the
// TEM holograms Debian's python3-hyperspy ships; and graft's own HDF5 output read back by h5py.
#include "io/hdf5/hdf5_file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <filesystem>

#include "io/error.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> reference_files() {
  std::vector<std::string> files;
  const std::string shared = graft::testing::shared_data_dir() + "/hdf5";
  for (const char* name : {"f16_ssmis_20200102v7.nc", "ABoVE_TVPRM_bbox.nc4"}) {
    if (fs::exists(shared + "/" + name)) files.push_back(shared + "/" + name);
  }
  const std::string holograms = "/usr/lib/python3/dist-packages/hyperspy/misc/holography/example_signals";
  for (const char* name : {"00_ref_Vbp_130V_0V_bin2_crop.hdf5", "01_holo_Vbp_130V_0V_bin2_crop.hdf5"}) {
    if (fs::exists(std::string(holograms) + "/" + name)) files.push_back(std::string(holograms) + "/" + name);
  }
  return files;
}

// A value h5py could not give (references, compounds): null, or lists of nothing but nulls.
bool only_nulls(const nlohmann::json& value) {
  if (value.is_null()) return true;
  if (!value.is_array() || value.empty()) return false;
  return std::all_of(value.begin(), value.end(), [](const nlohmann::json& v) { return only_nulls(v); });
}

// Attribute values as h5py gives them, where graft keeps more: NaN is "nan" in both.
void expect_same_attributes(const nlohmann::json& ours, const nlohmann::json& theirs, const std::string& where) {
  for (const auto& item : theirs.items()) {
    SCOPED_TRACE(where + " attribute " + item.key());
    ASSERT_TRUE(ours.contains(item.key()));
    const auto& value = item.value();
    if (only_nulls(value)) continue;  // references and compounds (NetCDF's DIMENSION_LIST): listed, not compared
    const nlohmann::json& mine = ours[item.key()];
    if (item.value().is_number() && mine.is_number()) {
      EXPECT_NEAR(mine.get<double>(), item.value().get<double>(), 1e-12 * std::abs(item.value().get<double>()));
    } else if (item.value().is_array() && mine.is_array() && item.value().size() == mine.size()) {
      for (std::size_t i = 0; i < mine.size(); ++i) {
        if (mine[i].is_number() && item.value()[i].is_number()) {
          EXPECT_DOUBLE_EQ(mine[i].get<double>(), item.value()[i].get<double>());
        } else {
          EXPECT_EQ(mine[i], item.value()[i]);
        }
      }
    } else {
      EXPECT_EQ(mine, item.value());
    }
  }
  EXPECT_EQ(ours.size(), theirs.size()) << where;
}

void expect_same_as_h5py(const std::string& path, const nlohmann::json& reference) {
  SCOPED_TRACE(path);
  const Hdf5Contents contents = list_hdf5(path);
  expect_same_attributes(contents.root_attributes, reference["attributes"], "/");
  ASSERT_EQ(contents.datasets.size(), reference["datasets"].size());
  int images_read = 0;
  for (const auto& theirs : reference["datasets"]) {
    const std::string name = theirs["path"];
    const auto ours = std::find_if(contents.datasets.begin(), contents.datasets.end(),
                                   [&](const Hdf5DatasetInfo& d) { return d.path == name; });
    ASSERT_NE(ours, contents.datasets.end()) << name;
    EXPECT_EQ(ours->shape, theirs["shape"].get<std::vector<std::int64_t>>()) << name;
    EXPECT_EQ(ours->dtype, theirs["dtype"].get<std::string>()) << name;
    expect_same_attributes(ours->attributes, theirs["attributes"], name);
    if (!theirs.contains("sum") || ours->shape.empty() || ours->shape.size() > 4) continue;
    const Image image = read_hdf5(path, name);
    EXPECT_EQ(image.element_count(), [&] {
      std::int64_t n = 1;
      for (auto extent : ours->shape) n *= extent;
      return n;
    }());
    const double sum = theirs["sum"], weighted = theirs["weighted"];
    EXPECT_NEAR(graft::testing::voxel_sum(image), sum, 1e-9 * std::max(1.0, std::abs(sum))) << name;
    EXPECT_NEAR(graft::testing::weighted_checksum(image), weighted, 1e-9 * std::max(1.0, std::abs(weighted))) << name;
    ++images_read;
  }
  EXPECT_GT(images_read, 0);
}

TEST(Hdf5, ASampleWrittenByH5pyReadsTheSameInGraft) {
  if (graft::testing::python_with("h5py").empty()) GTEST_SKIP() << "Debian python3-h5py is not installed";
  const std::string path = graft::testing::temp_dir() + "/sample.h5";
  ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/h5py_reference.py --make " + path), 0);
  const auto reference = graft::testing::python_reference("h5py_reference.py", "h5py", {path});
  ASSERT_EQ(reference.size(), 1u);
  expect_same_as_h5py(path, reference[0]);

  // The 4D dataset is an image: channels first, spacing and origin from its attributes.
  const Image image = read_hdf5(path, "/scans/a/image");
  EXPECT_EQ(image.channels(), 2);
  EXPECT_EQ(image.geometry().size_xyz, (std::array<std::int64_t, 3>{5, 4, 3}));
  EXPECT_EQ(image.geometry().spacing_xyz, (Vec3{0.25, 0.5, 2.5}));
  EXPECT_EQ(image.geometry().origin_world, (Vec3{1.0, -5.0, 10.0}));
  EXPECT_EQ(image.metadata().units, "mm");
  EXPECT_EQ(image.dtype(), DType::kU16);
  // Several image-like datasets: io::read asks which, listing them.
  const std::string ambiguous = graft::testing::error_message([&] { read(path); });
  EXPECT_NE(ambiguous.find("--dataset"), std::string::npos) << ambiguous;
  EXPECT_NE(ambiguous.find("/scans/a/image"), std::string::npos) << ambiguous;
  const std::string missing = graft::testing::error_message([&] { read_hdf5(path, "/nope"); });
  EXPECT_NE(missing.find("/nope"), std::string::npos) << missing;
  const std::string strings = graft::testing::error_message([&] { read_hdf5(path, "/names"); });
  EXPECT_NE(strings.find("|S2"), std::string::npos) << strings;
  // Datasets by path; groups and missing levels are not datasets.
  EXPECT_TRUE(hdf5_has_dataset(path, "/scans/a/image"));
  EXPECT_TRUE(hdf5_has_dataset(path, "plane"));
  EXPECT_FALSE(hdf5_has_dataset(path, "/scans/a"));
  EXPECT_FALSE(hdf5_has_dataset(path, "/scans/b/image"));
  EXPECT_FALSE(hdf5_has_dataset(path, "/nope"));
}

TEST(Hdf5, AFileWithAUserBlockReadsLikeH5pyReadsIt) {
  ASSERT_FALSE(graft::testing::python_with("h5py").empty()) << "Debian python3-h5py writes the file";
  const std::string folder = graft::testing::temp_dir();
  const std::string path = folder + "/beamline.nxs";  // no .h5 extension: found by its signature
  ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/h5py_reference.py "
                                        "--make-userblock " + path), 0);
  ASSERT_GE(fs::file_size(path), 32768u);
  EXPECT_EQ(sniff_format(path), FileFormat::kHdf5);
  const auto reference = graft::testing::python_reference("h5py_reference.py", "h5py", {path});
  ASSERT_EQ(reference.size(), 1u);
  expect_same_as_h5py(path, reference[0]);

  std::string output;
  ASSERT_EQ(graft::testing::run_command(std::string(GRAFT_EXECUTABLE) + " info " + path + " 2>&1", &output), 0) << output;
  EXPECT_NE(output.find("/scans/a/image"), std::string::npos) << output;
  ASSERT_EQ(graft::testing::run_command(std::string(GRAFT_EXECUTABLE) + " convert " + path +
                                        " --dataset /scans/a/image " + folder + "/image.nii 2>&1", &output), 0)
      << output;
  const Image converted = read(folder + "/image.nii");
  const Image direct = read_hdf5(path, "/scans/a/image");
  ASSERT_EQ(converted.geometry().size_xyz, direct.geometry().size_xyz);
  ASSERT_EQ(converted.channels(), direct.channels());
  for (std::int64_t i = 0; i < direct.element_count(); ++i) ASSERT_EQ(converted.value_at(i), direct.value_at(i)) << i;
}

TEST(Hdf5, RealNetcdfAndHologramFilesReadLikeH5py) {
  if (graft::testing::python_with("h5py").empty()) GTEST_SKIP() << "Debian python3-h5py is not installed";
  const auto files = reference_files();
  if (files.empty()) GTEST_SKIP() << "neither ../shared/data/hdf5 nor python3-hyperspy's holograms are present";
  const auto reference = graft::testing::python_reference("h5py_reference.py", "h5py", files);
  ASSERT_EQ(reference.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) expect_same_as_h5py(files[i], reference[i]);
}

TEST(Hdf5, GraftsOutputIsChunkedCompressedAndRoundTrips) {
  Geometry geometry;
  geometry.size_xyz = {6, 5, 4};
  geometry.spacing_xyz = {0.5, 0.75, 2.0};
  geometry.origin_world = {-3.0, 4.0, 12.5};
  geometry.direction = {{{0, 1, 0}, {1, 0, 0}, {0, 0, -1}}};
  Image image(DType::kI16, 1, geometry);
  for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<std::int16_t>()[i] = static_cast<std::int16_t>(i * 37 - 2000);
  const std::string path = graft::testing::temp_dir() + "/out.h5";
  write(image, path);
  const Image back = read(path);
  EXPECT_TRUE(back.geometry().same_grid(geometry, 1e-12));
  EXPECT_EQ(back.dtype(), DType::kI16);
  EXPECT_EQ(std::memcmp(back.bytes(), image.bytes(), image.byte_count()), 0);
  const Hdf5Contents contents = list_hdf5(path);
  ASSERT_EQ(contents.datasets.size(), 1u);
  EXPECT_EQ(contents.datasets[0].path, "/image");
  EXPECT_EQ(contents.datasets[0].shape, (std::vector<std::int64_t>{4, 5, 6}));
  EXPECT_EQ(contents.datasets[0].chunks, (std::vector<std::int64_t>{1, 5, 6}));
  EXPECT_EQ(contents.datasets[0].compression, "gzip");
  if (graft::testing::python_with("h5py").empty()) return;
  const auto reference = graft::testing::python_reference("h5py_reference.py", "h5py", {path});
  ASSERT_EQ(reference.size(), 1u);
  EXPECT_EQ(reference[0]["datasets"][0]["attributes"]["spacing"], nlohmann::json({2.0, 0.75, 0.5}));
  EXPECT_DOUBLE_EQ(reference[0]["datasets"][0]["weighted"].get<double>(), graft::testing::weighted_checksum(image));
}

TEST(Hdf5, ACorruptFileIsOneLineNamingIt) {
  const std::string path = graft::testing::temp_dir() + "/broken.h5";
  {
    std::ofstream out(path, std::ios::binary);
    out << "\x89HDF\r\n\x1a\n" << std::string(100, 'x');
  }
  const std::string message = graft::testing::error_message([&] { read(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// Found by fuzzing: one damaged byte in a group's link heap or name index made HDF5 1.10's
// ordered walk free (or sort) table entries it never filled. Each damage is refused as one line
// naming the file, or listed, by graft info and in this process, never a crash.
TEST(Hdf5, DamagedDenseLinkStorageIsRefusedNamingTheFileAndNeverCrashes) {
  ASSERT_FALSE(graft::testing::python_with("h5py").empty()) << "Debian python3-h5py writes the files";
  const std::string folder = graft::testing::temp_dir();
  for (const std::string mode : {"dblock-free", "leaf", "link-version", "nrec"}) {
    SCOPED_TRACE(mode);
    const std::string path = folder + "/" + mode + ".h5";
    std::string output;
    ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/damaged_hdf5.py " + path +
                                              " --mode " + mode, &output), 0) << output;
    const int status = graft::testing::run_command(std::string(GRAFT_EXECUTABLE) + " info " + path, &output);
    // The record count raised by one leaves every real link readable: listed in full.
    const bool readable = mode == "nrec";
    EXPECT_EQ(status, readable ? 0 : 1) << output;
    if (!readable) {
      EXPECT_NE(output.find(path), std::string::npos) << output;
      EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
      const std::string message = graft::testing::error_message([&] { list_hdf5(path, Hdf5Walk::kInThisProcess); });
      EXPECT_NE(message.find(path), std::string::npos) << message;
    } else {
      EXPECT_EQ(list_hdf5(path, Hdf5Walk::kInThisProcess).datasets.size(), 12u);
      EXPECT_EQ(list_hdf5(path).datasets.size(), 12u);
    }
  }
}

TEST(Hdf5, DatasetsAreListedDepthFirstInNameOrderWhateverTheStorageOrder) {
  ASSERT_FALSE(graft::testing::python_with("h5py").empty()) << "Debian python3-h5py writes the file";
  const std::string path = graft::testing::temp_dir() + "/ordered.h5";
  // Creation order differs from name order, and the root group (12 links) is in dense storage,
  // whose native order follows the names' hashes.
  const std::string script =
      "import h5py, numpy as np, sys\n"
      "with h5py.File(sys.argv[1], 'w', libver='latest', track_order=True) as f:\n"
      "    for i in reversed(range(10)): f.create_dataset(f'v{i}', data=np.zeros(2))\n"
      "    f.create_dataset('a.b', data=np.zeros(2))\n"
      "    f.create_dataset('a/c', data=np.zeros(2))\n";
  std::string output;
  ASSERT_EQ(graft::testing::run_command("/usr/bin/python3 -c \"" + script + "\" " + path, &output), 0) << output;
  std::vector<std::string> listed;
  for (const auto& dataset : list_hdf5(path).datasets) listed.push_back(dataset.path);
  // Name order at each level: the group "a" and its members before "a.b", which a sort of whole
  // paths would put first.
  const std::vector<std::string> expected{"/a/c", "/a.b", "/v0", "/v1", "/v2", "/v3", "/v4",
                                          "/v5", "/v6", "/v7", "/v8", "/v9"};
  EXPECT_EQ(listed, expected);
}

}  // namespace
}  // namespace graft::io
