// The version every tool reports with --version: the project version and the
// git revision the binary was built from (generated at build time, so a
// rebuild after a commit reports the new revision).
#pragma once

#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace xenstream::cli {

std::string_view project_version();  // "0.1.0"
std::string_view git_revision();     // "5108c78a1b2c", "...-dirty", or "unknown"

// "streamverify (xenstream) 0.1.0, git 5108c78a1b2c"
std::string version_line(std::string_view tool);

// Adds --version to `app` (prints version_line(tool) on stdout, exit 0).
void add_version_flag(CLI::App& app, std::string_view tool);

}  // namespace xenstream::cli
