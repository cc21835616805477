#include "preprocess/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::preprocess {
namespace {

using io::Image;

// An oblique, anisotropic, non-RAS scan with a sphere of label 1 and a box of label 2 inside a
// zero background, so crop, reorient and resample all have work to do.
std::pair<Image, Image> scan_and_labels() {
  io::Geometry g;
  g.size_xyz = {48, 40, 16};
  g.spacing_xyz = {0.7, 0.7, 3.5};
  g.origin_world = {30.0, -25.0, 12.0};
  const double c = std::cos(0.15), s = std::sin(0.15);
  g.direction = {{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}};  // LPS storage, rotated
  Image image(io::DType::kI16, 1, g), labels(io::DType::kU8, 1, g);
  for (std::int64_t z = 0; z < 16; ++z)
    for (std::int64_t y = 0; y < 40; ++y)
      for (std::int64_t x = 0; x < 48; ++x) {
        const double dx = (x - 22) * 0.7, dy = (y - 20) * 0.7, dz = (z - 8) * 3.5;
        const std::int64_t i = image.offset(0, z, y, x);
        if (x >= 6 && x < 42 && y >= 5 && y < 36 && z >= 2 && z < 14) image.data<std::int16_t>()[i] = 40;
        if (dx * dx + dy * dy + dz * dz < 100.0) {
          labels.data<std::uint8_t>()[i] = 1;
          image.data<std::int16_t>()[i] = 120;
        } else if (x >= 30 && x < 38 && y >= 10 && y < 18 && z >= 4 && z < 12) {
          labels.data<std::uint8_t>()[i] = 2;
          image.data<std::int16_t>()[i] = 300;
        }
      }
  return {image, labels};
}

Contract full_contract() {
  Contract contract;
  contract.name = "test";
  contract.orientation = "RAS";
  contract.crop_nonzero = true;
  contract.resize = ResizeRule::kSpacing;
  contract.target_spacing_mm = {1.0, 1.0, 1.0};
  IntensityStep zscore;
  zscore.over_nonzero = true;
  contract.intensity.push_back(zscore);
  return contract;
}

double dice(const Image& a, const Image& b, int label) {
  std::int64_t both = 0, total = 0;
  for (std::int64_t i = 0; i < a.element_count(); ++i) {
    const bool in_a = a.value_at(i) == label, in_b = b.value_at(i) == label;
    both += in_a && in_b;
    total += in_a + in_b;
  }
  return 2.0 * both / total;
}

TEST(Plan, AVolumeContractRefusesASingleSliceImageNamingItsDimensions) {
  Contract contract = full_contract();
  contract.name = "med3d-resnet10";
  contract.resize = ResizeRule::kSize;
  contract.target_size_xyz = {448, 448, 56};
  io::Geometry scene;
  scene.size_xyz = {757, 711, 1};
  const Image image(io::DType::kU8, 3, scene);
  const std::string message = graft::testing::error_message([&] { make_plan(contract, image, 0); });
  EXPECT_NE(message.find("med3d-resnet10 is the Contract of a 3D backbone"), std::string::npos) << message;
  EXPECT_NE(message.find("2D image (757 x 711 x 1)"), std::string::npos) << message;
  Contract flat;
  flat.name = "a 2D backbone's";
  flat.spatial_dims = 2;
  EXPECT_NO_THROW(make_plan(flat, image, 0));
}

TEST(Plan, FillsInEveryStepWithNumbers) {
  const auto [image, labels] = scan_and_labels();
  const Plan plan = make_plan(full_contract(), image);
  EXPECT_FALSE(plan.permutation.is_identity());
  ASSERT_TRUE(plan.crop.has_value());
  ASSERT_TRUE(plan.resample.has_value());
  // RAS reorientation flips x and y; the nonzero block is 36 x 31 x 12 voxels.
  EXPECT_EQ(plan.crop->size_xyz, (std::array<std::int64_t, 3>{36, 31, 12}));
  EXPECT_EQ(plan.resample->size_xyz, (SizeXyz{25, 22, 42}));  // round(36*.7), round(31*.7), 12*3.5
  EXPECT_EQ(plan.resample->separate_axis, 2);                // 3.5 / 0.7 = 5 > 3
  EXPECT_EQ(io::orientation_code(plan.output_geometry.direction), "RAS");
  const std::string text = to_text(plan);
  EXPECT_NE(text.find("reorient to RAS"), std::string::npos);
  EXPECT_NE(text.find("crop to the nonzero box"), std::string::npos);
  EXPECT_NE(text.find("36 x 31 x 12 -> 25 x 22 x 42"), std::string::npos);
}

// nnU-Net's transpose_forward reorders the stored axes whatever their world directions; the
// inverse puts every voxel back.
TEST(Plan, AxisOrderReordersTheStoredAxesAndTheInverseRestoresThem) {
  const auto [image, labels] = scan_and_labels();
  Contract contract;
  contract.name = "transposed";
  contract.axis_order_xyz = {2, 0, 1};
  const Plan plan = make_plan(contract, image);
  EXPECT_EQ(plan.output_geometry.size_xyz, (std::array<std::int64_t, 3>{16, 48, 40}));
  EXPECT_NE(to_text(plan).find("reorder the axes: output x y z read input axes 2 x 0 x 1"), std::string::npos)
      << to_text(plan);
  const Image moved = apply_to_labels(plan, labels);
  for (std::int64_t z = 0; z < 16; z += 5)
    for (std::int64_t y = 0; y < 40; y += 3)
      for (std::int64_t x = 0; x < 48; x += 7) {
        ASSERT_EQ(moved.value_at(moved.offset(0, y, x, z)), labels.value_at(labels.offset(0, z, y, x)));
      }
  // The world position of every voxel is kept, so the inverse is exact.
  const Image back = invert(plan, moved, PredictionKind::kLabels);
  EXPECT_TRUE(back.geometry().same_grid(image.geometry(), 1e-9));
  EXPECT_EQ(std::memcmp(back.data<std::uint8_t>(), labels.data<std::uint8_t>(), labels.element_count()), 0);
  nlohmann::json json = to_json(contract);
  json["orientation"] = "RAS";
  const std::string message = graft::testing::error_message([&] { contract_from_json(json, "c.json"); });
  EXPECT_NE(message.find("'axis_order_xyz' and 'orientation' both reorder the axes"), std::string::npos) << message;
}

// Rescaled to [0, 1] before a cubic upsampling, the spline overshoots at the edges (nnU-Net's
// order); rescaled after it, the range is exactly [0, 1].
TEST(Plan, NormalisingBeforeResamplingIsNnUNetsOrder) {
  const auto [image, labels] = scan_and_labels();
  Contract contract;
  contract.name = "order";
  contract.resize = ResizeRule::kSpacing;
  contract.target_spacing_mm = {0.5, 0.5, 2.0};
  contract.anisotropy_threshold = 0;
  contract.anti_alias = false;
  contract.image_interpolation = Interpolation::kBSpline;
  IntensityStep rescale;
  rescale.kind = IntensityKind::kRescaleTo01;
  contract.intensity.push_back(rescale);
  const auto range = [](const Image& out) {
    const float* v = out.data<float>();
    const auto [low, high] = std::minmax_element(v, v + out.element_count());
    return std::make_pair(*low, *high);
  };
  const auto after = range(apply(make_plan(contract, image), image));
  EXPECT_EQ(after.first, 0.0f);
  EXPECT_EQ(after.second, 1.0f);
  contract.normalize_before_resampling = true;
  const Plan plan = make_plan(contract, image);
  EXPECT_TRUE(plan_from_json(to_json(plan), "plan").intensity_before_resample);
  const std::string text = to_text(plan);
  EXPECT_LT(text.find("rescale each channel"), text.find("resample "));
  const auto before = range(apply(plan, image));
  EXPECT_LT(before.first, -0.01f);
  EXPECT_GT(before.second, 1.01f);
}

TEST(Plan, ApplyProducesTheOutputGridAndNormalizedVoxels) {
  const auto [image, labels] = scan_and_labels();
  const Plan plan = make_plan(full_contract(), image);
  const Image out = apply(plan, image);
  EXPECT_EQ(out.dtype(), io::DType::kF32);
  EXPECT_TRUE(out.geometry().same_grid(plan.output_geometry, 1e-12));
  const Image mapped = apply_to_labels(plan, labels);
  EXPECT_EQ(mapped.dtype(), io::DType::kU8);
  EXPECT_TRUE(mapped.geometry().same_grid(plan.output_geometry, 1e-12));
}

TEST(Plan, InverseReturnsLabelsToTheOriginalGrid) {
  const auto [image, labels] = scan_and_labels();
  const Plan plan = make_plan(full_contract(), image);
  const Image restored = invert(plan, apply_to_labels(plan, labels), PredictionKind::kLabels);
  EXPECT_EQ(restored.dtype(), io::DType::kU8);
  EXPECT_TRUE(restored.geometry().same_grid(image.geometry(), 1e-12))
      << restored.geometry().describe_difference(image.geometry(), 1e-12);
  EXPECT_GT(dice(restored, labels, 1), 0.9);
  EXPECT_GT(dice(restored, labels, 2), 0.9);
}

TEST(Plan, InverseInterpolatesProbabilitiesLinearly) {
  const auto [image, labels] = scan_and_labels();
  const Plan plan = make_plan(full_contract(), image);
  Image probability(io::DType::kF32, 1, plan.output_geometry);
  std::fill(probability.data<float>(), probability.data<float>() + probability.element_count(), 0.25f);
  const Image restored = invert(plan, probability, PredictionKind::kProbabilities);
  EXPECT_TRUE(restored.geometry().same_grid(image.geometry(), 1e-12));
  // Inside the crop the constant survives; outside it is background 0.
  const std::int64_t inside = restored.offset(0, 8, 20, 22);
  EXPECT_NEAR(restored.data<float>()[inside], 0.25f, 1e-6);
  EXPECT_EQ(restored.data<float>()[0], 0.0f);
}

// A DICOM reader that corrected gantry tilt resampled the voxels before any step ran; the Plan,
// printed and saved beside a prediction, must say so, and say nothing when it did not happen.
TEST(Plan, NotesAGantryTiltTheReaderCorrected) {
  auto [image, labels] = scan_and_labels();
  const auto tilt_notes = [](const Plan& plan) {
    return std::count_if(plan.notes.begin(), plan.notes.end(), [](const std::string& note) {
      return note.find("gantry tilt") != std::string::npos;
    });
  };
  EXPECT_EQ(tilt_notes(make_plan(full_contract(), image)), 0);
  image.metadata().gantry_tilt_corrected_degrees = 9.462322208;
  const Plan plan = make_plan(full_contract(), image);
  EXPECT_EQ(tilt_notes(plan), 1);
  const std::string text = to_text(plan);
  EXPECT_NE(
      text.find("note: gantry tilt of 9.46 degrees corrected by resampling the slices (linear)"),
      std::string::npos)
      << text;
  EXPECT_EQ(plan_from_json(to_json(plan), "plan").notes, plan.notes);
}

TEST(Plan, JsonRoundTripGivesTheSamePlan) {
  const auto [image, labels] = scan_and_labels();
  const Plan plan = make_plan(full_contract(), image, 5);
  const nlohmann::json json = to_json(plan);
  const Plan back = plan_from_json(nlohmann::json::parse(json.dump()), "plan.json");
  EXPECT_EQ(to_json(back), json);
  const Image a = apply(plan, image), b = apply(back, image);
  EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.byte_count()), 0);
}

