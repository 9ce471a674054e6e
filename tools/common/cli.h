// What every command-line tool does the same way: --version (the project
// version and the git revision the binary was built from, generated at build
// time so that a rebuild after a commit reports the new revision), and the
// exit status of a command line that does not parse.
#pragma once

#include <optional>
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

// Parses the command line. Returns nothing when the tool should go on, else
// the exit status to return now: 0 after --help or --version (printed on
// stdout), 2 (usage) after printing what is wrong with the command line.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace xenstream::cli
