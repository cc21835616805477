#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "finetune/tasks/segmentation/segmentation_model.h"
#include "io/raster/gdal_raster.h"
#include "preprocess/plan.h"

namespace graft::finetune {

struct ScenePredictOptions {
  std::int64_t tile_px = 256;
  double overlap_fraction = 0.25;  // of the tile, shared with each neighbour and blended
  int tiles_per_batch = 4;
  io::GdalWriteOptions write;
  std::function<void(double)> progress;  // fraction of tiles done
};

struct ScenePredictStats {
  std::int64_t tiles = 0;
  std::int64_t nodata_pixels = 0;  // input pixels with a band at its nodata value
  double seconds = 0.0;
};

// Segments a raster of any size with a 2D model, one strip of tiles at a time: tiles are read
// from the file (only their blocks), preprocessed by a Plan under `contract`, predicted in
// batches, and their class probabilities blended with a Gaussian weight (nnU-Net's, sigma 1/8 of
// the tile) so tile seams do not show. Each finished strip of labels goes straight to a GeoTIFF
// (or COG) with the input's geotransform and CRS, so memory depends on the raster's width and the
// tile size, never on its height. Pixels where any band holds its nodata value are written as
// 255, the output's nodata. The output appears only when complete.
ScenePredictStats predict_scene(SegmentationModelImpl& model, const preprocess::Contract& contract,
                                const preprocess::PlanOptions& plan_options, const std::string& input,
                                const std::string& output, const ScenePredictOptions& options);

}  // namespace graft::finetune
