// graft import nnunet, run as a user runs it, on nnU-Net model folders that
// tests/tools/nnunet_reference.py writes with python3-torch from its own PlainConvUNet and
// ResidualEncoderUNet (dynamic_network_architectures' names, every key nnU-Net's trainer saves).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/image_file.h"
#include "io/numpy/npy.h"
#include "tests/support/nnunet_reference.h"
#include "tests/support/test_support.h"

namespace {

using graft::testing::run_command;

int graft(const std::string& arguments, std::string* output) {
  return run_command(graft::testing::graft_executable() + " " + arguments, output);
}

// Writes an nnU-Net results folder; "" when python3-torch is missing.
std::string nnunet_folder(const std::string& folder, const std::string& network, const std::string& options = "") {
  if (graft::testing::python_with("torch").empty()) return "";
  std::string output;
  const int status = graft::testing::run_nnunet_reference(folder + " " + network + " " + options, &output);
  EXPECT_EQ(status, 0) << output;
  return folder;
}

std::vector<float> npy_floats(const std::string& path, std::vector<std::int64_t>* shape) {
  const graft::io::NpyArray array = graft::io::read_npy_array(path);
  EXPECT_EQ(array.dtype, graft::io::DType::kF32) << path;
  *shape = array.shape;
  std::vector<float> values(array.bytes.size() / sizeof(float));
  std::memcpy(values.data(), array.bytes.data(), values.size() * sizeof(float));
  return values;
}

// The tensor names in a safetensors file's header.
std::set<std::string> safetensors_names(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), sizeof(length));
  std::string header(length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(length));
  std::set<std::string> names;
  const nlohmann::json entries = nlohmann::json::parse(header);
  for (const auto& item : entries.items()) {
    if (item.key() != "__metadata__") names.insert(item.key());
  }
  return names;
}

// `graft embed --output logits` of the model folder on the reference's input.npy against its logits.npy.
void expect_logits_match_the_reference(const std::string& model, const std::string& folder) {
  std::string output;
  ASSERT_EQ(graft("embed --model " + model + " --input-npy " + folder + "/input.npy --output logits --out " + model +
                      "/logits.npy",
                  &output),
            0)
      << output;
  std::vector<std::int64_t> ours_shape, reference_shape;
  const auto ours = npy_floats(model + "/logits.npy", &ours_shape);
  const auto reference = npy_floats(folder + "/logits.npy", &reference_shape);
  ASSERT_EQ(ours_shape, reference_shape);
  double largest = 0;
  for (std::size_t i = 0; i < ours.size(); ++i) largest = std::max(largest, std::abs(double(ours[i]) - reference[i]));
  EXPECT_LE(largest, 1e-4);
}

void expect_imported_logits_match_pytorch(const std::string& network) {
  const std::string work = graft::testing::temp_dir();
  const std::string folder = nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__3d_fullres", network);
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  std::string output;
  ASSERT_EQ(graft("import nnunet " + folder + " --output " + work + "/model", &output), 0) << output;
  EXPECT_NE(output.find("configuration 3d_fullres"), std::string::npos) << output;
  // The weights keep nnU-Net's names, once each.
  const auto names = safetensors_names(work + "/model/model.safetensors");
  EXPECT_TRUE(names.count("decoder.seg_layers.2.weight")) << *names.begin();
  EXPECT_TRUE(names.count(network == "plain" ? "encoder.stages.0.0.convs.0.conv.weight"
                                             : "encoder.stem.convs.0.conv.weight"));
  for (const auto& name : names) {
    EXPECT_EQ(name.find("all_modules"), std::string::npos) << name;
    EXPECT_NE(name.rfind("decoder.encoder.", 0), 0u) << name;
  }
  expect_logits_match_the_reference(work + "/model", folder);
}

TEST(NnUNetImport, PlainConvUNetFolderImportsAndGivesPyTorchsLogits) { expect_imported_logits_match_pytorch("plain"); }

TEST(NnUNetImport, ResidualEncoderUNetFolderImportsAndGivesPyTorchsLogits) {
  expect_imported_logits_match_pytorch("residual");
}

