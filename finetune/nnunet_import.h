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
  std::string fold = "0";     // fold_N's N, or "all" (fold_all, nnU-Net's model trained on every case)
  std::string checkpoint = "checkpoint_final.pth";
  std::string output;         // the graft model folder to write
};

struct NnUNetImport {
  RunConfig config;
  std::string checkpoint_path;
  std::vector<std::string> notes;  // what was read and how, one line each
};

// Reads, checks (the weights must load strictly into the network the plans describe) and writes.
// Errors name the file and field; nothing is written unless everything fits.
NnUNetImport import_nnunet(const NnUNetImportOptions& options);

}  // namespace graft::finetune
