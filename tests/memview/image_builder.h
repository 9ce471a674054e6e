// Test images for memview: bare libxc v3 streams written with libstream's
// RecordWriter, with page contents, page types, vCPU state and checkpoints
// chosen by the test.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/sink.h>

namespace xenstream::memview::testing {

using Page = std::array<std::byte, 4096>;

inline void put64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline void put32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline void put16(std::byte* p, std::uint16_t v) {
  p[0] = static_cast<std::byte>(v);
  p[1] = static_cast<std::byte>(v >> 8);
}

// Registers a test puts into a vCPU record.
struct TestRegs {
  std::uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rbp = 0, rsp = 0;
  std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  std::uint64_t rip = 0, rflags = 0x2;
  std::uint16_t cs = 0, ss = 0, ds = 0, es = 0, fs = 0, gs = 0;
  std::uint64_t fs_base = 0, gs_base = 0;
  std::uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, efer = 0;
};

// vcpu_guest_context_x86_64 (5168 octets) holding `r` (cr3 as pfn << 12).
inline std::vector<std::byte> pv64_context(const TestRegs& r) {
  std::vector<std::byte> c(5168);
  std::byte* u = c.data() + 520;
  const std::uint64_t gprs[15] = {r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10,
                                  r.r9,  r.r8,  r.rax, r.rcx, r.rdx, r.rsi, r.rdi};
  for (int i = 0; i < 15; ++i) put64(u + 8 * i, gprs[i]);
  put64(u + 128, r.rip);
  put16(u + 136, r.cs);
  put64(u + 144, r.rflags);
  put64(u + 152, r.rsp);
  put16(u + 160, r.ss);
  put16(u + 168, r.es);
  put16(u + 176, r.ds);
  put16(u + 184, r.fs);
  put16(u + 192, r.gs);
  put64(c.data() + 4984, r.cr0);
  put64(c.data() + 4984 + 16, r.cr2);
  put64(c.data() + 4984 + 24, r.cr3);
  put64(c.data() + 4984 + 32, r.cr4);
  put64(c.data() + 5144, r.fs_base);
  put64(c.data() + 5152, r.gs_base);
  return c;
}

// An HVM context blob: HEADER, one CPU record (1032 octets) per entry of
// `cpus` (instance = index), END.
inline std::vector<std::byte> hvm_context(const std::vector<TestRegs>& cpus) {
  std::vector<std::byte> b;
  auto desc = [&](std::uint16_t code, std::uint16_t inst, std::uint32_t len) {
    const std::size_t at = b.size();
    b.resize(at + 8 + len);
    put16(b.data() + at, code);
    put16(b.data() + at + 2, inst);
    put32(b.data() + at + 4, len);
    return at + 8;
  };
  const std::size_t h = desc(1, 0, 24);
  put32(b.data() + h, 0x54381286);
  put32(b.data() + h + 4, 1);
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    const TestRegs& r = cpus[i];
    const std::size_t at = desc(2, static_cast<std::uint16_t>(i), 1032);
    std::byte* p = b.data() + at;
    const std::uint64_t gprs[16] = {r.rax, r.rbx, r.rcx, r.rdx, r.rbp, r.rsi, r.rdi, r.rsp,
                                    r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
    for (int k = 0; k < 16; ++k) put64(p + 512 + 8 * k, gprs[k]);
    put64(p + 640, r.rip);
    put64(p + 648, r.rflags);
    put64(p + 656, r.cr0);
    put64(p + 664, r.cr2);
    put64(p + 672, r.cr3);
    put64(p + 680, r.cr4);
    const std::uint32_t sels[6] = {r.cs, r.ds, r.es, r.fs, r.gs, r.ss};
    for (int k = 0; k < 6; ++k) put32(p + 736 + 4 * k, sels[k]);
    put64(p + 808 + 3 * 8, r.fs_base);
    put64(p + 808 + 4 * 8, r.gs_base);
    put64(p + 992, r.efer);
  }
  desc(0, 0, 0);
  return b;
}

class ImageBuilder {
 public:
  explicit ImageBuilder(bool hvm) {
    ok(w_.write_image_header(3));
    ok(w_.write_domain_header(hvm ? 2 : 1, 4, 17));
    // The records a restore needs before any page, in the order Xen's
    // saver writes them (the rule engine that streamrestore runs refuses a
    // stream without them): the PV layout, STATIC_DATA_END, then one p2m
    // frame covering pfns 0-511, at pfn 0x20 (a data page in the images
    // that a test restores: Xen wants the frame populated and NOTAB).
    if (!hvm) ok(w_.append_x86_pv_info(8, 4));
    ok(w_.append(format::libxc::RecordType::kStaticDataEnd));
    if (!hvm) {
      const std::vector<std::uint64_t> frames{0x20};
      ok(w_.append_p2m_frames(0, 511, frames));
    }
  }
  // One PAGE_DATA record: `entries` are (type << 60 | pfn); `pages` one per
  // data-carrying entry.
  void page_data(const std::vector<std::uint64_t>& entries, const std::vector<Page>& pages) {
    std::vector<Bytes> spans;
    for (const auto& p : pages) spans.emplace_back(p.data(), p.size());
    ok(w_.append_page_data(entries, spans));
  }
  void pv_vcpu(std::uint32_t id, const TestRegs& r) {
    const auto ctx = pv64_context(r);
    ok(w_.append_vcpu(format::libxc::RecordType::kX86PvVcpuBasic, id, Bytes(ctx)));
  }
  void hvm_cpus(const std::vector<TestRegs>& cpus) {
    const auto blob = hvm_context(cpus);
    ok(w_.append(format::libxc::RecordType::kHvmContext, {Bytes(blob)}));
  }
  void record(std::uint32_t type, const std::vector<std::byte>& body) { ok(w_.append(type, {Bytes(body)})); }
  void checkpoint() { ok(w_.append(format::libxc::RecordType::kCheckpoint)); }
  std::vector<std::byte>& finish() {
    auto r = w_.finish();
    if (!r) throw std::runtime_error(r.error().message);
    return sink_.data();
  }
  std::vector<std::byte>& unfinished() { return sink_.data(); }

 private:
  static void ok(const Expected<void>& r) {
    if (!r) throw std::runtime_error(r.error().message);
  }
  BufferSink sink_;
  RecordWriter w_{sink_};
};

inline std::uint64_t entry(unsigned type, std::uint64_t pfn) { return (std::uint64_t{type} << 60) | pfn; }

inline Page filled(std::uint64_t pfn, std::uint32_t gen = 0) {
  Page p{};
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>((pfn * 131 + gen * 17 + i * 7 + 1) & 0xFF);
  put64(p.data(), pfn);
  put32(p.data() + 8, gen);
  return p;
}

}  // namespace xenstream::memview::testing
