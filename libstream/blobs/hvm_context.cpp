#include <xenstream/libstream/blobs/hvm_context.h>

#include <algorithm>
#include <bitset>
#include <memory>

#include <xenstream/libstream/fields.h>

namespace xenstream::blobs {

namespace {

using S = FindingSeverity;
using E = Enforcement;

constexpr RuleInfo kRules[] = {
    {"HVMCTX-01", S::kError, E::kXen,
     "every descriptor and its body fit in the blob, and an END descriptor comes before the data runs out"},
    {"HVMCTX-02", S::kError, E::kXen,
     "the first descriptor is HEADER (typecode 1, instance 0, length 24)"},
    {"HVMCTX-03", S::kError, E::kXen, "HEADER magic is 0x54381286"},
    {"HVMCTX-04", S::kError, E::kXen, "HEADER version is 1"},
    {"HVMCTX-05", S::kError, E::kXen, "every typecode is known (1-20; 0 is END)"},
    {"HVMCTX-06", S::kError, E::kXen,
     "length rule per typecode: exact kinds have their exact size, zero-extended kinds at most the current size"},
    {"HVMCTX-07", S::kError, E::kStrict,
     "zero-extended kinds have a current or historical size (e.g. LAPIC 24 or 32)"},
    {"HVMCTX-08", S::kError, E::kXen,
     "per-vcpu instances are below the vcpu count (from the config; else the 4096 cap)"},
    {"HVMCTX-09", S::kError, E::kXen, "PIC instance is 0 (master) or 1 (slave)"},
    {"HVMCTX-10", S::kError, E::kStrict,
     "other per-domain kinds (IOAPIC, PIT, RTC, ...) have instance 0"},
    {"HVMCTX-11", S::kError, E::kStrict, "no (typecode, instance) pair appears twice"},
    {"HVMCTX-12", S::kWarning, E::kStrict,
     "save order: HEADER, then typecodes ascending, instances ascending within a typecode"},
    {"HVMCTX-13", S::kError, E::kStrict,
     "every per-vcpu entry has a CPU entry with the same instance"},
    {"HVMCTX-14", S::kError, E::kStrict, "END has instance 0 and length 0"},
    {"HVMCTX-15", S::kWarning, E::kStrict, "nothing follows the END descriptor"},
    {"HVMCTX-16", S::kError, E::kXen,
     "CPU_XSAVE is at least 600 octets (24-octet header, 512 legacy, 64 XSAVE header)"},
    {"HVMCTX-17", S::kError, E::kXen,
     "CPU_MSR: count >= 1, length exactly 8 + 16*count, every reserved field 0"},
};

const RuleInfo& rule(int n) { return kRules[n - 1]; }

enum class Kind : std::uint8_t { kNone, kHeader, kVcpu, kDomain, kPic };
enum class LenRule : std::uint8_t { kExact, kZeroExtend, kXsave, kMsr };

struct CodeInfo {
  std::string_view name;
  Kind kind;
  LenRule len_rule;
  std::uint32_t size;                 // current size (exact / zero-extend)
  std::array<std::uint32_t, 3> hist;  // accepted historical sizes (0 = none)
};

// spec/hvm-context.md §A.4.
constexpr CodeInfo kCodes[kHvmCodeMax + 1] = {
    {"END", Kind::kNone, LenRule::kExact, 0, {}},
    {"HEADER", Kind::kHeader, LenRule::kExact, 24, {}},
    {"CPU", Kind::kVcpu, LenRule::kZeroExtend, 1032, {1016, 1024, 1032}},
    {"PIC", Kind::kPic, LenRule::kExact, 8, {}},
    {"IOAPIC", Kind::kDomain, LenRule::kExact, 400, {}},
    {"LAPIC", Kind::kVcpu, LenRule::kZeroExtend, 32, {24, 32, 0}},
    {"LAPIC_REGS", Kind::kVcpu, LenRule::kExact, 1024, {}},
    {"PCI_IRQ", Kind::kDomain, LenRule::kExact, 16, {}},
    {"ISA_IRQ", Kind::kDomain, LenRule::kExact, 8, {}},
    {"PCI_LINK", Kind::kDomain, LenRule::kExact, 8, {}},
    {"PIT", Kind::kDomain, LenRule::kExact, 56, {}},
    {"RTC", Kind::kDomain, LenRule::kZeroExtend, 24, {16, 24, 0}},
    {"HPET", Kind::kDomain, LenRule::kExact, 1048, {}},
    {"PMTIMER", Kind::kDomain, LenRule::kExact, 8, {}},
    {"MTRR", Kind::kVcpu, LenRule::kExact, 240, {}},
    {"VIRIDIAN_DOMAIN", Kind::kDomain, LenRule::kZeroExtend, 32, {16, 24, 32}},
    {"CPU_XSAVE", Kind::kVcpu, LenRule::kXsave, 600, {}},
    {"VIRIDIAN_VCPU", Kind::kVcpu, LenRule::kZeroExtend, 216, {8, 16, 216}},
    {"VMCE_VCPU", Kind::kVcpu, LenRule::kZeroExtend, 32, {8, 24, 32}},
    {"TSC_ADJUST", Kind::kVcpu, LenRule::kExact, 8, {}},
    {"CPU_MSR", Kind::kVcpu, LenRule::kMsr, 8, {}},
};

constexpr std::uint32_t kXsaveMin = 24 + 512 + 64;

class Walker {
 public:
  Walker(Bytes blob, std::uint64_t file_offset, const HvmContextOptions& options)
      : blob_(blob),
        base_(file_offset),
        f_(blob, ByteOrder::kLittle, file_offset),
        options_(options),
        seen_(std::make_unique<std::bitset<65536>[]>(kHvmCodeMax + 1)) {}

