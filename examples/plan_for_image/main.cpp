// Reads an image and prints the Plan that makes it look like what a registered backbone saw in
// pretraining: usage: plan_for_image IMAGE [BACKBONE]
#include <graft/backbones/registry.h>
#include <graft/io/error.h>
#include <graft/io/image_file.h>
#include <graft/preprocess/plan.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: plan_for_image IMAGE [BACKBONE]\n";
    return 2;
  }
  try {
    const graft::io::Image image = graft::io::read(argv[1]);
    const auto& backbone = graft::backbones::find_backbone(argc > 2 ? argv[2] : "med3d-resnet10");
    const graft::preprocess::Plan plan = graft::preprocess::make_plan(backbone.contract, image);
    std::cout << graft::preprocess::to_text(plan);
  } catch (const std::exception& error) {
    std::cerr << "plan_for_image: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
