// graft train, predict and evaluate on the real image/mask pairs in ../shared/data, run as a user
// runs them. One short epoch: these check the pipeline and the geometry, not accuracy.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/image_file.h"
#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "tests/support/test_support.h"

namespace {

using graft::testing::run_command;

int graft(const std::string& arguments, std::string* output) {
  return run_command(graft::testing::graft_executable() + " " + arguments, output);
}

void write_run_config(const std::string& path, const std::string& manifest, const std::string& output,
                      int classes, const std::string& spacing) {
  std::ofstream(path) << "backbone: med3d-resnet10\nhead: medicalnet\nclasses: " << classes
                      << "\noutput: " << output << "\ndata:\n  manifest: " << manifest
                      << "\n  patch_size: [32, 32, 16]\n  batches_per_epoch: 2\n  workers: 1\n"
                         "  contract:\n    resize: spacing\n    target_spacing_mm: " << spacing
                      << "\ntrain:\n  epochs: 1\n  threads: 2\n  max_validation_cases: 1\n";
}

// The two brain MRs (train, val) with their tumour masks and a short run over them.
void write_brain_run(const std::string& folder) {
  const std::string data = graft::testing::shared_data_dir() + "/nrrd/";
  std::ofstream(folder + "/cases.csv") << "image,label,split\n"
                                       << data << "brain1_image.nrrd," << data << "brain1_label.nrrd,train\n"
                                       << data << "brain2_image.nrrd," << data << "brain2_label.nrrd,val\n";
  write_run_config(folder + "/run.yaml", folder + "/cases.csv", folder + "/model", 2, "[2.0, 2.0, 6.5]");
}

TEST(TrainPredict, TotalSegmentatorPairsTrainPredictOnTheInputGridAndEvaluate) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string data = graft::testing::shared_data_dir() + "/nifti/";
  std::ofstream(folder + "/cases.csv") << "image,label,split\n"
                                       << data << "example_ct_sm.nii.gz," << data << "example_seg.nii.gz,train\n"
                                       << data << "example_mr_sm.nii.gz," << data << "example_seg_mr.nii.gz,val\n";
  write_run_config(folder + "/run.yaml", folder + "/cases.csv", folder + "/model", 118, "[4.0, 4.0, 4.0]");  // label ids reach 117
  std::string output;
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml", &output), 0) << output;
  EXPECT_NE(output.find("epoch 1/1"), std::string::npos) << output;
  ASSERT_EQ(graft("predict --model " + folder + "/model --input " + data + "example_ct_sm.nii.gz --output " +
                      folder + "/ct_pred.nii.gz",
                  &output),
            0)
      << output;
  // The mask lies on the scan in world space, as nibabel sees both.
  const auto references = graft::testing::nibabel_reference({data + "example_ct_sm.nii.gz", folder + "/ct_pred.nii.gz"});
  if (!references.empty()) {
    EXPECT_EQ(references[0]["shape"], references[1]["shape"]);
    const auto a = references[0]["affine_ras"].get<std::vector<std::vector<double>>>();
    const auto b = references[1]["affine_ras"].get<std::vector<std::vector<double>>>();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) EXPECT_NEAR(a[r][c], b[r][c], 1e-3);
  }
  // A DICOM CT series in, a DICOM SEG on that series' grid out, de-identified on request.
  const std::string series =
      graft::testing::dicom_series_with_uids(graft::testing::shared_data_dir() + "/dicom/ct-j2k-series");
  if (!series.empty()) {
    ASSERT_EQ(graft("predict --model " + folder + "/model --input " + series + " --output " + folder +
                        "/ct_seg.dcm --anonymize",
                    &output),
              0)
        << output;
    const graft::io::DicomSegContents seg = graft::io::read_dicom_seg(folder + "/ct_seg.dcm");
    const graft::io::Geometry ct_grid = graft::io::dicom_volume_source(series).geometry;
    EXPECT_TRUE(seg.labels.geometry().same_grid(ct_grid, 1e-3)) << seg.labels.geometry().describe_difference(ct_grid);
    EXPECT_FALSE(seg.referenced_series_instance_uid.empty());
    EXPECT_NE(seg.referenced_series_instance_uid, "1.2.826.0.1.3680043.10.1331.2");  // remapped by --anonymize
  }
  // A tilted CT series: predicted on the corrected grid with --correct-tilt, refused without it, and
  // never as a DICOM SEG, whose frames must lie on the source images.
  const std::string tilted = graft::testing::tilted_dicom_series(
      graft::testing::shared_data_dir() + "/dicom/ct-j2k-series", 15.0, folder + "/tilted");
  ASSERT_FALSE(tilted.empty()) << "dcmodify (Debian dcmtk) writes the tilted series";
  EXPECT_EQ(graft("predict --model " + folder + "/model --input " + tilted + " --output " + folder + "/tilted.nii.gz",
                  &output),
            1)
      << output;
  EXPECT_NE(output.find("--correct-tilt"), std::string::npos) << output;
  ASSERT_EQ(graft("predict --correct-tilt --model " + folder + "/model --input " + tilted + " --output " + folder +
                      "/tilted.nii.gz",
                  &output),
            0)
      << output;
  graft::io::DicomReadOptions correct;
  correct.correct_tilt = true;
  const graft::io::Geometry corrected_grid = graft::io::read_dicom(tilted, "", correct).image.geometry();
  const graft::io::Geometry predicted_grid = graft::io::read(folder + "/tilted.nii.gz").geometry();
  EXPECT_TRUE(predicted_grid.same_grid(corrected_grid, 1e-3)) << predicted_grid.describe_difference(corrected_grid);
  EXPECT_EQ(graft("predict --correct-tilt --model " + folder + "/model --input " + tilted + " --output " + folder +
                      "/tilted.dcm",
                  &output),
            2)
      << output;
  EXPECT_NE(output.find("tilt-corrected volume"), std::string::npos) << output;
  ASSERT_EQ(graft("evaluate " + folder + "/ct_pred.nii.gz " + data + "example_seg.nii.gz --csv " +
                      folder + "/scores.csv",
                  &output),
            0)
      << output;
  std::ifstream csv(folder + "/scores.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "label,dice,hd95_mm,surface_dice,mean_surface_distance_mm");
}

