#include "io/boxes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "io/raster/gdal_raster.h"
#include "io/image_file.h"
#include "preprocess/plan.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

TEST(Boxes, IouOfOverlappingAndDisjointBoxes) {
  const Box a{{0, 0, 0}, {2, 2, 2}}, b{{1, 1, 1}, {3, 3, 3}}, far{{5, 5, 5}, {6, 6, 6}};
  EXPECT_DOUBLE_EQ(box_iou(a, b), 1.0 / 15.0);
  EXPECT_DOUBLE_EQ(box_iou(a, a), 1.0);
  EXPECT_EQ(box_iou(a, far), 0.0);
  // 2D boxes span one slice: IoU is the area ratio.
  const Box p{{0, 0, -0.5}, {4, 2, 0.5}}, q{{2, 0, -0.5}, {6, 2, 0.5}};
  EXPECT_DOUBLE_EQ(box_iou(p, q), 4.0 / 12.0);
}

TEST(Boxes, OneBoxPerConnectedComponentOfEachLabel) {
  Geometry grid;
  grid.size_xyz = {8, 6, 3};
  Image labels(DType::kU8, 1, grid);
  auto set = [&](int x, int y, int z, std::uint8_t v) { labels.data<std::uint8_t>()[labels.offset(0, z, y, x)] = v; };
  set(1, 1, 0, 1);
  set(2, 2, 1, 1);  // touches (1, 1, 0) only at a corner: the same component
  set(6, 4, 2, 1);  // apart
  set(4, 0, 0, 2);
  set(5, 0, 0, 2);
  const std::vector<Box> boxes = boxes_from_labels(labels);
  ASSERT_EQ(boxes.size(), 3u);
  EXPECT_EQ(boxes[0].label, 1);
  EXPECT_EQ(boxes[0].start_xyz, (Vec3{0.5, 0.5, -0.5}));
  EXPECT_EQ(boxes[0].end_xyz, (Vec3{2.5, 2.5, 1.5}));
  EXPECT_EQ(boxes[1].start_xyz, (Vec3{5.5, 3.5, 1.5}));
  EXPECT_EQ(boxes[2].label, 2);
  EXPECT_EQ(boxes[2].start_xyz, (Vec3{3.5, -0.5, -0.5}));
  EXPECT_EQ(boxes[2].end_xyz, (Vec3{5.5, 0.5, 0.5}));
  const std::string message = graft::testing::error_message([&] { boxes_from_labels(Image(DType::kF32, 1, grid)); });
  EXPECT_NE(message.find("integer"), std::string::npos) << message;
}

// The tumour masks of the real brain MRs: each tumour's box, taken on the input grid, is carried
// through a Plan that reorients to RAS, crops and resamples the 0.78 x 0.78 x 6.5 mm grid to 1 mm,
// and back through its inverse. It must land where it started, and on the planned grid it must
// agree with the box of the resampled mask itself to half a voxel of either grid.
TEST(Boxes, TumourBoxesSurviveAPlanAndItsInverseInWorldCoordinates) {
  GRAFT_REQUIRE_SHARED_DATA();
  preprocess::Contract contract;
  contract.orientation = "RAS";
  contract.crop_nonzero = true;
  contract.resize = preprocess::ResizeRule::kSpacing;
  contract.target_spacing_mm = {1.0, 1.0, 1.0};
  for (const std::string name : {"brain1", "brain2"}) {
    SCOPED_TRACE(name);
    const std::string folder = graft::testing::shared_data_dir() + "/nrrd/";
    const Image image = read(folder + name + "_image.nrrd");
    const Image labels = read(folder + name + "_label.nrrd");
    const std::vector<Box> boxes = boxes_from_labels(labels);
    ASSERT_FALSE(boxes.empty());
    const preprocess::Plan plan = preprocess::make_plan(contract, image, {});
    const Geometry& in = plan.input_geometry;
    const Geometry& out = plan.output_geometry;
    const std::vector<Box> resampled_boxes = boxes_from_labels(preprocess::apply_to_labels(plan, labels));
    double largest_mm = 0.0;
    for (const Box& box : boxes) {
      const Box planned = map_box(box, in, out);
      const Box back = map_box(planned, out, in);
      const auto original_corners = box_corners_world(box, in), returned_corners = box_corners_world(back, in);
      for (int k = 0; k < 8; ++k) {
        for (int w = 0; w < 3; ++w) EXPECT_NEAR(returned_corners[k][w], original_corners[k][w], 1e-6);
      }
      // The resampled mask's own box (the largest overlapping one) within half a voxel of the
      // coarser grid on every axis of the planned grid.
      const Box* own = nullptr;
      for (const Box& candidate : resampled_boxes) {
        if (!own || box_iou(candidate, planned) > box_iou(*own, planned)) own = &candidate;
      }
      ASSERT_NE(own, nullptr);
      for (int a = 0; a < 3; ++a) {
        // Half an input voxel, measured in output voxels along this output axis.
        double half_input_voxel = 0.0;
        for (int b = 0; b < 3; ++b) {
          const Vec3 step_world{in.direction[0][b] * in.spacing_xyz[b], in.direction[1][b] * in.spacing_xyz[b],
                                in.direction[2][b] * in.spacing_xyz[b]};
          const Vec3 axis{out.direction[0][a], out.direction[1][a], out.direction[2][a]};
          half_input_voxel = std::max(half_input_voxel, 0.5 * std::abs(dot(step_world, axis)) / out.spacing_xyz[a]);
        }
        const double tolerance = std::max(0.5, half_input_voxel) + 1e-6;
        EXPECT_NEAR(own->start_xyz[a], planned.start_xyz[a], tolerance) << "axis " << a;
        EXPECT_NEAR(own->end_xyz[a], planned.end_xyz[a], tolerance) << "axis " << a;
        largest_mm = std::max({largest_mm, std::abs(own->start_xyz[a] - planned.start_xyz[a]) * out.spacing_xyz[a],
                               std::abs(own->end_xyz[a] - planned.end_xyz[a]) * out.spacing_xyz[a]});
      }
    }
    std::printf("%s: %zu tumour boxes; mapped box vs resampled mask's box: largest gap %.2f mm\n", name.c_str(),
                boxes.size(), largest_mm);
  }
}

