// The Slicer module and the batch CLI, run as Slicer and a scheduler run them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "datasets/synthetic_volumes.h"
#include "io/image_file.h"
#include "tests/support/nnunet_reference.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using graft::testing::run_command;

const std::string kModule = GRAFT_SLICER_MODULE;

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Writes `count` small synthetic CT volumes (80 x 80 x 64 mm at 2 x 2 x 4 mm) with their labels.
void write_volumes(const std::string& folder, int count, std::uint64_t first_seed, bool with_labels) {
  fs::create_directories(folder);
  for (int i = 0; i < count; ++i) {
    graft::io::Geometry geometry = graft::datasets::random_ct_geometry(first_seed + i);
    geometry.size_xyz = {40, 40, 16};
    geometry.spacing_xyz = {2.0, 2.0, 4.0};
    const graft::io::Vec3 centre = geometry.index_to_world({19.5, 19.5, 7.5});
    for (int a = 0; a < 3; ++a) geometry.origin_world[a] -= centre[a];
    const auto synthetic = graft::datasets::make_synthetic_ct(first_seed + i, geometry);
    char name[32];
    std::snprintf(name, sizeof(name), "case%02d", i);
    graft::io::write(synthetic.image, folder + "/" + name + ".nii.gz");
    if (with_labels) graft::io::write(synthetic.labels, folder + "/" + name + "_label.nii.gz");
  }
}

// A model folder from one short epoch on synthetic data: enough to exercise prediction.
std::string tiny_model(const std::string& folder) {
  write_volumes(folder + "/train", 3, 500, true);
  std::ofstream(folder + "/cases.csv") << "image,label,split\n"
                                       << "train/case00.nii.gz,train/case00_label.nii.gz,train\n"
                                       << "train/case01.nii.gz,train/case01_label.nii.gz,train\n"
                                       << "train/case02.nii.gz,train/case02_label.nii.gz,val\n";
  std::ofstream(folder + "/run.yaml") << "head: medicalnet\nclasses: 3\noutput: " << folder << "/model\n"
                                      << "data:\n  manifest: " << folder << "/cases.csv\n  patch_size: [32, 32, 16]\n"
                                      << "  batches_per_epoch: 2\n  workers: 1\n  contract: {resize: none, crop_nonzero: false}\n"
                                      << "train:\n  epochs: 1\n  threads: 1\n";
  std::string output;
  EXPECT_EQ(run_command(graft::testing::graft_executable() + " train --config " + folder + "/run.yaml", &output), 0)
      << output;
  return folder + "/model";
}

TEST(SlicerModule, EveryModulesXmlIsPrintedQuicklyEqualsItsSiblingAndFollowsTheSchema) {
  // What each module's panel must offer, as Slicer's parser reads it.
  const std::map<std::string, std::vector<std::string>> pieces{
      {"GraftSegment",
       {"<image type=\"label\" fileExtensions=\".seg.nrrd\">", "<index>0</index>", "<index>1</index>",
        "<longflag>probabilities</longflag>", "<longflag>overlap</longflag>", "<longflag>threads</longflag>"}},
      {"GraftDetect",
       {"<file fileExtensions=\".mrk.json\">", "<table fileExtensions=\".csv\">", "<longflag>scores</longflag>",
        "<name>boxCount</name>"}},
      {"GraftClassify", {"<name>predictedClass</name>", "<name>probabilities</name>", "<longflag>model</longflag>"}},
      {"GraftTrain",
       {"<name>dataDirectory</name>", "<name>outputDirectory</name>", "<longflag>run</longflag>",
        "<longflag>epochs</longflag>", "<name>bestMetric</name>"}}};
  for (const auto& [name, expected] : pieces) {
    const std::string module = std::string(GRAFT_SLICER_MODULE_DIR) + "/" + name;
    const auto start = std::chrono::steady_clock::now();
    std::string xml;
    ASSERT_EQ(run_command(module + " --xml", &xml), 0) << xml;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0) << name;
    const std::string sibling = std::string(GRAFT_SLICER_MODULE_DIR) + "/" + name + ".xml";
    EXPECT_EQ(xml, file_text(sibling)) << name;
    for (const std::string& piece : expected) EXPECT_NE(xml.find(piece), std::string::npos) << name << ": " << piece;
    if (graft::testing::python_with("xml.etree.ElementTree").empty()) GTEST_SKIP() << "python3 is not installed";
    std::string verdict;
    EXPECT_EQ(run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/check_slicer_xml.py " + sibling, &verdict), 0)
        << name << ": " << verdict;
    EXPECT_EQ(verdict, "ok\n") << name;
  }
}

