// Scene classification: metrics with hand-worked answers, the chip manifest, and short training
// runs (linear probe, fine-tune, multi-label) on synthetic Sentinel-2 chips whose classes are
// written into known bands.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "datasets/chip_data.h"
#include "datasets/manifest.h"
#include "backbones/factory.h"
#include "finetune/adapters.h"
#include "finetune/tasks/classification/classification.h"
#include "finetune/transferability.h"
#include "finetune/inference/predict.h"
#include "finetune/inference/predictor.h"
#include "finetune/run_config.h"
#include "finetune/trainer.h"
#include "backbones/checkpoint_file.h"
#include "backbones/registry.h"
#include "backbones/timm_vit.h"
#include "backbones/weight_loading.h"
#include "io/error.h"
#include "io/image_file.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kSentinel2Bands{"B1", "B2", "B3",  "B4", "B5",  "B6", "B7",
                                               "B8", "B8A", "B9", "B10", "B11", "B12"};

// A 13-band uint16 chip on a 10 m UTM grid. Every band is noise around 1500; each named class
// raises its own band (water: B3, vegetation: B8, bare: B11) to about 4000 over the chip.
io::Image synthetic_chip(const std::vector<std::string>& classes, std::mt19937& random, std::int64_t size = 24) {
  const io::GeoTransform transform{500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0};
  const io::Geometry geometry = io::geometry_from_geotransform(transform, size, size, "EPSG:32633");
  io::Image chip(io::DType::kU16, 13, geometry);
  chip.metadata().band_names = kSentinel2Bands;
  std::normal_distribution<double> noise(1500.0, 300.0);
  auto* values = chip.data<std::uint16_t>();
  const std::int64_t pixels = size * size;
  for (std::int64_t i = 0; i < 13 * pixels; ++i) values[i] = static_cast<std::uint16_t>(std::max(0.0, noise(random)));
  for (const auto& name : classes) {
    const int band = name == "water" ? 2 : name == "vegetation" ? 7 : 11;
    for (std::int64_t i = 0; i < pixels; ++i) values[band * pixels + i] += 2500;
  }
  return chip;
}

// Writes `count` chips per class set as GeoTIFFs and a CSV manifest; returns the manifest path.
std::string write_chip_manifest(const std::string& folder, const std::vector<std::vector<std::string>>& class_sets,
                                int count, std::uint32_t seed) {
  std::mt19937 random(seed);
  std::ofstream manifest(folder + "/chips.csv");
  manifest << "image,classes\n";
  for (int i = 0; i < count; ++i) {
    for (std::size_t s = 0; s < class_sets.size(); ++s) {
      const std::string name = "chip_" + std::to_string(i) + "_" + std::to_string(s) + ".tif";
      io::write(synthetic_chip(class_sets[s], random), folder + "/" + name);
      std::string classes;
      for (const auto& c : class_sets[s]) classes += (classes.empty() ? "" : ";") + c;
      manifest << name << "," << classes << "\n";
    }
  }
  return folder + "/chips.csv";
}

RunConfig chip_run_config(const std::string& manifest, const std::string& output) {
  RunConfig config = default_run_config();
  config.task = "classification";
  config.backbone = "geo-resnet18-s2";
  config.output = output;
  config.data.manifest = manifest;
  config.data.batch_size = 8;
  config.data.folds = 4;
  // 64 px instead of the weights' 224 keeps the test short; the rule under test is the same.
  config.data.contract["target_size_xyz"] = {64, 64, 1};
  config.train.epochs = 4;
  config.train.optimizer = "adamw";
  config.train.lr = 1e-3;
  config.train.head_lr_multiplier = 10.0;
  config.train.schedule = "constant";
  return config;
}

