#include "io/label_file.h"

#include <array>
#include <cmath>
#include <filesystem>

#include "io/boxes.h"
#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/dicom/rtstruct.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/segment_names.h"
#include "io/text.h"

namespace graft::io {
namespace {

// A DICOM file, not a folder or a "FOLDER#SERIES" selection (which names no file of its own).
bool is_dicom_file(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error) && sniff_format(path) == FileFormat::kDicom;
}

// Label values renumbered so that the segment named like class c becomes c; segments no class
// is named after become background.
Image map_segments_to_classes(const Image& labels, const std::vector<std::string>& foreground_names,
                              const std::string& label_path) {
  const auto& segments = labels.metadata().segments;
  std::vector<int> class_of_value;
  std::vector<LabelSegment> named;
  for (std::size_t c = 0; c < foreground_names.size(); ++c) {
    const LabelSegment* match = nullptr;
    for (const LabelSegment& segment : segments) {
      if (same_class_name(segment.name, foreground_names[c])) match = &segment;
    }
    if (match == nullptr) {
      std::string names;
      for (const auto& segment : segments) names += (names.empty() ? "\"" : ", \"") + segment.name + "\"";
      throw Error(label_path + ": no segment is named \"" + foreground_names[c] + "\" (class " + std::to_string(c + 1) +
                  "); its segments are " + names + ". Name the classes after the segments, or leave class_names "
                  "out to train on the label values as they are");
    }
    if (class_of_value.size() <= static_cast<std::size_t>(match->label_value)) class_of_value.resize(match->label_value + 1, 0);
    class_of_value[match->label_value] = static_cast<int>(c) + 1;
    named.push_back({static_cast<int>(c) + 1, match->name, match->color_rgb});
  }
  Image mapped(foreground_names.size() <= 255 ? DType::kU8 : DType::kU16, 1, labels.geometry());
  mapped.metadata() = labels.metadata();
  mapped.metadata().segments = named;
  visit_dtype(mapped.dtype(), [&](auto type_tag) {
    using T = decltype(type_tag);
    T* out = mapped.data<T>();
    for (std::int64_t i = 0; i < labels.element_count(); ++i) {
      const auto value = static_cast<std::size_t>(labels.value_at(i));
      out[i] = static_cast<T>(value < class_of_value.size() ? class_of_value[value] : 0);
    }
  });
  return mapped;
}

// The series UID of a DICOM image input, empty for other formats.
std::string image_series_uid(const std::string& image_path) {
  const DicomPath split = split_dicom_path(image_path);
  std::error_code error;
  if (!std::filesystem::is_directory(split.path, error) && sniff_format(split.path) != FileFormat::kDicom) return "";
  return dicom_volume_source(image_path).series_instance_uid;
}

}  // namespace

bool label_needs_image_grid(const std::string& label_path) {
  return is_box_annotation_path(label_path) ||
         (is_dicom_file(label_path) && dicom_sop_class_uid(label_path) == kRtStructureSetStorageUid);
}

Image read_label_map(const std::string& label_path, const std::string& image_path, const Geometry& image_grid,
                     const std::vector<std::string>& foreground_names) {
  if (is_box_annotation_path(label_path)) {
    return labels_from_boxes(read_boxes_file(label_path, image_grid, image_stem(image_path)), image_grid);
  }
  const std::string sop_class = is_dicom_file(label_path) ? dicom_sop_class_uid(label_path) : "";
  if (sop_class == kRtStructureSetStorageUid) {
    const RtStruct structure_set = read_rtstruct(label_path);
    const std::string series = image_series_uid(image_path);
    if (!series.empty() && !structure_set.referenced_series_instance_uid.empty() &&
        structure_set.referenced_series_instance_uid != series) {
      throw Error(label_path + " (SOP Instance UID " + structure_set.sop_instance_uid + "): its ROIs are drawn on series " +
                  structure_set.referenced_series_instance_uid + ", which is not " + image_path + " (series " + series +
                  ")");
    }
    return rasterize_rtstruct(structure_set, rtstruct_label_values(structure_set, foreground_names, label_path),
                              image_grid, label_path);
  }
  Image labels;
  const bool part_of_grid = sop_class == kSegmentationStorageUid;
  if (part_of_grid) {
    DicomSegContents seg = read_dicom_seg(label_path);
    const std::string series = image_series_uid(image_path);
    if (!series.empty() && !seg.referenced_series_instance_uid.empty() && seg.referenced_series_instance_uid != series) {
      throw Error(label_path + ": the SEG references series " + seg.referenced_series_instance_uid + ", which is not " +
                  image_path + " (series " + series + ")");
    }
    labels = std::move(seg.labels);
  } else {
    labels = read(label_path);
  }
  if (labels.channels() != 1) {
    throw Error(label_path + ": a label map has one channel, this one has " + std::to_string(labels.channels()));
  }
  if (!foreground_names.empty() && !labels.metadata().segments.empty()) {
    labels = map_segments_to_classes(labels, foreground_names, label_path);
  }
  return labels_onto_grid(labels, image_grid, label_path, image_path, part_of_grid);
}

