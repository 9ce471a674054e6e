// Random access to guest memory: see guest_memory.h.
#include "tools/memview/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>

namespace xenstream::memview {

using format::libxc::PageType;
using format::libxc::RecordType;
namespace xl = format::libxl;

struct GuestMemory::Mapping {
  const std::byte* base = nullptr;
  std::size_t size = 0;
  bool owned = true;  // munmap on destruction
  ~Mapping() {
    if (owned && base != nullptr && size > 0) ::munmap(const_cast<std::byte*>(base), size);
  }
};

namespace {

Error usage(std::string m) { return make_error(ErrorCode::kUsage, 0, std::move(m)); }

constexpr std::uint64_t kMaxPfn52 = (std::uint64_t{1} << 52) - 1;

const std::array<std::byte, kPageSize>& zero_page() {
  static const std::array<std::byte, kPageSize> z{};
  return z;
}

Expected<std::unique_ptr<GuestMemory::Mapping>> map_file(const std::string& path, bool allow_empty) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return io_error(path, e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return usage(path + ": not a regular file (random access needs a file; save a pipe to a file first)");
  }
  auto m = std::make_unique<GuestMemory::Mapping>();
  m->size = static_cast<std::size_t>(st.st_size);
  if (m->size == 0) {
    ::close(fd);
    if (allow_empty) return m;
    return make_error(ErrorCode::kTruncated, 0, path + ": empty file");
  }
  void* p = ::mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    m->size = 0;
    return io_error(path + ": mmap", e);
  }
  m->base = static_cast<const std::byte*>(p);
  return m;
}

// The index while it is built: disjoint extents keyed by first pfn.
class ExtentMap {
 public:
  std::size_t size() const { return m_.size(); }

  // Sets [x.begin, x.end()) to x, whatever was there.
  void overwrite(const Extent& x) {
    const std::uint64_t b = x.begin, e = x.end();
    auto it = m_.lower_bound(b);
    if (it != m_.begin()) {
      auto prev = std::prev(it);
      if (prev->second.end() > b) {
        Extent tail = slice(prev->second, b, prev->second.end());
        prev->second = slice(prev->second, prev->second.begin, b);
        it = m_.emplace_hint(it, b, tail);
      }
    }
    while (it != m_.end() && it->first < e) {
      if (it->second.end() > e) {
        Extent tail = slice(it->second, e, it->second.end());
        it = m_.erase(it);
        m_.emplace_hint(it, e, tail);
        break;
      }
      it = m_.erase(it);
    }
    m_[b] = x;
  }

  // Sets the parts of [x.begin, x.end()) that are empty or hold a state in
  // `replaceable` to x.
  void fill(const Extent& x, std::initializer_list<PageState> replaceable) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces;
    std::uint64_t pos = x.begin;
    const std::uint64_t e = x.end();
    auto it = m_.upper_bound(pos);
    if (it != m_.begin()) --it;
    for (; it != m_.end() && it->first < e && pos < e; ++it) {
      const Extent& y = it->second;
      if (y.end() <= pos) continue;
      if (y.begin > pos) pieces.emplace_back(pos, y.begin);
      const bool repl = std::find(replaceable.begin(), replaceable.end(), y.state) != replaceable.end();
      if (repl) pieces.emplace_back(std::max(pos, y.begin), std::min(e, y.end()));
      pos = y.end();
    }
    if (pos < e) pieces.emplace_back(pos, e);
    for (const auto& [pb, pe] : pieces) {
      if (pb < pe) overwrite(slice(x, pb, pe));
    }
  }

  // The parts of [b, e) holding data get type `type`.
  void retype(std::uint64_t b, std::uint64_t e, std::uint8_t type) {
    std::vector<Extent> pieces;
    auto it = m_.upper_bound(b);
    if (it != m_.begin()) --it;
    for (; it != m_.end() && it->first < e; ++it) {
      const Extent& y = it->second;
      if (y.end() <= b || y.state != PageState::kData) continue;
      Extent p = slice(y, std::max(b, y.begin), std::min(e, y.end()));
      p.type = type;
      pieces.push_back(p);
    }
    for (const auto& p : pieces) overwrite(p);
  }

  // Sorted, adjacent compatible extents merged.
  std::vector<Extent> flatten() const {
    std::vector<Extent> out;
    out.reserve(m_.size());
    for (const auto& [b, x] : m_) {
      if (!out.empty()) {
        Extent& l = out.back();
        const bool contiguous = l.end() == x.begin && l.state == x.state && l.type == x.type &&
                                (x.state != PageState::kData || l.offset + std::uint64_t{l.count} * kPageSize == x.offset) &&
                                std::uint64_t{l.count} + x.count <= UINT32_MAX;
        if (contiguous) {
          l.count += x.count;
          continue;
        }
      }
      out.push_back(x);
    }
    out.shrink_to_fit();
    return out;
  }

  static Extent slice(const Extent& x, std::uint64_t b, std::uint64_t e) {
    Extent y = x;
    y.begin = b;
    y.count = static_cast<std::uint32_t>(e - b);
    if (x.state == PageState::kData) y.offset = x.offset + (b - x.begin) * kPageSize;
    return y;
  }

 private:
  std::map<std::uint64_t, Extent> m_;
};

