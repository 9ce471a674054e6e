// streamsave library: see save.h.
#include "tools/save/save.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>

#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_writer.h>

namespace xenstream::save {
namespace {

namespace xc = format::libxc;
namespace xl = format::libxl;
using json = nlohmann::json;

constexpr std::uint64_t kPage = 4096;

Error usage(std::string m) { return make_error(ErrorCode::kUsage, 0, std::move(m)); }

Bytes bytes_of(const std::vector<std::byte>& v) { return Bytes(v.data(), v.size()); }

Expected<std::vector<std::byte>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return usage(path + ": cannot open");
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

int type_nibble(const std::string& name) {
  static const std::map<std::string, int> kNames = {
      {"notab", 0x0},        {"l1tab", 0x1},        {"l2tab", 0x2},        {"l3tab", 0x3},
      {"l4tab", 0x4},        {"l1tab_pinned", 0x9}, {"l2tab_pinned", 0xA}, {"l3tab_pinned", 0xB},
      {"l4tab_pinned", 0xC}, {"broken", 0xD},       {"xalloc", 0xE},       {"xtab", 0xF}};
  auto it = kNames.find(name);
  return it == kNames.end() ? -1 : it->second;
}

// One restored directory, read-only.
struct Domain {
  std::string dir;
  json m;
  bool hvm = true;
  ByteOrder order = ByteOrder::kLittle;
  // pfn -> type nibble for every pfn that is sent (populated or xtab/broken).
  std::map<std::uint64_t, std::pair<std::uint64_t, int>> runs;  // begin -> (end, type)
  const std::byte* mem = nullptr;
  std::uint64_t mem_size = 0;
  std::vector<std::byte> zero = std::vector<std::byte>(kPage);

  Domain() = default;
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;
  ~Domain() {
    if (mem != nullptr && mem_size > 0) munmap(const_cast<std::byte*>(mem), mem_size);
    if (mem_fd >= 0) ::close(mem_fd);
  }
  // memory.raw, open: the pages written go from it to the sink with
  // Sink::write_file_range(); the mapping serves the comparisons.
  int mem_fd = -1;

  std::string path(const std::string& name) const { return dir + "/" + name; }

  // Drops the mapping's pages below `pfn` from the resident set once they
  // have been written (they stay in the page cache): a sequential save does
  // not pin the whole of memory.raw.
  void release_below(std::uint64_t pfn) {
    constexpr std::uint64_t kChunk = std::uint64_t{1} << 21;  // 2 MiB steps
    const std::uint64_t upto = std::min(pfn * kPage, mem_size) / kChunk * kChunk;
    if (mem == nullptr || upto <= released) return;
    ::madvise(const_cast<std::byte*>(mem) + released, upto - released, MADV_DONTNEED);
    released = upto;
  }
  std::uint64_t released = 0;

  // Where the page of `pfn` comes from: memory.raw, or zeros past its end.
  RecordWriter::FilePages source(std::uint64_t pfn) const {
    const std::uint64_t off = pfn * kPage;
    if (off + kPage > mem_size) return {-1, 0, 1};
    return {mem_fd, off, 1};
  }

  Bytes page(std::uint64_t pfn) const {
    const std::uint64_t off = pfn * kPage;
    if (off + kPage > mem_size) return bytes_of(zero);
    return Bytes(mem + off, kPage);
  }

