#include "io/boxes.h"

#include "io/atomic_file.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>
#include <limits>
#include <memory>

#include "io/error.h"
#include "io/raster/gdal_raster.h"
#include "io/text.h"

namespace graft::io {
namespace {

// The smallest index box on `grid` holding these world points.
Box bounds_on(const std::array<Vec3, 8>& corners_world, const Geometry& grid) {
  Box box;
  box.start_xyz = {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::infinity()};
  box.end_xyz = {-box.start_xyz[0], -box.start_xyz[1], -box.start_xyz[2]};
  for (const Vec3& corner : corners_world) {
    const Vec3 index = grid.world_to_index(corner);
    for (int a = 0; a < 3; ++a) {
      box.start_xyz[a] = std::min(box.start_xyz[a], index[a]);
      box.end_xyz[a] = std::max(box.end_xyz[a], index[a]);
    }
  }
  return box;
}

// Corners of an oriented box: centre +- half sizes along the columns of `orientation`.
std::array<Vec3, 8> oriented_corners(const Vec3& centre, const Vec3& size, const Mat3& orientation) {
  std::array<Vec3, 8> corners;
  for (int k = 0; k < 8; ++k) {
    Vec3 point = centre;
    for (int axis = 0; axis < 3; ++axis) {
      const double half = ((k >> axis) & 1 ? 0.5 : -0.5) * size[axis];
      for (int w = 0; w < 3; ++w) point[w] += half * orientation[w][axis];
    }
    corners[k] = point;
  }
  return corners;
}

std::string class_name(const std::vector<std::string>& names, int label) {
  return label >= 1 && label <= static_cast<int>(names.size()) ? names[label - 1] : "";
}

Vec3 vec3_from(const nlohmann::json& value, const std::string& where) {
  if (!value.is_array() || value.size() != 3) throw Error(where + " must be a list of 3 numbers");
  Vec3 out;
  for (int a = 0; a < 3; ++a) {
    if (!value[a].is_number()) throw Error(where + " must be a list of 3 numbers");
    out[a] = value[a].get<double>();
  }
  return out;
}

}  // namespace

Vec3 box_size(const Box& box) {
  return {box.end_xyz[0] - box.start_xyz[0], box.end_xyz[1] - box.start_xyz[1], box.end_xyz[2] - box.start_xyz[2]};
}

Vec3 box_centre(const Box& box) {
  return {0.5 * (box.start_xyz[0] + box.end_xyz[0]), 0.5 * (box.start_xyz[1] + box.end_xyz[1]),
          0.5 * (box.start_xyz[2] + box.end_xyz[2])};
}

double box_volume(const Box& box) {
  const Vec3 size = box_size(box);
  return std::max(0.0, size[0]) * std::max(0.0, size[1]) * std::max(0.0, size[2]);
}

double box_iou(const Box& a, const Box& b) {
  double intersection = 1.0;
  for (int axis = 0; axis < 3; ++axis) {
    const double overlap = std::min(a.end_xyz[axis], b.end_xyz[axis]) - std::max(a.start_xyz[axis], b.start_xyz[axis]);
    if (overlap <= 0) return 0.0;
    intersection *= overlap;
  }
  const double union_volume = box_volume(a) + box_volume(b) - intersection;
  return union_volume > 0 ? intersection / union_volume : 0.0;
}

std::array<Vec3, 8> box_corners_world(const Box& box, const Geometry& grid) {
  std::array<Vec3, 8> corners;
  for (int k = 0; k < 8; ++k) {
    const Vec3 index{(k & 1) ? box.end_xyz[0] : box.start_xyz[0], (k & 2) ? box.end_xyz[1] : box.start_xyz[1],
                     (k & 4) ? box.end_xyz[2] : box.start_xyz[2]};
    corners[k] = grid.index_to_world(index);
  }
  return corners;
}

Box map_box(const Box& box, const Geometry& from, const Geometry& to) {
  Box mapped = bounds_on(box_corners_world(box, from), to);
  mapped.label = box.label;
  mapped.score = box.score;
  return mapped;
}

std::vector<Box> boxes_from_labels(const Image& labels) {
  if (labels.channels() != 1 || !dtype_is_integer(labels.dtype())) {
    throw Error("boxes from a label map need one integer channel (got " + std::to_string(labels.channels()) +
                " channels of " + dtype_name(labels.dtype()) + ")");
  }
  const auto& size = labels.geometry().size_xyz;
  const std::int64_t count = labels.element_count();
  std::vector<std::int64_t> value(count);
  for (std::int64_t i = 0; i < count; ++i) value[i] = static_cast<std::int64_t>(labels.value_at(i));
  std::vector<bool> seen(count, false);
  std::vector<Box> boxes;
  std::vector<std::int64_t> stack;
  for (std::int64_t first = 0; first < count; ++first) {
    if (value[first] <= 0 || seen[first]) continue;
    const std::int64_t label = value[first];
    std::array<std::int64_t, 3> low{size[0], size[1], size[2]}, high{-1, -1, -1};
    seen[first] = true;
    stack.assign(1, first);
    while (!stack.empty()) {
      const std::int64_t i = stack.back();
      stack.pop_back();
      const std::array<std::int64_t, 3> at{i % size[0], (i / size[0]) % size[1], i / (size[0] * size[1])};
      for (int a = 0; a < 3; ++a) {
        low[a] = std::min(low[a], at[a]);
        high[a] = std::max(high[a], at[a]);
      }
      for (int dz = -1; dz <= 1; ++dz) {
        for (int dy = -1; dy <= 1; ++dy) {
          for (int dx = -1; dx <= 1; ++dx) {
            const std::int64_t x = at[0] + dx, y = at[1] + dy, z = at[2] + dz;
            if (x < 0 || y < 0 || z < 0 || x >= size[0] || y >= size[1] || z >= size[2]) continue;
            const std::int64_t j = (z * size[1] + y) * size[0] + x;
            if (!seen[j] && value[j] == label) {
              seen[j] = true;
              stack.push_back(j);
            }
          }
        }
      }
    }
    Box box;
    for (int a = 0; a < 3; ++a) {
      box.start_xyz[a] = low[a] - 0.5;
      box.end_xyz[a] = high[a] + 0.5;
    }
    box.label = static_cast<int>(label);
    boxes.push_back(box);
  }
  std::stable_sort(boxes.begin(), boxes.end(), [](const Box& a, const Box& b) { return a.label < b.label; });
  return boxes;
}

nlohmann::json boxes_to_json(const std::vector<Box>& boxes, const Geometry& grid,
                             const std::vector<std::string>& class_names) {
  nlohmann::json out;
  out["frame"] = grid.frame == Frame::kLPS ? "LPS" : "CRS";
  out["units"] = grid.frame == Frame::kLPS ? "mm" : "CRS units";
  if (grid.frame == Frame::kCRS) out["crs"] = grid.crs_wkt;
  out["boxes"] = nlohmann::json::array();
  for (const Box& box : boxes) {
    const Vec3 size = box_size(box);
    const auto corners = box_corners_world(box, grid);
    nlohmann::json bounds = nlohmann::json::array();
    for (int w = 0; w < 3; ++w) {
      double low = corners[0][w], high = corners[0][w];
      for (const Vec3& c : corners) low = std::min(low, c[w]), high = std::max(high, c[w]);
      bounds.push_back({low, high});
    }
    nlohmann::json orientation = nlohmann::json::array();
    for (const auto& row : grid.direction) orientation.push_back(row);
    out["boxes"].push_back({{"label", box.label},
                            {"class", class_name(class_names, box.label)},
                            {"score", box.score},
                            {"centre_world", grid.index_to_world(box_centre(box))},
                            {"size_world",
                             {size[0] * grid.spacing_xyz[0], size[1] * grid.spacing_xyz[1], size[2] * grid.spacing_xyz[2]}},
                            {"orientation", orientation},
                            {"bounds_world", bounds},
                            {"start_index", box.start_xyz},
                            {"end_index", box.end_xyz}});
  }
  return out;
}

std::vector<Box> boxes_from_json(const nlohmann::json& json, const Geometry& grid, const std::string& source) {
  const nlohmann::json& list = json.is_object() && json.contains("boxes") ? json["boxes"] : json;
  if (!list.is_array()) throw Error(source + ": expected a list of boxes or an object with \"boxes\"");
  std::vector<Box> boxes;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& item = list[i];
    const std::string where = source + ": box " + std::to_string(i);
    if (!item.is_object()) throw Error(where + " is not an object");
    Box box;
    if (item.contains("centre_world") && item.contains("size_world")) {
      Mat3 orientation = grid.direction;
      if (item.contains("orientation")) {
        const nlohmann::json& rows = item["orientation"];
        if (!rows.is_array() || rows.size() != 3) throw Error(where + ": field 'orientation' must be 3 rows of 3");
        for (int r = 0; r < 3; ++r) orientation[r] = vec3_from(rows[r], where + ": field 'orientation'");
      }
      box = bounds_on(oriented_corners(vec3_from(item["centre_world"], where + ": field 'centre_world'"),
                                       vec3_from(item["size_world"], where + ": field 'size_world'"), orientation),
                      grid);
    } else if (item.contains("start_index") && item.contains("end_index")) {
      box.start_xyz = vec3_from(item["start_index"], where + ": field 'start_index'");
      box.end_xyz = vec3_from(item["end_index"], where + ": field 'end_index'");
    } else {
      throw Error(where + " needs centre_world and size_world, or start_index and end_index");
    }
    for (int a = 0; a < 3; ++a) {
      if (!(box.start_xyz[a] <= box.end_xyz[a])) throw Error(where + ": start is after end on axis " + std::to_string(a));
    }
    box.label = item.value("label", 1);
    box.score = item.value("score", 1.0);
    boxes.push_back(box);
  }
  return boxes;
}

