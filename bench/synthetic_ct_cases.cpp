// Writes synthetic CT cases (datasets/synthetic_volumes.h: a body, a spine and two organs, with
// random spacing and orientation) as NIfTI, labelled for one task, and a manifest of them, for
// bench/run_rank_bench.sh to pretrain candidate backbones on different source tasks.
//
//   synthetic_ct_cases OUT_DIR FIRST_SEED COUNT TASK [SPLIT] [--noise-hu SD] [--organ2-contrast-hu C]
//
// TASK: organ1 or organ2 (that organ is label 1), organs (both, labels 1 and 2), spine (voxels
// above 400 HU) or body (voxels above -500 HU). Writes OUT_DIR/case_SEED.nii.gz,
// OUT_DIR/case_SEED_TASK.nii.gz and appends image,label[,split] rows to OUT_DIR/TASK.csv.
//
// The plain cases are easy: organ 2 stands 80 to 100 HU above soft tissue under 12 HU of noise, so
// a network learns it from a few volumes whatever it starts from. --noise-hu adds that much more
// Gaussian noise inside the body, and --organ2-contrast-hu sets organ 2's mean to soft tissue
// (40 HU) plus C, which makes a target on which the starting weights matter, like a low-dose or
// unenhanced scan of an organ a source task has seen at full contrast. The image file name then
// carries both numbers, so plain and hard cases of one seed can share a folder.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "datasets/synthetic_volumes.h"
#include "io/error.h"
#include "io/image_file.h"

namespace {

constexpr double kSoftTissueHu = 40.0;

// Lowers organ 2's contrast and adds noise inside the body, in place; the labels are the plain
// case's, so the anatomy is unchanged.
void make_harder(graft::datasets::SyntheticCase& synthetic, std::uint64_t seed, double noise_hu,
                 double organ2_contrast_hu) {
  const std::int64_t count = synthetic.image.element_count();
  auto* voxels = synthetic.image.data<std::int16_t>();
  const auto* labels = synthetic.labels.data<std::uint8_t>();
  if (!std::isnan(organ2_contrast_hu)) {
    double sum = 0.0;
    std::int64_t organ2 = 0;
    for (std::int64_t i = 0; i < count; ++i)
      if (labels[i] == 2) sum += voxels[i], ++organ2;
    const double shift = organ2 == 0 ? 0.0 : kSoftTissueHu + organ2_contrast_hu - sum / organ2;
    for (std::int64_t i = 0; i < count; ++i)
      if (labels[i] == 2) voxels[i] = static_cast<std::int16_t>(std::lround(voxels[i] + shift));
  }
  if (noise_hu > 0.0) {
    std::mt19937_64 random(seed * 104729 + 3);
    std::normal_distribution<double> noise(0.0, noise_hu);
    for (std::int64_t i = 0; i < count; ++i)
      if (voxels[i] > -500) voxels[i] = static_cast<std::int16_t>(std::lround(voxels[i] + noise(random)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  double noise_hu = 0.0, organ2_contrast_hu = std::nan("");
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if ((argument == "--noise-hu" || argument == "--organ2-contrast-hu") && i + 1 < argc) {
      (argument == "--noise-hu" ? noise_hu : organ2_contrast_hu) = std::stod(argv[++i]);
    } else {
      positional.push_back(argument);
    }
  }
  if (positional.size() < 4) {
    std::fprintf(stderr,
                 "usage: synthetic_ct_cases OUT_DIR FIRST_SEED COUNT TASK [SPLIT] [--noise-hu SD] "
                 "[--organ2-contrast-hu C]\n");
    return 2;
  }
  const std::string folder = positional[0], task = positional[3], split = positional.size() > 4 ? positional[4] : "";
  const std::uint64_t first = std::stoull(positional[1]);
  const int count = std::stoi(positional[2]);
  if (task != "organ1" && task != "organ2" && task != "organs" && task != "spine" && task != "body") {
    std::fprintf(stderr, "synthetic_ct_cases: unknown task '%s' (organ1, organ2, organs, spine or body)\n", task.c_str());
    return 2;
  }
  const bool harder = noise_hu > 0.0 || !std::isnan(organ2_contrast_hu);
  char variant[64] = "";
  if (harder)
    std::snprintf(variant, sizeof variant, "_noise%g_contrast%g", noise_hu,
                  std::isnan(organ2_contrast_hu) ? -1.0 : organ2_contrast_hu);
  try {
    std::filesystem::create_directories(folder);
    const std::string manifest = folder + "/" + task + ".csv";
    const bool fresh = !std::filesystem::exists(manifest);
    std::ofstream rows(manifest, std::ios::app);
    if (fresh) rows << (split.empty() ? "image,label\n" : "image,label,split\n");
    for (std::uint64_t seed = first; seed < first + static_cast<std::uint64_t>(count); ++seed) {
      auto synthetic = graft::datasets::make_synthetic_ct(seed, graft::datasets::random_ct_geometry(seed));
      // Label the task on the plain image, so a harder variant keeps the plain case's anatomy.
      graft::io::Image labels = synthetic.labels;
      auto* values = labels.data<std::uint8_t>();
      for (std::int64_t i = 0; i < labels.element_count(); ++i) {
        const double hu = synthetic.image.value_at(i);
        if (task == "organ1") values[i] = values[i] == 1;
        if (task == "organ2") values[i] = values[i] == 2;
        if (task == "spine") values[i] = hu > 400.0;
        if (task == "body") values[i] = hu > -500.0;
      }
      if (harder) make_harder(synthetic, seed, noise_hu, organ2_contrast_hu);
      const std::string stem = folder + "/case_" + std::to_string(seed);
      const std::string image = stem + variant + ".nii.gz";
      const std::string label = stem + "_" + task + ".nii.gz";
      if (!std::filesystem::exists(image)) graft::io::write(synthetic.image, image);
      graft::io::write(labels, label);
      rows << image << "," << label << (split.empty() ? "" : "," + split) << "\n";
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "synthetic_ct_cases: %s\n", error.what());
    return 1;
  }
  return 0;
}
