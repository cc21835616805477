#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>

#include "backbones/checkpoint_file.h"
#include "backbones/factory.h"
#include "backbones/weight_loading.h"
#include "datasets/manifest.h"
#include "datasets/segmentation_data.h"
#include "datasets/synthetic_volumes.h"
#include "finetune/inference/predictor.h"
#include "finetune/run_config.h"
#include "finetune/inference/sliding_window.h"
#include "finetune/trainer.h"
#include "finetune/training_loop.h"
#include "io/error.h"
#include "io/image_file.h"
#include "tests/backbones/pytorch_reference.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

TEST(RunConfig, FileAndSetOverridesMergeOverDefaultsAndTyposAreErrors) {
  const std::string folder = graft::testing::temp_dir();
  std::ofstream(folder + "/run.yaml") << "backbone: med3d-resnet18\ntrain:\n  epochs: 3\n  lr: 0.01\n"
                                         "data:\n  patch_size: [48, 48, 24]\n  contract:\n    resize: spacing\n";
  const auto config = resolve_run_config(folder + "/run.yaml", {"train.epochs=7", "head=unet", "data.workers=1"});
  EXPECT_EQ(config.backbone, "med3d-resnet18");
  EXPECT_EQ(config.train.epochs, 7);
  EXPECT_DOUBLE_EQ(config.train.lr, 0.01);
  EXPECT_EQ(config.head, "unet");
  EXPECT_EQ(config.data.patch_size, (std::vector<std::int64_t>{48, 48, 24}));
  EXPECT_EQ(config.data.contract["resize"], "spacing");
  EXPECT_EQ(config.train.optimizer, "sgd");  // untouched default
  try {
    resolve_run_config(folder + "/run.yaml", {"train.epoch=3"});
    FAIL() << "a misspelt key was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'epoch'"), std::string::npos) << e.what();
  }
}

TEST(RunConfig, AValueOfTheWrongKindIsAnErrorNamingTheSetting) {
  const std::map<std::string, std::string> refusals{
      {"train.epochs=ten", "setting 'epochs' must be a number"},
      {"train.epochs=2.5", "setting 'epochs' must be a number (whole), got 2.5"},
      {"data.augment=3", "setting 'augment' must be true or false"},
      {"data.patch_size=64", "setting 'patch_size' must be a list"},
      {"backbone=7", "setting 'backbone' must be a string"}};
  for (const auto& [assignment, expected] : refusals) {
    const std::string message = graft::testing::error_message([&] { resolve_run_config("", {assignment}); });
    EXPECT_NE(message.find(expected), std::string::npos) << assignment << ": " << message;
  }
  // A whole number where a real one is expected is fine.
  EXPECT_DOUBLE_EQ(resolve_run_config("", {"train.lr=1"}).train.lr, 1.0);
}

TEST(RunConfig, JsonRoundTripKeepsEveryField) {
  RunConfig config;
  config.task = "detection";
  config.seed = 12345678901234ULL;
  config.class_names = {"background", "nodule"};
  config.data.patch_size = {96, 96, 48};
  config.data.contract = {{"resize", "none"}};
  config.train.precision = "bf16";
  config.detection.window_size = {128, 128, 64};
  config.mil.feature_dim = 1024;
  config.predict.mirror = true;
  const nlohmann::json json = to_json(config);
  EXPECT_EQ(json["train"]["precision"], "bf16");
  EXPECT_EQ(json["seed"], 12345678901234ULL);
  EXPECT_EQ(to_json(run_config_from_json(json, "test")), json);
  // A model folder's config from before a setting existed reads with that setting's default.
  nlohmann::json older = json;
  older["train"].erase("precision");
  EXPECT_EQ(run_config_from_json(older, "old config.json").train.precision, "fp32");
}

