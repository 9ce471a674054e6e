// streammem: read a guest's memory straight from a save image or a restored
// directory (README.md beside this file).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tools/common/cli.h"
#include "tools/memview/guest_memory.h"

namespace {

using namespace xenstream;
using namespace xenstream::memview;
using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitBad = 1;
constexpr int kExitUsage = 2;

int exit_for(const Error& e) {
  switch (e.code) {
    case ErrorCode::kUsage:
    case ErrorCode::kIo: return kExitUsage;
    default: return kExitBad;
  }
}

bool g_quiet = false;  // -q: the exit status alone tells

// Where messages go: stderr, or nowhere with -q.
std::ostream& err() {
  static std::ostream discard(nullptr);
  return g_quiet ? discard : std::cerr;
}

int fail(const Error& e) {
  err() << "streammem: " << (e.offset != 0 ? e.describe() : e.message) << "\n";
  return exit_for(e);
}

std::optional<std::uint64_t> parse_u64(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::size_t used = 0;
  try {
    const std::uint64_t v = std::stoull(s, &used, 0);
    if (used != s.size() || s[0] == '-') return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

std::string hex_bytes(Bytes b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (auto c : b) {
    s += d[static_cast<unsigned>(c) >> 4];
    s += d[static_cast<unsigned>(c) & 15];
  }
  return s;
}

// xxd-like: address, 16 octets in hex, the printable ones.
void hexdump_line(std::FILE* out, std::uint64_t addr, Bytes b) {
  std::fprintf(out, "%016llx: ", static_cast<unsigned long long>(addr));
  for (std::size_t i = 0; i < 16; ++i) {
    if (i < b.size()) {
      std::fprintf(out, "%02x", static_cast<unsigned>(b[i]));
    } else {
      std::fputs("  ", out);
    }
    if (i % 2 == 1) std::fputc(' ', out);
  }
  std::fputc(' ', out);
  for (auto c : b) {
    const auto u = static_cast<unsigned char>(c);
    std::fputc(u >= 0x20 && u < 0x7f ? u : '.', out);
  }
  std::fputc('\n', out);
}

json step_json(const WalkStep& s) {
  return {{"level", s.level}, {"table_pfn", hex(s.table_pfn)}, {"index", s.index}, {"entry", hex(s.entry)}, {"leaf", s.leaf}};
}

json regs_json(const VcpuRegs& r) {
  return {{"id", r.id},          {"rax", hex(r.rax)},     {"rbx", hex(r.rbx)},   {"rcx", hex(r.rcx)},
          {"rdx", hex(r.rdx)},   {"rsi", hex(r.rsi)},     {"rdi", hex(r.rdi)},   {"rbp", hex(r.rbp)},
          {"rsp", hex(r.rsp)},   {"r8", hex(r.r8)},       {"r9", hex(r.r9)},     {"r10", hex(r.r10)},
          {"r11", hex(r.r11)},   {"r12", hex(r.r12)},     {"r13", hex(r.r13)},   {"r14", hex(r.r14)},
          {"r15", hex(r.r15)},   {"rip", hex(r.rip)},     {"rflags", hex(r.rflags)}, {"cs", hex(r.cs)},
          {"ss", hex(r.ss)},     {"ds", hex(r.ds)},       {"es", hex(r.es)},     {"fs", hex(r.fs)},
          {"gs", hex(r.gs)},     {"fs_base", hex(r.fs_base)}, {"gs_base", hex(r.gs_base)},
          {"cr0", hex(r.cr0)},   {"cr2", hex(r.cr2)},     {"cr3", hex(r.cr3)},   {"cr4", hex(r.cr4)},
          {"efer", hex(r.efer)}, {"width", r.width}};
}

struct Common {
  std::string image;
  std::optional<std::uint64_t> checkpoint;
  bool json = false;
};

Expected<std::unique_ptr<GuestMemory>> open_image(const Common& c) {
  OpenOptions o;
  o.checkpoint = c.checkpoint;
  return GuestMemory::open(c.image, o);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Read a Xen guest's memory straight from a save image (or a directory written by\n"
      "streamrestore) without restoring it: guest-physical or guest-virtual reads,\n"
      "page-walk translation, the runs of present memory, the vCPUs' registers.\n\n"
      "The image is mapped and indexed once (one entry per run of pages sent together);\n"
      "reads come straight from the mapped bytes. Later pages win, as in a restore; a\n"
      "checkpointed stream is read at its last complete checkpoint, or at --checkpoint N.\n"
      "Virtual addresses walk the page tables of vCPU K from its saved cr3 (PV: the\n"
      "stream's tables hold pfns; HVM: cr0/cr4/EFER choose none, 2-level, PAE or 4-level).\n\n"
      "Addresses and lengths: decimal or 0x-hex.\n\n"
      "Exit: 0 ok; 1 the image is bad (broken stream, or a malformed page-table entry);\n"
      "2 usage or I/O error, or the address is not present / not mapped (the message\n"
      "names the page or the page-walk level that failed).",
      "streammem"};
  cli::add_version_flag(app, "streammem");
  app.require_subcommand(1);
  app.add_flag("-q,--quiet", g_quiet, "print no error messages; only the exit status tells")->configurable(false);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  Common c;
  auto add_common = [&](CLI::App* s) {
    s->add_option("IMAGE", c.image, "save image / stream file, or a restored directory")->required();
    s->add_option("--checkpoint", c.checkpoint, "checkpointed stream: the N-th complete checkpoint (1-based)");
    s->add_flag("--json", c.json, "machine-readable output on stdout");
  };

  std::string addr_s, len_s = "256", format = "hex", out_path = "-";
  std::optional<std::uint32_t> vcpu;
  bool phys = false, user = false;

  auto* read = app.add_subcommand("read", "read LEN octets at ADDR (guest-physical, or guest-virtual with --vcpu)");
  add_common(read);
  read->add_option("ADDR", addr_s, "address")->required();
  read->add_option("LEN", len_s, "octets to read (default 256)");
  read->add_option("--vcpu", vcpu, "ADDR is guest-virtual in vCPU K's address space");
  read->add_flag("--phys", phys, "ADDR is guest-physical (the default without --vcpu)");
  read->add_flag("--user", user, "64-bit PV: walk the user page table (ctrlreg[1]) instead of cr3");
  read->add_option("-f,--format", format, "raw, hex (default) or json")->check(CLI::IsMember({"raw", "hex", "json"}));
  read->add_option("-o,--output", out_path, "where the data goes (default - = stdout)");

  auto* tr = app.add_subcommand("translate", "walk vCPU K's page tables for a guest-virtual ADDR, showing every level");
  add_common(tr);
  tr->add_option("ADDR", addr_s, "guest-virtual address")->required();
  tr->add_option("--vcpu", vcpu, "vCPU whose cr3 starts the walk (default 0)");
  tr->add_flag("--user", user, "64-bit PV: walk the user page table (ctrlreg[1])");

  bool all = false;
  auto* runs = app.add_subcommand("runs", "list the runs of present memory (pfn ranges, half-open)");
  add_common(runs);
  runs->add_flag("--all", all, "list every index entry: data, zero (XALLOC), xtab, broken, with file offsets");

  auto* regs = app.add_subcommand("regs", "show the saved registers of every vCPU (or --vcpu K)");
  add_common(regs);
  regs->add_option("--vcpu", vcpu, "only this vCPU");

  auto* info = app.add_subcommand("info", "what the image holds: guest type, pages, runs, index size, vCPUs");
  add_common(info);

  if (auto rc = cli::parse_command_line(app, argc, argv)) return *rc;

  if (read->parsed() && phys && vcpu) {
    err() << "streammem: --phys and --vcpu exclude each other\n";
    return kExitUsage;
  }
  std::optional<std::uint64_t> addr, len;
  if (read->parsed() || tr->parsed()) {
    addr = parse_u64(addr_s);
    if (!addr) {
      err() << "streammem: ADDR " << addr_s << " is not a number\n";
      return kExitUsage;
    }
  }
  if (read->parsed()) {
    len = parse_u64(len_s);
    if (!len) {
      err() << "streammem: LEN " << len_s << " is not a number\n";
      return kExitUsage;
    }
    if (*addr + *len < *addr) {
      err() << "streammem: ADDR + LEN wraps around 2^64\n";
      return kExitUsage;
    }
  }

  auto mem = open_image(c);
  if (!mem) return fail(mem.error());
  const GuestMemory& m = **mem;

  if (info->parsed()) {
    const auto& i = m.info();
    const auto ranges = present_ranges(m);
    if (c.json) {
      json ids = json::array();
      for (const auto& v : m.vcpus()) ids.push_back(v.id);
      std::cout << json{{"source", i.source},           {"guest", i.hvm ? "hvm" : "pv"},
                        {"guest_width", i.guest_width}, {"pt_levels", i.pt_levels},
                        {"max_pfn", hex(i.max_pfn)},    {"pages_present", i.pages_present},
                        {"runs", ranges.size()},        {"index_entries", m.extents().size()},
                        {"index_bytes", m.index_bytes()}, {"checkpoint", i.checkpoint},
                        {"truncated", i.truncated},     {"vcpus", ids},
                        {"vcpu_error", i.vcpu_error.empty() ? json() : json(i.vcpu_error)}}
                       .dump()
                << "\n";
    } else {
      std::cout << "guest " << (i.hvm ? "hvm" : "pv") << " (width " << i.guest_width << ", pt_levels " << i.pt_levels
                << "), from a " << i.source << "\n"
                << "pages present " << i.pages_present << ", max_pfn " << hex(i.max_pfn) << ", " << ranges.size()
                << " runs\n"
                << "index " << m.extents().size() << " entries, " << m.index_bytes() << " octets\n"
                << "vcpus " << m.vcpus().size() << "\n";
      if (!i.vcpu_error.empty()) std::cout << "vcpu state unreadable: " << i.vcpu_error << "\n";
      if (i.checkpoint != 0) std::cout << "checkpoint " << i.checkpoint << (i.truncated ? " (stream truncated after it)" : "") << "\n";
    }
    return kExitOk;
  }

  if (runs->parsed()) {
    if (all) {
      json arr = json::array();
      for (const auto& x : m.extents()) {
        if (c.json) {
          arr.push_back({{"begin", hex(x.begin)}, {"end", hex(x.end())}, {"state", page_state_name(x.state)},
                         {"type", x.type}, {"offset", x.state == PageState::kData ? json(hex(x.offset)) : json()}});
        } else {
          std::cout << "[" << hex(x.begin) << ", " << hex(x.end()) << ") " << page_state_name(x.state) << " type "
                    << hex(x.type);
          if (x.state == PageState::kData) std::cout << " at file offset " << hex(x.offset);
          std::cout << "\n";
        }
      }
      if (c.json) std::cout << arr.dump() << "\n";
      return kExitOk;
    }
    json arr = json::array();
    for (const auto& r : present_ranges(m)) {
      if (c.json) {
        arr.push_back({{"begin", hex(r.begin)}, {"end", hex(r.end)}, {"gpa", hex(r.begin * kPageSize)},
                       {"bytes", (r.end - r.begin) * kPageSize}});
      } else {
        std::cout << "[" << hex(r.begin) << ", " << hex(r.end) << ") " << (r.end - r.begin) << " pages at gpa "
                  << hex(r.begin * kPageSize) << "\n";
      }
    }
    if (c.json) std::cout << arr.dump() << "\n";
    return kExitOk;
  }

  if (regs->parsed()) {
    if (!m.info().vcpu_error.empty()) return fail(make_error(ErrorCode::kMalformed, 0, "no vcpu state: " + m.info().vcpu_error));
    json arr = json::array();
    bool any = false;
    for (const auto& r : m.vcpus()) {
      if (vcpu && r.id != *vcpu) continue;
      any = true;
      if (c.json) {
        arr.push_back(regs_json(r));
        continue;
      }
      std::printf("vcpu %u (%s)\n", r.id, r.hvm ? "hvm" : r.width == 8 ? "pv 64-bit" : "pv 32-bit");
      const std::pair<const char*, std::uint64_t> rows[] = {
          {"rax", r.rax}, {"rbx", r.rbx}, {"rcx", r.rcx}, {"rdx", r.rdx}, {"rsi", r.rsi}, {"rdi", r.rdi},
          {"rbp", r.rbp}, {"rsp", r.rsp}, {"r8", r.r8},   {"r9", r.r9},   {"r10", r.r10}, {"r11", r.r11},
          {"r12", r.r12}, {"r13", r.r13}, {"r14", r.r14}, {"r15", r.r15}, {"rip", r.rip}, {"rflags", r.rflags},
          {"cs", r.cs},   {"ss", r.ss},   {"ds", r.ds},   {"es", r.es},   {"fs", r.fs},   {"gs", r.gs},
          {"fs_base", r.fs_base}, {"gs_base", r.gs_base}, {"cr0", r.cr0}, {"cr2", r.cr2}, {"cr3", r.cr3},
          {"cr4", r.cr4}, {"efer", r.efer}};
      for (const auto& [n, v] : rows) std::printf("  %-8s 0x%016llx\n", n, static_cast<unsigned long long>(v));
    }
    if (vcpu && !any) return fail(make_error(ErrorCode::kUsage, 0, "no vcpu " + std::to_string(*vcpu) + " in the image"));
    if (c.json) std::cout << arr.dump() << "\n";
    return kExitOk;
  }

  if (tr->parsed()) {
    auto t = m.translate(vcpu.value_or(0), *addr, user);
    if (!t) return fail(t.error());
    if (c.json) {
      json steps = json::array();
      for (const auto& s : t->steps) steps.push_back(step_json(s));
      std::cout << json{{"gva", hex(t->gva)},     {"gpa", hex(t->gpa)},     {"page_size", t->page_size},
                        {"writable", t->writable}, {"user", t->user},        {"nx", t->nx},
                        {"steps", steps}}
                       .dump()
                << "\n";
    } else {
      for (const auto& s : t->steps) {
        std::cout << "L" << s.level << " table pfn " << hex(s.table_pfn) << " entry " << hex(s.index) << " = "
                  << hex(s.entry) << (s.leaf ? " (leaf)" : "") << "\n";
      }
      std::cout << hex(t->gva) << " -> " << hex(t->gpa) << " (" << t->page_size / 1024 << " KiB page"
                << (t->writable ? ", writable" : ", read-only") << (t->user ? ", user" : ", supervisor")
                << (t->nx ? ", nx" : "") << ")\n";
    }
    return kExitOk;
  }

  // read
  std::FILE* out = stdout;
  if (out_path != "-") {
    out = std::fopen(out_path.c_str(), "wb");
    if (out == nullptr) return fail(io_error(out_path, errno));
  }
  std::vector<std::byte> scratch;
  std::string json_hex;
  std::uint64_t done = 0;
  int rc = kExitOk;
  while (done < *len) {
    const std::uint64_t a = *addr + done;
    std::uint64_t gpa = a;
    std::uint64_t n = std::min<std::uint64_t>(*len - done, std::uint64_t{1} << 20);
    if (vcpu) {
      auto t = m.translate(*vcpu, a, user);
      if (!t) {
        rc = fail(t.error());
        break;
      }
      gpa = t->gpa;
      n = std::min(n, t->page_size - (a & (t->page_size - 1)));
    }
    auto b = m.read(gpa, n, scratch);
    if (!b) {
      rc = fail(b.error());
      break;
    }
    if (format == "raw") {
      if (std::fwrite(b->data(), 1, b->size(), out) != b->size()) {
        rc = fail(io_error(out_path, errno));
        break;
      }
    } else if (format == "hex") {
      for (std::size_t i = 0; i < b->size(); i += 16) {
        hexdump_line(out, a + i, b->subspan(i, std::min<std::size_t>(16, b->size() - i)));
      }
    } else {
      json_hex += hex_bytes(*b);
    }
    done += n;
  }
  if (rc == kExitOk && format == "json") {
    const std::string doc = json{{"address", hex(*addr)},
                                 {"space", vcpu ? "virtual" : "physical"},
                                 {"vcpu", vcpu ? json(*vcpu) : json()},
                                 {"length", *len},
                                 {"hex", json_hex}}
                                .dump() +
                            "\n";
    std::fputs(doc.c_str(), out);
  }
  if (out != stdout) {
    if (std::fclose(out) != 0 && rc == kExitOk) rc = fail(io_error(out_path, errno));
  } else if (std::fflush(out) != 0 && rc == kExitOk) {
    rc = fail(io_error("stdout", errno));
  }
  return rc;
}
