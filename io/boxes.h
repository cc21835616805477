#pragma once

// Detection boxes. A box lives in a grid's continuous index space, axis-aligned with the grid:
// voxel i spans [i - 0.5, i + 0.5] on each axis, so a box holding voxels 3..5 is [2.5, 5.5], and
// a 2D grid's boxes span z = [-0.5, 0.5]. That is where a network predicts them; in the world the
// same box is an oriented box (centre, size along the grid's axes, the grid's direction), which
// is what the writers give: graft's JSON, 3D Slicer ROI markups (LPS, mm) and GeoJSON polygons
// (RFC 7946, WGS 84 longitude/latitude). Moving a box between grids goes through the world, so a
// box survives a Plan and its inverse.
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/geometry.h"
#include "io/image.h"

namespace graft::io {

struct Box {
  Vec3 start_xyz{0.0, 0.0, 0.0};  // continuous index, start <= end on every axis
  Vec3 end_xyz{0.0, 0.0, 0.0};
  int label = 1;        // class index, 1-based as in a label map (0 is background)
  double score = 1.0;   // detector confidence; 1 for reference boxes
};

Vec3 box_size(const Box& box);
Vec3 box_centre(const Box& box);
// Volume in voxels (area in pixels for 2D boxes, whose z extent is 1).
double box_volume(const Box& box);
// Intersection over union of two boxes on the same grid, 0 when either is empty.
double box_iou(const Box& a, const Box& b);

// The eight corners in world coordinates (four distinct ones for a 2D grid's box).
std::array<Vec3, 8> box_corners_world(const Box& box, const Geometry& grid);
// The smallest box on `to` holding `box` from `from` (its corners mapped through the world).
// Exact when the grids' axes are parallel up to order and sign, as a Plan's reorientation,
// crop and resampling keep them.
Box map_box(const Box& box, const Geometry& from, const Geometry& to);

// One box per connected component (voxels sharing a face, edge or corner) of each nonzero label
// of a one-channel integer label map, in label order then in the order components are first met
// (z, y, x); the box spans the component's voxels exactly.
std::vector<Box> boxes_from_labels(const Image& labels);

// graft's box JSON: {"frame": "LPS" | "CRS", "units", "crs" (WKT, CRS frame only), "boxes": [{
// "label", "class", "score", "centre_world", "size_world" (along the grid's axes),
// "orientation" (row-major 3x3, columns the grid's axes), "bounds_world" ([min, max] per world
// axis), "start_index", "end_index"}]}. class_names[k - 1] names label k; "" when absent.
nlohmann::json boxes_to_json(const std::vector<Box>& boxes, const Geometry& grid,
                             const std::vector<std::string>& class_names);
// Boxes back from that JSON onto `grid` (by their world corners), or from a list of index boxes
// ({"start_index", "end_index", "label"?, "score"?}). Errors name `source` and the field.
std::vector<Box> boxes_from_json(const nlohmann::json& json, const Geometry& grid, const std::string& source);

// Box annotations from a file, onto `grid` (the image they annotate):
// - .json: boxes_from_json's forms;
// - .csv with a header, one box per row, in one of three forms: LUNA16's world centre and
//   diameter (coordX, coordY, coordZ, diameter_mm: a cube along the world axes), world bounds
//   (x_min, y_min, z_min, x_max, y_max, z_max), or index bounds (start_x, start_y, start_z,
//   end_x, end_y, end_z); an optional `label` column (default 1), and when a `seriesuid` or
//   `image` column is present only the rows naming `image_id` (LUNA16's annotations.csv holds
//   every scan). Errors name the file, the row and the field.
std::vector<Box> read_boxes_file(const std::string& path, const Geometry& grid, const std::string& image_id);
// True for the paths read_boxes_file takes (.json, .csv): a manifest label naming box annotations.
bool is_box_annotation_path(const std::string& path);

// A one-channel u8 label map on `grid` with each box's voxels (those whose centres lie inside it)
// set to its label, larger boxes first so a smaller box inside a larger one stays visible. Lets
// box annotations train through the label-map path (boxes come back as connected components,
// so boxes that touch merge into one).
Image labels_from_boxes(const std::vector<Box>& boxes, const Geometry& grid);

// 3D Slicer markups (schema markups-schema-v1.0.3): one ROI markup per box, LPS millimetres,
// centre, size and orientation from the grid, named CLASS-N with the score in its description.
// Needs an LPS grid.
nlohmann::json boxes_to_slicer_markups(const std::vector<Box>& boxes, const Geometry& grid,
                                       const std::vector<std::string>& class_names);
// RFC 7946 GeoJSON: a FeatureCollection with one Polygon per box (its four corners in the
// raster's CRS, transformed to WGS 84 longitude/latitude, exterior ring counterclockwise and
// closed) and properties label, class, score. Needs a 2D CRS grid.
nlohmann::json boxes_to_geojson(const std::vector<Box>& boxes, const Geometry& grid,
                                const std::vector<std::string>& class_names);

// Writes STEM.json (graft's boxes) and, beside it, STEM.mrk.json (Slicer markups) for an LPS grid
// or STEM.geojson for a CRS grid; returns the paths written. Each file appears atomically.
std::vector<std::string> write_box_files(const std::vector<Box>& boxes, const Geometry& grid,
                                         const std::vector<std::string>& class_names, const std::string& stem);

}  // namespace graft::io