  HvmContextReport run();

 private:
  // Adds a finding; returns true when it is an error (the walk stops).
  bool add(int n, std::uint64_t at, std::string message) {
    const RuleInfo& r = rule(n);
    report_.findings.push_back(BlobFinding{r.id, r.severity, at, base_ + at, std::move(message)});
    return r.severity == S::kError;
  }
  bool check_entry(std::size_t pos, std::uint16_t code, std::uint16_t inst, std::uint32_t len);

  Bytes blob_;
  std::uint64_t base_;
  Fields f_;
  const HvmContextOptions& options_;
  std::unique_ptr<std::bitset<65536>[]> seen_;
  HvmContextReport report_;
  bool order_warned_ = false;
  std::uint32_t last_key_ = 0;
};

std::string entry_name(std::uint16_t code) {
  if (code <= kHvmCodeMax) return std::string(kCodes[code].name);
  return "typecode " + std::to_string(code);
}

bool Walker::check_entry(std::size_t pos, std::uint16_t code, std::uint16_t inst,
                         std::uint32_t len) {
  const CodeInfo& ci = kCodes[code];
  const std::string what = std::string(ci.name) + " instance " + std::to_string(inst);
  // Length rules.
  switch (ci.len_rule) {
    case LenRule::kExact:
      if (len != ci.size) {
        return add(6, pos + 4, what + ": length " + std::to_string(len) + ", expected exactly " +
                                   std::to_string(ci.size));
      }
      break;
    case LenRule::kZeroExtend:
      if (len > ci.size) {
        return add(6, pos + 4, what + ": length " + std::to_string(len) +
                                   " exceeds the current size " + std::to_string(ci.size));
      }
      if (std::find(ci.hist.begin(), ci.hist.end(), len) == ci.hist.end()) {
        std::string sizes;
        for (std::uint32_t h : ci.hist) {
          if (h == 0) continue;
          sizes += (sizes.empty() ? "" : ", ") + std::to_string(h);
        }
        return add(7, pos + 4, what + ": length " + std::to_string(len) +
                                   " is not a size any Xen wrote (" + sizes + ")");
      }
      break;
    case LenRule::kXsave:
      if (len < kXsaveMin) {
        return add(16, pos + 4, what + ": length " + std::to_string(len) +
                                    " is below the minimum of " + std::to_string(kXsaveMin));
      }
      break;
    case LenRule::kMsr: {
      if (len < 8) {
        return add(17, pos + 4, what + ": length " + std::to_string(len) +
                                    " is shorter than the 8-octet count header");
      }
      const std::uint32_t count = f_.u32(pos + 8);
      if (count == 0) return add(17, pos + 8, what + ": count is 0");
      const std::uint64_t want = 8 + 16 * std::uint64_t{count};
      if (want != len) {
        return add(17, pos + 4, what + ": count " + std::to_string(count) + " needs length " +
                                    std::to_string(want) + ", length is " + std::to_string(len));
      }
      for (std::uint32_t i = 0; i < count; ++i) {
        const std::size_t at = pos + 8 + 8 + 16 * std::size_t{i} + 4;
        if (f_.u32(at) != 0) {
          return add(17, at, what + ": msr[" + std::to_string(i) + "] reserved field is " +
                                 hex(f_.u32(at)));
        }
      }
      break;
    }
  }
  // Instance rules.
  switch (ci.kind) {
    case Kind::kVcpu: {
      const std::uint32_t limit = options_.vcpu_count.value_or(kMaxVcpus);
      if (inst >= limit) {
        return add(8, pos + 2, what + ": instance (vcpu id) " + std::to_string(inst) +
                                   " is not below the vcpu count " + std::to_string(limit) +
                                   (options_.vcpu_count ? " (from the config)" : " (project cap)"));
      }
      break;
    }
    case Kind::kPic:
      if (inst > 1) {
        return add(9, pos + 2, what + ": PIC instance must be 0 (master) or 1 (slave)");
      }
      break;
    case Kind::kDomain:
      if (inst != 0) {
        return add(10, pos + 2, what + ": a per-domain entry must have instance 0");
      }
      break;
    case Kind::kHeader:
    case Kind::kNone:
      break;
  }
  if (seen_[code].test(inst)) {
    return add(11, pos, what + " appears a second time");
  }
  seen_[code].set(inst);
  const std::uint32_t key = (std::uint32_t{code} << 16) | inst;
  if (!order_warned_ && key < last_key_) {
    order_warned_ = true;
    add(12, pos, what + " comes after " + entry_name(static_cast<std::uint16_t>(last_key_ >> 16)) +
                     " instance " + std::to_string(last_key_ & 0xffff) +
                     ": not Xen's save order (the restorer does not need the order)");
  }
  last_key_ = std::max(last_key_, key);
  return false;
}

HvmContextReport Walker::run() {
  auto& s = report_.summary;
  const std::size_t size = blob_.size();
  std::size_t pos = 0;
  bool first = true;
  for (;;) {
    if (size - pos < 8) {
      if (pos == size) {
        add(1, pos, "the blob ends without an END descriptor");
      } else {
        add(1, pos, "the blob ends inside a descriptor: " + std::to_string(size - pos) +
                        " octets left, a descriptor needs 8");
      }
      return std::move(report_);
    }
    const std::uint16_t code = f_.u16(pos);
    const std::uint16_t inst = f_.u16(pos + 2);
    const std::uint32_t len = f_.u32(pos + 4);
    if (first) {
      first = false;
      if (code != kHvmCodeHeader || inst != 0 || len != 24) {
        add(2, pos, "the first descriptor is " + entry_name(code) + " instance " +
                        std::to_string(inst) + " length " + std::to_string(len) +
                        ", expected HEADER instance 0 length 24");
        return std::move(report_);
      }
    }
    if (code == kHvmCodeEnd) {
      s.end_offset = pos;
      if (inst != 0 || len != 0) {
        add(14, pos, "END descriptor has instance " + std::to_string(inst) + " and length " +
                         std::to_string(len) + ", expected 0 and 0");
        return std::move(report_);
      }
      s.trailing = size - pos - 8;
      if (s.trailing > 0) {
        add(15, pos + 8, std::to_string(s.trailing) + " octets follow the END descriptor [" +
                             hex(pos + 8) + ", " + hex(size) + ")");
      }
      break;
    }
    if (len > size - pos - 8) {
      add(1, pos + 4, entry_name(code) + " instance " + std::to_string(inst) + ": body [" +
                          hex(pos + 8) + ", " + hex(pos + 8 + std::uint64_t{len}) +
                          ") runs past the end of the blob at " + hex(size));
      return std::move(report_);
    }
    if (code > kHvmCodeMax) {
      add(5, pos, "unknown typecode " + std::to_string(code) + " (instance " +
                      std::to_string(inst) + ", length " + std::to_string(len) + ")");
      return std::move(report_);
    }
    if (check_entry(pos, code, inst, len)) return std::move(report_);
    ++s.entries;
    ++s.count_by_code[code];
    if (code == kHvmCodeHeader && !s.header_valid) {
      s.header_valid = true;
      s.magic = f_.u32(pos + 8);
      s.version = f_.u32(pos + 12);
      s.changeset = f_.u64(pos + 16);
      s.cpuid = f_.u32(pos + 24);
      s.gtsc_khz = f_.u32(pos + 28);
      if (s.magic != kHvmFileMagic) {
        add(3, pos + 8, "HEADER magic is " + hex(s.magic) + ", expected " + hex(kHvmFileMagic));
        return std::move(report_);
      }
      if (s.version != kHvmFileVersion) {
        add(4, pos + 12, "HEADER version is " + std::to_string(s.version) + ", expected 1");
        return std::move(report_);
      }
    }
    pos += 8 + std::size_t{len};
  }
  // Per-vcpu entries need a CPU entry for the same vcpu.
  s.vcpus = static_cast<std::uint32_t>(seen_[kHvmCodeCpu].count());
  for (std::uint16_t code = kHvmCodeCpu + 1; code <= kHvmCodeMax; ++code) {
    if (kCodes[code].kind != Kind::kVcpu) continue;
    const auto orphan = seen_[code] & ~seen_[kHvmCodeCpu];
    if (orphan.none()) continue;
    std::size_t inst = 0;
    while (!orphan.test(inst)) ++inst;
    // Find the descriptor again to report its offset.
    std::size_t at = 0;
    for (std::size_t p = 0; p + 8 <= size;) {
      if (f_.u16(p) == code && f_.u16(p + 2) == inst) {
        at = p;
        break;
      }
      p += 8 + std::size_t{f_.u32(p + 4)};
    }
    add(13, at, std::string(kCodes[code].name) + " instance " + std::to_string(inst) +
                    " has no CPU entry with the same instance");
    break;
  }
  return std::move(report_);
}

}  // namespace

std::optional<std::string_view> hvm_typecode_name(std::uint16_t code) {
  if (code <= kHvmCodeMax) return kCodes[code].name;
  return std::nullopt;
}

HvmContextReport check_hvm_context(Bytes blob, std::uint64_t file_offset,
                                   const HvmContextOptions& options) {
  return Walker(blob, file_offset, options).run();
}

Expected<HvmContextSummary> walk_hvm_context(Bytes blob, std::uint64_t file_offset,
                                             const HvmContextOptions& options) {
  HvmContextReport r = check_hvm_context(blob, file_offset, options);
  if (!r.ok()) return first_error(r.findings, "HVM context");
  return r.summary;
}

std::span<const RuleInfo> hvm_context_rules() { return kRules; }

}  // namespace xenstream::blobs
