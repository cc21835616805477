// libgraft_io's side of hdf5_file.h: listing in a child process, the dataset choice and the
// printed forms; every call into the HDF5 library goes through the module's entry points
// (hdf5_module.h says why HDF5 is a module).
#include "io/hdf5/hdf5_file.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>

#include "io/error.h"
#include "io/file_bytes.h"
#include "io/hdf5/hdf5_module.h"
#include "io/io_module.h"

namespace graft::io {

namespace hdf5_module {

std::mutex& library_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace hdf5_module

namespace {

using hdf5_module::library_mutex;

const hdf5_module::EntryPoints& hdf5(const std::string& needed_by) {
#ifdef GRAFT_IO_MODULES_LINKED
  (void)needed_by;
  return *graft_io_hdf5_entry_points();
#else
  static IoModule<hdf5_module::EntryPoints> module("libgraft_io_hdf5.so", "graft_io_hdf5_entry_points", hdf5_module::kEntryPointsVersion,
                                              "HDF5");
  return module.entry_points(needed_by);
#endif
}

}  // namespace

bool is_hdf5(const std::string& path) { return has_hdf5_signature(path); }

namespace {

nlohmann::json contents_to_json(const Hdf5Contents& contents) {
  nlohmann::json datasets = nlohmann::json::array();
  for (const auto& d : contents.datasets) {
    datasets.push_back({{"path", d.path}, {"shape", d.shape}, {"dtype", d.dtype}, {"chunks", d.chunks},
                        {"compression", d.compression}, {"attributes", d.attributes}});
  }
  return {{"datasets", datasets}, {"root_attributes", contents.root_attributes}};
}

Hdf5Contents contents_from_json(const nlohmann::json& json) {
  Hdf5Contents contents;
  contents.root_attributes = json.at("root_attributes");
  for (const auto& d : json.at("datasets")) {
    contents.datasets.push_back({d.at("path"), d.at("shape"), d.at("dtype"), d.at("chunks"), d.at("compression"),
                                 d.at("attributes")});
  }
  return contents;
}

bool write_all(int fd, const std::string& bytes) {
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t written = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    done += static_cast<std::size_t>(written);
  }
  return true;
}

// Lists the file in a forked child, which sends back 'R' and the contents as CBOR (attribute
// strings need not be UTF-8), or 'E'/'U' and the message of the Error/UsageError it threw.
// Nothing is returned when the process cannot fork; the caller then walks in this process.
std::optional<Hdf5Contents> list_objects_in_child(const std::string& path,
                                                  const hdf5_module::EntryPoints& entry_points) {
  int pipe_ends[2];
  if (pipe2(pipe_ends, O_CLOEXEC) != 0) return std::nullopt;
  const pid_t child = fork();
  if (child < 0) {
    close(pipe_ends[0]);
    close(pipe_ends[1]);
    return std::nullopt;
  }
  if (child == 0) {
    close(pipe_ends[0]);
    std::string reply;
    try {
      const std::vector<std::uint8_t> cbor = nlohmann::json::to_cbor(contents_to_json(entry_points.list_in_this_process(path)));
      reply = "R" + std::string(cbor.begin(), cbor.end());
    } catch (const UsageError& error) {
      reply = std::string("U") + error.what();
    } catch (const std::exception& error) {
      reply = std::string("E") + error.what();
    }
    // _exit: no atexit handlers or static destructors of the parent's libraries run here.
    _exit(write_all(pipe_ends[1], reply) ? 0 : 1);
  }
  close(pipe_ends[1]);
  std::string reply;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(pipe_ends[0], buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    reply.append(buffer, static_cast<std::size_t>(got));
  }
  close(pipe_ends[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || reply.empty()) {
    const std::string how = WIFSIGNALED(status) ? std::string("signal ") + strsignal(WTERMSIG(status))
                                                : "exit status " + std::to_string(WEXITSTATUS(status));
    throw Error(path + ": the HDF5 library failed while walking the file's groups (" + how +
                "); the file is damaged");
  }
  const std::string message = reply.substr(1);
  if (reply[0] == 'U') throw UsageError(message);
  if (reply[0] == 'E') throw Error(message);
  try {
    return contents_from_json(nlohmann::json::from_cbor(message));
  } catch (const nlohmann::json::exception& error) {
    throw Error(path + ": the listing of the HDF5 file's groups came back malformed (" + error.what() + ")");
  }
}

}  // namespace

Hdf5Contents list_hdf5(const std::string& path, Hdf5Walk walk) {
  const hdf5_module::EntryPoints& entry_points = hdf5(path);
  std::lock_guard<std::mutex> lock(library_mutex());
  if (walk == Hdf5Walk::kInChildProcess) {
    // The module is loaded before the fork, so the child runs no loader.
    if (auto contents = list_objects_in_child(path, entry_points)) return std::move(*contents);
  }
  return entry_points.list_in_this_process(path);
}

nlohmann::json hdf5_info_json(const Hdf5Contents& contents) {
  nlohmann::json out{{"format", "hdf5"}, {"attributes", contents.root_attributes}, {"datasets", nlohmann::json::array()}};
  for (const auto& d : contents.datasets) {
    out["datasets"].push_back({{"path", d.path},
                               {"shape", d.shape},
                               {"dtype", d.dtype},
                               {"chunks", d.chunks},
                               {"compression", d.compression},
                               {"attributes", d.attributes}});
  }
  return out;
}

std::string hdf5_info_text(const Hdf5Contents& contents) {
  std::ostringstream out;
  out << "format       hdf5, " << contents.datasets.size() << " dataset(s)\n";
  for (const auto& d : contents.datasets) {
    out << "  " << d.path << "  " << d.dtype << " [";
    for (std::size_t a = 0; a < d.shape.size(); ++a) out << (a ? " x " : "") << d.shape[a];
    out << "]";
    if (!d.compression.empty()) out << "  " << d.compression;
    if (!d.attributes.empty()) {
      out << "  (";
      bool first = true;
      for (const auto& item : d.attributes.items()) out << (first ? "" : ", ") << item.key(), first = false;
      out << ")";
    }
    out << "\n";
  }
  return out.str();
}

bool hdf5_has_dataset(const std::string& path, const std::string& dataset) {
  return hdf5(path).hdf5_has_dataset(path, dataset);
}

Image read_hdf5(const std::string& path, const std::string& dataset_path) {
  std::string chosen = dataset_path;
  if (chosen.empty()) {
    std::vector<std::string> candidates, all;
    for (const auto& d : list_hdf5(path).datasets) {
      all.push_back(d.path);
      const bool numeric = d.dtype.rfind("int", 0) == 0 || d.dtype.rfind("uint", 0) == 0 || d.dtype.rfind("float", 0) == 0;
      if (numeric && d.shape.size() >= 2 && d.shape.size() <= 4) candidates.push_back(d.path);
    }
    if (candidates.size() != 1) {
      std::string listed;
      for (const auto& name : candidates.empty() ? all : candidates) listed += (listed.empty() ? "" : ", ") + name;
      throw UsageError(path + ": " + std::to_string(candidates.size()) +
                       " image-like datasets; pick one with --dataset (" + listed + ")");
    }
    chosen = candidates.front();
  }
  return hdf5(path).read_hdf5(path, chosen);
}

void write_hdf5(const Image& image, const std::string& path, const std::string& dataset_path) {
  write_hdf5_images(path, {{dataset_path, &image}}, {}, 4);
}

void write_hdf5_images(const std::string& path, const std::vector<std::pair<std::string, const Image*>>& images,
                       const std::map<std::string, std::string>& root_attributes, int gzip_level) {
  hdf5(path).write_hdf5_images(path, images, root_attributes, gzip_level);
}

void write_feature_bag(const std::string& path, const std::vector<float>& features, std::int64_t dim,
                       const std::vector<std::array<std::int64_t, 2>>& coords, const nlohmann::json& coords_attributes) {
  hdf5(path).write_feature_bag(path, features, dim, coords, coords_attributes);
}

}  // namespace graft::io
