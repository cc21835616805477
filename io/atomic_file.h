#pragma once

#include <functional>
#include <string>

namespace graft::io {

// Where a file is written before it is renamed into place: beside the target (so rename is
// atomic) as .partial-PID-NAME, keeping the extension for writers that choose a format by it.
// Batch runs recognise and remove these when their writer is gone.
std::string temporary_path_for(const std::string& path);

// Makes `path` appear complete or not at all: write_to(temporary) writes the content, which is
// then renamed onto `path`. On any failure the temporary is removed and the error propagates,
// so a killed or failed write never leaves a truncated file under the real name.
void write_atomically(const std::string& path, const std::function<void(const std::string& temporary)>& write_to);

void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace graft::io
