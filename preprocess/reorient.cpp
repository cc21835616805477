#include "preprocess/reorient.h"

#include <cmath>
#include <algorithm>

#include "io/error.h"
#include "io/parallel.h"

namespace graft::preprocess {
namespace {

// World axis (LPS: 0 = x toward L, 1 = y toward P, 2 = z toward S) and sign for a letter.
std::pair<int, double> letter_axis(char letter) {
  switch (letter) {
    case 'L': return {0, 1.0};
    case 'R': return {0, -1.0};
    case 'P': return {1, 1.0};
    case 'A': return {1, -1.0};
    case 'S': return {2, 1.0};
    case 'I': return {2, -1.0};
    default: return {-1, 0.0};
  }
}

}  // namespace

bool AxisPermutation::is_identity() const {
  return source_axis == std::array<int, 3>{0, 1, 2} && !flip[0] && !flip[1] && !flip[2];
}

AxisPermutation AxisPermutation::inverse() const {
  AxisPermutation inverse;
  for (int t = 0; t < 3; ++t) {
    inverse.source_axis[source_axis[t]] = t;
    inverse.flip[source_axis[t]] = flip[t];
  }
  return inverse;
}

void check_orientation_code(const std::string& code) {
  bool seen[3] = {false, false, false};
  bool valid = code.size() == 3;
  for (char letter : code) {
    const int axis = letter_axis(letter).first;
    if (axis < 0 || seen[axis]) valid = false;
    else seen[axis] = true;
  }
  if (!valid) {
    throw Error("orientation '" + code + "' is not valid (three letters, one from each of L/R, " +
                "P/A and S/I, e.g. RAS or LPS)");
  }
}

AxisPermutation permutation_to_orientation(const io::Mat3& direction, const std::string& code) {
  check_orientation_code(code);
  AxisPermutation permutation;
  bool used[3] = {false, false, false};
  // Assign the most clearly aligned axes first so oblique grids still get a consistent answer.
  std::array<int, 3> order{0, 1, 2};
  auto alignment = [&](int t) {
    const int world = letter_axis(code[t]).first;
    double best = 0.0;
    for (int a = 0; a < 3; ++a) best = std::max(best, std::abs(direction[world][a]));
    return best;
  };
  std::sort(order.begin(), order.end(), [&](int a, int b) { return alignment(a) > alignment(b); });
  for (int t : order) {
    const auto [world, sign] = letter_axis(code[t]);
    int best_axis = -1;
    double best = -1.0;
    for (int a = 0; a < 3; ++a) {
      if (!used[a] && std::abs(direction[world][a]) > best) {
        best = std::abs(direction[world][a]);
        best_axis = a;
      }
    }
    used[best_axis] = true;
    permutation.source_axis[t] = best_axis;
    permutation.flip[t] = direction[world][best_axis] * sign < 0.0;
  }
  return permutation;
}

io::Geometry permuted_geometry(const io::Geometry& in, const AxisPermutation& permutation) {
  io::Geometry out_geometry = in;
  io::Vec3 first_voxel_index{};
  for (int t = 0; t < 3; ++t) {
    const int a = permutation.source_axis[t];
    out_geometry.size_xyz[t] = in.size_xyz[a];
    out_geometry.spacing_xyz[t] = in.spacing_xyz[a];
    for (int r = 0; r < 3; ++r) {
      out_geometry.direction[r][t] = in.direction[r][a] * (permutation.flip[t] ? -1.0 : 1.0);
    }
    first_voxel_index[a] = permutation.flip[t] ? static_cast<double>(in.size_xyz[a] - 1) : 0.0;
  }
  out_geometry.origin_world = in.index_to_world(first_voxel_index);
  out_geometry.geotransform.reset();
  return out_geometry;
}

io::Image permute_axes(const io::Image& image, const AxisPermutation& permutation) {
  if (permutation.is_identity()) return image;
  const io::Geometry& in = image.geometry();
  const io::Geometry out_geometry = permuted_geometry(in, permutation);
  io::Image out = io::Image::uninitialized(image.dtype(), image.channels(), out_geometry);
  out.metadata() = image.metadata();
  // Input strides in elements along x, y, z.
  const std::array<std::int64_t, 3> in_stride{1, in.size_xyz[0], in.size_xyz[0] * in.size_xyz[1]};
  std::array<std::int64_t, 3> step{}, start{};
  for (int t = 0; t < 3; ++t) {
    const int a = permutation.source_axis[t];
    step[t] = permutation.flip[t] ? -in_stride[a] : in_stride[a];
    start[t] = permutation.flip[t] ? (in.size_xyz[a] - 1) * in_stride[a] : 0;
  }
  const auto& n = out_geometry.size_xyz;
  const std::int64_t voxels = in.voxel_count();
  io::visit_dtype(image.dtype(), [&](auto zero) {
    using T = decltype(zero);
    for (std::int64_t c = 0; c < image.channels(); ++c) {
      const T* source = image.data<T>() + c * voxels;
      T* destination = out.data<T>() + c * voxels;
      io::parallel_for(n[2], [&](std::int64_t z_begin, std::int64_t z_end) {
        for (std::int64_t z = z_begin; z < z_end; ++z) {
          for (std::int64_t y = 0; y < n[1]; ++y) {
            const std::int64_t row = start[0] + start[1] + start[2] + z * step[2] + y * step[1];
            T* out_row = destination + (z * n[1] + y) * n[0];
            for (std::int64_t x = 0; x < n[0]; ++x) out_row[x] = source[row + x * step[0]];
          }
        }
      });
    }
  });
  return out;
}

io::Image onto_same_grid(const io::Image& image, const io::Geometry& target, const std::string& source,
                         double tolerance_mm) {
  if (image.geometry().same_grid(target, tolerance_mm)) return image;
  // Each target axis takes the image axis most nearly parallel to it.
  const io::Mat3& from = image.geometry().direction;
  AxisPermutation permutation;
  bool used[3] = {false, false, false};
  for (int t = 0; t < 3; ++t) {
    int best_axis = 0;
    double best = -1.0, best_dot = 0.0;
    for (int a = 0; a < 3; ++a) {
      double dot = 0.0;
      for (int w = 0; w < 3; ++w) dot += target.direction[w][t] * from[w][a];
      if (!used[a] && std::abs(dot) > best) {
        best = std::abs(dot);
        best_axis = a;
        best_dot = dot;
      }
    }
    used[best_axis] = true;
    permutation.source_axis[t] = best_axis;
    permutation.flip[t] = best_dot < 0.0;
  }
  io::Image permuted = permute_axes(image, permutation);
  if (!permuted.geometry().same_grid(target, tolerance_mm)) {
    throw Error(source + ": not on the reference grid (" + permuted.geometry().describe_difference(target, tolerance_mm) +
                "); resample it onto the reference first");
  }
  permuted.geometry() = target;
  return permuted;
}

}  // namespace graft::preprocess
