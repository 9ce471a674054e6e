// streamverify's container layer: the xl and libvirt save headers, the
// config facts they carry, and what is said of a legacy payload behind them.
#include "tools/verify/verifier_impl.h"

namespace xenstream::verify::detail {

namespace {

// Facts from an xl JSON config (libxl_domain_config).
void json_facts(const nlohmann::json& j, ConfigFacts& facts) {
  if (!j.is_object()) return;
  auto ci = j.find("c_info");
  if (ci != j.end() && ci->is_object()) {
    auto t = ci->find("type");
    if (t != ci->end() && t->is_string()) facts.guest_type = t->get<std::string>();
    auto n = ci->find("name");
    if (n != ci->end() && n->is_string()) facts.name = n->get<std::string>();
  }
  auto bi = j.find("b_info");
  if (bi != j.end() && bi->is_object()) {
    auto m = bi->find("max_vcpus");
    if (m != bi->end() && m->is_number_unsigned()) {
      const auto v = m->get<std::uint64_t>();
      if (v > 0 && v <= kMaxVcpus) facts.max_vcpus = static_cast<std::uint32_t>(v);
    }
  }
}

// Facts from libvirt domain XML: <domain ...><name>N</name>, <vcpu ...>N</vcpu>,
// <os><type ...>hvm|xen|xenpvh</type>. A light scan, not an XML parser.
std::optional<std::string> xml_element(std::string_view xml, std::string_view tag,
                                       std::size_t from = 0) {
  const std::string open = "<" + std::string(tag);
  std::size_t p = xml.find(open, from);
  while (p != std::string_view::npos) {
    const char next = p + open.size() < xml.size() ? xml[p + open.size()] : '\0';
    if (next == '>' || next == ' ' || next == '\t' || next == '\n') break;
    p = xml.find(open, p + 1);
  }
  if (p == std::string_view::npos) return std::nullopt;
  const std::size_t gt = xml.find('>', p);
  if (gt == std::string_view::npos) return std::nullopt;
  const std::size_t end = xml.find("</" + std::string(tag) + ">", gt);
  if (end == std::string_view::npos) return std::nullopt;
  std::string v(xml.substr(gt + 1, end - gt - 1));
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
  return v;
}

ConfigFacts xml_facts(std::string_view xml) {
  ConfigFacts f;
  f.source = "libvirt XML";
  f.name = xml_element(xml, "name");
  if (auto v = xml_element(xml, "vcpu")) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(v->c_str(), &end, 10);
    if (end != v->c_str() && *end == '\0' && n > 0 && n <= kMaxVcpus) {
      f.max_vcpus = static_cast<std::uint32_t>(n);
    }
  }
  const std::size_t os = xml.find("<os>");
  if (os != std::string_view::npos) {
    if (auto t = xml_element(xml, "type", os)) {
      if (*t == "hvm") f.guest_type = "hvm";
      if (*t == "xen" || *t == "linux") f.guest_type = "pv";
      if (*t == "xenpvh") f.guest_type = "pvh";
    }
  }
  return f;
}

}  // namespace

