#include "io/dicom/rtstruct.h"

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>

#include "io/atomic_file.h"
#include "io/dicom/dicom_anonymize.h"
#include "io/dicom/dicom_tags.h"
#include "io/error.h"
#include "io/segment_names.h"
#include "io/stderr_silencer.h"

namespace graft::io {
namespace {

using dicom_detail::decimal_string;
using dicom_detail::get_string;
using dicom_detail::new_uid;

// The Study Component Management class that RT Referenced Study items name by convention
// (Eclipse, plastimatch and dcmqi all write it); the instance is the study's UID.
constexpr const char* kStudyComponentManagementClass = "1.2.840.10008.3.1.2.3.1";

void check(const OFCondition& status, const std::string& path, const std::string& what) {
  if (status.bad()) throw Error(path + ": cannot write RTSTRUCT: " + what + " (" + status.text() + ")");
}

std::vector<double> decimal_values(DcmItem* item, const DcmTagKey& tag) {
  OFString text;
  std::vector<double> values;
  if (item->findAndGetOFStringArray(tag, text).bad()) return values;
  const char* cursor = text.c_str();
  while (*cursor != '\0') {
    char* end = nullptr;
    const double value = std::strtod(cursor, &end);
    if (end == cursor) return {};
    values.push_back(value);
    cursor = end;
    while (*cursor == ' ') ++cursor;
    if (*cursor == '\\') ++cursor;
  }
  return values;
}

// ---- rasterising ----

// Toggles, in `mask` (width x height), every pixel whose centre lies inside the polygon: centres
// on a row between two crossings, the left crossing included and the right one not, so that
// contours meeting along an edge cover each pixel once.
void toggle_polygon(const std::vector<std::array<double, 2>>& polygon, std::int64_t width, std::int64_t height,
                    std::vector<std::uint8_t>& mask) {
  double y_min = polygon.front()[1], y_max = y_min;
  for (const auto& p : polygon) y_min = std::min(y_min, p[1]), y_max = std::max(y_max, p[1]);
  const auto first_row = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(y_min)));
  const auto last_row = std::min<std::int64_t>(height - 1, static_cast<std::int64_t>(std::floor(y_max)));
  std::vector<double> crossings;
  for (std::int64_t row = first_row; row <= last_row; ++row) {
    crossings.clear();
    const double y = static_cast<double>(row);
    for (std::size_t i = 0, j = polygon.size() - 1; i < polygon.size(); j = i++) {
      const auto& a = polygon[j];
      const auto& b = polygon[i];
      if ((a[1] > y) != (b[1] > y)) crossings.push_back(a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
    }
    std::sort(crossings.begin(), crossings.end());
    for (std::size_t k = 0; k + 1 < crossings.size(); k += 2) {
      const auto from = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(crossings[k])));
      const auto to = std::min<std::int64_t>(width, static_cast<std::int64_t>(std::ceil(crossings[k + 1])));
      for (std::int64_t x = from; x < to; ++x) mask[row * width + x] ^= 1;
    }
  }
}

// ---- contour tracing ----

// The boundaries of one label on one slice, traced along voxel edges. Corner (cx, cy) lies
// between voxel centres (cx - 1, cy - 1) and (cx, cy). Each boundary edge is directed so that
// the label's voxel is on the same side of every edge; edges then chain into closed loops, the
// outer boundaries and the holes alike.
std::vector<std::vector<std::array<std::int64_t, 2>>> trace_loops(
    const std::vector<std::array<std::int64_t, 4>>& edges, std::int64_t width) {
  auto key = [&](std::int64_t cx, std::int64_t cy) { return cy * (width + 1) + cx; };
  std::multimap<std::int64_t, std::size_t> outgoing;
  for (std::size_t e = 0; e < edges.size(); ++e) outgoing.emplace(key(edges[e][0], edges[e][1]), e);
  std::vector<bool> used(edges.size(), false);
  std::vector<std::vector<std::array<std::int64_t, 2>>> loops;
  for (std::size_t start = 0; start < edges.size(); ++start) {
    if (used[start]) continue;
    std::vector<std::array<std::int64_t, 2>> loop;
    std::size_t edge = start;
    while (!used[edge]) {
      used[edge] = true;
      loop.push_back({edges[edge][0], edges[edge][1]});
      // Where two loops touch at a corner, any unused edge leaving it keeps every loop closed.
      const auto [first, last] = outgoing.equal_range(key(edges[edge][2], edges[edge][3]));
      std::size_t next = edge;
      for (auto it = first; it != last; ++it) {
        if (!used[it->second]) {
          next = it->second;
          break;
        }
      }
      if (next == edge) break;
      edge = next;
    }
    // Corners where the boundary goes straight on add nothing to the shape.
    std::vector<std::array<std::int64_t, 2>> corners;
    for (std::size_t i = 0; i < loop.size(); ++i) {
      const auto& before = loop[(i + loop.size() - 1) % loop.size()];
      const auto& here = loop[i];
      const auto& after = loop[(i + 1) % loop.size()];
      const bool straight = (before[0] == here[0] && here[0] == after[0]) || (before[1] == here[1] && here[1] == after[1]);
      if (!straight) corners.push_back(here);
    }
    if (corners.size() >= 4) loops.push_back(std::move(corners));
  }
  return loops;
}

