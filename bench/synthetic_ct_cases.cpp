// Writes synthetic CT cases (datasets/synthetic_volumes.h: a body, a spine and two organs, with
// random spacing and orientation) as NIfTI, labelled for one task, and a manifest of them, for
// bench/run_rank_bench.sh to pretrain candidate backbones on different source tasks.
//
//   synthetic_ct_cases OUT_DIR FIRST_SEED COUNT TASK [SPLIT]
//
// TASK: organ1 or organ2 (that organ is label 1), organs (both, labels 1 and 2), spine (voxels
// above 400 HU) or body (voxels above -500 HU). Writes OUT_DIR/case_SEED.nii.gz,
// OUT_DIR/case_SEED_TASK.nii.gz and appends image,label[,split] rows to OUT_DIR/TASK.csv.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/synthetic_volumes.h"
#include "io/error.h"
#include "io/image_file.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: synthetic_ct_cases OUT_DIR FIRST_SEED COUNT TASK [SPLIT]\n");
    return 2;
  }
  const std::string folder = argv[1], task = argv[4], split = argc > 5 ? argv[5] : "";
  const std::uint64_t first = std::stoull(argv[2]);
  const int count = std::stoi(argv[3]);
  if (task != "organ1" && task != "organ2" && task != "organs" && task != "spine" && task != "body") {
    std::fprintf(stderr, "synthetic_ct_cases: unknown task '%s' (organ1, organ2, organs, spine or body)\n", task.c_str());
    return 2;
  }
  try {
    std::filesystem::create_directories(folder);
    const std::string manifest = folder + "/" + task + ".csv";
    const bool fresh = !std::filesystem::exists(manifest);
    std::ofstream rows(manifest, std::ios::app);
    if (fresh) rows << (split.empty() ? "image,label\n" : "image,label,split\n");
    for (std::uint64_t seed = first; seed < first + static_cast<std::uint64_t>(count); ++seed) {
      const auto synthetic = graft::datasets::make_synthetic_ct(seed, graft::datasets::random_ct_geometry(seed));
      const std::string image = folder + "/case_" + std::to_string(seed) + ".nii.gz";
      const std::string label = folder + "/case_" + std::to_string(seed) + "_" + task + ".nii.gz";
      if (!std::filesystem::exists(image)) graft::io::write(synthetic.image, image);
      graft::io::Image labels = synthetic.labels;
      auto* values = labels.data<std::uint8_t>();
      for (std::int64_t i = 0; i < labels.element_count(); ++i) {
        const double hu = synthetic.image.value_at(i);
        if (task == "organ1") values[i] = values[i] == 1;
        if (task == "organ2") values[i] = values[i] == 2;
        if (task == "spine") values[i] = hu > 400.0;
        if (task == "body") values[i] = hu > -500.0;
      }
      graft::io::write(labels, label);
      rows << image << "," << label << (split.empty() ? "" : "," + split) << "\n";
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "synthetic_ct_cases: %s\n", error.what());
    return 1;
  }
  return 0;
}
