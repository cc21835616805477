#pragma once

// graft's command line, shared by its two executables: `graft` (formats, contracts, datasets; no
// LibTorch, so it starts in milliseconds) and `graft-ml` (training, prediction, embeddings),
// which `graft` hands those commands to. Both parse the same definition, so help and errors agree.
//
// Every subcommand owns its options and their defaults. Across commands: inputs are positional,
// `--output` is always a path, and sizes are given x y (z).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/image_file.h"

namespace graft::cli {

// A GeoTIFF output's layout (convert, stack).
struct GeoTiffOutput {
  bool cloud_optimized = false;
  std::string compression = "DEFLATE";
};

// Which Contract a Plan follows (plan, preprocess), and how the input's bands are named.
struct ContractChoice {
  std::string backbone;
  std::string contract_path;
  std::string model_folder;  // a model folder's own Contract (contract.json)
  std::string band_names;  // "B4,B3,B2": the input's bands in order, instead of the file's
  bool fill_missing_bands = false;
};

// Where a model runs: cpu, cuda, cuda:N; and the forward pass's precision: fp32, bf16, fp16.
// Empty: a run file's train.device / train.precision (graft train), else cpu and fp32.
struct ComputeChoice {
  std::string device, precision;
};

struct InfoOptions {
  std::string input, dataset;
  bool json = false;
  io::DicomReadOptions dicom;
};

struct ConvertOptions {
  std::string input, output, dataset, dtype;
  std::string reference_dicom, segment_names;  // DICOM SEG outputs
  bool anonymize = false;
  GeoTiffOutput geotiff;
  io::DicomReadOptions dicom;
};

struct StackOptions {
  std::string output;
  std::vector<std::string> bands;
  std::string reference_band, resampling = "bilinear";
  GeoTiffOutput geotiff;
};

struct PlanOptions {
  ContractChoice contract;
  std::string input;
  bool json = false;
  io::DicomReadOptions dicom;
};

struct PreprocessOptions {
  ContractChoice contract;
  std::string input, output, plan_output, labels, labels_output;
  io::DicomReadOptions dicom;
};

struct BackbonesOptions {
  bool json = false;
};

struct CheckOptions {
  std::string manifest;
  int folds = 5;
};

struct DemoOptions {
  std::string output = "graft-demo";
  bool quick = false;
};

struct TrainOptions {
  std::string config_path, output;
  std::vector<std::string> overrides;
  bool resume = false;
  bool merge = false;  // train.adapter lora: fold the adapters into the weights at the end
  int nproc = 1;
  ComputeChoice compute;
};

struct RankOptions {
  std::string manifest, task, config_path, csv_path, level;
  std::vector<std::string> backbones, weights, overrides;
  int patches_per_case = 4, samples_per_class = 512, threads = 0;
};

struct MergeAdapterOptions {
  std::string model_folder, output;
};

struct PredictOptions {
  std::string model_folder, output, shard;
  std::vector<std::string> inputs;
  std::optional<double> overlap_fraction;
  bool mirror = false, probabilities = false, anonymize = false, cloud_optimized = false;
  std::string reference_dicom;  // the series a DICOM SEG or RTSTRUCT output of a non-DICOM input references
  int workers = 1, threads = 0;
  ComputeChoice compute;
  io::DicomReadOptions dicom;  // for every DICOM input of the batch
};

struct EvaluateOptions {
  std::string prediction, reference, csv_path;
  double tolerance_mm = 1.0;
};

struct EmbedOptions {
  std::string backbone, weights, input, output;
  std::string model_folder;          // a segmentation model folder instead of a backbone
  std::string out;                   // the output NPY when --output names what is written
  std::string features = "pooled";  // pooled, map, or (with a model folder) logits
  bool lenient = false;
  ComputeChoice compute;
};

struct SlideFeaturesOptions {
  std::string backbone = "uni-vit-l16", weights, model_folder, input, output;
  bool lenient = false;
  double microns_per_pixel = 0.5, min_tissue_fraction = 0.25;
  int patch_size_px = 224, batch = 2, threads = 0;
  ComputeChoice compute;
};

struct ImportNnUNetOptions {
  std::string folder, configuration, fold = "0", checkpoint = "checkpoint_final.pth", output, orientation;
};

struct BenchLoadOptions {
  std::string input;
  int repeats = 5;
};

struct BenchEmbedOptions {
  std::string backbone = "vit-s16";
  int batch = 2, patch_size_px = 224, steps = 10, threads = 0;
  ComputeChoice compute;
};

struct BenchTrainStepOptions {
  std::string backbone = "med3d-resnet10";
  std::string head;  // empty: medicalnet for a 3D backbone, unet for a 2D one
  std::string batchnorm = "train";  // train.batchnorm: train, eval or tune
  std::string adapter = "none";     // train.adapter: none, lora or side
  int lora_rank = 8;
  int side_reduction = 8;
  bool activation_checkpointing = false;
  std::string optimizer = "sgd";  // sgd (with momentum) or adamw
  int batch = 2, steps = 10, threads = 0;
  // Empty: a 2D backbone's Contract size (224 x 224 for the ViTs), else 64 64 32.
  std::vector<std::int64_t> patch_size_xyz;
  ComputeChoice compute;
};

// The command given ("info", "bench load", ...) and the options of each command; only the given
// command's are filled from the arguments, the others keep their defaults.
struct CommandLine {
  std::string command;
  InfoOptions info;
  ConvertOptions convert;
  StackOptions stack;
  PlanOptions plan;
  PreprocessOptions preprocess;
  BackbonesOptions backbones;
  CheckOptions check;
  DemoOptions demo;
  TrainOptions train;
  MergeAdapterOptions merge_adapter;
  RankOptions rank;
  PredictOptions predict;
  EvaluateOptions evaluate;
  EmbedOptions embed;
  ImportNnUNetOptions import_nnunet;
  SlideFeaturesOptions slide_features;
  BenchLoadOptions bench_load;
  BenchEmbedOptions bench_embed;
  BenchTrainStepOptions bench_train_step;
};

// Commands that need LibTorch, and so run in graft-ml.
bool needs_torch(const std::string& command);

// Parses argv into `line`. Returns -1 to go on, or the exit status when parsing ends the run
// (help: 0, a usage error: 2, already reported on stderr).
int parse_command_line(int argc, char** argv, CommandLine& line);

// "graft: KIND: MESSAGE" on stderr, KIND in red on a terminal.
void print_error(const std::string& kind, const std::string& message);

// Runs a command and turns what it throws into one line on stderr and graft's exit status:
// 2 for bad usage, 1 for bad input or any other failure.
int run_reporting_errors(const std::function<int()>& command);

// "a,b,c" -> names; empty pieces stay so that positions keep their meaning.
std::vector<std::string> split_names(const std::string& text);

}  // namespace graft::cli
