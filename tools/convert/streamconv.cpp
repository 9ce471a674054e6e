// streamconv: converts a legacy (Xen 4.5 and older) save image or migration
// stream into a v2/v3 stream. A thin front end over converter.h.
#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <xenstream/codecs/open_input.h>
#include <xenstream/libstream/sink.h>
#include <xenstream/libstream/source.h>
#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/verify/verifier.h"
#include "tools/convert/converter.h"

namespace {

using namespace xenstream;
using namespace xenstream::convert;

constexpr int kExitOk = 0;
constexpr int kExitBadStream = 1;
constexpr int kExitUsage = 2;

bool use_syslog = false;

void say(const std::string& prefix, const std::string& msg) {
  std::string text = msg;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = text.find('\n', start);
    std::cerr << "streamconv: " << prefix << text.substr(start, nl - start) << "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  if (use_syslog) {
    syslog(prefix.empty() ? LOG_INFO : LOG_ERR, "%s%s", prefix.c_str(), text.c_str());
  }
}

int exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage:
    case ErrorCode::kIo:
      return kExitUsage;
    default:
      return kExitBadStream;
  }
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Convert a legacy Xen save image or migration stream (Xen 4.5 and older) into a v2/v3\n"
      "stream (libxc image v3, optionally inside a libxl v2 stream). Takes the options of Xen's\n"
      "convert-legacy-stream, so scripts can switch, and adds what it lacks: width and guest\n"
      "type detection, xl headers, Remus checkpointed and compressed streams, every qemu record.\n\n"
      "IN and OUT are paths or - (stdin/stdout); -i/--in and -o/--out also take an open file\n"
      "descriptor number, as Xen's tool does. OUT appears only once it is complete.\n\n"
      "Exit status: 0 converted, 1 the input is not a convertible legacy stream, 2 usage or I/O\n"
      "error (including a stream whose layout cannot be detected: give -w and -g).\n\n"
      "Examples:\n"
      "  streamconv old.save new.save               detect width and type, libxc image out\n"
      "  streamconv -f libxl -x old.xl new.xl       xl save file, ready for xl restore\n"
      "  streamconv -w 64 -g hvm -f libxl --in 0 --out 1     as libxl runs the converter\n",
      "streamconv"};
  cli::add_version_flag(app, "streamconv");
  app.get_formatter()->column_width(30);

  std::string in_pos, out_pos, in_opt, out_opt, width, guest, format = "libxc";
  bool xl = false, skip_qemu = false, verbose = false, quiet = false, syslog_flag = false;
  app.add_option("IN", in_pos, "legacy input: a path, or - for stdin");
  app.add_option("OUT", out_pos, "v2 output: a path, or - for stdout");
  app.add_option("-i,--in", in_opt, "input instead of IN: a path or an open fd number");
  app.add_option("-o,--out", out_opt, "output instead of OUT: a path or an open fd number");
  app.add_option("-w,--width", width, "bitness of the toolstack that saved the stream: 32 or 64 [detected]")
      ->check(CLI::IsMember({"32", "64"}));
  app.add_option("-g,--guest,--guest-type", guest, "guest type: pv or hvm [detected]")
      ->check(CLI::IsMember({"pv", "hvm"}));
  app.add_option("-f,--format", format, "output: libxc (bare libxc image) or libxl (libxl v2 stream)")
      ->check(CLI::IsMember({"libxc", "libxl"}))
      ->default_str("libxc");
  app.add_flag("-x,--xl", xl, "the input starts with an xl save header (detected anyway without -x)");
  app.add_flag("--skip-qemu", skip_qemu, "libxc format: leave the HVM qemu record out");
  app.add_flag("-v,--verbose", verbose, "explain what was detected and summarise the stream (stderr)");
  app.add_flag("-q,--quiet", quiet, "print errors only");
  bool check = false;
  app.add_flag("--syslog", syslog_flag, "also send messages to syslog");
  app.add_flag("--check", check,
               "judge the output with streamverify's rules (the same engine) before OUT appears; "
               "a broken rule is exit 1 and OUT is not written (needs OUT to be a regular file)");

  if (auto rc = cli::parse_command_line(app, argc, argv)) return *rc;
  if (syslog_flag) {
    use_syslog = true;
    openlog("streamconv", LOG_PID, LOG_USER);
  }

  if (!in_opt.empty() && !in_pos.empty() && !out_pos.empty()) {
    say("error: ", "give the input either as IN or with -i, not both");
    return kExitUsage;
  }
  // With -i, a single positional argument is OUT.
  if (!in_opt.empty() && !in_pos.empty() && out_pos.empty()) std::swap(in_pos, out_pos);
  if ((!in_opt.empty() && !in_pos.empty()) || (!out_opt.empty() && !out_pos.empty())) {
    say("error: ", "give IN and OUT either as arguments or with -i/-o, not both");
    return kExitUsage;
  }
  const bool in_fd = !in_opt.empty() && all_digits(in_opt);
  const bool out_fd = !out_opt.empty() && all_digits(out_opt);
  const std::string in_name = in_opt.empty() ? in_pos : in_opt;
  const std::string out_name = out_opt.empty() ? out_pos : out_opt;
  if (in_name.empty() || out_name.empty()) {
    say("error: ", "need an input and an output (IN OUT, or -i and -o); see --help");
    return kExitUsage;
  }

  ConvertOptions opt;
  if (!width.empty()) opt.width = width == "32" ? 4u : 8u;
  if (!guest.empty()) opt.guest = guest == "pv" ? GuestType::kPv : GuestType::kHvm;
  opt.format = format == "libxl" ? OutputFormat::kLibxl : OutputFormat::kLibxc;
  if (xl) opt.xl_header = true;
  opt.skip_qemu = skip_qemu;
  opt.report = [&](Severity s, const std::string& msg) {
    if (s == Severity::kWarning) {
      if (!quiet) say("warning: ", msg);
    } else if (s == Severity::kVerbose) {
      if (verbose) say("", msg);
    } else if (!quiet) {
      say("", msg);
    }
  };

  // Input.
  std::unique_ptr<Source> source;
  std::unique_ptr<FdRandomAccess> reread;
  bool compressed = false;
  {
    Expected<codecs::OpenedInput> opened = make_error(ErrorCode::kUsage, 0, "no input");
    int regular_fd = -1;
    if (in_fd) {
      const int fd = std::stoi(in_opt);
      struct stat st {};
      if (fstat(fd, &st) != 0) {
        say("error: ", "--in " + in_opt + ": not an open file descriptor");
        return kExitUsage;
      }
      if (S_ISREG(st.st_mode)) regular_fd = fd;
      opened = codecs::wrap_input(std::make_unique<FdSource>(fd, "fd " + in_opt));
    } else {
      opened = codecs::open_input(in_name);
    }
    if (!opened) {
      say("error: ", opened.error().message);
      return kExitUsage;
    }
    compressed = opened->compressed;
    source = std::move(opened->source);
    if (!compressed) {
      if (regular_fd >= 0) {
        reread = std::make_unique<FdRandomAccess>(regular_fd);
      } else if (!in_fd && in_name != "-") {
        struct stat st {};
        if (::stat(in_name.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
          auto ra = FdRandomAccess::open(in_name);
          if (ra) reread = std::move(ra).value();
        }
      }
    }
  }
  opt.reread = reread.get();

  // Output.
  Output output;
  if (out_fd) {
    output.sink = std::make_unique<FdSink>(std::stoi(out_opt), "fd " + out_opt);
  } else {
    if (out_name == "-" && isatty(STDOUT_FILENO)) {
      say("error: ", "refusing to write a binary stream to a terminal; redirect stdout");
      return kExitUsage;
    }
    // open_output writes devices and FIFOs in place and regular files atomically.
    auto o = open_output(out_name);
    if (!o) {
      say("error: ", o.error().message);
      return kExitUsage;
    }
    output = std::move(o).value();
  }
  const bool atomic = output.atomic != nullptr;
  if (check && !atomic) {
    say("error: ", "--check needs OUT to be a regular file (the output is read back before it appears)");
    return kExitUsage;
  }

  cli::ProgressLine progress("streamconv", cli::ProgressLine::wanted(quiet));
  if (progress.enabled()) {
    opt.progress = [&progress, total = source->size_hint()](std::uint64_t pos) { progress.update(pos, total); };
  }

  auto result = convert_legacy(*source, *output.sink, opt);
  progress.clear();
  if (!result) {
    const Error& e = result.error();
    say("error: ", e.describe());
    if (!atomic) {
      say("error: ", "the output on " + out_name + " is incomplete: conversion stopped at input offset " +
                         hex(e.offset) + " after " + std::to_string(output.sink->position()) +
                         " octets were written");
    } else if (verbose) {
      say("", "no output file written (" + out_name + " left as it was)");
    }
    return exit_code_for(e.code);
  }
  if (check) {
    if (auto f = output.sink->flush(); !f) {
      say("error: ", f.error().message);
      return kExitUsage;
    }
    verify::VerifyOptions vo;
    const verify::VerifyResult r = verify::verify_path(output.atomic->temp_path(), vo);
    for (const auto& p : r.problems) {
      if (p.severity == verify::Severity::kError || !quiet) say("check: ", p.format());
    }
    if (!r.valid()) {
      say("error: ", "the converted stream breaks the rules above; " + out_name + " left as it was");
      return r.failure ? kExitUsage : 1;
    }
  }
  if (auto c = output.commit(); !c) {
    say("error: ", c.error().message);
    return kExitUsage;
  }
  return kExitOk;
}
