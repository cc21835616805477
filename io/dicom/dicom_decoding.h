// Pixel decoding of an assembled series: the decoders DCMTK must know before it reads a file.
#pragma once

namespace graft::io::dicom_detail {

// Registers DCMTK's JPEG, JPEG-LS and RLE decoders once per process; call before loading files.
void register_codecs();

}  // namespace graft::io::dicom_detail
