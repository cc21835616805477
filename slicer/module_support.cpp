#include "slicer/module_support.h"

#include <chrono>
#include <cstdio>
#include <exception>

#include "io/atomic_file.h"

namespace graft::slicer {
namespace {

void report(const char* tag, const std::string& text) {
  std::printf("<%s>%s</%s>\n", tag, text.c_str(), tag);
  std::fflush(stdout);
}

}  // namespace

std::optional<int> parse_module_command_line(CLI::App& app, int argc, char** argv, const char* xml,
                                             std::string& return_parameter_file) {
  bool print_xml = false;
  app.add_flag("--xml", print_xml, "print the Slicer Execution Model description and exit");
  app.add_option("--returnparameterfile", return_parameter_file, "where Slicer reads the return parameters");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (print_xml) {
    std::fputs(xml, stdout);
    return 0;
  }
  return std::nullopt;
}

int usage_error(const std::string& module, const std::string& missing) {
  std::fprintf(stderr, "%s: usage error: needs %s\n", module.c_str(), missing.c_str());
  return 2;
}

void report_progress(double fraction) { report("filter-progress", std::to_string(fraction)); }

void write_return_parameters(const std::string& path, const std::vector<std::pair<std::string, std::string>>& values) {
  std::string text;
  for (const auto& [name, value] : values) {
    std::string one_line = value;
    for (char& c : one_line) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    text += name + " = " + one_line + "\n";
  }
  io::write_text_atomically(path, text);
}

int run_module(const std::string& name, const std::string& comment, const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  report("filter-start", "<filter-name>" + name + "</filter-name><filter-comment>" + comment + "</filter-comment>");
  try {
    work();
  } catch (const std::exception& e) {
    const std::string message = e.what();
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(), message.substr(0, message.find('\n')).c_str());
    return 1;
  }
  report_progress(1.0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report("filter-end", "<filter-name>" + name + "</filter-name><filter-time>" + std::to_string(seconds) + "</filter-time>");
  return 0;
}

}  // namespace graft::slicer
