#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::datasets {

struct CaseEntry {
  std::string id;
  std::string image;
  std::string label;  // empty for unlabelled cases
  std::string split;  // "train", "val", "test" or empty (assigned by k-fold)
  // Scene classification: the class names of the image, ';'-separated in CSV, a string or a list
  // in JSON (several for a multi-label task such as BigEarthNet's).
  std::vector<std::string> classes;
};

// A manifest in CSV (header with image,label[,classes][,split][,id]) or JSON (a list of objects, or
// {"cases": [...]} with the same keys), or a folder in nnU-Net's convention: imagesTr/ with
// CASE_0000.nii.gz and labelsTr/ with CASE.nii.gz, or a folder of volumes with their labels beside
// them as Slicer saves them (CASE.nrrd with CASE-label.nrrd, CASE_label.nrrd or CASE.seg.nrrd;
// any image extension graft reads). Relative paths resolve against the
// manifest's folder. Throws graft::Error naming the manifest and the line or case.
std::vector<CaseEntry> read_manifest(const std::string& path);

// Deterministic k-fold assignment for cases without a split: cases are shuffled with `seed`
// and fold `fold` of `folds` becomes "val", the rest "train". Cases that already have a split
// keep it.
void assign_folds(std::vector<CaseEntry>& cases, int folds, int fold, std::uint64_t seed);

// What the desktop app's dataset panel and `graft check` show for one case: its image grid, and
// what is wrong with it (an unreadable file, a label map on another grid), empty when nothing is.
struct CaseCheck {
  std::string grid;     // "256 x 256 x 25 at 0.78 x 0.78 x 6.5 mm"
  std::string problem;  // names the file and field
};
CaseCheck check_case(const CaseEntry& entry);

}  // namespace graft::datasets
