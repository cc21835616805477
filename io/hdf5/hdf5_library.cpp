#include "io/hdf5/hdf5_file.h"
#include "io/hdf5/hdf5_module.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "io/atomic_file.h"
#include "io/error.h"
#include "io/file_bytes.h"

namespace graft::io::hdf5_module {
namespace {

void silence_library_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// The innermost message on HDF5's error stack ("unable to open file", ...).
std::string library_reason() {
  std::string reason;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD,
           [](unsigned, const H5E_error2_t* error, void* data) -> herr_t {
             auto* text = static_cast<std::string*>(data);
             if (text->empty() && error->desc) *text = error->desc;
             return 0;
           },
           &reason);
  return reason.empty() ? "HDF5 gave no reason" : reason;
}

// Closes an HDF5 identifier with the close function of its kind.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

Handle open_file(const std::string& path) {
  silence_library_errors();
  if (!std::ifstream(path)) throw Error(path + ": cannot open");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw Error(path + ": not a readable HDF5 file (" + library_reason() + ")");
  return file;
}

std::string type_name(hid_t type) {
  const std::size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(8 * size);
    case H5T_FLOAT:
      return "float" + std::to_string(8 * size);
    case H5T_STRING:
      return H5Tis_variable_str(type) > 0 ? "str" : "|S" + std::to_string(size);
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    default:
      return "other";
  }
}

std::vector<std::int64_t> shape_of(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(std::max(rank, 0));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

// Strings of a string-typed attribute, fixed or variable length.
std::vector<std::string> read_strings(hid_t attribute, hid_t type, std::size_t count) {
  std::vector<std::string> out;
  if (H5Tis_variable_str(type) > 0) {
    std::vector<char*> pointers(count, nullptr);
    Handle memory(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory.get(), H5T_VARIABLE);
    H5Tset_cset(memory.get(), H5Tget_cset(type));
    if (H5Aread(attribute, memory.get(), pointers.data()) < 0) return {};
    for (char* text : pointers) {
      out.emplace_back(text ? text : "");
      H5free_memory(text);
    }
    return out;
  }
  const std::size_t size = H5Tget_size(type);
  std::vector<char> buffer(count * size);
  Handle memory(H5Tcopy(type), H5Tclose);
  if (H5Aread(attribute, memory.get(), buffer.data()) < 0) return {};
  for (std::size_t i = 0; i < count; ++i) {
    std::string text(buffer.data() + i * size, size);
    text.erase(std::find(text.begin(), text.end(), '\0'), text.end());
    out.push_back(text);
  }
  return out;
}

nlohmann::json read_attribute(hid_t attribute) {
  Handle type(H5Aget_type(attribute), H5Tclose);
  Handle space(H5Aget_space(attribute), H5Sclose);
  const auto count = static_cast<std::size_t>(std::max<hssize_t>(0, H5Sget_simple_extent_npoints(space.get())));
  const bool scalar = H5Sget_simple_extent_ndims(space.get()) == 0;
  nlohmann::json values = nlohmann::json::array();
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER:
      if (H5Tget_sign(type.get()) == H5T_SGN_NONE) {
        std::vector<std::uint64_t> numbers(count);
        if (H5Aread(attribute, H5T_NATIVE_UINT64, numbers.data()) >= 0) values = numbers;
      } else {
        std::vector<std::int64_t> numbers(count);
        if (H5Aread(attribute, H5T_NATIVE_INT64, numbers.data()) >= 0) values = numbers;
      }
      break;
    case H5T_FLOAT: {
      std::vector<double> numbers(count);
      if (H5Aread(attribute, H5T_NATIVE_DOUBLE, numbers.data()) >= 0) {
        for (double number : numbers) values.push_back(std::isnan(number) ? nlohmann::json("nan") : nlohmann::json(number));
      }
      break;
    }
    case H5T_STRING:
      values = read_strings(attribute, type.get(), count);
      break;
    default:
      return nullptr;  // compound, enum, reference: listed by name only
  }
  if (scalar && values.size() == 1) return values[0];
  return values;
}