std::vector<Box> read_boxes_file(const std::string& path, const Geometry& grid, const std::string& image_id) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the box annotations");
  if (ends_with(path, ".json")) {
    nlohmann::json parsed;
    try {
      parsed = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    return boxes_from_json(parsed, grid, path);
  }
  std::string line;
  if (!std::getline(in, line)) throw Error(path + ": empty box annotations (a header line is needed)");
  const std::vector<std::string> header = split_csv_line(line);
  auto column = [&](const std::string& name) {
    const auto found = std::find(header.begin(), header.end(), name);
    return found == header.end() ? -1 : static_cast<int>(found - header.begin());
  };
  const int luna[4] = {column("coordX"), column("coordY"), column("coordZ"), column("diameter_mm")};
  const int world[6] = {column("x_min"), column("y_min"), column("z_min"), column("x_max"), column("y_max"), column("z_max")};
  const int index[6] = {column("start_x"), column("start_y"), column("start_z"), column("end_x"), column("end_y"), column("end_z")};
  const int label_column = column("label");
  const int id_column = column("seriesuid") >= 0 ? column("seriesuid") : column("image");
  auto all_present = [](const int* columns, int count) {
    return std::all_of(columns, columns + count, [](int c) { return c >= 0; });
  };
  const bool is_luna = all_present(luna, 4), is_world = all_present(world, 6), is_index = all_present(index, 6);
  if (!is_luna && !is_world && !is_index) {
    throw Error(path + ": the header names none of the box forms (coordX,coordY,coordZ,diameter_mm; "
                "x_min..z_max; start_x..end_z)");
  }
  std::vector<Box> boxes;
  for (int row = 2; std::getline(in, line); ++row) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::vector<std::string> fields = split_csv_line(line);
    const std::string where = path + ": row " + std::to_string(row);
    if (id_column >= 0 && id_column < static_cast<int>(fields.size()) && !image_id.empty() &&
        fields[id_column] != image_id) {
      continue;
    }
    auto number = [&](int c) {
      if (c >= static_cast<int>(fields.size())) throw Error(where + ": field '" + header[c] + "' is missing");
      try {
        std::size_t used = 0;
        const double value = std::stod(fields[c], &used);
        if (used != fields[c].size() || !std::isfinite(value)) throw std::invalid_argument("");
        return value;
      } catch (const std::exception&) {
        throw Error(where + ": field '" + header[c] + "' is not a number ('" + fields[c] + "')");
      }
    };
    Box box;
    if (is_index) {
      for (int a = 0; a < 3; ++a) box.start_xyz[a] = number(index[a]), box.end_xyz[a] = number(index[3 + a]);
    } else {
      Vec3 low, high;
      if (is_luna) {
        const double diameter = number(luna[3]);
        if (diameter <= 0) throw Error(where + ": field 'diameter_mm' must be positive");
        for (int a = 0; a < 3; ++a) low[a] = number(luna[a]) - diameter / 2, high[a] = number(luna[a]) + diameter / 2;
      } else {
        for (int a = 0; a < 3; ++a) low[a] = number(world[a]), high[a] = number(world[3 + a]);
      }
      const Mat3 world_axes{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
      const Vec3 centre{(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, (low[2] + high[2]) / 2};
      box = bounds_on(oriented_corners(centre, {high[0] - low[0], high[1] - low[1], high[2] - low[2]}, world_axes), grid);
    }
    for (int a = 0; a < 3; ++a) {
      if (!(box.start_xyz[a] <= box.end_xyz[a])) throw Error(where + ": the box ends before it starts on axis " + std::to_string(a));
    }
    if (label_column >= 0) box.label = static_cast<int>(number(label_column));
    boxes.push_back(box);
  }
  return boxes;
}

bool is_box_annotation_path(const std::string& path) { return ends_with(path, ".json") || ends_with(path, ".csv"); }

Image labels_from_boxes(const std::vector<Box>& boxes, const Geometry& grid) {
  Image labels(DType::kU8, 1, grid);
  std::vector<const Box*> order;
  for (const Box& box : boxes) {
    if (box.label < 1 || box.label > 255) {
      throw Error("box label " + std::to_string(box.label) + " cannot be held in a label map (1..255)");
    }
    order.push_back(&box);
  }
  std::stable_sort(order.begin(), order.end(), [](const Box* a, const Box* b) { return box_volume(*a) > box_volume(*b); });
  const auto& size = grid.size_xyz;
  std::uint8_t* out = labels.data<std::uint8_t>();
  for (const Box* box : order) {
    std::array<std::int64_t, 3> low, high;
    for (int a = 0; a < 3; ++a) {
      // Voxel i's centre is at index i: inside when start <= i <= end.
      low[a] = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(box->start_xyz[a])));
      high[a] = std::min<std::int64_t>(size[a] - 1, static_cast<std::int64_t>(std::floor(box->end_xyz[a])));
    }
    for (std::int64_t z = low[2]; z <= high[2]; ++z)
      for (std::int64_t y = low[1]; y <= high[1]; ++y)
        for (std::int64_t x = low[0]; x <= high[0]; ++x) out[labels.offset(0, z, y, x)] = static_cast<std::uint8_t>(box->label);
  }
  return labels;
}