TEST(TrainPredict, BrainNrrdTumourTrainsAndPredictsNrrdWithTheInputGeometry) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string data = graft::testing::shared_data_dir() + "/nrrd/";
  std::ofstream(folder + "/cases.json") << nlohmann::json{
      {"cases", {{{"image", data + "brain1_image.nrrd"}, {"label", data + "brain1_label.nrrd"}, {"split", "train"}},
                 {{"image", data + "brain2_image.nrrd"}, {"label", data + "brain2_label.nrrd"}, {"split", "val"}}}}}
      .dump();
  write_run_config(folder + "/run.yaml", folder + "/cases.json", folder + "/model", 2, "[2.0, 2.0, 6.5]");
  std::string output;
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml --set train.optimizer=adamw", &output), 0) << output;
  ASSERT_EQ(graft("predict --model " + folder + "/model --input " + data + "brain1_image.nrrd --output " + folder +
                      "/brain1_pred.nrrd",
                  &output),
            0)
      << output;
  const graft::io::Image input = graft::io::read(data + "brain1_image.nrrd");
  const graft::io::Image mask = graft::io::read(folder + "/brain1_pred.nrrd");
  EXPECT_TRUE(mask.geometry().same_grid(input.geometry(), 1e-4)) << mask.geometry().describe_difference(input.geometry());
  // Resume from the checkpoint for one more epoch.
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml --set train.optimizer=adamw --set train.epochs=2 --resume",
                  &output),
            0)
      << output;
  EXPECT_NE(output.find("epoch 2/2"), std::string::npos) << output;
}

// Ctrl-C (SIGINT) during graft train stops after the current step with a checkpoint, exit code
// 130, and --resume finishes the epoch.
TEST(TrainPredict, InterruptLeavesACheckpointThatResumes) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  write_brain_run(folder);
  const std::string train = graft::testing::graft_executable() + " train --config " + folder +
                            "/run.yaml --set data.batches_per_epoch=60";
  // config.json appears when the loop starts; a second later the run is between steps.
  std::string output;
  ASSERT_EQ(run_command("(" + train + " > " + folder + "/train.log 2>&1 & pid=$!; while [ ! -f " + folder +
                            "/model/config.json ]; do sleep 0.1; done; sleep 1; kill -INT $pid; wait $pid; "
                            "echo exit=$?; cat " + folder + "/train.log)",
                        &output),
            0);
  EXPECT_NE(output.find("exit=130"), std::string::npos) << output;
  EXPECT_NE(output.find("interrupted; checkpoint"), std::string::npos) << output;
  EXPECT_TRUE(graft::testing::file_exists(folder + "/model/checkpoint.pt"));
  std::ifstream events(folder + "/model/events.jsonl");
  std::string line, last;
  while (std::getline(events, line)) last = line;
  EXPECT_EQ(nlohmann::json::parse(last)["kind"], "cancelled");
  ASSERT_EQ(run_command(train + " --resume", &output), 0) << output;
  EXPECT_NE(output.find("epoch 1/1"), std::string::npos) << output;
  EXPECT_TRUE(graft::testing::file_exists(folder + "/model/model.safetensors"));
}

