#include "tests/restore/stream_builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "tests/verify/corpus.h"
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/record_writer.h>

namespace xenstream::restore::testing {

namespace xc = format::libxc;
namespace xl = format::libxl;
using nlohmann::json;

std::vector<std::byte> page_bytes(std::uint64_t pfn, std::uint32_t seed) {
  std::vector<std::byte> p(xc::kPageSize, std::byte{0});
  if (seed == 0) return p;
  if (seed == kTailOnlySeed) {
    p.back() = std::byte{0x5a};
    return p;
  }
  std::uint32_t x = static_cast<std::uint32_t>(pfn * 2654435761u) ^ (seed * 40503u) ^ 0x9e3779b9u;
  for (auto& b : p) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<std::byte>(x);
  }
  p[0] = std::byte{static_cast<unsigned char>(seed | 1)};  // never all zero
  return p;
}

std::vector<std::byte> qemu_state_blob(std::uint8_t seed, std::size_t size) {
  // The corpus's well-formed QEMU device state (QEVM-* run on every
  // restore), its first section's payload `size` octets of `seed`.
  auto toks = verify::testing::qemu_sections();
  toks[0].payload.assign(size, std::byte{seed});
  return verify::testing::qemu_blob(toks);
}

std::vector<std::byte> hvm_context_blob(std::uint32_t vcpus, std::uint8_t fill) {
  // A blob the rule engine accepts (the HVMCTX-* rules run on every restore):
  // the corpus's well-formed entries, the CPU bodies filled with
  // `fill` so that checkpoints differ.
  auto entries = verify::testing::hvm_entries(vcpus);
  for (auto& e : entries) {
    if (e.code == 2) std::fill(e.body.begin(), e.body.end(), std::byte{fill});  // CPU
  }
  return verify::testing::hvm_blob(entries);
}

namespace {

void apply_page(DomainModel& m, const PageSpec& p) {
  m.types[p.pfn] = p.type;
  if (xc::page_type_has_data(p.type)) {
    m.memory[p.pfn] = page_bytes(p.pfn, p.seed);
  } else if (xc::page_type_populates(p.type) && !m.memory.count(p.pfn)) {
    m.memory[p.pfn] = std::vector<std::byte>(xc::kPageSize, std::byte{0});
  }
}

void check(Expected<void> r) {
  if (!r) {
    std::fprintf(stderr, "stream builder: %s\n", r.error().describe().c_str());
    std::abort();
  }
}

}  // namespace

