// The graft command. It parses arguments and calls the library; no logic lives only here.
// Format, contract and dataset commands (info, convert, stack, plan, preprocess, backbones,
// check) run in this executable, which does not link LibTorch (whose operator registration alone
// costs ~0.5 s per start); the rest run in graft-ml, which this one becomes.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backbones/registry.h"
#include "cli/command_line.h"
#include "datasets/manifest.h"
#include "finetune/blas_kernels.h"
#include "cli/progress.h"
#include "io/atomic_file.h"
#include "io/dicom/dicom_seg.h"
#include "io/dicom/dicom_series.h"
#include "io/dicom/rtstruct.h"
#include "io/error.h"
#include "io/raster/gdal_raster.h"
#include "io/image_file.h"
#include "io/hdf5/hdf5_file.h"
#include "io/image_info.h"
#include "io/label_file.h"
#include "io/nrrd/seg_nrrd.h"
#include "io/segment_names.h"
#include "preprocess/plan.h"
#include "preprocess/reorient.h"

namespace {

using graft::Error;
using graft::UsageError;
namespace io = graft::io;
namespace preprocess = graft::preprocess;

// DICOM choices given for another format are refused rather than dropped, so nobody believes a
// file was corrected that was not.
void check_dicom_options(const std::string& path, const io::DicomReadOptions& dicom) {
  if (!dicom.correct_tilt) return;
  const io::FileFormat format = io::sniff_format(io::split_dicom_path(path).path);
  if (format != io::FileFormat::kDicom) {
    throw UsageError(path + ": --correct-tilt is for DICOM series, and this is " +
                     io::format_name(format));
  }
}

// io::read, or the named dataset of an HDF5 file.
io::Image read_input(const std::string& path, const std::string& dataset,
                     const io::DicomReadOptions& dicom) {
  check_dicom_options(path, dicom);
  if (dataset.empty()) return io::read(path, dicom);
  if (io::sniff_format(path) != io::FileFormat::kHdf5) throw UsageError(path + ": --dataset is for HDF5 files");
  return io::read_hdf5(path, dataset);
}

int run_info(const graft::cli::InfoOptions& l) {
  const std::string& path = l.input;
  const bool json = l.json;
  check_dicom_options(path, l.dicom);
  // FOLDER#SERIES names no file of its own: sniff the folder.
  const io::DicomPath dicom = io::split_dicom_path(path);
  if (l.dataset.empty() && io::sniff_format(dicom.path) == io::FileFormat::kHdf5) {
    const io::Hdf5Contents contents = io::list_hdf5(path);
    if (json)
      std::cout << io::hdf5_info_json(contents).dump(2) << "\n";
    else
      std::cout << path << "\n" << io::hdf5_info_text(contents);
    return 0;
  }
  if (dicom.series.empty() && io::sniff_format(dicom.path) == io::FileFormat::kDicom &&
      !std::filesystem::is_directory(dicom.path)) {
    const std::string sop_class = io::dicom_sop_class_uid(dicom.path);
    if (sop_class == io::kRtStructureSetStorageUid) {
      // Contours without pixels: what each ROI is and where it was drawn.
      const io::RtStruct structure_set = io::read_rtstruct(dicom.path);
      nlohmann::json rois = nlohmann::json::array();
      for (const auto& roi : structure_set.rois) {
        rois.push_back({{"number", roi.number}, {"name", roi.name}, {"contours", roi.contours.size()}});
      }
      const nlohmann::json info{{"format", "dicom-rtstruct"},
                                {"referenced_series_instance_uid", structure_set.referenced_series_instance_uid},
                                {"rois", rois}};
      if (json) {
        std::cout << info.dump(2) << "\n";
      } else {
        std::cout << path << "\nformat       DICOM RTSTRUCT\nseries       "
                  << structure_set.referenced_series_instance_uid << " (the contours' images)\nrois         "
                  << rois.size() << "\n";
        for (const auto& roi : structure_set.rois) {
          std::cout << "  " << roi.number << "  " << roi.name << "  (" << roi.contours.size() << " contours)\n";
        }
      }
      return 0;
    }
    if (sop_class == io::kSegmentationStorageUid) {
      // One SEG file is one label image: describe it as one, with its segments.
      const io::Image labels = io::read(dicom.path);
      if (json)
        std::cout << io::image_info_json(labels).dump(2) << "\n";
      else
        std::cout << path << "\n" << io::image_info_text(labels);
      return 0;
    }
  }
  if (dicom.series.empty() && io::sniff_format(dicom.path) == io::FileFormat::kDicom) {
    // A DICOM folder holds any number of series: list them, with the selector for each.
    const auto series = io::find_dicom_series(dicom.path);
    if (json)
      std::cout << io::dicom_series_info_json(series).dump(2) << "\n";
    else
      std::cout << path << ": " << io::dicom_series_info_text(series);
    return 0;
  }
  if (io::sniff_format(dicom.path) == io::FileFormat::kGdal) {
    // The header alone: a whole satellite scene need not be read to describe it.
    const io::GdalRasterInfo raster = io::read_gdal_info(path);
    if (json)
      std::cout << io::gdal_info_json(raster).dump(2) << "\n";
    else
      std::cout << path << "\n" << io::gdal_info_text(raster);
    return 0;
  }
  const io::Image image = read_input(path, l.dataset, l.dicom);
  if (json)
    std::cout << io::image_info_json(image).dump(2) << "\n";
  else
    std::cout << path << "\n" << io::image_info_text(image);
  return 0;
}

void write_image(const io::Image& image, const std::string& output, const graft::cli::GeoTiffOutput& geotiff);

int run_convert(const graft::cli::ConvertOptions& l) {
  const std::string &in = l.input, &out = l.output, &dtype = l.dtype;
  graft::cli::Progress progress("convert", 2);
  progress.step("read");
  if (io::is_dicom_seg_path(out)) {
    if (l.reference_dicom.empty()) {
      throw UsageError(out + ": a DICOM " + (io::is_rtstruct_path(out) ? "RTSTRUCT" : "SEG") +
                       " references its source series: give --reference-dicom FOLDER[#SERIES]");
    }
    const io::DicomVolumeSource source = io::dicom_volume_source(l.reference_dicom);
    // Masks saved by other tools (dcm2niix's voxel order, say) lie on the same grid re-indexed;
    // an RTSTRUCT input is drawn onto the series.
    io::Image labels = io::read_label_map(in, l.reference_dicom, source.geometry);
    labels.metadata().segments = io::named_segments(labels, graft::cli::split_names(l.segment_names));
    progress.step("write");
    if (io::is_rtstruct_path(out)) {
      io::RtStructWriteOptions options;
      options.anonymize = l.anonymize;
      io::write_rtstruct(labels, source, out, options);
      return 0;
    }
    io::DicomSegOptions options;
    options.anonymize = l.anonymize;
    io::write_dicom_seg(labels, source, io::segments_for_labels(labels, {}), out, options);
    return 0;
  }
  if (io::label_needs_image_grid(in)) {
    // An RTSTRUCT holds contours, not voxels: they are drawn onto the series they belong to.
    if (l.reference_dicom.empty()) {
      throw UsageError(in + ": an RTSTRUCT is drawn onto its series' grid: give --reference-dicom FOLDER[#SERIES]");
    }
    io::Image labels = io::read_label_map(in, l.reference_dicom, io::dicom_volume_source(l.reference_dicom).geometry);
    if (!l.segment_names.empty()) {
      labels.metadata().segments = io::named_segments(labels, graft::cli::split_names(l.segment_names));
    }
    progress.step("write");
    write_image(labels, out, l.geotiff);
    return 0;
  }
  io::Image image = read_input(in, l.dataset, l.dicom);
  if (io::is_seg_nrrd_path(out) && !l.segment_names.empty()) {
    image.metadata().segments = io::named_segments(image, graft::cli::split_names(l.segment_names));
  }
  if (!dtype.empty()) image = image.cast(io::dtype_from_name(dtype));
  progress.step("write");
  write_image(image, l.output, l.geotiff);
  return 0;
}

// io::write, with the GeoTIFF choices (COG, compression) when the output is a .tif.
void write_image(const io::Image& image, const std::string& output, const graft::cli::GeoTiffOutput& geotiff) {
  if (io::format_from_extension(output) != io::FileFormat::kGdal) {
    if (geotiff.cloud_optimized) throw UsageError(output + ": --cog needs a .tif output");
    io::write(image, output);
    return;
  }
  io::GdalWriteOptions options;
  options.cloud_optimized = geotiff.cloud_optimized;
  options.compression = geotiff.compression;
  io::write_atomically(output, [&](const std::string& temporary) { io::write_gdal(image, temporary, options); });
}

int run_stack(const graft::cli::StackOptions& l) {
  io::BandStackOptions options;
  if (!l.reference_band.empty()) options.reference = l.reference_band;
  options.resampling = l.resampling;
  const io::Image stack = io::read_band_stack(l.bands, options);
  write_image(stack, l.output, l.geotiff);
  std::cout << l.output << ": " << stack.channels() << " bands on a " << stack.geometry().size_xyz[0]
            << " x " << stack.geometry().size_xyz[1] << " grid\n";
  return 0;
}

preprocess::Contract contract_for(const graft::cli::ContractChoice& choice) {
  const int given = !choice.backbone.empty() + !choice.contract_path.empty() + !choice.model_folder.empty();
  if (given != 1) throw UsageError("give one of --backbone NAME, --contract FILE or --model MODEL_DIR");
  if (!choice.contract_path.empty()) return preprocess::read_contract(choice.contract_path);
  if (!choice.model_folder.empty()) {
    // A model folder keeps the Contract it was trained (or imported) with as contract.json; the
    // folder's other files need LibTorch to read, and planning does not.
    if (!std::filesystem::is_directory(choice.model_folder)) {
      throw Error(choice.model_folder + ": not a model folder (no such directory)");
    }
    return preprocess::read_contract(choice.model_folder + "/contract.json");
  }
  return graft::backbones::find_backbone(choice.backbone).contract;
}

preprocess::PlanOptions plan_options(const graft::cli::ContractChoice& choice) {
  preprocess::PlanOptions options;
  options.band_names = graft::cli::split_names(choice.band_names);
  options.fill_missing_bands = choice.fill_missing_bands;
  return options;
}

int run_plan(const graft::cli::PlanOptions& l) {
  const preprocess::Contract contract = contract_for(l.contract);
  const io::Image image = read_input(l.input, "", l.dicom);
  const preprocess::Plan plan = preprocess::make_plan(contract, image, plan_options(l.contract));
  if (l.json)
    std::cout << preprocess::to_json(plan).dump(2) << "\n";
  else
    std::cout << preprocess::to_text(plan);
  return 0;
}

int run_preprocess(const graft::cli::PreprocessOptions& l) {
  if (l.labels.empty() != l.labels_output.empty()) {
    throw UsageError("--labels and --labels-output go together");
  }
  const preprocess::Contract contract = contract_for(l.contract);
  graft::cli::Progress progress("preprocess", l.labels.empty() ? 4 : 6);
  progress.step("read");
  const io::Image image = read_input(l.input, "", l.dicom);
  progress.step("plan");
  const preprocess::Plan plan = preprocess::make_plan(contract, image, plan_options(l.contract));
  progress.step("apply");
  const io::Image result = preprocess::apply(plan, image);
  progress.step("write");
  io::write(result, l.output);
  if (!l.labels.empty()) {
    progress.step("labels");
    const io::Image labels = io::read(l.labels);
    io::write(preprocess::apply_to_labels(plan, labels), l.labels_output);
  }
  if (!l.plan_output.empty()) io::write_text_atomically(l.plan_output, preprocess::to_json(plan).dump(2) + "\n");
  progress.finish();
  std::cout << preprocess::to_text(plan);
  return 0;
}

int run_backbones(bool json) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& backbone : graft::backbones::registered_backbones()) {
    if (json) {
      list.push_back({{"name", backbone.name},
                      {"summary", backbone.summary},
                      {"contract", preprocess::to_json(backbone.contract)}});
    } else {
      std::cout << backbone.name << "  (" << backbone.summary << ")\n"
                << preprocess::describe(backbone.contract) << "\n";
    }
  }
  if (json) std::cout << list.dump(2) << "\n";
  return 0;
}

