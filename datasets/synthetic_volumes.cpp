#include "datasets/synthetic_volumes.h"

#include <cmath>
#include <random>

namespace graft::datasets {

io::Geometry random_ct_geometry(std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  io::Geometry geometry;
  geometry.size_xyz = {96, 96, 40};
  const double in_plane_mm = 0.6 + 0.4 * uniform(random);
  geometry.spacing_xyz = {in_plane_mm, in_plane_mm, 1.5 + 2.5 * uniform(random)};
  const double angle = (uniform(random) - 0.5) * 0.2;  // up to ~6 degrees about z
  const double flip_x = uniform(random) < 0.5 ? -1.0 : 1.0;
  const double flip_y = uniform(random) < 0.5 ? -1.0 : 1.0;
  geometry.direction = {{{flip_x * std::cos(angle), -flip_y * std::sin(angle), 0.0},
                         {flip_x * std::sin(angle), flip_y * std::cos(angle), 0.0},
                         {0.0, 0.0, 1.0}}};
  // Centre the volume near the world origin, as scanners place the isocentre.
  io::Vec3 half_extent{};
  for (int a = 0; a < 3; ++a) half_extent[a] = 0.5 * (geometry.size_xyz[a] - 1);
  const io::Vec3 centre_offset = geometry.index_to_world(half_extent);
  for (int a = 0; a < 3; ++a) geometry.origin_world[a] = -centre_offset[a];
  return geometry;
}

SyntheticCase make_synthetic_ct(std::uint64_t seed, const io::Geometry& geometry) {
  std::mt19937_64 random(seed * 7919 + 17);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 12.0);
  SyntheticCase result{io::Image(io::DType::kI16, 1, geometry), io::Image(io::DType::kU8, 1, geometry)};
  result.image.metadata().modality = "CT";
  result.image.metadata().source_format = "synthetic";
  result.labels.metadata().source_format = "synthetic";

  // Anatomy is defined in world millimetres (LPS), so it is the same whatever the grid.
  const double body_a = 60.0 + 8.0 * uniform(random), body_b = 40.0 + 6.0 * uniform(random);
  const io::Vec3 organ1{-20.0 + 6.0 * uniform(random), -5.0 + 4.0 * uniform(random), 0.0};
  const io::Vec3 organ1_radii{18.0 + 4.0 * uniform(random), 14.0 + 3.0 * uniform(random), 25.0};
  const io::Vec3 organ2{22.0 + 5.0 * uniform(random), 0.0 + 4.0 * uniform(random), 5.0};
  const io::Vec3 organ2_radii{10.0 + 3.0 * uniform(random), 9.0 + 2.0 * uniform(random), 14.0};
  const double organ1_hu = 55.0 + 10.0 * uniform(random), organ2_hu = 120.0 + 20.0 * uniform(random);

  std::int16_t* voxels = result.image.data<std::int16_t>();
  std::uint8_t* labels = result.labels.data<std::uint8_t>();
  const auto& n = geometry.size_xyz;
  for (std::int64_t z = 0; z < n[2]; ++z) {
    for (std::int64_t y = 0; y < n[1]; ++y) {
      for (std::int64_t x = 0; x < n[0]; ++x) {
        const io::Vec3 p = geometry.index_to_world({double(x), double(y), double(z)});
        double hu = -1000.0;
        std::uint8_t label = 0;
        auto inside = [&](const io::Vec3& c, const io::Vec3& r) {
          const double dx = (p[0] - c[0]) / r[0], dy = (p[1] - c[1]) / r[1], dz = (p[2] - c[2]) / r[2];
          return dx * dx + dy * dy + dz * dz <= 1.0;
        };
        if ((p[0] / body_a) * (p[0] / body_a) + (p[1] / body_b) * (p[1] / body_b) <= 1.0) {
          hu = 40.0;
          const double spine_dx = p[0], spine_dy = p[1] - 0.6 * body_b;
          if (spine_dx * spine_dx + spine_dy * spine_dy < 64.0) hu = 700.0;
          if (inside(organ1, organ1_radii)) {
            hu = organ1_hu;
            label = 1;
          } else if (inside(organ2, organ2_radii)) {
            hu = organ2_hu;
            label = 2;
          }
          hu += noise(random);
        }
        const std::int64_t i = (z * n[1] + y) * n[0] + x;
        voxels[i] = static_cast<std::int16_t>(std::lround(hu));
        labels[i] = label;
      }
    }
  }
  return result;
}

}  // namespace graft::datasets