BuiltStream build_stream(const StreamSpec& spec) {
  BuiltStream out;
  BufferSink sink;
  if (spec.xl_container) {
    XlHeaderSpec xl;
    xl.mandatory_flags = format::xl::kMandatoryJson | format::xl::kMandatoryStreamV2;
    xl.config = spec.xl_config;
    const auto h = xl_header_bytes(xl);
    check(sink.write(Bytes(h)));
  }
  RecordWriter w(sink);
  std::uint64_t records = 0;
  auto rec = [&](Expected<void> r) {
    check(std::move(r));
    ++records;
  };
  if (spec.libxl) {
    check(w.write_libxl_header());
    rec(w.append(xl::RecordType::kLibxcContext));
  }
  check(w.write_image_header(3));
  check(w.write_domain_header(spec.hvm ? xc::kDomainX86Hvm : xc::kDomainX86Pv, spec.xen_major,
                              spec.xen_minor));
  // Static data first (X86_PV_INFO), then STATIC_DATA_END, as Xen's saver.
  if (!spec.hvm) rec(w.append_x86_pv_info(8, 4));
  rec(w.append(xc::RecordType::kStaticDataEnd));
  if (!spec.hvm) {
    // The one frame is pfn 0: a PV stream must send it as a NOTAB page
    // (LIBXC-P2M-06).
    const std::vector<std::uint64_t> frames = {0};
    rec(w.append_p2m_frames(0, 511, frames));
  }
  DomainModel model;
  std::vector<const PartSpec*> plain_libxl_parts;
  auto libxl_records = [&](const PartSpec& p) {
    if (!p.xenstore.empty()) {
      rec(w.append_xenstore(xl::kEmulatorQemuUpstream, 0, p.xenstore));
      for (const auto& [k, v] : p.xenstore) model.xenstore[k] = v;
    }
    if (p.emulator_context) {
      const Bytes one(*p.emulator_context);
      rec(w.append_emulator(xl::RecordType::kEmulatorContext, xl::kEmulatorQemuUpstream, 0,
                            std::span<const Bytes>(&one, 1)));
      model.emulator_context = p.emulator_context;
    }
  };
  for (std::size_t i = 0; i < spec.parts.size(); ++i) {
    const PartSpec& part = spec.parts[i];
    for (std::size_t b = 0; b < part.pages.size(); b += std::max<std::uint32_t>(part.batch, 1)) {
      const std::size_t e = std::min(part.pages.size(), b + std::max<std::uint32_t>(part.batch, 1));
      std::vector<std::uint64_t> entries;
      std::vector<std::vector<std::byte>> data;
      for (std::size_t k = b; k < e; ++k) {
        const PageSpec& p = part.pages[k];
        entries.push_back((std::uint64_t{p.type} << 60) | p.pfn);
        if (xc::page_type_has_data(p.type)) data.push_back(page_bytes(p.pfn, p.seed));
        apply_page(model, p);
      }
      std::vector<Bytes> spans;
      for (const auto& d : data) spans.push_back(Bytes(d));
      rec(w.append_page_data(entries, spans));
    }
    if (part.tsc_nsec) {
      rec(w.append_tsc_info(0, 2000000, *part.tsc_nsec, 1));
      model.tsc_nsec = part.tsc_nsec;
    }
    if (part.hvm_context) {
      rec(w.append(xc::RecordType::kHvmContext, {Bytes(*part.hvm_context)}));
      model.hvm_context = part.hvm_context;
    }
    if (!part.hvm_params.empty()) {
      rec(w.append_hvm_params(part.hvm_params));
      for (const auto& [k, v] : part.hvm_params) model.hvm_params[k] = v;
    }
    for (const auto& [id, blob] : part.vcpu_basic) {
      rec(w.append_vcpu(xc::RecordType::kX86PvVcpuBasic, id, Bytes(blob)));
      model.vcpu_basic[id] = blob;
    }
    if (part.shared_info) {
      rec(w.append(xc::RecordType::kSharedInfo, {Bytes(*part.shared_info)}));
      model.shared_info = part.shared_info;
    }
    for (const auto& [type, body] : part.extra_libxc) rec(w.append(type, {Bytes(body)}));
    if (spec.checkpointed) {
      rec(w.append(xc::RecordType::kCheckpoint));
      if (spec.libxl) {
        libxl_records(part);
        rec(w.append(xl::RecordType::kCheckpointEnd));
      }
      out.commit_ends.push_back(w.position());
      model.checkpoints = i + 1;
      out.models.push_back(model);
      if (spec.libxl && spec.colo) rec(w.append_checkpoint_state(xl::kCheckpointNew));
    } else {
      plain_libxl_parts.push_back(&part);
    }
  }
  if (spec.end) {
    rec(w.append(xc::RecordType::kEnd));
    if (spec.libxl) {
      for (const PartSpec* p : plain_libxl_parts) libxl_records(*p);
      rec(w.append(xl::RecordType::kEnd));
    }
    if (!spec.checkpointed) out.commit_ends.push_back(w.position());
  }
  out.final_model = spec.checkpointed && !out.models.empty() ? out.models.back() : model;
  out.records = records;
  out.bytes = std::move(sink.data());
  return out;
}

