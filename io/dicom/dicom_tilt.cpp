// Resampling a sheared (gantry-tilted) stack onto an orthogonal grid. Only rows move: a tilt
// about the row axis shifts each slice along its columns, so one-dimensional linear interpolation
// per column is exact for what the scanner measured and matches dcm2niix's correction.
#include "io/dicom/dicom_tilt.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "io/dtype.h"
#include "io/parallel.h"

namespace graft::io::dicom_detail {

namespace {

// Positions are written with limited decimals: a slice that overhangs the grid, or a sample that
// falls outside its slice, by less than this share of a row is rounding, not a row of its own.
constexpr double kRowTolerance = 1e-3;

// The lowest voxel of each channel, NaN ignored: what dcm2niix fills uncovered voxels with, so
// the fill reads as background (air in CT) rather than as a value of its own.
template <typename T>
std::vector<double> channel_minimum(const Image& image) {
  std::vector<double> minimum(static_cast<std::size_t>(image.channels()), 0.0);
  const T* values = image.data<T>();
  const std::int64_t per_channel = image.voxels_per_channel();
  for (std::int64_t c = 0; c < image.channels(); ++c) {
    double lowest = std::numeric_limits<double>::infinity();
    for (std::int64_t v = 0; v < per_channel; ++v) {
      const auto value = static_cast<double>(values[c * per_channel + v]);
      if (value < lowest) lowest = value;
    }
    if (std::isfinite(lowest)) minimum[static_cast<std::size_t>(c)] = lowest;
  }
  return minimum;
}

template <typename T>
T stored_as(double value) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(std::round(value));  // a blend of two Ts: always within T's range
  } else {
    return static_cast<T>(value);
  }
}

}  // namespace

Image correct_shear(const Image& stacked, const SliceShear& shear) {
  const Geometry& in_grid = stacked.geometry();
  const std::int64_t nx = in_grid.size_xyz[0], ny = in_grid.size_xyz[1], nz = in_grid.size_xyz[2];
  const auto [lowest_shift, highest_shift] =
      std::minmax_element(shear.column_shift_px.begin(), shear.column_shift_px.end());
  const auto rows_below =
      static_cast<std::int64_t>(std::max(0.0, std::ceil(-*lowest_shift - kRowTolerance)));
  const auto rows_above =
      static_cast<std::int64_t>(std::max(0.0, std::ceil(*highest_shift - kRowTolerance)));

  Geometry grid = in_grid;
  grid.size_xyz[1] = ny + rows_below + rows_above;
  grid.origin_world = in_grid.index_to_world({0.0, -static_cast<double>(rows_below), 0.0});
  Image out = Image::uninitialized(stacked.dtype(), stacked.channels(), grid);
  out.metadata() = stacked.metadata();
  out.metadata().gantry_tilt_corrected_degrees = shear.tilt_degrees;

  visit_dtype(stacked.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::vector<double> fill = channel_minimum<T>(stacked);
    const T* in = stacked.data<T>();
    T* result = out.data<T>();
    parallel_for_each(static_cast<std::size_t>(nz), [&](std::size_t slice) {
      const auto z = static_cast<std::int64_t>(slice);
      for (std::int64_t c = 0; c < stacked.channels(); ++c) {
        const T blank = stored_as<T>(fill[static_cast<std::size_t>(c)]);
        for (std::int64_t y = 0; y < grid.size_xyz[1]; ++y) {
          T* row = result + out.offset(c, z, y, 0);
          // The output row's position in slice z's own rows. A slice's pixels cover half a row
          // beyond their centres, so its edge rows reach that far and no further.
          const double source_row =
              static_cast<double>(y - rows_below) - shear.column_shift_px[slice];
          if (source_row < -0.5 - kRowTolerance ||
              source_row > static_cast<double>(ny) - 0.5 + kRowTolerance) {
            std::fill(row, row + nx, blank);
            continue;
          }
          const double clamped = std::clamp(source_row, 0.0, static_cast<double>(ny - 1));
          const auto low = static_cast<std::int64_t>(std::floor(clamped));
          const std::int64_t high = std::min(low + 1, ny - 1);
          const double high_weight = clamped - static_cast<double>(low);
          const T* low_row = in + stacked.offset(c, z, low, 0);
          const T* high_row = in + stacked.offset(c, z, high, 0);
          if (high_weight == 0.0) {
            std::copy(low_row, low_row + nx, row);
            continue;
          }
          for (std::int64_t x = 0; x < nx; ++x) {
            row[x] = stored_as<T>(static_cast<double>(low_row[x]) * (1.0 - high_weight) +
                                  static_cast<double>(high_row[x]) * high_weight);
          }
        }
      }
    });
  });
  return out;
}

}  // namespace graft::io::dicom_detail