// graft train --nproc 2: two local ranks over Gloo, each with half of every batch; rank 0 alone
// prints and writes the model folder. A batch that does not divide among the ranks is refused.
TEST(TrainPredict, NprocTwoTrainsOneModelFolderAndRefusesAnIndivisibleBatch) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  write_brain_run(folder);
  std::string output;
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml --nproc 2", &output), 0) << output;
  std::size_t summaries = 0;
  for (std::size_t at = output.find("train: model folder"); at != std::string::npos;
       at = output.find("train: model folder", at + 1)) {
    ++summaries;
  }
  EXPECT_EQ(summaries, 1u) << output;
  EXPECT_TRUE(graft::testing::file_exists(folder + "/model/model.safetensors"));
  EXPECT_NE(graft("train --config " + folder + "/run.yaml --set data.batch_size=3 --nproc 2", &output), 0);
  EXPECT_NE(output.find("does not divide among 2 processes"), std::string::npos) << output;
}

// Labels from PACS: one case labelled by a DICOM SEG, one by an RTSTRUCT, both of the real CT
// series and drawn from the TotalSegmentator mask. The run names two of their segments as its
// classes, in another order than the files number them, and graft predict writes an RTSTRUCT
// back whose ROIs carry the class names.
TEST(TrainPredict, DicomSegAndRtstructLabelsTrainThroughAManifestAndPredictAnRtstruct) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string dicom = graft::testing::shared_data_dir() + "/dicom/";
  const std::string series = graft::testing::dicom_series_with_uids(dicom + "ct-j2k-series");
  if (series.empty()) GTEST_SKIP() << "dcmodify (Debian dcmtk) is absent";
  const std::string mask = dicom + "ct-j2k-series.Ref/totalsegmentator-mask.nii.gz";
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  for (const char* label : {"/organs.dcm", "/organs.rtstruct.dcm"}) {
    ASSERT_EQ(graft("convert " + mask + " " + folder + label + " --reference-dicom " + series +
                        " --segment-names spleen,kidney_right,kidney_left,gallbladder,liver",
                    &output),
              0)
        << output;
  }
  std::ofstream(folder + "/cases.csv") << "image,label,split\n"
                                       << series << "," << folder << "/organs.dcm,train\n"
                                       << series << "," << folder << "/organs.rtstruct.dcm,val\n";
  write_run_config(folder + "/run.yaml", folder + "/cases.csv", folder + "/model", 3, "[4.0, 4.0, 4.0]");
  std::ofstream(folder + "/run.yaml", std::ios::app) << "class_names: [liver, spleen]\n";
  ASSERT_EQ(graft("check " + folder + "/cases.csv", &output), 0) << output;
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml", &output), 0) << output;
  EXPECT_NE(output.find("epoch 1/1"), std::string::npos) << output;

  // The reference CT as dcm2niix wrote it, predicted into an RTSTRUCT of the series it came from.
  ASSERT_EQ(graft("predict --model " + folder + "/model --input " + dicom + "ct-j2k-series.Ref/reference.nii.gz" +
                      " --output " + folder + "/pred.rtstruct.dcm --reference-dicom " + series,
                  &output),
            0)
      << output;
  if (graft::testing::run_command("command -v dciodvfy >/dev/null") == 0) {
    graft::testing::run_command("dciodvfy " + folder + "/pred.rtstruct.dcm 2>&1", &output);
    EXPECT_EQ(output.find("Error"), std::string::npos) << output;
  }
  ASSERT_EQ(graft("info " + folder + "/pred.rtstruct.dcm", &output), 0) << output;
  EXPECT_NE(output.find("1.2.826.0.1.3680043.10.1331.2"), std::string::npos) << output;
  // Only the classes the model predicted somewhere appear, each under its class name.
  EXPECT_EQ(output.find("class "), std::string::npos) << output;
  // A series the labels do not belong to is named in the error.
  std::ofstream(folder + "/wrong.csv") << "image,label,split\n"
                                       << dicom << "mr-oblique-3d," << folder << "/organs.rtstruct.dcm,train\n";
  EXPECT_NE(graft("check " + folder + "/wrong.csv", &output), 0) << output;
  EXPECT_NE(output.find("organs.rtstruct.dcm"), std::string::npos) << output;
}

