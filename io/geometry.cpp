#include "io/geometry.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "io/error.h"

namespace graft::io {

Mat3 mat3_multiply(const Mat3& a, const Mat3& b) {
  Mat3 out{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 3; ++k) out[r][c] += a[r][k] * b[k][c];
  return out;
}

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }

Mat3 mat3_inverse(const Mat3& m) {
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (!std::isfinite(det) || std::abs(det) < 1e-12) {
    throw Error("direction matrix is singular (determinant " + std::to_string(det) + ")");
  }
  const double inv = 1.0 / det;
  Mat3 out;
  out[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) * inv;
  out[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * inv;
  out[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * inv;
  out[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * inv;
  out[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * inv;
  out[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * inv;
  out[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * inv;
  out[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * inv;
  out[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * inv;
  return out;
}

Vec3 Geometry::index_to_world(const Vec3& index_xyz) const {
  Vec3 world = origin_world;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) world[r] += direction[r][c] * spacing_xyz[c] * index_xyz[c];
  return world;
}

Vec3 Geometry::world_to_index(const Vec3& world) const {
  const Mat3 inv = mat3_inverse(direction);
  Vec3 index{};
  for (int r = 0; r < 3; ++r) {
    double sum = 0.0;
    for (int c = 0; c < 3; ++c) sum += inv[r][c] * (world[c] - origin_world[c]);
    index[r] = sum / spacing_xyz[r];
  }
  return index;
}

std::array<std::array<double, 4>, 4> Geometry::affine() const {
  std::array<std::array<double, 4>, 4> out{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) out[r][c] = direction[r][c] * spacing_xyz[c];
    out[r][3] = origin_world[r];
  }
  out[3][3] = 1.0;
  return out;
}

std::string Geometry::describe_difference(const Geometry& other, double tolerance_mm) const {
  std::ostringstream why;
  auto vec = [](const auto& v) {
    std::ostringstream s;
    s << "[" << v[0] << ", " << v[1] << ", " << v[2] << "]";
    return s.str();
  };
  if (size_xyz != other.size_xyz) {
    why << "size " << vec(size_xyz) << " vs " << vec(other.size_xyz) << "; ";
  }
  for (int i = 0; i < 3; ++i) {
    if (std::abs(spacing_xyz[i] - other.spacing_xyz[i]) > tolerance_mm) {
      why << "spacing " << vec(spacing_xyz) << " vs " << vec(other.spacing_xyz) << "; ";
      break;
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (std::abs(origin_world[i] - other.origin_world[i]) > tolerance_mm) {
      why << "origin " << vec(origin_world) << " vs " << vec(other.origin_world) << "; ";
      break;
    }
  }
  for (int r = 0; r < 3; ++r) {
    bool differs = false;
    for (int c = 0; c < 3; ++c) differs |= std::abs(direction[r][c] - other.direction[r][c]) > 1e-5;
    if (differs) {
      why << "direction differs; ";
      break;
    }
  }
  if (frame != other.frame) why << "frame differs; ";
  std::string text = why.str();
  if (text.size() >= 2) text.resize(text.size() - 2);
  return text;
}

bool Geometry::same_grid(const Geometry& other, double tolerance_mm) const {
  return describe_difference(other, tolerance_mm).empty();
}

void Geometry::validate(const std::string& source) const {
  static const char* kAxis[3] = {"x", "y", "z"};
  for (int i = 0; i < 3; ++i) {
    if (size_xyz[i] <= 0) {
      throw Error(source + ": size along " + kAxis[i] + " is " + std::to_string(size_xyz[i]) +
                  ", must be positive");
    }
    if (!std::isfinite(spacing_xyz[i]) || spacing_xyz[i] <= 0.0) {
      std::ostringstream s;
      s << source << ": spacing along " << kAxis[i] << " is " << spacing_xyz[i]
        << ", must be finite and positive";
      throw Error(s.str());
    }
    if (!std::isfinite(origin_world[i])) {
      throw Error(source + ": origin along " + kAxis[i] + " is not finite");
    }
  }
  try {
    mat3_inverse(direction);
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

std::string orientation_code(const Mat3& direction) {
  // LPS world: +x = Left, +y = Posterior, +z = Superior.
  static const char kPositive[3] = {'L', 'P', 'S'};
  static const char kNegative[3] = {'R', 'A', 'I'};
  std::string code(3, '?');
  bool used[3] = {false, false, false};
  for (int axis = 0; axis < 3; ++axis) {
    int best = -1;
    double best_abs = -1.0;
    for (int world = 0; world < 3; ++world) {
      if (used[world]) continue;
      const double magnitude = std::abs(direction[world][axis]);
      if (magnitude > best_abs) {
        best_abs = magnitude;
        best = world;
      }
    }
    used[best] = true;
    code[axis] = direction[best][axis] >= 0 ? kPositive[best] : kNegative[best];
  }
  return code;
}

Geometry geometry_from_geotransform(const GeoTransform& transform, std::int64_t width, std::int64_t height,
                                    const std::string& crs_wkt) {
  Geometry g;
  g.size_xyz = {width, height, 1};
  g.frame = Frame::kCRS;
  g.crs_wkt = crs_wkt;
  g.geotransform = transform;
  const double column_step = std::hypot(transform[1], transform[4]);
  const double row_step = std::hypot(transform[2], transform[5]);
  g.spacing_xyz = {column_step, row_step, 1.0};
  g.direction = {{{transform[1] / column_step, transform[2] / row_step, 0.0},
                  {transform[4] / column_step, transform[5] / row_step, 0.0},
                  {0.0, 0.0, 1.0}}};
  // Geometry's origin is the centre of pixel (0, 0); the geotransform's is its corner.
  g.origin_world = {transform[0] + 0.5 * transform[1] + 0.5 * transform[2],
                    transform[3] + 0.5 * transform[4] + 0.5 * transform[5], 0.0};
  return g;
}

GeoTransform geotransform_of(const Geometry& g) {
  const bool planar = g.size_xyz[2] == 1 && g.direction[0][2] == 0.0 && g.direction[1][2] == 0.0 &&
                      g.direction[2][0] == 0.0 && g.direction[2][1] == 0.0;
  if (!planar) {
    throw Error("a raster is one plane in x and y: this grid has " + std::to_string(g.size_xyz[2]) +
                " slices or a tilted plane");
  }
  GeoTransform derived{};
  derived[1] = g.direction[0][0] * g.spacing_xyz[0];
  derived[4] = g.direction[1][0] * g.spacing_xyz[0];
  derived[2] = g.direction[0][1] * g.spacing_xyz[1];
  derived[5] = g.direction[1][1] * g.spacing_xyz[1];
  derived[0] = g.origin_world[0] - 0.5 * derived[1] - 0.5 * derived[2];
  derived[3] = g.origin_world[1] - 0.5 * derived[4] - 0.5 * derived[5];
  if (g.geotransform) {
    const GeoTransform& kept = *g.geotransform;
    const double pixel = std::min(g.spacing_xyz[0], g.spacing_xyz[1]);
    bool same = true;
    // Deriving costs a few ulps of the corner coordinates (1.4e7 m in Web Mercator).
    for (int i = 0; i < 6; ++i) same = same && std::abs(kept[i] - derived[i]) <= 1e-9 * pixel + 1e-12 * std::abs(kept[i]);
    if (same) return kept;
  }
  return derived;
}

GeoTransform subgrid_geotransform(const GeoTransform& t, double x, double y, double scale_x,
                                  double scale_y) {
  return {t[0] + x * t[1] + y * t[2], t[1] * scale_x, t[2] * scale_y,
          t[3] + x * t[4] + y * t[5], t[4] * scale_x, t[5] * scale_y};
}

}  // namespace graft::io
