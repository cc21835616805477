#include "io/dicom/dicom_seg.h"

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmseg/segutils.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>

#include "io/atomic_file.h"
#include "io/dicom/dicom_anonymize.h"
#include "io/dicom/dicom_header.h"
#include "io/dicom/dicom_tags.h"
#include "io/error.h"
#include "io/segment_names.h"
#include "io/stderr_silencer.h"

namespace graft::io {
namespace {

using dicom_detail::decimal_string;
using dicom_detail::new_uid;

// Where graft keeps a segment's label value inside the SEG: Segment Numbers must run 1..N, so a
// label Image with values {5, 17} cannot use them directly. Algorithm Parameters of the segment's
// Segmentation Algorithm Identification is the standard's place for how the algorithm produced
// this segment, survives de-identification, and other readers simply show it as text.
constexpr const char* kLabelValueParameter = "label_value=";

// Frames with no voxel of their segment are left out (a 100-label CT would otherwise be mostly
// empty frames), except that segment 1 always has a frame on the first and the last slice: the
// frames' positions are all a reader has to rebuild the grid, and without those two the volume's
// extent would shrink to the slices that happen to hold a label.
bool frame_is_written(bool frame_has_voxels, int segment_number, std::int64_t z,
                      std::int64_t size_z) {
  return frame_has_voxels || (segment_number == 1 && (z == 0 || z == size_z - 1));
}

struct SegWriter {
  const std::string& output_path;

  void check(const OFCondition& status, const std::string& what) const {
    if (status.bad()) fail(what + " (" + status.text() + ")");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(output_path + ": cannot write DICOM SEG: " + what);
  }
};

// The 0-based index into `segments` of each voxel of slice z, or -1 for background. Throws when a
// voxel holds a value no segment claims, which would otherwise vanish from the SEG unnoticed.
class SegmentLookup {
 public:
  explicit SegmentLookup(const std::vector<DicomSegment>& segments) {
    for (std::size_t s = 0; s < segments.size(); ++s) {
      index_by_label_[segments[s].label_value] = static_cast<std::int32_t>(s);
    }
  }

  void segments_of_slice(const Image& labels, std::int64_t z, std::vector<std::int32_t>& index,
                         const SegWriter& writer) const {
    const auto& n = labels.geometry().size_xyz;
    const std::int64_t pixels_per_slice = n[0] * n[1];
    index.assign(static_cast<std::size_t>(pixels_per_slice), -1);
    visit_dtype(labels.dtype(), [&](auto type_tag) {
      using T = decltype(type_tag);
      const T* voxels = labels.data<T>() + z * pixels_per_slice;
      std::int64_t cached_label = 0;
      std::int32_t cached_index = -1;
      for (std::int64_t i = 0; i < pixels_per_slice; ++i) {
        const auto value = static_cast<std::int64_t>(voxels[i]);
        if (value == 0) continue;
        if (value != cached_label) {
          const auto found = index_by_label_.find(value);
          if (found == index_by_label_.end()) {
            writer.fail("label value " + std::to_string(value) + " at voxel (x " +
                        std::to_string(i % n[0]) + ", y " + std::to_string(i / n[0]) + ", z " +
                        std::to_string(z) + ") belongs to no segment");
          }
          cached_label = value;
          cached_index = found->second;
        }
        index[static_cast<std::size_t>(i)] = cached_index;
      }
    });
  }

