// The FCOS detector trained end to end on synthetic data whose boxes are known.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "datasets/image_tensor.h"
#include "finetune/tasks/detection/detection_training.h"
#include "finetune/run_config.h"
#include "finetune/inference/sliding_window.h"
#include "finetune/trainer.h"
#include "io/error.h"
#include "io/image_file.h"
#include "preprocess/plan.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

// A CT-like 48^3 volume at 1 mm: lung parenchyma (-800 HU, noise 60) crossed by one vessel (a
// tube of radius 1.5 mm at +40 HU, not a target) and holding 1 to 3 nodules (balls of radius
// 3 to 6 mm at +40 HU with a soft edge), labelled 1 where the ball is.
datasets::PreparedCase nodule_case(std::uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 60.0);
  io::Geometry grid;
  grid.size_xyz = {48, 48, 48};
  struct Ball {
    double x, y, z, r;
  };
  std::vector<Ball> balls;
  const int count = 1 + static_cast<int>(uniform(random) * 3);
  while (static_cast<int>(balls.size()) < count) {
    const Ball ball{8 + uniform(random) * 32, 8 + uniform(random) * 32, 8 + uniform(random) * 32, 3 + uniform(random) * 3};
    bool apart = true;
    for (const Ball& other : balls) {
      apart &= std::hypot(ball.x - other.x, ball.y - other.y, ball.z - other.z) > ball.r + other.r + 4;
    }
    if (apart) balls.push_back(ball);
  }
  // The vessel: a line through the volume along a random direction.
  const double vx = uniform(random) - 0.5, vy = uniform(random) - 0.5, vz = 0.3;
  const double vn = std::sqrt(vx * vx + vy * vy + vz * vz);
  const double px = 24 + (uniform(random) - 0.5) * 20, py = 24 + (uniform(random) - 0.5) * 20;
  datasets::PreparedCase prepared;
  prepared.id = "nodules" + std::to_string(seed);
  prepared.image = io::Image(io::DType::kF32, 1, grid);
  prepared.labels = io::Image(io::DType::kU8, 1, grid);
  float* hu = prepared.image.data<float>();
  std::uint8_t* label = prepared.labels.data<std::uint8_t>();
  for (int z = 0; z < 48; ++z) {
    for (int y = 0; y < 48; ++y) {
      for (int x = 0; x < 48; ++x) {
        const std::int64_t i = (z * 48 + y) * 48 + x;
        double tissue = 0.0;
        for (const Ball& ball : balls) {
          const double d = std::hypot(x - ball.x, y - ball.y, z - ball.z);
          tissue = std::max(tissue, 1.0 / (1.0 + std::exp((d - ball.r) / 0.7)));
          if (d <= ball.r) label[i] = 1;
        }
        // Distance from (x, y, z) to the vessel's axis.
        const double dx = x - px, dy = y - py, dz = z - 24.0;
        const double along = (dx * vx + dy * vy + dz * vz) / vn;
        const double off = std::sqrt(std::max(0.0, dx * dx + dy * dy + dz * dz - along * along));
        tissue = std::max(tissue, 1.0 / (1.0 + std::exp((off - 1.5) / 0.5)));
        // z-scored as the contract would leave it: (HU + 800) / 300.
        hu[i] = static_cast<float>((-800.0 + 840.0 * tissue + noise(random) + 800.0) / 300.0);
      }
    }
  }
  for (std::int64_t i = 0; i < 48 * 48 * 48; ++i) {
    if (label[i]) prepared.foreground.push_back(i);
  }
  return prepared;
}

// The best IoU with `reference` of the first `top` detections whose centre lies inside it (a hit
// as LUNA16 counts one).
double best_hitting_iou(const std::vector<io::Box>& found, const io::Box& reference, std::size_t top) {
  double best = 0.0;
  for (std::size_t d = 0; d < std::min(found.size(), top); ++d) {
    const io::Vec3 centre = io::box_centre(found[d]);
    bool inside = true;
    for (int a = 0; a < 3; ++a) inside &= centre[a] >= reference.start_xyz[a] && centre[a] <= reference.end_xyz[a];
    if (inside) best = std::max(best, io::box_iou(found[d], reference));
  }
  return best;
}