// Writes `count` synthetic cases (labels 1 and 2) and a CSV manifest for them.
std::string write_dataset(const std::string& folder, int count, std::uint64_t first_seed = 0) {
  std::ofstream manifest(folder + "/cases.csv");
  manifest << "id,image,label\n";
  for (int i = 0; i < count; ++i) {
    io::Geometry geometry = datasets::random_ct_geometry(first_seed + i);
    // A small grid that still spans the synthetic anatomy (about 80 x 80 x 64 mm).
    geometry.size_xyz = {40, 40, 16};
    geometry.spacing_xyz = {2.0, 2.0, 4.0};
    const io::Vec3 centre = geometry.index_to_world({19.5, 19.5, 7.5});
    for (int a = 0; a < 3; ++a) geometry.origin_world[a] -= centre[a];
    const auto synthetic = datasets::make_synthetic_ct(first_seed + i, geometry);
    const std::string id = "c" + std::to_string(i);
    io::write(synthetic.image, folder + "/" + id + ".nii.gz");
    io::write(synthetic.labels, folder + "/" + id + "_seg.nii.gz");
    manifest << id << "," << id << ".nii.gz," << id << "_seg.nii.gz\n";
  }
  return folder + "/cases.csv";
}

TEST(Manifest, CsvJsonAndFoldsAreReadDeterministically) {
  const std::string folder = graft::testing::temp_dir();
  const std::string csv = write_dataset(folder, 5);
  auto cases = datasets::read_manifest(csv);
  ASSERT_EQ(cases.size(), 5u);
  EXPECT_EQ(cases[2].image, folder + "/c2.nii.gz");
  datasets::assign_folds(cases, 5, 1, 42);
  int validation = 0;
  for (const auto& entry : cases) validation += entry.split == "val";
  EXPECT_EQ(validation, 1);
  auto again = datasets::read_manifest(csv);
  datasets::assign_folds(again, 5, 1, 42);
  for (std::size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(cases[i].split, again[i].split);

  std::ofstream(folder + "/cases.json") << R"({"cases": [{"image": "c0.nii.gz", "label": "c0_seg.nii.gz", "split": "val"}]})";
  const auto json = datasets::read_manifest(folder + "/cases.json");
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0].split, "val");
  std::ofstream(folder + "/broken.csv") << "image,label\nmissing.nii.gz,\n";
  EXPECT_THROW(datasets::read_manifest(folder + "/broken.csv"), Error);
}

TEST(SegmentationData, MismatchedGridAndBadLabelsNameTheFiles) {
  const std::string folder = graft::testing::temp_dir();
  io::Geometry geometry;
  geometry.size_xyz = {8, 8, 8};
  io::Image image(io::DType::kI16, 1, geometry);
  io::write(image, folder + "/image.nii.gz");
  io::Geometry shifted = geometry;
  shifted.origin_world[0] = 5.0;
  io::write(io::Image(io::DType::kU8, 1, shifted), folder + "/shifted.nii.gz");
  io::Image bad_labels(io::DType::kU8, 1, geometry);
  bad_labels.data<std::uint8_t>()[3] = 7;
  io::write(bad_labels, folder + "/bad.nii.gz");
  const preprocess::Contract contract;
  datasets::CaseEntry entry{"x", folder + "/image.nii.gz", folder + "/shifted.nii.gz", ""};
  try {
    datasets::prepare_case(entry, contract, {0}, 2);
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("shifted.nii.gz"), std::string::npos) << message;
    EXPECT_NE(message.find("image.nii.gz"), std::string::npos) << message;
    EXPECT_NE(message.find("origin"), std::string::npos) << message;
  }
  entry.label = folder + "/bad.nii.gz";
  try {
    datasets::prepare_case(entry, contract, {0}, 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label value 7"), std::string::npos) << e.what();
  }
}

std::vector<datasets::PreparedCase> prepared_cases(const std::string& folder, int count) {
  const auto entries = datasets::read_manifest(write_dataset(folder, count));
  preprocess::Contract contract;
  std::vector<datasets::PreparedCase> cases;
  for (const auto& entry : entries) cases.push_back(datasets::prepare_case(entry, contract, {0}, 3));
  return cases;
}