// Slicer's return-parameter file: "name = value" lines.
std::map<std::string, std::string> return_parameters(const std::string& path) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto equals = line.find(" = ");
    if (equals != std::string::npos) values[line.substr(0, equals)] = line.substr(equals + 3);
  }
  return values;
}

double reported_seconds(const std::string& output) {
  const std::size_t at = output.find("<filter-time>");
  return at == std::string::npos ? -1.0 : std::stod(output.substr(at + 13));
}

// A Slicer user's folder of the two real brain MRs, labelled the two ways Slicer saves labels: a
// Labelmap volume (brain1-label.nrrd) and a Segmentation whose segment is named
// (brain2.seg.nrrd). GraftTrain trains on it the way Slicer runs it; GraftSegment then writes a
// Segmentation whose segment carries that name.
TEST(SlicerModule, GraftTrainLearnsFromSlicersLabelFilesAndGraftSegmentWritesNamedSegments) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string nrrd = graft::testing::shared_data_dir() + "/nrrd/";
  fs::create_directories(folder + "/data");
  fs::copy_file(nrrd + "brain1_image.nrrd", folder + "/data/brain1.nrrd");
  fs::copy_file(nrrd + "brain1_label.nrrd", folder + "/data/brain1-label.nrrd");
  fs::copy_file(nrrd + "brain2_image.nrrd", folder + "/data/brain2.nrrd");
  graft::io::Image tumour = graft::io::read(nrrd + "brain2_label.nrrd");
  tumour.metadata().segments = {{1, "tumour", std::nullopt}};
  graft::io::write(tumour, folder + "/data/brain2.seg.nrrd");
  std::ofstream(folder + "/run.yaml") << "backbone: med3d-resnet10\nhead: medicalnet\nclasses: 0\n"
                                      << "data:\n  patch_size: [32, 32, 16]\n  folds: 2\n  batches_per_epoch: 2\n"
                                      << "  workers: 1\n  contract:\n    resize: spacing\n"
                                      << "    target_spacing_mm: [2.0, 2.0, 6.5]\n"
                                      << "train:\n  epochs: 3\n  threads: 2\n";
  const std::string train = std::string(GRAFT_SLICER_MODULE_DIR) + "/GraftTrain";
  std::string output;
  ASSERT_EQ(run_command(train + " --run " + folder + "/run.yaml --epochs 1 --returnparameterfile " + folder +
                            "/train.params " + folder + "/data " + folder + "/model",
                        &output),
            0)
      << output;
  EXPECT_NE(output.find("<filter-progress>"), std::string::npos) << output;
  EXPECT_GT(reported_seconds(output), 0.0) << output;
  const auto trained = return_parameters(folder + "/train.params");
  EXPECT_EQ(trained.at("epochsRun"), "1");  // --epochs overrides the run file's 3
  EXPECT_EQ(trained.at("bestMetric").rfind("val_dice ", 0), 0u) << trained.at("bestMetric");
  const nlohmann::json config = nlohmann::json::parse(file_text(folder + "/model/config.json"));
  EXPECT_EQ(config["classes"], 2);
  EXPECT_EQ(config["class_names"], nlohmann::json({"tumour"}));

  // Slicer asks for the .seg.nrrd its XML names and loads it as a Segmentation node.
  const std::string input = folder + "/data/brain1.nrrd";
  ASSERT_EQ(run_command(kModule + " --model " + folder + "/model --threads 2 " + input + " " + folder +
                            "/predicted.seg.nrrd",
                        &output),
            0)
      << output;
  const graft::io::Image predicted = graft::io::read(folder + "/predicted.seg.nrrd");
  const graft::io::Image image = graft::io::read(input);
  EXPECT_TRUE(predicted.geometry().same_grid(image.geometry(), 1e-4))
      << predicted.geometry().describe_difference(image.geometry());
  // One short epoch may predict no tumour at all; whatever it predicts is named as the labels were.
  const std::string header = file_text(folder + "/predicted.seg.nrrd").substr(0, 4096);
  EXPECT_NE(header.find("Segmentation_MasterRepresentation:=Binary labelmap"), std::string::npos) << header;
  for (const auto& segment : predicted.metadata().segments) EXPECT_EQ(segment.name, "tumour");
  if (!predicted.metadata().segments.empty()) {
    EXPECT_NE(header.find("Segment0_Name:=tumour\n"), std::string::npos) << header;
    EXPECT_NE(header.find("SCT^108369006^Neoplasm"), std::string::npos) << header;
  }
}

