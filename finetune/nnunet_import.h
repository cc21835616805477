#pragma once

// `graft import nnunet`: an nnU-Net v2 results folder (Trainer__Plans__configuration, with
// plans.json, dataset.json and fold_N/) becomes a graft model folder that every front end
// predicts with and `train --set init_from=` fine-tunes: config.json (the architecture, classes,
// patch size and Contract), contract.json, and model.safetensors with nnU-Net's parameter names.
#include <string>
#include <vector>

#include "finetune/run_config.h"

namespace graft::finetune {

struct NnUNetImportOptions {
  std::string folder;         // nnU-Net's Trainer__Plans__configuration folder
  std::string configuration;  // empty: the folder name's last part, else 3d_fullres
  // fold_N's N; several (0,1,2,3,4) make an ensemble; "all" is fold_all (nnU-Net's model of every
  // case) when there is one, else every fold.
  std::string fold = "0";
  std::string checkpoint = "checkpoint_final.pth";
  std::string output;         // the graft model folder to write
  // Empty: nnU-Net's rule, the file's storage order (DICOM as dcm2niix writes it). A code such as
  // RAS: every input reoriented first, for models trained on reoriented images (TotalSegmentator
  // trains and predicts on nibabel's closest canonical, RAS).
  std::string orientation;
};

struct NnUNetImport {
  RunConfig config;
  std::vector<std::string> checkpoint_paths;
  std::vector<std::string> notes;  // what was read and how, one line each
};

// Reads, checks (the weights must load strictly into the network the plans describe) and writes.
// Errors name the file and field; nothing is written unless everything fits.
NnUNetImport import_nnunet(const NnUNetImportOptions& options);

}  // namespace graft::finetune
