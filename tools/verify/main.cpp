// streamverify: would Xen accept this save image or migration stream?
// A thin front end over the xenstream_verify library (verifier.h).
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/verify/report.h"
#include "tools/verify/verifier.h"

namespace {

using namespace xenstream;

constexpr const char* kDescription =
    "Checks a Xen save image or migration stream against the rules Xen's restore path\n"
    "enforces (and stricter ones from the format specs) and reports every problem as\n"
    "'offset <hex>, <record or header>: <what> [RULE-ID]', then a one-line verdict.\n"
    "Rules: spec/verify-rules.md. JSON schema: spec/verify-json.md.\n"
    "\n"
    "The container is detected (xl save header, libvirt header, bare libxl stream,\n"
    "bare libxc image) unless --format says otherwise; zstd input is decoded on the\n"
    "fly. Legacy (pre-Xen 4.6) images are recognised and refused: convert them with\n"
    "streamconv first.\n"
    "\n"
    "The same rules run inside streamrestore (and its migrate receiver) on every record\n"
    "before it is applied: both tools give the same verdict for the same options.\n"
    "\n"
    "Exit status: 0 the stream is valid (warnings allowed), 1 it breaks a rule,\n"
    "2 usage or I/O error.\n";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "streamverify"};
  cli::add_version_flag(app, "streamverify");
  std::string format = "auto";
  bool verbose = false;
  bool json_out = false;
  bool quiet = false;
  std::string input;
  app.add_option("--format,-f", format, "Container/stream format: auto, xl, libvirt, libxl, libxc")
      ->check(CLI::IsMember({"auto", "xl", "libvirt", "libxl", "libxc"}))
      ->capture_default_str();
  std::string mode = "auto";
  bool strict = false;
  app.add_option("--mode", mode,
                 "Which restore to judge for, as Xen: plain (xl restore, migrate-receive), remus "
                 "(migrate-receive -r), colo (-r --colo); auto decides from the stream")
      ->check(CLI::IsMember({"auto", "plain", "remus", "colo"}))
      ->capture_default_str();
  app.add_flag("--strict", strict,
               "Rules Xen's restore path does not enforce (enforcement 'strict' in the rule table: "
               "padding, reserved fields, octets after END...) are errors, not warnings");
  app.add_flag("-v,--verbose", verbose, "Print a summary of the stream's contents");
  app.add_flag("--json", json_out, "Print the result as one JSON document on stdout");
  app.add_flag("-q,--quiet", quiet, "Print nothing; only the exit status tells (with --json: only the document)");
  app.add_option("input", input, "Stream to check, '-' for stdin")->required();
  if (auto rc = cli::parse_command_line(app, argc, argv)) return *rc;

  verify::VerifyOptions options;
  if (format == "xl") options.format = FormatHint::kXl;
  if (format == "libvirt") options.format = FormatHint::kLibvirt;
  if (format == "libxl") options.format = FormatHint::kLibxl;
  if (format == "libxc") options.format = FormatHint::kLibxc;
  options.mode = *verify::parse_mode(mode);
  options.strict = strict;

  cli::ProgressLine progress("streamverify", cli::ProgressLine::wanted(quiet));
  if (progress.enabled()) {
    options.progress = [&progress](std::uint64_t done, std::uint64_t total) { progress.update(done, total); };
    options.progress_interval = 4u << 20;
  }

  verify::VerifyResult r = verify::verify_path(input, options);
  progress.clear();

  if (json_out) {
    std::cout << verify::to_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << '\n';
  } else if (!quiet) {
    for (const auto& p : r.problems) std::cout << p.format() << '\n';
    for (const auto& [rule, n] : r.suppressed) {
      std::cout << "(" << n << " more " << rule << " problems not listed)\n";
    }
    if (verbose) std::cout << verify::format_summary(r.summary);
    std::cout << r.verdict() << '\n';
  }
  if (r.failure && !quiet) std::cerr << "streamverify: " << r.failure->describe() << '\n';
  std::cout.flush();
  return r.exit_status();
}
