#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "io/image.h"

namespace graft::io {

// A coded concept as DICOM and Slicer's terminologies write it: scheme designator, code value,
// code meaning ("SCT", "10200004", "Liver").
struct CodedConcept {
  std::string scheme;
  std::string value;
  std::string meaning;
};

// The SNOMED CT category and type of a structure graft can name, for DICOM SEG's segment codes and
// a .seg.nrrd's terminology. The codes are those of DICOM PS3.16 (CID 7150 Segmentation Property
// Categories, CID 7151 Segmentation Property Types, CID 7152-7166 anatomy), which is where 3D
// Slicer's "General Anatomy" terminology takes them from.
struct SegmentTerminology {
  CodedConcept category;
  CodedConcept type;
};

// True when two class or segment names are the same name written differently: case, spaces, '-'
// and '_' are ignored ("Left Kidney" and "left_kidney").
bool same_class_name(const std::string& a, const std::string& b);

// The terminology for a class name, matched without regard to case, spaces, '-' or '_'
// ("Left Kidney", "kidney_left" and "left-kidney" are one name); nullopt for a name not in the
// table.
std::optional<SegmentTerminology> terminology_for_name(const std::string& name);

// The colour graft gives label value v when no file gave one: a fixed palette of well-separated
// colours, so a class keeps its colour from run to run.
std::array<double, 3> default_segment_color(int label_value);

// DICOM's RecommendedDisplayCIELabValue (L*, a*, b* scaled to 0..65535, PS3.3 C.10.7.1.1) to sRGB
// in 0..1 and back, through CIE XYZ with the D65 white point.
std::array<double, 3> dicom_lab_to_rgb(const std::array<unsigned, 3>& scaled_lab);
std::array<unsigned, 3> rgb_to_dicom_lab(const std::array<double, 3>& rgb);

// Segments for every label value > 0 present in `labels`: named names[value - 1] when given, else
// as labels.metadata().segments names the value, else "class VALUE"; coloured as the metadata
// colours them (writers give the others default_segment_color, marked as generated where the
// format says so). Throws graft::Error for a non-integer dtype or a negative
// value.
std::vector<LabelSegment> named_segments(const Image& labels, const std::vector<std::string>& names);

// The names of label values 1, 2, ... from a model's class_names, which list either every class
// (background first, as nnU-Net's dataset.json does) or the foreground classes only.
std::vector<std::string> foreground_class_names(const std::vector<std::string>& class_names, int classes);

}  // namespace graft::io
