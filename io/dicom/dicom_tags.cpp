// Helpers that read DICOM element values through DCMTK; header reading and decoding build on
// them, so they sit apart from both.
#include "io/dicom/dicom_tags.h"

#include <dcmtk/dcmdata/dctypes.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <cmath>
#include <cstdio>
#include <ios>
#include <sstream>

namespace graft::io::dicom_detail {

std::string get_string(DcmItem* item, const DcmTagKey& tag) {
  OFString value;
  if (item && item->findAndGetOFString(tag, value).good()) return std::string(value.c_str());
  return "";
}

bool get_double(DcmItem* item, const DcmTagKey& tag, double& value, unsigned long position) {
  Float64 number = 0;
  if (item && item->findAndGetFloat64(tag, number, position).good() && std::isfinite(number)) {
    value = number;
    return true;
  }
  return false;
}

int get_int(DcmItem* item, const DcmTagKey& tag, int fallback) {
  Sint32 signed_value = 0;
  if (item && item->findAndGetSint32(tag, signed_value).good()) return signed_value;
  Uint16 unsigned_value = 0;
  if (item && item->findAndGetUint16(tag, unsigned_value).good()) return unsigned_value;
  double number = 0;
  if (get_double(item, tag, number)) return static_cast<int>(std::lround(number));
  return fallback;
}

DcmItem* functional_group(DcmItem* per_frame, DcmItem* shared, const DcmTagKey& macro) {
  DcmItem* item = nullptr;
  if (per_frame && per_frame->findAndGetSequenceItem(macro, item, 0).good() && item) return item;
  if (shared && shared->findAndGetSequenceItem(macro, item, 0).good() && item) return item;
  return nullptr;
}

std::string round_text(double value, int decimals) {
  std::ostringstream text;
  text.setf(std::ios::fixed);
  text.precision(decimals);
  text << (std::abs(value) < std::pow(10.0, -decimals) ? 0.0 : value);
  return text.str();
}

std::string decimal_string(double value) {
  if (value == 0.0) value = 0.0;  // no "-0"
  char text[64];
  for (int digits = 15; digits > 0; --digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, value);
    if (std::string(text).size() <= 16) return text;
  }
  return "0";
}

std::string new_uid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

}  // namespace graft::io::dicom_detail