TEST(ClassificationMetrics, SingleLabelMatchesHandCounts) {
  // Truth 0,0,1,1,2 ; predicted 0,1,1,1,0.
  const torch::Tensor logits = torch::tensor({{5.f, 1.f, 0.f}, {0.f, 3.f, 1.f}, {0.f, 2.f, 1.f},
                                              {1.f, 4.f, 0.f}, {2.f, 0.f, 1.f}});
  const torch::Tensor truth = torch::tensor({0, 0, 1, 1, 2}, torch::kInt64);
  const auto metrics = classification_metrics(logits, truth, false);
  EXPECT_DOUBLE_EQ(metrics.at("accuracy"), 3.0 / 5.0);
  // Recall: class 0 1/2, class 1 2/2, class 2 0/1.
  EXPECT_DOUBLE_EQ(metrics.at("balanced_accuracy"), (0.5 + 1.0 + 0.0) / 3.0);
  // F1: class 0 tp1 fp1 fn1 -> 0.5; class 1 tp2 fp1 fn0 -> 0.8; class 2 tp0 fp0 fn1 -> 0.
  EXPECT_NEAR(metrics.at("f1_macro"), (0.5 + 0.8 + 0.0) / 3.0, 1e-12);
}

TEST(ClassificationMetrics, BinaryAucMatchesTheRankDefinition) {
  // Class-1 scores 0.1, 0.4, 0.35, 0.8 for truth 0, 0, 1, 1: 3 of the 4 positive-negative pairs are
  // ordered right (scikit-learn's roc_auc_score example), so AUC 0.75.
  const torch::Tensor logits = torch::tensor({{0.f, 0.1f}, {0.f, 0.4f}, {0.f, 0.35f}, {0.f, 0.8f}});
  const torch::Tensor truth = torch::tensor({0, 0, 1, 1}, torch::kInt64);
  EXPECT_NEAR(classification_metrics(logits, truth, false).at("auc"), 0.75, 1e-12);
  // A tie between a positive and a negative counts half: (1 + 0.5) / 2.
  const torch::Tensor tied = torch::tensor({{0.f, 0.2f}, {0.f, 0.5f}, {0.f, 0.5f}, {0.f, 0.9f}});
  EXPECT_NEAR(classification_metrics(tied, torch::tensor({0, 0, 1, 1}, torch::kInt64), false).at("auc"), 0.875, 1e-12);
}

TEST(ClassificationMetrics, KnnAndPrototypesOnFrozenFeatures) {
  // Two clusters on the axes; after centring on the training mean (1.25, 1.25) the queries lie
  // on their own class's side.
  const torch::Tensor train = torch::tensor({{2.f, 0.f}, {3.f, 0.f}, {0.f, 2.f}, {0.f, 3.f}});
  const torch::Tensor train_labels = torch::tensor({0, 0, 1, 1}, torch::kInt64);
  const torch::Tensor queries = torch::tensor({{3.f, 1.f}, {1.f, 3.f}});
  const auto right = frozen_feature_metrics(train, train_labels, queries, torch::tensor({0, 1}, torch::kInt64), 2, 3);
  EXPECT_DOUBLE_EQ(right.at("knn3_accuracy"), 1.0);
  EXPECT_DOUBLE_EQ(right.at("prototype_accuracy"), 1.0);
  const auto wrong = frozen_feature_metrics(train, train_labels, queries, torch::tensor({1, 0}, torch::kInt64), 2, 3);
  EXPECT_DOUBLE_EQ(wrong.at("knn3_accuracy"), 0.0);
  EXPECT_DOUBLE_EQ(wrong.at("prototype_accuracy"), 0.0);
}

