#include "tools/convert/legacy_detect.h"

#include <cstring>

#include <xenstream/libstream/fields.h>
#include "tools/convert/legacy_format.h"

namespace xenstream::convert {

namespace lg = legacy;

std::string describe_layout(const LegacyLayout& layout) {
  return std::to_string(layout.width * 8) + "-bit toolstack, " + std::string(guest_type_name(layout.guest)) +
         " guest";
}

namespace {

struct Verdict {
  bool fits = false;
  std::string why;
};

std::uint64_t ulong_at(const Fields& f, std::size_t off, unsigned w) {
  return w == 4 ? f.u32(off) : f.u64(off);
}

Verdict check_pv(const Fields& f, unsigned w) {
  const std::size_t marker = w;
  const std::size_t block = 2 * std::size_t{w} + 4;
  if (!f.fits(0, block + 8)) return {false, "the input is too short"};
  const std::uint64_t p2m = ulong_at(f, 0, w);
  const std::uint64_t ones = w == 4 ? 0xFFFFFFFFull : ~0ull;
  if (ulong_at(f, marker, w) != ones) {
    return {false, "no all-ones extended-info marker at " + hex(marker)};
  }
  if (p2m == 0 || p2m > lg::kMaxPvP2mSize) {
    return {false, "p2m size " + hex(p2m) + " at 0x0 is out of range"};
  }
  char id[5] = {};
  std::memcpy(id, f.bytes().data() + block, 4);
  const std::string_view sid(id, 4);
  if (sid != "vcpu" && sid != "extv" && sid != "xcnt") {
    return {false, "no known extended-info block id at " + hex(block)};
  }
  std::string why = "all-ones extended-info marker at " + hex(marker) + " and a '" + std::string(sid) +
                    "' block at " + hex(block);
  if (sid == "vcpu") {
    const std::uint32_t size = f.u32(block + 4);
    if (size == lg::kVcpuContextSize64) why += " (64-bit guest)";
    if (size == lg::kVcpuContextSize32) why += " (32-bit guest)";
  }
  return {true, why};
}

Verdict check_hvm(const Fields& f, unsigned w) {
  if (!f.fits(0, std::size_t{w} + 4)) return {false, "the input is too short"};
  const std::uint64_t p2m = ulong_at(f, 0, w);
  if (p2m == 0) return {false, "p2m size at 0x0 is 0"};
  if ((p2m >> 32) != 0) return {false, "octets 4-7 are not zero, so they are not the top of a 64-bit p2m size"};
  const auto chunk = static_cast<std::int32_t>(f.u32(w));
  const std::string at = hex(w);
  std::string why = w == 8 ? "octets 4-7 are zero (a 64-bit p2m size of " + hex(p2m) + "), and "
                           : "p2m size " + hex(p2m) + ", and ";
  if (chunk > 0) {
    if (static_cast<std::uint32_t>(chunk) > lg::kMaxBatch) {
      return {false, "the chunk id " + std::to_string(chunk) + " at " + at + " is too large for a page batch"};
    }
    std::size_t checked = 0;
    for (std::int32_t i = 0; i < chunk; ++i) {
      const std::size_t off = w + 4 + static_cast<std::size_t>(i) * w;
      if (!f.fits(off, w)) break;
      const std::uint64_t e = ulong_at(f, off, w);
      if (w == 8 && (e >> 32) != 0) {
        return {false, "page batch entry " + std::to_string(i) + " at " + hex(off) + " (" + hex(e) +
                           ") has bits above 31 set"};
      }
      const unsigned type = static_cast<unsigned>((e & lg::kEntryTypeMask) >> 28);
      if (type != 0 && type < lg::kFirstDatalessType) {
        return {false, "page batch entry " + std::to_string(i) + " at " + hex(off) +
                           " has the page-table type " + hex(type) + ", which HVM guests do not use"};
      }
      ++checked;
    }
    if (checked == 0) return {false, "the input ends inside the first page batch"};
    return {true, why + "the first chunk at " + at + " is a page batch of " + std::to_string(chunk) +
                      " entries with HVM page types (" + std::to_string(checked) + " checked)"};
  }
  if (chunk == 0) return {false, "the body would be empty (chunk id 0 at " + at + ")"};
  if (chunk == static_cast<std::int32_t>(lg::ChunkId::kEnableVerifyMode) || chunk < lg::kLowestChunkId) {
    return {false, "chunk id " + std::to_string(chunk) + " at " + at + " cannot start a body"};
  }
  return {true, why + "the first chunk at " + at + " is " + std::string(lg::chunk_name(chunk))};
}

}  // namespace

Detection detect_layout(Bytes head, std::optional<unsigned> width, std::optional<GuestType> guest) {
  const Fields f(head, ByteOrder::kLittle, 0);
  Detection d;
  for (GuestType g : {GuestType::kPv, GuestType::kHvm}) {
    for (unsigned w : {4u, 8u}) {
      if (width && *width != w) continue;
      if (guest && *guest != g) continue;
      const LegacyLayout layout{w, g};
      const Verdict v = g == GuestType::kPv ? check_pv(f, w) : check_hvm(f, w);
      d.reason += describe_layout(layout) + (v.fits ? ": fits: " : ": no: ") + v.why + "\n";
      if (v.fits) d.fitting.push_back(layout);
    }
  }
  if (d.fitting.size() == 1) {
    d.layout = d.fitting.front();
    d.summary = describe_layout(*d.layout);
  } else if (d.fitting.empty()) {
    d.summary = "no legacy layout fits the start of the stream";
  } else {
    d.summary = "the start of the stream fits several layouts:";
    for (const LegacyLayout& l : d.fitting) d.summary += " [" + describe_layout(l) + "]";
  }
  return d;
}

}  // namespace xenstream::convert