// One line per case: id, split, image grid and "ok" or what is wrong; exit code 1 when any case
// has a problem. The desktop app's dataset panel shows the same check.
int run_check(const std::string& manifest, int folds) {
  std::vector<graft::datasets::CaseEntry> entries = graft::datasets::read_manifest(manifest);
  graft::datasets::assign_folds(entries, folds, 0, 0);
  int problems = 0;
  for (const auto& entry : entries) {
    const graft::datasets::CaseCheck check = graft::datasets::check_case(entry);
    std::printf("%s\t%s\t%s\t%s\n", entry.id.c_str(), entry.split.c_str(), check.grid.c_str(),
                check.problem.empty() ? "ok" : check.problem.c_str());
    problems += !check.problem.empty();
  }
  std::printf("check: %zu cases, %d with problems\n", entries.size(), problems);
  return problems == 0 ? 0 : 1;
}

// Reads an image `repeats` times in this process and prints the median seconds: the load alone,
// without the process start.
int run_bench_load(const std::string& path, int repeats) {
  std::vector<double> seconds;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto start = std::chrono::steady_clock::now();
    const io::Image image = io::read(path);
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (i == 0)
      std::printf("loaded %s: %lld voxels x %lld channel(s)\n", path.c_str(),
                  static_cast<long long>(image.voxels_per_channel()),
                  static_cast<long long>(image.channels()));
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("median seconds per load: %.4f\n", seconds[seconds.size() / 2]);
  return 0;
}