 private:
  std::map<std::int64_t, std::int32_t> index_by_label_;
};

void check_inputs(const Image& labels, const DicomVolumeSource& source,
                  const std::vector<DicomSegment>& segments, const SegWriter& writer) {
  labels.geometry().validate(writer.output_path);
  const auto& n = labels.geometry().size_xyz;
  if (labels.channels() != 1) {
    writer.fail("labels must have 1 channel, not " + std::to_string(labels.channels()));
  }
  if (!dtype_is_integer(labels.dtype())) {
    writer.fail("labels must have an integer dtype, not " + dtype_name(labels.dtype()));
  }
  if (labels.geometry().frame != Frame::kLPS) {
    writer.fail("labels are not in the patient (LPS) frame");
  }
  if (n[0] > 65535 || n[1] > 65535) writer.fail("slices larger than 65535 pixels do not fit DICOM");
  if (source.slices.empty()) writer.fail("the source volume lists no DICOM slices");
  if (static_cast<std::size_t>(source.geometry.size_xyz[2]) != source.slices.size()) {
    writer.fail("the source volume lists " + std::to_string(source.slices.size()) +
                " slices but its grid has " + std::to_string(source.geometry.size_xyz[2]));
  }
  if (static_cast<std::size_t>(n[2]) != source.slices.size()) {
    writer.fail("labels have " + std::to_string(n[2]) + " slices but the source series has " +
                std::to_string(source.slices.size()) + "; labels must lie on the source grid");
  }
  // 1e-3 mm rather than exact: labels that went through a NIfTI file carry float32 geometry.
  const double grid_tolerance_mm = 1e-3;
  if (!labels.geometry().same_grid(source.geometry, grid_tolerance_mm)) {
    writer.fail("labels are not on the source grid (labels vs source: " +
                labels.geometry().describe_difference(source.geometry, grid_tolerance_mm) + ")");
  }
  for (std::size_t z = 0; z < source.slices.size(); ++z) {
    if (source.slices[z].sop_class_uid.empty() || source.slices[z].sop_instance_uid.empty()) {
      writer.fail("source slice " + std::to_string(z) + " has no SOP Class/Instance UID");
    }
    if (source.slices[z].frame_number < 0 || source.slices[z].frame_number > 65535) {
      writer.fail("source slice " + std::to_string(z) + " has frame number " +
                  std::to_string(source.slices[z].frame_number) + " (must be 0..65535)");
    }
  }
  if (segments.empty()) writer.fail("no segments given");
  std::set<int> label_values;
  for (const DicomSegment& segment : segments) {
    if (segment.label_value < 1 || segment.label_value > 65535) {
      writer.fail("segment \"" + segment.label + "\" has label value " +
                  std::to_string(segment.label_value) + " (must be 1..65535)");
    }
    if (!label_values.insert(segment.label_value).second) {
      writer.fail("label value " + std::to_string(segment.label_value) +
                  " is used by two segments");
    }
    if (segment.label.empty()) {
      writer.fail("segment with label value " + std::to_string(segment.label_value) +
                  " has no label");
    }
  }
}

// Patient, study and frame of reference come from the first source file; its Rows/Columns must
// match the labels' slices. Pixel data is not read.
void load_source_header(const DicomVolumeSource& source, const Geometry& grid, DcmFileFormat& file,
                        const SegWriter& writer) {
  const std::string& first = source.slices.front().file;
  const Uint32 skip_values_longer_than_bytes = 4096;
  writer.check(
      file.loadFile(first.c_str(), EXS_Unknown, EGL_noChange, skip_values_longer_than_bytes),
      "reading source file " + first);
  Uint16 rows = 0, columns = 0;
  file.getDataset()->findAndGetUint16(DCM_Rows, rows);
  file.getDataset()->findAndGetUint16(DCM_Columns, columns);
  if (rows != grid.size_xyz[1] || columns != grid.size_xyz[0]) {
    writer.fail("labels slices are " + std::to_string(grid.size_xyz[0]) + "x" +
                std::to_string(grid.size_xyz[1]) + " (columns x rows) but source " + first +
                " has " + std::to_string(columns) + "x" + std::to_string(rows) +
                "; labels must lie on the source grid");
  }
}

std::unique_ptr<DcmSegmentation> create_segmentation(const Geometry& grid,
                                                     const DicomSegOptions& options,
                                                     const SegWriter& writer) {
  const std::string software_version =
      options.algorithm_version.empty() ? "unversioned" : options.algorithm_version;
  // Enhanced General Equipment makes all four Type 1; graft has no serial number.
  IODGeneralEquipmentModule::EquipmentInfo equipment("graft", "graft", "none",
                                                     software_version.c_str());
  ContentIdentificationMacro content("1", "SEGMENTATION", options.series_description.c_str(), "");
  DcmSegmentation* created = nullptr;
  writer.check(DcmSegmentation::createBinarySegmentation(
                   created, static_cast<Uint16>(grid.size_xyz[1]),
                   static_cast<Uint16>(grid.size_xyz[0]), equipment, content),
               "creating the segmentation");
  return std::unique_ptr<DcmSegmentation>(created);
}

void add_segments(DcmSegmentation& seg, const std::vector<DicomSegment>& segments,
                  const DicomSegOptions& options, const SegWriter& writer) {
  // Algorithm Version is Type 1 in the Algorithm Identification Macro.
  const std::string software_version =
      options.algorithm_version.empty() ? "unversioned" : options.algorithm_version;
  for (const DicomSegment& segment : segments) {
    const std::string context = "segment \"" + segment.label + "\"";
    // The anatomy's SNOMED code when graft knows the name; otherwise a generic structure/tissue.
    const auto terminology = terminology_for_name(segment.label);
    const CodeSequenceMacro category = terminology
        ? CodeSequenceMacro(terminology->category.value.c_str(), terminology->category.scheme.c_str(),
                            terminology->category.meaning.c_str())
        : CodeSequenceMacro("91723000", "SCT", "Anatomical Structure");
    const CodeSequenceMacro type = terminology
        ? CodeSequenceMacro(terminology->type.value.c_str(), terminology->type.scheme.c_str(),
                            terminology->type.meaning.c_str())
        : CodeSequenceMacro("85756007", "SCT", "Tissue");
    DcmSegment* created = nullptr;
    writer.check(DcmSegment::create(created, segment.label.c_str(), category, type,
                                    DcmSegTypes::SAT_AUTOMATIC, options.algorithm_name.c_str()),
                 context);
    std::unique_ptr<DcmSegment> owned(created);
    const auto lab = rgb_to_dicom_lab(segment.color_rgb.value_or(default_segment_color(segment.label_value)));
    writer.check(owned->setRecommendedDisplayCIELabValue(static_cast<Uint16>(lab[0]), static_cast<Uint16>(lab[1]),
                                                         static_cast<Uint16>(lab[2])),
                 context + " RecommendedDisplayCIELabValue");
    if (!segment.description.empty()) {
      writer.check(owned->setSegmentDescription(segment.description.c_str()),
                   context + " description");
    }
    AlgorithmIdentificationMacro algorithm;
    writer.check(algorithm.getAlgorithmFamilyCode().set("123110", "DCM", "Artificial Intelligence"),
                 context + " algorithm family");
    writer.check(algorithm.setAlgorithmName(options.algorithm_name.c_str()),
                 context + " algorithm name");
    writer.check(algorithm.setAlgorithmVersion(software_version.c_str()),
                 context + " algorithm version");
    writer.check(algorithm.setAlgorithmParameters(
                     (kLabelValueParameter + std::to_string(segment.label_value)).c_str()),
                 context + " algorithm parameters");
    writer.check(owned->setSegmentationAlgorithmIdentification(algorithm),
                 context + " algorithm identification");
    Uint16 segment_number = 0;
    writer.check(seg.addSegment(owned.get(), segment_number), "adding " + context);
    owned.release();  // the segmentation owns it now
  }
}

void add_shared_geometry(DcmSegmentation& seg, const Geometry& grid, const SegWriter& writer) {
  const auto& d = grid.direction;
  FGPlaneOrientationPatient orientation;
  // Row direction = index axis x (direction column 0), column direction = axis y (column 1).
  writer.check(orientation.setImageOrientationPatient(
                   decimal_string(d[0][0]).c_str(), decimal_string(d[1][0]).c_str(),
                   decimal_string(d[2][0]).c_str(), decimal_string(d[0][1]).c_str(),
                   decimal_string(d[1][1]).c_str(), decimal_string(d[2][1]).c_str()),
               "ImageOrientationPatient");
  writer.check(seg.addForAllFrames(orientation), "shared PlaneOrientationSequence");

  FGPixelMeasures measures;
  // PixelSpacing is (row spacing, column spacing) = (spacing along y, spacing along x).
  const std::string pixel_spacing =
      decimal_string(grid.spacing_xyz[1]) + "\\" + decimal_string(grid.spacing_xyz[0]);
  writer.check(measures.setPixelSpacing(pixel_spacing.c_str()), "PixelSpacing");
  writer.check(measures.setSliceThickness(decimal_string(grid.spacing_xyz[2]).c_str()),
               "SliceThickness");
  writer.check(measures.setSpacingBetweenSlices(decimal_string(grid.spacing_xyz[2]).c_str()),
               "SpacingBetweenSlices");
  writer.check(seg.addForAllFrames(measures), "shared PixelMeasuresSequence");
}

// Referenced Series Sequence (Common Instance Reference Module): every distinct source instance.
void add_source_references(DcmSegmentation& seg, const DicomVolumeSource& source,
                           const SegWriter& writer) {
  // De-identification tools sometimes empty these; a SEG that points at nothing is worse than none.
  for (const auto& [name, uid] : {std::pair<const char*, const std::string&>{"StudyInstanceUID", source.study_instance_uid},
                                  {"SeriesInstanceUID", source.series_instance_uid}}) {
    if (uid.empty()) {
      writer.fail(std::string("the source series has no ") + name + " (" + source.slices.front().file +
                  "), so a SEG cannot reference it; write NIfTI or NRRD instead");
    }
  }
  IODReferences references;
  std::set<std::string> seen;
  for (const DicomSliceSource& slice : source.slices) {
    if (!seen.insert(slice.sop_instance_uid).second) continue;
    auto* reference = new IODImageReference(
        "", source.study_instance_uid.c_str(), source.series_instance_uid.c_str(),
        slice.sop_instance_uid.c_str(), slice.sop_class_uid.c_str());
    if (!references.add(reference)) {
      delete reference;
      writer.fail("source instance " + slice.sop_instance_uid +
                  " cannot be referenced (study, series, SOP class or instance UID invalid)");
    }
  }
  const std::size_t added =
      seg.getCommonInstanceReference().addReferences(references, source.study_instance_uid.c_str());
  if (added != references.size()) {
    writer.fail("only " + std::to_string(added) + " of " + std::to_string(references.size()) +
                " source instances could be added to ReferencedSeriesSequence");
  }
}

// Frames go slice by slice (all segments of slice 0, then slice 1, ...), so each slice of the
// labels is classified once however many segments there are.
void add_frames(DcmSegmentation& seg, const Image& labels, const DicomVolumeSource& source,
                const std::vector<DicomSegment>& segments, const SegWriter& writer) {
  const Geometry& grid = labels.geometry();
  const std::int64_t pixels_per_slice = grid.size_xyz[0] * grid.size_xyz[1];
  const std::string dimension_uid = new_uid();
  writer.check(seg.getDimensions().addDimensionIndex(
                   DCM_ReferencedSegmentNumber, dimension_uid.c_str(),
                   DCM_SegmentIdentificationSequence, "ReferencedSegmentNumber"),
               "DimensionIndexSequence (segment)");
  writer.check(
      seg.getDimensions().addDimensionIndex(DCM_ImagePositionPatient, dimension_uid.c_str(),
                                            DCM_PlanePositionSequence, "ImagePositionPatient"),
      "DimensionIndexSequence (position)");

  const SegmentLookup lookup(segments);
  std::vector<std::int32_t> segment_of_pixel;
  std::vector<Uint8> mask(static_cast<std::size_t>(pixels_per_slice));
  for (std::int64_t z = 0; z < grid.size_xyz[2]; ++z) {
    lookup.segments_of_slice(labels, z, segment_of_pixel, writer);
    std::vector<bool> segment_present(segments.size(), false);
    for (const std::int32_t s : segment_of_pixel) {
      if (s >= 0) segment_present[static_cast<std::size_t>(s)] = true;
    }
    const DicomSliceSource& slice = source.slices[static_cast<std::size_t>(z)];
    for (std::size_t s = 0; s < segments.size(); ++s) {
      const int segment_number = static_cast<int>(s) + 1;
      if (!frame_is_written(segment_present[s], segment_number, z, grid.size_xyz[2])) continue;
      const std::string context =
          "frame for segment " + std::to_string(segment_number) + ", slice " + std::to_string(z);
      for (std::int64_t i = 0; i < pixels_per_slice; ++i) {
        mask[static_cast<std::size_t>(i)] =
            segment_of_pixel[static_cast<std::size_t>(i)] == static_cast<std::int32_t>(s);
      }

      FGPlanePosPatient position;
      const Vec3 corner_world = grid.index_to_world({0.0, 0.0, static_cast<double>(z)});
      writer.check(position.setImagePositionPatient(decimal_string(corner_world[0]).c_str(),
                                                    decimal_string(corner_world[1]).c_str(),
                                                    decimal_string(corner_world[2]).c_str()),
                   context + ": ImagePositionPatient");
      FGFrameContent content;
      writer.check(content.setDimensionIndexValues(static_cast<Uint32>(segment_number), 0),
                   context + ": DimensionIndexValues");
      writer.check(content.setDimensionIndexValues(static_cast<Uint32>(z + 1), 1),
                   context + ": DimensionIndexValues");

      ImageSOPInstanceReferenceMacro* created_reference = nullptr;
      writer.check(
          ImageSOPInstanceReferenceMacro::create(slice.sop_class_uid.c_str(),
                                                 slice.sop_instance_uid.c_str(), created_reference),
          context + ": source image reference");
      std::unique_ptr<ImageSOPInstanceReferenceMacro> reference(created_reference);
      // Added separately: DCMTK 3.6.7's create() overload that takes frame numbers fails for
      // every SOP class except Segmentation.
      if (slice.frame_number > 0) {
        writer.check(reference->addReferencedFrameNumber(static_cast<Uint16>(slice.frame_number)),
                     context + ": ReferencedFrameNumber");
      }
      OFVector<ImageSOPInstanceReferenceMacro> derivation_sources;
      derivation_sources.push_back(*reference);
      std::unique_ptr<FGDerivationImage> derivation(
          DcmSegmentation::createDerivationImageFG(derivation_sources, "graft segmentation"));
      if (!derivation) writer.fail(context + ": DerivationImageSequence could not be created");

      OFVector<FGBase*> per_frame;
      per_frame.push_back(&position);
      per_frame.push_back(&content);
      per_frame.push_back(derivation.get());
      writer.check(seg.addFrame(mask.data(), static_cast<Uint16>(segment_number), per_frame),
                   "adding " + context);
    }
  }
}

}  // namespace

std::vector<DicomSegment> segments_for_labels(const Image& labels, const std::vector<std::string>& names) {
  std::vector<DicomSegment> segments;
  for (const LabelSegment& named : named_segments(labels, names)) {
    segments.push_back({named.label_value, named.name, "", named.color_rgb});
  }
  return segments;
}

void write_dicom_seg(const Image& labels, const DicomVolumeSource& source,
                     const std::vector<DicomSegment>& segments, const std::string& output_path,
                     const DicomSegOptions& options) {
  const SegWriter writer{output_path};
  check_inputs(labels, source, segments, writer);
  const Geometry& grid = labels.geometry();

  // DCMTK logs its own diagnostics to stderr; every failure reaches the user as one graft::Error.
  StderrSilencer silence;
  DcmFileFormat source_header;
  load_source_header(source, grid, source_header, writer);

  std::unique_ptr<DcmSegmentation> seg = create_segmentation(grid, options, writer);
  writer.check(
      seg->importFromSourceImage(*source_header.getDataset()),
      "importing patient, study and frame of reference from " + source.slices.front().file);
  writer.check(seg->getSeries().setSeriesInstanceUID(new_uid().c_str()), "SeriesInstanceUID");
  writer.check(seg->getSOPCommon().setSOPInstanceUID(new_uid().c_str()), "SOPInstanceUID");
  writer.check(seg->getSeries().setSeriesNumber(std::to_string(options.series_number).c_str()),
               "SeriesNumber");
  writer.check(seg->getSeries().setSeriesDescription(options.series_description.c_str()),
               "SeriesDescription");

  add_segments(*seg, segments, options, writer);
  add_shared_geometry(*seg, grid, writer);
  add_source_references(*seg, source, writer);
  add_frames(*seg, labels, source, segments, writer);

  DcmFileFormat file;
  writer.check(seg->writeDataset(*file.getDataset()), "assembling the dataset");
  if (options.anonymize) {
    DicomUidMap own_map;
    try {
      anonymize_dataset(*file.getDataset(), options.uid_map ? *options.uid_map : own_map);
    } catch (const Error& error) {
      writer.fail(error.what());
    }
  }
  write_atomically(output_path, [&](const std::string& temporary) {
    writer.check(file.saveFile(temporary.c_str(), EXS_LittleEndianExplicit), "saving");
  });
}

namespace {

struct SegReader {
  const std::string& path;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path + ": cannot read DICOM SEG: " + what);
  }
  void check(const OFCondition& status, const std::string& what) const {
    if (status.bad()) fail(what + " (" + status.text() + ")");
  }
};


