#include "io/nrrd/seg_nrrd.h"

#include <libdeflate.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/file_bytes.h"
#include "io/segment_names.h"

namespace graft::io {
namespace {

// NRRD key/value lines escape only the newline and the backslash.
std::string escape_value(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string unescape_value(const std::string& value) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      ++i;
      out += value[i] == 'n' ? '\n' : value[i];
    } else {
      out += value[i];
    }
  }
  return out;
}

std::string number(double value) {
  char text[40];
  std::snprintf(text, sizeof(text), "%.17g", value == 0.0 ? 0.0 : value);
  return text;
}

std::string coded(const CodedConcept& concept) { return concept.scheme + "^" + concept.value + "^" + concept.meaning; }

// Slicer's terminology entry: context~category~type~type modifier~anatomic context~region~region
// modifier, each concept as scheme^value^meaning (vtkSlicerTerminologyEntry's serialisation).
std::string terminology_entry(const SegmentTerminology& terminology) {
  return "Segmentation category and type - 3D Slicer General Anatomy list~" + coded(terminology.category) + "~" +
         coded(terminology.type) + "~^^~Anatomic codes - DICOM master list~^^~^^";
}

// Each segment's bounding box in voxels, inclusive, as x0 x1 y0 y1 z0 z1; "0 -1 0 -1 0 -1" when
// the segment has no voxel, as Slicer writes an empty segment.
std::map<int, std::array<std::int64_t, 6>> extents_by_value(const Image& labels) {
  std::map<int, std::array<std::int64_t, 6>> extents;
  const auto& n = labels.geometry().size_xyz;
  std::int64_t i = 0;
  for (std::int64_t z = 0; z < n[2]; ++z) {
    for (std::int64_t y = 0; y < n[1]; ++y) {
      for (std::int64_t x = 0; x < n[0]; ++x, ++i) {
        const int value = static_cast<int>(labels.value_at(i));
        if (value == 0) continue;
        auto [it, inserted] = extents.try_emplace(value, std::array<std::int64_t, 6>{x, x, y, y, z, z});
        auto& e = it->second;
        e[0] = std::min(e[0], x), e[1] = std::max(e[1], x);
        e[2] = std::min(e[2], y), e[3] = std::max(e[3], y);
        e[4] = std::min(e[4], z), e[5] = std::max(e[5], z);
      }
    }
  }
  return extents;
}

std::string color_text(const std::array<double, 3>& rgb) {
  return number(rgb[0]) + " " + number(rgb[1]) + " " + number(rgb[2]);
}

}  // namespace

void write_seg_nrrd(const Image& labels, const std::vector<LabelSegment>& segments, const std::string& path) {
  if (labels.channels() != 1) {
    throw Error(path + ": a .seg.nrrd holds a label map of one channel, not " + std::to_string(labels.channels()));
  }
  if (!dtype_is_integer(labels.dtype())) {
    throw Error(path + ": a .seg.nrrd holds integer labels, not " + dtype_name(labels.dtype()));
  }
  const auto extents = extents_by_value(labels);
  std::set<int> claimed;
  for (const LabelSegment& segment : segments) {
    if (segment.label_value < 1 || segment.label_value > 65535) {
      throw Error(path + ": segment \"" + segment.name + "\" has label value " + std::to_string(segment.label_value) +
                  "; a .seg.nrrd layer holds 1..65535");
    }
    claimed.insert(segment.label_value);
  }
  for (const auto& [value, extent] : extents) {
    if (value < 0 || !claimed.count(value)) {
      throw Error(path + ": label value " + std::to_string(value) + " is in the image but no segment names it");
    }
  }
  const int largest = claimed.empty() ? 0 : *claimed.rbegin();
  const Image voxels = labels.cast(largest <= 255 ? DType::kU8 : DType::kU16);
  const Geometry& grid = labels.geometry();

  std::ostringstream header;
  header << "NRRD0004\n# Complete NRRD file format specification at:\n# http://teem.sourceforge.net/nrrd/format.html\n";
  header << "type: " << (voxels.dtype() == DType::kU8 ? "unsigned char" : "unsigned short") << "\n";
  header << "dimension: 3\nspace: left-posterior-superior\n";
  header << "sizes: " << grid.size_xyz[0] << " " << grid.size_xyz[1] << " " << grid.size_xyz[2] << "\n";
  header << "space directions:";
  for (int axis = 0; axis < 3; ++axis) {
    header << " (" << number(grid.direction[0][axis] * grid.spacing_xyz[axis]) << ","
           << number(grid.direction[1][axis] * grid.spacing_xyz[axis]) << ","
           << number(grid.direction[2][axis] * grid.spacing_xyz[axis]) << ")";
  }
  header << "\nkinds: domain domain domain\n";
  header << "endian: little\nencoding: gzip\n";
  header << "space origin: (" << number(grid.origin_world[0]) << "," << number(grid.origin_world[1]) << ","
         << number(grid.origin_world[2]) << ")\n";
  for (std::size_t n = 0; n < segments.size(); ++n) {
    const LabelSegment& segment = segments[n];
    const std::string key = "Segment" + std::to_string(n) + "_";
    const auto extent = extents.find(segment.label_value);
    std::string extent_text = "0 -1 0 -1 0 -1";
    if (extent != extents.end()) {
      const auto& e = extent->second;
      extent_text = std::to_string(e[0]) + " " + std::to_string(e[1]) + " " + std::to_string(e[2]) + " " +
                    std::to_string(e[3]) + " " + std::to_string(e[4]) + " " + std::to_string(e[5]);
    }
    std::string tags = "Segmentation.Status:inprogress|";
    if (const auto terminology = terminology_for_name(segment.name)) {
      tags += "TerminologyEntry:" + terminology_entry(*terminology) + "|";
    }
    header << key << "Color:=" << color_text(segment.color_rgb.value_or(default_segment_color(segment.label_value)))
           << "\n";
    header << key << "ColorAutoGenerated:=" << (segment.color_rgb ? 0 : 1) << "\n";
    header << key << "Extent:=" << extent_text << "\n";
    header << key << "ID:=Segment_" << segment.label_value << "\n";
    header << key << "LabelValue:=" << segment.label_value << "\n";
    header << key << "Layer:=0\n";
    header << key << "Name:=" << escape_value(segment.name) << "\n";
    header << key << "NameAutoGenerated:=0\n";
    header << key << "Tags:=" << escape_value(tags) << "\n";
  }
  header << "Segmentation_ContainedRepresentationNames:=Binary labelmap|\n";
  header << "Segmentation_MasterRepresentation:=Binary labelmap\n";
  header << "Segmentation_ReferenceImageExtentOffset:=0 0 0\n\n";

  const std::string text = header.str();
  write_atomically(path, [&](const std::string& temporary) {
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr) throw Error(path + ": cannot create the file");
    libdeflate_compressor* compressor = libdeflate_alloc_compressor(6);
    std::vector<std::uint8_t> compressed(libdeflate_gzip_compress_bound(compressor, voxels.byte_count()));
    const std::size_t compressed_bytes =
        libdeflate_gzip_compress(compressor, voxels.bytes(), voxels.byte_count(), compressed.data(), compressed.size());
    libdeflate_free_compressor(compressor);
    const bool written = compressed_bytes > 0 && std::fwrite(text.data(), 1, text.size(), file) == text.size() &&
                         std::fwrite(compressed.data(), 1, compressed_bytes, file) == compressed_bytes;
    if (std::fclose(file) != 0 || !written) throw Error(path + ": cannot write the file (disk full?)");
  });
}

