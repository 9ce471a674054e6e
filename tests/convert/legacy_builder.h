// Builds legacy (Xen 4.5 and older) save streams for tests, octet by octet
// (spec/legacy.md), and keeps a model of what they describe: the guest's
// memory after the last complete checkpoint.
//
// LegacyBuilder writes single structures (a chunk, a tail, a qemu record);
// build_scenario() puts whole streams together from a ScenarioOptions the
// way Xen's savers laid them out, including Remus checkpoints and Remus
// compression (encoded with codecs/remus's Encoder, a model of the saver).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/source.h>
#include "tools/convert/legacy_reader.h"

namespace xenstream::convert::testing {

using Page = std::array<std::byte, 4096>;

// Reproducible page contents.
Page make_page(std::uint64_t seed);
// Version `v` of a pfn's page: version 0 is make_page(pfn), later versions
// change a few scattered runs of words, as a running guest would.
Page page_version(std::uint64_t pfn, unsigned v);

// A minimal valid HVM context blob (HEADER with `changeset`, END), as
// Xen's hvm_save writes it (spec/hvm-context.md).
std::vector<std::byte> make_hvm_context(std::uint64_t changeset);
// A QEMU device-state stream ("QEVM" v3, one FULL section, EOF) of exactly
// `size` octets (at least 32), with printable payload that no token imitates.
std::vector<std::byte> make_qemu_state(std::size_t size, std::uint64_t seed);

struct ExtBlock {
  std::string id;  // 4 characters
  std::vector<std::byte> data;
  std::optional<std::uint32_t> declared_size;  // default data.size()
};

struct PhysmapEntry {
  std::uint64_t phys_offset = 0;
  std::uint64_t start_addr = 0;
  std::uint64_t size = 0;
  std::string name;  // written with its NUL; empty = namelen 0
};

// The libxl TOOLSTACK payload, physmap version 1, as a toolstack of
// `width` octets wrote it (64-bit: 4 junk octets after each name).
std::vector<std::byte> physmap_v1(unsigned width, const std::vector<PhysmapEntry>& entries,
                                  std::uint32_t version = 1);

// The xenstore strings Xen's converter makes of such entries.
std::vector<std::byte> physmap_xenstore(const std::vector<PhysmapEntry>& entries);

class LegacyBuilder {
 public:
  explicit LegacyBuilder(unsigned width) : width_(width) {}

  unsigned width() const { return width_; }
  const std::vector<std::byte>& bytes() const { return out_; }
  std::vector<std::byte>& bytes() { return out_; }
  std::size_t size() const { return out_.size(); }

  LegacyBuilder& u8(std::uint8_t v);
  LegacyBuilder& u32(std::uint32_t v);
  LegacyBuilder& i32(std::int32_t v) { return u32(static_cast<std::uint32_t>(v)); }
  LegacyBuilder& u64(std::uint64_t v);
  LegacyBuilder& ulong(std::uint64_t v);  // toolstack width
  LegacyBuilder& raw(Bytes b);
  LegacyBuilder& raw(const std::vector<std::byte>& b) { return raw(Bytes(b)); }
  LegacyBuilder& text(std::string_view s);
  LegacyBuilder& page(const Page& p) { return raw(Bytes(p)); }

  // xl save header: magic, byte-order mark, flags, optional data = u32
  // config length + config.
  LegacyBuilder& xl_header(std::uint32_t mandatory, std::string_view config, std::uint32_t optional_flags = 0);

  LegacyBuilder& p2m_size(std::uint64_t n) { return ulong(n); }
  // ulong all-ones marker, u32 total, blocks. `total` overrides the sum.
  LegacyBuilder& ext_info(const std::vector<ExtBlock>& blocks, std::optional<std::uint32_t> total = {});
  LegacyBuilder& p2m_frames(const std::vector<std::uint64_t>& frames);

  // Page batch: the count, the raw entries (toolstack width) and, unless
  // `with_pages` is false (compressed bodies), one page per entry whose type
  // nibble is below 0xD, taken from `pages` in order.
  LegacyBuilder& batch(const std::vector<std::uint64_t>& entries, const std::vector<Page>& pages,
                       bool with_pages = true);
  LegacyBuilder& marker(std::int32_t id) { return i32(id); }
  LegacyBuilder& vcpu_info(std::int32_t max_id, const std::vector<std::uint64_t>& words);
  LegacyBuilder& vcpu_info(const std::vector<std::uint32_t>& online);
  LegacyBuilder& hvm_chunk(std::int32_t id, std::uint64_t value, std::uint32_t pad = 0);
  LegacyBuilder& tsc_info(std::uint32_t mode, std::uint64_t nsec, std::uint32_t khz, std::uint32_t incarnation);
  LegacyBuilder& toolstack(const std::vector<std::byte>& data);
  LegacyBuilder& compressed(Bytes data);  // -12, ulong length, data
  LegacyBuilder& end_body() { return i32(0); }