nlohmann::json attributes_of(hid_t object) {
  nlohmann::json attributes = nlohmann::json::object();
  H5O_info_t info;
  if (H5Oget_info(object, &info) < 0) return attributes;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    // Native order, as in list_in_this_process: the attributes come out sorted as JSON keys.
    Handle attribute(H5Aopen_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_NATIVE, i, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attribute.ok()) continue;
    const ssize_t length = H5Aget_name(attribute.get(), 0, nullptr);
    std::string name(static_cast<std::size_t>(std::max<ssize_t>(length, 0)), '\0');
    H5Aget_name(attribute.get(), name.size() + 1, name.data());
    attributes[name] = read_attribute(attribute.get());
  }
  return attributes;
}

Hdf5DatasetInfo describe_dataset(hid_t dataset, const std::string& path) {
  Hdf5DatasetInfo info;
  info.path = path;
  Handle type(H5Dget_type(dataset), H5Tclose);
  Handle space(H5Dget_space(dataset), H5Sclose);
  info.shape = shape_of(space.get());
  info.dtype = type_name(type.get());
  Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  if (H5Pget_layout(plist.get()) == H5D_CHUNKED) {
    std::vector<hsize_t> chunks(info.shape.size());
    H5Pget_chunk(plist.get(), static_cast<int>(chunks.size()), chunks.data());
    info.chunks.assign(chunks.begin(), chunks.end());
  }
  const int filters = H5Pget_nfilters(plist.get());
  for (int f = 0; f < filters; ++f) {
    unsigned flags = 0, config = 0;
    std::size_t values = 0;
    char name[64] = {};
    const H5Z_filter_t filter = H5Pget_filter2(plist.get(), f, &flags, &values, nullptr, sizeof(name), name, &config);
    if (filter == H5Z_FILTER_DEFLATE) info.compression = "gzip";
    else if (filter == H5Z_FILTER_SZIP) info.compression = "szip";
    else if (filter == 32000) info.compression = "lzf";
    else if (filter != H5Z_FILTER_SHUFFLE && filter != H5Z_FILTER_FLETCHER32 && info.compression.empty())
      info.compression = name[0] ? name : "filter " + std::to_string(filter);
  }
  info.attributes = attributes_of(dataset);
  return info;
}

