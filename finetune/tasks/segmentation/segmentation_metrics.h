#pragma once

#include <cstdint>
#include <map>

#include "io/image.h"

namespace graft::finetune {

// Dice = 2|P ∩ R| / (|P| + |R|) for every label present in either map except background 0. A
// label absent from both is not reported; one absent from just one scores 0.
std::map<std::int64_t, double> dice_per_label(const io::Image& prediction,
                                              const io::Image& reference);

// Boundary agreement of one label, in millimetres of the images' voxel spacing.
struct SurfaceMetrics {
  double hd95_mm;                   // larger of the two directed 95th percentiles
  double surface_dice;              // fraction of both surfaces within tolerance of the other
  double mean_surface_distance_mm;  // mean of all surface-to-surface distances
};

// Surface metrics for every label present in prediction or reference except background 0, for
// single-channel label maps on the same grid. The conventions are those of MONAI and medpy, so
// numbers can be compared with published results:
//  - The surface of a mask is its foreground voxels that have at least one 6-connected
//    background neighbour; voxels outside the image count as background.
//  - Distances are exact Euclidean distances in mm between voxel centres, from every surface
//    voxel of one mask to the nearest surface voxel of the other, in both directions.
//  - hd95_mm is the larger of the two directed 95th percentiles (numpy's linear rule), as MONAI's
//    HausdorffDistanceMetric and DeepMind's surface-distance package compute it (medpy's hd95
//    instead takes the percentile of both sets pooled, which differs when the directions disagree).
//  - mean_surface_distance_mm is the mean of the two sets taken together, as MONAI's symmetric
//    average surface distance computes it.
//  - surface_dice is Nikolov et al.'s normalised surface distance as MONAI's
//    compute_surface_dice counts it: surface voxels whose distance to the other surface is at
//    most tolerance_mm, over all surface voxels of both masks.
// A label absent from both maps is not reported; one absent from just one has infinite
// distances and surface_dice 0. Throws graft::Error on different grids, more than one channel or
// a negative or non-finite tolerance.
std::map<std::int64_t, SurfaceMetrics> surface_metrics_per_label(const io::Image& prediction,
                                                                 const io::Image& reference,
                                                                 double tolerance_mm = 1.0);

}  // namespace graft::finetune