Image labels_onto_grid(const Image& labels, const Geometry& grid, const std::string& label_path,
                       const std::string& image_path, bool part_of_grid) {
  if (labels.geometry().same_grid(grid, 1e-3)) return labels;
  const Geometry& from = labels.geometry();
  auto differ = [&] {
    return Error(label_path + ": not on the grid of " + image_path + " (" + from.describe_difference(grid, 1e-3) +
                 "); labels are never interpolated, so resample them onto that grid first");
  };
  // Image voxel (x, y, z) is label voxel origin + x * step[0] + y * step[1] + z * step[2].
  const Vec3 origin = from.world_to_index(grid.index_to_world({0, 0, 0}));
  std::array<std::array<std::int64_t, 3>, 3> step{};
  std::array<std::int64_t, 3> start{};
  for (int axis = 0; axis < 3; ++axis) {
    start[axis] = std::llround(origin[axis]);
    if (std::abs(origin[axis] - static_cast<double>(start[axis])) > 1e-3) throw differ();
    Vec3 unit{0, 0, 0};
    unit[axis] = 1;
    const Vec3 moved = from.world_to_index(grid.index_to_world(unit));
    for (int k = 0; k < 3; ++k) {
      const double delta = moved[k] - origin[k];
      step[axis][k] = std::llround(delta);
      if (std::abs(delta - static_cast<double>(step[axis][k])) > 1e-3) throw differ();
    }
    if (std::abs(step[axis][0]) + std::abs(step[axis][1]) + std::abs(step[axis][2]) != 1) throw differ();
  }
  // A whole grid re-indexed starts at one of its corners and has as many voxels.
  if (!part_of_grid) {
    if (from.voxel_count() != grid.voxel_count()) throw differ();
    for (int k = 0; k < 3; ++k) {
      if (start[k] != 0 && start[k] != from.size_xyz[k] - 1) throw differ();
    }
  }
  Image placed(labels.dtype(), 1, grid);
  placed.metadata() = labels.metadata();
  const auto& n = grid.size_xyz;
  const auto& m = from.size_xyz;
  std::int64_t labelled_inside = 0, mapped = 0;
  std::int64_t target = 0;
  for (std::int64_t z = 0; z < n[2]; ++z) {
    for (std::int64_t y = 0; y < n[1]; ++y) {
      for (std::int64_t x = 0; x < n[0]; ++x, ++target) {
        std::array<std::int64_t, 3> at{};
        bool inside = true;
        for (int k = 0; k < 3; ++k) {
          at[k] = start[k] + x * step[0][k] + y * step[1][k] + z * step[2][k];
          inside = inside && at[k] >= 0 && at[k] < m[k];
        }
        if (!inside) continue;
        ++mapped;
        const std::int64_t source = (at[2] * m[1] + at[1]) * m[0] + at[0];
        visit_dtype(labels.dtype(), [&](auto type_tag) {
          using T = decltype(type_tag);
          const T value = labels.data<T>()[source];
          placed.data<T>()[target] = value;
          labelled_inside += value != T{};
        });
      }
    }
  }
  if (!part_of_grid && mapped != grid.voxel_count()) throw differ();
  std::int64_t labelled = 0;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) labelled += labels.value_at(i) != 0;
  if (labelled != labelled_inside) {
    throw Error(label_path + ": " + std::to_string(labelled - labelled_inside) + " labelled voxels lie outside " +
                image_path + "'s grid: " + from.describe_difference(grid, 1e-3));
  }
  return placed;
}

}  // namespace graft::io