// train.batchnorm through the command line: tune trains a ResNet end to end; a misspelt mode is an
// error naming the key.
TEST(TrainPredict, BatchNormTuneModeTrainsAResNetAndAnUnknownModeNamesTheKey) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  write_brain_run(folder);
  std::string output;
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml --set train.batchnorm=tune", &output), 0) << output;
  EXPECT_NE(output.find("epoch 1/1"), std::string::npos) << output;
  std::ifstream config_file(folder + "/model/config.json");
  EXPECT_EQ(nlohmann::json::parse(config_file)["train"]["batchnorm"], "tune");
  EXPECT_NE(graft("train --config " + folder + "/run.yaml --set train.batchnorm=frozen", &output), 0);
  EXPECT_NE(output.find("train.batchnorm"), std::string::npos) << output;
  EXPECT_NE(output.find("'frozen'"), std::string::npos) << output;
}

// task: detection through the command line: the tumour masks give the boxes, one short epoch,
// and graft predict writes boxes on the input's grid as graft JSON and Slicer ROI markups.
// LoRA from the command line on the real PneumoniaMNIST X-rays: `graft train --merge` leaves a
// plain model folder (no adapters, adapter "none"), which merge-adapter then refuses by name; and
// --merge without LoRA is a usage error before any training.
TEST(TrainPredict, LoraRunWithMergeLeavesAPlainModelFolder) {
  const std::string data = graft::testing::shared_data_dir() + "/classification/pneumoniamnist.npz";
  if (!std::filesystem::exists(data)) GTEST_SKIP() << "shared data is absent";
  const std::string folder = graft::testing::temp_dir();
  const std::string common = "--set task=classification --set backbone=vit-s16 --set data.manifest=" + data +
                             " --set 'class_names=[\"normal\",\"pneumonia\"]' --set 'data.contract={\"target_size_xyz\": "
                             "[32, 32, 1]}' --set data.batch_size=64 --set train.epochs=1 --set train.optimizer=adamw "
                             "--set train.threads=2";
  std::string output;
  ASSERT_EQ(graft("train --output " + folder + "/plain " + common + " --merge", &output), 2) << output;
  EXPECT_NE(output.find("--merge folds LoRA adapters"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(folder + "/plain"));

  ASSERT_EQ(graft("train --output " + folder + "/lora " + common + " --set train.adapter=lora --set train.lr=0.001 --merge",
                  &output), 0) << output;
  EXPECT_NE(output.find("merged the adapters of 24 layers"), std::string::npos) << output;
  EXPECT_NE(output.find("test_auc"), std::string::npos) << output;
  std::ifstream config_file(folder + "/lora/config.json");
  const auto config = nlohmann::json::parse(config_file);
  EXPECT_EQ(config["train"]["adapter"], "none");
  EXPECT_FALSE(std::filesystem::exists(folder + "/lora/checkpoint.pt"));
  std::ifstream weights(folder + "/lora/model.safetensors", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(weights)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.find("lora_A"), std::string::npos);
  EXPECT_NE(bytes.find("backbone.blocks.0.attn.qkv.weight"), std::string::npos);
  ASSERT_EQ(graft("merge-adapter --model " + folder + "/lora --output " + folder + "/again", &output), 2) << output;
  EXPECT_NE(output.find("lora/model.safetensors: holds no LoRA adapters"), std::string::npos) << output;
  std::filesystem::remove_all(folder);
}

TEST(TrainPredict, BrainTumourDetectionWritesBoxesAndSlicerMarkups) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string data = graft::testing::shared_data_dir() + "/nrrd/";
  write_brain_run(folder);
  std::string output;
  ASSERT_EQ(graft("train --config " + folder + "/run.yaml --set task=detection --set data.patch_size=[32,32,16]",
                  &output),
            0)
      << output;
  EXPECT_NE(output.find("val_froc"), std::string::npos) << output;
  ASSERT_EQ(graft("predict --model " + folder + "/model --input " + data + "brain1_image.nrrd --output " + folder +
                      "/boxes",
                  &output),
            0)
      << output;
  std::ifstream json_file(folder + "/boxes/brain1_image_boxes.json"), markup_file(folder + "/boxes/brain1_image_boxes.mrk.json");
  ASSERT_TRUE(json_file && markup_file) << output;
  const nlohmann::json boxes = nlohmann::json::parse(json_file), markups = nlohmann::json::parse(markup_file);
  EXPECT_EQ(boxes["frame"], "LPS");
  EXPECT_EQ(boxes["boxes"].size(), markups["markups"].size());
  // graft evaluate scores the boxes against the tumour mask's own boxes.
  ASSERT_EQ(graft("evaluate --pred " + folder + "/boxes/brain1_image_boxes.json --ref " + data +
                      "brain1_label.nrrd --csv " + folder + "/box_scores.csv",
                  &output),
            0)
      << output;
  EXPECT_NE(output.find("froc_sensitivity_at_0.125_fp"), std::string::npos) << output;
  EXPECT_NE(output.find("2 reference boxes"), std::string::npos) << output;
  std::ifstream scores(folder + "/box_scores.csv");
  std::string header;
  std::getline(scores, header);
  EXPECT_EQ(header, "metric,value");
  // Boxes against themselves (JSON on both sides): a perfect mAP.
  if (!boxes["boxes"].empty()) {
    const std::string own = folder + "/boxes/brain1_image_boxes.json";
    ASSERT_EQ(graft("evaluate --pred " + own + " --ref " + own, &output), 0) << output;
    EXPECT_NE(output.find("map_50                           1.0000"), std::string::npos) << output;
  }
  // Every box lies inside the scan's index bounds, on the scan's own grid.
  const graft::io::Image scan = graft::io::read(data + "brain1_image.nrrd");
  for (const auto& box : boxes["boxes"]) {
    for (int a = 0; a < 3; ++a) {
      EXPECT_GE(box["start_index"][a].get<double>(), -0.5 - 1e-6);
      EXPECT_LE(box["end_index"][a].get<double>(), scan.geometry().size_xyz[a] - 0.5 + 1e-6);
    }
  }
}

}  // namespace

