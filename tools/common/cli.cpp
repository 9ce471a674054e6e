#include "tools/common/cli.h"

#include <CLI/CLI.hpp>

#include "tools/common/version_data.h"  // generated: kProjectVersion, kGitRevision

namespace xenstream::cli {

std::string_view project_version() { return kProjectVersion; }
std::string_view git_revision() { return kGitRevision; }

std::string version_line(std::string_view tool) {
  std::string s(tool);
  s += " (xenstream) ";
  s += project_version();
  s += ", git ";
  s += git_revision();
  return s;
}

void add_version_flag(CLI::App& app, std::string_view tool) {
  app.set_version_flag("--version", version_line(tool), "Print the version and the git revision, then exit");
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports --help and --version as "errors" whose exit code is 0.
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace xenstream::cli
