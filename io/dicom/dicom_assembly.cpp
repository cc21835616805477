// Turning a series' frame headers into an ordered stack with one geometry; kept apart from
// decoding because dicom_volume_source needs the order and the grid but no pixels.
#include "io/dicom/dicom_assembly.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>

#include "io/dicom/dicom_tags.h"
#include "io/error.h"
#include "io/image_file.h"

namespace graft::io {
namespace dicom_detail {

namespace {

Vec3 slice_normal(const DicomFrameHeader& h) {
  if (h.has_mosaic_normal) return h.mosaic_normal;
  const Vec3 n = cross(row_direction(h), column_direction(h));
  return scaled(n, 1.0 / norm(n));
}

std::vector<PlaneImage> expand_planes(const DicomSeriesHeaders& headers, std::int64_t& rows,
                                      std::int64_t& columns) {
  std::vector<PlaneImage> planes;
  for (const auto& h : headers.frames) {
    if (h.mosaic_tiles <= 0) {
      planes.push_back({&h, -1, h.position_lps, 0.0});
      rows = h.rows;
      columns = h.columns;
      continue;
    }
    const auto per_side = static_cast<std::int64_t>(std::ceil(std::sqrt(h.mosaic_tiles)));
    rows = h.rows / per_side;
    columns = h.columns / per_side;
    // ImagePositionPatient of a mosaic is the corner of the whole mosaic; the first tile's
    // corner lies half the unused width and height further along the row and column directions.
    const Vec3 first =
        plus(h.position_lps,
             plus(scaled(row_direction(h), h.column_spacing_mm * (h.columns - columns) / 2.0),
                  scaled(column_direction(h), h.row_spacing_mm * (h.rows - rows) / 2.0)));
    const double step_mm =
        h.spacing_between_slices_mm > 0 ? h.spacing_between_slices_mm : h.slice_thickness_mm;
    if (!(step_mm > 0)) {
      throw Error(h.file +
                  ": a mosaic needs SpacingBetweenSlices or SliceThickness to place its images");
    }
    for (int tile = 0; tile < h.mosaic_tiles; ++tile) {
      planes.push_back({&h, tile, plus(first, scaled(slice_normal(h), step_mm * tile)), 0.0});
    }
  }
  return planes;
}

// Each slice's in-plane offset from slice 0, in rows along the column direction. A gantry tilts
// about the row axis, so its slices drift along the columns only; a drift along the rows is
// something else and is refused rather than guessed at.
SliceShear measure_shear(const std::vector<std::vector<PlaneImage>>& slices,
                         const DicomFrameHeader& first, double drift_tolerance_mm,
                         const std::string& name) {
  const Vec3 r = row_direction(first), c = column_direction(first);
  const Vec3& origin = slices.front().front().position_lps;
  SliceShear shear;
  for (std::size_t z = 0; z < slices.size(); ++z) {
    const Vec3 offset = minus(slices[z].front().position_lps, origin);
    const double along_rows_mm = dot(offset, r);
    if (std::abs(along_rows_mm) > drift_tolerance_mm) {
      throw Error(name + ": slice " + std::to_string(z) + " lies " + round_text(along_rows_mm, 3) +
                  " mm along the row direction from slice 0; gantry tilt shifts slices along " +
                  "the columns only, so --correct-tilt does not resample this series");
    }
    // In rows of the grid, whose column step is row_spacing * c even where IOP's rounded
    // cosines leave |c| a little off 1.
    shear.column_shift_px.push_back(dot(offset, c) / (dot(c, c) * first.row_spacing_mm));
  }
  return shear;
}

}  // namespace

Assembly assemble(const DicomSeries& series, bool allow_shear) {
  const DicomSeriesHeaders& headers = *series.headers;
  const std::string name = "series " + series.series_instance_uid +
                           (series.sub_series.empty() ? "" : " (" + series.sub_series + ")");
  std::int64_t rows = 0, columns = 0;
  std::vector<PlaneImage> planes = expand_planes(headers, rows, columns);
  const DicomFrameHeader& first = *planes.front().header;
  for (const auto& p : planes) {
    if (p.header->photometric != first.photometric ||
        p.header->bits_allocated != first.bits_allocated ||
        p.header->samples_per_pixel != first.samples_per_pixel ||
        p.header->pixel_representation != first.pixel_representation) {
      throw Error(
          name + ": " + p.header->file + " differs from " + first.file +
          " in PhotometricInterpretation, BitsAllocated, SamplesPerPixel or PixelRepresentation");
    }
  }
  Assembly assembly;
  Geometry& g = assembly.geometry;
  g.size_xyz = {columns, rows, 1};
  g.spacing_xyz = {first.column_spacing_mm, first.row_spacing_mm, 1.0};

  const bool positioned = std::all_of(planes.begin(), planes.end(), [](const PlaneImage& p) {
    return p.header->has_position && p.header->has_orientation;
  });
  if (!positioned) {
    if (planes.size() > 1) {
      for (const auto& p : planes) {
        if (!p.header->has_position || !p.header->has_orientation) {
          throw Error(name + ": " + p.header->file +
                      " has no ImagePositionPatient/ImageOrientationPatient, " + "so its " +
                      std::to_string(planes.size()) + " images cannot be stacked");
        }
      }
    }
    // A single projection image (X-ray, secondary capture) lies in the plane z = 0.
    if (first.spacing_between_slices_mm > 0) g.spacing_xyz[2] = first.spacing_between_slices_mm;
    assembly.slices = {{planes.front()}};
    return assembly;
  }

  const Vec3 normal = slice_normal(first);
  for (auto& p : planes) p.distance_mm = dot(p.position_lps, normal);
  std::stable_sort(planes.begin(), planes.end(), [](const PlaneImage& a, const PlaneImage& b) {
    return a.distance_mm < b.distance_mm;
  });
  // Images at one position are temporal positions (or repeats): they become channels.
  constexpr double kSamePositionMm = 1e-3;
  std::vector<std::vector<PlaneImage>> slices;
  for (const auto& p : planes) {
    if (slices.empty() || p.distance_mm - slices.back().front().distance_mm > kSamePositionMm)
      slices.emplace_back();
    slices.back().push_back(p);
  }
  for (auto& at_position : slices) {
    if (at_position.size() != slices.front().size()) {
      throw Error(name + ": " + std::to_string(slices.front().size()) +
                  " images at slice position " + round_text(slices.front().front().distance_mm, 3) +
                  " mm but " + std::to_string(at_position.size()) + " at " +
                  round_text(at_position.front().distance_mm, 3) +
                  " mm; the series is incomplete or mixes acquisitions");
    }
    std::stable_sort(at_position.begin(), at_position.end(),
                     [](const PlaneImage& a, const PlaneImage& b) {
                       const auto& x = *a.header;
                       const auto& y = *b.header;
                       return std::tie(x.temporal_position, x.trigger_time_ms, x.acquisition_number,
                                       x.instance_number, x.file, x.frame_index) <
                              std::tie(y.temporal_position, y.trigger_time_ms, y.acquisition_number,
                                       y.instance_number, y.file, y.frame_index);
                     });
  }

  double spacing_mm = first.spacing_between_slices_mm > 0 ? first.spacing_between_slices_mm
                      : first.slice_thickness_mm > 0      ? first.slice_thickness_mm
                                                          : 1.0;
  if (slices.size() > 1) {
    std::vector<double> gaps;
    for (std::size_t z = 1; z < slices.size(); ++z) {
      gaps.push_back(slices[z].front().distance_mm - slices[z - 1].front().distance_mm);
    }
    std::vector<double> sorted_gaps = gaps;
    std::nth_element(sorted_gaps.begin(), sorted_gaps.begin() + sorted_gaps.size() / 2,
                     sorted_gaps.end());
    const double median = sorted_gaps[sorted_gaps.size() / 2];
    const auto [smallest, largest] = std::minmax_element(gaps.begin(), gaps.end());
    // Positions are written with limited decimals; a gap that differs by more than this is real.
    const double tolerance_mm = std::max(0.01, 0.01 * median);
    if (*largest - median > tolerance_mm || median - *smallest > tolerance_mm) {
      throw Error(name + ": slice spacing is uneven (" + round_text(*smallest, 4) + " to " +
                  round_text(*largest, 4) +
                  " mm between ImagePositionPatient values); graft does not " +
                  "resample silently: resample the series, or read a sub-range with even spacing");
    }
    const Vec3 span =
        minus(slices.back().front().position_lps, slices.front().front().position_lps);
    const double along_mm = dot(span, normal);
    const double across_mm = norm(minus(span, scaled(normal, along_mm)));
    const double tilt_degrees = std::atan2(across_mm, along_mm) * 180.0 / M_PI;
    // Over a whole stack, in-plane drift under a hundredth of a pixel is rounding, not tilt.
    const double drift_tolerance_mm =
        0.01 * std::min(first.row_spacing_mm, first.column_spacing_mm) + 1e-4;
    if (across_mm > drift_tolerance_mm) {
      if (!allow_shear) {
        throw GantryTiltRefused(name + ": slices are sheared (gantry tilt " + round_text(tilt_degrees, 3) +
                                    " degrees: positions drift " + round_text(across_mm, 3) +
                                    " mm in-plane over the stack); graft does not resample silently: read it " +
                                    "with --correct-tilt (DicomReadOptions::correct_tilt) to resample the " +
                                    "slices onto an orthogonal grid, as dcm2niix does by default",
                                tilt_degrees);
      }
      assembly.shear = measure_shear(slices, first, drift_tolerance_mm, name);
      assembly.shear->tilt_degrees = tilt_degrees;
    }
    spacing_mm = along_mm / static_cast<double>(slices.size() - 1);
  }
  g.size_xyz[2] = static_cast<std::int64_t>(slices.size());
  g.spacing_xyz[2] = spacing_mm;
  g.origin_world = slices.front().front().position_lps;
  const Vec3 r = row_direction(first), c = column_direction(first);
  for (int i = 0; i < 3; ++i) {
    g.direction[i][0] = r[i];
    g.direction[i][1] = c[i];
    g.direction[i][2] = normal[i];
  }
  assembly.slices = std::move(slices);
  return assembly;
}

void check_has_headers(const DicomSeries& series) {
  if (!series.headers || series.headers->frames.empty()) {
    throw Error("series " + series.series_instance_uid +
                ": no images (was it found with find_dicom_series?)");
  }
}

DicomVolumeSource volume_source(const DicomSeries& series, const Geometry& geometry,
                                const std::vector<std::vector<PlaneImage>>& slices) {
  DicomVolumeSource source;
  source.geometry = geometry;
  source.study_instance_uid = series.study_instance_uid;
  source.series_instance_uid = series.series_instance_uid;
  source.frame_of_reference_uid = series.frame_of_reference_uid;
  source.modality = series.modality;
  for (const auto& at_position : slices) {
    const auto& h = *at_position.front().header;
    source.slices.push_back(
        {h.file, h.sop_class_uid, h.sop_instance_uid, h.multi_frame ? h.frame_index + 1 : 0});
  }
  return source;
}

}  // namespace dicom_detail

using dicom_detail::assemble;
using dicom_detail::Assembly;
using dicom_detail::check_has_headers;
using dicom_detail::volume_source;

DicomVolumeSource dicom_volume_source(const DicomSeries& series) {
  check_has_headers(series);
  const Assembly assembly = assemble(series);
  return volume_source(series, assembly.geometry, assembly.slices);
}

}  // namespace graft::io
