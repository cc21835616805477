#include "backbones/registry.h"

#include "io/error.h"

namespace graft::backbones {
namespace {

// A contract with every rule switched on, so plan/preprocess can be exercised end to end before
// real pretrained backbones register theirs. It is listed as a test contract, not a model.
// The network, weights and Contract of an nnU-Net model come from its folder (`graft import
// nnunet`); this entry names the family, with nnU-Net's default recipe as the contract it shows.
BackboneInfo nnunet_entry() {
  preprocess::Contract contract;
  contract.name = "nnunet";
  contract.description = "nnU-Net v2's default recipe; an imported model carries its own plans' numbers";
  contract.spatial_dims = 3;
  contract.crop_nonzero = true;
  contract.resize = preprocess::ResizeRule::kSpacing;
  contract.image_interpolation = preprocess::Interpolation::kBSpline;
  contract.label_interpolation = preprocess::LabelInterpolation::kPerLabelLinear;
  contract.anti_alias = false;
  contract.anisotropy_threshold = 3.0;
  contract.normalize_before_resampling = true;
  preprocess::IntensityStep zscore;
  zscore.kind = preprocess::IntensityKind::kZScore;
  contract.intensity.push_back(zscore);
  contract.sources = {"nnU-Net v2 DefaultPreprocessor (Isensee et al. 2021)"};
  BackboneInfo info{"nnunet",
                    "nnU-Net v2 PlainConvUNet or ResidualEncoderUNet, built from a model folder written by "
                    "`graft import nnunet`",
                    contract};
  info.architecture = "nnunet";
  info.needs_model_folder = true;
  return info;
}

BackboneInfo test_ct_contract() {
  preprocess::Contract contract;
  contract.name = "test-ct-1mm";
  contract.description = "test contract: 3D CT at 1 mm isotropic, RAS, soft-tissue window";
  contract.spatial_dims = 3;
  contract.orientation = "RAS";
  contract.resize = preprocess::ResizeRule::kSpacing;
  contract.target_spacing_mm = {1.0, 1.0, 1.0};
  contract.image_interpolation = preprocess::Interpolation::kLinear;
  contract.label_interpolation = preprocess::LabelInterpolation::kNearest;
  preprocess::IntensityStep window;
  window.kind = preprocess::IntensityKind::kWindow;
  window.window_center = 40.0;
  window.window_width = 400.0;
  contract.intensity.push_back(window);
  contract.sources = {"graft foundation test contract (no pretrained weights)"};
  return {contract.name, "test contract for the preprocessing pipeline (no network)", contract};
}

BackboneInfo test_mr_contract() {
  preprocess::Contract contract;
  contract.name = "test-mr-size";
  contract.description = "test contract: 3D MR cropped to nonzero, resized to 64 x 64 x 32, z-score";
  contract.spatial_dims = 3;
  contract.crop_nonzero = true;
  contract.resize = preprocess::ResizeRule::kSize;
  contract.target_size_xyz = {64, 64, 32};
  preprocess::IntensityStep zscore;
  zscore.kind = preprocess::IntensityKind::kZScore;
  zscore.over_nonzero = true;
  zscore.outside_mask = preprocess::OutsideMask::kNoise;
  contract.intensity.push_back(zscore);
  contract.sources = {"graft foundation test contract shaped like MedicalNet's recipe"};
  contract.deviations = {"images are resized with linear interpolation, not nearest (order 0)"};
  return {contract.name, "test contract for the preprocessing pipeline (no network)", contract};
}

// MedicalNet's preprocessing (Tencent/MedicalNet datasets/brains18.py, setting.py): crop to the
// nonzero region, resize to the input size (56 x 448 x 448 as D x H x W by default), z-score over
// voxels > 0 with the zero voxels replaced by N(0, 1) noise, labels zoomed with nearest.
BackboneInfo med3d_resnet(int depth) {
  preprocess::Contract contract;
  contract.name = "med3d-resnet" + std::to_string(depth);
  contract.description = "Med3D 3D ResNet-" + std::to_string(depth) +
                         " pretrained on 23 segmentation datasets (CT and MR), 1 channel";
  contract.spatial_dims = 3;
  contract.crop_nonzero = true;
  contract.resize = preprocess::ResizeRule::kSize;
  contract.target_size_xyz = {448, 448, 56};
  contract.image_interpolation = preprocess::Interpolation::kLinear;
  contract.label_interpolation = preprocess::LabelInterpolation::kNearest;
  contract.anti_alias = true;
  contract.anisotropy_threshold = 0.0;  // MedicalNet resizes every axis to a fixed size
  preprocess::IntensityStep zscore;
  zscore.kind = preprocess::IntensityKind::kZScore;
  zscore.over_nonzero = true;
  zscore.outside_mask = preprocess::OutsideMask::kNoise;
  contract.intensity.push_back(zscore);
  contract.sources = {
      "Chen, Ma, Zheng 2019, Med3D: Transfer Learning for 3D Medical Image Analysis",
      "Tencent/MedicalNet setting.py (input 56x448x448), datasets/brains18.py (crop, zoom, "
      "z-score over voxels > 0, N(0,1) fill)"};
  contract.deviations = {
      "images are resized with linear interpolation; MedicalNet uses ndimage.zoom order 0 "
      "(nearest), which aliases and blocks fine structure",
      "Gaussian anti-aliasing before shrinking; MedicalNet does not smooth"};
  const char shortcut = depth == 18 || depth == 34 ? 'A' : 'B';
  BackboneInfo info{contract.name,
                    std::string("MedicalNet 3D ResNet-") + std::to_string(depth) + ", shortcut " +
                        shortcut + ", features at strides 2, 4, 8, 8, 8",
                    contract};
  info.architecture = "med3d-resnet";
  info.depth = depth;
  return info;
}

// TorchGeo's SSL4EO weights for timm's ResNet (torchgeo/models/resnet.py: ResNet18/50_Weights
// SENTINEL2_ALL_MOCO and LANDSAT_OLI_TIRS_TOA_MOCO): the band order and scaling in their meta
// and transforms. Small chips are resized to the 224 px the weights saw (Corley et al. 2023).
struct GeoWeights {
  std::string sensor;  // "s2" or "l8"
  std::vector<std::string> bands;
  double divide_by;
  std::string product, source, crop_rule;
};

GeoWeights sentinel2_weights() {
  return {"s2",
          {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"},
          10000.0,
          "Sentinel-2 L1C top-of-atmosphere reflectance (13 bands, SSL4EO-S12)",
          "TorchGeo resnet.py SENTINEL2_ALL_MOCO: meta bands B1..B12 with B8A after B8, transforms "
          "Resize(256), CenterCrop(224), divide by 10000 (SSL4EO-S12, Wang et al. 2022)",
          "TorchGeo resizes to 256 px and centre-crops 224; graft resizes the whole chip to 224 px so no "
          "border is cut (the rule Corley et al. 2023 measured for small chips)"};
}

GeoWeights landsat8_weights() {
  return {"l8",
          {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11"},
          255.0,
          "Landsat 8/9 OLI-TIRS top-of-atmosphere, 11 bands, as SSL4EO-L stores it (8 bit)",
          "TorchGeo resnet.py LANDSAT_OLI_TIRS_TOA_MOCO: meta bands B1..B11, transforms divide by 255, "
          "CenterCrop(224) (SSL4EO-L, Stewart et al. 2023)",
          "TorchGeo centre-crops SSL4EO-L's 264 px patches to 224; graft resizes the whole chip to 224 px. "
          "SSL4EO-L rescaled TOA reflectance to 8 bits: Collection 2 Level-1 digital numbers must be "
          "converted to that scale first"};
}

BackboneInfo geo_resnet(int depth, const GeoWeights& weights) {
  preprocess::Contract contract;
  contract.name = "geo-resnet" + std::to_string(depth) + "-" + weights.sensor;
  contract.description = "timm ResNet-" + std::to_string(depth) + " pretrained with MoCo on " + weights.product;
  contract.spatial_dims = 2;
  contract.channels = weights.bands;
  contract.resize = preprocess::ResizeRule::kSize;
  contract.target_size_xyz = {224, 224, 1};
  contract.image_interpolation = preprocess::Interpolation::kLinear;
  contract.label_interpolation = preprocess::LabelInterpolation::kNearest;
  contract.anisotropy_threshold = 0.0;
  preprocess::IntensityStep scale;
  scale.kind = preprocess::IntensityKind::kScaleOffset;
  scale.scale = 1.0 / weights.divide_by;
  contract.intensity.push_back(scale);
  contract.sources = {weights.source,
                      "Corley et al. 2023, Revisiting pre-trained remote sensing model benchmarks: resizing "
                      "and normalization matters"};
  contract.deviations = {weights.crop_rule};
  BackboneInfo info{contract.name,
                    "timm ResNet-" + std::to_string(depth) + ", " + std::to_string(weights.bands.size()) +
                        " bands, features at strides 2, 4, 8, 16, 32",
                    contract};
  info.architecture = "timm-resnet";
  info.depth = depth;
  return info;
}

// TorchGeo's ViTSmall16_Weights.SENTINEL2_ALL_MOCO: timm's vit_small_patch16_224 on the same 13
// bands and scaling as the ResNets.
BackboneInfo geo_vit_small(const GeoWeights& weights) {
  BackboneInfo info = geo_resnet(18, weights);
  info.name = info.contract.name = "geo-vit-s16-" + weights.sensor;
  info.contract.description = "timm ViT-S/16 pretrained with MoCo on " + weights.product;
  info.contract.sources.front() =
      "TorchGeo vit.py ViTSmall16_Weights.SENTINEL2_ALL_MOCO: timm vit_small_patch16_224, 13 bands B1..B12 "
      "with B8A after B8, Resize(256), CenterCrop(224), divide by 10000 (SSL4EO-S12)";
  info.summary = "timm ViT-S/16, " + std::to_string(weights.bands.size()) +
                 " bands, 384-wide tokens at stride 16, class-token embedding";
  info.architecture = "timm-vit";
  info.depth = 0;
  info.variant = "vit_small_patch16";
  return info;
}

// RGB ViTs: UNI's recipe (uni/get_encoder: Resize(224), CenterCrop(224), ToTensor, ImageNet mean
// and std), which timm's original ImageNet ViTs share.
BackboneInfo rgb_vit(const std::string& name, const std::string& variant, int patch, const std::string& summary,
                     const std::string& source) {
  preprocess::Contract contract;
  contract.name = name;
  contract.description = summary;
  contract.spatial_dims = 2;
  contract.channels = {"Red", "Green", "Blue"};
  contract.resize = preprocess::ResizeRule::kSize;
  contract.target_size_xyz = {224, 224, 1};
  contract.image_interpolation = preprocess::Interpolation::kLinear;
  contract.anisotropy_threshold = 0.0;
  preprocess::IntensityStep to_unit;
  to_unit.kind = preprocess::IntensityKind::kScaleOffset;
  to_unit.scale = 1.0 / 255.0;
  preprocess::IntensityStep imagenet;
  imagenet.kind = preprocess::IntensityKind::kChannelMeanStd;
  imagenet.mean = {0.485, 0.456, 0.406};
  imagenet.std = {0.229, 0.224, 0.225};
  contract.intensity = {to_unit, imagenet};
  contract.sources = {source, "ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), timm IMAGENET_DEFAULT"};
  contract.deviations = {"UNI resizes the shorter side to 224 px and centre-crops 224; graft resizes the whole "
                         "patch to 224 px, which is the same for the square patches tiling produces"};
  if (patch == 14) {
    contract.deviations.push_back("patch 14: inputs must be multiples of 14 px; 224 is");
  }
  if (variant.rfind("vit_", 0) == 0) {
    contract.deviations.push_back("timm's augreg weights under this name were trained with mean = std = 0.5; "
                                  "for those, override data.contract.intensity");
  }
  BackboneInfo info{name, summary, contract};
  info.architecture = "timm-vit";
  info.variant = variant;
  return info;
}

}  // namespace

const std::vector<BackboneInfo>& registered_backbones() {
  static const std::vector<BackboneInfo> backbones = [] {
    std::vector<BackboneInfo> list;
    for (int depth : {10, 18, 34, 50, 101, 152, 200}) list.push_back(med3d_resnet(depth));
    for (int depth : {18, 50}) {
      list.push_back(geo_resnet(depth, sentinel2_weights()));
      list.push_back(geo_resnet(depth, landsat8_weights()));
    }
    list.push_back(geo_vit_small(sentinel2_weights()));
    list.push_back(rgb_vit("uni-vit-l16", "uni", 16,
                           "UNI: timm ViT-L/16 with layer scale, 1024-wide class token (Chen et al. 2024)",
                           "mahmoodlab/UNI get_encoder: timm vit_large_patch16_224, init_values=1e-5, num_classes=0, "
                           "dynamic_img_size=True, pretrained with DINOv2 on H&E patches at 20x (~0.5 um/px)"));
    list.push_back(rgb_vit("uni2-vit-h14", "uni2_h", 14,
                           "UNI2-h: 1536-wide ViT/14, 24 blocks, packed SwiGLU, 8 register tokens",
                           "mahmoodlab/UNI get_encoder: timm vit_giant_patch14_224 with embed_dim 1536, depth 24, "
                           "24 heads, mlp_ratio 5.33334, SwiGLUPacked, reg_tokens 8, no_embed_class, init_values 1e-5"));
    list.push_back(rgb_vit("vit-s16", "vit_small_patch16", 16, "timm ViT-S/16, 384-wide class token",
                           "timm vit_small_patch16_224"));
    list.push_back(rgb_vit("vit-b16", "vit_base_patch16", 16, "timm ViT-B/16, 768-wide class token",
                           "timm vit_base_patch16_224"));
    list.push_back(rgb_vit("vit-l16", "vit_large_patch16", 16, "timm ViT-L/16, 1024-wide class token",
                           "timm vit_large_patch16_224"));
    list.push_back(rgb_vit("vit-h14", "vit_huge_patch14", 14, "timm ViT-H/14, 1280-wide class token",
                           "timm vit_huge_patch14_224"));
    list.push_back(nnunet_entry());
    list.push_back(test_ct_contract());
    list.push_back(test_mr_contract());
    return list;
  }();
  return backbones;
}

const BackboneInfo& find_backbone(const std::string& name) {
  for (const auto& backbone : registered_backbones()) {
    if (backbone.name == name) return backbone;
  }
  std::string known;
  for (const auto& backbone : registered_backbones()) known += (known.empty() ? "" : ", ") + backbone.name;
  throw UsageError("unknown backbone '" + name + "' (registered: " + known + ")");
}

}  // namespace graft::backbones