nlohmann::json boxes_to_slicer_markups(const std::vector<Box>& boxes, const Geometry& grid,
                                       const std::vector<std::string>& class_names) {
  if (grid.frame != Frame::kLPS) throw Error("Slicer markups need a patient (LPS) grid, not a map CRS");
  nlohmann::json orientation = nlohmann::json::array();
  for (const auto& row : grid.direction)
    for (const double value : row) orientation.push_back(value);
  nlohmann::json markups = nlohmann::json::array();
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    const Box& box = boxes[i];
    const Vec3 size = box_size(box);
    const Vec3 centre = grid.index_to_world(box_centre(box));
    const std::string name = class_name(class_names, box.label);
    const std::string title = (name.empty() ? "label" + std::to_string(box.label) : name) + "-" + std::to_string(i + 1);
    markups.push_back({{"type", "ROI"},
                       {"name", title},
                       {"description", "score " + std::to_string(box.score)},
                       {"coordinateSystem", "LPS"},
                       {"coordinateUnits", "mm"},
                       {"locked", false},
                       {"roiType", "Box"},
                       {"insideOut", false},
                       {"center", centre},
                       {"orientation", orientation},
                       {"size", {size[0] * grid.spacing_xyz[0], size[1] * grid.spacing_xyz[1], size[2] * grid.spacing_xyz[2]}},
                       {"controlPoints",
                        {{{"id", "1"},
                          {"label", title},
                          {"position", centre},
                          {"orientation", orientation},
                          {"selected", true},
                          {"locked", false},
                          {"visibility", true},
                          {"positionStatus", "defined"}}}}});
  }
  return {{"@schema",
           "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
           "markups-schema-v1.0.3.json#"},
          {"markups", markups}};
}

