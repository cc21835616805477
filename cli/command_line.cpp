#include "cli/command_line.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <new>

#include "io/error.h"

namespace graft::cli {

bool needs_torch(const std::string& command) {
  return command != "info" && command != "convert" && command != "stack" && command != "bench load";
}

namespace {

void define_commands(CLI::App& app, CommandLine& l) {
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  auto* info = app.add_subcommand("info", "print an image's grid, dtype and metadata");
  info->add_option(
          "file", l.path,
          "image file (NIfTI, NRRD, NPY), or a DICOM folder or file; FOLDER#SERIES for one series")
      ->required();
  info->add_flag("--json", l.json, "print JSON with the same keys for every format");
  info->add_option("--dataset", l.dataset, "HDF5: describe this dataset as an image (without: list them all)");

  auto* convert = app.add_subcommand("convert", "convert between formats, keeping geometry");
  convert->add_option("input", l.in, "any readable image")->required();
  convert->add_option("output", l.out, "output; its extension picks the format")->required();
  convert->add_option("--dataset", l.dataset, "HDF5 input: the dataset to read (needed when there are several)");
  convert->add_option("--dtype", l.dtype,
                      "voxel type of the output (u8 i8 u16 i16 u32 i32 f32 f64)");
  convert->add_option(
      "--reference-dicom", l.reference_dicom,
      "for a .dcm output (DICOM SEG of a label image): the source series, FOLDER[#SERIES]");
  convert->add_option("--segment-names", l.segment_names,
                      "DICOM SEG: names of labels 1, 2, ... (a,b,c)");
  convert->add_flag("--anonymize", l.anonymize,
                    "DICOM SEG: de-identify (DICOM PS3.15 basic profile)");

  convert->add_flag("--cog", l.cog,
                    "a .tif output is a Cloud Optimized GeoTIFF (tiled, with overviews)");
  convert
      ->add_option("--compress", l.compress,
                   "a .tif output's compression: DEFLATE, LZW, ZSTD, NONE")
      ->capture_default_str();

  auto* stack =
      app.add_subcommand("stack", "stack one-band rasters (Sentinel-2, Landsat) into one image");
  stack->add_option("output", l.out, "the stacked image (.tif keeps the CRS)")->required();
  stack->add_option("bands", l.inputs, "one file per band, in the order wanted")->required();
  stack->add_option("--reference", l.reference_band,
                    "the band file whose grid the stack takes (default: finest)");
  stack
      ->add_option("--resampling", l.resampling,
                   "for coarser bands: nearest, bilinear, cubic, average")
      ->capture_default_str();
  stack->add_flag("--cog", l.cog, "write a Cloud Optimized GeoTIFF");
  stack->add_option("--compress", l.compress, "GeoTIFF compression")->capture_default_str();

  auto* plan = app.add_subcommand("plan", "show the preprocessing Plan for an image");
  plan->add_option("--backbone", l.backbone, "registered backbone name (see graft backbones)");
  plan->add_option("--contract", l.contract_path, "contract JSON file instead of a backbone");
  plan->add_option("input", l.in, "image file")->required();
  plan->add_flag("--json", l.json, "print the Plan as JSON");

  auto* prep = app.add_subcommand("preprocess", "apply a backbone's Plan to an image");
  prep->add_option("--backbone", l.backbone, "registered backbone name");
  prep->add_option("--contract", l.contract_path, "contract JSON file instead of a backbone");
  prep->add_option("input", l.in, "image file")->required();
  prep->add_option("output", l.out, "preprocessed image (f32)")->required();
  prep->add_option("--plan-out", l.plan_out, "save the Plan as JSON");
  prep->add_option("--labels", l.labels_in, "a label map on the input's grid to transform too");
  prep->add_option("--labels-out", l.labels_out, "where the transformed label map goes");
  for (CLI::App* command : {plan, prep}) {
    command->add_option("--bands", l.band_names,
                        "names of the input's bands in order (B4,B3,B2), instead of the file's");
    command->add_flag(
        "--fill-missing-bands", l.fill_missing_bands,
        "bands the backbone expects and the input lacks are zero after normalisation");
  }

  auto* list = app.add_subcommand("backbones", "list registered backbones and their contracts");
  list->add_flag("--json", l.json, "print JSON");

  auto* demo = app.add_subcommand("demo", "run graft's main job on built-in synthetic data");
  demo->add_option("--output", l.demo_folder, "folder for the demo's files")->capture_default_str();
  demo->add_flag("--quick", l.quick, "a smoke run of a few steps (numbers are meaningless)");

  auto* train = app.add_subcommand("train", "fine-tune a backbone on a labelled dataset");
  train->add_option("--config", l.config_path,
                    "run config (YAML or JSON); every field has a default");
  train->add_option("--set", l.overrides, "override a field: --set train.epochs=5 (repeatable)");
  train->add_option("--output", l.out, "model folder (overrides the config's output)");
  train->add_flag("--resume", l.resume, "continue from OUTPUT/checkpoint.pt");
  train->add_option("--nproc", l.nproc, "data-parallel processes on this machine (Gloo); each takes batch_size / N")
      ->check(CLI::Range(1, 256));

  auto* check = app.add_subcommand("check", "check a dataset: every case readable, labels on their image's grid");
  check->add_option("manifest", l.path, "manifest (CSV or JSON) or nnU-Net folder")->required();
  check->add_option("--folds", l.folds, "k-fold split to show (fold 0 is validation)")->capture_default_str();

  auto* predict = app.add_subcommand(
      "predict", "segment images (a raster scene tile by tile into a GeoTIFF) or classify chips with a trained model folder");
  predict->add_option("--model", l.model_folder, "model folder written by graft train")->required();
  predict->add_option("--input", l.inputs, "image files, a folder of them, or a manifest")
      ->required();
  predict->add_option("--output", l.out, "output file, or a folder for a batch")->required();
  predict->add_option("--workers", l.workers, "batch: cases segmented at once")
      ->capture_default_str();
  predict->add_option("--shard", l.shard,
                      "batch: only shard i of n (0-based), e.g. $SLURM_ARRAY_TASK_ID/8");
  predict->add_option("--overlap", l.overlap,
                      "sliding-window overlap fraction (default: the model's)");
  predict->add_flag("--tta", l.mirror, "mirror test-time augmentation (8 flips)");
  predict->add_flag("--cog", l.cog, "a raster's prediction is written as a Cloud Optimized GeoTIFF");
  predict->add_flag("--probabilities", l.probabilities, "also write per-class probability maps");
  predict->add_option("--threads", l.threads,
                      "LibTorch threads (0: the cores shared among workers)");
  predict->add_flag("--anonymize", l.anonymize,
                    "a DICOM SEG output (.dcm) is de-identified (PS3.15 basic profile)");

  auto* evaluate = app.add_subcommand(
      "evaluate", "Dice, HD95 and surface Dice per label; for a boxes JSON, mAP, FROC, completeness and purity");
  evaluate->add_option("--pred", l.path, "predicted label map, or boxes JSON from graft predict")->required();
  evaluate->add_option("--ref", l.reference, "reference label map (or boxes JSON)")->required();
  evaluate->add_option("--csv", l.csv_path, "write the numbers to this CSV");
  evaluate->add_option("--tolerance-mm", l.tolerance_mm, "surface Dice tolerance")
      ->capture_default_str();

  auto* embed = app.add_subcommand("embed", "run a backbone on a raw N x C x spatial float32 NPY");
  embed->add_option("--backbone", l.backbone, "registered backbone")->required();
  embed->add_option("--weights", l.weights, "checkpoint (torch.save or safetensors)");
  embed->add_flag("--lenient", l.lenient, "load what fits and report the rest");
  embed
      ->add_option("--input-npy", l.in,
                   "input NPY (float32, N x C x spatial: D x H x W for 3D, H x W for 2D)")
      ->required();
  embed
      ->add_option(
          "--output", l.embed_mode,
          "pooled (the embedding: mean of the deepest features, a ViT's class token) or features")
      ->capture_default_str();
  embed->add_option("--out", l.out, "output NPY")->required();

  auto* slide = app.add_subcommand(
      "slide-features", "tile a whole slide over its tissue and write every patch's embedding to HDF5");
  slide->add_option("--backbone", l.backbone, "registered backbone (default uni-vit-l16)");
  slide->add_option("--weights", l.weights, "checkpoint (torch.save or safetensors)");
  slide->add_flag("--lenient", l.lenient, "load what fits and report the rest");
  slide->add_option("--input", l.in, "slide OpenSlide reads (SVS, NDPI, MRXS, tiled pyramidal TIFF)")->required();
  slide->add_option("--output", l.out, "HDF5 file: features [N, D], coords [N, 2]")->required();
  slide->add_option("--mpp", l.microns_per_pixel, "patch resolution in microns per pixel")->capture_default_str();
  slide->add_option("--patch", l.size_px, "patch side in pixels at that resolution")->capture_default_str();
  slide->add_option("--batch", l.batch, "patches per forward pass")->capture_default_str();
  slide->add_option("--min-tissue", l.min_tissue, "least tissue share of a patch")->capture_default_str();

  auto* bench = app.add_subcommand("bench", "measure graft's own speed");
  bench->require_subcommand(1);
  auto* train_step =
      bench->add_subcommand("train-step", "seconds per training step on random data");
  train_step->add_option("--backbone", l.backbone, "registered backbone (default med3d-resnet10)");
  train_step->add_option("--head", l.head, "medicalnet or unet")->capture_default_str();
  train_step->add_option("--batch", l.batch, "batch size")->capture_default_str();
  train_step->add_option("--patch", l.patch_dhw, "patch D H W")->expected(3);
  train_step->add_option("--steps", l.steps, "timed steps")->capture_default_str();
  train_step->add_option("--threads", l.threads, "LibTorch threads (0: every core)")
      ->capture_default_str();
  auto* embed_bench =
      bench->add_subcommand("embed", "patches per second through a backbone's embedding (inference)");
  embed_bench->add_option("--backbone", l.backbone, "registered backbone (default vit-s16)");
  embed_bench->add_option("--batch", l.batch, "patches per forward pass")->capture_default_str();
  embed_bench->add_option("--size", l.size_px, "patch size in pixels")->capture_default_str();
  embed_bench->add_option("--steps", l.steps, "timed forward passes")->capture_default_str();
  embed_bench->add_option("--threads", l.threads, "LibTorch threads (0: every core)")->capture_default_str();
  for (CLI::App* command : {train, predict, embed, slide, train_step, embed_bench}) {
    // The values are checked where they are used (finetune::parse_device), with the GPUs in view.
    command->add_option("--device", l.device, "cpu, cuda (cuda:LOCAL_RANK under a launcher) or cuda:N");
    command->add_option("--precision", l.precision,
                        "fp32, bf16 or fp16 (fp16 on CUDA only): mixed precision for the forward pass");
  }
  auto* load =
      bench->add_subcommand("load", "median seconds to read an image or DICOM series, in-process");
  load->add_option("input", l.in, "any readable image, DICOM folder or FOLDER#SERIES")->required();
  load->add_option("--repeats", l.repeats, "timed reads")->capture_default_str();
}

}  // namespace

int parse_command_line(int argc, char** argv, CommandLine& line) {
  CLI::App app{"graft: fit pretrained imaging backbones to your own data"};
  define_commands(app, line);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error("usage error", std::string(e.what()) + " (see graft --help)");
    return 2;
  }
  for (const CLI::App* given = &app; !given->get_subcommands().empty();) {
    given = given->get_subcommands().front();
    line.command += (line.command.empty() ? "" : " ") + given->get_name();
  }
  // The subcommands share one backbone field, so CLI11's per-option defaults would overwrite one
  // another (the last definition won for all); each command's default applies once it is known.
  const std::map<std::string, std::string> default_backbones{
      {"slide-features", "uni-vit-l16"}, {"bench train-step", "med3d-resnet10"}, {"bench embed", "vit-s16"}};
  const auto fallback = default_backbones.find(line.command);
  if (line.backbone.empty() && fallback != default_backbones.end()) line.backbone = fallback->second;
  return -1;
}

void print_error(const std::string& kind, const std::string& message) {
  const bool colour = isatty(2) != 0;
  std::fprintf(stderr, "%sgraft: %s:%s %s\n", colour ? "\033[31m" : "", kind.c_str(),
               colour ? "\033[0m" : "", message.c_str());
}

int run_reporting_errors(const std::function<int()>& command) {
  try {
    return command();
  } catch (const UsageError& e) {
    print_error("usage error", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    print_error("error", "out of memory");
    return 1;
  } catch (const std::exception& e) {
    // Only the first line: LibTorch's errors carry a C++ backtrace after it.
    std::string message = e.what();
    print_error("error", message.substr(0, message.find('\n')));
    return 1;
  }
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  if (text.empty()) return names;
  std::size_t start = 0;
  for (std::size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1) {
    names.push_back(text.substr(start, comma - start));
  }
  names.push_back(text.substr(start));
  return names;
}

}  // namespace graft::cli