void apply(ExtentMap& map, const Extent& x) {
  switch (x.state) {
    case PageState::kData: map.overwrite(x); break;
    case PageState::kZero: map.fill(x, {PageState::kXtab, PageState::kBroken}); break;
    case PageState::kXtab:
    case PageState::kBroken: map.fill(x, {}); break;
  }
}

PageState state_of(unsigned type) {
  if (format::libxc::page_type_has_data(type)) return PageState::kData;
  if (type == static_cast<unsigned>(PageType::kXalloc)) return PageState::kZero;
  if (type == static_cast<unsigned>(PageType::kBroken)) return PageState::kBroken;
  return PageState::kXtab;
}

std::optional<unsigned> type_by_name(std::string_view n) {
  static constexpr std::array<std::pair<std::string_view, unsigned>, 12> kNames = {{
      {"notab", 0x0}, {"l1tab", 0x1}, {"l2tab", 0x2}, {"l3tab", 0x3}, {"l4tab", 0x4},
      {"l1tab_pinned", 0x9}, {"l2tab_pinned", 0xA}, {"l3tab_pinned", 0xB}, {"l4tab_pinned", 0xC},
      {"broken", 0xD}, {"xalloc", 0xE}, {"xtab", 0xF},
  }};
  for (const auto& [name, t] : kNames) {
    if (name == n) return t;
  }
  return std::nullopt;
}

void finish_info(GuestInfo& info, const std::vector<Extent>& ex) {
  info.max_pfn = 0;
  info.pages_present = 0;
  for (const auto& x : ex) {
    if (x.state == PageState::kData || x.state == PageState::kZero) {
      info.pages_present += x.count;
      info.max_pfn = std::max(info.max_pfn, x.end() - 1);
    }
  }
}

}  // namespace

std::string_view page_state_name(PageState s) {
  switch (s) {
    case PageState::kData: return "data";
    case PageState::kZero: return "zero";
    case PageState::kXtab: return "xtab";
    case PageState::kBroken: return "broken";
  }
  return "?";
}

// Builds the index of a mapped stream (see guest_memory.h for the rules).
class StreamIndexer {
 public:
  StreamIndexer(GuestMemory& mem, const OpenOptions& opts, std::string name)
      : mem_(mem), opts_(opts), name_(std::move(name)) {}

