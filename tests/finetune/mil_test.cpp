// ABMIL on HDF5 feature bags with a known answer: "tumour" slides hold a few instances whose
// first feature is raised, normal slides hold none. The model must classify the slides and put
// its attention on the raised instances.
#include "finetune/tasks/mil/mil.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "finetune/run_config.h"
#include "io/error.h"
#include "io/hdf5/hdf5_file.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

struct WrittenBag {
  std::string path;
  std::vector<int> positive_instances;
};

WrittenBag write_bag(const std::string& path, bool tumour, std::mt19937& random) {
  const std::int64_t dim = 16;
  std::uniform_int_distribution<int> size(20, 60), positives(3, 6);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const int n = size(random);
  std::vector<float> features(n * dim);
  for (auto& value : features) value = noise(random);
  WrittenBag bag{path, {}};
  if (tumour) {
    const int count = positives(random);
    for (int k = 0; k < count; ++k) {
      const int i = std::uniform_int_distribution<int>(0, n - 1)(random);
      features[i * dim] += 4.0f;
      bag.positive_instances.push_back(i);
    }
  }
  std::vector<std::array<std::int64_t, 2>> coords(n);
  for (int i = 0; i < n; ++i) coords[i] = {i * 224, 0};
  io::write_feature_bag(path, features, dim, coords, {{"patch_size", 224}});
  return bag;
}

TEST(Mil, AttentionMilClassifiesBagsAndAttendsToTheRaisedInstances) {
  const std::string folder = graft::testing::temp_dir();
  std::mt19937 random(5);
  std::ofstream manifest(folder + "/slides.csv");
  manifest << "image,classes,split\n";
  std::vector<WrittenBag> test_bags;
  for (int i = 0; i < 60; ++i) {
    const bool tumour = i % 2 == 1;
    const std::string split = i < 40 ? "train" : i < 50 ? "val" : "test";
    const WrittenBag bag = write_bag(folder + "/slide" + std::to_string(i) + ".h5", tumour, random);
    manifest << bag.path << "," << (tumour ? "tumour" : "normal") << "," << split << "\n";
    if (split == "test") test_bags.push_back(bag);
  }
  manifest.close();
  RunConfig config = default_run_config();
  config.task = "mil";
  config.output = folder + "/model";
  config.data.manifest = folder + "/slides.csv";
  config.mil.hidden = 64;
  config.mil.attention = 32;
  config.train.epochs = 12;
  config.train.optimizer = "adamw";
  config.train.lr = 5e-4;
  config.train.head_lr_multiplier = 1.0;
  config.train.schedule = "constant";
  BagSplits splits = read_bag_splits(config);
  EXPECT_EQ(config.class_names, (std::vector<std::string>{"normal", "tumour"}));
  ASSERT_EQ(splits.train.size(), 40u);
  const TrainResult result = train_mil_prepared(config, splits.train, splits.val, {}, false, splits.test);
  EXPECT_GE(result.best_val_metric, 0.9);
  EXPECT_GE(result.test_metrics.at("test_accuracy"), 0.9);
  EXPECT_GE(result.test_metrics.at("test_auc"), 0.95);

  // In every tumour bag of the test split, the most attended instance is a raised one.
  MilModel model(16, 2, 64, 32, 0.25);
  load_best_weights(*model, folder + "/model");
  torch::NoGradGuard no_grad;
  for (std::size_t b = 0; b < test_bags.size(); ++b) {
    if (test_bags[b].positive_instances.empty()) continue;
    const torch::Tensor attention = model->attention(splits.test[b].features);
    EXPECT_NEAR(attention.sum().item<double>(), 1.0, 1e-5);
    const int top = static_cast<int>(attention.argmax().item<std::int64_t>());
    const auto& raised = test_bags[b].positive_instances;
    EXPECT_NE(std::find(raised.begin(), raised.end(), top), raised.end()) << test_bags[b].path;
  }

  // The model folder alone labels a slide from its bag, with attention and coordinates per patch.
  MilPredictor predictor(ModelFolder(folder + "/model"));
  EXPECT_EQ(predictor.class_names(), (std::vector<std::string>{"normal", "tumour"}));
  for (std::size_t b = 0; b < test_bags.size(); ++b) {
    const auto prediction = predictor.predict(test_bags[b].path);
    const bool tumour = !test_bags[b].positive_instances.empty();
    EXPECT_EQ(prediction.probabilities[1] > 0.5, tumour) << test_bags[b].path;
    EXPECT_EQ(prediction.attention.size(), static_cast<std::size_t>(splits.test[b].features.size(0)));
    ASSERT_EQ(prediction.coords.size(), prediction.attention.size());
    EXPECT_EQ(prediction.coords[2], (std::array<std::int64_t, 2>{448, 0}));
  }
}

TEST(Mil, BagsOfDifferentWidthsAreRefusedNamingTheFile) {
  const std::string folder = graft::testing::temp_dir();
  io::write_feature_bag(folder + "/a.h5", std::vector<float>(8, 0.0f), 4, {{0, 0}, {1, 0}}, {});
  io::write_feature_bag(folder + "/b.h5", std::vector<float>(6, 0.0f), 3, {{0, 0}, {1, 0}}, {});
  std::ofstream(folder + "/m.csv") << "image,classes\na.h5,x\nb.h5,y\n";
  RunConfig config = default_run_config();
  config.task = "mil";
  config.data.manifest = folder + "/m.csv";
  const std::string message = graft::testing::error_message([&] { read_bag_splits(config); });
  EXPECT_NE(message.find("b.h5"), std::string::npos) << message;
  EXPECT_NE(message.find("3-dimensional"), std::string::npos) << message;
}

}  // namespace
}  // namespace graft::finetune
