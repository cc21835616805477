// The entry points that take a path: find, select, then assemble or read. Each step lives in the
// file of its concern (discovery, assembly, decoding); these only chain them.
#include "io/dicom/dicom_series.h"

#include "io/image_file.h"

namespace graft::io {

DicomVolumeSource dicom_volume_source(const std::string& dicom_path) {
  const DicomPath split = split_dicom_path(dicom_path);
  const auto series = find_dicom_series(split.path);
  return dicom_volume_source(select_dicom_series(series, split.series, split.path));
}

DicomVolume read_dicom(const std::string& folder_or_file, const std::string& selector,
                       const DicomReadOptions& options) {
  const auto series = find_dicom_series(folder_or_file);
  return read_dicom_series(select_dicom_series(series, selector, folder_or_file), options);
}

}  // namespace graft::io
