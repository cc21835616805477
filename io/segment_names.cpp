#include "io/segment_names.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "io/error.h"

namespace graft::io {
namespace {

std::string name_key(const std::string& name) {
  std::string key;
  for (const char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return key;
}

const CodedConcept kAnatomicalStructure{"SCT", "123037004", "Anatomical Structure"};
const CodedConcept kMorphologicallyAlteredStructure{"SCT", "49755003", "Morphologically Altered Structure"};

struct NamedCode {
  std::vector<const char*> names;  // the spellings that mean it, before name_key
  const char* code;
  const char* meaning;
  bool altered = false;  // a lesion or tumour rather than anatomy
};

// SNOMED CT concept IDs as DICOM PS3.16 lists them (CID 7166 and its anatomic subsets; CID 7159 for
// lesions and tumours). Laterality is part of the concept where SNOMED has one ("Right kidney"),
// matching how TotalSegmentator and the Medical Segmentation Decathlon name their classes.
const std::vector<NamedCode>& table() {
  static const std::vector<NamedCode> codes = {
      {{"liver"}, "10200004", "Liver"},
      {{"spleen"}, "78961009", "Spleen"},
      {{"pancreas"}, "15776009", "Pancreas"},
      {{"kidney", "kidneys"}, "64033007", "Kidney"},
      {{"right kidney", "kidney right", "kidney_right"}, "9846003", "Right kidney"},
      {{"left kidney", "kidney left", "kidney_left"}, "18639004", "Left kidney"},
      {{"gallbladder", "gall bladder"}, "28231008", "Gallbladder"},
      {{"stomach"}, "69695003", "Stomach"},
      {{"esophagus", "oesophagus"}, "32849002", "Esophagus"},
      {{"duodenum"}, "38848004", "Duodenum"},
      {{"small bowel", "small intestine"}, "30315005", "Small intestine"},
      {{"colon"}, "71854001", "Colon"},
      {{"aorta"}, "15825003", "Aorta"},
      {{"inferior vena cava", "ivc"}, "64131007", "Inferior vena cava"},
      {{"portal vein", "portal vein and splenic vein"}, "32764006", "Portal vein"},
      {{"urinary bladder", "bladder"}, "89837001", "Urinary bladder"},
      {{"prostate"}, "41216001", "Prostate"},
      {{"heart"}, "80891009", "Heart"},
      {{"lung", "lungs"}, "39607008", "Lung"},
      {{"right lung", "lung right"}, "3341006", "Right lung"},
      {{"left lung", "lung left"}, "44029006", "Left lung"},
      {{"trachea"}, "44567001", "Trachea"},
      {{"thyroid", "thyroid gland"}, "69748006", "Thyroid"},
      {{"brain"}, "12738006", "Brain"},
      {{"spinal cord"}, "2748008", "Spinal cord"},
      {{"adrenal gland", "adrenal"}, "23451007", "Adrenal gland"},
      {{"tumor", "tumour", "neoplasm"}, "108369006", "Neoplasm", true},
      {{"lesion"}, "52988006", "Lesion", true},
  };
  return codes;
}

double srgb_from_linear(double c) {
  c = std::clamp(c, 0.0, 1.0);
  return c <= 0.0031308 ? 12.92 * c : 1.055 * std::pow(c, 1.0 / 2.4) - 0.055;
}
double linear_from_srgb(double c) { return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4); }

// D65 reference white, CIE 1931 2 degree observer.
constexpr double kWhiteX = 0.95047, kWhiteY = 1.0, kWhiteZ = 1.08883;

}  // namespace

bool same_class_name(const std::string& a, const std::string& b) { return name_key(a) == name_key(b); }

std::optional<SegmentTerminology> terminology_for_name(const std::string& name) {
  static const std::map<std::string, const NamedCode*> by_key = [] {
    std::map<std::string, const NamedCode*> map;
    for (const NamedCode& code : table()) {
      for (const char* spelling : code.names) map[name_key(spelling)] = &code;
    }
    return map;
  }();
  const auto found = by_key.find(name_key(name));
  if (found == by_key.end()) return std::nullopt;
  const NamedCode& code = *found->second;
  return SegmentTerminology{code.altered ? kMorphologicallyAlteredStructure : kAnatomicalStructure,
                            {"SCT", code.code, code.meaning}};
}

std::array<double, 3> default_segment_color(int label_value) {
  // Slicer's first label colours are similar in spirit: saturated, distinct hues, none near grey.
  static const std::array<std::array<int, 3>, 12> palette = {{{128, 174, 128},
                                                              {241, 214, 145},
                                                              {177, 122, 101},
                                                              {111, 184, 210},
                                                              {216, 101, 79},
                                                              {221, 130, 101},
                                                              {144, 238, 144},
                                                              {192, 104, 88},
                                                              {220, 245, 20},
                                                              {78, 63, 0},
                                                              {255, 250, 220},
                                                              {230, 220, 70}}};
  const auto& rgb = palette[static_cast<std::size_t>(std::max(label_value - 1, 0)) % palette.size()];
  return {rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0};
}

std::array<double, 3> dicom_lab_to_rgb(const std::array<unsigned, 3>& scaled_lab) {
  const double l = scaled_lab[0] * 100.0 / 65535.0;
  const double a = scaled_lab[1] * 255.0 / 65535.0 - 128.0;
  const double b = scaled_lab[2] * 255.0 / 65535.0 - 128.0;
  const double fy = (l + 16.0) / 116.0, fx = fy + a / 500.0, fz = fy - b / 200.0;
  auto inverse = [](double f) { return f > 6.0 / 29.0 ? f * f * f : 3.0 * (6.0 / 29.0) * (6.0 / 29.0) * (f - 4.0 / 29.0); };
  const double x = kWhiteX * inverse(fx), y = kWhiteY * inverse(fy), z = kWhiteZ * inverse(fz);
  return {srgb_from_linear(3.2404542 * x - 1.5371385 * y - 0.4985314 * z),
          srgb_from_linear(-0.9692660 * x + 1.8760108 * y + 0.0415560 * z),
          srgb_from_linear(0.0556434 * x - 0.2040259 * y + 1.0572252 * z)};
}

std::array<unsigned, 3> rgb_to_dicom_lab(const std::array<double, 3>& rgb) {
  const double r = linear_from_srgb(std::clamp(rgb[0], 0.0, 1.0));
  const double g = linear_from_srgb(std::clamp(rgb[1], 0.0, 1.0));
  const double b = linear_from_srgb(std::clamp(rgb[2], 0.0, 1.0));
  const double x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / kWhiteX;
  const double y = (0.2126729 * r + 0.7151522 * g + 0.0721750 * b) / kWhiteY;
  const double z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / kWhiteZ;
  auto f = [](double t) { return t > 216.0 / 24389.0 ? std::cbrt(t) : (24389.0 / 27.0 * t + 16.0) / 116.0; };
  const double l = 116.0 * f(y) - 16.0, a = 500.0 * (f(x) - f(y)), bb = 200.0 * (f(y) - f(z));
  auto scaled = [](double value, double low, double range) {
    return static_cast<unsigned>(std::lround(std::clamp((value - low) / range, 0.0, 1.0) * 65535.0));
  };
  return {scaled(l, 0.0, 100.0), scaled(a, -128.0, 255.0), scaled(bb, -128.0, 255.0)};
}

std::vector<LabelSegment> named_segments(const Image& labels, const std::vector<std::string>& names) {
  if (!dtype_is_integer(labels.dtype())) {
    throw Error("a label image must have an integer dtype, not " + dtype_name(labels.dtype()));
  }
  std::set<std::int64_t> present;
  for (std::int64_t i = 0; i < labels.element_count(); ++i) {
    const auto value = static_cast<std::int64_t>(labels.value_at(i));
    if (value < 0) throw Error("label value " + std::to_string(value) + " is negative; segments need 1..65535");
    if (value > 0) present.insert(value);
  }
  std::vector<LabelSegment> segments;
  for (const std::int64_t value : present) {
    LabelSegment segment;
    segment.label_value = static_cast<int>(value);
    for (const LabelSegment& known : labels.metadata().segments) {
      if (known.label_value == segment.label_value) segment = known;
    }
    if (value <= static_cast<std::int64_t>(names.size()) && !names[value - 1].empty()) {
      segment.name = names[value - 1];
    } else if (segment.name.empty()) {
      segment.name = "class " + std::to_string(value);
    }
    segments.push_back(segment);
  }
  return segments;
}

std::vector<std::string> foreground_class_names(const std::vector<std::string>& class_names, int classes) {
  if (classes > 0 && static_cast<int>(class_names.size()) == classes) {
    return {class_names.begin() + 1, class_names.end()};
  }
  return class_names;
}

}  // namespace graft::io