TEST(ClassificationMetrics, MultiLabelMatchesHandCounts) {
  // Logits > 0 means probability > 0.5. Rows: truth {0,1}, {1}, {} ; predicted {0}, {1}, {1}.
  const torch::Tensor logits = torch::tensor({{3.f, -1.f}, {-2.f, 2.f}, {-3.f, 1.f}});
  const torch::Tensor truth = torch::tensor({{1.f, 1.f}, {0.f, 1.f}, {0.f, 0.f}});
  const auto metrics = classification_metrics(logits, truth, true);
  // tp 2 (0/0, 1/1), fp 1 (2/1), fn 1 (0/1): micro F1 = 4 / (4 + 2).
  EXPECT_NEAR(metrics.at("f1_micro"), 4.0 / 6.0, 1e-12);
  EXPECT_NEAR(metrics.at("subset_accuracy"), 1.0 / 3.0, 1e-12);
  // Class 0: one positive ranked first -> AP 1. Class 1: scores 2 (pos), 1 (neg), -1 (pos):
  // precision at the positives 1/1 and 2/3 -> AP 5/6.
  EXPECT_NEAR(metrics.at("map_macro"), (1.0 + 5.0 / 6.0) / 2.0, 1e-6);
  // F1 class 0: tp1 fn0 fp0 -> 1; class 1: tp1 fp1 fn1 -> 0.5.
  EXPECT_NEAR(metrics.at("f1_macro"), 0.75, 1e-12);
}

TEST(LayerDecay, ViTBlocksGetLearningRatesDecayingTowardsTheInput) {
  RunConfig config = default_run_config();
  config.backbone = "vit-s16";
  config.classes = 2;
  config.train.lr = 1e-3;
  config.train.head_lr_multiplier = 10.0;
  config.train.layer_decay = 0.5;
  ClassificationModel model = build_classifier(config);
  TrainingTask task;
  task.backbone = &model->backbone();
  task.head = model->head().get();
  task.layer_of = [&](const std::string& name) { return model->backbone().layer_of(name); };
  task.layer_count = model->backbone().layer_count();
  const auto groups = parameter_groups(task, config.train);
  ASSERT_EQ(groups.size(), 15u);  // embeddings, 12 blocks, final norm, head
  auto lr_of = [&](const std::string& name) {
    for (const auto& g : groups)
      if (std::find(g.names.begin(), g.names.end(), name) != g.names.end()) return g.lr;
    return -1.0;
  };
  EXPECT_DOUBLE_EQ(lr_of("patch_embed.proj.weight"), 1e-3 * std::pow(0.5, 13));
  EXPECT_DOUBLE_EQ(lr_of("cls_token"), 1e-3 * std::pow(0.5, 13));
  EXPECT_DOUBLE_EQ(lr_of("blocks.0.attn.qkv.weight"), 1e-3 * std::pow(0.5, 12));
  EXPECT_DOUBLE_EQ(lr_of("blocks.11.mlp.fc2.bias"), 1e-3 * 0.5);
  EXPECT_DOUBLE_EQ(lr_of("norm.weight"), 1e-3);
  EXPECT_DOUBLE_EQ(lr_of("weight"), 1e-2);  // the head
  std::size_t counted = 0;
  for (const auto& g : groups) counted += g.parameters.size();
  EXPECT_EQ(counted, model->parameters().size());
  config.train.layer_decay = 1.0;  // off: one backbone group
  EXPECT_EQ(parameter_groups(task, config.train).size(), 2u);
}

