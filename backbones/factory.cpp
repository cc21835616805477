#include "backbones/factory.h"

#include "backbones/med3d_resnet.h"
#include "backbones/registry.h"
#include "backbones/timm_resnet.h"
#include "backbones/timm_vit.h"
#include "io/error.h"

namespace graft::backbones {

std::shared_ptr<BackboneImpl> create_backbone(const std::string& name, int in_channels) {
  const BackboneInfo& info = find_backbone(name);
  if (info.architecture == "med3d-resnet") {
    const int channels = in_channels > 0 ? in_channels : info.contract.channel_count();
    return std::make_shared<Med3dResNetImpl>(med3d_config_for_depth(info.depth, channels));
  }
  if (info.architecture == "timm-resnet") {
    TimmResNetConfig config;
    config.depth = info.depth;
    config.in_channels = in_channels > 0 ? in_channels : info.contract.channel_count();
    return std::make_shared<TimmResNetImpl>(config);
  }
  if (info.architecture == "timm-vit") {
    TimmVitConfig config = vit_config(info.variant);
    config.in_channels = in_channels > 0 ? in_channels : info.contract.channel_count();
    return std::make_shared<TimmVitImpl>(config);
  }
  if (info.architecture == "nnunet") {
    throw Error("backbone 'nnunet' is built from an imported model folder's architecture: run `graft import nnunet`, "
                "then train with init_from or predict with --model");
  }
  throw Error("backbone '" + name + "' is a contract without a network");
}

}  // namespace graft::backbones