// The parts of Slicer's markups-schema-v1.0.3.json that graft's ROI files use, checked by hand.
void expect_valid_slicer_markups(const nlohmann::json& file) {
  auto numbers = [](const nlohmann::json& value, std::size_t count) {
    if (!value.is_array() || value.size() != count) return false;
    for (const auto& v : value)
      if (!v.is_number()) return false;
    return true;
  };
  ASSERT_TRUE(file.is_object());
  ASSERT_TRUE(file.contains("@schema") && file["@schema"].is_string());
  EXPECT_NE(file["@schema"].get<std::string>().find("markups-schema-v1.0.3.json"), std::string::npos);
  ASSERT_TRUE(file.contains("markups") && file["markups"].is_array());
  const std::set<std::string> types{"Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI"};
  for (const auto& markup : file["markups"]) {
    ASSERT_TRUE(markup.is_object());
    ASSERT_TRUE(markup.contains("type") && markup["type"].is_string());
    EXPECT_TRUE(types.count(markup["type"].get<std::string>()));
    if (markup.contains("name")) EXPECT_TRUE(markup["name"].is_string());
    if (markup.contains("coordinateSystem")) {
      EXPECT_TRUE(markup["coordinateSystem"] == "LPS" || markup["coordinateSystem"] == "RAS");
    }
    if (markup.contains("coordinateUnits")) {
      EXPECT_TRUE(markup["coordinateUnits"] == "mm" || markup["coordinateUnits"] == "um");
    }
    if (markup.contains("locked")) EXPECT_TRUE(markup["locked"].is_boolean());
    if (markup.contains("roiType")) EXPECT_TRUE(markup["roiType"].is_string());
    if (markup.contains("center")) EXPECT_TRUE(numbers(markup["center"], 3));
    if (markup.contains("size")) EXPECT_TRUE(numbers(markup["size"], 3));
    if (markup.contains("orientation")) EXPECT_TRUE(numbers(markup["orientation"], 9));
    if (markup.contains("controlPoints")) {
      ASSERT_TRUE(markup["controlPoints"].is_array());
      for (const auto& point : markup["controlPoints"]) {
        ASSERT_TRUE(point.is_object());
        if (point.contains("id")) EXPECT_TRUE(point["id"].is_string());
        if (point.contains("label")) EXPECT_TRUE(point["label"].is_string());
        if (point.contains("position")) EXPECT_TRUE(numbers(point["position"], 3));
        if (point.contains("orientation")) EXPECT_TRUE(numbers(point["orientation"], 9));
        if (point.contains("positionStatus")) {
          EXPECT_TRUE(point["positionStatus"] == "undefined" || point["positionStatus"] == "preview" ||
                      point["positionStatus"] == "defined");
        }
      }
    }
  }
}