TEST(Plan, ContractJsonRoundTripsAndBadFieldsAreNamed) {
  const Contract contract = full_contract();
  const nlohmann::json json = to_json(contract);
  EXPECT_EQ(to_json(contract_from_json(json, "c.json")), json);
  nlohmann::json bad = json;
  bad["resize"] = "sideways";
  try {
    contract_from_json(bad, "c.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("sideways"), std::string::npos);
  }
  bad = json;
  bad["target_spacing_mm"] = "one";
  EXPECT_THROW(contract_from_json(bad, "c.json"), Error);
}

TEST(Plan, SelectsAndReordersNamedBands) {
  io::Geometry g;
  g.size_xyz = {2, 2, 1};
  Image image(io::DType::kU16, 3, g);
  image.metadata().band_names = {"B04", "B03", "B02"};
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t i = 0; i < 4; ++i) image.data<std::uint16_t>()[c * 4 + i] = static_cast<std::uint16_t>(100 * (c + 1));
  Contract contract;
  contract.name = "rgb";
  contract.spatial_dims = 2;
  contract.channels = {"B02", "B03", "B04"};
  const Plan plan = make_plan(contract, image);
  const Image out = apply(plan, image);
  EXPECT_EQ(out.data<float>()[0], 300.0f);
  EXPECT_EQ(out.data<float>()[8], 100.0f);
  EXPECT_EQ(out.metadata().band_names, contract.channels);
  contract.channels.push_back("B08");
  try {
    make_plan(contract, image);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("B08"), std::string::npos);
  }
}

TEST(Plan, ApplyRefusesAnImageOnAnotherGrid) {
  const auto [image, labels] = scan_and_labels();
  const Plan plan = make_plan(full_contract(), image);
  Image moved = image;
  moved.geometry().origin_world[0] += 5.0;
  EXPECT_THROW(apply(plan, moved), Error);
}

}  // namespace
}  // namespace graft::preprocess
