#include <xenstream/libstream/headers.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>

namespace xenstream {

namespace fl = format::libxc;

Expected<ImageHeaderInfo> read_image_header(Source& src) {
  const std::uint64_t at = src.position();
  auto got = src.pull(24, "the libxc image header");
  if (!got) return std::move(got).error();
  Fields f(got->first(24), ByteOrder::kBig, at);
  if (f.u64(0) != fl::kImageMarker) {
    auto e = make_error(ErrorCode::kMalformed, at,
                        "libxc image header: marker is " + hex(f.u64(0)) + ", expected " +
                            hex(fl::kImageMarker));
    e.range = ByteRange{at, at + 8};
    return e;
  }
  if (f.u32(8) != fl::kImageId) {
    auto e = make_error(ErrorCode::kMalformed, at + 8,
                        "libxc image header: id is " + hex(f.u32(8)) + ", expected " +
                            hex(fl::kImageId) + " (\"XENF\")");
    e.range = ByteRange{at + 8, at + 12};
    return e;
  }
  ImageHeaderInfo h;
  h.offset = at;
  h.version = f.u32(12);
  h.options = f.u16(16);
  h.reserved1 = f.u16(18);
  h.reserved2 = f.u32(20);
  src.consume(24);
  return h;
}

Expected<DomainHeaderInfo> read_domain_header(Source& src, ByteOrder order) {
  const std::uint64_t at = src.position();
  auto got = src.pull(16, "the libxc domain header");
  if (!got) return std::move(got).error();
  Fields f(got->first(16), order, at);
  DomainHeaderInfo h;
  h.offset = at;
  h.type = f.u32(0);
  h.page_shift = f.u16(4);
  h.reserved = f.u16(6);
  h.xen_major = f.u32(8);
  h.xen_minor = f.u32(12);
  src.consume(16);
  return h;
}

Expected<LibxlHeaderInfo> read_libxl_header(Source& src) {
  const std::uint64_t at = src.position();
  auto got = src.pull(16, "the libxl stream header");
  if (!got) return std::move(got).error();
  Fields f(got->first(16), ByteOrder::kBig, at);
  if (f.u64(0) != format::libxl::kIdent) {
    auto e = make_error(ErrorCode::kMalformed, at,
                        "libxl stream header: ident is " + hex(f.u64(0)) + ", expected " +
                            hex(format::libxl::kIdent) + " (\"LibxlFmt\")");
    e.range = ByteRange{at, at + 8};
    return e;
  }
  LibxlHeaderInfo h;
  h.offset = at;
  h.version = f.u32(8);
  h.options = f.u32(12);
  src.consume(16);
  return h;
}

// ---------------------------------------------------------------------------

std::string_view container_name(ContainerKind kind) {
  switch (kind) {
    case ContainerKind::kNone: return "none";
    case ContainerKind::kXl: return "xl";
    case ContainerKind::kLibvirt: return "libvirt";
  }
  return "?";
}

std::string_view payload_name(PayloadKind kind) {
  switch (kind) {
    case PayloadKind::kLibxl: return "libxl";
    case PayloadKind::kLibxc: return "libxc";
    case PayloadKind::kLegacy: return "legacy";
  }
  return "?";
}

namespace {

bool starts_with(Bytes head, std::string_view magic) {
  return head.size() >= magic.size() && std::memcmp(head.data(), magic.data(), magic.size()) == 0;
}

// True when `head` is non-empty, shorter than `magic` and equal to its start:
// only a truncated input looks like that.
bool is_short_prefix(Bytes head, std::string_view magic) {
  return !head.empty() && head.size() < magic.size() &&
         std::memcmp(head.data(), magic.data(), head.size()) == 0;
}

template <std::size_t N>
std::string_view as_view(const std::array<std::byte, N>& a) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), N);
}

