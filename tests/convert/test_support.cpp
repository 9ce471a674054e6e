#include "tests/convert/test_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>
#ifdef XS_HAVE_VERIFY
#include "tools/verify/verifier.h"
#endif

namespace xenstream::convert::testing {

namespace xc = format::libxc;
namespace xl = format::libxl;

Buffer read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> v((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Buffer b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size());
  return b;
}

void write_file(const std::string& path, const Buffer& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/streamconv-test-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  if (mkdtemp(name.data()) == nullptr) std::abort();
  path_ = name.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Converted convert_bytes(const Buffer& in, ConvertOptions options) {
  Converted c;
  MemorySource src(view(in), "<test input>");
  MemoryRandomAccess reread(view(in));
  if (options.reread == nullptr) options.reread = &reread;
  BufferSink sink;
  options.report = [&c](Severity s, const std::string& msg) {
    (s == Severity::kWarning ? c.warnings : c.notes).push_back(msg);
  };
  c.result = convert_legacy(src, sink, options);
  c.out = std::move(sink.data());
  return c;
}

Expected<Bytes> TrickleSource::fill(std::size_t min) {
  state_ ^= state_ << 13;
  state_ ^= state_ >> 7;
  state_ ^= state_ << 17;
  const std::size_t extra = max_extra_ ? state_ % (max_extra_ + 1) : 0;
  const std::size_t left = data_.size() - cursor_;
  return data_.subspan(cursor_, std::min(left, min + extra));
}

Converted convert_trickled(const Buffer& in, ConvertOptions options, std::uint64_t seed) {
  Converted c;
  TrickleSource src(view(in), seed);
  BufferSink sink;
  options.report = [&c](Severity s, const std::string& msg) {
    (s == Severity::kWarning ? c.warnings : c.notes).push_back(msg);
  };
  c.result = convert_legacy(src, sink, options);
  c.out = std::move(sink.data());
  return c;
}

ConvertOptions options_for(const Flags& f) {
  ConvertOptions o;
  o.width = f.width / 8;
  o.guest = f.guest;
  o.format = f.format;
  if (f.xl) o.xl_header = true;
  o.skip_qemu = f.skip_qemu;
  return o;
}

std::vector<std::string> reference_args(const Flags& f) {
  std::vector<std::string> a{"-w", std::to_string(f.width), "-g", f.guest == GuestType::kPv ? "pv" : "hvm"};
  if (f.format == OutputFormat::kLibxl) a.insert(a.end(), {"-f", "libxl"});
  if (f.xl) a.push_back("-x");
  if (f.skip_qemu) a.push_back("--skip-qemu");
  return a;
}

// ---------------------------------------------------------------------------

namespace {

struct State {
  std::map<std::uint64_t, Page> memory;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hvm_params;
  std::vector<std::uint32_t> vcpus;
  Buffer emulator_context;
  Buffer xenstore;
  bool has_emulator = false;
  bool has_xenstore = false;
};

void commit(Decoded& d, State& pending) {
  for (auto& [pfn, page] : pending.memory) d.memory[pfn] = page;
  d.hvm_params = pending.hvm_params;
  d.vcpus = pending.vcpus;
  if (pending.has_emulator) d.emulator_context = pending.emulator_context;
  if (pending.has_xenstore) d.xenstore = pending.xenstore;
  pending = State{};
  ++d.committed;
}

}  // namespace

Decoded decode_v2(const Buffer& stream, std::size_t xl_header_size) {
  Decoded d;
  const Bytes all = view(stream).subspan(xl_header_size);
  MemorySource src(all, "<v2>");
  const PayloadKind kind = classify_payload(all.first(std::min<std::size_t>(all.size(), 16)));
  if (kind == PayloadKind::kLegacy) {
    d.error = "not a v2 stream";
    return d;
  }
  d.libxl = kind == PayloadKind::kLibxl;
  StreamCursor cur(src, kind);
  if (auto s = cur.start(); !s) {
    d.error = s.error().describe();
    return d;
  }
  State pending;
  std::uint64_t last_end = 0;
  bool sde = false, pv_info = false, p2m = false, hvm_context = false;
  unsigned guest_width = 0;
  auto fail = [&](const RecordView& r, const std::string& why) { d.error = r.label() + ": " + why; };
  while (!cur.done()) {
    auto rec = cur.next();
    if (!rec) {
      d.error = rec.error().describe();
      return d;
    }
    const RecordView& r = *rec;
    last_end = r.end_offset();
    d.records.push_back(std::string(layer_name(r.layer)) + ":" + record_display_name(r.layer, r.type));
    if (cur.libxc_image()) d.image_version = cur.libxc_image()->version;
    if (cur.libxc_domain()) d.domain_type = cur.libxc_domain()->type;
    const bool pv = d.domain_type == xc::kDomainX86Pv;
    if (r.layer == Layer::kLibxl) {
      switch (static_cast<xl::RecordType>(r.type)) {
        case xl::RecordType::kLibxcContext:
          if (r.length != 0) return fail(r, "non-empty"), d;
          break;
        case xl::RecordType::kEnd:
          if (r.length != 0) return fail(r, "non-empty"), d;
          // A plain stream's emulator records follow the libxc END.
          if (d.checkpoints == 0) {
            if (pending.has_emulator) d.emulator_context = pending.emulator_context;
            if (pending.has_xenstore) d.xenstore = pending.xenstore;
          }
          break;
        case xl::RecordType::kEmulatorXenstoreData:
        case xl::RecordType::kEmulatorContext: {
          if (pv) return fail(r, "emulator record in a PV stream"), d;
          auto em = decode_emulator(r);
          if (!em) return d.error = em.error().describe(), d;
          const Bytes data = em->data.bytes();
          if (r.type == static_cast<std::uint32_t>(xl::RecordType::kEmulatorContext)) {
            pending.emulator_context.assign(data.begin(), data.end());
            pending.has_emulator = true;
          } else {
            auto pairs = decode_xenstore_pairs(r, *em);
            if (!pairs) return d.error = pairs.error().describe(), d;
            pending.xenstore.assign(data.begin(), data.end());
            pending.has_xenstore = true;
          }
          break;
        }
        case xl::RecordType::kCheckpointEnd:
          if (d.checkpoints == 0) return fail(r, "CHECKPOINT_END without CHECKPOINT"), d;
          commit(d, pending);
          break;
        default:
          return fail(r, "unexpected libxl record"), d;
      }
      continue;
    }
    switch (static_cast<xc::RecordType>(r.type)) {
      case xc::RecordType::kEnd:
        if (d.checkpoints == 0) {
          if (pv && pending.vcpus.empty()) return fail(r, "no vcpu 0 context"), d;
          if (!pv && !hvm_context) return fail(r, "no HVM_CONTEXT"), d;
          commit(d, pending);
        }
        // In a checkpointed stream END drops what was not committed.
        pending = State{};
        break;
      case xc::RecordType::kStaticDataEnd:
        if (sde) return fail(r, "second STATIC_DATA_END"), d;
        sde = true;
        break;
      case xc::RecordType::kX86PvInfo: {
        if (!pv) return fail(r, "PV record in an HVM stream"), d;
        if (pv_info || sde) return fail(r, "X86_PV_INFO repeated or after STATIC_DATA_END"), d;
        auto info = decode_x86_pv_info(r);
        if (!info) return d.error = info.error().describe(), d;
        if (r.length != 8 || !((info->guest_width == 4 && info->pt_levels == 3) ||
                               (info->guest_width == 8 && info->pt_levels == 4))) {
          return fail(r, "bad width/levels"), d;
        }
        guest_width = info->guest_width;
        pv_info = true;
        break;
      }
      case xc::RecordType::kX86PvP2mFrames: {
        if (!pv || !pv_info || !sde) return fail(r, "P2M_FRAMES out of place"), d;
        auto f = decode_p2m_frames(r);
        if (!f) return d.error = f.error().describe(), d;
        const std::uint32_t fpp = 4096 / guest_width;
        if (f->start_pfn > f->end_pfn || f->count() != f->end_pfn / fpp - f->start_pfn / fpp + 1) {
          return fail(r, "wrong frame count"), d;
        }
        p2m = true;
        break;
      }
      case xc::RecordType::kPageData: {
        if (!sde) return fail(r, "PAGE_DATA before STATIC_DATA_END"), d;
        if (pv && !p2m) return fail(r, "PAGE_DATA before X86_PV_P2M_FRAMES"), d;
        auto pd = decode_page_data(r);
        if (!pd) return d.error = pd.error().describe(), d;
        if (pd->reserved != 0) return fail(r, "reserved field set"), d;
        std::size_t page = 0;
        for (std::uint32_t i = 0; i < pd->count; ++i) {
          const std::uint64_t e = pd->entry(i);
          if (e & xc::kPfnReservedMask) return fail(r, "reserved pfn bits"), d;
          if (!xc::page_type_has_data(pd->type(i))) continue;
          Page p;
          std::memcpy(p.data(), pd->pages.data() + page * 4096, 4096);
          pending.memory[pd->pfn(i)] = p;
          ++page;
        }
        ++d.page_records;
        break;
      }
      case xc::RecordType::kX86PvVcpuBasic:
      case xc::RecordType::kX86PvVcpuExtended:
      case xc::RecordType::kX86PvVcpuXsave: {
        if (!pv) return fail(r, "PV record in an HVM stream"), d;
        auto v = decode_vcpu_blob(r);
        if (!v) return d.error = v.error().describe(), d;
        const std::size_t n = v->blob.size();
        if (r.type == static_cast<std::uint32_t>(xc::RecordType::kX86PvVcpuBasic)) {
          if (n != (guest_width == 8 ? xc::kVcpuBasicSize64 : xc::kVcpuBasicSize32)) {
            return fail(r, "basic context of the wrong size"), d;
          }
          pending.vcpus.push_back(v->vcpu_id);
        } else if (r.type == static_cast<std::uint32_t>(xc::RecordType::kX86PvVcpuExtended)) {
          if (n > 128) return fail(r, "extended context too long"), d;
        } else if (n < 16) {
          return fail(r, "xsave blob too short"), d;
        }
        break;
      }
      case xc::RecordType::kSharedInfo:
        if (!pv || r.length != 4096) return fail(r, "bad SHARED_INFO"), d;
        break;
      case xc::RecordType::kX86TscInfo:
        if (auto t = decode_tsc_info(r); !t) return d.error = t.error().describe(), d;
        break;
      case xc::RecordType::kHvmContext:
        if (pv || r.length == 0) return fail(r, "bad HVM_CONTEXT"), d;
        hvm_context = true;
        break;
      case xc::RecordType::kHvmParams: {
        if (pv) return fail(r, "HVM_PARAMS in a PV stream"), d;
        auto hp = decode_hvm_params(r);
        if (!hp) return d.error = hp.error().describe(), d;
        for (std::uint32_t i = 0; i < hp->count; ++i) pending.hvm_params.emplace_back(hp->index(i), hp->value(i));
        break;
      }
      case xc::RecordType::kCheckpoint:
        if (r.length != 0) return fail(r, "non-empty CHECKPOINT"), d;
        ++d.checkpoints;
        if (pv && pending.vcpus.empty() && d.committed == 0) return fail(r, "no vcpu 0 context"), d;
        if (!d.libxl) commit(d, pending);
        break;
      default:
        return fail(r, "unexpected libxc record"), d;
    }
  }
  const Bytes rest = all.subspan(static_cast<std::size_t>(last_end));
  d.trailing.assign(rest.begin(), rest.end());
  return d;
}

std::optional<std::string> verifier_errors(const Buffer& stream) {
#ifdef XS_HAVE_VERIFY
  MemorySource src(view(stream), "<converted>");
  const verify::VerifyResult r = verify::verify(src);
  std::string errors;
  if (r.failure) errors += r.failure->describe() + "\n";
  for (const verify::Problem& p : r.problems) {
    if (p.severity == verify::Severity::kError) errors += p.format() + "\n";
  }
  if (errors.empty() && !r.valid()) errors = r.verdict() + "\n";
  return errors;
#else
  (void)stream;
  return std::nullopt;
#endif
}

// ---------------------------------------------------------------------------

RunResult run_program(const std::vector<std::string>& argv) {
  RunResult r;
  const TempDir scratch;
  const std::string out_path = scratch.file("stdout");
  const std::string err_path = scratch.file("stderr");
  const char* out_name = out_path.c_str();
  const char* err_name = err_path.c_str();
  const int out_fd = ::open(out_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err_fd = ::open(err_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.status = WEXITSTATUS(status);
  auto slurp = [](const char* name) {
    const Buffer b = read_file(name);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  };
  r.out = slurp(out_name);
  r.err = slurp(err_name);
  ::close(out_fd);
  ::close(err_fd);
  return r;
}

std::string reference_converter() { return std::string(XS_ORACLE_DIR) + "/convert-legacy-stream"; }
std::string reference_verifier() { return std::string(XS_ORACLE_DIR) + "/verify-stream-v2"; }
std::string streamconv_binary() { return XS_STREAMCONV; }

RunResult run_reference(const TempDir& dir, const Buffer& in, const Flags& flags, Buffer& out) {
  const std::string in_path = dir.file("reference.in");
  const std::string out_path = dir.file("reference.out");
  write_file(in_path, in);
  std::vector<std::string> argv{reference_converter(), "-i", in_path, "-o", out_path};
  for (const std::string& a : reference_args(flags)) argv.push_back(a);
  RunResult r = run_program(argv);
  out = read_file(out_path);
  return r;
}

std::string hexdump_diff(const Buffer& a, const Buffer& b) {
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  if (i == a.size() && i == b.size()) return "identical";
  std::ostringstream s;
  s << "sizes " << a.size() << " and " << b.size() << ", first difference at offset 0x" << std::hex << i;
  return s.str();
}

}  // namespace xenstream::convert::testing
