#include "cli/command_line.h"

#include <unistd.h>

#include <cstdio>
#include <new>

#include "io/error.h"

namespace graft::cli {

bool needs_torch(const std::string& command) {
  for (const char* light : {"info", "convert", "stack", "bench load", "plan", "preprocess", "backbones", "check"}) {
    if (command == light) return false;
  }
  return true;
}

namespace {

// Registers a positional input; `aliases` are the option spellings it answered to before.
template <typename Value>
CLI::Option* add_input(CLI::App* command, Value& value, const std::string& help, const std::string& aliases = "") {
  return command->add_option("input" + (aliases.empty() ? std::string() : "," + aliases), value, help);
}

void add_compute(CLI::App* command, ComputeChoice& compute) {
  // The values are checked where they are used (finetune::parse_device), with the GPUs in view.
  command->add_option("--device", compute.device, "cpu, cuda (cuda:LOCAL_RANK under a launcher) or cuda:N");
  command->add_option("--precision", compute.precision,
                      "fp32, bf16 or fp16 (fp16 on CUDA only): mixed precision for the forward pass");
}

void add_geotiff(CLI::App* command, GeoTiffOutput& geotiff) {
  command->add_flag("--cog", geotiff.cloud_optimized,
                    "a .tif output is a Cloud Optimized GeoTIFF (tiled, with overviews)");
  command->add_option("--compress", geotiff.compression, "a .tif output's compression: DEFLATE, LZW, ZSTD, NONE")
      ->capture_default_str();
}

void add_contract_choice(CLI::App* command, ContractChoice& contract) {
  command->add_option("--backbone", contract.backbone, "registered backbone name (see graft backbones)");
  command->add_option("--contract", contract.contract_path, "contract JSON file instead of a backbone");
  command->add_option("--model", contract.model_folder,
                      "a model folder's Contract (graft train's output, or graft import nnunet's)");
  command->add_option("--bands", contract.band_names,
                      "names of the input's bands in order (B4,B3,B2), instead of the file's");
  command->add_flag("--fill-missing-bands", contract.fill_missing_bands,
                    "bands the backbone expects and the input lacks are zero after normalisation");
}

// Every command that reads a DICOM series' voxels offers the same choices, with the same words.
void add_dicom_reading(CLI::App* command, io::DicomReadOptions& dicom) {
  command->add_flag(
      "--correct-tilt", dicom.correct_tilt,
      "DICOM: resample a series with gantry tilt (sheared slices) onto an orthogonal grid, "
      "linearly, as dcm2niix does; without it such a series is refused");
}

void add_weights(CLI::App* command, std::string& weights, bool& lenient) {
  command->add_option("--weights", weights, "checkpoint (torch.save or safetensors)");
  command->add_flag("--lenient", lenient, "load what fits and report the rest");
}

void define_commands(CLI::App& app, CommandLine& l) {
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  auto* info = app.add_subcommand("info", "print an image's grid, dtype and metadata");
  add_input(info, l.info.input,
            "image file (NIfTI, NRRD, NPY, GeoTIFF and other rasters, HDF5), or a DICOM folder or file; "
            "FOLDER#SERIES for one series")
      ->required();
  info->add_flag("--json", l.info.json, "print JSON with the same keys for every format");
  info->add_option("--dataset", l.info.dataset, "HDF5: describe this dataset as an image (without: list them all)");
  add_dicom_reading(info, l.info.dicom);

  auto* convert = app.add_subcommand("convert", "convert between formats, keeping geometry");
  add_input(convert, l.convert.input, "any readable image")->required();
  convert->add_option("output,--output", l.convert.output, "output; its extension picks the format")->required();
  convert->add_option("--dataset", l.convert.dataset, "HDF5 input: the dataset to read (needed when there are several)");
  convert->add_option("--dtype", l.convert.dtype, "voxel type of the output (u8 i8 u16 i16 u32 i32 f32 f64)");
  convert->add_option("--reference-dicom", l.convert.reference_dicom,
                      "for a .dcm output (DICOM SEG) or .rtstruct.dcm output (RTSTRUCT) of a label image, or an "
                      "RTSTRUCT input: the source series, FOLDER[#SERIES]");
  convert->add_option("--segment-names", l.convert.segment_names,
                      "DICOM SEG, RTSTRUCT, .seg.nrrd: names of labels 1, 2, ... (a,b,c)");
  convert->add_flag("--anonymize", l.convert.anonymize, "DICOM SEG, RTSTRUCT: de-identify (DICOM PS3.15 basic profile)");
  add_geotiff(convert, l.convert.geotiff);
  add_dicom_reading(convert, l.convert.dicom);

  auto* stack = app.add_subcommand("stack", "stack one-band rasters (Sentinel-2, Landsat) into one image");
  stack->add_option("output,--output", l.stack.output, "the stacked image (.tif keeps the CRS)")->required();
  stack->add_option("bands", l.stack.bands, "one file per band, in the order wanted")->required();
  stack->add_option("--reference", l.stack.reference_band, "the band file whose grid the stack takes (default: finest)");
  stack->add_option("--resampling", l.stack.resampling, "for coarser bands: nearest, bilinear, cubic, average")
      ->capture_default_str();
  add_geotiff(stack, l.stack.geotiff);

  auto* plan = app.add_subcommand("plan", "show the preprocessing Plan for an image");
  add_contract_choice(plan, l.plan.contract);
  add_input(plan, l.plan.input, "image file")->required();
  plan->add_flag("--json", l.plan.json, "print the Plan as JSON");
  add_dicom_reading(plan, l.plan.dicom);

  auto* prep = app.add_subcommand("preprocess", "apply a backbone's Plan to an image");
  add_contract_choice(prep, l.preprocess.contract);
  add_input(prep, l.preprocess.input, "image file")->required();
  prep->add_option("output,--output", l.preprocess.output, "preprocessed image (f32)")->required();
  prep->add_option("--plan-output,--plan-out", l.preprocess.plan_output, "save the Plan as JSON");
  prep->add_option("--labels", l.preprocess.labels, "a label map on the input's grid to transform too");
  prep->add_option("--labels-output,--labels-out", l.preprocess.labels_output, "where the transformed label map goes");
  add_dicom_reading(prep, l.preprocess.dicom);

  auto* list = app.add_subcommand("backbones", "list registered backbones and their contracts");
  list->add_flag("--json", l.backbones.json, "print JSON");

  auto* check = app.add_subcommand("check", "check a dataset: every case readable, labels on their image's grid");
  check->add_option("manifest", l.check.manifest, "manifest (CSV or JSON) or nnU-Net folder")->required();
  check->add_option("--folds", l.check.folds, "k-fold split to show (fold 0 is validation)")->capture_default_str();

  auto* demo = app.add_subcommand("demo", "run graft's main job on built-in synthetic data");
  demo->add_option("--output", l.demo.output, "folder for the demo's files")->capture_default_str();
  demo->add_flag("--quick", l.demo.quick, "a smoke run of a few steps (numbers are meaningless)");

  auto* train = app.add_subcommand("train", "fine-tune a backbone on a labelled dataset");
  train->add_option("--config", l.train.config_path, "run config (YAML or JSON); every field has a default");
  train->add_option("--set", l.train.overrides, "override a field: --set train.epochs=5 (repeatable)");
  train->add_option("--output", l.train.output, "model folder (overrides the config's output)");
  train->add_flag("--resume", l.train.resume, "continue from OUTPUT/checkpoint.pt");
  train->add_flag("--merge", l.train.merge,
                  "train.adapter lora: the model folder gets the merged weights, not the adapters and a reference "
                  "to the base checkpoint");
  train->add_option("--nproc", l.train.nproc, "data-parallel processes on this machine (Gloo); each takes batch_size / N")
      ->check(CLI::Range(1, 256));
  add_compute(train, l.train.compute);

  auto* rank = app.add_subcommand(
      "rank", "score backbones on a labelled dataset before training (LogME of their frozen features), best first");
  rank->add_option("--manifest", l.rank.manifest, "labelled cases or chips, as graft train takes them")->required();
  rank->add_option("--backbones", l.rank.backbones, "registered backbones, comma-separated")
      ->required()
      ->delimiter(',');
  rank->add_option("--weights", l.rank.weights,
                   "a checkpoint per backbone, comma-separated, in the same order (random: random weights)")
      ->delimiter(',');
  rank->add_option("--task", l.rank.task, "classification or segmentation (default: from the manifest)");
  rank->add_option("--config", l.rank.config_path, "run config whose data settings apply (class_names, data.*)");
  rank->add_option("--set", l.rank.overrides, "override a run-config field, as for graft train (repeatable)");
  rank->add_option("--level", l.rank.level,
                   "segmentation: the feature level to score (default: the deepest at stride 8, else 4)");
  rank->add_option("--patches-per-case", l.rank.patches_per_case, "segmentation: patches drawn per case")
      ->capture_default_str();
  rank->add_option("--samples-per-class", l.rank.samples_per_class, "segmentation: labelled voxels kept per class")
      ->capture_default_str();
  rank->add_option("--csv", l.rank.csv_path, "also write the table as CSV");
  rank->add_option("--threads", l.rank.threads, "LibTorch threads (0: every core)")->capture_default_str();

  auto* merge = app.add_subcommand(
      "merge-adapter", "fold a LoRA model folder's adapters into its weights: a plain model folder, base checkpoint not needed");
  merge->add_option("--model", l.merge_adapter.model_folder, "model folder trained with train.adapter lora")->required();
  merge->add_option("--output", l.merge_adapter.output, "the merged model folder (the same folder: in place)")->required();

  auto* predict = app.add_subcommand(
      "predict",
      "segment, classify, detect or label slides with a trained model folder, whatever its task (a raster scene "
      "tile by tile into a GeoTIFF)");
  predict->add_option("--model", l.predict.model_folder, "model folder written by graft train")->required();
  predict->add_option("input,--input", l.predict.inputs, "image files, folders of them, or manifests")->required();
  predict->add_option("--output", l.predict.output, "output file, or a folder for a batch")->required();
  predict->add_option("--workers", l.predict.workers, "segmentation batch: cases segmented at once")
      ->capture_default_str();
  predict->add_option("--shard", l.predict.shard, "segmentation batch: only shard i of n (0-based), e.g. $SLURM_ARRAY_TASK_ID/8");
  predict->add_option("--overlap", l.predict.overlap_fraction, "segmentation: sliding-window overlap fraction (default: the model's)");
  predict->add_flag("--tta", l.predict.mirror, "segmentation: mirror test-time augmentation (8 flips)");
  predict->add_flag("--cog", l.predict.cloud_optimized, "segmentation: a raster's prediction is written as a Cloud Optimized GeoTIFF");
  predict->add_flag("--probabilities", l.predict.probabilities, "segmentation: also write per-class probability maps");
  predict->add_flag("--anonymize", l.predict.anonymize,
                    "segmentation: a DICOM SEG (.dcm) or RTSTRUCT (.rtstruct.dcm) output is de-identified (PS3.15 "
                    "basic profile)");
  predict->add_option("--reference-dicom", l.predict.reference_dicom,
                      "segmentation into DICOM SEG (.dcm) or RTSTRUCT (.rtstruct.dcm) of an input that is not DICOM: "
                      "the series it was made from, FOLDER[#SERIES]");
  predict->add_option("--threads", l.predict.threads, "LibTorch threads (0: the cores shared among workers)");
  add_compute(predict, l.predict.compute);
  add_dicom_reading(predict, l.predict.dicom);

  auto* evaluate = app.add_subcommand(
      "evaluate", "Dice, HD95 and surface Dice per label; for a boxes JSON, mAP, FROC, completeness and purity");
  evaluate->add_option("prediction,--pred", l.evaluate.prediction, "predicted label map, or boxes JSON from graft predict")
      ->required();
  evaluate->add_option("reference,--ref", l.evaluate.reference, "reference label map (or boxes JSON)")->required();
  evaluate->add_option("--csv", l.evaluate.csv_path, "write the numbers to this CSV");
  evaluate->add_option("--tolerance-mm", l.evaluate.tolerance_mm, "surface Dice tolerance")->capture_default_str();

  auto* embed = app.add_subcommand("embed", "run a backbone on a raw N x C x spatial float32 NPY");
  embed->add_option("--backbone", l.embed.backbone, "registered backbone");
  embed->add_option("--model", l.embed.model_folder,
                    "a segmentation model folder instead of a backbone: the whole network (with --features logits)");
  add_weights(embed, l.embed.weights, l.embed.lenient);
  add_input(embed, l.embed.input, "input NPY (float32, N x C x spatial: D x H x W for 3D, H x W for 2D)", "--input-npy")
      ->required();
  embed->add_option("--output", l.embed.output, "output NPY")->required();
  embed->add_option("--features", l.embed.features,
                    "pooled (the embedding: mean of the deepest features, a ViT's class token), map (the deepest "
                    "feature map) or, with --model, logits (the whole network, eval mode, no softmax or windows)")
      ->check(CLI::IsMember({"pooled", "map", "logits"}))
      ->capture_default_str();
  embed->add_option("--out", l.embed.out,
                    "output NPY; --output then names what is written instead (pooled, map or logits)");
  add_compute(embed, l.embed.compute);

  auto* slide = app.add_subcommand(
      "slide-features", "tile a whole slide over its tissue and write every patch's embedding to HDF5");
  slide->add_option("--backbone", l.slide_features.backbone, "registered backbone")->capture_default_str();
  add_weights(slide, l.slide_features.weights, l.slide_features.lenient);
  slide->add_option("--model", l.slide_features.model_folder,
                    "a model folder whose fine-tuned backbone (a LoRA one too) embeds the patches through its "
                    "Contract, instead of --backbone and --weights")
      ->excludes("--weights");
  add_input(slide, l.slide_features.input, "slide OpenSlide reads (SVS, NDPI, MRXS, tiled pyramidal TIFF)", "--input")
      ->required();
  slide->add_option("--output", l.slide_features.output, "HDF5 file: features [N, D], coords [N, 2]")->required();
  slide->add_option("--mpp", l.slide_features.microns_per_pixel, "patch resolution in microns per pixel")
      ->capture_default_str();
  slide->add_option("--patch-size", l.slide_features.patch_size_px, "patch side in pixels at that resolution")
      ->capture_default_str();
  slide->add_option("--batch", l.slide_features.batch, "patches per forward pass")->capture_default_str();
  slide->add_option("--min-tissue", l.slide_features.min_tissue_fraction, "least tissue share of a patch")
      ->capture_default_str();
  slide->add_option("--threads", l.slide_features.threads, "LibTorch threads (0: every core)")->capture_default_str();
  add_compute(slide, l.slide_features.compute);

  auto* import_command = app.add_subcommand("import", "turn a model trained elsewhere into a graft model folder");
  import_command->require_subcommand(1);
  auto* nnunet = import_command->add_subcommand(
      "nnunet", "an nnU-Net v2 results folder (Trainer__Plans__configuration: plans.json, dataset.json, fold_N/)");
  nnunet->add_option("folder", l.import_nnunet.folder, "the nnU-Net results folder")->required();
  nnunet->add_option("--configuration,-c", l.import_nnunet.configuration,
                     "plans configuration (default: the folder name's last part, e.g. 3d_fullres)");
  nnunet->add_option("--fold,-f", l.import_nnunet.fold, "which fold_N (all: fold_all)")->capture_default_str();
  nnunet->add_option("--checkpoint", l.import_nnunet.checkpoint, "checkpoint file in the fold folder")
      ->capture_default_str();
  nnunet->add_option("--output", l.import_nnunet.output, "the graft model folder to write")->required();
  nnunet->add_option("--orientation", l.import_nnunet.orientation,
                     "reorient every input to this code first (RAS for TotalSegmentator's models); default: the "
                     "file's storage order, as nnU-Net reads it");

  auto* bench = app.add_subcommand("bench", "measure graft's own speed");
  bench->require_subcommand(1);
  auto* load = bench->add_subcommand("load", "median seconds to read an image or DICOM series, in-process");
  add_input(load, l.bench_load.input, "any readable image, DICOM folder or FOLDER#SERIES")->required();
  load->add_option("--repeats", l.bench_load.repeats, "timed reads")->capture_default_str();

  auto* embed_bench = bench->add_subcommand("embed", "patches per second through a backbone's embedding (inference)");
  embed_bench->add_option("--backbone", l.bench_embed.backbone, "registered backbone")->capture_default_str();
  embed_bench->add_option("--batch", l.bench_embed.batch, "patches per forward pass")->capture_default_str();
  embed_bench->add_option("--patch-size", l.bench_embed.patch_size_px, "patch side in pixels")->capture_default_str();
  embed_bench->add_option("--steps", l.bench_embed.steps, "timed forward passes")->capture_default_str();
  embed_bench->add_option("--threads", l.bench_embed.threads, "LibTorch threads (0: every core)")->capture_default_str();
  add_compute(embed_bench, l.bench_embed.compute);

  auto* train_step = bench->add_subcommand("train-step", "seconds per training step on random data");
  train_step->add_option("--backbone", l.bench_train_step.backbone, "registered backbone")->capture_default_str();
  train_step->add_option("--head", l.bench_train_step.head, "medicalnet or unet (default: medicalnet for 3D backbones, unet for 2D)");
  train_step->add_option("--batch", l.bench_train_step.batch, "batch size")->capture_default_str();
  train_step->add_option("--batchnorm", l.bench_train_step.batchnorm,
                         "how the backbone's conv + BatchNorm pairs train: train, eval or tune")
      ->capture_default_str();
  train_step->add_option("--adapter", l.bench_train_step.adapter,
                         "none; lora (frozen backbone, LoRA adapters); or side (frozen backbone, ladder side network)")
      ->capture_default_str();
  train_step->add_option("--lora-rank", l.bench_train_step.lora_rank, "LoRA rank")->capture_default_str();
  train_step->add_option("--side-reduction", l.bench_train_step.side_reduction,
                         "how many times narrower the side network is than the backbone")
      ->capture_default_str();
  train_step->add_flag("--activation-checkpointing", l.bench_train_step.activation_checkpointing,
                       "checkpoint the backbone's blocks (ViTs)");
  train_step->add_option("--optimizer", l.bench_train_step.optimizer, "sgd (momentum 0.9) or adamw")
      ->capture_default_str();
  train_step->add_option("--patch-size", l.bench_train_step.patch_size_xyz,
                         "patch X Y Z (default: a 2D backbone's Contract size, else 64 64 32)")
      ->expected(3);
  train_step->add_option("--steps", l.bench_train_step.steps, "timed steps")->capture_default_str();
  train_step->add_option("--threads", l.bench_train_step.threads, "LibTorch threads (0: every core)")
      ->capture_default_str();
  add_compute(train_step, l.bench_train_step.compute);
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