// Replaces this process with graft-ml, which sits beside this executable, with the same
// arguments: same process id, standard streams and exit status.
int hand_to_graft_ml(char** argv) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::string ml =
      ((error ? std::filesystem::path(argv[0]) : self).parent_path() / "graft-ml").string();
  argv[0] = const_cast<char*>(ml.c_str());
  // This process has OpenBLAS loaded too (through the format libraries), so it can tell graft-ml
  // which kernels fit before graft-ml loads it, instead of graft-ml starting a second time.
  if (const char* core = graft::finetune::fitting_blas_core_type()) setenv("OPENBLAS_CORETYPE", core, 0);
  execv(ml.c_str(), argv);
  throw Error(ml + ": cannot run it (" + std::strerror(errno) +
              "); training, prediction and backbones live there: build the graft-ml target");
}

}  // namespace

int main(int argc, char** argv) {
  graft::cli::CommandLine line;
  if (const int status = graft::cli::parse_command_line(argc, argv, line); status >= 0)
    return status;
  return graft::cli::run_reporting_errors([&] {
    if (graft::cli::needs_torch(line.command)) return hand_to_graft_ml(argv);
    if (line.command == "info") return run_info(line.info);
    if (line.command == "convert") return run_convert(line.convert);
    if (line.command == "stack") return run_stack(line.stack);
    if (line.command == "bench load") return run_bench_load(line.bench_load.input, line.bench_load.repeats);
    if (line.command == "plan") return run_plan(line.plan);
    if (line.command == "preprocess") return run_preprocess(line.preprocess);
    if (line.command == "backbones") return run_backbones(line.backbones.json);
    if (line.command == "check") return run_check(line.check.manifest, line.check.folds);
    throw UsageError("unknown command '" + line.command + "'");
  });
}
