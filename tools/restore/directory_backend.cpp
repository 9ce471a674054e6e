#include "tools/restore/manifest.h"
#include "tools/restore/directory_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <xenstream/libstream/format/libxc.h>

namespace xenstream::restore {

namespace xc = format::libxc;
using nlohmann::json;

namespace {

constexpr std::uint64_t kPage = xc::kPageSize;
constexpr char kStageDir[] = "stage";
constexpr char kPagesName[] = "pages";
constexpr char kLockName[] = "lock";
constexpr char kJournalName[] = "journal";
constexpr char kJournalTmpName[] = "journal.tmp";
constexpr char kManifestTmpName[] = "manifest.tmp";
// Largest journal recovery will read: 16 octets per page entry of the
// largest staged checkpoint, with room to spare.
constexpr std::uint64_t kMaxJournalSize = std::uint64_t{1} << 32;
constexpr std::uint64_t kMaxManifestSize = std::uint64_t{1} << 30;
constexpr std::size_t kCopyPages = 256;  // 1 MiB per copy when applying a journal

bool is_zero_page(const std::byte* p) {
  for (std::size_t i = 0; i < kPage; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) return false;
  }
  return true;
}

Bytes as_bytes(const std::string& s) {
  return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

std::uint64_t pfn_of(std::uint64_t entry) { return entry & xc::kPfnMask; }
unsigned type_of(std::uint64_t entry) { return static_cast<unsigned>(entry >> xc::kPfnTypeShift); }

// Takes the restore lock on DIR/.xenstream/lock without waiting. A POSIX
// record lock, not flock(): it belongs to this process and is not inherited
// by the hooks and device models it forks, so a killed restore releases it
// at once even while a child of it still runs. (Consequence: recovering a
// directory from inside the process that restores into it is not refused;
// do not do that.)
Expected<UniqueFd> take_lock(int work_fd, const std::string& dir) {
  auto fd = open_at(work_fd, kLockName, O_RDWR | O_CREAT, 0644);
  if (!fd) return std::move(fd).error();
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // the whole file
  if (::fcntl(fd->get(), F_SETLK, &fl) != 0) {
    if (errno == EACCES || errno == EAGAIN) {
      return make_error(ErrorCode::kUsage, 0,
                        dir + ": a restore into this directory is still running");
    }
    return io_error("cannot lock " + dir + "/" + kWorkDirName + "/" + kLockName, errno);
  }
  return fd;
}

Expected<void> write_journal(int work_fd, const Journal& j, bool durable,
                             const std::function<void(std::string_view)>& on_step) {
  const std::vector<std::byte> data = encode_journal(j);
  const Bytes part(data);
  XS_TRY(write_file_at(work_fd, kJournalTmpName, std::span<const Bytes>(&part, 1), durable));
  on_step("journal-tmp");
  if (::renameat(work_fd, kJournalTmpName, work_fd, kJournalName) != 0) {
    return io_error("cannot rename the commit journal into place", errno);
  }
  if (durable) XS_TRY(fsync_fd(work_fd, kWorkDirName));
  on_step("journal");
  return {};
}

// Copies `len` octets from the staged pages to memory.raw inside the kernel
// (copy_file_range: no trip through this process, and a reflink where the
// file system can), falling back to pread/pwrite through `buf`.
Expected<void> copy_range(int from, std::uint64_t from_off, int to, std::uint64_t to_off,
                          std::uint64_t len, std::vector<std::byte>& buf) {
  while (len > 0) {
    auto in = static_cast<loff_t>(from_off);
    auto out = static_cast<loff_t>(to_off);
    const ssize_t n = ::copy_file_range(from, &in, to, &out, static_cast<std::size_t>(len), 0);
    if (n > 0) {
      from_off += static_cast<std::uint64_t>(n);
      to_off += static_cast<std::uint64_t>(n);
      len -= static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      return make_error(ErrorCode::kIo, 0, "the staged pages end at " + hex(from_off));
    }
    if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL) {
      return io_error("copying staged pages into memory.raw at " + hex(to_off) + " failed", errno);
    }
    buf.resize(kCopyPages * kPage);
    const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(len, buf.size()));
    const std::span<std::byte> chunk(buf.data(), step);
    XS_TRY(pread_all(from, chunk, from_off, "the staged pages"));
    XS_TRY(pwrite_all(to, chunk, to_off, kMemoryName));
    from_off += step;
    to_off += step;
    len -= step;
  }
  return {};
}

}  // namespace

