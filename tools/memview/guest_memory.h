// Random access to a guest's memory without restoring it (spec/memview.md).
//
// GuestMemory opens either
//   - a save image or migration stream (libxl or bare libxc, optionally
//     behind an xl or libvirt header; not compressed, not legacy), mapped
//     read-only and indexed once: one Extent per run of consecutive pfns that
//     one PAGE_DATA record sent together with the same type, so the index
//     grows with the number of runs, never with the number of pages; or
//   - a restored domain directory (tools/restore/README.md): memory.raw
//     mapped, runs from manifest.json's pfn_ranges and typed_ranges.
// and then answers reads of any pfn or guest-physical range from the mapped
// bytes: a read inside one run is a span into the mapping (no copy); a read
// that crosses runs is assembled in a caller buffer.
//
// Stream semantics follow the restorer (tools/restore/README.md):
//   - a later PAGE_DATA for the same pfn wins;
//   - XALLOC populates without contents (reads as zeros) and, like XTAB and
//     BROKEN, never replaces contents sent earlier;
//   - XTAB and BROKEN pfns, and pfns never sent, are not present: reading
//     them is an error that says which;
//   - checkpointed streams: records count once their checkpoint is complete
//     (libxl CHECKPOINT_END, or libxc CHECKPOINT for a bare libxc stream);
//     `checkpoint` selects the N-th complete checkpoint (1-based), default
//     the last. A plain stream counts at its END.
//
// Lifetime: every span returned lives as long as the GuestMemory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>
#include "tools/memview/vcpu_state.h"

namespace xenstream::memview {

inline constexpr std::uint64_t kPageSize = 4096;

enum class PageState : std::uint8_t {
  kData,    // contents in the mapped file
  kZero,    // populated without contents (XALLOC): reads as zeros
  kXtab,    // sent as XTAB: no page behind the pfn
  kBroken,  // sent as BROKEN: the page was lost on the saving host
};
std::string_view page_state_name(PageState s);  // "data", "zero", "xtab", "broken"

// One run of the index: pfns [begin, begin + count). For kData the page of
// pfn begin + i starts at file offset `offset + i * 4096`.
struct Extent {
  std::uint64_t begin = 0;
  std::uint64_t offset = 0;
  std::uint32_t count = 0;
  PageState state = PageState::kData;
  std::uint8_t type = 0;  // PAGE_DATA type nibble (PFINFO), 0 for notab
  std::uint64_t end() const { return begin + count; }
};
static_assert(sizeof(Extent) == 24, "an index entry is 24 octets");

struct OpenOptions {
  // Checkpointed streams: the N-th complete checkpoint (1-based); default
  // the last complete one.
  std::optional<std::uint64_t> checkpoint;
  // Index cap (a hostile stream of scattered single-page entries): kLimit
  // beyond this many extents, pending or committed.
  std::uint64_t max_extents = std::uint64_t{1} << 24;
};

struct GuestInfo {
  bool hvm = false;
  unsigned guest_width = 8;  // PV: X86_PV_INFO; HVM: 8
  unsigned pt_levels = 4;    // PV: X86_PV_INFO; HVM: 4
  std::uint64_t max_pfn = 0;          // highest pfn present (data or zero)
  std::uint64_t pages_present = 0;    // data + zero pfns
  std::uint64_t checkpoint = 0;       // the checkpoint used (0: plain stream or DIR)
  std::uint64_t checkpoints = 0;      // complete checkpoints in the stream
  bool truncated = false;             // a checkpointed stream broke after `checkpoints`
  std::string source;                 // "stream" or "dir"
  // The vCPU state did not decode (a broken HVM context or vCPU record):
  // memory stays readable, vcpus() is empty and vcpu() reports this.
  std::string vcpu_error;
};

class GuestMemory {
 public:
  // A save image or stream file.
  //   kUsage:       not a file, compressed, legacy, or no such checkpoint
  //   kTruncated / kMalformed: the stream ends before anything is complete,
  //                 or its framing is broken (offset in the file)
  //   kLimit:       the index would exceed max_extents
  static Expected<std::unique_ptr<GuestMemory>> open_stream(const std::string& path, const OpenOptions& opts = {});
  // The same over bytes the caller keeps alive for the GuestMemory's life
  // (tests, fuzzing); offsets are offsets in `data`.
  static Expected<std::unique_ptr<GuestMemory>> open_bytes(Bytes data, const OpenOptions& opts = {},
                                                           std::string name = "<memory>");
  // A restored domain directory.
  //   kUsage: not a restored domain (no manifest.json/memory.raw), or an
  //           unfinished restore (.xenstream/ present)
  static Expected<std::unique_ptr<GuestMemory>> open_dir(const std::string& dir);
  // A directory goes to open_dir, anything else to open_stream.
  static Expected<std::unique_ptr<GuestMemory>> open(const std::string& path, const OpenOptions& opts = {});

  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // The 4096 octets of `pfn`.
  //   value:  a span into the mapping (a shared zero page for kZero)
  //   kUsage: "pfn 0x1234 is not present (never sent)" / "(XTAB)" / "(BROKEN)"
  Expected<Bytes> page(std::uint64_t pfn) const;

  // `len` octets at guest-physical `gpa`: a span into the mapping when the
  // range lies in one run, otherwise assembled in `scratch` (resized).
  //   kUsage: a page of the range is not present (the message names it)
  Expected<Bytes> read(std::uint64_t gpa, std::uint64_t len, std::vector<std::byte>& scratch) const;

  // The extent holding `pfn`, or nullptr.
  const Extent* find(std::uint64_t pfn) const;

  const std::vector<Extent>& extents() const { return extents_; }
  // Size of the index in octets (extents only).
  std::uint64_t index_bytes() const { return extents_.capacity() * sizeof(Extent); }
  const GuestInfo& info() const { return info_; }
  const std::vector<VcpuRegs>& vcpus() const { return vcpus_; }
  // The vCPU with this id.
  //   kUsage: no such vCPU
  Expected<const VcpuRegs*> vcpu(std::uint32_t id) const;

  // Reads a page-table entry for page walks (page_walk.h).
  EntryReader entry_reader() const;
  // Walks vCPU `vcpu`'s page tables for `gva` (user: PV user L4).
  Expected<Translation> translate(std::uint32_t vcpu, std::uint64_t gva, bool user = false) const;

  struct Mapping;  // the mapped file (guest_memory.cpp)

 private:
  GuestMemory() = default;
  std::unique_ptr<Mapping> map_;
  std::vector<Extent> extents_;  // sorted by begin, disjoint
  GuestInfo info_;
  std::vector<VcpuRegs> vcpus_;

  friend class StreamIndexer;
  friend Expected<std::unique_ptr<GuestMemory>> open_dir_impl(const std::string& dir);
};

// Half-open runs of present pfns (data or zero), adjacent extents merged.
struct PfnRange {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};
std::vector<PfnRange> present_ranges(const GuestMemory& mem);

}  // namespace xenstream::memview