  // Type of `pfn`, or -1 when it is not sent.
  int type_of(std::uint64_t pfn) const {
    auto it = runs.upper_bound(pfn);
    if (it == runs.begin()) return -1;
    --it;
    return pfn < it->second.first ? it->second.second : -1;
  }
};

// Splits runs so that [b, e) carries `type`.
void set_type(std::map<std::uint64_t, std::pair<std::uint64_t, int>>& runs, std::uint64_t b,
              std::uint64_t e, int type) {
  if (b >= e) return;
  // Cut at b and e.
  auto cut = [&](std::uint64_t at) {
    auto it = runs.upper_bound(at);
    if (it == runs.begin()) return;
    --it;
    if (it->first < at && at < it->second.first) {
      runs[at] = {it->second.first, it->second.second};
      it->second.first = at;
    }
  };
  cut(b);
  cut(e);
  runs.erase(runs.lower_bound(b), runs.lower_bound(e));
  runs[b] = {e, type};
}

Expected<std::unique_ptr<Domain>> open_domain(const std::string& dir) {
  auto d = std::make_unique<Domain>();
  d->dir = dir;
  struct stat st {};
  if (::stat((dir + "/.xenstream").c_str(), &st) == 0) {
    return usage(dir + ": holds .xenstream/ (an unfinished restore); run `streamrestore --recover " +
                 dir + "` first");
  }
  std::ifstream in(d->path("manifest.json"));
  if (!in) return usage(dir + ": no manifest.json (not a restored domain directory)");
  try {
    d->m = json::parse(in);
    if (d->m.value("format", "") != "xenstream-restored-domain") {
      return usage(dir + "/manifest.json: not a xenstream restored-domain manifest");
    }
    d->hvm = d->m.at("domain").at("type").get<std::string>() == "hvm";
    if (d->m.at("domain").value("page_shift", 12) != 12) return usage(dir + ": page_shift is not 12");
    if (d->m.contains("source") && d->m["source"].value("byte_order", "little") == "big") {
      d->order = ByteOrder::kBig;
    }
    const json& mem = d->m.at("memory");
    for (const auto& r : mem.at("pfn_ranges")) {
      set_type(d->runs, r.at(0).get<std::uint64_t>(), r.at(1).get<std::uint64_t>(), 0);
    }
    if (mem.contains("typed_ranges")) {
      for (const auto& r : mem["typed_ranges"]) {
        const int t = type_nibble(r.at(2).get<std::string>());
        if (t < 0) return usage(dir + "/manifest.json: unknown page type " + r.at(2).dump());
        set_type(d->runs, r.at(0).get<std::uint64_t>(), r.at(1).get<std::uint64_t>(), t);
      }
    }
  } catch (const json::exception& e) {
    return usage(dir + "/manifest.json: " + e.what());
  }
  const int fd = ::open(d->path("memory.raw").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return usage(dir + "/memory.raw: " + std::strerror(errno));
  d->mem_fd = fd;
  if (::fstat(fd, &st) != 0) return usage(dir + "/memory.raw: stat failed");
  d->mem_size = static_cast<std::uint64_t>(st.st_size);
  if (d->mem_size > 0) {
    void* p = ::mmap(nullptr, d->mem_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return usage(dir + "/memory.raw: mmap failed");
    ::madvise(p, d->mem_size, MADV_SEQUENTIAL);
    d->mem = static_cast<const std::byte*>(p);
  }
  return d;
}

// A blob file named in the manifest at `ptr` ({"file": ...}), or nullopt.
Expected<std::optional<std::vector<std::byte>>> blob(const Domain& d, const json* node) {
  if (node == nullptr || !node->is_object() || !node->contains("file")) {
    return std::optional<std::vector<std::byte>>();
  }
  auto v = read_file(d.path((*node)["file"].get<std::string>()));
  if (!v) return std::move(v).error();
  return std::optional<std::vector<std::byte>>(std::move(*v));
}

const json* find(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k) || (*cur)[k].is_null()) return nullptr;
    cur = &(*cur)[k];
  }
  return cur;
}

class Saver {
 public:
  Saver(Sink& sink, const SaveOptions& o, ByteOrder order) : sink_(sink), o_(o), w_(sink, order) {}

