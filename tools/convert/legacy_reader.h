// Reads a legacy (Xen 4.5 and older) libxc save stream as a sequence of
// events (spec/legacy.md).
//
// The legacy format has no header and depends on two facts the stream does
// not record: the saving toolstack's word size (`ulong` is 4 or 8 octets)
// and the guest type (PV streams carry extended info, a p2m frame list and a
// PV tail; HVM streams an HVM tail and a qemu record). The caller supplies
// both in a LegacyLayout (legacy_detect.h can guess them).
//
// The reader decides structure and the facts needed to find the next item
// (vcpu context size from the `vcpu` block, online vcpus from VCPU_INFO,
// page data present or not, compressed bodies after ENABLE_COMPRESSION). It
// does not judge values that do not affect the layout (page types, HVM
// chunks in PV streams, tmem contents): that is the caller's job.
//
// Checkpointed (Remus) streams repeat body + tail; the reader walks every
// checkpoint and reports kCheckpointEnd after each tail. Nothing in the
// stream says whether another checkpoint follows: after a tail, more input
// means another checkpoint unless LAST_CHECKPOINT was seen, in which case
// the rest is reported as kTrailingData.
//
// Views in an event live until the next call to next(). Failure is sticky.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/sink.h>
#include <xenstream/libstream/source.h>

namespace xenstream::convert {

using xenstream::GuestType;  // libstream/headers.h
std::string_view guest_type_name(GuestType guest);  // "PV" / "HVM"

struct LegacyLayout {
  unsigned width = 8;  // the saving toolstack's unsigned long: 4 or 8 octets
  GuestType guest = GuestType::kHvm;
};

struct LegacyReaderOptions {
  // Caps on what one item may make the reader hold at once.
  std::uint32_t max_toolstack = 16u << 20;
  std::uint32_t max_hvm_context = 0x08000000u - 8;  // must fit a v2 record
  std::uint64_t max_xsave = 1u << 20;
  std::uint32_t max_ext_block = 1u << 20;  // larger unknown blocks are skipped unread
  // Largest piece of qemu data or compressed data handed out per event.
  std::size_t piece = 1u << 20;
  // HVM: end of input where the qemu signature would start ends the stream
  // instead of being a truncation.
  bool qemu_optional = false;
  // The pages of an uncompressed page batch stay in the source instead of
  // being pulled into its window: the event's `data` is empty and its
  // `deferred` says how many octets wait; move_pages() writes them to a
  // sink (from a pipe with splice(2), never through user space), or the
  // next call to next() skips them. For a reader that hands pages on
  // unread (the converter) from a source that moves_directly(). Without
  // it, a batch is deferred all the same when the input ends inside its
  // pages, so that its entries are seen (and judged) before the cut is
  // reported, as they are from a pipe.
  bool defer_pages = false;
  // More input follows the stream on the same source (xl's migration
  // protocol): after a LAST_CHECKPOINT stream the reader ends without
  // probing for the end of input, which would wait for the peer.
  bool input_continues = false;
  // The stream is one checkpoint, whatever follows it: after the first
  // checkpoint the reader ends without probing for more input, as Xen's
  // convert-legacy-stream reads one image (xl migrate-receive without -r).
  bool single_checkpoint = false;
};

enum class LegacyEventKind : std::uint8_t {
  // Header.
  kP2mSize,       // value = p2m_size
  kExtInfoBlock,  // PV: block = id, value = declared size, data = contents (empty when skipped)
  kP2mFrames,     // PV: count ulongs in `entries`
  // Body (chunk = the chunk id).
  kPageBatch,       // count entries in `entries`; data = their pages (format A) or empty (format B)
  kMarker,          // a chunk without payload: ENABLE_VERIFY_MODE, LAST_CHECKPOINT, ENABLE_COMPRESSION
  kVcpuInfo,        // value = max vcpu id; online_vcpus() holds the map
  kHvmParam,        // param = HVM param index, value = its value
  kTscInfo,         // tsc = the chunk's fields
  kToolstack,       // data = payload
  kTmem,            // TMEM / TMEM_EXTRA, parsed and skipped: count = pools or entries, value = pages
  kCompressedData,  // value = the chunk's declared length; data = one piece of it (several events)
  kBodyEnd,         // the 0 marker
  // PV tail.
  kUnmappedPfns,  // count = number of pfns (skipped)
  kVcpuBasic,     // param = vcpu id, data = context
  kVcpuExtended,  // param = vcpu id, data = 128 octets
  kVcpuXsave,     // param = vcpu id, value = xfeature mask, data = the `size` octets
  kSharedInfo,    // data = 4096 octets
  // HVM tail.
  kHvmMagicPfns,  // magic = {ioreq, bufioreq, store}
  kHvmContext,    // data = the context blob
  kQemuBegin,     // qemu = signature kind; value = length, or none for "to end of input"
  kQemuData,      // data = one piece of the qemu record's contents
  // Structure.
  kCheckpointEnd,  // a checkpoint's tail (and qemu record) is complete
  kTrailingData,   // bytes after the final checkpoint, not read; value = their count if known
  kStreamEnd,      // end of input after a complete checkpoint
};
std::string_view event_name(LegacyEventKind kind);

enum class QemuKind : std::uint8_t {
  kXend,   // "QemuDeviceModelRecord": data to the end of input
  kLibxl,  // "DeviceModelRecord0002": u32 length + data
  kRemus,  // "RemusDeviceModelState": u32 length + data
};
std::string_view qemu_signature(QemuKind kind);

struct TscChunk {
  std::uint32_t mode = 0;
  std::uint64_t nsec = 0;
  std::uint32_t khz = 0;
  std::uint32_t incarnation = 0;
};

struct LegacyEvent {
  LegacyEventKind kind = LegacyEventKind::kStreamEnd;
  std::uint64_t offset = 0;  // absolute offset where the item starts
  std::int32_t chunk = 0;
  std::uint64_t value = 0;
  std::optional<std::uint64_t> length;  // kQemuBegin
  std::uint32_t param = 0;
  std::uint32_t count = 0;
  unsigned width = 8;  // octets per entry in `entries`
  Fields entries;
  Bytes data;
  std::uint64_t deferred = 0;  // kPageBatch with defer_pages: page octets left in the input
  std::array<char, 4> block{};
  TscChunk tsc;
  QemuKind qemu = QemuKind::kLibxl;
  std::array<std::uint64_t, 3> magic{};