TEST(ChipManifest, ClassesComeFromCsvAndJsonAndBadChipsAreRefusedByName) {
  const std::string folder = graft::testing::temp_dir();
  std::mt19937 random(1);
  io::write(synthetic_chip({"water"}, random), folder + "/a.tif");
  io::Geometry volume_grid;
  volume_grid.size_xyz = {8, 8, 4};
  io::write(io::Image(io::DType::kF32, 1, volume_grid), folder + "/volume.nii.gz");
  std::ofstream(folder + "/m.csv") << "image,classes\na.tif, water ; vegetation \n";
  std::ofstream(folder + "/m.json") << R"([{"image": "a.tif", "classes": ["bare", "water"]}])";
  const auto csv = datasets::read_manifest(folder + "/m.csv");
  EXPECT_EQ(csv[0].classes, (std::vector<std::string>{"water", "vegetation"}));
  const auto json = datasets::read_manifest(folder + "/m.json");
  EXPECT_EQ(json[0].classes, (std::vector<std::string>{"bare", "water"}));
  EXPECT_EQ(datasets::class_names_of({csv[0], json[0]}), (std::vector<std::string>{"bare", "vegetation", "water"}));

  const RunConfig config = chip_run_config(folder + "/m.csv", folder + "/run");
  const preprocess::Contract contract = run_contract(config);
  const std::vector<std::string> names{"vegetation", "water"};
  const std::string two_classes = graft::testing::error_message(
      [&] { datasets::prepare_chip(csv[0], contract, {}, names, false); });
  EXPECT_NE(two_classes.find("a.tif"), std::string::npos) << two_classes;
  EXPECT_NE(two_classes.find("multi_label"), std::string::npos) << two_classes;
  const std::string unknown = graft::testing::error_message(
      [&] { datasets::prepare_chip(json[0], contract, {}, names, true); });
  EXPECT_NE(unknown.find("'bare'"), std::string::npos) << unknown;
  datasets::CaseEntry volume{"volume", folder + "/volume.nii.gz", "", "", {"water"}};
  const std::string three_d = graft::testing::error_message(
      [&] { datasets::prepare_chip(volume, contract, {}, names, false); });
  EXPECT_NE(three_d.find("volume.nii.gz"), std::string::npos) << three_d;
  EXPECT_NE(three_d.find("2D"), std::string::npos) << three_d;

  // A good chip: 13 bands in the weights' order, scaled by 1/10000, resized to the contract's size.
  const datasets::CaseEntry good{"a", folder + "/a.tif", "", "", {"water"}};
  const auto chip = datasets::prepare_chip(good, contract, {}, names, false);
  EXPECT_EQ(chip.image.sizes(), (torch::IntArrayRef{13, 64, 64}));
  EXPECT_EQ(chip.classes, (std::vector<int>{1}));
  const float water_band = chip.image[2].mean().item<float>(), other_band = chip.image[3].mean().item<float>();
  EXPECT_NEAR(water_band, 0.4, 0.01);   // (1500 + 2500) / 10000
  EXPECT_NEAR(other_band, 0.15, 0.01);  // 1500 / 10000
}