  Expected<void> run() {
    const Bytes all(mem_.map_->base, mem_.map_->size);
    static constexpr std::array<unsigned char, 4> kZstd = {0x28, 0xB5, 0x2F, 0xFD};
    if (all.size() >= 4 && std::memcmp(all.data(), kZstd.data(), 4) == 0) {
      return usage(name_ + ": zstd-compressed; random access needs the plain stream (zstd -d first)");
    }
    MemorySource src(all, name_);
    auto c = read_container(src);
    if (!c) return std::move(c).error();
    if (c->payload == PayloadKind::kLegacy) {
      return usage(name_ + ": a legacy (pre-4.6) image; convert it with streamconv first");
    }
    bare_libxc_ = c->payload == PayloadKind::kLibxc;
    StreamCursor cur(src, c->payload);
    XS_TRY(cur.start());
    while (!cur.done()) {
      auto rec = cur.next();
      if (!rec) {
        if (checkpointed_ && commits_ > 0 && rec.error().code == ErrorCode::kTruncated) {
          mem_.info_.truncated = true;
          break;
        }
        return std::move(rec).error();
      }
      if (cur.libxc_domain() && !domain_seen_) {
        domain_seen_ = true;
        mem_.info_.hvm = cur.libxc_domain()->is_hvm();
        if (!mem_.info_.hvm && !cur.libxc_domain()->is_pv()) {
          return usage(name_ + ": domain type " + std::to_string(cur.libxc_domain()->type) +
                       " is not x86 PV or HVM");
        }
      }
      bool stop = false;
      XS_TRY(on_record(*rec, stop));
      if (stop) break;
    }
    if (commits_ == 0) {
      return make_error(ErrorCode::kTruncated, src.position(),
                        name_ + ": the stream holds no complete checkpoint (and no END)");
    }
    if (opts_.checkpoint && *opts_.checkpoint != commits_) {
      return usage(name_ + ": the stream holds only " + std::to_string(commits_) +
                   " complete checkpoint(s); --checkpoint " + std::to_string(*opts_.checkpoint) + " does not exist");
    }
    mem_.extents_ = committed_.flatten();
    finish_info(mem_.info_, mem_.extents_);
    mem_.info_.checkpoint = checkpointed_ ? commits_ : 0;
    mem_.info_.checkpoints = checkpointed_ ? commits_ : 0;
    mem_.info_.source = "stream";
    auto v = decode_vcpus();
    if (!v) {
      mem_.vcpus_.clear();
      mem_.info_.vcpu_error = v.error().describe();
    }
    return {};
  }

 private:
  Expected<void> on_record(const RecordView& rec, bool& stop) {
    if (rec.layer == Layer::kLibxl) {
      if (rec.type == static_cast<std::uint32_t>(xl::RecordType::kCheckpointEnd)) {
        checkpointed_ = true;
        return commit(stop);
      }
      if (rec.type == static_cast<std::uint32_t>(xl::RecordType::kEnd) && !checkpointed_) return commit(stop);
      return {};
    }
    switch (static_cast<RecordType>(rec.type)) {
      case RecordType::kPageData: return page_data(rec);
      case RecordType::kX86PvInfo: {
        auto v = decode_x86_pv_info(rec);
        if (!v) return std::move(v).error();
        mem_.info_.guest_width = v->guest_width;
        mem_.info_.pt_levels = v->pt_levels;
        return {};
      }
      case RecordType::kX86PvVcpuBasic: {
        auto v = decode_vcpu_blob(rec);
        if (!v) return std::move(v).error();
        pending_vcpus_[v->vcpu_id] = {rec.body.subspan(8), rec.body_offset() + 8};
        return {};
      }
      case RecordType::kHvmContext:
        pending_hvm_ = {rec.body, rec.body_offset()};
        return {};
      case RecordType::kCheckpoint:
        checkpointed_ = true;
        if (bare_libxc_) return commit(stop);
        return {};
      case RecordType::kEnd:
        if (bare_libxc_ && !checkpointed_) return commit(stop);
        return {};
      default: return {};
    }
  }

  Expected<void> page_data(const RecordView& rec) {
    auto pd = decode_page_data(rec);
    if (!pd) return std::move(pd).error();
    const std::uint64_t pages_off = rec.body_offset() + 8 + 8 * std::uint64_t{pd->count};
    std::uint64_t data_index = 0;
    std::optional<Extent> run;
    auto flush = [&]() -> Expected<void> {
      if (!run) return {};
      if (pending_.size() + committed_.size() >= opts_.max_extents) {
        return make_error(ErrorCode::kLimit, rec.offset,
                          rec.label() + ": the index would exceed " + std::to_string(opts_.max_extents) + " runs");
      }
      pending_.push_back(*run);
      run.reset();
      return {};
    };
    for (std::uint32_t i = 0; i < pd->count; ++i) {
      const std::uint64_t pfn = pd->pfn(i);
      const unsigned type = pd->type(i);
      const PageState st = state_of(type);
      const std::uint64_t off = st == PageState::kData ? pages_off + kPageSize * data_index : 0;
      if (st == PageState::kData) ++data_index;
      if (run && run->end() == pfn && run->state == st && run->type == type && run->count < UINT32_MAX) {
        ++run->count;
        continue;
      }
      XS_TRY(flush());
      run = Extent{pfn, off, 1, st, static_cast<std::uint8_t>(type)};
    }
    return flush();
  }