  // Entry i of `entries` (page batch or p2m frame list), widened.
  std::uint64_t entry(std::uint32_t i) const {
    return width == 4 ? entries.u32(4 * std::size_t{i}) : entries.u64(8 * std::size_t{i});
  }
  std::string_view block_id() const { return std::string_view(block.data(), block.size()); }
};

class LegacyReader {
 public:
  // Borrows `src`, positioned at the first octet of the legacy stream (after
  // any xl header).
  LegacyReader(Source& src, LegacyLayout layout, LegacyReaderOptions options = {});

  // The next event.
  //   value:       an event; after kStreamEnd every call returns kStreamEnd
  //   kTruncated:  the input ended inside an item (the error names its range)
  //   kMalformed:  the input cannot be a legacy stream of this layout
  //   kLimit:      an item exceeds a cap in LegacyReaderOptions
  //   kIo:         the source failed
  Expected<LegacyEvent> next();

  // After a kPageBatch event with `deferred` octets: writes them to `out`
  // (Sink::write_from). The event's views are void from here. A truncated
  // input gives the same error as a batch read whole would have.
  Expected<void> move_pages(Sink& out);

  const LegacyLayout& layout() const { return layout_; }
  std::uint64_t p2m_size() const { return p2m_size_; }
  // PV, once the `vcpu` block was read: 4 or 8, and 3 or 4; else 0.
  unsigned guest_width() const { return guest_width_; }
  unsigned pt_levels() const { return pt_levels_; }
  std::uint32_t vcpu_context_size() const { return vcpu_size_; }
  bool extended_vcpus() const { return extv_; }
  std::uint32_t xsave_length() const { return xcnt_; }
  // vcpus whose contexts the PV tail holds, ascending (VCPU_INFO of the
  // current checkpoint, else of an earlier one, else {0} as Xen assumed).
  const std::vector<std::uint32_t>& online_vcpus() const { return online_; }
  bool vcpu_info_seen() const { return vcpu_info_seen_; }
  // 1-based number of the checkpoint being read.
  std::uint64_t checkpoint() const { return checkpoint_; }
  // True while reading a body whose page batches carry no data ("format B":
  // a checkpoint after one whose body had ENABLE_COMPRESSION).
  bool compressed_body() const { return compressed_; }
  // LAST_CHECKPOINT appeared in the current checkpoint's body.
  bool last_checkpoint_seen() const { return last_checkpoint_; }
  // Absolute offset of the first unread octet (after the last event's views).
  std::uint64_t position() const { return src_.position() + pending_ + deferred_; }
  Source& source() { return src_; }