void Verifier::container_error(const Error& e) {
  out_.complete = false;
  if (e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage) return fail(e);
  if (e.code == ErrorCode::kTruncated) {
    add(R::kStream04, e.offset, "input", e.message);
    return;
  }
  if (e.message.rfind("zstd:", 0) == 0) {  // corrupt compressed input
    add(R::kStream03, e.offset, "input", e.message);
    return;
  }
  const bool xl_msg = e.message.rfind("xl save header", 0) == 0;
  const bool lv_msg = e.message.rfind("libvirt save header", 0) == 0;
  if (e.code == ErrorCode::kLimit) {
    if (xl_msg) return add(R::kContXl06, e.offset, "xl header", e.message.substr(16));
    if (lv_msg) return add(R::kContLv04, e.offset, "libvirt header", e.message.substr(21));
  }
  switch (options_.format) {
    case FormatHint::kXl:
      return add(R::kContXl01, e.offset, "xl header",
                 "the input does not start with the xl save magic");
    case FormatHint::kLibvirt:
      return add(R::kContLv01, e.offset, "libvirt header",
                 "the input does not start with the libvirt-xml magic");
    case FormatHint::kLibxl:
      return add(R::kLibxlHdr01, e.offset, "libxl header",
                 "the input does not start with the libxl ident \"LibxlFmt\"");
    case FormatHint::kLibxc: {
      auto head = src_ != nullptr ? src_->peek(12) : Expected<Bytes>(Bytes{});
      const bool marker_ok = head && head->size() >= 8 &&
                             Fields(*head, ByteOrder::kBig, 0).u64(0) == xc::kImageMarker;
      if (marker_ok) {
        return add(R::kLibxcIhdr02, e.offset + 8, "libxc image header",
                   "the image id is not 0x58454e46 (\"XENF\")");
      }
      return add(R::kLibxcIhdr01, e.offset, "libxc image header",
                 "the image marker is not 0xffffffffffffffff");
    }
    case FormatHint::kAuto:
      break;
  }
  add(R::kStream03, e.offset, "input", e.message);
}

void Verifier::check_container(const ContainerInfo& c) {
  if (c.kind == ContainerKind::kXl) check_xl(c);
  if (c.kind == ContainerKind::kLibvirt) check_libvirt(c);
}

void Verifier::check_xl(const ContainerInfo& c) {
  const XlHeaderInfo& h = *c.xl;
  const std::string w = "xl header";
  if (h.byteorder != format::xl::kByteOrderMark) {
    add(R::kContXl02, h.offset + 32, w,
        "byteorder is " + hex(h.byteorder) + " read little-endian, expected 0x01020304 "
        "in the saving host's byte order");
  } else if (h.order == ByteOrder::kBig) {
    add(R::kContXl03, h.offset + 32, w,
        "byteorder is 01 02 03 04: a big-endian host wrote this file, and no Xen host is "
        "big-endian");
  }
  if ((h.mandatory_flags & ~format::xl::kMandatoryKnown) != 0) {
    add(R::kContXl04, h.offset + 36, w,
        "mandatory_flags " + hex(h.mandatory_flags) + " has unknown bits " +
            hex(h.mandatory_flags & ~format::xl::kMandatoryKnown) + ": xl refuses the file");
  }
  if (h.optional_flags != 0) {
    add(R::kContXl05, h.offset + 40, w, "optional_flags is " + hex(h.optional_flags) + ", expected 0");
  }
  const std::uint64_t data_at = h.offset + format::xl::kHeaderSize;
  if (h.optional_data_len < 4) {
    add(R::kContXl07, h.offset + 44, w,
        "optional_data_len is " + std::to_string(h.optional_data_len) +
            ", too short for the 4-octet config_len");
  } else if (*h.config_len > h.optional_data_len - 4) {
    add(R::kContXl08, data_at, w,
        "config_len " + std::to_string(*h.config_len) + " exceeds the " +
            std::to_string(h.optional_data_len - 4) +
            " octets of optional data after it (xl: \"Savefile truncated\")");
  } else {
    ConfigFacts facts;
    facts.source = h.json() ? "xl JSON" : "xl text";
    const std::string& cfg = h.config;
    if (h.json()) {
      const std::size_t nul = cfg.find('\0');
      if (cfg.empty() || nul != cfg.size() - 1) {
        add(R::kContXl09, data_at + 4 + (nul == std::string::npos ? cfg.size() : nul), w,
            cfg.empty() ? "the JSON flag is set but the config is empty"
            : nul == std::string::npos ? "the JSON config does not end with a NUL"
                                       : "the JSON config has a NUL at config offset " +
                                             std::to_string(nul) + " before its end");
      } else {
        // Exceptions stay inside this block: nlohmann reports the failing
        // position only through its parse_error.
        try {
          json_facts(nlohmann::json::parse(cfg.begin(), cfg.end() - 1), facts);
        } catch (const nlohmann::json::parse_error& e) {
          const std::size_t at = e.byte > 0 ? std::min<std::size_t>(e.byte - 1, cfg.size() - 1) : 0;
          add(R::kContXl10, data_at + 4 + at, w,
              "the config is not valid JSON (parse error at config offset " + std::to_string(at) + ")");
        }
      }
    }
    s_.config = facts;
    const std::uint64_t extra = h.optional_data_len - 4 - *h.config_len;
    if (extra > 0) {
      add(R::kContXl11, data_at + 4 + *h.config_len, w,
          std::to_string(extra) + " octets follow the config inside the optional data");
    }
  }
  if (h.stream_v2() && c.payload != PayloadKind::kLibxl) {
    add(R::kContXl12, c.payload_offset, w,
        "the STREAMv2 flag says a libxl stream follows, but the payload is a " +
            std::string(payload_name(c.payload)) +
            (c.payload == PayloadKind::kLibxc ? " image" : " image or unknown data"));
  } else if (!h.stream_v2() && c.payload != PayloadKind::kLegacy) {
    add(R::kContXl12, h.offset + 36, w,
        "the STREAMv2 flag is clear (a legacy image follows), but the payload is a " +
            std::string(payload_name(c.payload)) +
            " stream: xl would run the legacy converter on it");
  }
}