// Cases of equal x, y size, one above the other.
datasets::PreparedCase stack_along_z(const std::vector<datasets::PreparedCase>& cases) {
  io::Geometry grid = cases[0].image.geometry();
  grid.size_xyz[2] = 0;
  for (const auto& c : cases) grid.size_xyz[2] += c.image.geometry().size_xyz[2];
  datasets::PreparedCase stacked;
  stacked.image = io::Image(io::DType::kF32, 1, grid);
  stacked.labels = io::Image(io::DType::kU8, 1, grid);
  std::size_t image_at = 0, label_at = 0;
  for (const auto& c : cases) {
    std::memcpy(stacked.image.bytes() + image_at, c.image.bytes(), c.image.byte_count());
    std::memcpy(stacked.labels.bytes() + label_at, c.labels.bytes(), c.labels.byte_count());
    image_at += c.image.byte_count();
    label_at += c.labels.byte_count();
  }
  return stacked;
}

// The best weights of a finished run, in a detector built from its config.
DetectionModel build_and_load(const RunConfig& config) {
  DetectionModel model = build_detector(config);
  load_best_weights(*model, config.output);
  return model;
}

// A detection run on synthetic cases made already normalised on their final grid (the saved
// Plan changes nothing): 20 batches per epoch, AdamW at 1e-3 with a cosine schedule.
RunConfig detection_config(const std::string& folder, const std::string& backbone,
                                const std::vector<std::int64_t>& patch_xyz, int batch_size, int epochs) {
  RunConfig config = default_run_config();
  config.task = "detection";
  config.backbone = backbone;
  config.classes = 2;
  config.output = folder + "/detector";
  config.data.patch_size = patch_xyz;
  config.data.batch_size = batch_size;
  config.data.batches_per_epoch = 20;
  config.data.foreground_fraction = 0.67;
  config.data.workers = 1;
  config.data.contract = {{"resize", "none"}, {"crop_nonzero", false}, {"intensity", nlohmann::json::array()}};
  config.train.epochs = epochs;
  config.train.optimizer = "adamw";
  config.train.lr = 1e-3;
  config.train.head_lr_multiplier = 1.0;
  config.train.schedule = "cosine";
  return config;
}

// One volume, one batch: the loss must fall and the detections must find the nodules.
TEST(Detection, OneBatchIsLearnt) {
  const datasets::PreparedCase c = nodule_case(7);
  const std::vector<io::Box> references = io::boxes_from_labels(c.labels);
  RunConfig config = default_run_config();
  config.backbone = "med3d-resnet10";
  config.classes = 2;
  torch::manual_seed(0);
  DetectionModel model = build_detector(config);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3));
  const torch::Tensor input = datasets::image_to_tensor(c.image).unsqueeze(0);
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    optimizer.zero_grad();
    const torch::Tensor loss = detection_loss(model->forward(input), {references});
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  const auto found = detect_image(*model, c.image, {});
  std::printf("one batch: loss %.3f -> %.3f, %zu references, %zu detections, best score %.3f\n", first, last,
              references.size(), found.size(), found.empty() ? 0.0 : found[0].score);
  for (const auto& r : references) {
    double best = 0;
    for (const auto& d : found) best = std::max(best, io::box_iou(d, r));
    std::printf("  reference [%.1f %.1f %.1f]-[%.1f %.1f %.1f]: best IoU %.3f\n", r.start_xyz[0], r.start_xyz[1],
                r.start_xyz[2], r.end_xyz[0], r.end_xyz[1], r.end_xyz[2], best);
  }
  EXPECT_LT(last, 0.5 * first);
}