  Expected<void> commit(bool& stop) {
    for (const auto& x : pending_) apply(committed_, x);
    pending_.clear();
    if (committed_.size() > opts_.max_extents) {
      return make_error(ErrorCode::kLimit, 0, name_ + ": the index exceeds " + std::to_string(opts_.max_extents) + " runs");
    }
    for (const auto& [id, v] : pending_vcpus_) vcpus_[id] = v;
    pending_vcpus_.clear();
    if (pending_hvm_.first.data() != nullptr) hvm_ = pending_hvm_;
    pending_hvm_ = {};
    ++commits_;
    if (opts_.checkpoint && commits_ == *opts_.checkpoint) stop = true;
    return {};
  }

  Expected<void> decode_vcpus() {
    if (mem_.info_.hvm) {
      mem_.info_.guest_width = 8;
      mem_.info_.pt_levels = 4;
      if (hvm_.first.data() == nullptr) return {};
      auto cpus = decode_hvm_cpus(hvm_.first, hvm_.second);
      if (!cpus) return std::move(cpus).error();
      mem_.vcpus_ = std::move(*cpus);
      return {};
    }
    for (const auto& [id, v] : vcpus_) {
      auto r = decode_pv_vcpu(id, v.first, v.second);
      if (!r) return std::move(r).error();
      mem_.vcpus_.push_back(*r);
    }
    return {};
  }

  GuestMemory& mem_;
  OpenOptions opts_;
  std::string name_;
  bool bare_libxc_ = false;
  bool domain_seen_ = false;
  bool checkpointed_ = false;
  std::uint64_t commits_ = 0;
  ExtentMap committed_;
  std::vector<Extent> pending_;
  using Blob = std::pair<Bytes, std::uint64_t>;  // body, file offset
  std::map<std::uint32_t, Blob> pending_vcpus_, vcpus_;
  Blob pending_hvm_, hvm_;
};

Expected<std::unique_ptr<GuestMemory>> GuestMemory::open_stream(const std::string& path, const OpenOptions& opts) {
  auto map = map_file(path, false);
  if (!map) return std::move(map).error();
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  mem->map_ = std::move(*map);
  StreamIndexer ix(*mem, opts, path);
  XS_TRY(ix.run());
  ::madvise(const_cast<std::byte*>(mem->map_->base), mem->map_->size, MADV_RANDOM);
  return mem;
}

Expected<std::unique_ptr<GuestMemory>> GuestMemory::open_bytes(Bytes data, const OpenOptions& opts, std::string name) {
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  mem->map_ = std::make_unique<Mapping>();
  mem->map_->base = data.data();
  mem->map_->size = data.size();
  mem->map_->owned = false;
  StreamIndexer ix(*mem, opts, std::move(name));
  XS_TRY(ix.run());
  return mem;
}

