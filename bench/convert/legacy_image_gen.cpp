// Writes a large legacy (Xen 4.5 style) save image for the streamconv
// benchmark, laid out as a 64- or 32-bit toolstack's xc_domain_save wrote a
// non-live save: TSC_INFO, page batches of 1024, the end-of-body chunks,
// then the PV or HVM tail (HVM with a DeviceModelRecord0002 qemu record).
// Page contents differ per page but cost almost nothing to make, so the
// generator is never the bottleneck.
//
// Usage: legacy_image_gen pv|hvm SIZE_MIB OUT [32|64]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

class Out {
 public:
  explicit Out(int fd) : fd_(fd) { buf_.reserve(kFlush + (8u << 20)); }
  void u32(std::uint32_t v) { raw(&v, 4); }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void ulong(std::uint64_t v, unsigned w) { w == 4 ? u32(static_cast<std::uint32_t>(v)) : u64(v); }
  void raw(const void* p, std::size_t n) {
    const auto* c = static_cast<const char*>(p);
    buf_.insert(buf_.end(), c, c + n);
    if (buf_.size() >= kFlush) flush();
  }
  void text(const char* s) { raw(s, std::strlen(s)); }
  void flush() {
    std::size_t done = 0;
    while (done < buf_.size()) {
      const ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("legacy_image_gen: write");
        std::exit(2);
      }
      done += static_cast<std::size_t>(n);
    }
    buf_.clear();
  }

 private:
  static constexpr std::size_t kFlush = 8u << 20;
  int fd_;
  std::vector<char> buf_;
};

void fill_page(char* page, std::uint64_t pfn) {
  std::uint64_t x = pfn * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < 4096; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(page + i, &x, 8);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: legacy_image_gen pv|hvm SIZE_MIB OUT [32|64]\n");
    return 2;
  }
  const bool pv = std::string(argv[1]) == "pv";
  const std::uint64_t pages = std::strtoull(argv[2], nullptr, 10) * 256;
  const unsigned w = argc == 5 && std::string(argv[4]) == "32" ? 4 : 8;
  const int fd = ::open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(argv[3]);
    return 2;
  }
  Out o(fd);
  const std::uint64_t p2m = pages + (pv ? 0 : 256);
  o.ulong(p2m, w);
  if (pv) {
    // Extended info: vcpu (64-bit guest), extv; then the p2m frame list.
    std::vector<char> ctx(5168, 0x11);
    o.ulong(~0ull, w);
    o.u32(8 + 5168 + 8);
    o.text("vcpu");
    o.u32(5168);
    o.raw(ctx.data(), ctx.size());
    o.text("extv");
    o.u32(0);
    for (std::uint64_t i = 0; i < (p2m - 1) / 512 + 1; ++i) o.ulong(i, w);
  }
  o.u32(static_cast<std::uint32_t>(-7));  // TSC_INFO
  o.u32(0);
  o.u64(1000000000);
  o.u32(2400000);
  o.u32(1);
  std::vector<char> page(4096);
  for (std::uint64_t pfn = 0; pfn < pages;) {
    const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(1024, pages - pfn));
    o.u32(n);
    for (std::uint32_t i = 0; i < n; ++i) o.ulong(pfn + i, w);
    for (std::uint32_t i = 0; i < n; ++i) {
      fill_page(page.data(), pfn + i);
      o.raw(page.data(), page.size());
    }
    pfn += n;
  }
  o.u32(static_cast<std::uint32_t>(-2));  // VCPU_INFO: vcpus 0 and 1
  o.u32(1);
  o.u64(3);
  if (!pv) {
    const std::int32_t ids[] = {-3, -4, -8, -10, -11};
    for (std::int32_t id : ids) {
      o.u32(static_cast<std::uint32_t>(id));
      o.u32(0);
      o.u64(id == -10 ? 1 : 0xfeff0000);
    }
  }
  o.u32(static_cast<std::uint32_t>(-9));  // LAST_CHECKPOINT
  o.u32(0);                                // end of body
  if (pv) {
    o.u32(0);  // no unmapped pfns
    // vcpu contexts: state only in the FPU area (the first 512 octets), so
    // they point at no page; extended contexts {vcpu, size 56}, zero-padded.
    std::vector<char> basic(5168, 0), ext(128, 0), shared(4096, 0x44);
    std::fill(basic.begin(), basic.begin() + 512, 0x22);
    for (std::uint32_t v = 0; v < 2; ++v) {
      o.raw(basic.data(), basic.size());
      std::memcpy(ext.data(), &v, 4);
      const std::uint32_t size = 56;
      std::memcpy(ext.data() + 4, &size, 4);
      o.raw(ext.data(), ext.size());
    }
    o.raw(shared.data(), shared.size());
  } else {
    o.u64(0xfeffe);
    o.u64(0xfefff);
    o.u64(0xfeffc);
    // HVM context: HEADER and END descriptors (a minimal valid blob).
    o.u32(40);
    o.u32(1);  // HEADER, instance 0
    o.u32(24);
    o.u32(0x54381286);
    o.u32(1);
    o.u64(0);
    o.u32(0x306c3);
    o.u32(2400000);
    o.u32(0);  // END
    o.u32(0);
    // qemu record: "QEVM" v3, one FULL section with 2 MiB of printable
    // payload, EOF.
    std::vector<char> qemu;
    auto be32 = [&qemu](std::uint32_t v) {
      for (int i = 3; i >= 0; --i) qemu.push_back(static_cast<char>(v >> (8 * i)));
    };
    be32(0x5145564D);
    be32(3);
    qemu.push_back(4);
    be32(1);
    const std::string idstr = "xenvga";
    qemu.push_back(static_cast<char>(idstr.size()));
    qemu.insert(qemu.end(), idstr.begin(), idstr.end());
    be32(0);
    be32(1);
    qemu.resize((2u << 20) - 1, 'q');
    qemu.push_back(0);
    o.text("DeviceModelRecord0002");
    o.u32(static_cast<std::uint32_t>(qemu.size()));
    o.raw(qemu.data(), qemu.size());
  }
  o.flush();
  if (::close(fd) != 0) {
    std::perror("legacy_image_gen: close");
    return 2;
  }
  return 0;
}
