#include "preprocess/crop_pad.h"

#include <algorithm>
#include <cstring>

#include "io/error.h"
#include "io/parallel.h"

namespace graft::preprocess {

std::optional<IndexBox> nonzero_bounding_box(const io::Image& image) {
  const auto& n = image.geometry().size_xyz;
  std::array<std::int64_t, 3> low{n[0], n[1], n[2]}, high{-1, -1, -1};
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* data = image.data<T>();
    for (std::int64_t c = 0; c < image.channels(); ++c) {
      for (std::int64_t z = 0; z < n[2]; ++z) {
        for (std::int64_t y = 0; y < n[1]; ++y) {
          const T* row = data + image.offset(c, z, y, 0);
          std::int64_t first = -1, last = -1;
          for (std::int64_t x = 0; x < n[0]; ++x) {
            if (row[x] != T{0}) {
              if (first < 0) first = x;
              last = x;
            }
          }
          if (first < 0) continue;
          low = {std::min(low[0], first), std::min(low[1], y), std::min(low[2], z)};
          high = {std::max(high[0], last), std::max(high[1], y), std::max(high[2], z)};
        }
      }
    }
  });
  if (high[0] < 0) return std::nullopt;
  IndexBox box;
  for (int a = 0; a < 3; ++a) {
    box.start_xyz[a] = low[a];
    box.size_xyz[a] = high[a] - low[a] + 1;
  }
  return box;
}

io::Geometry cropped_geometry(const io::Geometry& in, const IndexBox& box) {
  for (int a = 0; a < 3; ++a) {
    if (box.size_xyz[a] < 1) throw Error("crop: box size must be positive on every axis");
  }
  io::Geometry out_geometry = in;
  out_geometry.size_xyz = box.size_xyz;
  out_geometry.origin_world = in.index_to_world(
      {static_cast<double>(box.start_xyz[0]), static_cast<double>(box.start_xyz[1]),
       static_cast<double>(box.start_xyz[2])});
  if (in.geotransform) {
    auto transform = *in.geotransform;
    transform[0] += box.start_xyz[0] * transform[1] + box.start_xyz[1] * transform[2];
    transform[3] += box.start_xyz[0] * transform[4] + box.start_xyz[1] * transform[5];
    out_geometry.geotransform = transform;
  }
  return out_geometry;
}

io::Image crop_or_pad(const io::Image& image, const IndexBox& box, double fill_value) {
  const io::Geometry& in = image.geometry();
  const io::Geometry out_geometry = cropped_geometry(in, box);
  io::Image out = io::Image::uninitialized(image.dtype(), image.channels(), out_geometry);
  out.metadata() = image.metadata();
  const auto& n_in = in.size_xyz;
  const auto& n_out = box.size_xyz;
  // The x-range of each output row that lies inside the input.
  const std::int64_t x_begin = std::clamp<std::int64_t>(-box.start_xyz[0], 0, n_out[0]);
  const std::int64_t x_end = std::clamp<std::int64_t>(n_in[0] - box.start_xyz[0], 0, n_out[0]);
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T fill = static_cast<T>(fill_value);
    const T* source = image.data<T>();
    T* destination = out.data<T>();
    const std::int64_t rows = image.channels() * n_out[2] * n_out[1];
    io::parallel_for(rows, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t row = begin; row < end; ++row) {
        const std::int64_t y = row % n_out[1];
        const std::int64_t z = (row / n_out[1]) % n_out[2];
        const std::int64_t c = row / (n_out[1] * n_out[2]);
        T* out_row = destination + row * n_out[0];
        const std::int64_t in_y = y + box.start_xyz[1];
        const std::int64_t in_z = z + box.start_xyz[2];
        if (in_y < 0 || in_y >= n_in[1] || in_z < 0 || in_z >= n_in[2] || x_begin >= x_end) {
          std::fill(out_row, out_row + n_out[0], fill);
          continue;
        }
        std::fill(out_row, out_row + x_begin, fill);
        const T* in_row = source + image.offset(c, in_z, in_y, box.start_xyz[0] + x_begin);
        std::copy(in_row, in_row + (x_end - x_begin), out_row + x_begin);
        std::fill(out_row + x_end, out_row + n_out[0], fill);
      }
    }, 64);
  });
  return out;
}

io::Image pad_to_size(const io::Image& image, const std::array<std::int64_t, 3>& minimum_size_xyz,
                      double fill_value) {
  IndexBox box;
  bool needed = false;
  for (int a = 0; a < 3; ++a) {
    const std::int64_t n = image.geometry().size_xyz[a];
    const std::int64_t target = std::max(n, minimum_size_xyz[a]);
    box.start_xyz[a] = -(target - n) / 2;
    box.size_xyz[a] = target;
    needed |= target != n;
  }
  return needed ? crop_or_pad(image, box, fill_value) : image;
}

}  // namespace graft::preprocess