StreamSpec small_checkpointed_hvm(unsigned checkpoints) {
  StreamSpec s;
  s.hvm = true;
  s.checkpointed = true;
  PartSpec first;
  first.pages = {{0, 1}, {1, 1}, {2, 1}, {5, 1}};
  first.hvm_context = hvm_context_blob(2, 0x11);
  first.hvm_params = {{1, 0xfeffc}, {17, 0xfefff}};
  first.tsc_nsec = 1000;
  first.xenstore = {{"physmap/1/name", "vram"}};
  first.emulator_context = qemu_state_blob(0x51, 40);
  s.parts.push_back(first);
  for (unsigned k = 1; k < checkpoints; ++k) {
    PartSpec p;
    // Overwrite one old page, add one new one, and re-send a page as XTAB.
    p.pages = {{k % 3, 10 + k}, {5 + k, 20 + k}};
    p.hvm_context = hvm_context_blob(2, static_cast<std::uint8_t>(0x20 + k));
    p.hvm_params = {{1, 0xfeffc + k}};
    p.tsc_nsec = 1000 + k;
    if (k % 2 == 0) p.emulator_context = qemu_state_blob(static_cast<unsigned char>(0x60 + k), 24 + k);
    s.parts.push_back(p);
  }
  return s;
}

std::optional<std::vector<std::byte>> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::vector<std::byte> out;
  std::byte buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

void write_file(const std::string& path, Bytes data) {
  std::ofstream o(path, std::ios::binary | std::ios::trunc);
  o.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::string temp_dir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/xs-restore-" + tag + "-XXXXXX";
  if (::mkdtemp(t.data()) == nullptr) std::abort();
  return t;
}

std::string fast_temp_dir(const std::string& tag) {
  std::string t = "/dev/shm/xs-restore-" + tag + "-XXXXXX";
  if (::access("/dev/shm", W_OK) == 0 && ::mkdtemp(t.data()) != nullptr) return t;
  return temp_dir(tag);
}

void remove_tree(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    ::unlink(path.c_str());
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : names) {
    const std::string p = path + "/" + n;
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      remove_tree(p);
    } else {
      ::unlink(p.c_str());
    }
  }
  ::rmdir(path.c_str());
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string compare_dir(const std::string& dir, const DomainModel& m, bool hvm) {
  const auto names = list_dir(dir);
  if (std::find(names.begin(), names.end(), ".xenstream") != names.end()) {
    return "the working directory .xenstream is still there";
  }
  auto mem = read_file(dir + "/memory.raw");
  if (!mem) return "no memory.raw";
  const std::uint64_t want_size = m.memory.empty() ? 0 : (m.memory.rbegin()->first + 1) * 4096;
  if (mem->size() != want_size) {
    return "memory.raw is " + std::to_string(mem->size()) + " octets, expected " + std::to_string(want_size);
  }
  const std::vector<std::byte> zero(4096, std::byte{0});
  for (std::uint64_t pfn = 0; pfn * 4096 < mem->size(); ++pfn) {
    auto it = m.memory.find(pfn);
    const auto& want = it == m.memory.end() ? zero : it->second;
    if (std::memcmp(mem->data() + pfn * 4096, want.data(), 4096) != 0) {
      return "memory.raw differs at pfn " + std::to_string(pfn);
    }
  }
  auto man = read_file(dir + "/manifest.json");
  if (!man) return "no manifest.json";
  const json j = json::parse(man->begin(), man->end(), nullptr, false);
  if (j.is_discarded()) return "manifest.json is not JSON";
  if (j["checkpoints"]["committed"] != m.checkpoints) {
    return "manifest says checkpoint " + j["checkpoints"]["committed"].dump() + ", expected " +
           std::to_string(m.checkpoints);
  }
  if (j["memory"]["pages_present"] != m.memory.size()) return "manifest pages_present " + j["memory"]["pages_present"].dump();
  // Every listed file exists, every visible file but the manifest is listed.
  std::vector<std::string> listed;
  for (const auto& f : j["files"]) listed.push_back(f.get<std::string>());
  for (const auto& n : names) {
    if (n == "manifest.json") continue;
    if (std::find(listed.begin(), listed.end(), n) == listed.end()) return "file " + n + " is not in the manifest";
  }
  for (const auto& n : listed) {
    if (std::find(names.begin(), names.end(), n) == names.end()) return "manifest lists missing file " + n;
  }
  auto blob_is = [&](const std::string& name,
                     const std::optional<std::vector<std::byte>>& want) -> std::string {
    auto got = read_file(dir + "/" + name);
    if (want.has_value() != got.has_value()) return name + (want ? " is missing" : " should not exist");
    if (want && *want != *got) return name + " differs";
    return "";
  };
  if (hvm) {
    if (auto s = blob_is("hvm-context.bin", m.hvm_context); !s.empty()) return s;
    json params = json::object();
    for (const auto& [k, v] : m.hvm_params) params[std::to_string(k)] = v;
    if (j["hvm"]["params_by_index"] != params) return "hvm params " + j["hvm"]["params_by_index"].dump();
    if (auto s = blob_is("qemu-resume.1", m.emulator_context); !s.empty()) return s;
    if (!m.xenstore.empty()) {
      auto xs = read_file(dir + "/xenstore.json");
      if (!xs) return "no xenstore.json";
      const json x = json::parse(xs->begin(), xs->end(), nullptr, false);
      json keys = json::object();
      for (const auto& [k, v] : m.xenstore) keys[k] = v;
      if (x["keys"] != keys) return "xenstore.json keys " + x["keys"].dump();
    }
  } else {
    for (const auto& [id, blob] : m.vcpu_basic) {
      if (auto s = blob_is("vcpu" + std::to_string(id) + "-basic.bin", blob); !s.empty()) return s;
    }
    if (auto s = blob_is("shared-info.bin", m.shared_info); !s.empty()) return s;
  }
  if (m.tsc_nsec && j["tsc"]["nsec"] != *m.tsc_nsec) return "tsc nsec " + j["tsc"]["nsec"].dump();
  // Types: every non-NOTAB type appears in typed_ranges.
  std::map<std::uint64_t, std::string> typed;
  for (const auto& r : j["memory"]["typed_ranges"]) {
    for (std::uint64_t p = r[0].get<std::uint64_t>(); p < r[1].get<std::uint64_t>(); ++p) typed[p] = r[2];
  }
  for (const auto& [pfn, t] : m.types) {
    if (t != 0 && !typed.count(pfn)) return "pfn " + std::to_string(pfn) + " lost its type";
    if (t == 0 && typed.count(pfn)) return "pfn " + std::to_string(pfn) + " has a type it should not";
  }
  return "";
}

}  // namespace xenstream::restore::testing

