// Runs a pretrained 3D backbone on an image: preprocessed by the backbone's own Contract, weights
// from a safetensors file, pooled embedding out. usage: embed_image IMAGE [WEIGHTS.safetensors]
#include <graft/backbones/checkpoint_file.h>
#include <graft/backbones/factory.h>
#include <graft/backbones/registry.h>
#include <graft/backbones/weight_loading.h>
#include <graft/datasets/image_tensor.h>
#include <graft/io/image_file.h>
#include <graft/preprocess/plan.h>

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: embed_image IMAGE [WEIGHTS.safetensors]\n";
    return 2;
  }
  namespace backbones = graft::backbones;
  try {
    const std::string name = "med3d-resnet10";
    const graft::io::Image image = graft::io::read(argv[1]);
    const graft::preprocess::Plan plan =
        graft::preprocess::make_plan(backbones::find_backbone(name).contract, image);
    const graft::io::Image prepared = graft::preprocess::apply(plan, image);

    auto backbone = backbones::create_backbone(name);
    std::string weights = argc > 2 ? argv[2] : "";
    if (weights.empty()) {
      // No pretrained file at hand: save the initial weights, so they load the way real ones do.
      weights =
          (std::filesystem::temp_directory_path() / "embed_image_initial.safetensors").string();
      backbones::write_safetensors(backbones::state_dict_of(*backbone), weights);
    }
    const backbones::LoadReport report = backbones::load_weights(*backbone, weights);
    std::cerr << report.summary();
    backbone->eval();

    torch::NoGradGuard no_grad;
    // (C, Z, Y, X) -> a batch of one.
    const torch::Tensor input =
        graft::datasets::image_to_tensor(prepared).to(torch::kFloat32).unsqueeze(0);
    const torch::Tensor embedding = backbone->embedding(input);
    std::cout << "input " << input.sizes() << " -> pooled embedding " << embedding.sizes() << "\n";
  } catch (const std::exception& error) {
    std::cerr << "embed_image: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
