#include <xenstream/codecs/remus/page_store.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace xenstream::codecs::remus {

namespace {

constexpr std::size_t kChunkWords = (std::size_t{1} << 18) / 64;

// Opens an anonymous file in `dir`: O_TMPFILE where the file system has it,
// otherwise a named temporary that is unlinked at once.
Expected<int> open_anonymous(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string templ = dir + "/.xenstream-pages-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return io_error("cannot create a temporary page store in " + dir, errno);
  ::unlink(name.data());
  return fd;
}

}  // namespace

Expected<std::unique_ptr<PageStore>> PageStore::create(const std::string& dir) {
  std::string where = dir;
  if (where.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    where = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  auto fd = open_anonymous(where);
  if (!fd) return std::move(fd).error();
  return std::unique_ptr<PageStore>(new PageStore(*fd));
}

PageStore::~PageStore() { ::close(fd_); }

bool PageStore::contains(std::uint64_t pfn) const {
  const std::uint64_t chunk = pfn >> kChunkShift;
  if (chunk >= present_.size() || !present_[chunk]) return false;
  const std::uint64_t bit = pfn & ((std::uint64_t{1} << kChunkShift) - 1);
  return (present_[chunk][bit / 64] >> (bit % 64)) & 1;
}

Expected<bool> PageStore::load(std::uint64_t pfn, std::span<std::byte, kPageSize> out) const {
  if (!contains(pfn)) return false;
  std::size_t done = 0;
  const auto base = static_cast<off_t>(pfn * kPageSize);
  while (done < kPageSize) {
    const ssize_t n = ::pread(fd_, out.data() + done, kPageSize - done, base + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("page store: cannot read pfn " + hex(pfn), errno);
    }
    if (n == 0) {
      return make_error(ErrorCode::kIo, 0, "page store: pfn " + hex(pfn) + " is missing from the file");
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

Expected<void> PageStore::save(std::uint64_t pfn, std::span<const std::byte, kPageSize> page) {
  if (pfn > kMaxStorePfn) {
    return make_error(ErrorCode::kLimit, 0,
                      "page store: pfn " + hex(pfn) + " is above the limit " + hex(kMaxStorePfn));
  }
  std::size_t done = 0;
  const auto base = static_cast<off_t>(pfn * kPageSize);
  while (done < kPageSize) {
    const ssize_t n = ::pwrite(fd_, page.data() + done, kPageSize - done, base + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("page store: cannot write pfn " + hex(pfn), errno);
    }
    done += static_cast<std::size_t>(n);
  }
  const std::uint64_t chunk = pfn >> kChunkShift;
  if (chunk >= present_.size()) present_.resize(chunk + 1);
  if (!present_[chunk]) present_[chunk] = std::make_unique<std::uint64_t[]>(kChunkWords);
  const std::uint64_t bit = pfn & ((std::uint64_t{1} << kChunkShift) - 1);
  std::uint64_t& word = present_[chunk][bit / 64];
  const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
  if ((word & mask) == 0) {
    word |= mask;
    ++pages_;
  }
  return {};
}

std::uint64_t PageStore::allocated_bytes() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace xenstream::codecs::remus