TEST(Boxes, SlicerRoiMarkupsAreValidAndSitOnTheBoxInLps) {
  Geometry grid;
  grid.size_xyz = {20, 20, 10};
  grid.spacing_xyz = {0.5, 0.5, 2.0};
  grid.origin_world = {-10.0, 20.0, 30.0};
  grid.direction = {{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}};  // RAS-stored volume seen in LPS
  const Box box{{3.5, 5.5, 1.5}, {7.5, 9.5, 4.5}, 2, 0.875};
  const nlohmann::json file = boxes_to_slicer_markups({box}, grid, {"benign", "nodule"});
  expect_valid_slicer_markups(file);
  const nlohmann::json& roi = file["markups"][0];
  EXPECT_EQ(roi["type"], "ROI");
  EXPECT_EQ(roi["name"], "nodule-1");
  // Centre index (5.5, 7.5, 3) -> world (-10 - 2.75, 20 - 3.75, 30 + 6).
  EXPECT_EQ(roi["center"], nlohmann::json({-12.75, 16.25, 36.0}));
  EXPECT_EQ(roi["size"], nlohmann::json({2.0, 2.0, 6.0}));
  EXPECT_EQ(roi["orientation"], nlohmann::json({-1, 0, 0, 0, -1, 0, 0, 0, 1}));
  // graft's own JSON reads back onto the grid as the same box.
  const std::vector<Box> back = boxes_from_json(boxes_to_json({box}, grid, {}), grid, "boxes.json");
  ASSERT_EQ(back.size(), 1u);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(back[0].start_xyz[a], box.start_xyz[a], 1e-9);
    EXPECT_NEAR(back[0].end_xyz[a], box.end_xyz[a], 1e-9);
  }
  EXPECT_EQ(back[0].label, 2);
  EXPECT_EQ(back[0].score, 0.875);
  const std::string message = graft::testing::error_message([&] {
    boxes_from_json(nlohmann::json::parse(R"([{"start_index": [1, 2], "end_index": [3, 4, 5]}])"), grid, "b.json");
  });
  EXPECT_NE(message.find("b.json: box 0: field 'start_index'"), std::string::npos) << message;
}

// RFC 7946, checked by hand: a FeatureCollection of Features whose Polygon rings are closed, have
// at least four positions of [longitude, latitude] in range, and run counterclockwise; no "crs".
void expect_valid_geojson(const nlohmann::json& collection) {
  ASSERT_EQ(collection.value("type", ""), "FeatureCollection");
  EXPECT_FALSE(collection.contains("crs"));
  ASSERT_TRUE(collection["features"].is_array());
  for (const auto& feature : collection["features"]) {
    ASSERT_EQ(feature.value("type", ""), "Feature");
    ASSERT_TRUE(feature.contains("properties") && (feature["properties"].is_object() || feature["properties"].is_null()));
    const auto& geometry = feature["geometry"];
    ASSERT_EQ(geometry.value("type", ""), "Polygon");
    ASSERT_TRUE(geometry["coordinates"].is_array() && !geometry["coordinates"].empty());
    for (const auto& ring : geometry["coordinates"]) {
      ASSERT_TRUE(ring.is_array());
      ASSERT_GE(ring.size(), 4u);
      EXPECT_EQ(ring.front(), ring.back());
      double twice_area = 0.0;
      for (std::size_t k = 0; k < ring.size(); ++k) {
        ASSERT_TRUE(ring[k].is_array() && ring[k].size() == 2);
        const double lon = ring[k][0], lat = ring[k][1];
        EXPECT_TRUE(lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90);
        if (k + 1 < ring.size()) twice_area += lon * ring[k + 1][1].get<double>() - ring[k + 1][0].get<double>() * lat;
      }
      EXPECT_GT(twice_area, 0.0) << "exterior ring must be counterclockwise";
    }
  }
}

TEST(Boxes, GeoJsonIsRfc7946AndItsCornersAreWhereGdalPutsThem) {
  // A UTM 32N raster, 10 m pixels, north up.
  const Geometry grid =
      geometry_from_geotransform({600000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0}, 100, 80, "EPSG:32632");
  Geometry wkt_grid = grid;
  Image blank(DType::kU8, 1, grid);
  const std::string folder = graft::testing::temp_dir();
  write(blank, folder + "/scene.tif");
  wkt_grid = read(folder + "/scene.tif").geometry();  // the CRS as a file gives it: WKT
  const Box box{{9.5, 19.5, -0.5}, {29.5, 24.5, 0.5}, 1, 0.9};
  const nlohmann::json collection = boxes_to_geojson({box}, wkt_grid, {"clump"});
  expect_valid_geojson(collection);
  EXPECT_EQ(collection["features"][0]["properties"]["class"], "clump");
  // The box's top-left corner: pixel corner (10, 20) -> x 600100, y 4999800; gdaltransform says
  // where that is in WGS 84.
  std::string output;
  ASSERT_EQ(graft::testing::run_command("echo 600100 4999800 | gdaltransform -s_srs EPSG:32632 -t_srs EPSG:4326 "
                                        "-output_xy 2>&1",
                                        &output),
            0)
      << output;
  double lon = 0, lat = 0;
  ASSERT_EQ(std::sscanf(output.c_str(), "%lf %lf", &lon, &lat), 2) << output;
  bool found = false;
  for (const auto& position : collection["features"][0]["geometry"]["coordinates"][0]) {
    if (std::abs(position[0].get<double>() - lon) < 1e-7 && std::abs(position[1].get<double>() - lat) < 1e-7) found = true;
  }
  EXPECT_TRUE(found) << "gdaltransform: " << output << " geojson: " << collection.dump();
  // GDAL's own GeoJSON driver reads the file back as one polygon.
  std::ofstream(folder + "/boxes.geojson") << collection.dump();
  ASSERT_EQ(graft::testing::run_command("ogrinfo -ro -al -so " + folder + "/boxes.geojson 2>&1", &output), 0) << output;
  EXPECT_NE(output.find("Feature Count: 1"), std::string::npos) << output;
  EXPECT_NE(output.find("Polygon"), std::string::npos) << output;
  const std::string message = graft::testing::error_message([&] { boxes_to_geojson({box}, Geometry(), {}); });
  EXPECT_NE(message.find("georeferenced"), std::string::npos) << message;
}