Expected<std::unique_ptr<GuestMemory>> open_dir_impl(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::path(dir) / ".xenstream", ec)) {
    return usage(dir + ": holds .xenstream/ (an unfinished restore); run `streamrestore --recover " + dir + "` first");
  }
  std::ifstream in(fs::path(dir) / "manifest.json");
  if (!in) return usage(dir + ": no manifest.json (not a restored domain directory)");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return usage(dir + "/manifest.json: " + e.what());
  }
  auto map = map_file((fs::path(dir) / "memory.raw").string(), true);
  if (!map) return std::move(map).error();
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  mem->map_ = std::move(*map);
  const std::uint64_t file_pages = mem->map_->size / kPageSize;
  ExtentMap ex;
  try {
    const auto& memj = m.at("memory");
    for (const auto& r : memj.at("pfn_ranges")) {
      std::uint64_t b = r.at(0).get<std::uint64_t>();
      const std::uint64_t e = r.at(1).get<std::uint64_t>();
      if (e < b || e > file_pages) {
        return usage(dir + "/manifest.json: pfn range [" + hex(b) + ", " + hex(e) + ") is beyond memory.raw (" +
                     hex(file_pages) + " pages)");
      }
      while (b < e) {
        const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(e - b, UINT32_MAX));
        ex.overwrite(Extent{b, b * kPageSize, n, PageState::kData, 0});
        b += n;
      }
    }
    if (memj.contains("typed_ranges")) {
      for (const auto& r : memj.at("typed_ranges")) {
        std::uint64_t b = r.at(0).get<std::uint64_t>();
        const std::uint64_t e = std::min<std::uint64_t>(r.at(1).get<std::uint64_t>(), b + (std::uint64_t{1} << 40));
        const auto t = type_by_name(r.at(2).get<std::string>());
        if (!t || e <= b) continue;
        while (b < e) {
          const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(e - b, UINT32_MAX));
          if (*t == 0xF || *t == 0xD) {
            ex.fill(Extent{b, 0, n, *t == 0xF ? PageState::kXtab : PageState::kBroken, static_cast<std::uint8_t>(*t)}, {});
          } else if (format::libxc::page_type_has_data(*t)) {
            ex.retype(b, b + n, static_cast<std::uint8_t>(*t));
          }
          b += n;
        }
      }
    }
    const auto& d = m.at("domain");
    mem->info_.hvm = d.at("type").get<std::string>() == "hvm";
    if (!mem->info_.hvm && m.contains("pv") && m["pv"].is_object()) {
      mem->info_.guest_width = m["pv"].value("guest_width", 8u);
      mem->info_.pt_levels = m["pv"].value("pt_levels", 4u);
    }
  } catch (const nlohmann::json::exception& e) {
    return usage(dir + "/manifest.json: " + e.what());
  }
  mem->extents_ = ex.flatten();
  finish_info(mem->info_, mem->extents_);
  mem->info_.source = "dir";

  auto v = read_dir_vcpus(dir);
  if (v) {
    mem->vcpus_ = std::move(*v);
  } else {
    mem->info_.vcpu_error = v.error().describe();
  }
  return mem;
}

Expected<std::unique_ptr<GuestMemory>> GuestMemory::open_dir(const std::string& dir) { return open_dir_impl(dir); }

Expected<std::unique_ptr<GuestMemory>> GuestMemory::open(const std::string& path, const OpenOptions& opts) {
  if (path == "-") return usage("-: random access needs a file or a restored directory, not stdin (save the stream to a file first)");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    if (opts.checkpoint) return usage(path + ": --checkpoint applies to streams, not to a restored directory");
    return open_dir(path);
  }
  return open_stream(path, opts);
}

GuestMemory::~GuestMemory() = default;

const Extent* GuestMemory::find(std::uint64_t pfn) const {
  auto it = std::upper_bound(extents_.begin(), extents_.end(), pfn,
                             [](std::uint64_t p, const Extent& x) { return p < x.begin; });
  if (it == extents_.begin()) return nullptr;
  --it;
  return pfn < it->end() ? &*it : nullptr;
}

Expected<Bytes> GuestMemory::page(std::uint64_t pfn) const {
  const Extent* x = find(pfn);
  if (x == nullptr) return usage("pfn " + hex(pfn) + " is not present (never sent)");
  switch (x->state) {
    case PageState::kData: {
      const std::uint64_t off = x->offset + (pfn - x->begin) * kPageSize;
      if (off > map_->size || map_->size - off < kPageSize) {
        return make_error(ErrorCode::kTruncated, off, "pfn " + hex(pfn) + ": page [" + hex(off) + ", " +
                                                          hex(off + kPageSize) + ") is beyond the file's end");
      }
      return Bytes(map_->base + off, kPageSize);
    }
    case PageState::kZero: return Bytes(zero_page());
    case PageState::kXtab: return usage("pfn " + hex(pfn) + " is not present (XTAB: no page behind it)");
    case PageState::kBroken: return usage("pfn " + hex(pfn) + " is not present (BROKEN: lost on the saving host)");
  }
  return usage("pfn " + hex(pfn) + " is not present");
}