Expected<XlHeaderInfo> read_xl(Source& src) {
  const std::uint64_t at = src.position();
  auto got = src.pull(format::xl::kHeaderSize, "the xl save header");
  if (!got) return std::move(got).error();
  if (!starts_with(*got, format::xl::kMagic)) {
    auto e = make_error(ErrorCode::kMalformed, at, "xl save header: magic does not match");
    e.range = ByteRange{at, at + 32};
    return e;
  }
  XlHeaderInfo h;
  h.offset = at;
  // The byte-order mark tells which order the saving host used.
  Fields le(got->subspan(32, 16), ByteOrder::kLittle, at + 32);
  Fields be(got->subspan(32, 16), ByteOrder::kBig, at + 32);
  const Fields& f = (be.u32(0) == format::xl::kByteOrderMark) ? be : le;
  h.order = f.order();
  h.byteorder = f.u32(0);
  h.mandatory_flags = f.u32(4);
  h.optional_flags = f.u32(8);
  h.optional_data_len = f.u32(12);
  src.consume(format::xl::kHeaderSize);
  if (h.optional_data_len > kMaxXlOptionalData) {
    auto e = make_error(ErrorCode::kLimit, at + 44,
                        "xl save header: optional_data_len " + hex(h.optional_data_len) +
                            " exceeds the cap of " + hex(kMaxXlOptionalData));
    e.range = ByteRange{at + 44, at + 48};
    return e;
  }
  if (h.optional_data_len > 0) {
    const std::uint64_t od = src.position();
    auto data = src.pull(h.optional_data_len, "the xl optional data");
    if (!data) return std::move(data).error();
    Fields d(data->first(h.optional_data_len), h.order, od);
    if (d.size() >= 4) {
      h.config_len = d.u32(0);
      const std::size_t n = std::min<std::size_t>(*h.config_len, d.size() - 4);
      h.config.assign(reinterpret_cast<const char*>(d.bytes().data() + 4), n);
    }
    src.consume(h.optional_data_len);
  }
  return h;
}

Expected<LibvirtHeaderInfo> read_libvirt(Source& src) {
  const std::uint64_t at = src.position();
  auto got = src.pull(format::libvirt::kHeaderSize, "the libvirt save header");
  if (!got) return std::move(got).error();
  if (!starts_with(*got, format::libvirt::kMagic)) {
    auto e = make_error(ErrorCode::kMalformed, at, "libvirt save header: magic does not match");
    e.range = ByteRange{at, at + 16};
    return e;
  }
  Fields f(got->first(64), ByteOrder::kLittle, at);
  LibvirtHeaderInfo h;
  h.offset = at;
  h.version = f.u32(16);
  h.xml_len = f.u32(20);
  for (std::size_t off = 24; off < 64; off += 4) h.unused_zero = h.unused_zero && f.u32(off) == 0;
  src.consume(64);
  if (h.xml_len > kMaxLibvirtXml) {
    auto e = make_error(ErrorCode::kLimit, at + 20,
                        "libvirt save header: xmlLen " + hex(h.xml_len) + " exceeds the cap of " +
                            hex(kMaxLibvirtXml));
    e.range = ByteRange{at + 20, at + 24};
    return e;
  }
  if (h.xml_len > 0) {
    auto xml = src.pull(h.xml_len, "the libvirt domain XML");
    if (!xml) return std::move(xml).error();
    h.xml.assign(reinterpret_cast<const char*>(xml->data()), h.xml_len);
    src.consume(h.xml_len);
  }
  return h;
}

}  // namespace

PayloadKind classify_payload(Bytes head) {
  Fields f(head, ByteOrder::kBig, 0);
  if (head.size() >= 8 && f.u64(0) == format::libxl::kIdent) return PayloadKind::kLibxl;
  if (head.size() >= 12 && f.u64(0) == fl::kImageMarker && f.u32(8) == fl::kImageId)
    return PayloadKind::kLibxc;
  return PayloadKind::kLegacy;
}