namespace {

// graft embed on a raw NPY reproduces PyTorch's pooled features for the same checkpoint.
TEST(Embed, PooledFeaturesMatchPyTorchForALegacyCheckpoint) {
  if (graft::testing::python_with("torch").empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/med3d_reference.py --depth 10 --out-dir " +
                            folder,
                        &output),
            0)
      << output;
  ASSERT_EQ(graft("embed --backbone med3d-resnet10 --weights " + folder + "/legacy.pth " + folder +
                      "/input.npy --features pooled --output " + folder + "/pooled_graft.npy",
                  &output),
            0)
      << output;
  const std::string compare =
      "import numpy as np; a = np.load('" + folder + "/pooled_graft.npy'); b = np.load('" + folder +
      "/pooled.npy'); print(a.shape == b.shape, float(np.abs(a - b).max() / np.abs(b).max()))";
  ASSERT_EQ(run_command("/usr/bin/python3 -c \"" + compare + "\"", &output), 0) << output;
  EXPECT_EQ(output.substr(0, 4), "True") << output;
  EXPECT_LT(std::stod(output.substr(5)), 1e-5) << output;
  std::filesystem::remove_all(folder);
}

// Each command that takes --backbone has its own default; none leaks into another.
TEST(Embed, BenchTrainStepWithoutABackboneTrainsItsDefaultMed3dResNet) {
  std::string output;
  ASSERT_EQ(graft("bench train-step --batch 1 --patch-size 16 16 16 --steps 1 --threads 1", &output), 0) << output;
  EXPECT_NE(output.find("backbone med3d-resnet10\n"), std::string::npos) << output;
  EXPECT_NE(output.find("seconds_per_step"), std::string::npos) << output;
}

TEST(Embed, BenchTrainStepEndsWithSecondsPerStep) {
  std::string output;
  ASSERT_EQ(graft("bench train-step --backbone med3d-resnet10 --batch 1 --patch-size 16 16 16 --steps 1 --threads 1", &output), 0)
      << output;
  const auto last_line = output.substr(output.rfind("seconds_per_step"));
  EXPECT_GT(std::stod(last_line.substr(17)), 0.0) << output;
}

}  // namespace
