// Reading values out of DCMTK items, shared by header reading and pixel decoding so that every
// element is read (and rejected when absent or not finite) the same way.
#pragma once

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dctagkey.h>

#include <array>
#include <cstddef>
#include <string>

namespace graft::io::dicom_detail {

// The element's value as text; empty when the item or the element is absent.
std::string get_string(DcmItem* item, const DcmTagKey& tag);

// The value at `position` of a numeric or decimal-string element; false (and `value` untouched)
// when it is absent or not finite.
bool get_double(DcmItem* item, const DcmTagKey& tag, double& value, unsigned long position = 0);

// All N values, or false with `values` untouched.
template <std::size_t N>
bool get_doubles(DcmItem* item, const DcmTagKey& tag, std::array<double, N>& values) {
  std::array<double, N> read{};
  for (std::size_t i = 0; i < N; ++i) {
    if (!get_double(item, tag, read[i], static_cast<unsigned long>(i))) return false;
  }
  values = read;
  return true;
}

// The element as an integer, whatever its VR; `fallback` when absent.
int get_int(DcmItem* item, const DcmTagKey& tag, int fallback = 0);

// The first item of a functional-group macro: the frame's own item first, then the shared one.
DcmItem* functional_group(DcmItem* per_frame, DcmItem* shared, const DcmTagKey& macro);

// A measurement as fixed-point text with `decimals` decimals, anything below the last decimal
// written as zero (never "-0.000"): stable enough to compare values from different files, short
// enough for messages.
std::string round_text(double value, int decimals);

// A decimal string (DS) value: the most significant digits that fit DS's 16 characters, which
// keeps positions in millimetres well below 1e-6 mm.
std::string decimal_string(double value);

// A new UID under DCMTK's site root, for instances and series graft writes.
std::string new_uid();

}  // namespace graft::io::dicom_detail