  Expected<SaveSummary> run(const std::vector<std::unique_ptr<Domain>>& doms, bool checkpointed) {
    const std::uint64_t start = sink_.position();
    const Domain& first = *doms.front();
    for (const auto& d : doms) {
      if (d->hvm != first.hvm) return usage(d->dir + ": domain type differs from " + first.dir);
    }
    layout_ = o_.layout;
    const json* cfg = find(first.m, {"config", "file"});
    const std::string cfg_name = cfg != nullptr ? cfg->get<std::string>() : "";
    const std::string container = first.m.contains("source") ? first.m["source"].value("container", "none") : "none";
    const bool source_libxc =
        first.m.contains("source") && first.m["source"].value("payload", "libxl") == "libxc";
    bool libxl = !source_libxc;
    if (layout_ == Layout::kAuto) {
      layout_ = libxl ? Layout::kLibxl : Layout::kLibxc;
      if (!checkpointed && container == "xl" && cfg_name.rfind("xl-config", 0) == 0) layout_ = Layout::kXl;
      if (!checkpointed && container == "libvirt" && cfg_name == "libvirt.xml") layout_ = Layout::kLibvirt;
    }
    if (layout_ == Layout::kXl || layout_ == Layout::kLibxl || layout_ == Layout::kLibvirt) {
      // A save-file header with a bare libxc image behind it would be read
      // as a legacy image (xl) or refused (libvirt v2): always libxl there.
      libxl = true;
    } else if (layout_ == Layout::kLibxc) {
      libxl = false;
    }
    sum_.layout = layout_;
    sum_.libxl = libxl;
    if (layout_ == Layout::kXl) XS_TRY(write_xl_header(first, cfg_name, libxl));
    if (layout_ == Layout::kLibvirt) XS_TRY(write_libvirt_header(first, cfg_name));
    if (libxl) {
      XS_TRY(w_.write_libxl_header());
      XS_TRY(w_.append(xl::RecordType::kLibxcContext));
    }
    std::uint32_t version = 3;
    if (const json* v = find(first.m, {"source", "libxc_version"}); v && v->is_number()) {
      version = v->get<std::uint32_t>() == 2 ? 2 : 3;
    }
    const json& dom = first.m.at("domain");
    std::uint32_t major = dom.value("xen_major", 4u), minor = dom.value("xen_minor", 17u);
    if (major == 0) {  // converted from the legacy format: claim a v2-era Xen
      major = 4;
      minor = 6;
    }
    XS_TRY(w_.write_image_header(version));
    XS_TRY(w_.write_domain_header(first.hvm ? xc::kDomainX86Hvm : xc::kDomainX86Pv, major, minor));
    XS_TRY(write_static(first, version));

    if (!checkpointed) {
      XS_TRY(write_pages(*doms.front(), nullptr));
      XS_TRY(write_end_of_checkpoint(first));
      XS_TRY(w_.append(xc::RecordType::kEnd));
      if (libxl) {
        XS_TRY(write_emulator(first, nullptr));
        XS_TRY(w_.append(xl::RecordType::kEnd));
      }
    } else {
      for (std::size_t i = 0; i < doms.size(); ++i) {
        Domain* prev = i == 0 ? nullptr : doms[i - 1].get();
        XS_TRY(write_pages(*doms[i], prev));
        XS_TRY(write_end_of_checkpoint(*doms[i]));
        XS_TRY(w_.append(xc::RecordType::kCheckpoint));
        ++sum_.checkpoints;
        if (libxl) {
          XS_TRY(write_emulator(*doms[i], prev));
          XS_TRY(w_.append(xl::RecordType::kCheckpointEnd));
        }
      }
    }
    XS_TRY(sink_.flush());
    sum_.bytes = sink_.position() - start;
    return sum_;
  }

 private:
  Expected<void> write_libvirt_header(const Domain& d, const std::string& name) {
    std::string xml = "<domain type='xen'/>";
    if (name == "libvirt.xml") {
      auto v = read_file(d.path(name));
      if (!v) return std::move(v).error();
      xml.assign(reinterpret_cast<const char*>(v->data()), v->size());
    }
    LibvirtHeaderSpec h;
    h.version = format::libvirt::kVersionV2;
    h.xml = xml;
    const auto bytes = libvirt_header_bytes(h);
    return sink_.write(Bytes(bytes));
  }

  Expected<void> write_xl_header(const Domain& d, const std::string& name, bool libxl) {
    std::string config = "{}";
    bool is_json = true;
    if (name.rfind("xl-config", 0) == 0) {
      auto v = read_file(d.path(name));
      if (!v) return std::move(v).error();
      config.assign(reinterpret_cast<const char*>(v->data()), v->size());
      is_json = name.size() >= 5 && name.compare(name.size() - 5, 5, ".json") == 0;
    }
    XlHeaderSpec h;
    h.mandatory_flags = (libxl ? format::xl::kMandatoryStreamV2 : 0) | (is_json ? format::xl::kMandatoryJson : 0);
    h.config = config;
    const auto bytes = xl_header_bytes(h);
    return sink_.write(Bytes(bytes));
  }