TEST(SegmentationData, BatchesDependOnlyOnTheirSeedWhateverTheWorkerCount) {
  const auto cases = prepared_cases(graft::testing::temp_dir(), 2);
  datasets::PatchOptions options;
  options.patch_xyz = {16, 16, 8};
  const auto a = datasets::sample_batch(cases, options, 2, 7);
  const auto b = datasets::sample_batch(cases, options, 2, 7);
  EXPECT_TRUE(torch::equal(a.image, b.image));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_EQ(a.image.sizes(), torch::IntArrayRef({2, 1, 8, 16, 16}));
  std::vector<torch::Tensor> one_worker, three_workers;
  for (int workers : {1, 3}) {
    datasets::BatchLoader loader(cases, options, 2, 5, workers, 2, 11);
    loader.start_epoch(3);
    for (int i = 0; i < 5; ++i) (workers == 1 ? one_worker : three_workers).push_back(loader.next().image);
  }
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(torch::equal(one_worker[i], three_workers[i])) << i;
}

// A data-parallel rank draws only its share of each global batch; the shares put together are
// the batch one process draws, item for item, augmentation included.
TEST(SegmentationData, SharesOfABatchAreItsItemsWhateverTheNumberOfShares) {
  const auto cases = prepared_cases(graft::testing::temp_dir(), 2);
  datasets::PatchOptions options;
  options.patch_xyz = {16, 16, 8};
  const auto whole = datasets::sample_batch(cases, options, 4, 7);
  for (int shares : {2, 4}) {
    std::vector<torch::Tensor> images, labels;
    for (int s = 0; s < shares; ++s) {
      const auto part = datasets::sample_batch(cases, options, 4, 7, {s * 4 / shares, 4 / shares});
      images.push_back(part.image);
      labels.push_back(part.labels);
    }
    EXPECT_TRUE(torch::equal(torch::cat(images), whole.image)) << shares << " shares";
    EXPECT_TRUE(torch::equal(torch::cat(labels), whole.labels)) << shares << " shares";
  }
  EXPECT_FALSE(torch::equal(whole.image[0], whole.image[1])) << "items draw from their own generators";
  datasets::BatchLoader second_half(cases, options, 4, 2, 2, 2, 11, {2, 2});
  datasets::BatchLoader all(cases, options, 4, 2, 1, 2, 11);
  second_half.start_epoch(1);
  all.start_epoch(1);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal(second_half.next().image, all.next().image.narrow(0, 2, 2)));
  EXPECT_THROW(datasets::sample_batch(cases, options, 4, 7, {3, 2}), Error);
}

TEST(SegmentationData, ForegroundOversamplingPutsForegroundInPatches) {
  const auto cases = prepared_cases(graft::testing::temp_dir(), 2);
  datasets::PatchOptions options;
  options.patch_xyz = {8, 8, 4};
  options.foreground_fraction = 1.0;
  options.augment.enabled = false;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    EXPECT_GT(datasets::sample_batch(cases, options, 1, seed).labels.gt(0).sum().item<int>(), 0) << seed;
  }
}