TEST(Boxes, AnnotationsFromCsvInLunaWorldAndIndexFormsAndFromJson) {
  Geometry grid;
  grid.size_xyz = {20, 20, 6};
  grid.spacing_xyz = {0.5, 0.5, 2.0};
  grid.origin_world = {10.0, 20.0, 30.0};
  const std::string folder = graft::testing::temp_dir();
  auto expect_box = [](const Box& box, const Vec3& start, const Vec3& end, int label) {
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(box.start_xyz[a], start[a], 1e-9) << "axis " << a;
      EXPECT_NEAR(box.end_xyz[a], end[a], 1e-9) << "axis " << a;
    }
    EXPECT_EQ(box.label, label);
  };
  // LUNA16: a 2 mm nodule at world (12, 22, 34) of scan A; scan B's row is not this image's.
  std::ofstream(folder + "/luna.csv") << "seriesuid,coordX,coordY,coordZ,diameter_mm\nscanA,12,22,34,2\nscanB,0,0,0,5\n";
  const std::vector<Box> luna = read_boxes_file(folder + "/luna.csv", grid, "scanA");
  ASSERT_EQ(luna.size(), 1u);
  expect_box(luna[0], {2, 2, 1.5}, {6, 6, 2.5}, 1);
  std::ofstream(folder + "/world.csv") << "x_min,y_min,z_min,x_max,y_max,z_max,label\n11,21,32,13,23,36,3\n";
  expect_box(read_boxes_file(folder + "/world.csv", grid, "").at(0), {2, 2, 1}, {6, 6, 3}, 3);
  std::ofstream(folder + "/index.csv") << "start_x,start_y,start_z,end_x,end_y,end_z,label\r\n2.5,3.5,0.5,6.5,7.5,2.5,2\r\n";
  const std::vector<Box> index = read_boxes_file(folder + "/index.csv", grid, "");
  expect_box(index.at(0), {2.5, 3.5, 0.5}, {6.5, 7.5, 2.5}, 2);
  std::ofstream(folder + "/boxes.json") << boxes_to_json(index, grid, {}).dump();
  expect_box(read_boxes_file(folder + "/boxes.json", grid, "").at(0), {2.5, 3.5, 0.5}, {6.5, 7.5, 2.5}, 2);

  // Drawn as a label map, the box covers the voxels whose centres it holds, and comes back whole.
  const Image drawn = labels_from_boxes(index, grid);
  std::int64_t set = 0;
  for (std::int64_t i = 0; i < drawn.element_count(); ++i) set += drawn.data<std::uint8_t>()[i] == 2;
  EXPECT_EQ(set, 4 * 4 * 2);
  const std::vector<Box> back = boxes_from_labels(drawn);
  ASSERT_EQ(back.size(), 1u);
  expect_box(back[0], {2.5, 3.5, 0.5}, {6.5, 7.5, 2.5}, 2);

  std::ofstream(folder + "/bad.csv") << "coordX,coordY,coordZ,diameter_mm\n1,2,abc,3\n";
  std::string message = graft::testing::error_message([&] { read_boxes_file(folder + "/bad.csv", grid, ""); });
  EXPECT_NE(message.find("bad.csv: row 2: field 'coordZ' is not a number ('abc')"), std::string::npos) << message;
  std::ofstream(folder + "/unknown.csv") << "a,b,c\n1,2,3\n";
  message = graft::testing::error_message([&] { read_boxes_file(folder + "/unknown.csv", grid, ""); });
  EXPECT_NE(message.find("none of the box forms"), std::string::npos) << message;
}

}  // namespace
}  // namespace graft::io
