// streamsave: packs restored domain directories back into a v2 stream.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include <xenstream/libstream/sink.h>
#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/save/save.h"

using namespace xenstream;

namespace {
const char* layout_name(save::Layout l) {
  switch (l) {
    case save::Layout::kXl: return "xl";
    case save::Layout::kLibvirt: return "libvirt";
    case save::Layout::kLibxl: return "libxl";
    case save::Layout::kLibxc: return "libxc";
    default: return "auto";
  }
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Pack a restored domain directory (streamrestore's layout) back into a Xen v2 migration\n"
      "stream: by default an `xl save` image carrying the domain config when DIR holds one, else\n"
      "a libxl stream. Pages come straight from memory.raw; pfns never populated are not sent.\n\n"
      "Examples:\n"
      "  streamsave DIR -o domain.save                 image for `xl restore`\n"
      "  streamsave DIR --zstd | ssh HOST streamrestore - --out DIR2\n"
      "  streamsave DIR0 DIR1 DIR2 --checkpointed -o remus.xen   Remus-style checkpoints\n\n"
      "Exit status: 0 written, 2 usage or I/O error (DIR unreadable, output failed).",
      "streamsave"};
  cli::add_version_flag(app, "streamsave");
  std::vector<std::string> dirs;
  std::string out = "-";
  bool libxc = false, libxl = false, xl = false, zstd = false, checkpointed = false, json = false, quiet = false;
  int level = 3;
  std::uint32_t batch = 1024;
  app.add_option("DIR", dirs, "restored domain directory (several with --checkpointed)")->required();
  app.add_option("-o,--output", out, "output file (written atomically), or - for stdout [default -]");
  auto* o1 = app.add_flag("--libxc", libxc, "write a bare libxc image (no libxl layer, no emulator records)");
  auto* o2 = app.add_flag("--libxl", libxl, "write a libxl stream without the xl header");
  auto* o3 = app.add_flag("--xl", xl, "write an xl save image (xl header with the config, {} if DIR holds none, + libxl stream)");
  o1->excludes(o2)->excludes(o3);
  o2->excludes(o3);
  app.add_flag("--zstd", zstd, "compress the output as one zstd frame (streamrestore detects it)");
  app.add_option("--zstd-level", level, "zstd level [default 3]");
  app.add_option("-b,--batch", batch, "pfns per PAGE_DATA record [default 1024, as Xen]");
  app.add_flag("--checkpointed", checkpointed,
               "Remus-style stream: first DIR in full, then per further DIR only what changed, each "
               "ending with CHECKPOINT (and CHECKPOINT_END); no END record");
  app.add_flag("--json", json, "print a one-line JSON summary on stderr");
  app.add_flag("-q,--quiet", quiet, "no progress line");
  if (auto rc = cli::parse_command_line(app, argc, argv)) return *rc;
  if (!checkpointed && dirs.size() != 1) {
    std::cerr << "streamsave: error: several directories need --checkpointed\n";
    return 2;
  }
  if (out == "-" && isatty(STDOUT_FILENO)) {
    std::cerr << "streamsave: error: refusing to write a stream to a terminal (use -o FILE or a pipe)\n";
    return 2;
  }
  save::SaveOptions opts;
  opts.layout = libxc ? save::Layout::kLibxc : libxl ? save::Layout::kLibxl : xl ? save::Layout::kXl
                                                                                : save::Layout::kAuto;
  opts.batch = batch;
  cli::ProgressLine progress("streamsave", cli::ProgressLine::wanted(quiet));
  if (progress.enabled()) {
    opts.progress = [&progress](std::uint64_t pages, std::uint64_t bytes) {
      progress.update(bytes, 0, std::to_string(pages) + " pages");
    };
  }
  auto output = open_output(out);
  if (!output) {
    std::cerr << "streamsave: error: " << output.error().message << "\n";
    return 2;
  }
  Expected<save::SaveSummary> sum = make_error(ErrorCode::kUsage, 0, "not run");
  if (zstd) {
    codecs::ZstdSink z(*output->sink, level);
    sum = checkpointed ? save::save_checkpointed(dirs, z, opts) : save::save_directory(dirs[0], z, opts);
  } else {
    sum = checkpointed ? save::save_checkpointed(dirs, *output->sink, opts)
                       : save::save_directory(dirs[0], *output->sink, opts);
  }
  progress.clear();
  if (sum) {
    if (auto c = output->commit(); !c) sum = std::move(c).error();
  }
  if (!sum) {
    std::cerr << "streamsave: error: " << sum.error().message << "\n";
    return 2;
  }
  if (json) {
    std::fprintf(stderr,
                 "{\"bytes\":%llu,\"pages\":%llu,\"page_data_records\":%llu,\"checkpoints\":%u,"
                 "\"layout\":\"%s\",\"payload\":\"%s\",\"zstd\":%s}\n",
                 static_cast<unsigned long long>(sum->bytes), static_cast<unsigned long long>(sum->pages),
                 static_cast<unsigned long long>(sum->records), sum->checkpoints, layout_name(sum->layout), sum->libxl ? "libxl" : "libxc",
                 zstd ? "true" : "false");
  }
  return 0;
}