std::string_view vcpu_record_name(VcpuRecord kind) {
  switch (kind) {
    case VcpuRecord::kBasic: return "basic";
    case VcpuRecord::kExtended: return "extended";
    case VcpuRecord::kXsave: return "xsave";
    case VcpuRecord::kMsrs: return "msrs";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Journal application, shared by commits and recovery.

Expected<void> apply_journal(const Journal& j, int dir_fd, int work_fd, bool durable,
                             const std::function<void(std::string_view)>& on_step) {
  auto step = [&](std::string_view s) {
    if (on_step) on_step(s);
  };
  if (!j.pages.empty()) {
    auto mem = open_at(dir_fd, kMemoryName, O_RDWR);
    if (!mem) return std::move(mem).error();
    auto pages = open_at(work_fd, kPagesName, O_RDONLY);
    if (!pages) return std::move(pages).error();
    std::vector<std::byte> buf;
    const std::size_t n = j.pages.size();
    bool half_done = false;
    std::size_t i = 0;
    while (i < n) {
      if (j.pages[i].slot == Journal::kNoData) {
        ++i;
        continue;
      }
      // A run of consecutive pfns whose pages are consecutive in the staged
      // file moves with one read and one write.
      const std::uint64_t pfn = pfn_of(j.pages[i].entry);
      const std::uint64_t slot = j.pages[i].slot;
      std::size_t len = 1;
      while (i + len < n && len < kCopyPages && j.pages[i + len].slot == slot + len &&
             pfn_of(j.pages[i + len].entry) == pfn + len) {
        ++len;
      }
      XS_TRY(copy_range(pages->get(), slot * kPage, mem->get(), pfn * kPage, len * kPage, buf));
      i += len;
      if (!half_done && i >= n / 2) {
        half_done = true;
        step("pages-half");
      }
    }
    if (!half_done) step("pages-half");
    if (durable) XS_TRY(fsync_fd(mem->get(), kMemoryName));
  } else {
    step("pages-half");
  }
  // memory.raw grows to cover every populated pfn (trailing holes read as
  // zeros). Before the first commit it is still in stage/, sized already.
  if (exists_at(dir_fd, kMemoryName)) {
    auto mem = open_at(dir_fd, kMemoryName, O_RDWR);
    if (!mem) return std::move(mem).error();
    struct stat st {};
    if (::fstat(mem->get(), &st) != 0) return io_error("cannot stat memory.raw", errno);
    if (static_cast<std::uint64_t>(st.st_size) < j.memory_size) {
      if (::ftruncate(mem->get(), static_cast<off_t>(j.memory_size)) != 0) {
        return io_error("cannot extend memory.raw to " + hex(j.memory_size), errno);
      }
    }
  }
  step("pages");
  auto stage = open_at(work_fd, kStageDir, O_RDONLY | O_DIRECTORY);
  if (!stage) return std::move(stage).error();
  bool first = true;
  for (const auto& r : j.renames) {
    if (::renameat(stage->get(), r.from.c_str(), dir_fd, r.to.c_str()) != 0 && errno != ENOENT) {
      return io_error("cannot move staged " + r.from + " into place", errno);
    }
    if (first) {
      first = false;
      step("renamed-one");
    }
  }
  if (durable) XS_TRY(fsync_fd(dir_fd, "the restored-domain directory"));
  step("renamed");
  return {};
}

// ---------------------------------------------------------------------------

DirectoryBackend::DirectoryBackend(DirectoryOptions options) : opts_(std::move(options)) {}

DirectoryBackend::~DirectoryBackend() = default;

Expected<std::unique_ptr<DirectoryBackend>> DirectoryBackend::create(DirectoryOptions options) {
  std::unique_ptr<DirectoryBackend> b(new DirectoryBackend(std::move(options)));
  XS_TRY(b->open_dir());
  return b;
}

Expected<void> DirectoryBackend::open_dir() {
  const std::string& dir = opts_.dir;
  if (dir.empty()) return make_error(ErrorCode::kUsage, 0, "no output directory given");
  if (::mkdir(dir.c_str(), 0755) == 0) {
    created_dir_ = true;
  } else if (errno != EEXIST) {
    return io_error("cannot create " + dir, errno);
  }
  auto dfd = open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
  if (!dfd) {
    Error e = std::move(dfd).error();
    if (e.code == ErrorCode::kIo) e.code = ErrorCode::kUsage;
    e.message = dir + " is not a directory I can open: " + e.message;
    return e;
  }
  dir_fd_ = std::move(dfd).value();
  if (!created_dir_) {
    // The directory must be empty: a restore writes a new domain, it never
    // merges into an old one.
    const int dup = ::dup(dir_fd_.get());
    if (dup < 0) return io_error("dup", errno);
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
      ::close(dup);
      return io_error("cannot list " + dir, errno);
    }
    std::string found;
    while (dirent* ent = ::readdir(d)) {
      const std::string n = ent->d_name;
      if (n == "." || n == "..") continue;
      if (n == kWorkDirName || found.empty()) found = n;
    }
    ::closedir(d);
    if (found == kWorkDirName) {
      return make_error(ErrorCode::kUsage, 0,
                        dir + " holds an interrupted restore (" + kWorkDirName +
                            "/); run `streamrestore --recover " + dir + "` first");
    }
    if (!found.empty()) {
      return make_error(ErrorCode::kUsage, 0,
                        dir + " is not empty (it holds " + found +
                            "); streamrestore writes into a new or empty directory");
    }
  }
  if (::mkdirat(dir_fd_.get(), kWorkDirName, 0755) != 0) {
    return io_error("cannot create " + dir + "/" + kWorkDirName, errno);
  }
  auto work = open_at(dir_fd_.get(), kWorkDirName, O_RDONLY | O_DIRECTORY);
  if (!work) return std::move(work).error();
  work_fd_ = std::move(work).value();
  auto lock = take_lock(work_fd_.get(), dir);
  if (!lock) return std::move(lock).error();
  lock_fd_ = std::move(lock).value();
  if (::mkdirat(work_fd_.get(), kStageDir, 0755) != 0) {
    return io_error("cannot create the staging directory", errno);
  }
  auto stage = open_at(work_fd_.get(), kStageDir, O_RDONLY | O_DIRECTORY);
  if (!stage) return std::move(stage).error();
  stage_fd_ = std::move(stage).value();
  auto mem = open_at(stage_fd_.get(), kMemoryName, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (!mem) return std::move(mem).error();
  mem_fd_ = std::move(mem).value();
  staged_files_.insert(kMemoryName);
  return {};
}

Expected<void> DirectoryBackend::stage_file(const std::string& name, std::span<const Bytes> parts,
                                            unsigned mode) {
  XS_TRY(write_file_at(stage_fd_.get(), name, parts, opts_.fsync, mode));
  staged_files_.insert(name);
  touch();
  return {};
}

Expected<void> DirectoryBackend::start(const DomainInfo& info) {
  info_ = info;
  started_ = true;
  touch();
  const std::string config = config_file_name(info.container);
  if (!config.empty()) {
    // The embedded configuration, without the NUL a JSON config carries.
    std::string text = info.container.xl ? info.container.xl->config : info.container.libvirt->xml;
    while (!text.empty() && text.back() == '\0') text.pop_back();
    XS_TRY(stage_file(config, as_bytes(text)));
  }
  return {};
}

Expected<void> DirectoryBackend::apply_pages(const PageDataView& v) {
  touch();
  return commits_ == 0 ? apply_direct(v) : apply_staged(v, nullptr);
}

Expected<void> DirectoryBackend::apply_pages_from(const PageDataView& v, Source& in) {
  touch();
  return commits_ == 0 ? apply_direct_from(v, in) : apply_staged(v, &in);
}

// Before the first commit nothing is visible yet, so pages go straight into
// the staged memory.raw: consecutive pfns whose data is consecutive in the
// record become one pwrite() from the source's buffer.
Expected<void> DirectoryBackend::apply_direct(const PageDataView& v) {
  const std::byte* data = v.pages.data();
  std::uint64_t run_pfn = 0;
  const std::byte* run_ptr = nullptr;
  std::size_t run_pages = 0;
  auto flush = [&]() -> Expected<void> {
    if (run_pages == 0) return {};
    XS_TRY(pwrite_all(mem_fd_.get(), Bytes(run_ptr, run_pages * kPage), run_pfn * kPage,
                      kMemoryName));
    run_pages = 0;
    return {};
  };
  std::size_t page = 0;
  for (std::uint32_t i = 0; i < v.count; ++i) {
    const std::uint64_t pfn = v.pfn(i);
    const unsigned t = v.type(i);
    std::uint8_t& m = map_.at(pfn);
    if (xc::page_type_has_data(t)) {
      const std::byte* p = data + page * kPage;
      ++page;
      // An all-zero page for a pfn never written stays a hole.
      if (!(m & PageMap::kWritten) && is_zero_page(p)) {
        XS_TRY(flush());
      } else {
        if (run_pages > 0 && pfn == run_pfn + run_pages && p == run_ptr + run_pages * kPage) {
          ++run_pages;
        } else {
          XS_TRY(flush());
          run_pfn = pfn;
          run_ptr = p;
          run_pages = 1;
        }
        m |= PageMap::kWritten;
      }
    }
    m = static_cast<std::uint8_t>((m & ~PageMap::kTypeMask) | t | PageMap::kSeen |
                                  (xc::page_type_populates(t) ? PageMap::kPopulated : 0));
  }
  return flush();
}

// apply_direct() with the data moved from the input by Source::transfer():
// a run of consecutive pfns is one transfer into memory.raw at its offset.
// Zero pages stay holes as in apply_direct(): where a run has pfns with no
// data written yet, it goes through Source::transfer_pages(), which shows
// each page before writing it (from a pipe, a copy made with tee(2) while
// the page itself goes to the file inside the kernel), and a zero page for
// such a pfn is not written at all.
Expected<void> DirectoryBackend::apply_direct_from(const PageDataView& v, Source& in) {
  std::uint64_t run_pfn = 0;
  std::uint64_t run_pages = 0;
  bool run_fresh = false;  // a pfn of the run has had no data written yet
  const Source::PageFilter keep = [&](std::uint64_t index, Bytes page) {
    std::uint8_t& m = map_.at(run_pfn + index);
    if (m & PageMap::kWritten) return true;
    if (is_zero_page(page.data())) return false;
    m |= PageMap::kWritten;
    return true;
  };
  auto flush = [&]() -> Expected<void> {
    if (run_pages == 0) return {};
    if (run_fresh) {
      XS_TRY(in.transfer_pages(run_pages, mem_fd_.get(), run_pfn * kPage, keep, "the data pages"));
    } else {
      XS_TRY(in.transfer(run_pages * kPage, mem_fd_.get(), run_pfn * kPage, "the data pages"));
    }
    run_pages = 0;
    run_fresh = false;
    return {};
  };
  for (std::uint32_t i = 0; i < v.count; ++i) {
    const std::uint64_t pfn = v.pfn(i);
    const unsigned t = v.type(i);
    std::uint8_t& m = map_.at(pfn);
    if (xc::page_type_has_data(t)) {
      if (!(run_pages > 0 && pfn == run_pfn + run_pages)) {
        XS_TRY(flush());
        run_pfn = pfn;
      }
      ++run_pages;
      if (!(m & PageMap::kWritten)) run_fresh = true;
    }
    m = static_cast<std::uint8_t>((m & ~PageMap::kTypeMask) | t | PageMap::kSeen |
                                  (xc::page_type_populates(t) ? PageMap::kPopulated : 0));
  }
  return flush();
}

// After the first commit, pages are appended to the staged-pages file and
// indexed; commit() moves them into memory.raw through the journal.
Expected<void> DirectoryBackend::apply_staged(const PageDataView& v, Source* in) {
  if (staged_.size() + v.count > opts_.max_staged_pages) {
    return make_error(ErrorCode::kLimit, 0,
                      "checkpoint " + std::to_string(checkpoint_ + 1) + " stages more than " +
                          std::to_string(opts_.max_staged_pages) + " page entries");
  }
  if (!pages_fd_.valid()) {
    auto pages = open_at(work_fd_.get(), kPagesName, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (!pages) return std::move(pages).error();
    pages_fd_ = std::move(pages).value();
  }
  std::uint64_t slot = staged_slots_;
  for (std::uint32_t i = 0; i < v.count; ++i) {
    const std::uint64_t e = v.entry(i) & (xc::kPfnTypeMask | xc::kPfnMask);
    if (xc::page_type_has_data(type_of(e))) {
      staged_.push_back({e, slot++});
    } else {
      staged_.push_back({e, Journal::kNoData});
    }
  }
  if (in != nullptr) {
    // Straight from the input into the staged pages (Source::transfer).
    XS_TRY(in->transfer(std::uint64_t{v.data_pages} * kPage, pages_fd_.get(), staged_slots_ * kPage,
                        "the data pages"));
  } else if (!v.pages.empty()) {
    XS_TRY(pwrite_all(pages_fd_.get(), v.pages, staged_slots_ * kPage, "the staged pages"));
  }
  staged_slots_ = slot;
  return {};
}

Expected<std::uint64_t> DirectoryBackend::verify_pages(const PageDataView& v) {
  std::vector<std::byte> buf(kPage);
  std::uint64_t mismatches = 0;
  struct stat st {};
  if (::fstat(mem_fd_.get(), &st) != 0) return io_error("cannot stat memory.raw", errno);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::size_t page = 0;
  for (std::uint32_t i = 0; i < v.count; ++i) {
    if (!xc::page_type_has_data(v.type(i))) continue;
    const std::byte* p = v.pages.data() + page * kPage;
    ++page;
    const std::uint64_t off = v.pfn(i) * kPage;
    if (off + kPage <= size) {
      XS_TRY(pread_all(mem_fd_.get(), buf, off, kMemoryName));
    } else {
      std::fill(buf.begin(), buf.end(), std::byte{0});
    }
    if (std::memcmp(buf.data(), p, kPage) != 0) ++mismatches;
  }
  return mismatches;
}

Expected<void> DirectoryBackend::set_x86_pv_info(const X86PvInfoView& info) {
  pending_.pv_info = info;
  touch();
  return {};
}

Expected<void> DirectoryBackend::set_p2m_frames(const P2mFramesView& f) {
  XS_TRY(stage_file(kP2mFramesName, f.frames.bytes()));
  const std::uint64_t records = pending_.p2m ? pending_.p2m->records + 1 : 1;
  pending_.p2m = DomainState::P2m{f.start_pfn, f.end_pfn, f.count(), records};
  return {};
}

Expected<void> DirectoryBackend::set_vcpu(VcpuRecord kind, std::uint32_t vcpu_id, Bytes blob) {
  XS_TRY(stage_file(vcpu_file_name(vcpu_id, kind), blob));
  pending_.vcpus[vcpu_id][static_cast<unsigned>(kind)] = blob.size();
  return {};
}

Expected<void> DirectoryBackend::set_shared_info(Bytes page) {
  XS_TRY(stage_file(kSharedInfoName, page));
  pending_.shared_info_size = page.size();
  return {};
}

Expected<void> DirectoryBackend::set_tsc_info(const TscInfoView& tsc) {
  pending_.tsc = tsc;
  touch();
  return {};
}

Expected<void> DirectoryBackend::set_hvm_context(Bytes blob) {
  XS_TRY(stage_file(kHvmContextName, blob));
  pending_.hvm_context_size = blob.size();
  pending_.hvm_context_vcpus = hvm_context_cpus(blob);
  return {};
}

Expected<void> DirectoryBackend::set_hvm_params(const HvmParamsView& p) {
  for (std::uint32_t i = 0; i < p.count; ++i) pending_.hvm_params[p.index(i)] = p.value(i);
  touch();
  return {};
}

Expected<void> DirectoryBackend::set_cpu_policy(CpuPolicy kind, Bytes body) {
  XS_TRY(stage_file(policy_file_name(kind), body));
  pending_.policies[static_cast<unsigned>(kind)] = body.size();
  return {};
}

Expected<void> DirectoryBackend::static_data_end() {
  pending_.static_data_end = true;
  touch();
  return {};
}

Expected<void> DirectoryBackend::set_emulator_xenstore(
    std::uint32_t id, std::uint32_t index,
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  // libxl writes each pair into the device model's xenstore directory, so
  // later records add to (and override) earlier ones.
  for (const auto& [k, v] : pairs) pending_.xenstore[k] = v;
  pending_.xenstore_ids = std::make_pair(id, index);
  ++pending_.xenstore_records;
  xenstore_dirty_ = true;
  touch();
  return {};
}

Expected<void> DirectoryBackend::set_emulator_context(std::uint32_t id, std::uint32_t index,
                                                      Bytes data) {
  // libxl creates its restore file with mode 0600 and the last record wins.
  XS_TRY(stage_file(emulator_file_name(info_.domid), data, 0600));
  const std::uint64_t records = pending_.emulator ? pending_.emulator->records + 1 : 1;
  pending_.emulator = DomainState::Emulator{id, index, data.size(), records};
  return {};
}

Expected<void> DirectoryBackend::commit(const CommitInfo& info) {
  auto r = do_commit(info);
  if (!r) broken_ = true;
  return r;
}

Expected<void> DirectoryBackend::do_commit(const CommitInfo& info) {
  if (broken_) return make_error(ErrorCode::kUsage, 0, "commit after a failed commit");
  if (!started_) return make_error(ErrorCode::kUsage, 0, "commit before the domain headers");
  const std::uint64_t k = info.checkpoint;
  auto on_step = [this, k](std::string_view s) { step(s, k); };
  Journal j;
  j.checkpoint = k;
  if (commits_ > 0) {
    // One journal entry per pfn: the last entry's type, the last data.
    std::stable_sort(staged_.begin(), staged_.end(), [](const JournalPage& a, const JournalPage& b) {
      return pfn_of(a.entry) < pfn_of(b.entry);
    });
    j.pages.reserve(staged_.size());
    for (std::size_t i = 0; i < staged_.size();) {
      const std::uint64_t pfn = pfn_of(staged_[i].entry);
      std::uint64_t slot = Journal::kNoData;
      bool populates = false;
      std::size_t e = i;
      for (; e < staged_.size() && pfn_of(staged_[e].entry) == pfn; ++e) {
        if (staged_[e].slot != Journal::kNoData) slot = staged_[e].slot;
        populates = populates || xc::page_type_populates(type_of(staged_[e].entry));
      }
      const unsigned t = type_of(staged_[e - 1].entry);
      std::uint8_t& m = map_.at(pfn);
      m = static_cast<std::uint8_t>((m & (PageMap::kPopulated | PageMap::kWritten)) | t |
                                    PageMap::kSeen | (populates ? PageMap::kPopulated : 0) |
                                    (slot != Journal::kNoData ? PageMap::kWritten : 0));
      j.pages.push_back({(std::uint64_t{t} << xc::kPfnTypeShift) | pfn, slot});
      i = e;
    }
  }
  j.memory_size = map_.populated_end() * kPage;
  if (commits_ == 0 && ::ftruncate(mem_fd_.get(), static_cast<off_t>(j.memory_size)) != 0) {
    return io_error("cannot size memory.raw to " + hex(j.memory_size), errno);
  }
  if (xenstore_dirty_) {
    XS_TRY(stage_file(kXenstoreName, as_bytes(json_text(xenstore_json(pending_), 2) + "\n")));
  }
  pending_.files.insert(staged_files_.begin(), staged_files_.end());
  const json manifest = build_manifest(
      ManifestInput{&info_, &pending_, &map_, k, &info.facts, "in-progress", nullptr});
  XS_TRY(write_file_at(stage_fd_.get(), kManifestName,
                       std::initializer_list<Bytes>{as_bytes(json_text(manifest, 2) + "\n")}, opts_.fsync));
  if (opts_.fsync) {
    if (commits_ == 0) XS_TRY(fsync_fd(mem_fd_.get(), "memory.raw"));
    if (pages_fd_.valid()) XS_TRY(fsync_fd(pages_fd_.get(), "the staged pages"));
    XS_TRY(fsync_fd(stage_fd_.get(), "the staging directory"));
  }
  step("staged", k);

  // memory.raw moves first and the manifest last, so that a reader who
  // ignores the journal never sees a manifest without its files.
  if (staged_files_.count(kMemoryName)) j.renames.push_back({kMemoryName, kMemoryName});
  for (const auto& name : staged_files_) {
    if (name != kMemoryName) j.renames.push_back({name, name});
  }
  j.renames.push_back({kManifestName, kManifestName});

  XS_TRY(write_journal(work_fd_.get(), j, opts_.fsync, on_step));
  journal_pending_ = true;
  XS_TRY(apply_journal(j, dir_fd_.get(), work_fd_.get(), opts_.fsync, on_step));
  if (::unlinkat(work_fd_.get(), kJournalName, 0) != 0) {
    return io_error("cannot remove the commit journal", errno);
  }
  if (opts_.fsync) XS_TRY(fsync_fd(work_fd_.get(), kWorkDirName));
  journal_pending_ = false;
  step("done", k);

  // The next checkpoint starts empty. The index is released, not just
  // cleared, so that one large checkpoint does not pin its memory.
  std::vector<JournalPage>().swap(staged_);
  staged_slots_ = 0;
  if (pages_fd_.valid() && ::ftruncate(pages_fd_.get(), 0) != 0) {
    return io_error("cannot truncate the staged pages", errno);
  }
  staged_files_.clear();
  xenstore_dirty_ = false;
  committed_ = pending_;
  uncommitted_ = false;
  ++commits_;
  checkpoint_ = k;
  last_facts_ = info.facts;
  return {};
}

Expected<void> DirectoryBackend::discard() {
  if (commits_ == 0) {
    return make_error(ErrorCode::kUsage, 0, "discard before the first commit; abandon instead");
  }
  std::vector<JournalPage>().swap(staged_);
  staged_slots_ = 0;
  Expected<void> result;
  if (pages_fd_.valid() && ::ftruncate(pages_fd_.get(), 0) != 0) {
    result = io_error("cannot truncate the staged pages", errno);
  }
  for (const auto& name : staged_files_) {
    if (::unlinkat(stage_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT && result) {
      result = io_error("cannot remove staged " + name, errno);
    }
  }
  staged_files_.clear();
  xenstore_dirty_ = false;
  pending_ = committed_;
  uncommitted_ = false;
  return result;
}

Expected<void> DirectoryBackend::finish(const FinishInfo& info) {
  if (broken_) {
    if (journal_pending_) {
      return make_error(ErrorCode::kIo, 0,
                        "the commit of checkpoint " + std::to_string(checkpoint_ + 1) +
                            " stopped half-way; run `streamrestore --recover " + opts_.dir +
                            "` to complete it");
    }
    mem_fd_.reset();
    pages_fd_.reset();
    stage_fd_.reset();
    return remove_tree_at(dir_fd_.get(), kWorkDirName);
  }
  if (commits_ == 0) return make_error(ErrorCode::kUsage, 0, "finish before the first commit");
  if (uncommitted_) XS_TRY(discard());
  if (info.replay && exists_at(dir_fd_.get(), kEmulatorLogName)) {
    committed_.files.insert(kEmulatorLogName);
  }
  const char* status = info.outcome == Outcome::kComplete   ? "complete"
                       : info.outcome == Outcome::kFailover ? "failover"
                                                            : "rejected";
  const json manifest = build_manifest(
      ManifestInput{&info_, &committed_, &map_, checkpoint_, &info.facts, status, &info});
  XS_TRY(write_file_at(work_fd_.get(), kManifestTmpName,
                       std::initializer_list<Bytes>{as_bytes(json_text(manifest, 2) + "\n")}, opts_.fsync));
  if (::renameat(work_fd_.get(), kManifestTmpName, dir_fd_.get(), kManifestName) != 0) {
    return io_error("cannot move the final manifest into place", errno);
  }
  if (opts_.fsync) XS_TRY(fsync_fd(dir_fd_.get(), opts_.dir));
  mem_fd_.reset();
  pages_fd_.reset();
  stage_fd_.reset();
  XS_TRY(remove_tree_at(dir_fd_.get(), kWorkDirName));
  return {};
}

void DirectoryBackend::abandon() {
  mem_fd_.reset();
  pages_fd_.reset();
  stage_fd_.reset();
  if (!dir_fd_.valid()) return;
  // The directory was empty when the restore began: whatever a half-applied
  // first commit moved into it is ours to remove.
  std::set<std::string> names = staged_files_;
  names.insert(pending_.files.begin(), pending_.files.end());
  names.insert(kManifestName);
  for (const auto& n : names) ::unlinkat(dir_fd_.get(), n.c_str(), 0);
  (void)remove_tree_at(dir_fd_.get(), kWorkDirName);
  lock_fd_.reset();
  work_fd_.reset();
  dir_fd_.reset();
  if (created_dir_) ::rmdir(opts_.dir.c_str());
}

std::optional<EmulatorFiles> DirectoryBackend::emulator_files() const {
  if (!committed_.emulator) return std::nullopt;
  const std::string base = opts_.dir + "/";
  return EmulatorFiles{base + emulator_file_name(info_.domid), base + kEmulatorLogName,
                       base + "qmp-libxl-" + std::to_string(info_.domid)};
}

// ---------------------------------------------------------------------------
// Recovery

Expected<RecoveryReport> recover_directory(const std::string& dir) {
  RecoveryReport report;
  auto dfd = open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
  if (!dfd) return std::move(dfd).error();
  const int dir_fd = dfd->get();
  if (exists_at(dir_fd, kWorkDirName)) {
    auto work = open_at(dir_fd, kWorkDirName, O_RDONLY | O_DIRECTORY);
    if (!work) return std::move(work).error();
    auto lock = take_lock(work->get(), dir);
    if (!lock) return std::move(lock).error();
    report.action = RecoveryReport::Action::kDroppedStaging;
    if (exists_at(work->get(), kJournalName)) {
      auto data = read_file_at(work->get(), kJournalName, kMaxJournalSize);
      if (!data) return std::move(data).error();
      auto j = decode_journal(Bytes(*data));
      // A journal that does not decode never reached its commit point
      // intact (it is renamed into place only when complete): ignore it.
      if (j) {
        XS_TRY(apply_journal(*j, dir_fd, work->get(), true, nullptr));
        report.action = RecoveryReport::Action::kFinishedCommit;
        report.journal_checkpoint = j->checkpoint;
      }
      if (::unlinkat(work->get(), kJournalName, 0) != 0 && errno != ENOENT) {
        return io_error("cannot remove the commit journal", errno);
      }
      XS_TRY(fsync_fd(work->get(), kWorkDirName));
    }
    XS_TRY(remove_tree_at(dir_fd, kWorkDirName));
    XS_TRY(fsync_fd(dir_fd, dir));
  }
  if (exists_at(dir_fd, kManifestName)) {
    report.has_manifest = true;
    auto data = read_file_at(dir_fd, kManifestName, kMaxManifestSize);
    if (data) {
      const json m = json::parse(data->begin(), data->end(), nullptr, false);
      if (!m.is_discarded() && m.is_object()) {
        auto cp = m.find("checkpoints");
        if (cp != m.end() && cp->is_object()) {
          auto c = cp->find("committed");
          if (c != cp->end() && c->is_number_unsigned()) report.checkpoints = c->get<std::uint64_t>();
        }
        auto st = m.find("status");
        if (st != m.end() && st->is_string()) report.status = st->get<std::string>();
      }
    }
  }
  return report;
}

Expected<json> open_restored_directory(const std::string& dir) {
  auto rec = recover_directory(dir);
  if (!rec) return std::move(rec).error();
  auto dfd = open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
  if (!dfd) return std::move(dfd).error();
  if (!rec->has_manifest) {
    return make_error(ErrorCode::kMalformed, 0, dir + " holds no restored domain (no manifest.json)");
  }
  auto data = read_file_at(dfd->get(), kManifestName, kMaxManifestSize);
  if (!data) return std::move(data).error();
  json m = json::parse(data->begin(), data->end(), nullptr, false);
  if (m.is_discarded() || !m.is_object()) {
    return make_error(ErrorCode::kMalformed, 0, dir + "/manifest.json is not a JSON object");
  }
  return m;
}

}  // namespace xenstream::restore