std::map<std::string, std::string> read_nrrd_key_values(const std::string& path) {
  const std::vector<std::uint8_t> prefix = read_file_prefix(path, 1 << 20);
  std::istringstream lines(std::string(prefix.begin(), prefix.end()));
  std::string line;
  std::getline(lines, line);
  if (line.rfind("NRRD000", 0) != 0) throw Error(path + ": NRRD magic line is missing");
  std::map<std::string, std::string> values;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    const auto separator = line.find(":=");
    if (line[0] == '#' || separator == std::string::npos) continue;
    values[line.substr(0, separator)] = unescape_value(line.substr(separator + 2));
  }
  return values;
}

Image labels_from_seg_nrrd(Image layers, const std::map<std::string, std::string>& header, const std::string& path) {
  if (!header.count("Segment0_ID")) return layers;
  if (!dtype_is_integer(layers.dtype())) {
    throw Error(path + ": a segmentation's voxels must be integers, not " + dtype_name(layers.dtype()));
  }
  struct FileSegment {
    LabelSegment segment;
    int layer = 0;
  };
  std::vector<FileSegment> found;
  for (int n = 0; header.count("Segment" + std::to_string(n) + "_ID"); ++n) {
    const std::string key = "Segment" + std::to_string(n) + "_";
    auto integer = [&](const std::string& field, int fallback) {
      const auto it = header.find(key + field);
      if (it == header.end()) return fallback;
      try {
        std::size_t used = 0;
        const int value = std::stoi(it->second, &used);
        if (used == it->second.size()) return value;
      } catch (const std::exception&) {
      }
      throw Error(path + ": " + key + field + " is '" + it->second + "', not a whole number");
    };
    FileSegment entry;
    entry.segment.label_value = integer("LabelValue", 1);
    entry.layer = integer("Layer", 0);
    if (entry.layer < 0 || entry.layer >= layers.channels()) {
      throw Error(path + ": " + key + "Layer is " + std::to_string(entry.layer) + " but the file has " +
                  std::to_string(layers.channels()) + " layer(s)");
    }
    const auto name = header.find(key + "Name");
    entry.segment.name = name != header.end() ? name->second : header.at(key + "ID");
    const auto color = header.find(key + "Color");
    if (color != header.end()) {
      std::istringstream parts(color->second);
      std::array<double, 3> rgb{};
      if (!(parts >> rgb[0] >> rgb[1] >> rgb[2])) {
        throw Error(path + ": " + key + "Color is '" + color->second + "', not three numbers");
      }
      entry.segment.color_rgb = rgb;
    }
    found.push_back(entry);
  }

  const bool one_layer = layers.channels() == 1;
  const int largest = one_layer ? std::max_element(found.begin(), found.end(), [](const auto& a, const auto& b) {
                                    return a.segment.label_value < b.segment.label_value;
                                  })->segment.label_value
                                : static_cast<int>(found.size());
  Geometry grid = layers.geometry();
  Image labels(largest <= 255 ? DType::kU8 : DType::kU16, 1, grid);
  labels.metadata() = layers.metadata();
  labels.metadata().segments.clear();
  const std::int64_t voxels = grid.voxel_count();
  for (std::size_t n = 0; n < found.size(); ++n) {
    LabelSegment segment = found[n].segment;
    const int stored_value = segment.label_value;
    if (!one_layer) segment.label_value = static_cast<int>(n) + 1;
    const std::int64_t layer_offset = found[n].layer * voxels;
    visit_dtype(labels.dtype(), [&](auto type_tag) {
      using T = decltype(type_tag);
      T* out = labels.data<T>();
      for (std::int64_t i = 0; i < voxels; ++i) {
        if (static_cast<int>(layers.value_at(layer_offset + i)) == stored_value) out[i] = static_cast<T>(segment.label_value);
      }
    });
    labels.metadata().segments.push_back(segment);
  }
  return labels;
}

}  // namespace graft::io
