// streamgen: writes a synthetic, valid Xen migration stream (see synth.h).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/gen/synth.h"

namespace {

using namespace xenstream;
using namespace xenstream::gen;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

// "4096", "64K", "256M", "1G", "1GiB", "2T": binary multiples, whole pages.
std::optional<std::uint64_t> parse_size(const std::string& text) {
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > (UINT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() == 3 && unit.substr(1) == "IB") unit.resize(1);
  if (unit == "B") unit.clear();
  static const std::map<std::string, unsigned> kShift = {{"", 0}, {"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}};
  const auto it = kShift.find(unit);
  if (it == kShift.end()) return std::nullopt;
  if (it->second > 0 && n > (UINT64_MAX >> it->second)) return std::nullopt;
  return n << it->second;
}

std::string human(std::uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  } else if (bytes >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1ull << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Write a synthetic but valid Xen migration stream (libxc image v2/v3, libxl stream v2),\n"
      "optionally inside an `xl save` or libvirt header, laid out the way Xen's saver writes\n"
      "it. Page contents are pseudo-random but reproducible from --seed.\n\n"
      "Examples:\n"
      "  streamgen sample.xen                       HVM guest, 4 MiB, libxl v2 stream + libxc v3\n"
      "  streamgen --container xl --emulator-context hvm.save\n"
      "  streamgen --guest pv --layer libxc --stream-version 2 pv.libxc\n"
      "  streamgen --checkpoints 3 --dirty-pages 32 remus.xen\n"
      "  streamgen --size 1G --zstd big.xen.zst\n"
      "  streamgen --pages 64 - | xxd | head          (OUT = - writes to stdout)\n",
      "streamgen"};
  cli::add_version_flag(app, "streamgen");
  app.get_formatter()->column_width(34);

  SynthOptions o;
  std::string guest = "hvm", container = "none", layer = "libxl", size, out;
  std::string byte_order = "little", xl_byte_order = "little";
  std::optional<std::uint64_t> pages;
  bool zstd = false, verbose = false, json = false, quiet = false;
  int zstd_level = 3;

  app.add_option("OUT", out, "output file, or - for stdout (written atomically: a file appears only when complete)")
      ->required();
  app.add_option("-g,--guest", guest, "guest type: pv or hvm")
      ->check(CLI::IsMember({"pv", "hvm"}))->default_str("hvm");
  auto* pages_opt = app.add_option("-n,--pages", pages, "guest pages (4 KiB each), pfns 0..N-1 [default 1024]");
  app.add_option("-s,--size", size, "guest memory instead of --pages, e.g. 64M, 1G (multiple of 4 KiB)")
      ->excludes(pages_opt);
  app.add_option("--seed", o.seed, "seed for page contents and dirty-page choice")->default_val(1);
  app.add_option("-b,--batch", o.batch, "pfns per PAGE_DATA record (Xen's saver uses 1024)")
      ->default_val(1024);
  app.add_option("-c,--container", container, "save-file header: none, xl or libvirt")
      ->check(CLI::IsMember({"none", "xl", "libvirt"}))->default_str("none");
  app.add_option("-l,--layer", layer,
                 "outermost stream: libxl (libxl v2 stream wrapping the libxc image) or libxc (bare image)")
      ->check(CLI::IsMember({"libxl", "libxc"}))->default_str("libxl");
  app.add_option("-V,--stream-version", o.version, "libxc image version: 2 (Xen 4.6-4.13) or 3 (4.14+)")
      ->check(CLI::IsMember({2, 3}))->default_val(3);
  app.add_option("--vcpus", o.vcpus, "number of vcpus (1-128)")->default_val(1);
  app.add_option("--checkpoints", o.checkpoints,
                 "Remus-style checkpoints: 0 = plain stream; N = full copy then N-1 dirty rounds, "
                 "each ending in CHECKPOINT (no END records)")
      ->default_val(0);
  app.add_option("--dirty-pages", o.dirty_pages, "pages resent per later checkpoint")->default_val(64);
  app.add_flag("--colo", o.colo, "add COLO CHECKPOINT_STATE(NEW) records between checkpoints (HVM, libxl)");
  app.add_flag("--emulator-context", o.emulator_context,
               "add an EMULATOR_CONTEXT record with a small QEMU device-state blob (HVM, libxl)");
  app.add_flag("--xenstore-data", o.xenstore_data,
               "add an EMULATOR_XENSTORE_DATA record with physmap keys (HVM, libxl)");
  app.add_flag("--optional-record", o.optional_record,
               "add an unknown optional libxc record (type 0x80000013) that readers must skip");
  app.add_option("--name", o.name, "domain name in the xl/libvirt header")->default_val("synth");
  app.add_option("--xen-major", o.xen_major, "xen_major in the domain header")->default_val(4);
  app.add_option("--xen-minor", o.xen_minor, "xen_minor in the domain header")->default_val(17);
  app.add_option("--byte-order", byte_order,
                 "byte order of the libxl/libxc streams: little or big (Xen refuses big; for testing)")
      ->check(CLI::IsMember({"little", "big"}))->default_str("little");
  app.add_option("--xl-byte-order", xl_byte_order, "byte order of the xl header's fields: little or big")
      ->check(CLI::IsMember({"little", "big"}))->default_str("little");
  app.add_flag("-z,--zstd", zstd, "compress the output as one zstd frame");
  app.add_option("--zstd-level", zstd_level, "zstd compression level")->default_val(3);
  app.add_flag("-v,--verbose", verbose, "print a summary on stderr");
  app.add_flag("--json", json, "print a JSON summary on stdout (not with OUT = -)");
  app.add_flag("-q,--quiet", quiet, "no progress line");

  if (auto rc = cli::parse_command_line(app, argc, argv)) return *rc;

  o.guest = guest == "pv" ? GuestType::kPv : GuestType::kHvm;
  o.container = container == "xl" ? ContainerKind::kXl
                : container == "libvirt" ? ContainerKind::kLibvirt
                                         : ContainerKind::kNone;
  o.layer = layer == "libxc" ? OuterLayer::kLibxc : OuterLayer::kLibxl;
  o.order = byte_order == "big" ? ByteOrder::kBig : ByteOrder::kLittle;
  o.xl_order = xl_byte_order == "big" ? ByteOrder::kBig : ByteOrder::kLittle;
  if (pages) o.pages = *pages;
  if (!size.empty()) {
    const auto bytes = parse_size(size);
    if (!bytes || *bytes % kPageSize != 0) {
      std::cerr << "streamgen: --size: '" << size << "' is not a multiple of 4 KiB such as 64M or 1G\n";
      return kExitUsage;
    }
    o.pages = *bytes / kPageSize;
  }
  if (json && out == "-") {
    std::cerr << "streamgen: --json prints on stdout, which OUT = - already uses\n";
    return kExitUsage;
  }
  if (out == "-" && isatty(STDOUT_FILENO)) {
    std::cerr << "streamgen: refusing to write a binary stream to a terminal; redirect stdout\n";
    return kExitUsage;
  }
  if (auto ok = validate(o); !ok) {
    std::cerr << "streamgen: " << ok.error().message << "\n";
    return kExitUsage;
  }

  // Progress counts guest memory written (pages of 4 KiB).
  cli::ProgressLine progress("streamgen", cli::ProgressLine::wanted(quiet));
  if (progress.enabled()) {
    o.progress = [&progress](std::uint64_t done, std::uint64_t total) {
      progress.update(done * kPageSize, total * kPageSize, "guest memory");
    };
  }

  auto sum = write_stream_to_path(out, o, zstd, zstd_level);
  progress.clear();
  if (!sum) {
    std::cerr << "streamgen: " << out << ": " << sum.error().message << "\n";
    return kExitUsage;
  }
  const std::string what = std::string(guest_type_name(o.guest)) + ", " +
                           (o.container == ContainerKind::kNone
                                ? std::string()
                                : std::string(container_name(o.container)) + " header, ") +
                           std::string(outer_layer_name(o.layer)) + " stream, libxc v" +
                           std::to_string(o.version);
  if (verbose) {
    std::cerr << "streamgen: wrote " << out << ": " << what << ", " << o.pages << " pages, "
              << sum->records << " records, " << sum->checkpoints << " checkpoints, "
              << human(sum->bytes) << (zstd ? " before zstd" : "") << "\n";
  }
  if (json) {
    nlohmann::ordered_json j;
    j["output"] = out;
    j["guest"] = guest_type_name(o.guest);
    j["container"] = container_name(o.container);
    j["layer"] = outer_layer_name(o.layer);
    j["version"] = o.version;
    j["pages"] = o.pages;
    j["seed"] = o.seed;
    j["zstd"] = zstd;
    j["bytes"] = sum->bytes;
    j["payload_offset"] = sum->payload_offset;
    j["records"] = sum->records;
    j["page_data_records"] = sum->page_data_records;
    j["pages_written"] = sum->pages_written;
    j["checkpoints"] = sum->checkpoints;
    std::cout << j.dump(2) << "\n";
  }
  return kExitOk;
}