TEST(Detection, SyntheticNodulesTrainToAFrocOfAtLeast08) {
  std::vector<datasets::PreparedCase> train_cases, val_cases;
  for (std::uint32_t seed = 0; seed < 12; ++seed) train_cases.push_back(nodule_case(seed));
  for (std::uint32_t seed = 100; seed < 104; ++seed) val_cases.push_back(nodule_case(seed));
  const std::string folder = graft::testing::temp_dir();
  const RunConfig config = detection_config(folder, "med3d-resnet10", {32, 32, 32}, 2, 16);
  const TrainResult result = train_detector_prepared(config, train_cases, val_cases, {}, false);
  std::printf("synthetic nodules: validation FROC per epoch");
  for (const double value : result.val_metric_per_epoch) std::printf(" %.3f", value);
  std::printf("\n");
  EXPECT_GE(result.best_val_metric, 0.8);

  // The model folder detects a validation volume written as NIfTI on an LPS grid with an
  // origin of its own, and the boxes come back in that grid's world coordinates.
  datasets::PreparedCase c = nodule_case(101);
  c.image.geometry().origin_world = {-120.0, 40.0, 300.0};
  c.labels.geometry() = c.image.geometry();
  const std::string scan = folder + "/scan.nii.gz";
  io::write(c.image, scan);
  Detector detector(ModelFolder(config.output));
  const io::Image read_back = io::read(scan);
  const std::vector<io::Box> found = detector.detect(read_back, scan);
  const std::vector<io::Box> references = io::boxes_from_labels(c.labels);
  ASSERT_FALSE(references.empty());
  for (const io::Box& reference : references) {
    const double best = best_hitting_iou(found, reference, 3 * references.size());
    std::printf("  nodule of %.0f voxels across: best hitting detection IoU %.3f\n", io::box_size(reference)[0], best);
    EXPECT_GE(best, 0.3) << "a nodule among the top detections";
  }

  // Three validation volumes stacked along z (48 x 48 x 144) are detected in 64^3 windows (twice
  // the training patch); every nodule, seams included, is hit once among the top detections.
  const datasets::PreparedCase tall = stack_along_z({nodule_case(101), nodule_case(102), nodule_case(103)});
  const std::string tall_scan = folder + "/tall.nii.gz";
  io::write(tall.image, tall_scan);
  int windows = 0;
  DetectionWindow window = detection_window(config);
  window.progress = [&](double) { ++windows; };
  DetectionModel trained = build_and_load(config);
  const std::vector<io::Box> tall_found = detect_image(*trained, tall.image, decode_options(config), window);
  EXPECT_EQ(windows, 4) << "z starts 0, 27, 53, 80";
  const std::vector<io::Box> tall_whole = detect_image(*trained, tall.image, decode_options(config));
  const std::vector<io::Box> tall_references = io::boxes_from_labels(tall.labels);
  const std::vector<io::Box> tall_by_detector = detector.detect(io::read(tall_scan), tall_scan);
  for (const io::Box& reference : tall_references) {
    const std::size_t top = 3 * tall_references.size();
    const double best = best_hitting_iou(tall_found, reference, top);
    const double whole = best_hitting_iou(tall_whole, reference, top);
    std::printf("  stacked volume, nodule at z %.0f: best hitting detection IoU %.3f in windows, %.3f whole\n",
                io::box_centre(reference)[2], best, whole);
    EXPECT_GT(best, 0.0) << "a nodule of the stacked volume is hit among the top detections";
    EXPECT_GE(best, whole - 0.1) << "windows find what the whole volume finds";
    EXPECT_EQ(best_hitting_iou(tall_by_detector, reference, top), best) << "the Detector detects in the same windows";
    int strong_hits = 0;
    for (const io::Box& d : tall_found) strong_hits += d.score >= 0.5 && io::box_iou(d, reference) >= 0.1;
    EXPECT_LE(strong_hits, 1) << "a nodule kept by two windows";
  }
  const nlohmann::json world = io::boxes_to_json(found, read_back.geometry(), detector.class_names());
  EXPECT_EQ(world["frame"], "LPS");
}

TEST(Detection, WindowCoresPartitionTheAxisAndStayHalfTheOverlapInside) {
  const std::vector<std::int64_t> starts = window_starts(144, 64, 0.5);
  ASSERT_EQ(starts, (std::vector<std::int64_t>{0, 27, 53, 80}));
  const auto cores = window_cores(starts, 64);
  ASSERT_EQ(cores.size(), 4u);
  EXPECT_TRUE(std::isinf(cores[0][0]) && cores[0][0] < 0);
  EXPECT_TRUE(std::isinf(cores[3][1]) && cores[3][1] > 0);
  // Windows 0 and 1 overlap on voxels 27..63, continuous [26.5, 63.5): the split is at 45.
  EXPECT_DOUBLE_EQ(cores[0][1], 45.0);
  for (std::size_t i = 0; i + 1 < cores.size(); ++i) {
    EXPECT_EQ(cores[i][1], cores[i + 1][0]) << "cores meet";
    const double overlap = starts[i] + 64 - starts[i + 1];
    EXPECT_DOUBLE_EQ(starts[i] + 63.5 - cores[i][1], overlap / 2) << "window " << i << "'s far edge";
    EXPECT_DOUBLE_EQ(cores[i + 1][0] - (starts[i + 1] - 0.5), overlap / 2) << "window " << i + 1 << "'s near edge";
  }
  EXPECT_EQ(window_cores({0}, 64)[0][1], std::numeric_limits<double>::infinity());
}