  Expected<void> write_static(const Domain& d, std::uint32_t version) {
    const json& m = d.m;
    if (!d.hvm) {
      const json& pv = m.at("pv");
      XS_TRY(w_.append_x86_pv_info(pv.value("guest_width", std::uint8_t{8}),
                                   pv.value("pt_levels", std::uint8_t{4})));
    }
    if (version >= 3) {
      auto cpuid = blob(d, find(m, {"cpu_policy", "cpuid"}));
      if (!cpuid) return std::move(cpuid).error();
      auto msr = blob(d, find(m, {"cpu_policy", "msr"}));
      if (!msr) return std::move(msr).error();
      if (*cpuid) XS_TRY(w_.append(xc::RecordType::kX86CpuidPolicy, {bytes_of(**cpuid)}));
      if (*msr) XS_TRY(w_.append(xc::RecordType::kX86MsrPolicy, {bytes_of(**msr)}));
      XS_TRY(w_.append(xc::RecordType::kStaticDataEnd));
    }
    if (!d.hvm) {
      const json* p2m = find(m, {"pv", "p2m_frames"});
      if (p2m != nullptr) {
        auto frames = blob(d, p2m);
        if (!frames) return std::move(frames).error();
        std::vector<std::byte> head(8);
        put_u32(head.data(), (*p2m).value("start_pfn", 0u), w_.order());
        put_u32(head.data() + 4, (*p2m).value("end_pfn", 0u), w_.order());
        if (*frames) XS_TRY(w_.append(xc::RecordType::kX86PvP2mFrames, {bytes_of(head), bytes_of(**frames)}));
      }
    }
    return {};
  }

  // PAGE_DATA for every sent pfn of `d`, or with `prev` only those that
  // changed since `prev`.
  Expected<void> write_pages(Domain& d, Domain* prev) {
    std::vector<std::uint64_t> entries;
    // The pages, as stretches of memory.raw (or of zeros) in entry order.
    std::vector<RecordWriter::FilePages> pages;
    entries.reserve(o_.batch);
    auto flush = [&]() -> Expected<void> {
      if (entries.empty()) return {};
      XS_TRY(w_.append_file_pages(entries, pages));
      ++sum_.records;
      if (o_.progress) o_.progress(sum_.pages, sink_.position());
      // The sink has taken the pages (written or compressed them).
      const std::uint64_t next = (entries.back() & xc::kPfnMask) + 1;
      d.release_below(next);
      if (prev != nullptr) prev->release_below(next);
      entries.clear();
      pages.clear();
      return {};
    };
    for (const auto& [begin, run] : d.runs) {
      const auto [end, type] = run;
      const bool data = xc::page_type_has_data(static_cast<unsigned>(type));
      for (std::uint64_t pfn = begin; pfn < end; ++pfn) {
        if (prev != nullptr) {
          const int pt = prev->type_of(pfn);
          if (pt == type && (!data || std::memcmp(prev->page(pfn).data(), d.page(pfn).data(), kPage) == 0)) {
            continue;
          }
        }
        entries.push_back((static_cast<std::uint64_t>(type) << xc::kPfnTypeShift) | pfn);
        if (data) {
          const RecordWriter::FilePages p = d.source(pfn);
          if (!pages.empty() && pages.back().fd == p.fd &&
              (p.fd < 0 || pages.back().offset + kPage * pages.back().count == p.offset)) {
            ++pages.back().count;
          } else {
            pages.push_back(p);
          }
          ++sum_.pages;
        }
        if (entries.size() >= o_.batch) XS_TRY(flush());
      }
    }
    return flush();
  }

  Expected<void> write_end_of_checkpoint(const Domain& d) {
    const json& m = d.m;
    if (const json* t = find(m, {"tsc"})) {
      XS_TRY(w_.append_tsc_info(t->value("mode", 0u), t->value("khz", 0u), t->value("nsec", std::uint64_t{0}),
                                t->value("incarnation", 0u)));
    }
    if (d.hvm) {
      auto ctx = blob(d, find(m, {"hvm", "context"}));
      if (!ctx) return std::move(ctx).error();
      if (*ctx) XS_TRY(w_.append(xc::RecordType::kHvmContext, {bytes_of(**ctx)}));
      std::vector<std::pair<std::uint64_t, std::uint64_t>> params;
      if (const json* p = find(m, {"hvm", "params_by_index"})) {
        for (const auto& [k, v] : p->items()) params.emplace_back(std::stoull(k), v.get<std::uint64_t>());
        std::sort(params.begin(), params.end());
      }
      if (!params.empty()) XS_TRY(w_.append_hvm_params(params));
      return {};
    }
    auto shared = blob(d, find(m, {"pv", "shared_info"}));
    if (!shared) return std::move(shared).error();
    if (*shared) XS_TRY(w_.append(xc::RecordType::kSharedInfo, {bytes_of(**shared)}));
    const json* recs = find(m, {"vcpus", "records"});
    if (recs == nullptr) return {};
    std::vector<std::pair<std::uint32_t, const json*>> ids;
    for (const auto& [k, v] : recs->items()) ids.emplace_back(static_cast<std::uint32_t>(std::stoul(k)), &v);
    std::sort(ids.begin(), ids.end());
    const std::pair<const char*, xc::RecordType> kinds[] = {
        {"basic", xc::RecordType::kX86PvVcpuBasic},
        {"extended", xc::RecordType::kX86PvVcpuExtended},
        {"xsave", xc::RecordType::kX86PvVcpuXsave},
        {"msrs", xc::RecordType::kX86PvVcpuMsrs}};
    for (const auto& [id, node] : ids) {
      for (const auto& [name, type] : kinds) {
        auto b = blob(d, find(*node, {name}));
        if (!b) return std::move(b).error();
        if (*b) XS_TRY(w_.append_vcpu(type, id, bytes_of(**b)));
      }
    }
    return {};
  }