template <typename Group>
Group* frame_group(DcmSegmentation& seg, std::size_t frame, DcmFGTypes::E_FGType type,
                   const char* name, const SegReader& reader) {
  auto* group =
      static_cast<Group*>(seg.getFunctionalGroups().get(static_cast<Uint32>(frame), type));
  if (group == nullptr) reader.fail("frame " + std::to_string(frame + 1) + " has no " + name);
  return group;
}

int label_value_of(DcmSegment& segment, int segment_number) {
  OFString parameters;
  segment.getSegmentationAlgorithmIdentification().getAlgorithmParameters(parameters);
  const std::string text = parameters.c_str();
  const auto at = text.find(kLabelValueParameter);
  if (at == std::string::npos) return segment_number;
  const int value = std::atoi(text.c_str() + at + std::string(kLabelValueParameter).size());
  return value >= 1 && value <= 65535 ? value : segment_number;
}

// RecommendedDisplayCIELabValue, converted to sRGB in 0..1, when the segment has one.
std::optional<std::array<double, 3>> recommended_display_color(DcmSegment& segment) {
  Uint16 l = 0, a = 0, b = 0;
  if (segment.getRecommendedDisplayCIELabValue(l, a, b).bad() || (l == 0 && a == 0 && b == 0)) {
    return std::nullopt;
  }
  return dicom_lab_to_rgb({l, a, b});
}

