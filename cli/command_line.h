#pragma once

// graft's command line, shared by its two executables: `graft` (formats, DICOM, conversion; no
// LibTorch, so it starts in milliseconds) and `graft-ml` (backbones, training, prediction), which
// `graft` hands those commands to. Both parse the same definition, so help and errors agree.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace graft::cli {

// Every option of every subcommand; `command` names the one given ("info", "bench load", ...).
struct CommandLine {
  std::string command;
  std::string path, in, out, dtype, backbone, contract_path, plan_out, labels_in, labels_out;
  std::string demo_folder = "graft-demo";
  int folds = 5;
  int nproc = 1;  // graft train --nproc
  bool json = false;
  // DICOM SEG outputs (convert, predict).
  std::string reference_dicom, segment_names;
  bool anonymize = false;
  // GeoTIFF outputs (convert, stack) and band stacks.
  bool cog = false;
  std::string dataset;  // HDF5 dataset path
  int size_px = 224;
  double microns_per_pixel = 0.5, min_tissue = 0.25;
  std::string compress = "DEFLATE", reference_band, resampling = "bilinear";
  // Band semantics (plan, preprocess): the user's names for the input's bands, and zero-filling.
  std::string band_names;
  bool fill_missing_bands = false;
  bool quick = false, resume = false, mirror = false, probabilities = false, lenient = false;
  std::string config_path, model_folder, reference, csv_path, weights, embed_mode = "pooled",
                                                                       head = "medicalnet";
  std::vector<std::string> overrides, inputs;
  double overlap = -1, tolerance_mm = 1.0;
  int batch = 2, steps = 10, threads = 0, workers = 1, repeats = 5;
  std::string shard;
  // Where models run: cpu, cuda, cuda:N; and the forward pass's precision: fp32, bf16, fp16.
  // Empty: a run file's train.device / train.precision (graft train), else cpu and fp32.
  std::string device, precision;
  std::vector<std::int64_t> patch_dhw{32, 64, 64};
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