Expected<ContainerInfo> read_container(Source& src, FormatHint hint) {
  ContainerInfo info;
  auto head = src.peek(32);
  if (!head) return std::move(head).error();
  if (head->empty()) {
    return make_error(ErrorCode::kTruncated, src.position(), "the input is empty");
  }
  bool xl = hint == FormatHint::kXl;
  bool libvirt = hint == FormatHint::kLibvirt;
  if (hint == FormatHint::kAuto) {
    // A short input that is a prefix of a magic is that header, truncated;
    // reading it as one reports the truncation instead of "legacy".
    xl = starts_with(*head, format::xl::kMagic) || is_short_prefix(*head, format::xl::kMagic);
    libvirt = starts_with(*head, format::libvirt::kMagic) ||
              is_short_prefix(*head, format::libvirt::kMagic);
  }
  if (xl) {
    auto h = read_xl(src);
    if (!h) return std::move(h).error();
    info.kind = ContainerKind::kXl;
    info.xl = std::move(h).value();
  } else if (libvirt) {
    auto h = read_libvirt(src);
    if (!h) return std::move(h).error();
    info.kind = ContainerKind::kLibvirt;
    info.libvirt = std::move(h).value();
  }
  info.payload_offset = src.position();
  auto body = src.peek(12);
  if (!body) return std::move(body).error();
  if (body->empty()) {
    return make_error(ErrorCode::kTruncated, src.position(),
                      "the stream ends after the " + std::string(container_name(info.kind)) +
                          " header: no payload");
  }
  info.payload = classify_payload(*body);
  if (info.payload == PayloadKind::kLegacy) {
    // The input ends inside what can only be a libxl or libxc header.
    std::array<std::byte, 12> libxc_magic{};
    put_u64(libxc_magic.data(), fl::kImageMarker, ByteOrder::kBig);
    put_u32(libxc_magic.data() + 8, fl::kImageId, ByteOrder::kBig);
    std::array<std::byte, 8> libxl_magic{};
    put_u64(libxl_magic.data(), format::libxl::kIdent, ByteOrder::kBig);
    const std::uint64_t at = src.position();
    if (is_short_prefix(*body, as_view(libxl_magic))) {
      return truncated_error(at, at + sizeof(format::libxl::Header), "the libxl stream header");
    }
    if (is_short_prefix(*body, as_view(libxc_magic))) {
      return truncated_error(at, at + sizeof(fl::ImageHeader), "the libxc image header");
    }
  }
  if (hint == FormatHint::kLibxl && info.payload != PayloadKind::kLibxl) {
    return make_error(ErrorCode::kMalformed, src.position(),
                      "expected a libxl stream (\"LibxlFmt\") here");
  }
  if (hint == FormatHint::kLibxc && info.payload != PayloadKind::kLibxc) {
    return make_error(ErrorCode::kMalformed, src.position(),
                      "expected a libxc image (marker and \"XENF\") here");
  }
  return info;
}

std::vector<std::byte> xl_header_bytes(const XlHeaderSpec& spec) {
  const std::size_t config_len = spec.config.size() + (spec.config_nul ? 1 : 0);
  std::vector<std::byte> h(format::xl::kHeaderSize + 4);
  std::memcpy(h.data(), format::xl::kMagic.data(), format::xl::kMagic.size());
  const ByteOrder o = spec.order;
  put_u32(h.data() + 32, format::xl::kByteOrderMark, o);
  put_u32(h.data() + 36, spec.mandatory_flags, o);
  put_u32(h.data() + 40, spec.optional_flags, o);
  put_u32(h.data() + 44, static_cast<std::uint32_t>(4 + config_len + spec.extra.size()), o);
  put_u32(h.data() + 48, static_cast<std::uint32_t>(config_len), o);
  const auto* text = reinterpret_cast<const std::byte*>(spec.config.data());
  h.insert(h.end(), text, text + spec.config.size());
  if (spec.config_nul) h.push_back(std::byte{0});
  h.insert(h.end(), spec.extra.begin(), spec.extra.end());
  return h;
}

std::vector<std::byte> libvirt_header_bytes(const LibvirtHeaderSpec& spec) {
  const std::size_t xml_len = spec.xml.size() + (spec.xml_nul ? 1 : 0);
  std::vector<std::byte> h(format::libvirt::kHeaderSize);
  std::memcpy(h.data(), format::libvirt::kMagic.data(), format::libvirt::kMagic.size());
  put_u32(h.data() + 16, spec.version, ByteOrder::kLittle);
  put_u32(h.data() + 20, static_cast<std::uint32_t>(xml_len), ByteOrder::kLittle);
  const auto* text = reinterpret_cast<const std::byte*>(spec.xml.data());
  h.insert(h.end(), text, text + spec.xml.size());
  if (spec.xml_nul) h.push_back(std::byte{0});
  return h;
}

}  // namespace xenstream
