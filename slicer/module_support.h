#pragma once

// What every graft Slicer CLI module shares: the progress lines Slicer reads from stdout, the
// return-parameter file, and one way to run and time the module's work.
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace graft::slicer {

// What every module's command line has besides its own parameters: --xml (print the Slicer
// Execution Model description and exit) and --returnparameterfile (where Slicer wants the
// return parameters). Parses; returns the exit status when the process should end (--xml,
// --help, a parse error), nothing when the module should run.
std::optional<int> parse_module_command_line(CLI::App& app, int argc, char** argv, const char* xml,
                                             std::string& return_parameter_file);

// The exit status of a module run without one of its required arguments: 2, with a usage line on
// stderr naming what `missing` says is needed.
int usage_error(const std::string& module, const std::string& missing);

// <filter-progress>fraction</filter-progress>, flushed at once so Slicer's bar moves.
void report_progress(double fraction);

// Writes Slicer's return-parameter file: one "name = value" line per parameter, as Slicer's
// ModuleDescription reads it back. Newlines in values become spaces.
void write_return_parameters(const std::string& path, const std::vector<std::pair<std::string, std::string>>& values);

// Runs `work` between <filter-start> and <filter-end> (with its real elapsed time in
// <filter-time>); an error is printed on stderr as "NAME: error: ..." and gives exit status 1.
int run_module(const std::string& name, const std::string& comment, const std::function<void()>& work);

}  // namespace graft::slicer