// A detector trained on the brain tumour masks, run as Slicer runs GraftDetect: ROI markups Slicer
// loads, a score table, and the box count as a return parameter.
TEST(SlicerModule, GraftDetectWritesRoiMarkupsAScoreTableAndTheBoxCount) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string data = graft::testing::shared_data_dir() + "/nrrd/";
  std::ofstream(folder + "/cases.csv") << "image,label,split\n"
                                       << data << "brain1_image.nrrd," << data << "brain1_label.nrrd,train\n"
                                       << data << "brain2_image.nrrd," << data << "brain2_label.nrrd,val\n";
  std::ofstream(folder + "/run.yaml") << "task: detection\nbackbone: med3d-resnet10\nclasses: 2\nclass_names: [tumour]\n"
                                      << "output: " << folder << "/model\ndata:\n  manifest: " << folder
                                      << "/cases.csv\n  patch_size: [32, 32, 16]\n  batches_per_epoch: 2\n  workers: 1\n"
                                      << "  contract:\n    resize: spacing\n    target_spacing_mm: [2.0, 2.0, 6.5]\n"
                                      << "train:\n  epochs: 1\n  threads: 2\n";
  std::string output;
  ASSERT_EQ(run_command(graft::testing::graft_executable() + " train --config " + folder + "/run.yaml", &output), 0)
      << output;
  const std::string detect = std::string(GRAFT_SLICER_MODULE_DIR) + "/GraftDetect";
  ASSERT_EQ(run_command(detect + " --model " + folder + "/model --scores " + folder + "/scores.csv --returnparameterfile " +
                            folder + "/detect.params " + data + "brain1_image.nrrd " + folder + "/boxes.mrk.json",
                        &output),
            0)
      << output;
  EXPECT_GT(reported_seconds(output), 0.0) << output;
  const nlohmann::json markups = nlohmann::json::parse(file_text(folder + "/boxes.mrk.json"));
  const std::string count = return_parameters(folder + "/detect.params").at("boxCount");
  ASSERT_EQ(markups["markups"].size(), std::stoul(count));
  for (const auto& roi : markups["markups"]) EXPECT_EQ(roi["type"], "ROI");
  std::ifstream table(folder + "/scores.csv");
  std::string line;
  std::getline(table, line);
  EXPECT_EQ(line, "class,score,center_l_mm,center_p_mm,center_s_mm,size_x_mm,size_y_mm,size_z_mm");
  std::size_t rows = 0;
  while (std::getline(table, line)) {
    EXPECT_EQ(line.rfind("tumour,", 0), 0u) << line;
    ++rows;
  }
  EXPECT_EQ(rows, std::stoul(count));
}

