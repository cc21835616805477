#pragma once

// HDF5 (and NetCDF-4, which is HDF5) through the HDF5 C API: every dataset listed with its
// shape, type, chunking, compression and attributes; any numeric dataset of rank 1 to 4 read into
// an Image; images written back chunked and compressed.
#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/image.h"

namespace graft::io {

// True when the file starts with HDF5's signature (or HDF5 finds one after a user block).
bool is_hdf5(const std::string& path);

struct Hdf5DatasetInfo {
  std::string path;                  // "/group/name"
  std::vector<std::int64_t> shape;   // slowest axis first, as h5py reports it
  std::string dtype;                 // numpy's name: "int16", "float32", "|S8" (fixed string), "str", ...
  std::vector<std::int64_t> chunks;  // empty when contiguous
  std::string compression;           // "gzip", "szip", "lzf", ... or ""
  nlohmann::json attributes;         // name -> value (numbers, strings, lists of them)
};

// Every dataset in the file, depth first in name order, plus the root group's attributes.
struct Hdf5Contents {
  std::vector<Hdf5DatasetInfo> datasets;
  nlohmann::json root_attributes;
};
// Where the walk over a file's groups runs. The HDF5 library (1.10) can crash on a damaged file
// while it walks the groups' link storage, so a file from elsewhere is walked in a child process
// and a crash there becomes an Error naming the file. A file graft wrote itself (the
// preprocessed cache, read every epoch) is walked in this process: a fork of a large training
// process costs far more than the walk.
enum class Hdf5Walk { kInChildProcess, kInThisProcess };
Hdf5Contents list_hdf5(const std::string& path, Hdf5Walk walk = Hdf5Walk::kInChildProcess);

// {"format": "hdf5", "attributes": {...}, "datasets": [{"path", "shape", "dtype", "chunks",
// "compression", "attributes"}, ...]}
nlohmann::json hdf5_info_json(const Hdf5Contents& contents);
std::string hdf5_info_text(const Hdf5Contents& contents);

// True when `dataset` ("/coords") names a dataset of the file; errors name an unreadable file.
bool hdf5_has_dataset(const std::string& path, const std::string& dataset);

// Reads a numeric dataset: rank 1 (x), 2 (y, x), 3 (z, y, x) or 4 (channel, z, y, x), values as
// stored (no CF scale_factor). Spacing and origin come from the dataset's `spacing` or
// `element_size_um` and `origin` attributes (slowest axis first), units from `units`, nodata from
// `_FillValue`. An empty `dataset` picks the file's only numeric dataset of rank 2 or more, and
// otherwise throws an error that lists them. Errors name the file and the dataset.
Image read_hdf5(const std::string& path, const std::string& dataset);

// Writes `image` as dataset `dataset` (default "/image") of a new file: shape (c,) z, y, x,
// chunked by plane, gzip level 4, with `spacing` and `origin` attributes (slowest axis first) and
// `direction` (row-major x, y, z).
void write_hdf5(const Image& image, const std::string& path, const std::string& dataset = "/image");

// Several images as datasets of one new file, each laid out as write_hdf5 does, deflated at
// `gzip_level` (0: stored, for caches read every run), with string attributes on the root group.
// Written to a temporary beside `path` and moved into place, as write_hdf5's file is.
void write_hdf5_images(const std::string& path, const std::vector<std::pair<std::string, const Image*>>& images,
                       const std::map<std::string, std::string>& root_attributes, int gzip_level);

// One slide's features in the layout CLAM and UNI's users read: `features` [N, D] float32 and
// `coords` [N, 2] int64 (level-0 x, y of each patch), both chunked and gzip-compressed, with
// `coords_attributes` (numbers and strings: patch_size, patch_level, ...) on `coords`. Written to
// a temporary beside `path` and moved into place, so a killed run leaves no half file.
void write_feature_bag(const std::string& path, const std::vector<float>& features, std::int64_t dim,
                       const std::vector<std::array<std::int64_t, 2>>& coords, const nlohmann::json& coords_attributes);

}  // namespace graft::io