  // libxl EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT; with `prev`, only
  // those whose contents changed.
  Expected<void> write_emulator(const Domain& d, const Domain* prev) {
    const json* xs = find(d.m, {"emulator", "xenstore"});
    if (xs != nullptr) {
      std::ifstream in(d.path(xs->at("file").get<std::string>()));
      if (!in) return usage(d.path(xs->at("file").get<std::string>()) + ": cannot open");
      json j;
      try {
        j = json::parse(in);
      } catch (const json::exception& e) {
        return usage(d.path("xenstore.json") + ": " + e.what());
      }
      bool changed = true;
      if (prev != nullptr) {
        if (const json* pxs = find(prev->m, {"emulator", "xenstore"})) {
          std::ifstream pin(prev->path(pxs->at("file").get<std::string>()));
          try {
            changed = !pin || json::parse(pin) != j;
          } catch (const json::exception&) {
          }
        }
      }
      if (changed) {
        std::vector<std::pair<std::string, std::string>> pairs;
        for (const auto& [k, v] : j.at("keys").items()) pairs.emplace_back(k, v.get<std::string>());
        XS_TRY(w_.append_xenstore(j.value("emulator_id", 0u), j.value("index", 0u), pairs));
      }
    }
    const json* ctx = find(d.m, {"emulator", "context"});
    if (ctx != nullptr) {
      auto b = blob(d, ctx);
      if (!b) return std::move(b).error();
      bool changed = true;
      if (prev != nullptr) {
        auto pb = blob(*prev, find(prev->m, {"emulator", "context"}));
        if (pb && *pb && **pb == **b) changed = false;
      }
      if (changed && *b) {
        const Bytes part = bytes_of(**b);
        XS_TRY(w_.append_emulator(xl::RecordType::kEmulatorContext, ctx->value("emulator_id", 0u),
                                  ctx->value("index", 0u), std::span<const Bytes>(&part, 1)));
      }
    }
    return {};
  }

  Sink& sink_;
  const SaveOptions& o_;
  RecordWriter w_;
  Layout layout_ = Layout::kLibxl;
  SaveSummary sum_;
};

Expected<SaveSummary> save_all(const std::vector<std::string>& dirs, Sink& sink, const SaveOptions& opts,
                               bool checkpointed) {
  if (dirs.empty()) return usage("no directory given");
  if (opts.batch == 0 || opts.batch > 32702) return usage("batch must be between 1 and 32702");
  std::vector<std::unique_ptr<Domain>> doms;
  for (const auto& dir : dirs) {
    auto d = open_domain(dir);
    if (!d) return std::move(d).error();
    doms.push_back(std::move(*d));
  }
  try {
    Saver s(sink, opts, doms.front()->order);
    return s.run(doms, checkpointed);
  } catch (const std::exception& e) {  // json access on a malformed manifest
    return usage(dirs.front() + "/manifest.json: " + e.what());
  }
}

}  // namespace

Expected<SaveSummary> save_directory(const std::string& dir, Sink& sink, const SaveOptions& opts) {
  return save_all({dir}, sink, opts, false);
}

Expected<SaveSummary> save_checkpointed(const std::vector<std::string>& dirs, Sink& sink,
                                        const SaveOptions& opts) {
  return save_all(dirs, sink, opts, true);
}

}  // namespace xenstream::save