namespace xenstream::restore::testing {

RestoreReport restore_bytes(Bytes data, const std::string& dir, RestoreOptions options,
                            DirectoryOptions dir_options) {
  MemorySource src(data, "<test>");
  auto container = read_container(src);
  if (!container) {
    RestoreReport r;
    r.status = RestoreStatus::kInvalid;
    r.error = container.error();
    return r;
  }
  dir_options.dir = dir;
  dir_options.domid = options.domid;
  auto backend = DirectoryBackend::create(dir_options);
  if (!backend) {
    RestoreReport r;
    r.status = RestoreStatus::kIoError;
    r.error = backend.error();
    return r;
  }
  return restore_stream(src, *container, **backend, options);
}

RestoreReport restore_pipe(Bytes data, const std::string& dir, RestoreOptions options,
                           DirectoryOptions dir_options, std::size_t piece, std::uint64_t* bypassed) {
  std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  std::thread writer([&data, piece, wfd = fds[1]] {
    std::size_t at = 0;
    while (at < data.size()) {
      const std::size_t n = piece == 0 ? data.size() - at : std::min(piece, data.size() - at);
      const ssize_t w = ::write(wfd, data.data() + at, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;  // the reader stopped early
      at += static_cast<std::size_t>(w);
    }
    ::close(wfd);
  });
  RestoreReport r;
  {
    FdSource src(fds[0], "<pipe>");
    src.set_read_ahead(false);  // as streamrestore opens its input
    auto container = read_container(src);
    if (!container) {
      r.status = RestoreStatus::kInvalid;
      r.error = container.error();
    } else {
      dir_options.dir = dir;
      dir_options.domid = options.domid;
      auto backend = DirectoryBackend::create(dir_options);
      if (!backend) {
        r.status = RestoreStatus::kIoError;
        r.error = backend.error();
      } else {
        r = restore_stream(src, *container, **backend, options);
      }
    }
    if (bypassed != nullptr) *bypassed = src.bypassed();
  }
  ::close(fds[0]);
  writer.join();
  return r;
}

}  // namespace xenstream::restore::testing
