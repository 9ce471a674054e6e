// Synthetic migration streams: valid libxc v2/v3 images and libxl v2 streams,
// optionally inside an xl or libvirt save header, written with libstream's
// RecordWriter in the order Xen's saver uses (spec/libxc.md "What the saver
// writes", spec/libxl.md "What the libxl writer emits").
//
// Page contents are a pure function of (seed, pfn, generation), so a test can
// check restored memory without keeping the stream: generation 0 is the
// initial full copy, generation k the copy resent in checkpoint k.
//
// The generator is for tests, samples and benchmarks. It writes what Xen
// would write for a guest of the requested shape, but the guest itself is
// synthetic: page tables, vcpu state and device state are plausible
// placeholders, not a bootable machine.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/sink.h>

namespace xenstream::gen {

using xenstream::ContainerKind;  // libstream/headers.h
using xenstream::GuestType;
enum class OuterLayer : std::uint8_t { kLibxl, kLibxc };

std::string_view guest_type_name(GuestType t);        // "pv", "hvm"
std::string_view outer_layer_name(OuterLayer l);        // "libxl", "libxc"

inline constexpr std::size_t kPageSize = 4096;
// Largest batch whose PAGE_DATA body stays under REC_LENGTH_MAX.
inline constexpr std::uint32_t kMaxBatch = 32702;

struct SynthOptions {
  GuestType guest = GuestType::kHvm;
  std::uint64_t pages = 1024;       // guest pfns 0 .. pages-1, all sent
  std::uint64_t seed = 1;           // page contents and dirty-page choice
  std::uint32_t batch = 1024;       // pfns per PAGE_DATA (Xen: MAX_BATCH_SIZE)
  ContainerKind container = ContainerKind::kNone;
  OuterLayer layer = OuterLayer::kLibxl;
  std::uint32_t version = 3;        // libxc image version, 2 or 3
  std::uint32_t vcpus = 1;          // 1 .. 128
  // Remus-style checkpoints: 0 = a plain stream ending in END records; N > 0
  // = N CHECKPOINT records, the first after the full copy, each later one
  // after `dirty_pages` resent pages; such streams carry no END record.
  std::uint32_t checkpoints = 0;
  std::uint32_t dirty_pages = 64;   // per later checkpoint (capped at `pages`)
  // COLO: CHECKPOINT_STATE(NEW) before each later checkpoint (HVM, libxl).
  bool colo = false;
  // libxl emulator records (HVM with the libxl layer only).
  bool emulator_context = false;    // a small QEMU device-state blob
  bool xenstore_data = false;       // physmap keys
  // An unknown optional libxc record (SynthConstants::kOptionalType) before
  // the first PAGE_DATA: Xen's restorer skips it (spec/libxc.md, framing).
  bool optional_record = false;
  ByteOrder order = ByteOrder::kLittle;     // libxc/libxl byte order
  ByteOrder xl_order = ByteOrder::kLittle;  // the xl header's host order
  std::string name = "synth";               // domain name in the container
  std::uint32_t xen_major = 4;
  std::uint32_t xen_minor = 17;
  // Called after every PAGE_DATA record with (pages written, pages to write).
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

// What write_stream() produced.
struct SynthSummary {
  std::uint64_t bytes = 0;             // uncompressed stream size
  std::uint64_t payload_offset = 0;    // where the libxl/libxc stream starts
  std::uint64_t records = 0;           // records of both layers
  std::uint64_t page_data_records = 0;
  std::uint64_t pages_written = 0;     // data pages, all checkpoints
  std::uint32_t checkpoints = 0;
};

// Checks the options: kUsage with a message naming the offending option.
Expected<void> validate(const SynthOptions& opts);

// Writes the whole stream to `sink` and flushes it. The sink is not
// committed (AtomicFile) and not compressed here: the caller layers those.
//   value:   what was written
//   kUsage:  invalid options (nothing written)
//   kIo:     the sink failed
Expected<SynthSummary> write_stream(Sink& sink, const SynthOptions& opts);

// Writes to `path` ("-" = stdout) through open_output(), optionally as one
// zstd frame, and commits the file only when the stream is complete.
Expected<SynthSummary> write_stream_to_path(const std::string& path, const SynthOptions& opts,
                                            bool zstd = false, int zstd_level = 3);

// ---------------------------------------------------------------------------
// Describing what was written

// Fills `out` with the page contents of `pfn` at `generation`: octets 0-7
// hold the pfn and 8-11 the generation (little-endian), 12-15 the low half
// of the seed, the rest a pseudo-random stream seeded by all three.
void fill_page(std::uint64_t seed, std::uint64_t pfn, std::uint32_t generation,
               std::span<std::byte, kPageSize> out);
std::array<std::byte, kPageSize> page_contents(std::uint64_t seed, std::uint64_t pfn,
                                               std::uint32_t generation);

// The pfns resent in checkpoint k (1 <= k < checkpoints), ascending and
// distinct. Empty for k == 0 (the full copy) or k out of range.
std::vector<std::uint64_t> dirty_pfns(const SynthOptions& opts, std::uint32_t checkpoint);

// What the stream carries for `pfn` at `generation`: page_contents(), except
// for the PV guest's start_info and L4 page-table pages, which are zero.
std::array<std::byte, kPageSize> expected_page(const SynthOptions& opts, std::uint64_t pfn,
                                               std::uint32_t generation);
// The PAGE_DATA entry written for `pfn` (type nibble << 60 | pfn): NOTAB,
// except the PV L4 page table (pinned L4, 0xC).
std::uint64_t expected_entry(const SynthOptions& opts, std::uint64_t pfn);
// Pfns a restorer rewrites or clears, so whose memory after restore need not
// equal expected_page(): PV start_info and L4 table; HVM the pfns named by
// HVM_PARAMS (xenstore, console, ioreq, bufioreq). Ascending.
std::vector<std::uint64_t> special_pfns(const SynthOptions& opts);

// For every pfn, the generation its memory holds once checkpoint `upto`
// (0-based) has been committed; for a plain stream pass 0. A restore that
// commits checkpoint `upto` must leave page_contents(seed, pfn, gen[pfn]).
std::vector<std::uint32_t> page_generations(const SynthOptions& opts, std::uint32_t upto);

// Fixed values the generator puts into records, so tests can compare them.
struct SynthConstants {
  static constexpr std::uint32_t kTscMode = 0;
  static constexpr std::uint32_t kTscKhz = 2'000'000;
  static constexpr std::uint64_t kTscNsec = 123'456'789;
  static constexpr std::uint32_t kTscIncarnation = 1;
  static constexpr std::uint32_t kHvmMagic = 0x54381286;
  static constexpr std::uint32_t kCpuRecordSize = 1032;
  static constexpr std::uint32_t kEmulatorId = 2;  // qemu-upstream
  static constexpr std::uint32_t kOptionalType = 0x80000013;
  static constexpr std::uint64_t kOptionalBody = 0x6E656753454E4558ull;  // 8 octets
};

// The HVM_CONTEXT blob written for `vcpus` vcpus (descriptor chain HEADER,
// CPU.., PIC, IOAPIC, LAPIC.., LAPIC_REGS.., PIT, RTC, MTRR.., END).
std::vector<std::byte> hvm_context_blob(std::uint32_t vcpus);
// The EMULATOR_CONTEXT payload (after the emulator sub-header): a QEVM v3
// blob with one SECTION_FULL "timer" section and EOF.
std::vector<std::byte> qemu_blob();
// The HVM_PARAMS entries (index, value) for a guest of `pages` pages.
std::vector<std::pair<std::uint64_t, std::uint64_t>> hvm_params(std::uint64_t pages);
// The EMULATOR_XENSTORE_DATA pairs.
std::vector<std::pair<std::string, std::string>> xenstore_pairs();
// The JSON domain config embedded in the xl header (without its NUL).
std::string xl_config_json(const SynthOptions& opts);
// The domain XML embedded in the libvirt header (without its NUL).
std::string libvirt_xml(const SynthOptions& opts);

}  // namespace xenstream::gen