TEST(NnUNetImport, TwoDimensionalConfigurationImportsAndGivesPyTorchsLogits) {
  const std::string work = graft::testing::temp_dir();
  const std::string folder = nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__2d", "plain", "--dims 2");
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  std::string output;
  ASSERT_EQ(graft("import nnunet " + folder + " --output " + work + "/model", &output), 0) << output;
  EXPECT_NE(output.find("configuration 2d"), std::string::npos) << output;
  expect_logits_match_the_reference(work + "/model", folder);
  std::ifstream in(work + "/model/contract.json");
  const nlohmann::json contract = nlohmann::json::parse(in);
  EXPECT_EQ(contract["spatial_dims"], 2);
  EXPECT_EQ(contract["target_spacing_mm"][0], 0.8);
  std::ifstream config_in(work + "/model/config.json");
  // The checkpoint's mirroring axes (0, 1) of a 2D network are its y and x.
  EXPECT_EQ(nlohmann::json::parse(config_in)["predict"]["mirror_axes"], nlohmann::json({0, 1}));
}

// Several folds are one model whose prediction averages their logits, as nnU-Net's does; it
// predicts, and refuses to train.
TEST(NnUNetImport, SeveralFoldsMakeAnEnsembleAveragingTheirLogits) {
  const std::string work = graft::testing::temp_dir();
  const std::string folder = nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__3d_fullres", "plain", "--folds 3");
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  std::string output;
  ASSERT_EQ(graft("import nnunet " + folder + " --fold all --output " + work + "/model", &output), 0) << output;
  EXPECT_NE(output.find("3 folds: predictions average their logits"), std::string::npos) << output;
  const auto names = safetensors_names(work + "/model/model.safetensors");
  EXPECT_TRUE(names.count("encoder.stages.0.0.convs.0.conv.weight"));
  EXPECT_TRUE(names.count("ensemble.1.decoder.seg_layers.2.bias"));
  expect_logits_match_the_reference(work + "/model", folder);
  // The same folds named one by one.
  ASSERT_EQ(graft("import nnunet " + folder + " --fold 0,1,2 --output " + work + "/listed", &output), 0) << output;
  expect_logits_match_the_reference(work + "/listed", folder);
  EXPECT_EQ(graft("train --set init_from=" + work + "/model --set data.manifest=" + work + "/none.csv", &output), 1);
  EXPECT_NE(output.find("predicts but does not train"), std::string::npos) << output;
}

TEST(NnUNetImport, ContractFollowsThePlans) {
  const std::string work = graft::testing::temp_dir();
  const std::string folder = nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__3d_fullres", "plain");
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  std::string output;
  ASSERT_EQ(graft("import nnunet " + folder + " --output " + work + "/model", &output), 0) << output;
  std::ifstream in(work + "/model/contract.json");
  const nlohmann::json contract = nlohmann::json::parse(in);
  EXPECT_EQ(contract["channels"], nlohmann::json({"CT"}));
  EXPECT_EQ(contract["crop_nonzero"], true);
  EXPECT_EQ(contract["resize"], "spacing");
  EXPECT_EQ(contract["target_spacing_mm"], nlohmann::json({0.8, 0.8, 2.5}));  // plans z y x, reversed
  EXPECT_EQ(contract["image_interpolation"], "bspline");
  EXPECT_EQ(contract["label_interpolation"], "per_label_linear");
  EXPECT_EQ(contract["anti_alias"], false);
  EXPECT_EQ(contract["normalize_before_resampling"], true);
  ASSERT_EQ(contract["intensity"].size(), 2u);
  EXPECT_EQ(contract["intensity"][0]["kind"], "clip");
  EXPECT_EQ(contract["intensity"][0]["min"], -958.0);
  EXPECT_EQ(contract["intensity"][0]["max"], 1150.0);
  EXPECT_EQ(contract["intensity"][1]["kind"], "channel_mean_std");
  EXPECT_EQ(contract["intensity"][1]["mean"], nlohmann::json({96.5}));
  EXPECT_EQ(contract["intensity"][1]["std"], nlohmann::json({137.25}));
  std::ifstream config_in(work + "/model/config.json");
  const nlohmann::json config = nlohmann::json::parse(config_in);
  EXPECT_EQ(config["class_names"], nlohmann::json({"background", "liver", "tumour"}));
  EXPECT_EQ(config["data"]["patch_size"], nlohmann::json({32, 32, 16}));  // plans [16, 32, 32] as x y z
  EXPECT_EQ(config["predict"]["mirror_axes"], nlohmann::json({0, 1, 2}));  // inference_allowed_mirroring_axes
}