  LegacyBuilder& unmapped(const std::vector<std::uint64_t>& pfns);
  LegacyBuilder& xsave(std::uint64_t mask, const std::vector<std::byte>& data);
  LegacyBuilder& hvm_tail(std::uint64_t ioreq, std::uint64_t bufioreq, std::uint64_t store,
                          const std::vector<std::byte>& context);
  // A qemu record: signature, then (unless to_end) u32 length, then data.
  LegacyBuilder& qemu(std::string_view signature, const std::vector<std::byte>& data, bool to_end = false);

 private:
  unsigned width_;
  std::vector<std::byte> out_;
};

enum class QemuSig : std::uint8_t { kNone, kLibxl, kRemus, kXend };

struct ScenarioOptions {
  unsigned width = 8;  // toolstack
  GuestType guest = GuestType::kHvm;
  unsigned guest_width = 8;  // PV: 8 (4 levels) or 4 (3 levels)
  std::uint64_t seed = 1;
  std::uint32_t pages = 48;  // pfns 0..pages-1 are sent in checkpoint 1
  std::uint32_t batch = 16;
  std::uint64_t p2m_size = 0;  // 0: pages (+ a hole for HVM)
  // PV extended info.
  bool extv = true;
  std::uint32_t xsave_size = 0;  // 0: no xcnt block
  std::vector<std::uint32_t> vcpus{0};
  bool vcpu_info = true;
  // Body contents.
  bool tsc = true;
  bool live = false;           // resend some pages in a second pass (repeated pfns)
  bool all_page_types = false;  // a batch with every PFINFO type, and XTAB padding
  bool xtab_padding = false;   // bare 0xf0000000 entries inside batches
  bool hvm_chunks = true;      // every "u32 pad; u64" HVM chunk
  bool verify_mode = false;    // ENABLE_VERIFY_MODE and a resend of every page
  bool toolstack = false;      // libxl physmap TOOLSTACK chunk
  std::vector<PhysmapEntry> physmap{{0xf0000000, 0xf0000000, 0x800000, "vram"},
                                    {0xf1000000, 0xf1000000, 0x10000, "rom"}};
  bool last_checkpoint = true;  // LAST_CHECKPOINT chunk (non-checkpointed saves since Xen 4.1)
  QemuSig qemu = QemuSig::kLibxl;
  std::size_t qemu_size = 3000;  // 0: an empty record; else at least 32
  bool xl_header = false;
  std::string xl_config = "{\"c_info\": {\"type\": \"hvm\", \"name\": \"guest\"}}";
  // Remus.
  unsigned checkpoints = 1;
  std::uint32_t dirty = 12;  // pages resent per later checkpoint
  bool compress = false;
  std::size_t compressed_chunk = 64 * 1024;  // max COMPRESSED_DATA payload
  bool split_encodings = false;              // cut chunks inside page encodings too
  bool truncate_last = false;                // cut the stream inside the last checkpoint
  // Let the sender's delta cache start with checkpoint 1's pages, so later
  // pages are deltas against copies sent uncompressed (Xen's saver never
  // did this; its receiver would have coped).
  bool delta_against_first = false;
  // Data pages sent in one batch of checkpoint 1 whose entries are all bare
  // 0xf0000000 padding (a batch Xen's saver never wrote).
  bool padding_only_batch = false;
  // TMEM and TMEM_EXTRA chunks without pages (pools only, invalidations).
  bool tmem = false;
  // A page typed 8 (LPINTAB without a table level), which Xen's restorer
  // took as an ordinary page.
  bool lone_lpintab = false;
};

struct Scenario {
  std::vector<std::byte> bytes;
  // Guest memory after the last complete checkpoint: pfn -> contents of
  // every data page the stream describes.
  std::map<std::uint64_t, Page> memory;
  unsigned complete_checkpoints = 0;
  std::uint64_t compressed_pages = 0;
  std::vector<std::byte> last_qemu;  // qemu data of the last complete checkpoint
  std::vector<std::byte> xenstore;   // physmap strings (libxl format)
};

Scenario build_scenario(const ScenarioOptions& o);

}  // namespace xenstream::convert::testing