std::string first_referenced_series(DcmDataset& dataset) {
  DcmItem* series = nullptr;
  OFString uid;
  if (dataset.findAndGetSequenceItem(DCM_ReferencedSeriesSequence, series, 0).good()) {
    series->findAndGetOFString(DCM_SeriesInstanceUID, uid);
    return uid.c_str();
  }
  DcmItem* study = nullptr;
  if (dataset
          .findAndGetSequenceItem(DCM_StudiesContainingOtherReferencedInstancesSequence, study, 0)
          .good() &&
      study->findAndGetSequenceItem(DCM_ReferencedSeriesSequence, series, 0).good()) {
    series->findAndGetOFString(DCM_SeriesInstanceUID, uid);
  }
  return uid.c_str();
}

}  // namespace

DicomSegContents read_dicom_seg(const std::string& path) {
  const SegReader reader{path};
  StderrSilencer silence;
  DcmFileFormat file;
  reader.check(file.loadFile(path.c_str()), "reading the file");
  DcmDataset& dataset = *file.getDataset();
  Uint16 rows = 0, columns = 0;
  reader.check(dataset.findAndGetUint16(DCM_Rows, rows), "Rows");
  reader.check(dataset.findAndGetUint16(DCM_Columns, columns), "Columns");
  DicomSegContents contents;
  contents.referenced_series_instance_uid = first_referenced_series(dataset);

  DcmSegmentation* loaded = nullptr;
  const OFCondition load_status = DcmSegmentation::loadDataset(dataset, loaded);
  std::unique_ptr<DcmSegmentation> seg(loaded);
  reader.check(load_status, "not a readable Segmentation object");
  const bool fractional = seg->getSegmentationType() == DcmSegTypes::ST_FRACTIONAL;
  if (!fractional && seg->getSegmentationType() != DcmSegTypes::ST_BINARY) {
    reader.fail("SegmentationType is neither BINARY nor FRACTIONAL");
  }
  // A fractional SEG stores a probability or an occupancy per voxel, scaled to
  // 0..MaximumFractionalValue; a label map keeps the voxels where it reaches one half, as
  // dcmqi and highdicom do when they binarise.
  Uint16 maximum_fractional_value = 0;
  if (fractional &&
      (dataset.findAndGetUint16(DCM_MaximumFractionalValue, maximum_fractional_value).bad() ||
       maximum_fractional_value == 0)) {
    reader.fail("MaximumFractionalValue is missing or 0 in a FRACTIONAL segmentation");
  }

  const std::size_t segment_count = seg->getNumberOfSegments();
  if (segment_count == 0) reader.fail("SegmentSequence is empty");
  std::vector<int> label_value_by_number(segment_count + 1, 0);
  for (std::size_t number = 1; number <= segment_count; ++number) {
    DcmSegment* segment = seg->getSegment(number);
    if (segment == nullptr) reader.fail("segment " + std::to_string(number) + " cannot be read");
    DicomSegment out;
    OFString text;
    segment->getSegmentLabel(text);
    out.label = text.c_str();
    segment->getSegmentDescription(text);
    out.description = text.c_str();
    out.label_value = label_value_of(*segment, static_cast<int>(number));
    label_value_by_number[number] = out.label_value;
    out.color_rgb = recommended_display_color(*segment);
    contents.segments.push_back(out);
  }

  const std::size_t frame_count = seg->getNumberOfFrames();
  if (frame_count == 0) reader.fail("NumberOfFrames is 0");
  auto* orientation = frame_group<FGPlaneOrientationPatient>(
      *seg, 0, DcmFGTypes::EFG_PLANEORIENTPATIENT, "PlaneOrientationSequence", reader);
  Vec3 row_direction{}, column_direction{};
  reader.check(orientation->getImageOrientationPatient(row_direction[0], row_direction[1],
                                                       row_direction[2], column_direction[0],
                                                       column_direction[1], column_direction[2]),
               "ImageOrientationPatient");
  const Vec3 normal = cross(row_direction, column_direction);
  auto* measures = frame_group<FGPixelMeasures>(*seg, 0, DcmFGTypes::EFG_PIXELMEASURES,
                                                "PixelMeasuresSequence", reader);
  Float64 row_spacing_mm = 0, column_spacing_mm = 0;
  reader.check(measures->getPixelSpacing(row_spacing_mm, 0), "PixelSpacing");
  reader.check(measures->getPixelSpacing(column_spacing_mm, 1), "PixelSpacing");
  Float64 slice_spacing_mm = 0;
  if (measures->getSpacingBetweenSlices(slice_spacing_mm).bad() || slice_spacing_mm <= 0) {
    slice_spacing_mm = 0;
  }

  // Frame positions, and their distance along the slice normal.
  std::vector<Vec3> position_by_frame(frame_count);
  std::vector<double> distance_by_frame(frame_count);
  std::vector<int> segment_by_frame(frame_count);
  for (std::size_t f = 0; f < frame_count; ++f) {
    auto* position = frame_group<FGPlanePosPatient>(*seg, f, DcmFGTypes::EFG_PLANEPOSPATIENT,
                                                    "PlanePositionSequence", reader);
    Vec3& p = position_by_frame[f];
    reader.check(position->getImagePositionPatient(p[0], p[1], p[2]),
                 "frame " + std::to_string(f + 1) + " ImagePositionPatient");
    distance_by_frame[f] = dot(p, normal);
    auto* identification = frame_group<FGSegmentation>(*seg, f, DcmFGTypes::EFG_SEGMENTATION,
                                                       "SegmentIdentificationSequence", reader);
    Uint16 number = 0;
    reader.check(identification->getReferencedSegmentNumber(number),
                 "frame " + std::to_string(f + 1) + " ReferencedSegmentNumber");
    if (number < 1 || number > segment_count) {
      reader.fail("frame " + std::to_string(f + 1) + " references segment " +
                  std::to_string(number) + ", which does not exist");
    }
    segment_by_frame[f] = number;
  }

  // Rebuild the slice axis: distinct distances, sorted; spacing from SpacingBetweenSlices or else
  // the smallest gap; every frame must then fall on a whole slice index.
  const double tolerance_mm = 1e-3;
  std::vector<double> distances = distance_by_frame;
  std::sort(distances.begin(), distances.end());
  distances.erase(std::unique(distances.begin(), distances.end(),
                              [&](double a, double b) { return std::abs(a - b) < tolerance_mm; }),
                  distances.end());
  if (slice_spacing_mm == 0) {
    slice_spacing_mm = 1.0;
    if (distances.size() > 1) {
      slice_spacing_mm = distances[1] - distances[0];
      for (std::size_t i = 2; i < distances.size(); ++i) {
        slice_spacing_mm = std::min(slice_spacing_mm, distances[i] - distances[i - 1]);
      }
    } else if (measures->getSliceThickness(slice_spacing_mm).bad() || slice_spacing_mm <= 0) {
      slice_spacing_mm = 1.0;
    }
  }
  const double extent_mm = distances.back() - distances.front();
  const auto slice_count =
      static_cast<std::int64_t>(std::llround(extent_mm / slice_spacing_mm)) + 1;

  std::size_t first_frame = 0;
  for (std::size_t f = 0; f < frame_count; ++f) {
    if (distance_by_frame[f] < distance_by_frame[first_frame]) first_frame = f;
  }
  Geometry grid;
  grid.size_xyz = {columns, rows, slice_count};
  grid.spacing_xyz = {column_spacing_mm, row_spacing_mm, slice_spacing_mm};
  grid.origin_world = position_by_frame[first_frame];
  for (int r = 0; r < 3; ++r) {
    grid.direction[r][0] = row_direction[r];
    grid.direction[r][1] = column_direction[r];
    grid.direction[r][2] = normal[r];
  }
  grid.validate(path);

  std::vector<std::int64_t> slice_by_frame(frame_count);
  for (std::size_t f = 0; f < frame_count; ++f) {
    const Vec3 index = grid.world_to_index(position_by_frame[f]);
    const double z = std::round(index[2]);
    if (std::abs(index[0]) * column_spacing_mm > tolerance_mm ||
        std::abs(index[1]) * row_spacing_mm > tolerance_mm ||
        std::abs(index[2] - z) * slice_spacing_mm > tolerance_mm) {
      reader.fail("frame " + std::to_string(f + 1) +
                  " does not lie on a regular grid of parallel slices");
    }
    slice_by_frame[f] = static_cast<std::int64_t>(z);
  }

  const int max_label =
      *std::max_element(label_value_by_number.begin(), label_value_by_number.end());
  Image labels(max_label <= 255 ? DType::kU8 : DType::kU16, 1, grid);
  labels.metadata().modality = "SEG";
  labels.metadata().source_format = "dicom-seg";
  // Overlapping segments: frames are painted in segment-number order, so the highest wins.
  std::vector<std::size_t> frame_order(frame_count);
  for (std::size_t f = 0; f < frame_count; ++f) frame_order[f] = f;
  std::stable_sort(frame_order.begin(), frame_order.end(), [&](std::size_t a, std::size_t b) {
    return segment_by_frame[a] < segment_by_frame[b];
  });
  const std::int64_t pixels_per_slice = static_cast<std::int64_t>(rows) * columns;
  for (const std::size_t f : frame_order) {
    const DcmIODTypes::Frame* stored = seg->getFrame(f);
    if (stored == nullptr) reader.fail("frame " + std::to_string(f + 1) + " has no pixel data");
    std::unique_ptr<DcmIODTypes::Frame> unpacked;
    if (!fractional) unpacked.reset(DcmSegUtils::unpackBinaryFrame(stored, rows, columns));
    const DcmIODTypes::Frame* frame = fractional ? stored : unpacked.get();
    if (frame == nullptr || frame->length < static_cast<std::size_t>(pixels_per_slice)) {
      reader.fail("frame " + std::to_string(f + 1) + " pixel data is too short");
    }
    // Binary frames unpack to 0 or 1 per pixel, so one threshold serves both types.
    const unsigned threshold = fractional ? (maximum_fractional_value + 1u) / 2u : 1u;
    const int value = label_value_by_number[segment_by_frame[f]];
    const std::int64_t offset = slice_by_frame[f] * pixels_per_slice;
    visit_dtype(labels.dtype(), [&](auto type_tag) {
      using T = decltype(type_tag);
      T* voxels = labels.data<T>() + offset;
      for (std::int64_t i = 0; i < pixels_per_slice; ++i) {
        if (frame->pixData[i] >= threshold) voxels[i] = static_cast<T>(value);
      }
    });
  }
  for (const DicomSegment& segment : contents.segments) {
    labels.metadata().segments.push_back({segment.label_value, segment.label, segment.color_rgb});
  }
  contents.labels = std::move(labels);
  return contents;
}

bool is_dicom_seg_series(const DicomSeries& series) {
  return series.headers && !series.headers->frames.empty() &&
         series.headers->frames.front().sop_class_uid == kSegmentationStorageUid;
}

DicomVolume read_dicom_seg_series(const DicomSeries& series) {
  if (series.files.size() != 1) {
    std::string files;
    for (const auto& file : series.files) files += (files.empty() ? "" : ", ") + file;
    throw Error("DICOM SEG series " + series.series_instance_uid + " has " + std::to_string(series.files.size()) +
                " files (" + files + "); give one of them as the input");
  }
  DicomSegContents contents = read_dicom_seg(series.files.front());
  DicomVolume volume;
  volume.source.study_instance_uid = series.study_instance_uid;
  volume.source.series_instance_uid = series.series_instance_uid;
  volume.source.frame_of_reference_uid = series.frame_of_reference_uid;
  volume.source.modality = "SEG";
  volume.source.geometry = contents.labels.geometry();
  volume.image = std::move(contents.labels);
  return volume;
}

}  // namespace graft::io
