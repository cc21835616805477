// The graft command. It parses arguments and calls the library; no logic lives only here.
// Format commands run in this executable, which does not link LibTorch (whose operator
// registration alone costs ~0.5 s per start); the rest run in graft-ml, which this one becomes.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command_line.h"
#include "cli/progress.h"
#include "io/atomic_file.h"
#include "io/dicom_seg.h"
#include "io/dicom_series.h"
#include "io/error.h"
#include "io/gdal_raster.h"
#include "io/image_file.h"
#include "io/hdf5_file.h"
#include "io/image_info.h"
#include "preprocess/reorient.h"

namespace {

using graft::Error;
using graft::UsageError;
namespace io = graft::io;
namespace preprocess = graft::preprocess;

// io::read, or the named dataset of an HDF5 file.
io::Image read_input(const std::string& path, const std::string& dataset) {
  if (dataset.empty()) return io::read(path);
  if (io::sniff_format(path) != io::FileFormat::kHdf5) throw UsageError(path + ": --dataset is for HDF5 files");
  return io::read_hdf5(path, dataset);
}

int run_info(const std::string& path, const std::string& dataset, bool json) {
  if (dataset.empty() && io::sniff_format(path) == io::FileFormat::kHdf5) {
    const io::Hdf5Contents contents = io::list_hdf5(path);
    if (json)
      std::cout << io::hdf5_info_json(contents).dump(2) << "\n";
    else
      std::cout << path << "\n" << io::hdf5_info_text(contents);
    return 0;
  }
  const io::DicomPath dicom = io::split_dicom_path(path);
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
  const io::Image image = read_input(path, dataset);
  if (json)
    std::cout << io::image_info_json(image).dump(2) << "\n";
  else
    std::cout << path << "\n" << io::image_info_text(image);
  return 0;
}

void write_image(const io::Image& image, const graft::cli::CommandLine& l);

int run_convert(const graft::cli::CommandLine& l) {
  const std::string &in = l.in, &out = l.out, &dtype = l.dtype;
  graft::cli::Progress progress("convert", 2);
  progress.step("read");
  io::Image image = read_input(in, l.dataset);
  if (io::is_dicom_seg_path(out)) {
    if (l.reference_dicom.empty()) {
      throw UsageError(
          out +
          ": a DICOM SEG references its source series: give --reference-dicom FOLDER[#SERIES]");
    }
    const io::DicomVolumeSource source = io::dicom_volume_source(l.reference_dicom);
    // Masks saved by other tools (dcm2niix's voxel order, say) lie on the same grid re-indexed.
    const io::Image labels = preprocess::onto_same_grid(image, source.geometry, in);
    io::DicomSegOptions options;
    options.anonymize = l.anonymize;
    progress.step("write");
    io::write_dicom_seg(labels, source,
                        io::segments_for_labels(labels, graft::cli::split_names(l.segment_names)),
                        out, options);
    return 0;
  }
  if (!dtype.empty()) image = image.cast(io::dtype_from_name(dtype));
  progress.step("write");
  write_image(image, l);
  return 0;
}

// io::write, with the GeoTIFF choices (COG, compression) when the output is a .tif.
void write_image(const io::Image& image, const graft::cli::CommandLine& l) {
  if (io::format_from_extension(l.out) != io::FileFormat::kGdal) {
    if (l.cog) throw UsageError(l.out + ": --cog needs a .tif output");
    io::write(image, l.out);
    return;
  }
  io::GdalWriteOptions options;
  options.cloud_optimized = l.cog;
  options.compression = l.compress;
  io::write_atomically(
      l.out, [&](const std::string& temporary) { io::write_gdal(image, temporary, options); });
}

int run_stack(const graft::cli::CommandLine& l) {
  io::BandStackOptions options;
  if (!l.reference_band.empty()) options.reference = l.reference_band;
  options.resampling = l.resampling;
  const io::Image stack = io::read_band_stack(l.inputs, options);
  write_image(stack, l);
  std::cout << l.out << ": " << stack.channels() << " bands on a " << stack.geometry().size_xyz[0]
            << " x " << stack.geometry().size_xyz[1] << " grid\n";
  return 0;
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
    if (line.command == "info") return run_info(line.path, line.dataset, line.json);
    if (line.command == "convert") return run_convert(line);
    if (line.command == "stack") return run_stack(line);
    if (line.command == "bench load") return run_bench_load(line.in, line.repeats);
    throw UsageError("unknown command '" + line.command + "'");
  });
}