// Boundary edges of every label on slice z, grouped by label value.
std::map<int, std::vector<std::array<std::int64_t, 4>>> boundary_edges(const Image& labels, std::int64_t z) {
  const auto& n = labels.geometry().size_xyz;
  const std::int64_t width = n[0], height = n[1];
  const std::int64_t offset = z * width * height;
  auto at = [&](std::int64_t x, std::int64_t y) -> int {
    if (x < 0 || y < 0 || x >= width || y >= height) return 0;
    return static_cast<int>(labels.value_at(offset + y * width + x));
  };
  std::map<int, std::vector<std::array<std::int64_t, 4>>> edges;
  for (std::int64_t y = 0; y < height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      const int value = at(x, y);
      if (value == 0) continue;
      auto& out = edges[value];
      // Around the voxel's square in one turning sense, each side facing another label.
      if (at(x, y - 1) != value) out.push_back({x, y, x + 1, y});
      if (at(x + 1, y) != value) out.push_back({x + 1, y, x + 1, y + 1});
      if (at(x, y + 1) != value) out.push_back({x + 1, y + 1, x, y + 1});
      if (at(x - 1, y) != value) out.push_back({x, y + 1, x, y});
    }
  }
  return edges;
}

std::string today(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof(text), format, &local);
  return text;
}

// Patient, study, frame of reference and character set, copied from the source's first image
// (Type 2 elements it lacks are written empty, as the IOD allows).
void copy_source_identity(DcmDataset& source, DcmDataset& target, const std::string& path) {
  const DcmTagKey copied[] = {DCM_SpecificCharacterSet, DCM_PatientName,     DCM_PatientID,
                              DCM_PatientBirthDate,     DCM_PatientSex,      DCM_StudyInstanceUID,
                              DCM_StudyDate,            DCM_StudyTime,       DCM_ReferringPhysicianName,
                              DCM_StudyID,              DCM_AccessionNumber, DCM_FrameOfReferenceUID,
                              DCM_PositionReferenceIndicator};
  for (const DcmTagKey& tag : copied) {
    DcmElement* element = nullptr;
    if (source.findAndGetElement(tag, element).good() && element != nullptr) {
      check(target.insert(static_cast<DcmElement*>(element->clone()), true), path, DcmTag(tag).getTagName());
    }
  }
  const DcmTagKey type_two[] = {DCM_PatientName,           DCM_PatientID,       DCM_PatientBirthDate,
                                DCM_PatientSex,            DCM_StudyDate,       DCM_StudyTime,
                                DCM_StudyID,               DCM_ReferringPhysicianName,
                                DCM_AccessionNumber,       DCM_PositionReferenceIndicator};
  for (const DcmTagKey& tag : type_two) {
    if (!target.tagExists(tag)) check(target.insertEmptyElement(tag), path, DcmTag(tag).getTagName());
  }
}

}  // namespace