TEST(NnUNetImport, RegionLabelsAMissingFoldAndAForeignConfigurationAreRefusedByName) {
  const std::string work = graft::testing::temp_dir();
  const std::string folder = nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__3d_fullres", "plain");
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  std::string output;
  EXPECT_EQ(graft("import nnunet " + folder + " --fold 3 --output " + work + "/m", &output), 1);
  EXPECT_NE(output.find("fold_3/checkpoint_final.pth: no such checkpoint (folds in"), std::string::npos) << output;
  EXPECT_NE(output.find(": 0)"), std::string::npos) << output;
  EXPECT_EQ(graft("import nnunet " + folder + " -c 2d --output " + work + "/m", &output), 1);
  EXPECT_NE(output.find("configuration '2d' is not in the plans"), std::string::npos) << output;
  // Plans that describe another network than the checkpoint holds: the load names the file and a
  // tensor whose shape differs, and nothing is written.
  {
    std::ifstream plans_in(folder + "/plans.json");
    nlohmann::json plans = nlohmann::json::parse(plans_in);
    const nlohmann::json original = plans;
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = {8, 16, 32, 64};
    std::ofstream(folder + "/plans.json") << plans.dump();
    EXPECT_EQ(graft("import nnunet " + folder + " --output " + work + "/m", &output), 1);
    EXPECT_NE(output.find("fold_0/checkpoint_final.pth"), std::string::npos) << output;
    EXPECT_NE(output.find("encoder.stages.3.0.convs.0.conv.weight"), std::string::npos) << output;
    EXPECT_FALSE(std::ifstream(work + "/m/config.json").good());
    // A cascade's full-resolution stage also takes the low-resolution stage's segmentation.
    plans = original;
    plans["configurations"]["3d_fullres"]["previous_stage"] = "3d_lowres";
    std::ofstream(folder + "/plans.json") << plans.dump();
    EXPECT_EQ(graft("import nnunet " + folder + " --output " + work + "/m", &output), 1);
    EXPECT_NE(output.find("is a cascade stage (field 'previous_stage': \"3d_lowres\")"), std::string::npos) << output;
    std::ofstream(folder + "/plans.json") << original.dump();
  }
  // Region-based training (BraTS-style overlapping regions) is another kind of model.
  std::ifstream in(folder + "/dataset.json");
  nlohmann::json dataset = nlohmann::json::parse(in);
  dataset["labels"] = {{"background", 0}, {"whole_tumor", {1, 2, 3}}, {"tumor_core", {2, 3}}};
  dataset["regions_class_order"] = {1, 2};
  std::ofstream(folder + "/dataset.json") << dataset.dump();
  EXPECT_EQ(graft("import nnunet " + folder + " --output " + work + "/m", &output), 1);
  EXPECT_NE(output.find("dataset.json: field 'regions_class_order': region-based labels"), std::string::npos)
      << output;
  EXPECT_FALSE(std::ifstream(work + "/m/config.json").good());
}

