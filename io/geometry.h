#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace graft::io {

using Vec3 = std::array<double, 3>;
// Row-major 3x3. Column j is the world direction of index axis j (ITK's convention).
using Mat3 = std::array<std::array<double, 3>, 3>;

// The world frame: patient LPS in millimetres (DICOM, ITK, NIfTI after conversion), or a map CRS.
enum class Frame { kLPS, kCRS };

// Where a grid lies in the world. Index axes are (x, y, z); a 2D image has size_z == 1.
struct Geometry {
  std::array<std::int64_t, 3> size_xyz{1, 1, 1};
  Vec3 spacing_xyz{1.0, 1.0, 1.0};  // millimetres in the LPS frame, CRS units otherwise
  Vec3 origin_world{0.0, 0.0, 0.0};  // world position of the centre of voxel (0, 0, 0)
  Mat3 direction{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
  Frame frame = Frame::kLPS;
  std::string crs_wkt;  // empty unless frame == kCRS; files give WKT, a writer also takes "EPSG:32632"
  // GDAL's geotransform, kept exactly as read so rasters round trip without rounding.
  std::optional<std::array<double, 6>> geotransform;

  std::int64_t voxel_count() const { return size_xyz[0] * size_xyz[1] * size_xyz[2]; }

  // index -> world: origin + direction * diag(spacing) * index. Continuous indices are allowed.
  Vec3 index_to_world(const Vec3& index_xyz) const;
  // The exact inverse of index_to_world (a general 3x3 inverse, so sheared rasters work too).
  Vec3 world_to_index(const Vec3& world) const;

  // The 4x4 index-to-world affine in this geometry's frame, row-major.
  std::array<std::array<double, 4>, 4> affine() const;

  // Same grid, same place: sizes equal, spacing/origin/direction equal within tolerance_mm (and
  // a relative tolerance on the direction cosines).
  bool same_grid(const Geometry& other, double tolerance_mm = 1e-4) const;
  // A human-readable account of how two grids differ, for error messages ("spacing 1 vs 2").
  std::string describe_difference(const Geometry& other, double tolerance_mm = 1e-4) const;

  // Throws graft::Error naming `source` when sizes are non-positive, spacing is not finite and
  // positive, or the direction matrix is singular.
  void validate(const std::string& source) const;
};

// GDAL's geotransform: x = gt[0] + column * gt[1] + row * gt[2], y = gt[3] + column * gt[4] +
// row * gt[5], at pixel corners (column, row integers at the top-left corner of a pixel).
using GeoTransform = std::array<double, 6>;

// The 2D CRS grid of a width x height raster: pixel centres, spacing and direction (rotation and
// shear included) from the geotransform, which is kept exactly for writing back.
Geometry geometry_from_geotransform(const GeoTransform& transform, std::int64_t width, std::int64_t height,
                                    const std::string& crs_wkt);
// The geotransform of a 2D grid: the one kept from the file while it still describes the grid
// (to 1e-9 of a pixel), else one derived from origin, spacing and direction (after a crop or a
// resample, say). Throws graft::Error when the grid is not a single plane with a z axis of (0,0,1).
GeoTransform geotransform_of(const Geometry& geometry);

// The geotransform of a sub-grid whose top-left pixel corner is at full-resolution pixel (x, y)
// and whose pixels each span scale_x by scale_y full-resolution pixels (a window, an overview).
GeoTransform subgrid_geotransform(const GeoTransform& transform, double x, double y,
                                  double scale_x = 1.0, double scale_y = 1.0);

Mat3 mat3_inverse(const Mat3& m);
double dot(const Vec3& a, const Vec3& b);
Vec3 cross(const Vec3& a, const Vec3& b);
double norm(const Vec3& a);
Mat3 mat3_multiply(const Mat3& a, const Mat3& b);

// Three-letter orientation code ("LPS", "RAS", ...) of the nearest axis-aligned orientation. Each
// letter names the world direction an increasing index axis points *to* (ITK/DICOM convention,
// where "LPS" means x increases toward patient Left).
std::string orientation_code(const Mat3& direction);

}  // namespace graft::io