nlohmann::json boxes_to_geojson(const std::vector<Box>& boxes, const Geometry& grid,
                                const std::vector<std::string>& class_names) {
  if (grid.frame != Frame::kCRS || grid.crs_wkt.empty()) {
    throw Error("GeoJSON needs a georeferenced raster (a map CRS); this grid has none");
  }
  if (grid.size_xyz[2] != 1) throw Error("GeoJSON boxes need a 2D raster grid");
  nlohmann::json features = nlohmann::json::array();
  for (const Box& box : boxes) {
    // Corners in ring order around the box: (start, start), (end, start), (end, end), (start, end).
    const double xs[4] = {box.start_xyz[0], box.end_xyz[0], box.end_xyz[0], box.start_xyz[0]};
    const double ys[4] = {box.start_xyz[1], box.start_xyz[1], box.end_xyz[1], box.end_xyz[1]};
    std::vector<std::array<double, 2>> ring;
    for (int k = 0; k < 4; ++k) {
      const Vec3 world = grid.index_to_world({xs[k], ys[k], 0.0});
      ring.push_back({world[0], world[1]});
    }
    ring = lon_lat_from_crs(grid.crs_wkt, ring, "GeoJSON");
    double twice_area = 0.0;
    for (int k = 0; k < 4; ++k) {
      const auto& p = ring[k];
      const auto& q = ring[(k + 1) % 4];
      twice_area += p[0] * q[1] - q[0] * p[1];
    }
    if (twice_area < 0) std::reverse(ring.begin(), ring.end());  // RFC 7946: exterior counterclockwise
    ring.push_back(ring.front());
    features.push_back({{"type", "Feature"},
                        {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
                        {"properties",
                         {{"label", box.label}, {"class", class_name(class_names, box.label)}, {"score", box.score}}}});
  }
  return {{"type", "FeatureCollection"}, {"features", features}};
}

std::vector<std::string> write_box_files(const std::vector<Box>& boxes, const Geometry& grid,
                                         const std::vector<std::string>& class_names, const std::string& stem) {
  std::vector<std::string> written{stem + ".json"};
  write_text_atomically(written.back(), boxes_to_json(boxes, grid, class_names).dump(2) + "\n");
  if (grid.frame == Frame::kLPS) {
    written.push_back(stem + ".mrk.json");
    write_text_atomically(written.back(), boxes_to_slicer_markups(boxes, grid, class_names).dump(2) + "\n");
  } else {
    written.push_back(stem + ".geojson");
    write_text_atomically(written.back(), boxes_to_geojson(boxes, grid, class_names).dump(2) + "\n");
  }
  return written;
}

}  // namespace graft::io