// Numeric dataset types graft reads, and the DType they land in. 64-bit integers become f64
// (values beyond 2^53 are refused when read).
std::optional<DType> image_dtype(hid_t type) {
  const std::size_t size = H5Tget_size(type);
  const bool is_unsigned = H5Tget_sign(type) == H5T_SGN_NONE;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      if (size == 1) return is_unsigned ? DType::kU8 : DType::kI8;
      if (size == 2) return is_unsigned ? DType::kU16 : DType::kI16;
      if (size == 4) return is_unsigned ? DType::kU32 : DType::kI32;
      if (size == 8) return DType::kF64;
      return std::nullopt;
    case H5T_FLOAT:
      if (size == 4) return DType::kF32;
      if (size == 8) return DType::kF64;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

hid_t native_type(DType dtype) {
  switch (dtype) {
    case DType::kU8: return H5T_NATIVE_UINT8;
    case DType::kI8: return H5T_NATIVE_INT8;
    case DType::kU16: return H5T_NATIVE_UINT16;
    case DType::kI16: return H5T_NATIVE_INT16;
    case DType::kU32: return H5T_NATIVE_UINT32;
    case DType::kI32: return H5T_NATIVE_INT32;
    case DType::kF32: return H5T_NATIVE_FLOAT;
    case DType::kF64: return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_DOUBLE;
}

// A per-axis attribute (slowest axis first) as x, y, z values for the image's last three axes.
std::optional<Vec3> axis_values(const nlohmann::json& attributes, const std::vector<std::string>& names,
                                std::size_t spatial_rank) {
  for (const auto& name : names) {
    if (!attributes.contains(name)) continue;
    const auto& value = attributes[name];
    std::vector<double> numbers;
    if (value.is_number()) numbers.assign(spatial_rank, value.get<double>());
    if (value.is_array()) {
      for (const auto& v : value) {
        if (v.is_number()) numbers.push_back(v.get<double>());
      }
    }
    if (numbers.size() < spatial_rank) continue;
    numbers.erase(numbers.begin(), numbers.end() - static_cast<std::ptrdiff_t>(spatial_rank));  // drop a channel axis
    Vec3 xyz{0.0, 0.0, 0.0};
    for (std::size_t a = 0; a < spatial_rank; ++a) xyz[a] = numbers[spatial_rank - 1 - a];
    return xyz;
  }
  return std::nullopt;
}

}  // namespace

Hdf5Contents list_in_this_process(const std::string& path) {
  const Handle file = open_file(path);
  Hdf5Contents contents;
  contents.root_attributes = attributes_of(file.get());
  struct Visit {
    hid_t file;
    std::vector<Hdf5DatasetInfo>* datasets;
  } visit{file.get(), &contents.datasets};
  // Native order: an ordered walk makes HDF5 1.10 build a table of every link first, and a
  // damaged link heap or name index then frees (or sorts) table entries it never filled; the
  // walk in storage order reports the damage instead, and the datasets are sorted here.
  const herr_t status = H5Lvisit(
      file.get(), H5_INDEX_NAME, H5_ITER_NATIVE,
      [](hid_t group, const char* name, const H5L_info_t* link, void* data) -> herr_t {
        if (link->type != H5L_TYPE_HARD) return 0;
        auto* v = static_cast<Visit*>(data);
        Handle object(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
        if (object.ok() && H5Iget_type(object.get()) == H5I_DATASET) {
          v->datasets->push_back(describe_dataset(object.get(), std::string("/") + name));
        }
        return 0;
      },
      &visit);
  if (status < 0) throw Error(path + ": cannot list the HDF5 file's objects (" + library_reason() + ")");
  // Depth first in name order: group by group, as h5py's visit lists them.
  auto components = [](const std::string& name) {
    std::vector<std::string> parts;
    for (std::size_t start = 1; start <= name.size();) {
      const std::size_t slash = std::min(name.find('/', start), name.size());
      parts.push_back(name.substr(start, slash - start));
      start = slash + 1;
    }
    return parts;
  };
  std::sort(contents.datasets.begin(), contents.datasets.end(),
            [&](const Hdf5DatasetInfo& a, const Hdf5DatasetInfo& b) { return components(a.path) < components(b.path); });
  return contents;
}

bool hdf5_has_dataset(const std::string& path, const std::string& dataset) {
  const std::string dataset_path = dataset.rfind('/', 0) == 0 ? dataset : "/" + dataset;
  std::lock_guard<std::mutex> lock(library_mutex());
  const Handle file = open_file(path);
  // H5Lexists fails on a missing intermediate group instead of saying no; H5Oexists_by_name
  // would too, so each level is checked in turn.
  std::size_t start = 1;
  while (start <= dataset_path.size()) {
    const std::size_t slash = dataset_path.find('/', start);
    if (H5Lexists(file.get(), dataset_path.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  H5O_info_t info;
  if (H5Oget_info_by_name(file.get(), dataset_path.c_str(), &info, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_DATASET;
}

Image read_hdf5(const std::string& path, const std::string& chosen) {
  std::lock_guard<std::mutex> lock(library_mutex());
  const Handle file = open_file(path);
  const std::string where = path + ": dataset " + chosen;
  Handle dataset(H5Dopen2(file.get(), chosen.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.ok()) throw Error(where + " does not exist (" + library_reason() + ")");
  const Hdf5DatasetInfo info = describe_dataset(dataset.get(), chosen);
  Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const std::optional<DType> dtype = image_dtype(type.get());
  if (!dtype) throw Error(where + ": type " + info.dtype + " is not a numeric image type");
  const std::size_t rank = info.shape.size();
  if (rank < 1 || rank > 4) throw Error(where + ": rank " + std::to_string(rank) + " (graft reads 1 to 4 axes)");

  Geometry geometry;
  const std::size_t spatial_rank = std::min<std::size_t>(rank, 3);
  for (std::size_t a = 0; a < spatial_rank; ++a) geometry.size_xyz[a] = info.shape[rank - 1 - a];
  const std::int64_t channels = rank == 4 ? info.shape[0] : 1;
  if (const auto spacing = axis_values(info.attributes, {"spacing", "element_size_um"}, spatial_rank)) {
    for (std::size_t a = 0; a < spatial_rank; ++a) geometry.spacing_xyz[a] = (*spacing)[a];
  }
  if (const auto origin = axis_values(info.attributes, {"origin"}, spatial_rank)) geometry.origin_world = *origin;
  if (info.attributes.contains("direction") && info.attributes["direction"].is_array() &&
      info.attributes["direction"].size() == 9) {
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) geometry.direction[r][c] = info.attributes["direction"][3 * r + c].get<double>();
  }
  Image image = Image::uninitialized(*dtype, channels, geometry);
  const bool wide_integer = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 8;
  if (H5Dread(dataset.get(), native_type(*dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, image.bytes()) < 0) {
    throw Error(where + ": pixels unreadable (" + library_reason() + ")");
  }
  if (wide_integer) {
    // Read through double, which holds integers exactly up to 2^53.
    const double* values = image.data<double>();
    for (std::int64_t i = 0; i < image.element_count(); ++i) {
      if (std::abs(values[i]) > 9007199254740992.0) {
        throw Error(where + ": 64-bit integer at element " + std::to_string(i) + " is beyond 2^53, which graft cannot hold exactly");
      }
    }
  }
  if (info.attributes.contains("units") && info.attributes["units"].is_string()) {
    image.metadata().units = info.attributes["units"];
  }
  if (info.attributes.contains("_FillValue") && info.attributes["_FillValue"].is_number()) {
    image.metadata().nodata.assign(channels, info.attributes["_FillValue"].get<double>());
  }
  image.metadata().source_format = "hdf5";
  return image;
}

namespace {

// One image as a dataset of an open file: shape (c,) z, y, x, chunked by plane, shuffled and
// deflated at `gzip_level` (0: stored), with spacing, origin and direction attributes.
void write_image_dataset(hid_t file, const std::string& path, const std::string& dataset_path, const Image& image,
                         int gzip_level) {
  const auto& size = image.geometry().size_xyz;
  std::vector<hsize_t> shape;
  if (image.channels() > 1) shape.push_back(image.channels());
  shape.insert(shape.end(), {static_cast<hsize_t>(size[2]), static_cast<hsize_t>(size[1]), static_cast<hsize_t>(size[0])});
  std::vector<hsize_t> chunks(shape.size(), 1);
  chunks[chunks.size() - 1] = shape.back();
  chunks[chunks.size() - 2] = shape[shape.size() - 2];  // one plane per chunk
  Handle space(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), H5Sclose);
  Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(plist.get(), static_cast<int>(chunks.size()), chunks.data());
  if (gzip_level > 0) {
    H5Pset_shuffle(plist.get());
    H5Pset_deflate(plist.get(), static_cast<unsigned>(gzip_level));
  }
  Handle links(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(links.get(), 1);
  const hid_t type = native_type(image.dtype());
  Handle dataset(H5Dcreate2(file, dataset_path.c_str(), type, space.get(), links.get(), plist.get(), H5P_DEFAULT),
                 H5Dclose);
  if (!dataset.ok()) throw Error(path + ": cannot create dataset " + dataset_path + " (" + library_reason() + ")");
  if (H5Dwrite(dataset.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, image.bytes()) < 0) {
    throw Error(path + ": cannot write dataset " + dataset_path + " (" + library_reason() + ")");
  }
  auto write_doubles = [&](const char* name, const std::vector<double>& values) {
    const hsize_t count = values.size();
    Handle attribute_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
    Handle attribute(H5Acreate2(dataset.get(), name, H5T_IEEE_F64LE, attribute_space.get(), H5P_DEFAULT, H5P_DEFAULT),
                     H5Aclose);
    if (!attribute.ok() || H5Awrite(attribute.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
      throw Error(path + ": cannot write attribute " + name + " (" + library_reason() + ")");
    }
  };
  const Geometry& g = image.geometry();
  write_doubles("spacing", {g.spacing_xyz[2], g.spacing_xyz[1], g.spacing_xyz[0]});
  write_doubles("origin", {g.origin_world[2], g.origin_world[1], g.origin_world[0]});
  std::vector<double> direction;
  for (const auto& row : g.direction) direction.insert(direction.end(), row.begin(), row.end());
  write_doubles("direction", direction);
}

void write_string_attribute(hid_t object, const std::string& path, const std::string& name, const std::string& text) {
  Handle scalar(H5Screate(H5S_SCALAR), H5Sclose);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(1, text.size()));
  Handle attribute(H5Acreate2(object, name.c_str(), type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attribute.ok() || H5Awrite(attribute.get(), type.get(), text.c_str()) < 0) {
    throw Error(path + ": cannot write attribute " + name + " (" + library_reason() + ")");
  }
}

}  // namespace

void write_hdf5_images(const std::string& path, const std::vector<std::pair<std::string, const Image*>>& images,
                       const std::map<std::string, std::string>& root_attributes, int gzip_level) {
  write_atomically(path, [&](const std::string& temporary) {
    std::lock_guard<std::mutex> lock(library_mutex());
    silence_library_errors();
    Handle file(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file.ok()) throw Error(path + ": cannot create (" + library_reason() + ")");
    for (const auto& [dataset_path, image] : images) write_image_dataset(file.get(), path, dataset_path, *image, gzip_level);
    for (const auto& [name, text] : root_attributes) write_string_attribute(file.get(), path, name, text);
  });
}

void write_feature_bag(const std::string& path, const std::vector<float>& features, std::int64_t dim,
                       const std::vector<std::array<std::int64_t, 2>>& coords, const nlohmann::json& coords_attributes) {
  const auto count = static_cast<hsize_t>(coords.size());
  if (dim < 1 || features.size() != count * static_cast<std::size_t>(dim)) {
    throw Error(path + ": " + std::to_string(features.size()) + " feature values for " + std::to_string(count) +
                " patches of dimension " + std::to_string(dim));
  }
  write_atomically(path, [&](const std::string& temporary) {
    std::lock_guard<std::mutex> lock(library_mutex());
    silence_library_errors();
    Handle file(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!file.ok()) throw Error(path + ": cannot create (" + library_reason() + ")");
    auto write_matrix = [&](const char* name, hid_t file_type, hid_t memory_type, const void* data, hsize_t columns) {
      const hsize_t shape[2] = {count, columns};
      const hsize_t chunk[2] = {std::max<hsize_t>(1, std::min<hsize_t>(count, 1024)), columns};
      Handle space(H5Screate_simple(2, shape, nullptr), H5Sclose);
      Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
      if (count > 0) {
        H5Pset_chunk(plist.get(), 2, chunk);
        H5Pset_deflate(plist.get(), 4);
      }
      Handle dataset(H5Dcreate2(file.get(), name, file_type, space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT),
                     H5Dclose);
      if (!dataset.ok() || (count > 0 && H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)) {
        throw Error(path + ": cannot write dataset " + name + " (" + library_reason() + ")");
      }
      return dataset;
    };
    write_matrix("features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, features.data(), static_cast<hsize_t>(dim));
    const Handle coords_set = write_matrix("coords", H5T_STD_I64LE, H5T_NATIVE_INT64, coords.data(), 2);
    for (const auto& item : coords_attributes.items()) {
      Handle scalar(H5Screate(H5S_SCALAR), H5Sclose);
      const std::string name = item.key();
      if (item.value().is_string()) {
        write_string_attribute(coords_set.get(), path, name, item.value());
      } else if (item.value().is_number_integer()) {
        const std::int64_t value = item.value();
        Handle attribute(H5Acreate2(coords_set.get(), name.c_str(), H5T_STD_I64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
                         H5Aclose);
        if (!attribute.ok() || H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value) < 0) {
          throw Error(path + ": cannot write attribute " + name);
        }
      } else if (item.value().is_number()) {
        const double value = item.value();
        Handle attribute(H5Acreate2(coords_set.get(), name.c_str(), H5T_IEEE_F64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
                         H5Aclose);
        if (!attribute.ok() || H5Awrite(attribute.get(), H5T_NATIVE_DOUBLE, &value) < 0) {
          throw Error(path + ": cannot write attribute " + name);
        }
      }
    }
  });
}

}  // namespace graft::io::hdf5_module

extern "C" GRAFT_IO_MODULE_EXPORT const graft::io::hdf5_module::EntryPoints* graft_io_hdf5_entry_points() {
  namespace module = graft::io::hdf5_module;
  static const module::EntryPoints entry_points{
      module::kEntryPointsVersion, &module::list_in_this_process, &module::hdf5_has_dataset,
      &module::read_hdf5,          &module::write_hdf5_images,    &module::write_feature_bag,
  };
  return &entry_points;
}