TEST(Detection, WindowDefaultsToTwiceThePatchAndRefusesBadSizes) {
  RunConfig config = default_run_config();
  config.data.patch_size = {64, 48, 1};
  const DetectionWindow window = detection_window(config);
  EXPECT_EQ(window.size_xyz, (std::array<std::int64_t, 3>{128, 96, 1}));
  config.detection.window_size = {100, 100};
  EXPECT_THROW(detection_window(config), Error);
  config.detection.window_size = {100, 0, 1};
  EXPECT_THROW(detection_window(config), Error);
}

// A 96 x 96 image of sky noise with 2 to 5 clumps: Gaussian blobs of sigma 1.5 to 4 px, labelled
// out to 2 sigma, as giant star-forming clumps sit in galaxy images.
datasets::PreparedCase clump_image(std::uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 0.15);
  io::Geometry grid;
  grid.size_xyz = {96, 96, 1};
  struct Clump {
    double x, y, sigma;
  };
  std::vector<Clump> clumps;
  const int count = 2 + static_cast<int>(uniform(random) * 4);
  while (static_cast<int>(clumps.size()) < count) {
    const Clump clump{10 + uniform(random) * 76, 10 + uniform(random) * 76, 1.5 + uniform(random) * 2.5};
    bool apart = true;
    for (const Clump& other : clumps) apart &= std::hypot(clump.x - other.x, clump.y - other.y) > 2 * (clump.sigma + other.sigma) + 3;
    if (apart) clumps.push_back(clump);
  }
  datasets::PreparedCase prepared;
  prepared.id = "clumps" + std::to_string(seed);
  prepared.image = io::Image(io::DType::kF32, 1, grid);
  prepared.labels = io::Image(io::DType::kU8, 1, grid);
  float* flux = prepared.image.data<float>();
  std::uint8_t* label = prepared.labels.data<std::uint8_t>();
  for (int y = 0; y < 96; ++y) {
    for (int x = 0; x < 96; ++x) {
      double value = noise(random);
      for (const Clump& clump : clumps) {
        const double d = std::hypot(x - clump.x, y - clump.y);
        value += std::exp(-0.5 * d * d / (clump.sigma * clump.sigma));
        if (d <= 2 * clump.sigma) label[y * 96 + x] = 1;
      }
      flux[y * 96 + x] = static_cast<float>(value);
      if (label[y * 96 + x]) prepared.foreground.push_back(y * 96 + x);
    }
  }
  return prepared;
}

TEST(Detection, SyntheticClumpsTrainToAMapAt05OfAtLeast08) {
  std::vector<datasets::PreparedCase> train_cases, val_cases;
  for (std::uint32_t seed = 0; seed < 16; ++seed) train_cases.push_back(clump_image(seed));
  for (std::uint32_t seed = 200; seed < 206; ++seed) val_cases.push_back(clump_image(seed));
  RunConfig config = detection_config(graft::testing::temp_dir(), "geo-resnet18-s2", {64, 64, 1}, 4, 12);
  config.in_channels = 1;
  const TrainResult result = train_detector_prepared(config, train_cases, val_cases, {}, false);
  std::printf("synthetic clumps: validation mAP@0.5 per epoch");
  for (const double value : result.val_metric_per_epoch) std::printf(" %.3f", value);
  std::printf("\n");
  EXPECT_GE(result.best_val_metric, 0.8);
}

// A manifest whose label is a box CSV trains through the label-map path: the prepared case's
// components are the annotated boxes, on the Plan's grid.
TEST(Detection, BoxAnnotationsInAManifestBecomeThePreparedCasesBoxes) {
  const std::string folder = graft::testing::temp_dir();
  datasets::PreparedCase c = nodule_case(3);
  c.image.geometry().spacing_xyz = {0.8, 0.8, 2.0};
  io::write(c.image, folder + "/scan.nii.gz");
  std::ofstream(folder + "/scan_boxes.csv") << "start_x,start_y,start_z,end_x,end_y,end_z\n4.5,5.5,6.5,10.5,12.5,9.5\n";
  preprocess::Contract contract;  // keeps the grid
  const datasets::CaseEntry entry{"scan", folder + "/scan.nii.gz", folder + "/scan_boxes.csv", "train"};
  const datasets::PreparedCase prepared = datasets::prepare_case(entry, contract, {0}, 2);
  const std::vector<io::Box> boxes = io::boxes_from_labels(prepared.labels);
  ASSERT_EQ(boxes.size(), 1u);
  EXPECT_EQ(boxes[0].start_xyz, (io::Vec3{4.5, 5.5, 6.5}));
  EXPECT_EQ(boxes[0].end_xyz, (io::Vec3{10.5, 12.5, 9.5}));
}

}  // namespace
}  // namespace graft::finetune