TEST(RunConfig, UnsetSegmentationClassesComeFromDatasetJsonOrTheLargestLabel) {
  const std::string folder = graft::testing::temp_dir();
  EXPECT_EQ(resolve_run_config("", {}).classes, 0) << "a run that names no classes infers them";
  EXPECT_EQ(resolve_run_config("", {"classes=4"}).classes, 4);

  io::Geometry geometry;
  geometry.size_xyz = {6, 5, 4};
  io::Image image(io::DType::kF32, 1, geometry), label(io::DType::kU8, 1, geometry);
  fs::create_directories(folder + "/imagesTr");
  fs::create_directories(folder + "/labelsTr");
  for (int c = 0; c < 2; ++c) {
    label.data<std::uint8_t>()[7 + c] = static_cast<std::uint8_t>(3 + 2 * c);  // largest label: 5
    io::write(image, folder + "/imagesTr/case" + std::to_string(c) + "_0000.nii.gz");
    io::write(label, folder + "/labelsTr/case" + std::to_string(c) + ".nii.gz");
  }
  RunConfig config = resolve_run_config("", {"data.manifest=" + folder});
  infer_segmentation_classes(config);
  EXPECT_EQ(config.classes, 6);

  std::ofstream(folder + "/dataset.json") << R"({"labels": {"background": 0, "liver": 1, "spleen": 2}})";
  config = resolve_run_config("", {"data.manifest=" + folder});
  infer_segmentation_classes(config);
  EXPECT_EQ(config.classes, 3);
  EXPECT_EQ(config.class_names, (std::vector<std::string>{"background", "liver", "spleen"}));

  std::ofstream(folder + "/dataset.json") << R"({"labels": {"background": 0, "tumor": [1, 2]}})";
  config = resolve_run_config("", {"data.manifest=" + folder});
  const std::string message = graft::testing::error_message([&] { infer_segmentation_classes(config); });
  EXPECT_NE(message.find("dataset.json: label 'tumor' is a region"), std::string::npos) << message;
}

// A checkpoint as MedicalNet's own train.py saves it, backbone and conv_seg head together, written
// by the independent PyTorch model in tests/tools/med3d_reference.py.
TEST(MedicalNetCheckpoint, BackboneDropsItsHeadWithANoteAndTheMedicalNetHeadLoadsIt) {
  const std::string python = graft::testing::python_with("torch");
  ASSERT_FALSE(python.empty()) << "Debian python3-torch writes the reference checkpoint";
  const std::string folder = graft::testing::temp_dir();
  std::string output;
  ASSERT_EQ(graft::testing::run_command(python + " " GRAFT_SOURCE_DIR "/tests/tools/med3d_reference.py --depth 10 "
                                        "--with-head --classes 3 --out-dir " + folder, &output), 0) << output;
  const std::string checkpoint = folder + "/zip.pth";

  auto backbone = backbones::create_backbone("med3d-resnet10");
  const backbones::LoadReport backbone_report = backbones::load_weights(*backbone, checkpoint);  // strict
  EXPECT_TRUE(backbone_report.clean()) << backbone_report.summary();
  EXPECT_NE(backbone_report.summary().find("classifier tensors not used by the backbone: conv_seg.0.weight"),
            std::string::npos) << backbone_report.summary();
  backbones::testing::expect_resnet_features_match(*backbone, folder);

  RunConfig config = default_run_config();
  config.head = "medicalnet";
  config.classes = 3;
  auto model = build_model(config);
  backbones::load_weights(model->backbone(), checkpoint);
  const backbones::LoadReport head_report = load_medicalnet_head(model->head(), checkpoint, 3);
  EXPECT_TRUE(head_report.clean()) << head_report.summary();
  for (const char* name : {"conv_seg.0.weight", "conv_seg.1.running_mean", "conv_seg.3.weight", "conv_seg.6.weight"}) {
    EXPECT_NE(std::find(head_report.loaded.begin(), head_report.loaded.end(), name), head_report.loaded.end()) << name;
  }
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->forward_before_upsampling(backbones::testing::npy_tensor(folder + "/input.npy"));
  const torch::Tensor expected = backbones::testing::npy_tensor(folder + "/seg.npy");
  ASSERT_EQ(logits.sizes(), expected.sizes());
  EXPECT_LT(backbones::testing::max_relative_difference(logits, expected), 1e-4);

  config.classes = 5;  // fine-tuning to other classes: the last layer starts afresh
  auto other = build_model(config);
  const backbones::LoadReport other_report = load_medicalnet_head(other->head(), checkpoint, 5);
  EXPECT_NE(other_report.summary().find("conv_seg.6.weight has 3 classes and this run 5"), std::string::npos)
      << other_report.summary();
  EXPECT_EQ(other_report.loaded.size(), head_report.loaded.size() - 1);
}

