// Finding DICOM files under a path, grouping their frames into series and sub-series, and picking
// one series: everything before a single series is assembled.
#include "io/dicom/dicom_series.h"

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

#include "io/dicom/dicom_decoding.h"
#include "io/dicom/dicom_header.h"
#include "io/dicom/dicom_tags.h"
#include "io/error.h"
#include "io/image_file.h"
#include "io/parallel.h"

namespace graft::io {

using dicom_detail::has_pixel_data;
using dicom_detail::load_file;
using dicom_detail::read_frame_headers;
using dicom_detail::register_codecs;
using dicom_detail::round_text;

namespace {

std::vector<std::string> list_files(const std::string& folder_or_file) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::error_code error;
  if (fs::is_directory(folder_or_file, error)) {
    for (auto it = fs::recursive_directory_iterator(
             folder_or_file, fs::directory_options::skip_permission_denied, error);
         it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (error) break;
      if (it->is_regular_file(error)) files.push_back(it->path().string());
    }
    if (error) throw Error(folder_or_file + ": cannot list the folder (" + error.message() + ")");
  } else if (fs::is_regular_file(folder_or_file, error)) {
    files.push_back(folder_or_file);
  } else {
    throw Error(folder_or_file + ": no such file or folder");
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string orientation_key(const DicomFrameHeader& h) {
  if (!h.has_orientation) return "none";
  std::string key;
  for (double v : h.orientation) key += round_text(v, 3) + ",";
  return key;
}

std::string size_text(const DicomFrameHeader& h) {
  return std::to_string(h.columns) + "x" + std::to_string(h.rows);
}

}  // namespace

std::string dicom_sop_class_uid(const std::string& file) {
  if (!looks_like_dicom(file)) return "";
  DcmFileFormat file_format;
  load_file(file_format, file, /*headers_only=*/true);
  OFString sop_class;
  file_format.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, sop_class);
  if (sop_class.empty()) file_format.getDataset()->findAndGetOFString(DCM_SOPClassUID, sop_class);
  return sop_class.c_str();
}

std::vector<DicomSeries> find_dicom_series(const std::string& folder_or_file) {
  register_codecs();
  std::vector<std::string> candidates;
  for (const auto& file : list_files(folder_or_file)) {
    if (looks_like_dicom(file)) candidates.push_back(file);
  }
  std::vector<std::vector<DicomFrameHeader>> per_file(candidates.size());
  parallel_for_each(candidates.size(), [&](std::size_t i) {
    DcmFileFormat file_format;
    load_file(file_format, candidates[i], /*headers_only=*/true);
    DcmDataset* dataset = file_format.getDataset();
    if (!has_pixel_data(dataset)) return;  // reports, structured sets, presentation states
    per_file[i] = read_frame_headers(file_format, candidates[i]);
  });

  // Sub-series: one series UID, but frames that cannot share a grid or that are different echoes.
  std::map<std::string, std::vector<DicomFrameHeader>> groups;
  std::map<std::string, std::set<std::string>> orientations, sizes, echoes;
  for (auto& frames : per_file) {
    for (auto& h : frames) {
      const std::string uid = h.series_instance_uid;
      orientations[uid].insert(orientation_key(h));
      sizes[uid].insert(size_text(h));
      echoes[uid].insert(h.echo);
      groups[uid + "\n" + orientation_key(h) + "\n" + size_text(h) + "\n" + h.echo].push_back(
          std::move(h));
    }
  }
  if (groups.empty()) {
    std::error_code error;
    const bool is_folder = std::filesystem::is_directory(folder_or_file, error);
    throw Error(folder_or_file + ": no DICOM image with pixel data found" +
                (is_folder
                     ? " in the folder (" + std::to_string(candidates.size()) + " DICOM-like files)"
                     : ""));
  }

  std::vector<DicomSeries> found;
  std::map<std::string, int> orientation_numbers;
  for (auto& [key, frames] : groups) {
    const DicomFrameHeader& first = frames.front();
    const std::string& uid = first.series_instance_uid;
    DicomSeries series;
    series.series_instance_uid = uid;
    series.study_instance_uid = first.study_instance_uid;
    series.frame_of_reference_uid = first.frame_of_reference_uid;
    series.modality = first.modality;
    series.series_description = first.series_description;
    series.series_number = first.series_number;
    const auto tiles_per_side =
        static_cast<std::int64_t>(std::ceil(std::sqrt(std::max(1, first.mosaic_tiles))));
    series.rows = first.rows / tiles_per_side;
    series.columns = first.columns / tiles_per_side;
    std::vector<std::string> parts;
    if (orientations[uid].size() > 1) {
      parts.push_back("orientation " + std::to_string(++orientation_numbers[uid]));
    }
    if (sizes[uid].size() > 1) parts.push_back("size " + size_text(first));
    if (echoes[uid].size() > 1) parts.push_back("echo " + first.echo);
    for (const auto& part : parts)
      series.sub_series += (series.sub_series.empty() ? "" : ", ") + part;
    std::set<std::string> files;
    for (const auto& h : frames) {
      series.frame_count += h.mosaic_tiles > 0 ? h.mosaic_tiles : 1;
      files.insert(h.file);
    }
    series.files.assign(files.begin(), files.end());
    auto headers = std::make_shared<DicomSeriesHeaders>();
    headers->frames = std::move(frames);
    series.headers = std::move(headers);
    found.push_back(std::move(series));
  }
  std::stable_sort(found.begin(), found.end(), [](const DicomSeries& a, const DicomSeries& b) {
    return std::tie(a.series_number, a.series_description, a.series_instance_uid, a.sub_series) <
           std::tie(b.series_number, b.series_description, b.series_instance_uid, b.sub_series);
  });
  return found;
}

namespace {

std::string series_label(const DicomSeries& s) {
  std::string label = s.series_instance_uid;
  if (!s.sub_series.empty()) label += "/" + s.sub_series;
  return label + " (\"" + s.series_description + "\", " + s.modality + ", " +
         std::to_string(s.frame_count) + " images)";
}

std::string list_candidates(const std::vector<const DicomSeries*>& candidates) {
  std::string text;
  for (const auto* s : candidates) text += (text.empty() ? "" : "; ") + series_label(*s);
  return text;
}

}  // namespace

std::string dicom_series_selector(const DicomSeries& series) {
  // De-identified series may lack their UID; the description is the next best handle.
  const std::string& name =
      series.series_instance_uid.empty() ? series.series_description : series.series_instance_uid;
  return name + (series.sub_series.empty() ? "" : "/" + series.sub_series);
}

const DicomSeries& select_dicom_series(const std::vector<DicomSeries>& series,
                                       const std::string& selector, const std::string& source) {
  std::vector<const DicomSeries*> matches;
  for (const auto& s : series) {
    if (selector.empty() || selector == dicom_series_selector(s) ||
        selector == s.series_instance_uid || selector == s.series_description) {
      matches.push_back(&s);
    }
  }
  if (matches.size() == 1) return *matches.front();
  std::vector<const DicomSeries*> all;
  for (const auto& s : series) all.push_back(&s);
  if (matches.empty()) {
    throw Error(source + ": no series matches \"" + selector + "\"; found " + list_candidates(all));
  }
  throw Error(
      source + ": " + std::to_string(matches.size()) + " series" +
      (selector.empty() ? "" : " match \"" + selector + "\"") +
      "; pick one with --series UID[/sub-series] or a description: " + list_candidates(matches));
}

}  // namespace graft::io