RtStruct read_rtstruct(const std::string& path) {
  StderrSilencer silence;
  DcmFileFormat file;
  const OFCondition loaded = file.loadFile(path.c_str());
  if (loaded.bad()) throw Error(path + ": cannot read RTSTRUCT (" + std::string(loaded.text()) + ")");
  DcmDataset* dataset = file.getDataset();
  RtStruct out;
  out.sop_instance_uid = get_string(dataset, DCM_SOPInstanceUID);
  out.study_instance_uid = get_string(dataset, DCM_StudyInstanceUID);
  const std::string where = path + " (SOP Instance UID " + out.sop_instance_uid + ")";
  if (get_string(dataset, DCM_SOPClassUID) != kRtStructureSetStorageUid) {
    throw Error(where + ": SOPClassUID is " + get_string(dataset, DCM_SOPClassUID) +
                ", not RT Structure Set Storage");
  }
  DcmItem *frame = nullptr, *study = nullptr, *series = nullptr;
  if (dataset->findAndGetSequenceItem(DCM_ReferencedFrameOfReferenceSequence, frame, 0).good() &&
      frame->findAndGetSequenceItem(DCM_RTReferencedStudySequence, study, 0).good() &&
      study->findAndGetSequenceItem(DCM_RTReferencedSeriesSequence, series, 0).good()) {
    out.referenced_series_instance_uid = get_string(series, DCM_SeriesInstanceUID);
  }

  std::map<int, std::size_t> roi_by_number;
  DcmSequenceOfItems* rois = nullptr;
  if (dataset->findAndGetSequence(DCM_StructureSetROISequence, rois).bad() || rois == nullptr || rois->card() == 0) {
    throw Error(where + ": StructureSetROISequence is missing or empty");
  }
  for (unsigned long i = 0; i < rois->card(); ++i) {
    DcmItem* item = rois->getItem(i);
    RtStructRoi roi;
    roi.number = dicom_detail::get_int(item, DCM_ROINumber, -1);
    roi.name = get_string(item, DCM_ROIName);
    roi.frame_of_reference_uid = get_string(item, DCM_ReferencedFrameOfReferenceUID);
    if (roi.number < 0) throw Error(where + ": StructureSetROISequence item " + std::to_string(i + 1) + " has no ROINumber");
    if (roi.name.empty()) roi.name = "ROI " + std::to_string(roi.number);
    roi_by_number[roi.number] = out.rois.size();
    out.rois.push_back(roi);
  }

  DcmSequenceOfItems* contours_by_roi = nullptr;
  if (dataset->findAndGetSequence(DCM_ROIContourSequence, contours_by_roi).bad() || contours_by_roi == nullptr) {
    throw Error(where + ": ROIContourSequence is missing");
  }
  for (unsigned long i = 0; i < contours_by_roi->card(); ++i) {
    DcmItem* item = contours_by_roi->getItem(i);
    const int number = dicom_detail::get_int(item, DCM_ReferencedROINumber, -1);
    const auto found = roi_by_number.find(number);
    if (found == roi_by_number.end()) {
      throw Error(where + ": ROIContourSequence item " + std::to_string(i + 1) + " references ROI " +
                  std::to_string(number) + ", which StructureSetROISequence does not list");
    }
    RtStructRoi& roi = out.rois[found->second];
    const std::vector<double> color = decimal_values(item, DCM_ROIDisplayColor);
    if (color.size() == 3) roi.color_rgb = std::array<double, 3>{color[0] / 255.0, color[1] / 255.0, color[2] / 255.0};
    DcmSequenceOfItems* contours = nullptr;
    if (item->findAndGetSequence(DCM_ContourSequence, contours).bad() || contours == nullptr) continue;
    for (unsigned long c = 0; c < contours->card(); ++c) {
      DcmItem* contour = contours->getItem(c);
      const std::string type = get_string(contour, DCM_ContourGeometricType);
      if (type != "CLOSED_PLANAR" && type != "CLOSEDPLANAR_XOR") continue;
      const std::vector<double> values = decimal_values(contour, DCM_ContourData);
      const int declared = dicom_detail::get_int(contour, DCM_NumberOfContourPoints, -1);
      if (values.size() % 3 != 0 || (declared >= 0 && static_cast<std::size_t>(declared) * 3 != values.size())) {
        throw Error(where + ": ROI \"" + roi.name + "\" contour " + std::to_string(c + 1) + " has " +
                    std::to_string(values.size()) + " ContourData values for NumberOfContourPoints " +
                    std::to_string(declared));
      }
      std::vector<Vec3> points;
      for (std::size_t k = 0; k + 2 < values.size(); k += 3) points.push_back({values[k], values[k + 1], values[k + 2]});
      if (points.size() >= 3) roi.contours.push_back(std::move(points));
    }
  }
  return out;
}