TEST(SceneClassification, LinearProbeAndFineTuneLearnSeparableClassesAndPredictFromTheFolder) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest =
      write_chip_manifest(folder, {{"water"}, {"vegetation"}, {"bare"}}, 20, 7);  // 60 chips, 15 for validation

  RunConfig probe = chip_run_config(manifest, folder + "/probe");
  probe.train.linear_probe = true;
  probe.train.epochs = 30;
  probe.train.lr = 1e-2;
  std::vector<TrainEvent> events;
  const TrainResult probed = train_classifier(probe, {[&](const TrainEvent& e) { events.push_back(e); }}, false);
  EXPECT_EQ(probed.metric, "val_accuracy");
  EXPECT_GE(probed.best_val_metric, 0.99) << "a linear probe on separable chips";
  // The backbone never moves in a linear probe: its weights equal a fresh model's with the seed.
  const auto saved = backbones::read_checkpoint(folder + "/probe/model.safetensors");
  torch::manual_seed(probe.seed);
  RunConfig resolved = probe;
  resolved.classes = 3;
  ClassificationModel fresh = build_classifier(resolved);
  const auto conv1 = std::find_if(saved.tensors.begin(), saved.tensors.end(),
                                  [](const auto& item) { return item.first == "backbone.conv1.weight"; });
  ASSERT_NE(conv1, saved.tensors.end());
  EXPECT_TRUE(torch::equal(backbones::to_torch(conv1->second), fresh->backbone().named_parameters()["conv1.weight"]));

  RunConfig tune = chip_run_config(manifest, folder + "/tune");
  // From random weights, batch norm's running statistics need some dozens of steps to settle.
  tune.train.epochs = 8;
  tune.train.lr = 5e-4;
  tune.train.head_lr_multiplier = 1.0;
  const TrainResult tuned = train_classifier(tune, {}, false);
  EXPECT_GE(tuned.best_val_metric, 0.9) << "fine-tuning separable chips from random weights";
  const auto written = read_json_file(folder + "/tune/config.json");
  EXPECT_EQ(written["class_names"], nlohmann::json({"bare", "vegetation", "water"}));
  EXPECT_EQ(written["classes"], 3);

  Classifier classifier(ModelFolder(folder + "/tune"));
  std::mt19937 random(99);
  for (const std::string name : {"bare", "vegetation", "water"}) {
    const auto p = classifier.probabilities(synthetic_chip({name}, random), name);
    const auto best = std::max_element(p.begin(), p.end()) - p.begin();
    EXPECT_EQ(classifier.class_names()[best], name);
    EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-5);
  }

  // The one predict entry point: a segmentation-only option is refused for a classifier, by name.
  const ModelFolder tuned_folder(folder + "/tune");
  EXPECT_EQ(tuned_folder.task(), Task::kClassification);
  PredictRequest request;
  request.inputs = {manifest};
  request.output = folder + "/classes.csv";
  request.mirror = true;
  const std::string refused = graft::testing::error_message([&] { predict(tuned_folder, request); });
  EXPECT_NE(refused.find("--tta applies to segmentation models"), std::string::npos) << refused;
  EXPECT_NE(refused.find("classification model"), std::string::npos) << refused;
  EXPECT_FALSE(fs::exists(request.output));
  // Without it, every image of the manifest gets a row, and its row names the class it shows.
  request.mirror = false;
  const PredictSummary summary = predict(tuned_folder, request);
  const auto entries = datasets::read_manifest(manifest);
  ASSERT_EQ(summary.cases.size(), entries.size());
  std::size_t right = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) right += summary.cases[i].result == entries[i].classes.at(0);
  EXPECT_GE(right, entries.size() * 9 / 10);
  std::ifstream table(request.output);
  std::string header;
  std::getline(table, header);
  EXPECT_EQ(header, "image,predicted,p_bare,p_vegetation,p_water");

  // A model folder is read whole or refused naming the file.
  const std::string missing = graft::testing::error_message([&] { ModelFolder(folder + "/nothing"); });
  EXPECT_NE(missing.find("nothing: not a model folder"), std::string::npos) << missing;
  fs::remove(folder + "/tune/model.safetensors");
  const std::string unweighted = graft::testing::error_message([&] { ModelFolder(folder + "/tune"); });
  EXPECT_NE(unweighted.find("tune/model.safetensors"), std::string::npos) << unweighted;
  const std::string other_task = graft::testing::error_message([&] { Predictor(ModelFolder(folder + "/probe")); });
  EXPECT_NE(other_task.find("'classification', not 'segmentation'"), std::string::npos) << other_task;
}

