// Fuzz target: container detection and stream headers.
//
// Runs read_container() with every format hint over the input, then reads
// the headers of the payload it reports. Checks that detection consumes
// exactly the container header, that what it returns stays within the
// input and its caps, that errors point inside the input, and that a source
// which moves its window on every read (TrickleSource) gives the same answer
// as plain memory.
#include <cstddef>
#include <cstdint>

#include "fuzz/common/walk.h"
#include <xenstream/libstream/headers.h>

namespace {

using namespace xenstream;
using fuzz::TrickleSource;

void check_error(const Error& e, std::size_t size) {
  FUZZ_CHECK(e.offset <= size, e.describe());
  FUZZ_CHECK(!e.message.empty(), "empty message");
  if (e.range) FUZZ_CHECK(e.range->begin <= e.range->end, e.describe());
}

void check_container(const ContainerInfo& c, const Source& src, std::size_t size) {
  FUZZ_CHECK(c.payload_offset == src.position(), "detection consumed more than the header");
  FUZZ_CHECK(c.payload_offset < size, "a payload must have at least one octet");
  if (c.xl) {
    FUZZ_CHECK(c.kind == ContainerKind::kXl, "xl info without the xl kind");
    FUZZ_CHECK(c.xl->optional_data_len <= kMaxXlOptionalData, "xl optional data above the cap");
    FUZZ_CHECK(c.xl->config.size() <= c.xl->optional_data_len, "xl config longer than its data");
    FUZZ_CHECK(c.payload_offset == 48 + std::uint64_t{c.xl->optional_data_len},
               "xl payload offset");
  }
  if (c.libvirt) {
    FUZZ_CHECK(c.kind == ContainerKind::kLibvirt, "libvirt info without the libvirt kind");
    FUZZ_CHECK(c.libvirt->xml_len <= kMaxLibvirtXml, "libvirt XML above the cap");
    FUZZ_CHECK(c.libvirt->xml.size() == c.libvirt->xml_len, "libvirt XML size");
    FUZZ_CHECK(c.payload_offset == 64 + std::uint64_t{c.libvirt->xml_len},
               "libvirt payload offset");
  }
  if (c.kind == ContainerKind::kNone) FUZZ_CHECK(c.payload_offset == 0, "bare payload offset");
}

// Reads the payload's own headers after a successful detection.
void read_payload_headers(Source& src, const ContainerInfo& c, std::size_t size) {
  if (c.payload == PayloadKind::kLibxl) {
    auto h = read_libxl_header(src);
    if (!h) return check_error(h.error(), size);
    FUZZ_CHECK(h->offset == c.payload_offset, "libxl header offset");
    FUZZ_CHECK(src.position() == c.payload_offset + 16, "libxl header size");
  } else if (c.payload == PayloadKind::kLibxc) {
    auto ih = read_image_header(src);
    if (!ih) return check_error(ih.error(), size);
    FUZZ_CHECK(src.position() == c.payload_offset + 24, "image header size");
    auto dh = read_domain_header(src, ih->order());
    if (!dh) return check_error(dh.error(), size);
    FUZZ_CHECK(src.position() == c.payload_offset + 40, "domain header size");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  (void)classify_payload(in);
  for (FormatHint hint : {FormatHint::kAuto, FormatHint::kXl, FormatHint::kLibvirt,
                          FormatHint::kLibxl, FormatHint::kLibxc}) {
    MemorySource mem(in);
    auto c = read_container(mem, hint);
    TrickleSource trickle(in);
    auto t = read_container(trickle, hint);
    FUZZ_CHECK(c.has_value() == t.has_value(), "memory and trickle sources disagree");
    if (!c) {
      check_error(c.error(), size);
      FUZZ_CHECK(fuzz::same_error(c.error(), t.error()),
                 c.error().describe() + " vs " + t.error().describe());
      continue;
    }
    check_container(*c, mem, size);
    FUZZ_CHECK(c->kind == t->kind && c->payload == t->payload &&
                   c->payload_offset == t->payload_offset,
               "memory and trickle sources disagree");
    if (c->xl) FUZZ_CHECK(c->xl->config == t->xl->config, "xl config differs");
    if (c->libvirt) FUZZ_CHECK(c->libvirt->xml == t->libvirt->xml, "libvirt XML differs");
    if (hint == FormatHint::kAuto) {
      const auto payload = in.subspan(static_cast<std::size_t>(c->payload_offset));
      FUZZ_CHECK(classify_payload(payload) == c->payload, "classify_payload disagrees");
    }
    read_payload_headers(mem, *c, size);
  }
  return 0;
}