// A PneumoniaMNIST classifier, and one of its test X-rays as NRRD, run as Slicer runs GraftClassify:
// the class and every probability come back as return parameters.
TEST(SlicerModule, GraftClassifyReturnsTheClassAndEveryProbability) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string python = graft::testing::python_with("nibabel");
  if (python.empty()) GTEST_SKIP() << "/usr/bin/python3 with nibabel is absent";
  const std::string folder = graft::testing::temp_dir();
  const std::string npz = graft::testing::shared_data_dir() + "/classification/pneumoniamnist.npz";
  // The first 32 training, 16 validation and 8 test X-rays keep the run short; one test X-ray as
  // NIfTI becomes the NRRD Slicer passes.
  std::string output;
  ASSERT_EQ(run_command(python + " -c \"import numpy, nibabel; d = numpy.load('" + npz + "'); n = {'train': 32, 'val': 16, "
                            "'test': 8}; numpy.savez('" + folder + "/small.npz', **{s + '_' + k: d[s + '_' + k][:n[s]] "
                            "for s in n for k in ('images', 'labels')}); x = d['test_images'][0]; "
                            "nibabel.save(nibabel.Nifti1Image(x.T[:, :, None], numpy.eye(4)), '" + folder +
                            "/xray.nii.gz')\"",
                        &output),
            0)
      << output;
  ASSERT_EQ(run_command(graft::testing::graft_executable() + " train --output " + folder +
                            "/model --set task=classification --set backbone=vit-s16 --set data.manifest=" + folder +
                            "/small.npz --set 'class_names=[\"normal\",\"pneumonia\"]' --set "
                            "'data.contract={\"target_size_xyz\": [112, 112, 1]}' --set data.batch_size=8 "
                            "--set train.epochs=1 --set train.threads=2",
                        &output),
            0)
      << output;
  graft::io::write(graft::io::read(folder + "/xray.nii.gz"), folder + "/xray.nrrd");
  const std::string classify = std::string(GRAFT_SLICER_MODULE_DIR) + "/GraftClassify";
  ASSERT_EQ(run_command(classify + " --model " + folder + "/model --returnparameterfile " + folder + "/classify.params " +
                            folder + "/xray.nrrd",
                        &output),
            0)
      << output;
  EXPECT_GT(reported_seconds(output), 0.0) << output;
  const auto values = return_parameters(folder + "/classify.params");
  const std::string predicted = values.at("predictedClass");
  EXPECT_TRUE(predicted == "normal" || predicted == "pneumonia") << predicted;
  // "normal: p, pneumonia: q" with p + q = 1.
  const std::string listed = values.at("probabilities");
  const auto normal = listed.find("normal: "), pneumonia = listed.find("pneumonia: ");
  ASSERT_NE(normal, std::string::npos) << listed;
  ASSERT_NE(pneumonia, std::string::npos) << listed;
  EXPECT_NEAR(std::stod(listed.substr(normal + 8)) + std::stod(listed.substr(pneumonia + 11)), 1.0, 2e-4) << listed;
}

