#include "io/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/error.h"

namespace graft::io {
namespace {

constexpr const char kTemporaryPrefix[] = ".partial-";

}  // namespace

std::string temporary_path_for(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return folder + kTemporaryPrefix + std::to_string(getpid()) + "-" + name;
}

void move_into_place(const std::string& temporary, const std::string& path) {
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    std::remove(temporary.c_str());
    throw Error(path + ": cannot move the finished file into place (" + std::strerror(rename_errno) + ")");
  }
}

void write_atomically(const std::string& path, const std::function<void(const std::string& temporary)>& write_to) {
  const std::string temporary = temporary_path_for(path);
  try {
    write_to(temporary);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  move_into_place(temporary, path);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    if (!out) throw Error(path + ": cannot open for writing");
    out << text;
    out.close();
    if (!out) throw Error(path + ": write failed (disk full?)");
  });
}

void remove_abandoned_temporaries(const std::string& folder) {
  namespace fs = std::filesystem;
  const std::size_t prefix_length = sizeof(kTemporaryPrefix) - 1;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kTemporaryPrefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix_length, nullptr, 10);
    if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(entry.path());
  }
}

}  // namespace graft::io
