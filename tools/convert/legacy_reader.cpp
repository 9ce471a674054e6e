#include "tools/convert/legacy_reader.h"

#include <algorithm>
#include <cstring>

#include "tools/convert/legacy_format.h"

namespace xenstream::convert {

namespace lg = legacy;

std::string_view guest_type_name(GuestType guest) { return guest == GuestType::kPv ? "PV" : "HVM"; }

std::string_view event_name(LegacyEventKind kind) {
  switch (kind) {
    case LegacyEventKind::kP2mSize: return "p2m size";
    case LegacyEventKind::kExtInfoBlock: return "extended-info block";
    case LegacyEventKind::kP2mFrames: return "p2m frame list";
    case LegacyEventKind::kPageBatch: return "page batch";
    case LegacyEventKind::kMarker: return "marker chunk";
    case LegacyEventKind::kVcpuInfo: return "VCPU_INFO";
    case LegacyEventKind::kHvmParam: return "HVM parameter chunk";
    case LegacyEventKind::kTscInfo: return "TSC_INFO";
    case LegacyEventKind::kToolstack: return "TOOLSTACK";
    case LegacyEventKind::kTmem: return "tmem chunk";
    case LegacyEventKind::kCompressedData: return "COMPRESSED_DATA";
    case LegacyEventKind::kBodyEnd: return "end of body";
    case LegacyEventKind::kUnmappedPfns: return "unmapped pfn list";
    case LegacyEventKind::kVcpuBasic: return "vcpu context";
    case LegacyEventKind::kVcpuExtended: return "extended vcpu context";
    case LegacyEventKind::kVcpuXsave: return "vcpu xsave state";
    case LegacyEventKind::kSharedInfo: return "shared info";
    case LegacyEventKind::kHvmMagicPfns: return "HVM magic pfns";
    case LegacyEventKind::kHvmContext: return "HVM context";
    case LegacyEventKind::kQemuBegin: return "qemu record";
    case LegacyEventKind::kQemuData: return "qemu data";
    case LegacyEventKind::kCheckpointEnd: return "end of checkpoint";
    case LegacyEventKind::kTrailingData: return "trailing data";
    case LegacyEventKind::kStreamEnd: return "end of stream";
  }
  return "?";
}

std::string_view qemu_signature(QemuKind kind) {
  switch (kind) {
    case QemuKind::kXend: return lg::kQemuSigXend;
    case QemuKind::kLibxl: return lg::kQemuSigLibxl;
    case QemuKind::kRemus: return lg::kQemuSigRemus;
  }
  return "?";
}

namespace {

std::uint32_t le32(const std::byte* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// Octets that should have been a signature or block id, shown in a message.
std::string echoed(Bytes b) { return printable({reinterpret_cast<const char*>(b.data()), b.size()}); }

Error malformed(std::uint64_t at, std::string message) {
  return make_error(ErrorCode::kMalformed, at, std::move(message));
}

}  // namespace

LegacyReader::LegacyReader(Source& src, LegacyLayout layout, LegacyReaderOptions options)
    : src_(src), layout_(layout), options_(options) {}

Expected<LegacyEvent> LegacyReader::next() {
  if (failed_) return *failed_;
  if (pending_ > 0) {
    src_.consume(pending_);
    pending_ = 0;
  }
  if (deferred_ > 0) {
    const std::uint64_t n = std::exchange(deferred_, 0);
    if (auto r = src_.skip(n, "page batch data"); !r) {
      Error e = std::move(r).error();
      if (e.code == ErrorCode::kTruncated) e = deferred_truncation();
      failed_ = e;
      return e;
    }
  }
  auto ev = step();
  if (!ev) failed_ = ev.error();
  return ev;
}

Expected<void> LegacyReader::move_pages(Sink& out) {
  if (failed_) return *failed_;
  if (pending_ > 0) {
    src_.consume(pending_);
    pending_ = 0;
  }
  const std::uint64_t n = std::exchange(deferred_, 0);
  if (auto r = out.write_from(src_, n, "page batch data"); !r) {
    Error e = std::move(r).error();
    if (e.code == ErrorCode::kTruncated) e = deferred_truncation();
    failed_ = e;
    return e;
  }
  return {};
}

// The error hold() gives for a batch (entries and `n` octets of pages)
// that the input ends inside.
Error LegacyReader::deferred_truncation() const {
  return truncated_error(deferred_from_, deferred_end_, "page batch data");
}

LegacyEvent LegacyReader::event(LegacyEventKind kind, std::uint64_t at) const {
  LegacyEvent ev;
  ev.kind = kind;
  ev.offset = at;
  ev.width = layout_.width;
  return ev;
}

Expected<std::uint32_t> LegacyReader::read_u32(std::string_view what) {
  auto b = src_.pull(4, what);
  if (!b) return std::move(b).error();
  const std::uint32_t v = le32(b->data());
  src_.consume(4);
  return v;
}

Expected<std::uint64_t> LegacyReader::read_u64(std::string_view what) {
  auto b = src_.pull(8, what);
  if (!b) return std::move(b).error();
  const std::uint64_t v = Fields(*b, ByteOrder::kLittle, 0).u64(0);
  src_.consume(8);
  return v;
}

Expected<std::uint64_t> LegacyReader::read_ulong(std::string_view what) {
  if (layout_.width == 4) {
    auto v = read_u32(what);
    if (!v) return std::move(v).error();
    return std::uint64_t{*v};
  }
  return read_u64(what);
}

Expected<Bytes> LegacyReader::hold(std::size_t n, std::string_view what) {
  auto b = src_.pull(n, what);
  if (!b) return std::move(b).error();
  pending_ = n;
  return b->first(n);
}

Expected<LegacyEvent> LegacyReader::step() {
  for (;;) {
    const std::uint64_t at = src_.position();
    switch (state_) {
      case State::kP2mSize: {
        auto size = read_ulong("the p2m size");
        if (!size) return std::move(size).error();
        if (layout_.guest == GuestType::kPv) {
          if (*size == 0) return malformed(at, "p2m size at " + hex(at) + " is 0");
          if (*size > lg::kMaxPvP2mSize) {
            return malformed(at, "p2m size " + hex(*size) + " at " + hex(at) +
                                     " exceeds 0xfffffff, the largest a legacy saver writes");
          }
        }
        p2m_size_ = *size;
        state_ = layout_.guest == GuestType::kPv ? State::kExtInfo : State::kBody;
        LegacyEvent ev = event(LegacyEventKind::kP2mSize, at);
        ev.value = p2m_size_;
        return ev;
      }

      case State::kExtInfo: {
        auto marker = read_ulong("the extended-info marker");
        if (!marker) return std::move(marker).error();
        const std::uint64_t ones = layout_.width == 4 ? 0xFFFFFFFFull : ~0ull;
        if (*marker != ones) {
          return make_error(ErrorCode::kUnsupported, at,
                            "no PV extended-info marker at " + hex(at) + " (found " + hex(*marker) +
                                "): PV images saved by Xen before 3.2 are not supported");
        }
        auto total = read_u32("the extended-info length");
        if (!total) return std::move(total).error();
        ext_total_ = *total;
        ext_used_ = 0;
        ext_start_ = src_.position();
        state_ = State::kExtBlocks;
        continue;
      }

      case State::kExtBlocks: {
        if (ext_used_ < ext_total_) return read_ext_block();
        if (ext_used_ != ext_total_) {
          return malformed(ext_start_ + ext_total_,
                           "PV extended-info blocks run " + std::to_string(ext_used_ - ext_total_) +
                               " octets past the declared total of " + hex(ext_total_) +
                               " (blocks at [" + hex(ext_start_) + ", " + hex(ext_start_ + ext_used_) + "))");
        }
        if (guest_width_ == 0) {
          return malformed(ext_start_, "PV extended info at " + hex(ext_start_) +
                                           " has no vcpu block: the guest's width is unknown");
        }
        state_ = State::kP2mFrames;
        continue;
      }

      case State::kP2mFrames: {
        const std::uint64_t fpp = lg::kPageSize / guest_width_;
        const std::uint64_t count = (p2m_size_ - 1) / fpp + 1;
        auto held = hold(static_cast<std::size_t>(count * layout_.width), "the p2m frame list");
        if (!held) return std::move(held).error();
        state_ = State::kBody;
        LegacyEvent ev = event(LegacyEventKind::kP2mFrames, at);
        ev.count = static_cast<std::uint32_t>(count);
        ev.entries = Fields(*held, ByteOrder::kLittle, at);
        return ev;
      }

      case State::kBody:
        return read_chunk();

      case State::kCompressed:
        if (piece_left_ && *piece_left_ == 0) {
          state_ = State::kBody;
          continue;
        }
        return next_piece(LegacyEventKind::kCompressedData);

      case State::kPvUnmapped: {
        auto n = read_u32("the unmapped pfn count");
        if (!n) return std::move(n).error();
        auto skipped = src_.skip(std::uint64_t{*n} * layout_.width, "the unmapped pfn list");
        if (!skipped) return std::move(skipped).error();
        state_ = State::kPvVcpus;
        next_vcpu_ = 0;
        vcpu_part_ = 0;
        LegacyEvent ev = event(LegacyEventKind::kUnmappedPfns, at);
        ev.count = *n;
        return ev;
      }

      case State::kPvVcpus:
        if (next_vcpu_ >= online_.size()) {
          state_ = State::kPvShared;
          continue;
        }
        return read_pv_vcpu();

      case State::kPvShared: {
        auto held = hold(lg::kPageSize, "the shared info page");
        if (!held) return std::move(held).error();
        state_ = State::kCheckpointDone;
        LegacyEvent ev = event(LegacyEventKind::kSharedInfo, at);
        ev.data = *held;
        return ev;
      }

      case State::kHvmMagic: {
        auto b = src_.pull(24, "the HVM magic pfns");
        if (!b) return std::move(b).error();
        LegacyEvent ev = event(LegacyEventKind::kHvmMagicPfns, at);
        const Fields f(*b, ByteOrder::kLittle, at);
        ev.magic = {f.u64(0), f.u64(8), f.u64(16)};
        src_.consume(24);
        state_ = State::kHvmContext;
        return ev;
      }

      case State::kHvmContext: {
        auto len = read_u32("the HVM context length");
        if (!len) return std::move(len).error();
        if (*len > options_.max_hvm_context) {
          return make_error(ErrorCode::kLimit, at,
                            "HVM context at " + hex(at) + " of " + hex(*len) +
                                " octets exceeds the cap of " + hex(options_.max_hvm_context));
        }
        auto held = hold(*len, "the HVM context");
        if (!held) return std::move(held).error();
        state_ = State::kQemuSignature;
        LegacyEvent ev = event(LegacyEventKind::kHvmContext, at);
        ev.data = *held;
        return ev;
      }

      case State::kQemuSignature:
        if (options_.qemu_optional) {
          auto head = src_.peek(1);
          if (!head) return std::move(head).error();
          if (head->empty()) {
            state_ = State::kCheckpointDone;
            continue;
          }
        }
        return read_qemu_signature();

      case State::kQemuData:
        if (piece_left_ && *piece_left_ == 0) {
          state_ = State::kCheckpointDone;
          continue;
        }
        {
          auto ev = next_piece(LegacyEventKind::kQemuData);
          if (!ev) return ev;
          if (ev->data.empty()) {  // end of input for a to-the-end record
            state_ = State::kCheckpointDone;
            continue;
          }
          return ev;
        }

      case State::kCheckpointDone: {
        LegacyEvent ev = event(LegacyEventKind::kCheckpointEnd, at);
        ev.value = checkpoint_;
        if (compression_next_) compressed_ = true;
        state_ = State::kAfterCheckpoint;
        return ev;
      }

      case State::kAfterCheckpoint: {
        if (options_.single_checkpoint || (last_checkpoint_ && options_.input_continues)) {
          state_ = State::kEnded;
          continue;
        }
        auto end = src_.at_end();
        if (!end) return std::move(end).error();
        if (*end) {
          state_ = State::kEnded;
          continue;
        }
        if (last_checkpoint_) {
          state_ = State::kEnded;
          LegacyEvent ev = event(LegacyEventKind::kTrailingData, at);
          const std::uint64_t size = src_.size_hint();
          ev.value = size > at ? size - at : 0;
          return ev;
        }
        ++checkpoint_;
        state_ = State::kBody;
        continue;
      }

      case State::kEnded:
        return event(LegacyEventKind::kStreamEnd, at);
    }
  }
}

Expected<LegacyEvent> LegacyReader::read_ext_block() {
  const std::uint64_t at = src_.position();
  auto head = src_.pull(8, "an extended-info block header");
  if (!head) return std::move(head).error();
  LegacyEvent ev = event(LegacyEventKind::kExtInfoBlock, at);
  std::memcpy(ev.block.data(), head->data(), 4);
  const std::uint32_t size = le32(head->data() + 4);
  src_.consume(8);
  ext_used_ += 8 + std::uint64_t{size};
  ev.value = size;
  const std::string_view id = ev.block_id();
  const std::string shown = "'" + echoed(head->first(4)) + "'";

  if (id == "vcpu") {
    if (size != lg::kVcpuContextSize32 && size != lg::kVcpuContextSize64) {
      return malformed(at, "vcpu block at " + hex(at) + " holds " + hex(size) +
                               " octets: expected 0xaf0 (32-bit guest) or 0x1430 (64-bit guest)");
    }
    if (vcpu_size_ != 0 && vcpu_size_ != size) {
      return malformed(at, "vcpu block at " + hex(at) + " of " + hex(size) +
                               " octets disagrees with the earlier one of " + hex(vcpu_size_));
    }
    vcpu_size_ = size;
    guest_width_ = size == lg::kVcpuContextSize64 ? 8 : 4;
    pt_levels_ = size == lg::kVcpuContextSize64 ? 4 : 3;
  } else if (id == "extv") {
    extv_ = true;
  } else if (id == "xcnt") {
    if (size < 4) {
      return malformed(at, "xcnt block at " + hex(at) + " holds " + std::to_string(size) +
                               " octets: expected at least 4");
    }
  }
  if (id != "vcpu" && size > options_.max_ext_block) {
    // Held only up to the cap, whatever the source (a window source would
    // refuse a 4 GiB hold where a mapped file reports the cut): of a large
    // xcnt block only its count is read, the rest (and any other block)
    // is skipped unread.
    if (id == "xcnt") {
      auto count = read_u32("the xcnt block's count");
      if (!count) return std::move(count).error();
      xcnt_ = *count;
    }
    const std::uint32_t rest = id == "xcnt" ? size - 4 : size;
    auto skipped = src_.skip(rest, "an extended-info block " + shown);
    if (!skipped) return std::move(skipped).error();
    return ev;
  }
  auto held = hold(size, "extended-info block " + shown);
  if (!held) return std::move(held).error();
  ev.data = *held;
  if (id == "xcnt") xcnt_ = le32(held->data());
  return ev;
}

Expected<LegacyEvent> LegacyReader::read_chunk() {
  const std::uint64_t at = src_.position();
  auto raw = read_u32("a chunk id");
  if (!raw) return std::move(raw).error();
  const auto id = static_cast<std::int32_t>(*raw);
  if (id > 0) return read_batch(id, at);

  LegacyEvent ev = event(LegacyEventKind::kMarker, at);
  ev.chunk = id;
  if (id == 0) {
    ev.kind = LegacyEventKind::kBodyEnd;
    state_ = layout_.guest == GuestType::kPv ? State::kPvUnmapped : State::kHvmMagic;
    return ev;
  }
  const std::string name = "chunk " + std::to_string(id) + " (" + std::string(lg::chunk_name(id)) + ")";
  const int param = lg::hvm_param_of_chunk(id);
  if (param >= 0) {
    auto b = src_.pull(12, name);
    if (!b) return std::move(b).error();
    ev.kind = LegacyEventKind::kHvmParam;
    ev.param = static_cast<std::uint32_t>(param);
    ev.value = Fields(*b, ByteOrder::kLittle, at + 4).u64(4);
    src_.consume(12);
    return ev;
  }
  switch (static_cast<lg::ChunkId>(id)) {
    case lg::ChunkId::kEnableVerifyMode:
      return ev;
    case lg::ChunkId::kLastCheckpoint:
      last_checkpoint_ = true;
      return ev;
    case lg::ChunkId::kEnableCompression:
      compression_next_ = true;
      return ev;
    case lg::ChunkId::kVcpuInfo:
      return read_vcpu_info(at);
    case lg::ChunkId::kTmem:
      return read_tmem(at);
    case lg::ChunkId::kTmemExtra:
      return read_tmem_extra(at);
    case lg::ChunkId::kTscInfo: {
      auto b = src_.pull(20, name);
      if (!b) return std::move(b).error();
      const Fields f(*b, ByteOrder::kLittle, at + 4);
      ev.kind = LegacyEventKind::kTscInfo;
      ev.tsc = TscChunk{f.u32(0), f.u64(4), f.u32(12), f.u32(16)};
      src_.consume(20);
      return ev;
    }
    case lg::ChunkId::kCompressedData: {
      auto len = read_ulong("the COMPRESSED_DATA length");
      if (!len) return std::move(len).error();
      piece_chunk_ = id;
      piece_total_ = *len;
      piece_left_ = *len;
      ev.kind = LegacyEventKind::kCompressedData;
      ev.value = *len;
      if (*len == 0) return ev;
      state_ = State::kCompressed;
      auto first = next_piece(LegacyEventKind::kCompressedData);
      if (first) first->offset = at;
      return first;
    }
    case lg::ChunkId::kToolstack: {
      auto len = read_u32("the TOOLSTACK length");
      if (!len) return std::move(len).error();
      if (*len > options_.max_toolstack) {
        return make_error(ErrorCode::kLimit, at,
                          "TOOLSTACK chunk at " + hex(at) + " of " + hex(*len) +
                              " octets exceeds the cap of " + hex(options_.max_toolstack));
      }
      auto held = hold(*len, "the TOOLSTACK data");
      if (!held) return std::move(held).error();
      ev.kind = LegacyEventKind::kToolstack;
      ev.data = *held;
      return ev;
    }
    default:
      return malformed(at, "unknown chunk id " + std::to_string(id) + " at " + hex(at));
  }
}

Expected<LegacyEvent> LegacyReader::read_batch(std::int32_t n, std::uint64_t at) {
  if (static_cast<std::uint32_t>(n) > lg::kMaxBatch) {
    return malformed(at, "page batch at " + hex(at) + " has " + std::to_string(n) +
                             " entries, more than 1024 (MAX_BATCH_SIZE)");
  }
  const unsigned w = layout_.width;
  const std::size_t entry_bytes = static_cast<std::size_t>(n) * w;
  std::size_t total = entry_bytes;
  std::uint32_t data_pages = 0;
  {
    auto b = src_.pull(entry_bytes, "page batch entries");
    if (!b) return std::move(b).error();
    const std::byte* p = b->data();
    for (std::int32_t i = 0; i < n; ++i, p += w) {
      data_pages += ((le32(p) & lg::kEntryTypeMask) >> 28) < lg::kFirstDatalessType;
    }
  }
  if (!compressed_) total += std::size_t{data_pages} * lg::kPageSize;
  bool defer = !compressed_ && options_.defer_pages && data_pages > 0;
  const std::uint64_t from = src_.position();
  auto held = defer ? hold(entry_bytes, "page batch entries")
                    : hold(total, compressed_ ? "page batch entries" : "page batch data");
  if (!held && held.error().code == ErrorCode::kTruncated && !compressed_ && data_pages > 0) {
    // The input ends inside the pages. The batch is handed over deferred,
    // with its entries, and the cut is reported when its pages are asked
    // for (move_pages, or the next next()): a bad entry ahead of the cut is
    // then reported first, as it is from a pipe, where the pages are always
    // deferred and the cut cannot be seen in advance.
    defer = true;
    held = hold(entry_bytes, "page batch entries");
  }
  if (!held) return std::move(held).error();
  LegacyEvent ev = event(LegacyEventKind::kPageBatch, at);
  ev.chunk = n;
  ev.count = static_cast<std::uint32_t>(n);
  ev.value = data_pages;
  ev.entries = Fields(held->first(entry_bytes), ByteOrder::kLittle, at + 4);
  ev.data = held->subspan(entry_bytes);
  if (defer) {
    deferred_ = total - entry_bytes;
    deferred_from_ = from;
    deferred_end_ = from + total;
    ev.deferred = deferred_;
  }
  return ev;
}

Expected<LegacyEvent> LegacyReader::read_vcpu_info(std::uint64_t at) {
  auto raw = read_u32("the VCPU_INFO max vcpu id");
  if (!raw) return std::move(raw).error();
  const auto max_id = static_cast<std::int32_t>(*raw);
  if (max_id < 0) {
    return malformed(at, "VCPU_INFO at " + hex(at) + ": max vcpu id " + std::to_string(max_id) +
                             " is negative");
  }
  if (max_id > lg::kMaxVcpuId) {
    return malformed(at, "VCPU_INFO at " + hex(at) + ": max vcpu id " + std::to_string(max_id) +
                             " exceeds 4095");
  }
  const std::size_t words = static_cast<std::size_t>(max_id) / 64 + 1;
  auto b = src_.pull(words * 8, "the VCPU_INFO online map");
  if (!b) return std::move(b).error();
  const Fields f(*b, ByteOrder::kLittle, at + 8);
  online_.clear();
  for (std::uint32_t id = 0; id <= static_cast<std::uint32_t>(max_id); ++id) {
    if ((f.u64(8 * std::size_t{id / 64}) >> (id % 64)) & 1) online_.push_back(id);
  }
  src_.consume(words * 8);
  vcpu_info_seen_ = true;
  LegacyEvent ev = event(LegacyEventKind::kVcpuInfo, at);
  ev.chunk = static_cast<std::int32_t>(lg::ChunkId::kVcpuInfo);
  ev.value = static_cast<std::uint64_t>(max_id);
  ev.count = static_cast<std::uint32_t>(online_.size());
  return ev;
}

Expected<LegacyEvent> LegacyReader::read_tmem(std::uint64_t at) {
  LegacyEvent ev = event(LegacyEventKind::kTmem, at);
  ev.chunk = static_cast<std::int32_t>(lg::ChunkId::kTmem);
  std::uint32_t head[7];
  for (std::uint32_t& v : head) {
    auto r = read_u32("the TMEM client header");
    if (!r) return std::move(r).error();
    v = *r;
  }
  if (head[2] != lg::kTmemEndMarker) {
    return malformed(at + 12, "TMEM chunk at " + hex(at) + ": expected 0xffffffff after the version and pool count, found " +
                                  hex(head[2]));
  }
  ev.param = head[3];  // client flags
  for (;;) {
    auto pool = read_u32("a TMEM pool id");
    if (!pool) return std::move(pool).error();
    if (*pool == lg::kTmemEndMarker) break;
    auto b = src_.pull(24, "a TMEM pool header");
    if (!b) return std::move(b).error();
    const Fields f(*b, ByteOrder::kLittle, 0);
    const std::uint32_t flags = f.u32(0);
    const std::uint32_t n_pages = f.u32(4);
    src_.consume(24);
    ++ev.count;
    if (n_pages == 0) continue;
    const std::uint64_t page_size = std::uint64_t{1} << (((flags >> lg::kTmemPageSizeShift) & 0xF) + 12);
    for (std::uint32_t j = 0; j < n_pages; ++j) {
      auto oid = src_.pull(24, "a TMEM object id");
      if (!oid) return std::move(oid).error();
      const Fields o(*oid, ByteOrder::kLittle, 0);
      const bool end = o.u64(0) == ~0ull && o.u64(8) == ~0ull && o.u64(16) == ~0ull;
      src_.consume(24);
      if (end) break;
      auto skipped = src_.skip(4 + page_size, "a TMEM page");
      if (!skipped) return std::move(skipped).error();
      ++ev.value;
    }
  }
  return ev;
}

Expected<LegacyEvent> LegacyReader::read_tmem_extra(std::uint64_t at) {
  LegacyEvent ev = event(LegacyEventKind::kTmem, at);
  ev.chunk = static_cast<std::int32_t>(lg::ChunkId::kTmemExtra);
  for (;;) {
    auto pool = read_u32("a TMEM_EXTRA pool id");
    if (!pool) return std::move(pool).error();
    if (*pool == lg::kTmemEndMarker) break;
    auto skipped = src_.skip(28, "a TMEM_EXTRA entry");
    if (!skipped) return std::move(skipped).error();
    ++ev.count;
  }
  return ev;
}

Expected<LegacyEvent> LegacyReader::read_pv_vcpu() {
  const std::uint64_t at = src_.position();
  const std::uint32_t id = online_[next_vcpu_];
  const std::string who = "vcpu " + std::to_string(id);
  LegacyEvent ev = event(LegacyEventKind::kVcpuBasic, at);
  ev.param = id;
  auto advance = [this](unsigned done) {
    if (done < 1 && extv_) {
      vcpu_part_ = 1;
    } else if (done < 2 && xcnt_ != 0) {
      vcpu_part_ = 2;
    } else {
      vcpu_part_ = 0;
      ++next_vcpu_;
    }
  };
  if (vcpu_part_ == 0) {
    auto held = hold(vcpu_size_, "the " + who + " context");
    if (!held) return std::move(held).error();
    ev.data = *held;
    advance(0);
    return ev;
  }
  if (vcpu_part_ == 1) {
    auto held = hold(lg::kExtendedVcpuSize, "the " + who + " extended context");
    if (!held) return std::move(held).error();
    ev.kind = LegacyEventKind::kVcpuExtended;
    ev.data = *held;
    advance(1);
    return ev;
  }
  auto b = src_.pull(16, "the " + who + " xsave header");
  if (!b) return std::move(b).error();
  const Fields f(*b, ByteOrder::kLittle, at);
  const std::uint64_t mask = f.u64(0);
  const std::uint64_t size = f.u64(8);
  if (xcnt_ < lg::kXsaveHeaderSize || size != xcnt_ - lg::kXsaveHeaderSize) {
    return malformed(at + 8, who + " xsave state at " + hex(at) + " has size " + hex(size) +
                                 " but the xcnt block says every vcpu has " + hex(xcnt_) +
                                 " octets (16 + size)");
  }
  if (size > options_.max_xsave) {
    return make_error(ErrorCode::kLimit, at,
                      who + " xsave state at " + hex(at) + " of " + hex(size) +
                          " octets exceeds the cap of " + hex(options_.max_xsave));
  }
  src_.consume(16);
  auto held = hold(static_cast<std::size_t>(size), "the " + who + " xsave state");
  if (!held) return std::move(held).error();
  ev.kind = LegacyEventKind::kVcpuXsave;
  ev.value = mask;
  ev.data = *held;
  advance(2);
  return ev;
}

Expected<LegacyEvent> LegacyReader::read_qemu_signature() {
  const std::uint64_t at = src_.position();
  auto sig = src_.pull(lg::kQemuSignatureSize, "the qemu record signature");
  if (!sig) return std::move(sig).error();
  const std::string_view text(reinterpret_cast<const char*>(sig->data()), lg::kQemuSignatureSize);
  LegacyEvent ev = event(LegacyEventKind::kQemuBegin, at);
  if (text == lg::kQemuSigXend) {
    ev.qemu = QemuKind::kXend;
  } else if (text == lg::kQemuSigLibxl) {
    ev.qemu = QemuKind::kLibxl;
  } else if (text == lg::kQemuSigRemus) {
    ev.qemu = QemuKind::kRemus;
  } else {
    return malformed(at, "unknown qemu record signature '" + echoed(sig->first(lg::kQemuSignatureSize)) +
                             "' at " + hex(at) +
                             " (expected DeviceModelRecord0002, RemusDeviceModelState or QemuDeviceModelRecord)");
  }
  src_.consume(lg::kQemuSignatureSize);
  if (ev.qemu == QemuKind::kXend) {
    piece_left_.reset();
  } else {
    auto len = read_u32("the qemu record length");
    if (!len) return std::move(len).error();
    piece_left_ = *len;
    ev.length = *len;
    ev.value = *len;
  }
  piece_total_ = ev.value;
  piece_chunk_ = 0;
  state_ = State::kQemuData;
  return ev;
}

Expected<LegacyEvent> LegacyReader::next_piece(LegacyEventKind kind) {
  const std::uint64_t at = src_.position();
  LegacyEvent ev = event(kind, at);
  ev.chunk = piece_chunk_;
  ev.value = piece_total_;
  if (piece_left_) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(*piece_left_, options_.piece));
    auto held = hold(n, kind == LegacyEventKind::kQemuData ? "the qemu record" : "COMPRESSED_DATA");
    if (!held) return std::move(held).error();
    *piece_left_ -= n;
    ev.data = *held;
    return ev;
  }
  auto got = src_.peek(options_.piece);
  if (!got) return std::move(got).error();
  pending_ = got->size();
  ev.data = *got;
  return ev;
}

}  // namespace xenstream::convert