Expected<Bytes> GuestMemory::read(std::uint64_t gpa, std::uint64_t len, std::vector<std::byte>& scratch) const {
  if (len == 0) return Bytes();
  if (gpa + len < gpa || ((gpa + len - 1) >> 12) > kMaxPfn52) {
    return usage("guest-physical range [" + hex(gpa) + ", " + hex(gpa + len) + ") is beyond the 52-bit pfn space");
  }
  const std::uint64_t pfn = gpa / kPageSize;
  const Extent* x = find(pfn);
  if (x != nullptr && x->state == PageState::kData && gpa + len <= x->end() * kPageSize) {
    auto first = page(pfn);
    if (!first) return std::move(first).error();
    const std::uint64_t off = x->offset + (gpa - x->begin * kPageSize);
    if (off + len <= map_->size) return Bytes(map_->base + off, len);
  }
  if (len > (std::uint64_t{1} << 32)) return usage("a read crossing runs is limited to 4 GiB");
  scratch.resize(len);
  std::uint64_t done = 0;
  while (done < len) {
    const std::uint64_t a = gpa + done;
    auto p = page(a / kPageSize);
    if (!p) return std::move(p).error();
    const std::uint64_t in = a % kPageSize;
    const std::uint64_t n = std::min(len - done, kPageSize - in);
    std::memcpy(scratch.data() + done, p->data() + in, n);
    done += n;
  }
  return Bytes(scratch.data(), len);
}

Expected<const VcpuRegs*> GuestMemory::vcpu(std::uint32_t id) const {
  for (const auto& v : vcpus_) {
    if (v.id == id) return &v;
  }
  if (!info_.vcpu_error.empty()) {
    return make_error(ErrorCode::kMalformed, 0, "no vcpu state: " + info_.vcpu_error);
  }
  return usage("no vcpu " + std::to_string(id) + " in the image (it has " + std::to_string(vcpus_.size()) + ")");
}

EntryReader GuestMemory::entry_reader() const {
  return [this](std::uint64_t gpa, unsigned size) -> Expected<std::uint64_t> {
    auto p = page(gpa / kPageSize);
    if (!p) return std::move(p).error();
    const Fields f(*p, ByteOrder::kLittle, 0);
    const std::size_t in = gpa % kPageSize;
    if (!f.fits(in, size)) return usage("entry at " + hex(gpa) + " crosses a page");
    return size == 4 ? std::uint64_t{f.u32(in)} : f.u64(in);
  };
}

Expected<Translation> GuestMemory::translate(std::uint32_t vcpu_id, std::uint64_t gva, bool user) const {
  auto v = vcpu(vcpu_id);
  if (!v) return std::move(v).error();
  auto root = paging_root(**v, info_.max_pfn, user);
  if (!root) return std::move(root).error();
  if (!info_.hvm) {
    // A PV guest's top-level table has the type Xen validated it as.
    const std::uint64_t top = root->cr3 >> 12;
    const Extent* x = find(top);
    const unsigned want = info_.guest_width == 8 ? 4 : 3;
    if (x != nullptr && x->state == PageState::kData && (x->type & 7) != want) {
      return make_error(ErrorCode::kMalformed, 0,
                        "vcpu " + std::to_string(vcpu_id) + ": cr3 pfn " + hex(top) + " is not an L" +
                            std::to_string(want) + " page table (its PAGE_DATA type is " + hex(x->type) + ")");
    }
  }
  return memview::translate(*root, gva, entry_reader());
}

std::vector<PfnRange> present_ranges(const GuestMemory& mem) {
  std::vector<PfnRange> out;
  for (const auto& x : mem.extents()) {
    if (x.state != PageState::kData && x.state != PageState::kZero) continue;
    if (!out.empty() && out.back().end == x.begin) {
      out.back().end = x.end();
    } else {
      out.push_back({x.begin, x.end()});
    }
  }
  return out;
}

}  // namespace xenstream::memview