// nnU-Net's DefaultPreprocessor on a real CT, written in NumPy (float64) by the reference script,
// against `graft preprocess --model` of the imported folder, for each normalisation scheme.
TEST(NnUNetImport, NormalisationMatchesNnUNetsSchemesOnARealCt) {
  GRAFT_REQUIRE_SHARED_DATA();
  if (graft::testing::python_with("nibabel").empty()) GTEST_SKIP() << "python3-nibabel is not installed";
  const std::string ct = graft::testing::shared_data_dir() + "/dicom/ct-j2k-series.Ref/reference.nii.gz";
  // The masked z-score measures and normalises the hole-filled nonzero region: the CT's water
  // (0 HU) inside the body is in it, and only zero voxels joined to the volume's faces are not.
  for (const std::string scheme : {"CTNormalization", "ZScoreNormalization", "ZScoreNormalization --use-mask",
                                   "RescaleTo01Normalization"}) {
    SCOPED_TRACE(scheme);
    const std::string work = graft::testing::temp_dir();
    const std::string folder =
        nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__3d_fullres", "plain", "--spacing-from " + ct + " --scheme " + scheme);
    if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
    std::string output;
    ASSERT_EQ(graft("import nnunet " + folder + " --output " + work + "/model", &output), 0) << output;
    ASSERT_EQ(graft("preprocess --model " + work + "/model " + ct + " " + work + "/ct.nii", &output), 0) << output;
    ASSERT_EQ(graft::testing::run_nnunet_reference("normalize " + folder + " " + ct + " " + work + "/ct.nii", &output),
              0)
        << output;
    const auto at = output.find("max_abs_difference ");
    ASSERT_NE(at, std::string::npos) << output;
    EXPECT_LE(std::stod(output.substr(at + 19)), 1e-6) << output;
    if (scheme != "CTNormalization") continue;
    // The same CT as its DICOM series: taken in dcm2niix's voxel order (the NIfTI above is
    // dcm2niix's), it gives the same preprocessed voxels.
    ASSERT_EQ(graft("preprocess --model " + work + "/model " + graft::testing::shared_data_dir() +
                        "/dicom/ct-j2k-series " + work + "/series.nii",
                    &output),
              0)
        << output;
    EXPECT_NE(output.find("dcm2niix's voxel order"), std::string::npos) << output;
    const graft::io::Image from_nifti = graft::io::read(work + "/ct.nii"), from_dicom = graft::io::read(work + "/series.nii");
    ASSERT_EQ(from_dicom.geometry().size_xyz, from_nifti.geometry().size_xyz);
    EXPECT_TRUE(from_dicom.geometry().same_grid(from_nifti.geometry(), 1e-3))
        << from_dicom.geometry().describe_difference(from_nifti.geometry());
    double largest = 0;
    for (std::int64_t i = 0; i < from_nifti.element_count(); ++i) {
      largest = std::max(largest, std::abs(double(from_dicom.data<float>()[i]) - from_nifti.data<float>()[i]));
    }
    EXPECT_LE(largest, 1e-6);
  }
}

TEST(NnUNetImport, ImportedModelSegmentsANiftiAndADicomSeriesOnTheirGrids) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string work = graft::testing::temp_dir();
  // 3 mm voxels keep the sliding window short; the network is the reference's small one.
  const std::string folder =
      nnunet_folder(work + "/nnUNetTrainer__nnUNetPlans__3d_fullres", "residual", "--spacing 3.0,3.0,3.0");
  if (folder.empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  std::string output;
  ASSERT_EQ(graft("import nnunet " + folder + " --output " + work + "/model", &output), 0) << output;
  const std::string nifti = graft::testing::shared_data_dir() + "/nifti/example_ct_sm.nii.gz";
  ASSERT_EQ(graft("predict --tta --model " + work + "/model --input " + nifti + " --output " + work + "/ct_pred.nii.gz",
                  &output),
            0)
      << output;
  const graft::io::Image image = graft::io::read(nifti);
  const graft::io::Image labels = graft::io::read(work + "/ct_pred.nii.gz");
  EXPECT_TRUE(labels.geometry().same_grid(image.geometry(), 1e-4)) << labels.geometry().describe_difference(image.geometry());
  EXPECT_EQ(labels.dtype(), graft::io::DType::kU8);
  std::set<int> seen;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) seen.insert(labels.data<std::uint8_t>()[i]);
  EXPECT_LE(*seen.rbegin(), 2);

  const std::string series = graft::testing::shared_data_dir() + "/dicom/ct-j2k-series";
  ASSERT_EQ(graft("predict --model " + work + "/model --input " + series + " --output " + work + "/series.nii.gz",
                  &output),
            0)
      << output;
  const graft::io::Geometry series_grid = graft::io::read(series).geometry();
  const graft::io::Geometry predicted = graft::io::read(work + "/series.nii.gz").geometry();
  EXPECT_TRUE(predicted.same_grid(series_grid, 1e-3)) << predicted.describe_difference(series_grid);
}

}  // namespace