TEST(SlicerModule, TheSchemaCheckRejectsBrokenDescriptions) {
  if (graft::testing::python_with("xml.etree.ElementTree").empty()) GTEST_SKIP() << "python3 is not installed";
  const std::string folder = graft::testing::temp_dir();
  std::string xml = file_text(fs::path(kModule).parent_path().string() + "/GraftSegment.xml");
  std::string swapped = xml;
  const auto label = swapped.find("<label>Input volume</label>");
  swapped.erase(label, std::strlen("<label>Input volume</label>"));
  swapped.insert(swapped.find("<description><![CDATA[The volume to segment.]]></description>"), "<label>Input volume</label>");
  std::ofstream(folder + "/swapped.xml") << swapped;
  std::string no_channel = xml;
  no_channel.erase(no_channel.find("<channel>input</channel>"), std::strlen("<channel>input</channel>"));
  std::ofstream(folder + "/no_channel.xml") << no_channel;
  std::string output;
  EXPECT_EQ(run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/check_slicer_xml.py " + folder + "/swapped.xml", &output), 1) << output;
  EXPECT_EQ(run_command("/usr/bin/python3 " GRAFT_SOURCE_DIR "/tests/tools/check_slicer_xml.py " + folder + "/no_channel.xml", &output), 1) << output;
}

TEST(SlicerModule, RunTheSlicerWayOnBrainNrrdWritesALabelMapOnTheInputGrid) {
  GRAFT_REQUIRE_SHARED_DATA();
  const std::string folder = graft::testing::temp_dir();
  const std::string model = tiny_model(folder);
  const std::string input = graft::testing::shared_data_dir() + "/nrrd/brain1_image.nrrd";
  // As Slicer's CLI runner builds it: flags first, then the positional input and output.
  std::string output;
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(run_command(kModule + " --model " + model + " --overlap 0.25 --threads 2 --probabilities " + folder +
                            "/probabilities.nrrd --returnparameterfile " + folder + "/return.params " + input + " " +
                            folder + "/label.nrrd",
                        &output),
            0)
      << output;
  EXPECT_NE(output.find("<filter-start>"), std::string::npos) << output;
  EXPECT_NE(output.find("<filter-progress>"), std::string::npos);
  EXPECT_NE(output.find("<filter-end>"), std::string::npos);
  // Slicer shows <filter-time> as the run's duration: more than nothing, no more than the process.
  const double process_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::size_t time_at = output.find("<filter-time>");
  ASSERT_NE(time_at, std::string::npos) << output;
  const double reported_seconds = std::stod(output.substr(time_at + 13));
  EXPECT_GT(reported_seconds, 0.0) << output;
  EXPECT_LE(reported_seconds, process_seconds);
  const graft::io::Image image = graft::io::read(input);
  const graft::io::Image label = graft::io::read(folder + "/label.nrrd");
  EXPECT_TRUE(label.geometry().same_grid(image.geometry(), 1e-4)) << label.geometry().describe_difference(image.geometry());
  EXPECT_EQ(label.dtype(), graft::io::DType::kU8);
  EXPECT_EQ(graft::io::read(folder + "/probabilities.nrrd").channels(), 3);
  EXPECT_EQ(run_command(kModule + " " + input + " " + folder + "/x.nrrd", &output), 2) << output;
}

// An nnU-Net model folder (tests/tools/nnunet_reference.py, python3-torch) imported, fine-tuned on
// synthetic cases through init_from, and the result run the way Slicer runs GraftSegment.
TEST(SlicerModule, AnImportedNnUNetFineTunesOnSyntheticCasesAndRunsTheSlicerWay) {
  if (graft::testing::python_with("torch").empty()) GTEST_SKIP() << "Debian python3-torch is not installed";
  const std::string folder = graft::testing::temp_dir();
  const std::string graft = graft::testing::graft_executable();
  const std::string nnunet = folder + "/nnUNetTrainer__nnUNetPlans__3d_fullres";
  std::string output;
  // The synthetic volumes' 2 x 2 x 4 mm grid is the plans' spacing (z y x: 4, 2, 2).
  ASSERT_EQ(graft::testing::run_nnunet_reference(nnunet + " plain --spacing 4.0,2.0,2.0", &output),
            0)
      << output;
  ASSERT_EQ(run_command(graft + " import nnunet " + nnunet + " --output " + folder + "/imported", &output), 0) << output;
  write_volumes(folder + "/train", 3, 500, true);
  std::ofstream(folder + "/cases.csv") << "image,label,split\n"
                                       << "train/case00.nii.gz,train/case00_label.nii.gz,train\n"
                                       << "train/case01.nii.gz,train/case01_label.nii.gz,train\n"
                                       << "train/case02.nii.gz,train/case02_label.nii.gz,val\n";
  std::ofstream(folder + "/run.yaml") << "init_from: " << folder << "/imported\noutput: " << folder << "/tuned\n"
                                      << "data:\n  manifest: " << folder << "/cases.csv\n  batches_per_epoch: 2\n"
                                      << "  workers: 1\ntrain:\n  epochs: 1\n  threads: 1\n  lr: 0.001\n";
  ASSERT_EQ(run_command(graft + " train --config " + folder + "/run.yaml", &output), 0) << output;
  EXPECT_NE(output.find("epoch 1/1"), std::string::npos) << output;
  // The tuned model keeps the imported architecture, classes and Contract, with new weights.
  const auto json_of = [](const std::string& path) { return nlohmann::json::parse(file_text(path)); };
  const nlohmann::json imported = json_of(folder + "/imported/config.json"), tuned = json_of(folder + "/tuned/config.json");
  EXPECT_EQ(tuned["backbone"], "nnunet");
  EXPECT_EQ(tuned["network"], imported["network"]);
  EXPECT_EQ(tuned["class_names"], imported["class_names"]);
  EXPECT_EQ(json_of(folder + "/tuned/contract.json"), json_of(folder + "/imported/contract.json"));
  EXPECT_NE(file_text(folder + "/tuned/model.safetensors"), file_text(folder + "/imported/model.safetensors"));
  // As Slicer's CLI runner builds it: flags first, then the positional input and output.
  const std::string input = folder + "/train/case02.nii.gz";
  ASSERT_EQ(run_command(kModule + " --model " + folder + "/tuned --threads 2 " + input + " " + folder + "/label.nrrd",
                        &output),
            0)
      << output;
  EXPECT_NE(output.find("<filter-end>"), std::string::npos) << output;
  const graft::io::Image image = graft::io::read(input);
  const graft::io::Image label = graft::io::read(folder + "/label.nrrd");
  EXPECT_TRUE(label.geometry().same_grid(image.geometry(), 1e-4)) << label.geometry().describe_difference(image.geometry());
}

// Finished outputs. A case being written is a hidden ".partial-PID-CASE_seg.nii.gz" beside them
// (named with the output's extension, which picks its writer), so it is not one of them: counting
// it made a run killed mid-write look one case further along than it was.
std::vector<std::string> outputs_in(const std::string& folder) {
  std::vector<std::string> names;
  if (!fs::exists(folder)) return names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.front() == '.') continue;
    if (name.size() > 11 && name.compare(name.size() - 11, 11, "_seg.nii.gz") == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(BatchPredict, KilledHalfwayAndRestartedFinishesEveryCaseWithoutRecomputing) {
  const std::string folder = graft::testing::temp_dir();
  const std::string model = tiny_model(folder);
  write_volumes(folder + "/scans", 20, 900, false);
  std::string output;
  // The reference: one uninterrupted run.
  ASSERT_EQ(run_command(graft::testing::graft_executable() + " predict --model " + model + " --input " + folder +
                            "/scans --output " + folder + "/whole --workers 2",
                        &output),
            0)
      << output;
  ASSERT_EQ(outputs_in(folder + "/whole").size(), 20u);

  // The interrupted run: killed once about half the cases are written.
  const pid_t child = fork();
  if (child == 0) {
    std::freopen("/dev/null", "w", stdout);
    const std::string out = folder + "/killed";
    execl(graft::testing::graft_executable().c_str(), "graft", "predict", "--model", model.c_str(), "--input",
          (folder + "/scans").c_str(), "--output", out.c_str(), "--workers", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (outputs_in(folder + "/killed").size() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  const auto finished = outputs_in(folder + "/killed");
  ASSERT_GE(finished.size(), 10u);
  ASSERT_LT(finished.size(), 20u) << "the run finished before it could be killed";
  std::map<std::string, fs::file_time_type> written;
  for (const auto& name : finished) written[name] = fs::last_write_time(folder + "/killed/" + name);

  ASSERT_EQ(run_command(graft::testing::graft_executable() + " predict --model " + model + " --input " + folder +
                            "/scans --output " + folder + "/killed --workers 2",
                        &output),
            0)
      << output;
  EXPECT_NE(output.find(std::to_string(finished.size()) + " skipped"), std::string::npos) << output;
  // Every case is there and equals the uninterrupted run's; none finished before was redone.
  ASSERT_EQ(outputs_in(folder + "/killed"), outputs_in(folder + "/whole"));
  for (const auto& name : outputs_in(folder + "/whole")) {
    const auto a = graft::io::read(folder + "/whole/" + name), b = graft::io::read(folder + "/killed/" + name);
    ASSERT_EQ(a.byte_count(), b.byte_count()) << name;
    EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.byte_count()), 0) << name;
    EXPECT_TRUE(a.geometry().same_grid(b.geometry(), 1e-6)) << name;
    if (written.count(name)) EXPECT_EQ(fs::last_write_time(folder + "/killed/" + name), written[name]) << name;
  }
  std::ifstream summary(folder + "/killed/summary.csv");
  std::string text((std::istreambuf_iterator<char>(summary)), std::istreambuf_iterator<char>());
  int skipped = 0;
  for (std::size_t at = 0; (at = text.find(",skipped,", at)) != std::string::npos; ++at) ++skipped;
  EXPECT_EQ(skipped, static_cast<int>(finished.size()));
  // Nothing half-written is left behind.
  for (const auto& entry : fs::directory_iterator(folder + "/killed")) {
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
  }
}

// What a run killed while writing leaves, made on purpose: one finished output and the hidden
// partial file of the next. The restart skips the first, redoes the second and removes the partial.
TEST(BatchPredict, APartialFileOfAKilledRunIsNotAFinishedCase) {
  const std::string folder = graft::testing::temp_dir();
  const std::string model = tiny_model(folder);
  write_volumes(folder + "/scans", 3, 700, false);
  std::string output;
  ASSERT_EQ(run_command(graft::testing::graft_executable() + " predict --model " + model + " " + folder +
                            "/scans --output " + folder + "/whole", &output), 0) << output;
  const std::vector<std::string> names = outputs_in(folder + "/whole");
  ASSERT_EQ(names.size(), 3u);
  fs::create_directories(folder + "/killed");
  fs::copy_file(folder + "/whole/" + names[0], folder + "/killed/" + names[0]);
  const pid_t gone = fork();  // the killed run's process id: one that no longer exists
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  const std::string partial = folder + "/killed/.partial-" + std::to_string(gone) + "-" + names[1];
  std::ofstream(partial) << "half a gzip stream";
  EXPECT_EQ(outputs_in(folder + "/killed"), std::vector<std::string>{names[0]});

  ASSERT_EQ(run_command(graft::testing::graft_executable() + " predict --model " + model + " " + folder +
                            "/scans --output " + folder + "/killed", &output), 0) << output;
  EXPECT_NE(output.find("1 skipped"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(outputs_in(folder + "/killed"), names);
  const auto redone = graft::io::read(folder + "/killed/" + names[1]), reference = graft::io::read(folder + "/whole/" + names[1]);
  ASSERT_EQ(redone.byte_count(), reference.byte_count());
  EXPECT_EQ(std::memcmp(redone.bytes(), reference.bytes(), redone.byte_count()), 0);
}

TEST(BatchPredict, ShardsSplitTheCasesAndFailuresAreListedWhileOthersComplete) {
  const std::string folder = graft::testing::temp_dir();
  const std::string model = tiny_model(folder);
  write_volumes(folder + "/scans", 5, 700, false);
  std::ofstream(folder + "/scans/broken.nii.gz") << "not an image";
  std::string output;
  const int status = run_command(graft::testing::graft_executable() + " predict --model " + model + " --input " +
                                     folder + "/scans --output " + folder + "/out --shard 0/2",
                                 &output);
  EXPECT_EQ(status, 1) << output;  // broken.nii.gz sorts first: case 0 of shard 0
  EXPECT_NE(output.find("broken.nii.gz"), std::string::npos) << output;
  EXPECT_EQ(outputs_in(folder + "/out").size(), 2u) << output;  // cases 2 and 4 of 0..5, minus broken
  EXPECT_TRUE(fs::exists(folder + "/out/summary-shard-0-of-2.csv"));
  EXPECT_EQ(run_command(graft::testing::graft_executable() + " predict --model " + model + " --input " + folder +
                            "/scans --output " + folder + "/out --shard 1/2",
                        &output),
            0)
      << output;
  EXPECT_EQ(outputs_in(folder + "/out").size(), 5u);
}

}  // namespace