std::vector<int> rtstruct_label_values(const RtStruct& structure_set, const std::vector<std::string>& class_names,
                                       const std::string& path) {
  std::vector<int> values(structure_set.rois.size(), 0);
  if (class_names.empty()) {
    const bool numbers_are_labels = std::all_of(structure_set.rois.begin(), structure_set.rois.end(),
                                                [](const RtStructRoi& roi) { return roi.number >= 1 && roi.number <= 65535; });
    for (std::size_t i = 0; i < values.size(); ++i) {
      values[i] = numbers_are_labels ? structure_set.rois[i].number : static_cast<int>(i) + 1;
    }
    return values;
  }
  for (std::size_t c = 0; c < class_names.size(); ++c) {
    bool matched = false;
    for (std::size_t i = 0; i < structure_set.rois.size(); ++i) {
      if (same_class_name(structure_set.rois[i].name, class_names[c])) {
        values[i] = static_cast<int>(c) + 1;
        matched = true;
      }
    }
    if (!matched) {
      std::string names;
      for (const auto& roi : structure_set.rois) names += (names.empty() ? "" : ", ") + ("\"" + roi.name + "\"");
      throw Error(path + " (SOP Instance UID " + structure_set.sop_instance_uid + "): no ROI is named \"" +
                  class_names[c] + "\" (class " + std::to_string(c + 1) + "); the ROIs are " + names);
    }
  }
  return values;
}

Image rasterize_rtstruct(const RtStruct& structure_set, const std::vector<int>& label_values, const Geometry& grid,
                         const std::string& path) {
  const int largest = label_values.empty() ? 0 : *std::max_element(label_values.begin(), label_values.end());
  Image labels(largest <= 255 ? DType::kU8 : DType::kU16, 1, grid);
  labels.metadata().modality = "RTSTRUCT";
  labels.metadata().source_format = "dicom-rtstruct";
  const std::int64_t width = grid.size_xyz[0], height = grid.size_xyz[1];
  const std::string where = path + " (SOP Instance UID " + structure_set.sop_instance_uid + ")";
  for (std::size_t r = 0; r < structure_set.rois.size(); ++r) {
    const RtStructRoi& roi = structure_set.rois[r];
    const int value = label_values[r];
    if (value == 0) continue;
    labels.metadata().segments.push_back({value, roi.name, roi.color_rgb});
    std::map<std::int64_t, std::vector<std::uint8_t>> mask_by_slice;
    for (std::size_t c = 0; c < roi.contours.size(); ++c) {
      std::vector<std::array<double, 2>> polygon;
      double z_sum = 0, z_low = 1e300, z_high = -1e300;
      for (const Vec3& point : roi.contours[c]) {
        const Vec3 index = grid.world_to_index(point);
        polygon.push_back({index[0], index[1]});
        z_sum += index[2], z_low = std::min(z_low, index[2]), z_high = std::max(z_high, index[2]);
      }
      const double z = std::round(z_sum / static_cast<double>(polygon.size()));
      if (z_high - z < -0.25 || z_high - z > 0.25 || z_low - z < -0.25 || z_low - z > 0.25) {
        throw Error(where + ": ROI \"" + roi.name + "\" contour " + std::to_string(c + 1) +
                    " does not lie in a slice of the image's grid (slice index " + std::to_string(z_low) + " to " +
                    std::to_string(z_high) + "); is the label drawn on another series?");
      }
      if (z < 0 || z >= static_cast<double>(grid.size_xyz[2])) {
        throw Error(where + ": ROI \"" + roi.name + "\" contour " + std::to_string(c + 1) + " lies at slice " +
                    std::to_string(static_cast<long long>(z)) + ", outside the image's " +
                    std::to_string(grid.size_xyz[2]) + " slices; is the label drawn on another series?");
      }
      auto& mask = mask_by_slice[static_cast<std::int64_t>(z)];
      if (mask.empty()) mask.assign(static_cast<std::size_t>(width * height), 0);
      toggle_polygon(polygon, width, height, mask);
    }
    for (const auto& [z, mask] : mask_by_slice) {
      visit_dtype(labels.dtype(), [&](auto type_tag) {
        using T = decltype(type_tag);
        T* slice = labels.data<T>() + z * width * height;
        for (std::int64_t i = 0; i < width * height; ++i) {
          if (mask[i]) slice[i] = static_cast<T>(value);
        }
      });
    }
  }
  return labels;
}