 private:
  enum class State : std::uint8_t {
    kP2mSize,
    kExtInfo,
    kExtBlocks,
    kP2mFrames,
    kBody,
    kCompressed,
    kPvUnmapped,
    kPvVcpus,
    kPvShared,
    kHvmMagic,
    kHvmContext,
    kQemuSignature,
    kQemuData,
    kCheckpointDone,
    kAfterCheckpoint,
    kEnded,
  };

  Expected<LegacyEvent> step();
  Expected<LegacyEvent> read_ext_block();
  Expected<LegacyEvent> read_chunk();
  Expected<LegacyEvent> read_batch(std::int32_t n, std::uint64_t at);
  Expected<LegacyEvent> read_vcpu_info(std::uint64_t at);
  Expected<LegacyEvent> read_tmem(std::uint64_t at);
  Expected<LegacyEvent> read_tmem_extra(std::uint64_t at);
  Expected<LegacyEvent> read_pv_vcpu();
  Expected<LegacyEvent> read_qemu_signature();
  Expected<LegacyEvent> next_piece(LegacyEventKind kind);

  Expected<std::uint32_t> read_u32(std::string_view what);
  Expected<std::uint64_t> read_u64(std::string_view what);
  Expected<std::uint64_t> read_ulong(std::string_view what);
  // Pulls n octets and leaves them for the event's view (consumed later).
  Expected<Bytes> hold(std::size_t n, std::string_view what);
  LegacyEvent event(LegacyEventKind kind, std::uint64_t at) const;
  Error fail(Error e);
  Error deferred_truncation() const;

  Source& src_;
  LegacyLayout layout_;
  LegacyReaderOptions options_;
  State state_ = State::kP2mSize;
  std::size_t pending_ = 0;
  // Octets of page data after the pending ones left for move_pages(), and
  // where their batch's entries start (for the truncation error).
  std::uint64_t deferred_ = 0;
  std::uint64_t deferred_from_ = 0;
  std::uint64_t deferred_end_ = 0;
  std::optional<Error> failed_;

  std::uint64_t p2m_size_ = 0;
  unsigned guest_width_ = 0;
  unsigned pt_levels_ = 0;
  std::uint32_t vcpu_size_ = 0;
  bool extv_ = false;
  std::uint32_t xcnt_ = 0;
  std::uint64_t ext_start_ = 0;  // offset of the first block
  std::uint32_t ext_total_ = 0;
  std::uint64_t ext_used_ = 0;

  std::vector<std::uint32_t> online_{0};
  bool vcpu_info_seen_ = false;
  std::size_t next_vcpu_ = 0;
  unsigned vcpu_part_ = 0;  // 0 basic, 1 extended, 2 xsave

  std::uint64_t checkpoint_ = 1;
  bool compressed_ = false;
  bool compression_next_ = false;
  bool last_checkpoint_ = false;

  // A chunk or record being handed out in pieces.
  std::int32_t piece_chunk_ = 0;
  std::uint64_t piece_total_ = 0;
  std::optional<std::uint64_t> piece_left_;  // none: to end of input
};

}  // namespace xenstream::convert