// A LoRA run on a ViT: its model folder keeps the adapters and the head, not the base weights,
// which it names and fingerprints; it predicts as the merged folder does; and a base checkpoint
// that has changed since is refused by name.
TEST(SceneClassification, LoraFolderKeepsAdaptersAndHeadAndPredictsAsItsMergedFolder) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_chip_manifest(folder, {{"water"}, {"vegetation"}, {"bare"}}, 12, 17);
  const std::string base_path = folder + "/base.safetensors";
  torch::manual_seed(21);
  auto base = backbones::create_backbone("geo-vit-s16-s2");
  backbones::write_safetensors(backbones::state_dict_of(*base), base_path);

  RunConfig config = chip_run_config(manifest, folder + "/lora");
  config.backbone = "geo-vit-s16-s2";
  config.weights = base_path;
  config.data.contract["target_size_xyz"] = {32, 32, 1};
  config.train.adapter = "lora";
  config.train.lora_rank = 4;
  config.train.epochs = 3;
  config.train.activation_checkpointing = true;
  const TrainResult result = train_classifier(config, {}, false);
  EXPECT_GT(result.best_val_metric, 0.5) << "three classes: chance is 1/3";

  const auto saved = backbones::read_checkpoint(folder + "/lora/model.safetensors");
  std::set<std::string> names;
  for (const auto& item : saved.tensors) names.insert(item.first);
  EXPECT_TRUE(names.count("backbone.blocks.0.attn.qkv.lora_A"));
  EXPECT_TRUE(names.count("backbone.blocks.11.attn.proj.lora_B"));
  EXPECT_FALSE(names.count("backbone.blocks.0.attn.qkv.weight")) << "the base weights stay in the base checkpoint";
  EXPECT_FALSE(names.count("backbone.patch_embed.proj.weight"));
  for (const auto& name : names) {
    EXPECT_TRUE(name.rfind("backbone.", 0) != 0 || name.find(".lora_") != std::string::npos) << name;
  }
  EXPECT_EQ(saved.values["graft.adapter"], "lora");
  EXPECT_EQ(saved.values["graft.base_weights"], fs::absolute(base_path).lexically_normal().string());
  EXPECT_LT(fs::file_size(folder + "/lora/model.safetensors") * 20, fs::file_size(base_path));
  const auto lora_b = std::find_if(saved.tensors.begin(), saved.tensors.end(),
                                   [](const auto& item) { return item.first == "backbone.blocks.3.attn.qkv.lora_B"; });
  ASSERT_NE(lora_b, saved.tensors.end());
  EXPECT_GT(backbones::to_torch(lora_b->second).abs().max().item<double>(), 0.0) << "the adapters trained";

  std::mt19937 random(31);
  std::vector<io::Image> chips;
  for (const std::string name : {"bare", "vegetation", "water"}) chips.push_back(synthetic_chip({name}, random));
  std::vector<std::vector<double>> adapted;
  {
    Classifier classifier(ModelFolder(folder + "/lora"));
    for (const auto& chip : chips) adapted.push_back(classifier.probabilities(chip, "chip"));
  }

  EXPECT_EQ(merge_adapter_folder(folder + "/lora", folder + "/merged"), 24);
  const auto merged_file = backbones::read_checkpoint(folder + "/merged/model.safetensors");
  EXPECT_FALSE(merged_file.values.contains("graft.adapter"));
  EXPECT_EQ(read_json_file(folder + "/merged/config.json")["train"]["adapter"], "none");
  EXPECT_FALSE(fs::exists(folder + "/merged/checkpoint.pt"));
  Classifier merged(ModelFolder(folder + "/merged"));
  for (std::size_t i = 0; i < chips.size(); ++i) {
    const auto p = merged.probabilities(chips[i], "chip");
    for (std::size_t c = 0; c < p.size(); ++c) EXPECT_NEAR(p[c], adapted[i][c], 1e-5) << i << " " << c;
  }

  // Another checkpoint at the recorded path: the adapters no longer belong to it.
  torch::manual_seed(22);
  backbones::write_safetensors(backbones::state_dict_of(*backbones::create_backbone("geo-vit-s16-s2")), base_path);
  const std::string changed = graft::testing::error_message([&] { Classifier(ModelFolder(folder + "/lora")); });
  EXPECT_NE(changed.find("lora/model.safetensors"), std::string::npos) << changed;
  EXPECT_NE(changed.find("graft.base_fingerprint"), std::string::npos) << changed;
  fs::remove(base_path);
  const std::string missing = graft::testing::error_message([&] { Classifier(ModelFolder(folder + "/lora")); });
  EXPECT_NE(missing.find("graft.base_weights"), std::string::npos) << missing;
  // The merged folder needs no base checkpoint.
  EXPECT_NO_THROW(Classifier(ModelFolder(folder + "/merged")));
}

