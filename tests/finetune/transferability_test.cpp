// LogME against a direct NumPy implementation of the paper's algorithm, and graft rank on real
// labelled volumes, from the command line as a user runs it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "finetune/transferability.h"
#include "io/numpy/npy.h"
#include "io/text.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

torch::Tensor read_float64(const std::string& path) {
  const io::NpyArray array = io::read_npy_array(path);
  EXPECT_EQ(array.dtype, io::DType::kF64) << path;
  return torch::from_blob(const_cast<std::uint8_t*>(array.bytes.data()), array.shape, torch::kFloat64).clone();
}

TEST(LogMe, EqualsADirectNumPyImplementationOfThePaperOnRandomFeatures) {
  const std::string folder = graft::testing::temp_dir();
  const auto cases = graft::testing::python_reference("logme_reference.py", "numpy", {folder});
  if (graft::testing::python_with("numpy").empty()) GTEST_SKIP() << "Debian python3-numpy is not installed";
  ASSERT_EQ(cases.size(), 4u);
  std::map<std::string, double> scores;
  for (const auto& reference : cases) {
    const torch::Tensor features = read_float64(reference["features"]);
    const torch::Tensor targets = read_float64(reference["targets"]);
    const double score = logme(features, targets);
    EXPECT_NEAR(score, reference["logme"].get<double>(), 1e-6) << reference["case"];
    scores[reference["case"]] = score;
  }
  // Features that carry the class explain the labels better than noise does.
  EXPECT_GT(scores["informative"], scores["noise"] + 0.5);
  // Labels as class indices are the one-hot targets.
  const torch::Tensor features = read_float64(folder + "/features_informative.npy");
  const torch::Tensor targets = read_float64(folder + "/targets_informative.npy");
  EXPECT_DOUBLE_EQ(logme_for_labels(features, targets.argmax(1), 3), logme(features, targets));
  fs::remove_all(folder);
}

TEST(LogMe, RefusesMismatchedShapesAndNonFiniteFeatures) {
  const std::string shapes = graft::testing::error_message([] { logme(torch::zeros({5, 3}), torch::zeros({4, 2})); });
  EXPECT_NE(shapes.find("same N"), std::string::npos) << shapes;
  torch::Tensor features = torch::randn({6, 3}, torch::kFloat64);
  features[2][1] = NAN;
  const std::string nan = graft::testing::error_message([&] { logme(features, torch::ones({6, 1})); });
  EXPECT_NE(nan.find("NaN"), std::string::npos) << nan;
}

// graft rank on the two real brain MRs and their tumour masks: a row per backbone, best first, the
// same number of feature voxels per class, and the stride-8 level of the Med3D ResNets.
TEST(Rank, ScoresBackbonesOnRealBrainTumoursFromTheCommandLine) {
  const std::string data = graft::testing::shared_data_dir() + "/nrrd/";
  if (!fs::exists(data + "brain1_image.nrrd")) GTEST_SKIP() << "shared data is absent";
  const std::string folder = graft::testing::temp_dir();
  std::ofstream(folder + "/cases.csv") << "image,label\n"
                                       << data << "brain1_image.nrrd," << data << "brain1_label.nrrd\n"
                                       << data << "brain2_image.nrrd," << data << "brain2_label.nrrd\n";
  std::string output;
  const std::string command = graft::testing::graft_executable() + " rank --manifest " + folder +
                              "/cases.csv --backbones med3d-resnet10,med3d-resnet18 --samples-per-class 100 "
                              "--set data.patch_size=[32,32,16] --set 'data.contract={\"resize\": \"spacing\", "
                              "\"target_spacing_mm\": [2.0, 2.0, 6.5]}' --csv " + folder + "/rank.csv";
  ASSERT_EQ(graft::testing::run_command(command, &output), 0) << output;
  EXPECT_NE(output.find("logme"), std::string::npos) << output;
  std::ifstream csv(folder + "/rank.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "rank,backbone,weights,logme,samples,dims,features,seconds");
  std::vector<double> scores;
  std::set<std::string> backbones;
  while (std::getline(csv, line)) {
    std::vector<std::string> fields;
    std::stringstream row(line);
    for (std::string field; std::getline(row, field, ',');) fields.push_back(field);
    ASSERT_EQ(fields.size(), 8u) << line;
    backbones.insert(fields[1]);
    scores.push_back(std::stod(fields[3]));
    EXPECT_EQ(fields[4], "200") << "100 voxels of background and 100 of tumour: " << line;
    EXPECT_EQ(fields[6], "layer4") << "Med3D's deepest stride-8 level (dilated): " << line;
    EXPECT_GT(std::stod(fields[7]), 0.0) << line;
  }
  EXPECT_EQ(backbones, (std::set<std::string>{"med3d-resnet10", "med3d-resnet18"}));
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_GE(scores[0], scores[1]) << "best first";
  fs::remove_all(folder);
}

}  // namespace
}  // namespace graft::finetune
