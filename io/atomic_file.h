#pragma once

#include <functional>
#include <string>

namespace graft::io {

// Makes `path` appear complete or not at all: write_to(temporary) writes the content, which is
// then renamed onto `path`. The temporary lies beside the target (so the rename is atomic) as
// .partial-PID-NAME, keeping the extension for writers that choose a format by it. On any failure the temporary is removed and the error propagates,
// so a killed or failed write never leaves a truncated file under the real name.
void write_atomically(const std::string& path, const std::function<void(const std::string& temporary)>& write_to);

void write_text_atomically(const std::string& path, const std::string& text);

// The pieces of write_atomically, for writers that fill a file over a long time (a scene written
// window by window): the temporary beside `path`, and the rename that publishes it (removing the
// temporary and throwing graft::Error when the rename fails).
std::string temporary_path_for(const std::string& path);
void move_into_place(const std::string& temporary, const std::string& path);

// A killed run leaves its temporaries behind; removes those in `folder` whose writing process is
// gone, never another live process's.
void remove_abandoned_temporaries(const std::string& folder);

}  // namespace graft::io