// A side-tuning run on a ViT: its model folder keeps the side network and the head, not the base
// weights; loading it puts the side network back on the base; and merging is refused, naming it.
TEST(SceneClassification, SideNetworkFolderKeepsTheSideNetworkAndHeadAndLoadsItOnTheBase) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_chip_manifest(folder, {{"water"}, {"vegetation"}, {"bare"}}, 12, 19);
  const std::string base_path = folder + "/base.safetensors";
  torch::manual_seed(23);
  backbones::write_safetensors(backbones::state_dict_of(*backbones::create_backbone("geo-vit-s16-s2")), base_path);

  RunConfig config = chip_run_config(manifest, folder + "/side");
  config.backbone = "geo-vit-s16-s2";
  config.weights = base_path;
  config.data.contract["target_size_xyz"] = {32, 32, 1};
  config.train.adapter = "side";
  config.train.epochs = 3;
  const TrainResult result = train_classifier(config, {}, false);
  EXPECT_GT(result.best_val_metric, 0.5) << "three classes: chance is 1/3";

  const auto saved = backbones::read_checkpoint(folder + "/side/model.safetensors");
  std::set<std::string> names;
  for (const auto& item : saved.tensors) names.insert(item.first);
  EXPECT_TRUE(names.count("backbone.side_network.up.weight"));
  EXPECT_TRUE(names.count("backbone.side_network.blocks.11.attn.qkv.weight"));
  for (const auto& name : names) {
    EXPECT_TRUE(name.rfind("backbone.", 0) != 0 || name.rfind("backbone.side_network.", 0) == 0) << name;
  }
  EXPECT_EQ(saved.values["graft.adapter"], "side");
  EXPECT_LT(fs::file_size(folder + "/side/model.safetensors") * 5, fs::file_size(base_path));

  // The folder's backbone is the base with the trained side network on it: not the base alone.
  const ModelFolder model_folder(folder + "/side");
  const auto loaded = load_folder_backbone(model_folder);
  auto* vit = dynamic_cast<backbones::TimmVitImpl*>(loaded.get());
  ASSERT_NE(vit, nullptr);
  EXPECT_TRUE(vit->has_side_network());
  auto base = backbones::create_backbone("geo-vit-s16-s2");
  backbones::load_weights(*base, base_path, true);
  base->eval();
  torch::manual_seed(5);
  const int bands = backbones::find_backbone("geo-vit-s16-s2").contract.channel_count();
  const torch::Tensor chips = torch::randn({2, bands, 32, 32});
  torch::NoGradGuard no_grad;
  EXPECT_GT((loaded->embedding(chips) - base->embedding(chips)).abs().max().item<double>(), 1e-4);
  EXPECT_NO_THROW(Classifier(ModelFolder(folder + "/side")));

  const std::string merge = graft::testing::error_message([&] { merge_adapter_folder(folder + "/side", folder + "/merged"); });
  EXPECT_NE(merge.find("side network"), std::string::npos) << merge;
  EXPECT_FALSE(fs::exists(folder + "/merged"));
}

// graft rank on a chip manifest: one pooled embedding per labelled chip, for a ResNet and a ViT through their own Contracts, best first, each with its time.
TEST(SceneClassification, RankScoresBackbonesOnChipsWithPooledEmbeddings) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest = write_chip_manifest(folder, {{"water"}, {"vegetation"}, {"bare"}}, 6, 23);
  RankRequest request;
  request.settings = chip_run_config(manifest, folder + "/unused");
  request.settings.data.contract["target_size_xyz"] = {32, 32, 1};
  request.backbones = {"geo-resnet18-s2", "geo-vit-s16-s2"};
  std::vector<std::string> heard;
  const auto rows = rank_backbones(request, [&](const std::string& step) { heard.push_back(step); });
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(heard, (std::vector<std::string>{"backbone 1 of 2: geo-resnet18-s2", "backbone 2 of 2: geo-vit-s16-s2"}));
  EXPECT_GE(rows[0].logme, rows[1].logme);
  for (const auto& row : rows) {
    EXPECT_EQ(row.samples, 18) << row.backbone << ": every chip, training and validation folds alike";
    EXPECT_EQ(row.dims, row.backbone == "geo-vit-s16-s2" ? 384 : 512) << row.backbone;
    EXPECT_EQ(row.level, "pooled");
    EXPECT_GT(row.seconds, 0.0);
    EXPECT_TRUE(std::isfinite(row.logme));
  }
  const std::string table = rank_table(rows);
  EXPECT_NE(table.find("geo-vit-s16-s2"), std::string::npos) << table;
  request.weights = {"only-one.pth"};
  const std::string refused = graft::testing::error_message([&] { rank_backbones(request); });
  EXPECT_NE(refused.find("1 checkpoints for 2 backbones"), std::string::npos) << refused;
}

