#pragma once

#include <string>
#include <vector>

#include "io/geometry.h"
#include "io/image.h"

namespace graft::io {

// Reads the label map of one case onto its image's grid, whatever form the labels come in:
// - a label image on the same grid (NIfTI, NRRD, Slicer's .seg.nrrd, ...), or re-indexed onto it;
// - a DICOM SEG (binary or fractional; a SEG that covers only some slices of the series is
//   placed on them);
// - an RTSTRUCT, rasterised onto the grid (see rasterize_rtstruct). When the image is a DICOM
//   series, the structure set must reference that series;
// - a .json or .csv of boxes, drawn as a label map (io/boxes.h).
// `foreground_names` are the names of label values 1, 2, ...: when given, a file that names its
// segments or ROIs (SEG, .seg.nrrd, RTSTRUCT) is mapped by name, so the file's own numbering does
// not matter and segments that are not classes are left out. Throws graft::Error naming the
// label file and the field: a class no segment is named after, a SEG or ROI that references
// another series, labels on another grid.
Image read_label_map(const std::string& label_path, const std::string& image_path, const Geometry& image_grid,
                     const std::vector<std::string>& foreground_names = {});

// The labels on `grid` when they lie on it up to a re-indexing: the same voxel centres with the
// axes permuted or reversed (a mask in dcm2niix's voxel order), and, with `part_of_grid`, only
// some of them (a SEG holds frames only for the slices where a segment is; the rest is
// background). Labels are never interpolated onto a grid they were not drawn on: anything else
// throws graft::Error naming both paths and the difference.
Image labels_onto_grid(const Image& labels, const Geometry& grid, const std::string& label_path,
                       const std::string& image_path, bool part_of_grid = false);

// True for label files that are not images by themselves (an RTSTRUCT, a box list), whose grid
// only the image gives.
bool label_needs_image_grid(const std::string& label_path);

}  // namespace graft::io