TEST(SlidingWindow, StartsCoverTheAxisEvenly) {
  EXPECT_EQ(window_starts(10, 16, 0.5), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(window_starts(64, 32, 0.5), (std::vector<std::int64_t>{0, 16, 32}));
  EXPECT_EQ(window_starts(70, 32, 0.5), (std::vector<std::int64_t>{0, 13, 25, 38}));  // steps <= 16
}

TEST(SlidingWindow, LabelsCoverAnyVolumeSizeAndMatchTheFullProbabilityArgmax) {
  torch::manual_seed(0);
  RunConfig config = default_run_config();
  config.head = "unet";
  auto model = build_model(config);
  io::Geometry geometry;
  geometry.size_xyz = {37, 21, 19};  // not a multiple of the patch, smaller than it along y
  io::Image image(io::DType::kF32, 1, geometry);
  for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<float>()[i] = std::sin(0.05f * i);
  SlidingWindowOptions options;
  options.patch_xyz = {16, 32, 8};
  options.keep_probabilities = true;
  const auto result = predict_sliding_window(*model, image, options);
  ASSERT_TRUE(result.labels.geometry().same_grid(geometry));
  const auto& probabilities = *result.probabilities;
  for (std::int64_t i = 0; i < image.element_count(); ++i) {
    const float p0 = probabilities.data<float>()[i], p1 = probabilities.data<float>()[image.element_count() + i];
    ASSERT_NEAR(p0 + p1, 1.0f, 1e-4);
    ASSERT_EQ(result.labels.data<std::uint8_t>()[i], p1 > p0 ? 1 : 0);
  }
}

// Every window's softmax, Gaussian-weighted and summed over the whole volume at once: the
// definition the slab-by-slab ring buffer must reproduce.
torch::Tensor whole_volume_probabilities(SegmentationModelImpl& model, const torch::Tensor& volume,
                                         const std::array<std::int64_t, 3>& patch_zyx, double overlap) {
  torch::NoGradGuard no_grad;
  model.eval();
  const std::int64_t depth = volume.size(1), height = volume.size(2), width = volume.size(3);
  std::vector<torch::Tensor> axes;
  for (int a = 0; a < 3; ++a) {
    const torch::Tensor x = torch::arange(patch_zyx[a], torch::kFloat64) - (patch_zyx[a] - 1) / 2.0;
    axes.push_back(torch::exp(-0.5 * (x / (patch_zyx[a] / 8.0)).pow(2)));
  }
  torch::Tensor gaussian = axes[0].view({-1, 1, 1}) * axes[1].view({1, -1, 1}) * axes[2].view({1, 1, -1});
  gaussian = gaussian / gaussian.max();
  torch::Tensor sums = torch::zeros({model.classes(), depth, height, width}, torch::kFloat64);
  torch::Tensor weights = torch::zeros({depth, height, width}, torch::kFloat64);
  for (std::int64_t z : window_starts(depth, patch_zyx[0], overlap)) {
    for (std::int64_t y : window_starts(height, patch_zyx[1], overlap)) {
      for (std::int64_t x : window_starts(width, patch_zyx[2], overlap)) {
        const torch::Tensor input = volume.narrow(1, z, patch_zyx[0]).narrow(2, y, patch_zyx[1]).narrow(3, x, patch_zyx[2]);
        const torch::Tensor p = torch::softmax(model.forward(input.unsqueeze(0)), 1)[0].to(torch::kFloat64);
        sums.narrow(1, z, patch_zyx[0]).narrow(2, y, patch_zyx[1]).narrow(3, x, patch_zyx[2]) += p * gaussian;
        weights.narrow(0, z, patch_zyx[0]).narrow(1, y, patch_zyx[1]).narrow(2, x, patch_zyx[2]) += gaussian;
      }
    }
  }
  return sums / weights;
}

// The U-Net head's logits are at full resolution; the MedicalNet head's are upsampled 4x inside the
// prediction's fused upsample-softmax-accumulate pass, checked here against LibTorch's own.
class SlidingWindowHeads : public ::testing::TestWithParam<std::string> {};

TEST_P(SlidingWindowHeads, SlabsAlongWhicheverAxisHasMostWindowsMatchTheWholeVolumeSum) {
  torch::manual_seed(1);
  RunConfig config = default_run_config();
  config.head = GetParam();
  config.classes = 7;
  auto model = build_model(config);
  // The most windows lie along z, y and x in turn; their starts along 30 voxels (0, 4, 9, ...) are
  // not multiples of the 8-plane ring, so windows wrap around it.
  for (const std::array<std::int64_t, 3>& size_xyz : std::vector<std::array<std::int64_t, 3>>{
           {16, 12, 30}, {12, 30, 16}, {30, 16, 12}}) {
    io::Geometry geometry;
    geometry.size_xyz = size_xyz;
    io::Image image(io::DType::kF32, 1, geometry);
    for (std::int64_t i = 0; i < image.element_count(); ++i) image.data<float>()[i] = std::sin(0.07f * i) + 0.01f * (i % 13);
    SlidingWindowOptions options;
    options.patch_xyz = {8, 8, 8};
    options.overlap_fraction = 0.4;
    options.keep_probabilities = true;
    options.windows_per_batch = 3;
    auto result = predict_sliding_window(*model, image, options);
    const torch::Tensor volume = torch::from_blob(image.data<float>(), {1, size_xyz[2], size_xyz[1], size_xyz[0]});
    const torch::Tensor expected = whole_volume_probabilities(*model, volume, {8, 8, 8}, 0.4);
    const torch::Tensor got = torch::from_blob(result.probabilities->data<float>(), expected.sizes(), torch::kFloat32);
    EXPECT_LT((got.to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-5) << size_xyz[0] << "x" << size_xyz[1] << "x" << size_xyz[2];
    const torch::Tensor labels = torch::from_blob(result.labels.data<std::uint8_t>(), expected.sizes().slice(1), torch::kUInt8);
    const auto top2 = expected.topk(2, 0);
    const torch::Tensor decided = (std::get<0>(top2)[0] - std::get<0>(top2)[1]) > 1e-5;
    EXPECT_TRUE(labels.to(torch::kLong).masked_select(decided).equal(std::get<1>(top2)[0].masked_select(decided)));
    EXPECT_GT(decided.sum().item<std::int64_t>(), image.element_count() * 9 / 10);
  }
}

INSTANTIATE_TEST_SUITE_P(Heads, SlidingWindowHeads, ::testing::Values("unet", "medicalnet"));

RunConfig tiny_config(const std::string& output, const std::string& manifest) {
  RunConfig config = default_run_config();
  config.output = output;
  config.classes = 3;
  config.head = "unet";
  config.data.manifest = manifest;
  config.data.patch_size = {16, 16, 16};
  config.data.batches_per_epoch = 2;
  config.data.workers = 2;
  config.data.folds = 2;
  // The Med3D contract resizes to 448 x 448 x 56; these tests keep the small synthetic grid.
  config.data.contract = {{"resize", "none"}, {"crop_nonzero", false}};
  config.train.epochs = 2;
  config.train.threads = 1;
  config.train.optimizer = "adamw";
  return config;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<double> read_losses(const std::string& folder) {
  std::ifstream csv(folder + "/metrics.csv");
  std::string line;
  std::getline(csv, line);
  std::vector<double> losses;
  while (std::getline(csv, line)) losses.push_back(std::stod(line.substr(line.find(',') + 1)));
  return losses;
}

std::vector<std::vector<std::uint8_t>> checkpoint_weights(const RunConfig& config, const std::string& folder) {
  auto model = build_model(config);
  torch::serialize::InputArchive archive, model_archive;
  archive.load_from(folder + "/checkpoint.pt");
  archive.read("model", model_archive);
  model->load(model_archive);
  std::vector<std::vector<std::uint8_t>> weights;
  for (const auto& [name, tensor] : backbones::state_dict_of(*model)) weights.push_back(tensor.bytes);
  return weights;
}

TEST(Trainer, ResumeContinuesExactlyWhereTheRunStopped) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_dataset(folder, 4);
  std::vector<std::string> kinds;
  const TrainEventSink record = [&](const TrainEvent& event) { kinds.push_back(event.kind); };
  const auto straight = train(tiny_config(folder + "/straight", manifest), {record}, false);
  EXPECT_EQ(straight.epochs_run, 2);
  EXPECT_EQ(kinds.front(), "epoch_start");
  EXPECT_EQ(kinds.back(), "done");
  for (const char* file : {"config.json", "contract.json", "model.safetensors", "checkpoint.pt", "events.jsonl",
                           "metrics.csv", "training.svg"}) {
    EXPECT_TRUE(fs::exists(folder + "/straight/" + file)) << file;
  }
  RunConfig first = tiny_config(folder + "/resumed", manifest);
  first.train.epochs = 1;
  // Same schedule length as the straight run, so the learning rates match step for step.
  first.train.schedule = "constant";
  RunConfig straight_config = tiny_config(folder + "/straight2", manifest);
  straight_config.train.schedule = "constant";
  train(straight_config, {}, false);
  train(first, {}, false);
  RunConfig second = first;
  second.train.epochs = 2;
  const auto resumed = train(second, {}, true);
  EXPECT_EQ(resumed.epochs_run, 2);
  EXPECT_EQ(read_losses(folder + "/resumed"), read_losses(folder + "/straight2"));
  EXPECT_EQ(checkpoint_weights(second, folder + "/resumed"), checkpoint_weights(straight_config, folder + "/straight2"));
}

// Cancel (a sink throwing TrainingCancelled) in the middle of an epoch, then resume: the losses
// and weights equal an uninterrupted run's, so no step of training is lost or repeated.
TEST(Trainer, CancelMidEpochSavesACheckpointThatResumesToTheSameWeights) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_dataset(folder, 4);
  RunConfig straight = tiny_config(folder + "/straight", manifest);
  straight.train.schedule = "constant";
  straight.data.batches_per_epoch = 3;
  train(straight, {}, false);

  RunConfig cancelled = straight;
  cancelled.output = folder + "/cancelled";
  std::vector<std::string> kinds;
  const TrainEventSink cancel_at_epoch0_step1 = [&](const TrainEvent& event) {
    kinds.push_back(event.kind);
    if (event.kind == "step" && event.epoch == 0 && event.step == 1) throw TrainingCancelled{};
  };
  const TrainResult stopped = train(cancelled, {cancel_at_epoch0_step1}, false);
  EXPECT_TRUE(stopped.cancelled);
  EXPECT_EQ(kinds.back(), "cancelled");
  EXPECT_EQ(stopped.epochs_run, 0);
  ASSERT_TRUE(fs::exists(folder + "/cancelled/checkpoint.pt"));
  EXPECT_TRUE(read_losses(folder + "/cancelled").empty()) << "no epoch finished";

  int resumed_steps = 0;
  const TrainEventSink count = [&](const TrainEvent& event) { resumed_steps += event.kind == "step"; };
  const TrainResult resumed = train(cancelled, {count}, true);
  EXPECT_FALSE(resumed.cancelled);
  EXPECT_EQ(resumed.epochs_run, 2);
  EXPECT_EQ(resumed_steps, 1 + 3) << "the rest of epoch 0, then epoch 1";
  EXPECT_EQ(read_losses(folder + "/cancelled"), read_losses(folder + "/straight"));
  EXPECT_EQ(checkpoint_weights(cancelled, folder + "/cancelled"), checkpoint_weights(straight, folder + "/straight"));
}

TEST(Trainer, ACheckpointWriteOnAFullDiskIsAnErrorNamingTheFileAndAGoodOneReadsBack) {
  const torch::Tensor weights = torch::arange(1 << 18, torch::kFloat32);  // 1 MB: past any write buffer
  torch::serialize::OutputArchive archive;
  archive.write("weights", weights);
  try {
    write_archive(archive, "/dev/full");
    FAIL() << "a write to a full device succeeded";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("/dev/full"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(std::strerror(ENOSPC)), std::string::npos) << error.what();
  }
  const std::string path = graft::testing::temp_dir() + "/checkpoint.pt";
  write_archive(archive, path);
  torch::serialize::InputArchive read_back;
  read_back.load_from(path);
  torch::Tensor loaded;
  read_back.read("weights", loaded);
  EXPECT_TRUE(torch::equal(loaded, weights));
}

TEST(Trainer, PredictorWritesLabelsOnTheInputGrid) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_dataset(folder, 3);
  RunConfig config = tiny_config(folder + "/model", manifest);
  config.train.epochs = 1;
  train(config, {}, false);
  Predictor predictor(ModelFolder(folder + "/model"));
  PredictOptions options;
  options.write_probabilities = true;
  predictor.predict_file(folder + "/c1.nii.gz", folder + "/c1_pred.nii.gz", options);
  const io::Image input = io::read(folder + "/c1.nii.gz");
  const io::Image labels = io::read(folder + "/c1_pred.nii.gz");
  EXPECT_TRUE(labels.geometry().same_grid(input.geometry(), 1e-4));
  EXPECT_EQ(labels.dtype(), io::DType::kU8);
  const io::Image probabilities = io::read(folder + "/c1_pred_probabilities.nii.gz");
  EXPECT_EQ(probabilities.channels(), 3);
  EXPECT_TRUE(fs::exists(folder + "/c1_pred.plan.json"));
}