TEST(SceneClassification, MultiLabelChipsTrainWithBinaryCrossEntropy) {
  const std::string folder = graft::testing::temp_dir();
  const std::string manifest =
      write_chip_manifest(folder, {{"water"}, {"vegetation"}, {"water", "vegetation"}, {"bare", "water"}}, 12, 3);
  RunConfig config = chip_run_config(manifest, folder + "/run");
  config.multi_label = true;
  config.train.epochs = 8;
  const TrainResult result = train_classifier(config, {}, false);
  EXPECT_EQ(result.metric, "val_f1_micro");
  EXPECT_GE(result.best_val_metric, 0.9);
  Classifier classifier(ModelFolder(folder + "/run"));
  EXPECT_TRUE(classifier.multi_label());
  std::mt19937 random(5);
  const auto p = classifier.probabilities(synthetic_chip({"water", "vegetation"}, random), "both");
  // Sorted names: bare, vegetation, water.
  EXPECT_LT(p[0], 0.5);
  EXPECT_GT(p[1], 0.5);
  EXPECT_GT(p[2], 0.5);
  // A single-label run refuses the same manifest, naming the chip.
  config.multi_label = false;
  config.output = folder + "/single";
  const std::string refused = graft::testing::error_message([&] { train_classifier(config, {}, false); });
  EXPECT_NE(refused.find("multi_label"), std::string::npos) << refused;
}

TEST(SceneClassification, AMedMnistNpzTrainsWithItsSplitsAndReportsTestAccuracyAndAuc) {
  const std::string python = graft::testing::python_with("numpy");
  if (python.empty()) GTEST_SKIP() << "Debian python3-numpy is not installed";
  const std::string folder = graft::testing::temp_dir();
  // Grey 28 x 28 images: class 1 has a bright centre square, class 0 a dark one; labels (N, 1).
  const std::string script =
      "import numpy as np; r = np.random.default_rng(0)\n"
      "def make(n):\n"
      "    y = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1)\n"
      "    x = r.integers(60, 120, size=(n, 28, 28)).astype(np.uint8)\n"
      "    x[y[:, 0] == 1, 9:19, 9:19] += 120\n"
      "    return x, y\n"
      "a, b = make(40); c, d = make(10); e, f = make(20)\n"
      "np.savez('" + folder + "/mnist.npz', train_images=a, train_labels=b, val_images=c, val_labels=d, "
      "test_images=e, test_labels=f)";
  std::ofstream(folder + "/make.py") << script;
  ASSERT_EQ(graft::testing::run_command(python + " " + folder + "/make.py"), 0);
  RunConfig config = chip_run_config(folder + "/mnist.npz", folder + "/run");
  config.backbone = "vit-s16";  // RGB: the grey channel is replicated
  config.data.contract["target_size_xyz"] = {32, 32, 1};
  config.train.linear_probe = true;
  config.train.epochs = 40;
  config.train.lr = 1e-2;
  const TrainResult result = train_classifier(config, {}, false);
  EXPECT_GE(result.best_val_metric, 0.9);
  ASSERT_TRUE(result.test_metrics.count("test_accuracy"));
  EXPECT_GE(result.test_metrics.at("test_accuracy"), 0.9);
  EXPECT_GE(result.test_metrics.at("test_auc"), 0.95);
  EXPECT_GE(result.test_metrics.at("test_knn20_accuracy"), 0.9);
  EXPECT_GE(result.test_metrics.at("test_prototype_accuracy"), 0.9);
  const auto report = read_json_file(folder + "/run/test_metrics.json");
  EXPECT_EQ(report["cases"], 20);
  EXPECT_EQ(read_json_file(folder + "/run/config.json")["class_names"], nlohmann::json({"0", "1"}));
}

}  // namespace
}  // namespace graft::finetune