void Verifier::check_libvirt(const ContainerInfo& c) {
  const LibvirtHeaderInfo& h = *c.libvirt;
  const std::string w = "libvirt header";
  if (h.version != 1 && h.version != 2) {
    add(R::kContLv02, h.offset + 16, w, "version is " + std::to_string(h.version) + ", expected 1 or 2");
  }
  if (h.xml_len == 0) add(R::kContLv03, h.offset + 20, w, "xmlLen is 0: libvirt refuses the file");
  if (!h.unused_zero) add(R::kContLv05, h.offset + 24, w, "unused[10] is not all zero");
  if (h.xml_len > 0) {
    const std::size_t nul = h.xml.find('\0');
    if (nul != h.xml.size() - 1) {
      add(R::kContLv06, h.offset + 64 + (nul == std::string::npos ? h.xml.size() : nul), w,
          nul == std::string::npos ? "the domain XML does not end with a NUL"
                                   : "the domain XML has a NUL at XML offset " +
                                         std::to_string(nul) + " before its end");
    }
    s_.config = xml_facts(std::string_view(h.xml).substr(0, nul));
  }
  if (h.version == 2 && c.payload != PayloadKind::kLibxl) {
    add(R::kContLv07, h.offset + 16, w,
        "version 2 says a libxl stream follows, but the payload is a " +
            std::string(payload_name(c.payload)) + " image");
  } else if (h.version == 1 && c.payload != PayloadKind::kLegacy) {
    add(R::kContLv07, h.offset + 16, w,
        "version 1 says a legacy image follows, but the payload is a " +
            std::string(payload_name(c.payload)) + " stream");
  }
}

void Verifier::legacy_payload(const ContainerInfo& c) {
  out_.complete = false;
  auto head = src_ != nullptr ? src_->peek(64) : Expected<Bytes>(Bytes{});
  if (!head) return container_error(head.error());
  const bool container_says = (c.xl && !c.xl->stream_v2()) || (c.libvirt && c.libvirt->version == 1);
  if (container_says || looks_like_legacy(*head)) {
    add(R::kStream02, c.payload_offset, "input",
        "legacy (pre-Xen 4.6) image: streamverify checks v2/v3 streams; convert it with "
        "streamconv first");
    return;
  }
  add(R::kStream03, c.payload_offset, "input",
      "unrecognised format: not an xl or libvirt save file, a libxl stream, a libxc image or a "
      "legacy image (first octets: " + hex_octets(*head, 16) + ")");
}

}  // namespace xenstream::verify::detail