// train.precision bf16 on the CPU: the forward passes run under autocast (the losses differ from
// fp32's in the third digit), the weights and checkpoint stay fp32, and the bf16 model's
// sliding-window labels agree with fp32 inference on nearly every voxel.
TEST(Trainer, Bf16AutocastTrainsCloseToFp32AndPredictsTheSameLabels) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_dataset(folder, 3);
  RunConfig fp32 = tiny_config(folder + "/fp32", manifest);
  RunConfig bf16 = tiny_config(folder + "/bf16", manifest);
  bf16.train.precision = "bf16";
  train(fp32, {}, false);
  train(bf16, {}, false);
  const std::vector<double> fp32_losses = read_losses(folder + "/fp32"), bf16_losses = read_losses(folder + "/bf16");
  ASSERT_EQ(bf16_losses.size(), fp32_losses.size());
  for (std::size_t epoch = 0; epoch < fp32_losses.size(); ++epoch) {
    EXPECT_NE(bf16_losses[epoch], fp32_losses[epoch]) << "bf16 ran as fp32";
    EXPECT_NEAR(bf16_losses[epoch], fp32_losses[epoch], 0.05 * fp32_losses[epoch]) << "epoch " << epoch;
  }
  const auto weights = backbones::read_checkpoint(folder + "/bf16/model.safetensors");
  for (const auto& [name, tensor] : weights.tensors) {
    if (name.find("num_batches_tracked") == std::string::npos) {
      EXPECT_EQ(tensor.dtype, backbones::TensorDType::kF32) << name;
    }
  }
  const io::Image image = io::read(folder + "/c1.nii.gz");
  const io::Image exact = Predictor(ModelFolder(folder + "/bf16")).predict(image).labels;
  const io::Image mixed = Predictor(ModelFolder(folder + "/bf16"), {torch::kCPU, Precision::kBFloat16}).predict(image).labels;
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < exact.element_count(); ++i) same += exact.value_at(i) == mixed.value_at(i);
  EXPECT_GE(static_cast<double>(same) / exact.element_count(), 0.99);
}

}  // namespace
}  // namespace graft::finetune