void write_rtstruct(const Image& labels, const DicomVolumeSource& source, const std::string& output_path,
                    const RtStructWriteOptions& options) {
  const std::string& path = output_path;
  if (labels.channels() != 1 || !dtype_is_integer(labels.dtype())) {
    throw Error(path + ": an RTSTRUCT is drawn from a label map of one integer channel");
  }
  if (source.slices.empty()) throw Error(path + ": the reference series has no images to reference");
  if (!labels.geometry().same_grid(source.geometry, 1e-3)) {
    throw Error(path + ": the labels do not lie on the reference series' grid: " +
                labels.geometry().describe_difference(source.geometry, 1e-3));
  }
  const std::vector<LabelSegment> segments = named_segments(labels, {});
  StderrSilencer silence;
  DcmFileFormat source_file;
  const std::string& first = source.slices.front().file;
  check(source_file.loadFile(first.c_str(), EXS_Unknown, EGL_noChange, 4096), path, "reading source file " + first);

  DcmFileFormat file;
  DcmDataset& out = *file.getDataset();
  copy_source_identity(*source_file.getDataset(), out, path);
  const std::string date = today("%Y%m%d"), time = today("%H%M%S");
  const std::string frame_of_reference = source.frame_of_reference_uid.empty()
                                             ? get_string(&out, DCM_FrameOfReferenceUID)
                                             : source.frame_of_reference_uid;
  if (frame_of_reference.empty()) throw Error(path + ": the reference series has no FrameOfReferenceUID");
  auto put = [&](DcmItem& item, const DcmTagKey& tag, const std::string& value) {
    check(item.putAndInsertString(tag, value.c_str()), path, DcmTag(tag).getTagName());
  };
  put(out, DCM_SOPClassUID, kRtStructureSetStorageUid);
  put(out, DCM_SOPInstanceUID, new_uid());
  put(out, DCM_StudyInstanceUID, source.study_instance_uid);
  put(out, DCM_Modality, "RTSTRUCT");
  put(out, DCM_SeriesInstanceUID, new_uid());
  put(out, DCM_SeriesNumber, std::to_string(options.series_number));
  put(out, DCM_SeriesDescription, options.series_description);
  put(out, DCM_OperatorsName, "");
  put(out, DCM_Manufacturer, "graft");
  put(out, DCM_InstanceNumber, "1");
  put(out, DCM_StructureSetLabel, options.structure_set_label.substr(0, 16));  // SH: 16 characters
  put(out, DCM_StructureSetDate, date);
  put(out, DCM_StructureSetTime, time);
  put(out, DCM_InstanceCreationDate, date);
  put(out, DCM_InstanceCreationTime, time);

  // Every source image, so a reader can find the slices the contours lie on.
  DcmItem *frame_item = nullptr, *study_item = nullptr, *series_item = nullptr;
  check(out.findOrCreateSequenceItem(DCM_ReferencedFrameOfReferenceSequence, frame_item, -2), path,
        "ReferencedFrameOfReferenceSequence");
  put(*frame_item, DCM_FrameOfReferenceUID, frame_of_reference);
  check(frame_item->findOrCreateSequenceItem(DCM_RTReferencedStudySequence, study_item, -2), path,
        "RTReferencedStudySequence");
  put(*study_item, DCM_ReferencedSOPClassUID, kStudyComponentManagementClass);
  put(*study_item, DCM_ReferencedSOPInstanceUID, source.study_instance_uid);
  check(study_item->findOrCreateSequenceItem(DCM_RTReferencedSeriesSequence, series_item, -2), path,
        "RTReferencedSeriesSequence");
  put(*series_item, DCM_SeriesInstanceUID, source.series_instance_uid);
  auto reference_image = [&](DcmItem& parent, const DicomSliceSource& slice) {
    DcmItem* image = nullptr;
    check(parent.findOrCreateSequenceItem(DCM_ContourImageSequence, image, -2), path, "ContourImageSequence");
    put(*image, DCM_ReferencedSOPClassUID, slice.sop_class_uid);
    put(*image, DCM_ReferencedSOPInstanceUID, slice.sop_instance_uid);
    if (slice.frame_number > 0) put(*image, DCM_ReferencedFrameNumber, std::to_string(slice.frame_number));
  };
  for (const DicomSliceSource& slice : source.slices) reference_image(*series_item, slice);

  // Contours of every segment, slice by slice.
  std::map<int, std::vector<std::pair<std::int64_t, std::vector<std::vector<std::array<std::int64_t, 2>>>>>> loops;
  const Geometry& grid = labels.geometry();
  for (std::int64_t z = 0; z < grid.size_xyz[2]; ++z) {
    for (const auto& [value, edges] : boundary_edges(labels, z)) {
      loops[value].emplace_back(z, trace_loops(edges, grid.size_xyz[0]));
    }
  }
  for (std::size_t s = 0; s < segments.size(); ++s) {
    const LabelSegment& segment = segments[s];
    // The label value is the ROI's number, so reading the file back gives the same label map.
    const std::string roi_number = std::to_string(segment.label_value);
    DcmItem* roi = nullptr;
    check(out.findOrCreateSequenceItem(DCM_StructureSetROISequence, roi, -2), path, "StructureSetROISequence");
    put(*roi, DCM_ROINumber, roi_number);
    put(*roi, DCM_ReferencedFrameOfReferenceUID, frame_of_reference);
    put(*roi, DCM_ROIName, segment.name);
    put(*roi, DCM_ROIGenerationAlgorithm, "AUTOMATIC");

    DcmItem* contours = nullptr;
    check(out.findOrCreateSequenceItem(DCM_ROIContourSequence, contours, -2), path, "ROIContourSequence");
    const auto rgb = segment.color_rgb.value_or(default_segment_color(segment.label_value));
    put(*contours, DCM_ROIDisplayColor,
        std::to_string(std::lround(rgb[0] * 255)) + "\\" + std::to_string(std::lround(rgb[1] * 255)) + "\\" +
            std::to_string(std::lround(rgb[2] * 255)));
    put(*contours, DCM_ReferencedROINumber, roi_number);
    for (const auto& [z, slice_loops] : loops[segment.label_value]) {
      for (const auto& loop : slice_loops) {
        DcmItem* contour = nullptr;
        check(contours->findOrCreateSequenceItem(DCM_ContourSequence, contour, -2), path, "ContourSequence");
        reference_image(*contour, source.slices[static_cast<std::size_t>(z)]);
        put(*contour, DCM_ContourGeometricType, "CLOSED_PLANAR");
        put(*contour, DCM_NumberOfContourPoints, std::to_string(loop.size()));
        std::string data;
        for (const auto& corner : loop) {
          // Corner (cx, cy) lies half a voxel before voxel centre (cx, cy).
          const Vec3 world = grid.index_to_world(
              {static_cast<double>(corner[0]) - 0.5, static_cast<double>(corner[1]) - 0.5, static_cast<double>(z)});
          for (int axis = 0; axis < 3; ++axis) data += (data.empty() ? "" : "\\") + decimal_string(world[axis]);
        }
        put(*contour, DCM_ContourData, data);
      }
    }
    DcmItem* observation = nullptr;
    check(out.findOrCreateSequenceItem(DCM_RTROIObservationsSequence, observation, -2), path,
          "RTROIObservationsSequence");
    put(*observation, DCM_ObservationNumber, roi_number);
    put(*observation, DCM_ReferencedROINumber, roi_number);
    put(*observation, DCM_RTROIInterpretedType, terminology_for_name(segment.name) ? "ORGAN" : "");
    put(*observation, DCM_ROIInterpreter, "");
  }

  if (options.anonymize) {
    DicomUidMap uid_map;
    anonymize_dataset(out, uid_map);
  }
  write_atomically(path, [&](const std::string& temporary) {
    check(file.saveFile(temporary.c_str(), EXS_LittleEndianExplicit), path, "saving");
  });
}

}  // namespace graft::io
