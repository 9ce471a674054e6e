#include "tools/convert/converter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include <xenstream/codecs/remus/page_store.h>
#include <xenstream/codecs/remus/remus_codec.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_writer.h>
#include "tools/convert/legacy_detect.h"
#include "tools/convert/legacy_format.h"
#include "tools/convert/spool.h"

namespace xenstream::convert {

namespace lg = legacy;
namespace xc = format::libxc;
namespace xl = format::libxl;
namespace remus = codecs::remus;

// ---------------------------------------------------------------------------
// Random access to the input

Expected<std::unique_ptr<FdRandomAccess>> FdRandomAccess::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open " + path, errno);
  return std::make_unique<FdRandomAccess>(fd, true);
}

FdRandomAccess::~FdRandomAccess() {
  if (owned_) ::close(fd_);
}

Expected<void> FdRandomAccess::read_at(std::uint64_t offset, std::span<std::byte> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      Error e = io_error("cannot re-read the input at " + hex(offset + done), errno);
      e.offset = offset + done;
      return e;
    }
    if (n == 0) return truncated_error(offset + done, offset + out.size(), "a page of the input again");
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Expected<void> MemoryRandomAccess::read_at(std::uint64_t offset, std::span<std::byte> out) {
  if (offset > data_.size() || out.size() > data_.size() - offset) {
    return truncated_error(offset, offset + out.size(), "a page of the input again");
  }
  std::memcpy(out.data(), data_.data() + offset, out.size());
  return {};
}

namespace {

constexpr std::uint32_t kCheckpointRecord = static_cast<std::uint32_t>(xc::RecordType::kCheckpoint);
constexpr std::array<std::byte, 8> kZeroPad{};

std::string hex_digits(std::uint64_t v) { return hex(v).substr(2); }

// Asks the kernel to map a stretch of a mapped input in one go. Without it
// the first touch of each page happens inside the write that copies it,
// which then stops short, faults the page in and starts again; with it a
// file-to-file conversion runs about a third faster.
void prefault(Bytes b) {
#ifdef MADV_POPULATE_READ
  if (b.empty()) return;
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(b.data()) & ~(page - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(b.data() + b.size());
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);
#else
  (void)b;
#endif
}

// pfn -> input offset of the latest uncompressed copy of the page. Chunked,
// so it costs memory only for the stretches of pfns a stream sends.
class PfnOffsets {
 public:
  void set(std::uint64_t pfn, std::uint64_t offset) {
    const std::uint64_t c = pfn >> kShift;
    if (c >= chunks_.size()) chunks_.resize(c + 1);
    if (!chunks_[c]) chunks_[c] = std::make_unique<std::uint64_t[]>(std::size_t{1} << kShift);
    chunks_[c][pfn & kMask] = offset + 1;
  }
  std::optional<std::uint64_t> get(std::uint64_t pfn) const {
    const std::uint64_t c = pfn >> kShift;
    if (c >= chunks_.size() || !chunks_[c] || chunks_[c][pfn & kMask] == 0) return std::nullopt;
    return chunks_[c][pfn & kMask] - 1;
  }

 private:
  static constexpr unsigned kShift = 12;
  static constexpr std::uint64_t kMask = (std::uint64_t{1} << kShift) - 1;
  std::vector<std::unique_ptr<std::uint64_t[]>> chunks_;
};

// What ends one checkpoint in the output, kept until the converter knows
// whether another complete checkpoint follows.
struct CheckpointTail {
  std::vector<std::byte> xenstore;  // EMULATOR_XENSTORE_DATA strings
  bool has_qemu = false;
  QemuKind qemu_kind = QemuKind::kLibxl;
  Spool qemu;
};

struct PendingBatch {
  std::uint64_t offset = 0;
  std::vector<std::uint64_t> entries;    // v2-encoded
  std::vector<std::uint64_t> data_pfns;  // pfns whose pages are still to come, in order
  std::size_t decoded = 0;
};

class Converter {
 public:
  Converter(Source& in, Sink& out, const ConvertOptions& options)
      : in_(in),
        out_(out),
        opt_(options),
        main_(out),
        ckpt_spool_(options.temp_dir, options.spool_memory),
        spool_sink_(ckpt_spool_),
        spool_writer_(spool_sink_),
        w_(&main_) {
    tail_.qemu = Spool(options.temp_dir, options.spool_memory);
    pending_tail_.qemu = Spool(options.temp_dir, options.spool_memory);
  }

  Expected<ConvertResult> run();

 private:
  void report(Severity s, const std::string& msg) {
    if (s == Severity::kWarning) ++result_.warnings;
    if (opt_.report) opt_.report(s, msg);
  }
  bool pv() const { return layout_.guest == GuestType::kPv; }
  bool libxl() const { return opt_.format == OutputFormat::kLibxl; }
  bool carry_qemu() const { return libxl() || !opt_.skip_qemu; }

  // Marks output failures, which are never "an incomplete checkpoint".
  template <typename T>
  T out_check(T r) {
    if (!r) output_failed_ = true;
    return r;
  }

  Expected<void> handle_container();
  Expected<void> choose_layout();
  Expected<void> handle(const LegacyEvent& ev);
  Expected<void> write_headers();
  Expected<void> filter_batch(const LegacyEvent& ev);
  Expected<void> write_batch(const LegacyEvent& ev);
  Expected<void> queue_compressed_batch(const LegacyEvent& ev);
  Expected<void> decode_compressed(const LegacyEvent& ev);
  Expected<void> emit_ready_batches();
  Expected<void> ensure_store();
  Expected<void> parse_physmap(const LegacyEvent& ev);
  Expected<void> end_checkpoint(const LegacyEvent& ev);
  Expected<void> write_qemu_raw(const CheckpointTail& t);
  Expected<void> write_emulator_context(const CheckpointTail& t);
  Expected<void> write_checkpoint_end(const CheckpointTail& t);
  Expected<void> finalize();

  Source& in_;
  Sink& out_;
  const ConvertOptions& opt_;
  RecordWriter main_;
  Spool ckpt_spool_;
  SpoolSink spool_sink_;
  RecordWriter spool_writer_;
  RecordWriter* w_;
  std::optional<LegacyReader> reader_;
  LegacyLayout layout_;
  std::optional<LegacyLayout> looks_like_;  // detection disagreed with the flags
  bool mapped_input_ = false;
  ConvertResult result_;
  bool output_failed_ = false;
  bool pv_info_written_ = false;
  bool in_qemu_ = false;
  bool discard_qemu_ = false;
  bool finalized_ = false;

  // The checkpoint being read, and the last complete one.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hvm_params_;
  CheckpointTail tail_;
  CheckpointTail pending_tail_;
  bool have_pending_ = false;

  // Page batch scratch.
  std::vector<std::uint64_t> entries_;
  std::vector<std::uint64_t> raw_;
  std::vector<Bytes> pages_;
  std::vector<std::uint64_t> data_pfns_;

  // Remus.
  PfnOffsets offsets_;
  std::unique_ptr<remus::PageStore> store_;
  std::unique_ptr<remus::Decoder> decoder_;
  remus::EncodingSplitter splitter_;
  std::deque<PendingBatch> waiting_;
  std::uint64_t waiting_entries_ = 0;
  std::vector<std::byte> page_buf_;
  std::array<std::byte, remus::kPageSize> scratch_{};
};

// ---------------------------------------------------------------------------

Expected<void> Converter::handle_container() {
  auto head = in_.peek(64);
  if (!head) return std::move(head).error();
  const bool xl_magic = head->size() >= format::xl::kMagic.size() &&
                        std::memcmp(head->data(), format::xl::kMagic.data(), format::xl::kMagic.size()) == 0;
  if (opt_.xl_header.value_or(false) && !xl_magic) {
    return make_error(ErrorCode::kMalformed, 0,
                      "-x: the input does not start with an xl save header (\"Xen saved domain, xl format\")");
  }
  constexpr std::string_view kXendMagic{"LinuxGuestRecord"};
  if (!xl_magic && head->size() >= kXendMagic.size() &&
      std::memcmp(head->data(), kXendMagic.data(), kXendMagic.size()) == 0) {
    // xend's save header (spec/legacy.md "xend header"): the magic, a
    // big-endian i32 length and the domain's SXP config. v2 streams have no
    // place for it, so only the legacy stream after it is converted.
    auto fixed = in_.pull(kXendMagic.size() + 4, "the xend save header");
    if (!fixed) return std::move(fixed).error();
    const std::uint32_t len = Fields(*fixed, ByteOrder::kBig, 0).u32(kXendMagic.size());
    if (len > kMaxXlOptionalData) {
      return make_error(ErrorCode::kLimit, kXendMagic.size(),
                        "xend save header: a config of " + hex(len) + " octets exceeds the cap of " +
                            hex(kMaxXlOptionalData));
    }
    in_.consume(kXendMagic.size() + 4);
    XS_TRY(in_.skip(len, "the xend save header's config"));
    report(Severity::kWarning, "xend save header with a " + std::to_string(len) +
                                   "-octet SXP config: the config is not carried over (v2 streams have no place for it)");
    return {};
  }
  if (!xl_magic) {
    if (head->size() >= 16 &&
        std::memcmp(head->data(), format::libvirt::kMagic.data(), format::libvirt::kMagic.size()) == 0) {
      return make_error(ErrorCode::kUnsupported, 0,
                        "the input starts with a libvirt save header; streamconv converts bare legacy "
                        "streams and xl save files only");
    }
    const PayloadKind kind = classify_payload(*head);
    if (kind != PayloadKind::kLegacy) {
      return make_error(ErrorCode::kUnsupported, 0,
                        "the input is already a v2 stream (" + std::string(payload_name(kind)) +
                            "); there is nothing to convert");
    }
    return {};
  }
  if (opt_.xl_header.has_value() && !*opt_.xl_header) return {};

  auto fixed = in_.pull(format::xl::kHeaderSize, "the xl save header");
  if (!fixed) return std::move(fixed).error();
  const Fields f(*fixed, ByteOrder::kLittle, 0);
  const std::uint32_t byteorder = f.u32(32);
  std::uint32_t mandatory = f.u32(36);
  const std::uint32_t optional_flags = f.u32(40);
  const std::uint32_t optlen = f.u32(44);
  if (byteorder != format::xl::kByteOrderMark) {
    return make_error(ErrorCode::kUnsupported, 32,
                      "xl save header: byte-order mark " + hex(byteorder) +
                          " at 0x20 is not 0x1020304: the file was not written on a little-endian x86 host");
  }
  if (mandatory & format::xl::kMandatoryStreamV2) {
    return make_error(ErrorCode::kUnsupported, 36,
                      "xl save header: the STREAMv2 flag is set, so a v2 stream follows; there is nothing to convert");
  }
  if (optlen > kMaxXlOptionalData) {
    return make_error(ErrorCode::kLimit, 44,
                      "xl save header: optional data of " + hex(optlen) + " octets exceeds the cap of " +
                          hex(kMaxXlOptionalData));
  }
  auto whole = in_.pull(format::xl::kHeaderSize + std::size_t{optlen}, "the xl save header's optional data");
  if (!whole) return std::move(whole).error();
  if (libxl()) mandatory |= format::xl::kMandatoryStreamV2;
  std::array<std::byte, 16> fields{};
  put_u32(fields.data(), byteorder, ByteOrder::kLittle);
  put_u32(fields.data() + 4, mandatory, ByteOrder::kLittle);
  put_u32(fields.data() + 8, optional_flags, ByteOrder::kLittle);
  put_u32(fields.data() + 12, optlen, ByteOrder::kLittle);
  XS_TRY(out_check(out_.write({whole->first(32), Bytes(fields), whole->subspan(format::xl::kHeaderSize, optlen)})));
  in_.consume(format::xl::kHeaderSize + std::size_t{optlen});
  result_.xl_header = true;
  report(Severity::kVerbose, "xl save header with " + std::to_string(optlen) + " octets of optional data" +
                                 (libxl() ? ", copied with the STREAMv2 flag set" : ", copied unchanged"));
  if (!libxl()) {
    report(Severity::kWarning,
           "the xl header is copied without the STREAMv2 flag (libxc format, as Xen's converter does): "
           "xl will not restore this file; use -f libxl for that");
  }
  return {};
}

Expected<void> Converter::choose_layout() {
  const std::uint64_t start = in_.position();
  auto head = in_.peek(kDetectHead);
  if (!head) return std::move(head).error();
  if (opt_.width && opt_.guest) {
    // As told, like Xen's converter; what the stream looks like is kept for
    // the error message if the flags turn out wrong.
    layout_ = LegacyLayout{*opt_.width, *opt_.guest};
    const Detection d = detect_layout(*head, std::nullopt, std::nullopt);
    if (d.layout && (d.layout->width != layout_.width || d.layout->guest != layout_.guest)) {
      looks_like_ = d.layout;
      report(Severity::kVerbose, "the stream looks like a " + describe_layout(*d.layout) + ", not a " +
                                     describe_layout(layout_) + " as the flags say");
    }
    return {};
  }
  const Detection d = detect_layout(*head, opt_.width, opt_.guest);
  std::string reason = d.reason;
  while (!reason.empty() && reason.back() == '\n') reason.pop_back();
  if (!d.layout) {
    std::string why = reason;
    std::replace(why.begin(), why.end(), '\n', ';');
    Error e = make_error(ErrorCode::kUsage, start,
                         "cannot tell the toolstack width and guest type from the stream: " + d.summary +
                             " (" + why + "); give -w 32|64 and -g pv|hvm");
    return e;
  }
  layout_ = *d.layout;
  result_.detected = true;
  report(Severity::kNote, "detected " + d.summary);
  report(Severity::kVerbose, "detection (stream start at " + hex(start) + "):\n" + reason);
  return {};
}

Expected<void> Converter::write_headers() {
  if (libxl()) {
    XS_TRY(out_check(main_.write_libxl_header(xl::kOptionLegacy)));
    XS_TRY(out_check(main_.append(xl::RecordType::kLibxcContext)));
  }
  XS_TRY(out_check(main_.write_image_header(xc::kVersion3, 0)));
  XS_TRY(out_check(main_.write_domain_header(pv() ? xc::kDomainX86Pv : xc::kDomainX86Hvm, 0, 1)));
  if (!pv()) XS_TRY(out_check(main_.append(xc::RecordType::kStaticDataEnd)));
  return {};
}

// Turns a legacy batch into v2 entries (in entries_) and the pfns of its
// data pages (in data_pfns_), following Xen's converter: bare 0xF0000000
// XTAB entries are dropped, the rest keep type and pfn bits 27-0, repeated
// entries are an error. Unlike Xen's converter, bogus types 5-7 are refused
// (Xen's restorer refused them) and a lone LPINTAB (8) becomes NOTAB, which
// is what Xen's restorer made of it.
Expected<void> Converter::filter_batch(const LegacyEvent& ev) {
  entries_.clear();
  raw_.clear();
  data_pfns_.clear();
  for (std::uint32_t i = 0; i < ev.count; ++i) {
    const std::uint64_t x = ev.entry(i);
    if (x == lg::kXtabPadding) continue;
    const auto low = static_cast<std::uint32_t>(x);
    unsigned type = (low & lg::kEntryTypeMask) >> 28;
    const std::uint32_t pfn = low & lg::kEntryPfnMask;
    if (type >= 5 && type <= 7) {
      return make_error(ErrorCode::kMalformed, ev.entries.offset_of(std::size_t{i} * ev.width),
                        "page batch at " + hex(ev.offset) + ": entry " + std::to_string(i) + " (" + hex(x) +
                            ") has the bogus page type " + hex(type));
    }
    if (type == 8) type = 0;
    raw_.push_back(x);
    entries_.push_back((std::uint64_t{type} << 60) | pfn);
    if (type < lg::kFirstDatalessType) data_pfns_.push_back(pfn);
  }
  if (raw_.size() > 1) {
    std::sort(raw_.begin(), raw_.end());
    auto dup = std::adjacent_find(raw_.begin(), raw_.end());
    if (dup != raw_.end()) {
      return make_error(ErrorCode::kMalformed, ev.offset,
                        "page batch at " + hex(ev.offset) + ": the entry " + hex(*dup) + " appears twice");
    }
  }
  return {};
}

Expected<void> Converter::write_batch(const LegacyEvent& ev) {
  XS_TRY(filter_batch(ev));
  const std::uint64_t data_start = ev.entries.offset_of(std::size_t{ev.count} * ev.width);
  if (entries_.empty()) {
    report(Severity::kVerbose, "page batch at " + hex(ev.offset) +
                                   " holds only unmappable-page padding (0xf0000000): nothing to write "
                                   "(Xen's converter writes an empty PAGE_DATA that restorers refuse)");
    return {};
  }
  if (mapped_input_) prefault(ev.data);
  // Pages follow the entries in entry order, one per data-carrying entry
  // (dropped padding entries carry none). Deferred pages are still in the
  // input, and go from there to the output.
  pages_.clear();
  std::size_t p = 0;
  for (std::uint32_t i = 0; i < ev.count; ++i) {
    const std::uint64_t x = ev.entry(i);
    if (((static_cast<std::uint32_t>(x) & lg::kEntryTypeMask) >> 28) >= lg::kFirstDatalessType) continue;
    if (ev.deferred == 0) pages_.push_back(ev.data.subspan(p * lg::kPageSize, lg::kPageSize));
    if (opt_.reread != nullptr) {
      offsets_.set(static_cast<std::uint32_t>(x) & lg::kEntryPfnMask, data_start + p * lg::kPageSize);
    }
    ++p;
  }
  if (ev.deferred > 0) {
    XS_TRY(out_check(w_->begin_page_data(entries_, p)));
    if (auto moved = reader_->move_pages(w_->sink()); !moved) {
      // The input ending early is the input's fault (a broken checkpoint);
      // a failed splice or write is taken as the output's, which stops the
      // conversion whatever checkpoint it is in.
      if (moved.error().code != ErrorCode::kTruncated) output_failed_ = true;
      return moved;
    }
  } else {
    XS_TRY(out_check(w_->append_page_data(entries_, pages_)));
  }
  ++result_.page_records;
  result_.pages += p;
  return {};
}

Expected<void> Converter::ensure_store() {
  if (store_) return {};
  auto store = remus::PageStore::create(opt_.temp_dir);
  if (!store) {
    output_failed_ = true;
    return std::move(store).error();
  }
  store_ = std::move(store).value();
  remus::BaseLookup fallback;
  if (opt_.reread != nullptr) {
    fallback = [this](std::uint64_t pfn, std::span<std::byte, remus::kPageSize> out) -> Expected<bool> {
      const auto at = offsets_.get(pfn);
      if (!at) return false;
      XS_TRY(opt_.reread->read_at(*at, out));
      return true;
    };
  }
  decoder_ = std::make_unique<remus::Decoder>(*store_, std::move(fallback));
  page_buf_.resize(std::size_t{lg::kMaxBatch} * lg::kPageSize);
  return {};
}

Expected<void> Converter::queue_compressed_batch(const LegacyEvent& ev) {
  XS_TRY(filter_batch(ev));
  XS_TRY(ensure_store());
  if (entries_.empty()) {
    report(Severity::kVerbose, "page batch at " + hex(ev.offset) + " holds only padding: nothing to write");
    return {};
  }
  constexpr std::uint64_t kMaxWaiting = std::uint64_t{1} << 20;
  if (waiting_entries_ + entries_.size() > kMaxWaiting) {
    return make_error(ErrorCode::kLimit, ev.offset,
                      "page batch at " + hex(ev.offset) + ": more than " + std::to_string(kMaxWaiting) +
                          " page entries are waiting for COMPRESSED_DATA");
  }
  PendingBatch b;
  b.offset = ev.offset;
  b.entries = entries_;
  b.data_pfns = data_pfns_;
  waiting_entries_ += b.entries.size();
  waiting_.push_back(std::move(b));
  return emit_ready_batches();
}

// Writes the batches at the front of the queue whose pages are all decoded;
// their contents are the store's (the latest copy of each page).
Expected<void> Converter::emit_ready_batches() {
  while (!waiting_.empty() && waiting_.front().decoded == waiting_.front().data_pfns.size()) {
    PendingBatch& b = waiting_.front();
    pages_.clear();
    for (std::size_t i = 0; i < b.data_pfns.size(); ++i) {
      const std::span<std::byte, remus::kPageSize> page(page_buf_.data() + i * lg::kPageSize, lg::kPageSize);
      auto loaded = store_->load(b.data_pfns[i], page);
      if (!loaded) {
        output_failed_ = true;
        return std::move(loaded).error();
      }
      pages_.push_back(page);
    }
    XS_TRY(out_check(w_->append_page_data(b.entries, pages_)));
    ++result_.page_records;
    result_.pages += pages_.size();
    waiting_entries_ -= b.entries.size();
    waiting_.pop_front();
  }
  return {};
}

Expected<void> Converter::decode_compressed(const LegacyEvent& ev) {
  if (!reader_->compressed_body()) {
    return make_error(ErrorCode::kMalformed, ev.offset,
                      "COMPRESSED_DATA chunk at " + hex(ev.offset) + " in checkpoint " +
                          std::to_string(reader_->checkpoint()) +
                          ", whose pages are not compressed (no earlier checkpoint had ENABLE_COMPRESSION)");
  }
  XS_TRY(ensure_store());
  const std::uint64_t data_at = reader_->position() - ev.data.size();
  splitter_.feed(ev.data, data_at);
  for (;;) {
    auto enc = splitter_.next();
    if (!enc) return std::move(enc).error();
    if (!*enc) break;
    auto it = std::find_if(waiting_.begin(), waiting_.end(),
                           [](const PendingBatch& b) { return b.decoded < b.data_pfns.size(); });
    if (it == waiting_.end()) {
      return make_error(ErrorCode::kMalformed, (*enc)->offset,
                        "COMPRESSED_DATA at " + hex((*enc)->offset) +
                            ": a compressed page beyond those the page batches announced");
    }
    const std::uint64_t pfn = it->data_pfns[it->decoded];
    auto done = decoder_->decode(pfn, (*enc)->bytes, scratch_, (*enc)->offset);
    if (!done) {
      if (done.error().code == ErrorCode::kIo) output_failed_ = true;
      return std::move(done).error();
    }
    ++it->decoded;
    ++result_.compressed_pages;
    XS_TRY(emit_ready_batches());
  }
  return {};
}

// libxl's legacy TOOLSTACK payload (physmap version 1) becomes xenstore
// pairs, as Xen's converter writes them. On a 64-bit toolstack every entry
// carries 4 junk octets after its name. Unlike Xen's converter, an entry
// without a name (namelen 0, which libxl wrote when xenstore had none) is
// accepted and gives no name key.
Expected<void> Converter::parse_physmap(const LegacyEvent& ev) {
  const Fields f(ev.data, ByteOrder::kLittle, ev.offset + 8);
  auto bad = [&](std::size_t off, const std::string& what) {
    return make_error(ErrorCode::kMalformed, f.offset_of(off),
                      "libxl TOOLSTACK data at " + hex(ev.offset) + ": " + what);
  };
  if (f.size() < 8) return bad(0, "only " + std::to_string(f.size()) + " octets, too short for its header");
  const std::uint32_t version = f.u32(0);
  const std::uint32_t count = f.u32(4);
  if (version != lg::kPhysmapVersion) return bad(0, "unknown version " + std::to_string(version) + " (expected 1)");
  std::size_t off = 8;
  const std::size_t pad = layout_.width == 8 ? lg::kPhysmapPadding64 : 0;
  auto add = [this](const std::string& key, Bytes value) {
    tail_.xenstore.insert(tail_.xenstore.end(), reinterpret_cast<const std::byte*>(key.data()),
                          reinterpret_cast<const std::byte*>(key.data()) + key.size());
    tail_.xenstore.push_back(std::byte{0});
    tail_.xenstore.insert(tail_.xenstore.end(), value.begin(), value.end());
    tail_.xenstore.push_back(std::byte{0});
  };
  auto text = [](const std::string& s) {
    return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
  };
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string which = "physmap entry " + std::to_string(i);
    if (!f.fits(off, lg::kPhysmapEntryHeader)) return bad(off, which + " is cut short");
    const std::uint64_t phys = f.u64(off);
    const std::uint64_t start = f.u64(off + 8);
    const std::uint64_t size = f.u64(off + 16);
    const std::uint32_t namelen = f.u32(off + 24);
    off += lg::kPhysmapEntryHeader;
    if (!f.fits(off, std::size_t{namelen} + pad)) return bad(off, which + ": its name runs past the data");
    const Bytes name = f.bytes().subspan(off, namelen);
    off += namelen + pad;
    if (namelen > 0 && name.back() != std::byte{0}) return bad(off, which + ": its name is not NUL-terminated");
    const std::string root = "physmap/" + hex_digits(phys);
    add(root + "/start_addr", text(hex_digits(start)));
    add(root + "/size", text(hex_digits(size)));
    if (namelen > 0) add(root + "/name", name.first(namelen - 1));
    report(Severity::kVerbose, which + ": " + root + " start " + hex(start) + " size " + hex(size));
  }
  return {};
}

Expected<void> Converter::handle(const LegacyEvent& ev) {
  using K = LegacyEventKind;
  switch (ev.kind) {
    case K::kP2mSize:
      report(Severity::kVerbose, "p2m size " + hex(ev.value));
      return write_headers();

    case K::kExtInfoBlock: {
      const std::string_view id = ev.block_id();
      if (id == "vcpu") {
        if (!pv_info_written_) {
          XS_TRY(out_check(main_.append_x86_pv_info(static_cast<std::uint8_t>(reader_->guest_width()),
                                                    static_cast<std::uint8_t>(reader_->pt_levels()))));
          pv_info_written_ = true;
          report(Severity::kVerbose, std::to_string(reader_->guest_width() * 8) + "-bit PV guest, " +
                                         std::to_string(reader_->pt_levels()) + " page-table levels");
        }
      } else if (id != "extv" && id != "xcnt") {
        report(Severity::kWarning, "unknown PV extended-info block at " + hex(ev.offset) + " (" +
                                       std::to_string(ev.value) + " octets) skipped, as Xen's restorer did");
      }
      return {};
    }

    case K::kP2mFrames: {
      XS_TRY(out_check(main_.append(xc::RecordType::kStaticDataEnd)));
      std::vector<std::uint64_t> frames(ev.count);
      for (std::uint32_t i = 0; i < ev.count; ++i) frames[i] = ev.entry(i);
      return out_check(main_.append_p2m_frames(0, static_cast<std::uint32_t>(reader_->p2m_size() - 1), frames));
    }

    case K::kPageBatch:
      if (opt_.progress) opt_.progress(reader_->position());  // the callee rate-limits
      if (reader_->compressed_body()) return queue_compressed_batch(ev);
      return write_batch(ev);

    case K::kMarker:
      switch (static_cast<lg::ChunkId>(ev.chunk)) {
        case lg::ChunkId::kEnableVerifyMode:
          report(Severity::kVerbose, "ENABLE_VERIFY_MODE at " + hex(ev.offset) +
                                         ": a debug save; the pages resent after it are written as PAGE_DATA");
          break;
        case lg::ChunkId::kLastCheckpoint:
          report(Severity::kVerbose, "LAST_CHECKPOINT at " + hex(ev.offset));
          break;
        default:
          report(Severity::kVerbose, "ENABLE_COMPRESSION at " + hex(ev.offset) +
                                         ": later checkpoints carry Remus-compressed pages");
          break;
      }
      return {};

    case K::kVcpuInfo:
      report(Severity::kVerbose, "VCPU_INFO: max vcpu id " + std::to_string(ev.value) + ", " +
                                     std::to_string(ev.count) + " online");
      return {};

    case K::kHvmParam:
      if (pv()) {
        return make_error(ErrorCode::kMalformed, ev.offset,
                          "chunk " + std::to_string(ev.chunk) + " (" + std::string(lg::chunk_name(ev.chunk)) +
                              ") at " + hex(ev.offset) + " is for HVM guests only, but this is a PV stream");
      }
      hvm_params_.emplace_back(ev.param, ev.value);
      return {};

    case K::kTscInfo:
      return out_check(w_->append_tsc_info(ev.tsc.mode, ev.tsc.khz, ev.tsc.nsec, ev.tsc.incarnation));

    case K::kToolstack:
      if (libxl()) return parse_physmap(ev);
      report(Severity::kVerbose, "TOOLSTACK chunk at " + hex(ev.offset) + " discarded (libxc format)");
      return {};

    case K::kTmem:
      if (ev.value > 0) {
        return make_error(ErrorCode::kUnsupported, ev.offset,
                          "TMEM chunk at " + hex(ev.offset) + " carries " + std::to_string(ev.value) +
                              " persistent tmem pages: v2 streams have no place for them (Xen dropped tmem "
                              "in 4.13), and leaving them out would lose guest data");
      }
      report(Severity::kWarning, std::string(ev.chunk == -5 ? "TMEM" : "TMEM_EXTRA") + " chunk at " +
                                     hex(ev.offset) + " skipped (no tmem pages; v2 streams cannot carry tmem)");
      return {};

    case K::kCompressedData:
      if (ev.data.empty()) return {};
      return decode_compressed(ev);

    case K::kBodyEnd:
      if (reader_->compressed_body()) {
        if (splitter_.has_partial()) {
          return make_error(ErrorCode::kMalformed, splitter_.partial_offset(),
                            "the body ends at " + hex(ev.offset) + " inside a compressed page that starts at " +
                                hex(splitter_.partial_offset()));
        }
        if (!waiting_.empty()) {
          std::uint64_t missing = 0;
          for (const PendingBatch& b : waiting_) missing += b.data_pfns.size() - b.decoded;
          return make_error(ErrorCode::kMalformed, ev.offset,
                            "the body ends at " + hex(ev.offset) + " with " + std::to_string(missing) +
                                " pages of the batch at " + hex(waiting_.front().offset) +
                                " and later still waiting for COMPRESSED_DATA");
        }
      }
      if (!hvm_params_.empty()) {
        XS_TRY(out_check(w_->append_hvm_params(hvm_params_)));
        hvm_params_.clear();
      }
      return {};

    case K::kUnmappedPfns:
      if (!reader_->vcpu_info_seen() && reader_->checkpoint() == 1) {
        report(Severity::kWarning, "no VCPU_INFO chunk: vcpu 0 alone is taken as online, as Xen's restorer did "
                                   "(Xen's converter reads no vcpu at all)");
      }
      if (ev.count > 0) report(Severity::kVerbose, std::to_string(ev.count) + " unmapped pfns discarded");
      return {};

    case K::kVcpuBasic:
      return out_check(w_->append_vcpu(xc::RecordType::kX86PvVcpuBasic, ev.param, ev.data));
    case K::kVcpuExtended:
      return out_check(w_->append_vcpu(xc::RecordType::kX86PvVcpuExtended, ev.param, ev.data));
    case K::kVcpuXsave:
      return out_check(w_->append_vcpu(xc::RecordType::kX86PvVcpuXsave, ev.param, ev.data));
    case K::kSharedInfo:
      return out_check(w_->append(xc::RecordType::kSharedInfo, {ev.data}));

    case K::kHvmMagicPfns: {
      const std::array<std::pair<std::uint64_t, std::uint64_t>, 3> magic{{
          {lg::kHvmParamIoreqPfn, ev.magic[0]},
          {lg::kHvmParamBufioreqPfn, ev.magic[1]},
          {lg::kHvmParamStorePfn, ev.magic[2]},
      }};
      return out_check(w_->append_hvm_params(magic));
    }

    case K::kHvmContext:
      in_qemu_ = true;
      return out_check(w_->append(xc::RecordType::kHvmContext, {ev.data}));

    case K::kQemuBegin:
      tail_.has_qemu = true;
      tail_.qemu_kind = ev.qemu;
      tail_.qemu.clear();
      discard_qemu_ = !carry_qemu();
      report(Severity::kVerbose, "qemu record " + std::string(qemu_signature(ev.qemu)) + " at " + hex(ev.offset) +
                                     (ev.length ? ", " + std::to_string(*ev.length) + " octets" : ", to the end"));
      return {};

    case K::kQemuData:
      if (discard_qemu_) return {};
      if (tail_.qemu.size() == 0 && tail_.qemu_kind == QemuKind::kXend &&
          (ev.data.size() < 4 || std::memcmp(ev.data.data(), "QEVM", 4) != 0)) {
        report(Severity::kWarning, "the QemuDeviceModelRecord data at " + hex(ev.offset) +
                                       " does not start with QEVM, which Xen's restorer required");
      }
      return out_check(tail_.qemu.append(ev.data));

    case K::kCheckpointEnd:
      return end_checkpoint(ev);

    case K::kTrailingData:
      report(Severity::kWarning,
             "ignoring " + (ev.value ? std::to_string(ev.value) + " octets of " : std::string()) +
                 "data at " + hex(ev.offset) + " after the last checkpoint (its body had LAST_CHECKPOINT)");
      return {};

    case K::kStreamEnd:
      return finalize();
  }
  return {};
}

Expected<void> Converter::end_checkpoint(const LegacyEvent& ev) {
  in_qemu_ = false;
  const std::uint64_t k = ev.value;
  if (k >= 2) {
    // Checkpoint k is complete: the previous one ends as a checkpoint, then
    // this one's records follow.
    XS_TRY(write_checkpoint_end(pending_tail_));
    XS_TRY(out_check(ckpt_spool_.copy_to(out_)));
    ckpt_spool_.clear();
    result_.checkpointed = true;
  }
  std::swap(pending_tail_, tail_);
  tail_.xenstore.clear();
  tail_.has_qemu = false;
  tail_.qemu.clear();
  have_pending_ = true;
  result_.checkpoints = k;
  w_ = &spool_writer_;  // checkpoint k+1, if any, waits until it is complete
  report(Severity::kVerbose, "checkpoint " + std::to_string(k) + " complete at " + hex(ev.offset));
  return {};
}

Expected<void> Converter::write_qemu_raw(const CheckpointTail& t) {
  if (pv() || !t.has_qemu || !carry_qemu()) return {};
  const std::string_view sig = qemu_signature(t.qemu_kind);
  std::array<std::byte, 4> len{};
  std::vector<Bytes> head{Bytes(reinterpret_cast<const std::byte*>(sig.data()), sig.size())};
  if (t.qemu_kind != QemuKind::kXend) {
    if (t.qemu.size() > 0xFFFFFFFFu) {
      return make_error(ErrorCode::kLimit, in_.position(), "the qemu record is too large for its u32 length");
    }
    put_u32(len.data(), static_cast<std::uint32_t>(t.qemu.size()), ByteOrder::kLittle);
    head.push_back(Bytes(len));
  }
  XS_TRY(out_check(out_.write(std::span<const Bytes>(head))));
  return out_check(t.qemu.copy_to(out_));
}

Expected<void> Converter::write_emulator_context(const CheckpointTail& t) {
  if (pv() || !t.has_qemu) return {};
  const std::uint64_t length = 8 + t.qemu.size();
  if (length > 0xFFFFFFFFu) {
    return make_error(ErrorCode::kLimit, in_.position(),
                      "the qemu record of " + hex(t.qemu.size()) + " octets does not fit an EMULATOR_CONTEXT record");
  }
  std::array<std::byte, 16> head{};
  put_u32(head.data(), static_cast<std::uint32_t>(xl::RecordType::kEmulatorContext), ByteOrder::kLittle);
  put_u32(head.data() + 4, static_cast<std::uint32_t>(length), ByteOrder::kLittle);
  put_u32(head.data() + 8, xl::kEmulatorUnknown, ByteOrder::kLittle);
  XS_TRY(out_check(out_.write(Bytes(head))));
  XS_TRY(out_check(t.qemu.copy_to(out_)));
  const std::size_t pad = static_cast<std::size_t>((8 - length % 8) % 8);
  return out_check(out_.write(Bytes(kZeroPad.data(), pad)));
}

// CHECKPOINT, and for libxl the checkpoint's own libxl records and
// CHECKPOINT_END (spec/libxl.md, "Checkpointed streams").
Expected<void> Converter::write_checkpoint_end(const CheckpointTail& t) {
  XS_TRY(out_check(main_.append(kCheckpointRecord, {})));
  if (!libxl()) return {};
  if (!t.xenstore.empty()) {
    const Bytes data(t.xenstore.data(), t.xenstore.size());
    XS_TRY(out_check(main_.append_emulator(xl::RecordType::kEmulatorXenstoreData, xl::kEmulatorUnknown, 0,
                                           std::span<const Bytes>(&data, 1))));
  }
  XS_TRY(write_emulator_context(t));
  return out_check(main_.append(xl::RecordType::kCheckpointEnd));
}

Expected<void> Converter::finalize() {
  if (finalized_) return {};
  finalized_ = true;
  if (!have_pending_) {
    return make_error(ErrorCode::kTruncated, in_.position(), "the stream ends before its first checkpoint is complete");
  }
  const CheckpointTail& t = pending_tail_;
  if (result_.checkpointed) {
    XS_TRY(write_checkpoint_end(t));
    XS_TRY(out_check(main_.append(xc::RecordType::kEnd)));
    if (libxl()) {
      XS_TRY(out_check(main_.append(xl::RecordType::kEnd)));
    } else {
      XS_TRY(write_qemu_raw(t));
    }
  } else {
    XS_TRY(out_check(main_.append(xc::RecordType::kEnd)));
    if (libxl()) {
      if (!t.xenstore.empty()) {
        const Bytes data(t.xenstore.data(), t.xenstore.size());
        XS_TRY(out_check(main_.append_emulator(xl::RecordType::kEmulatorXenstoreData, xl::kEmulatorUnknown, 0,
                                               std::span<const Bytes>(&data, 1))));
      }
      XS_TRY(write_emulator_context(t));
      XS_TRY(out_check(main_.append(xl::RecordType::kEnd)));
    } else {
      XS_TRY(write_qemu_raw(t));
    }
  }
  return out_check(out_.flush());
}

Expected<ConvertResult> Converter::run() {
  mapped_input_ = dynamic_cast<MappedFile*>(&in_) != nullptr;
  XS_TRY(handle_container());
  XS_TRY(choose_layout());
  LegacyReaderOptions ropt = opt_.reader;
  ropt.qemu_optional = !carry_qemu();
  // From a pipe (or a file read through a descriptor), uncompressed pages
  // go from the input to the output inside the kernel; the converter never
  // looks at them.
  ropt.defer_pages = in_.moves_directly();
  if (ropt.defer_pages) in_.set_read_ahead(false);
  reader_.emplace(in_, layout_, ropt);
  result_.layout = layout_;

  for (;;) {
    auto ev = reader_->next();
    Expected<void> done = ev ? handle(*ev) : Expected<void>(ev.error());
    if (!done) {
      Error e = std::move(done).error();
      const bool output_side = output_failed_ || e.code == ErrorCode::kUsage;
      if (!output_side && have_pending_ && reader_->checkpoint() >= 2 && !finalized_) {
        // An incomplete or broken checkpoint after a complete one: Xen's
        // restorer dropped it and resumed from the last complete one.
        const std::uint64_t k = reader_->checkpoint();
        report(Severity::kWarning,
               (k == 2 && !result_.checkpointed
                    ? "the data after checkpoint 1 is not a complete checkpoint, so it is ignored: "
                    : "checkpoint " + std::to_string(k) + " is incomplete and is dropped, as Xen's restorer did: ") +
                   e.describe());
        ++result_.dropped_checkpoints;
        ckpt_spool_.clear();
        waiting_.clear();
        XS_TRY(finalize());
        break;
      }
      if (!output_side && in_qemu_ && !carry_qemu() && reader_->checkpoint() == 1) {
        // --skip-qemu: like Xen's converter, whatever follows the HVM
        // context of a plain stream is not needed.
        report(Severity::kWarning, "ignoring what follows the HVM context (--skip-qemu): " + e.describe());
        pending_tail_ = std::move(tail_);
        have_pending_ = true;
        result_.checkpoints = 1;
        XS_TRY(finalize());
        break;
      }
      if (output_failed_) {
        // A write or temporary-file failure: say where in the input it happened.
        e.offset = in_.position();
      }
      if (looks_like_ && !output_side && result_.checkpoints == 0) {
        e.message += " (the stream looks like a " + describe_layout(*looks_like_) + ", not a " +
                     describe_layout(layout_) + " as -w/-g say)";
      }
      return e;
    }
    if (ev->kind == LegacyEventKind::kStreamEnd) break;
  }
  result_.input_bytes = in_.position();
  result_.output_bytes = out_.position();
  result_.last_checkpoint = reader_->last_checkpoint_seen();
  report(Severity::kVerbose,
         "wrote " + std::to_string(result_.checkpoints) + " checkpoint(s), " + std::to_string(result_.page_records) +
             " PAGE_DATA records, " + std::to_string(result_.pages) + " pages" +
             (result_.compressed_pages ? " (" + std::to_string(result_.compressed_pages) + " decompressed)" : "") +
             ", " + std::to_string(result_.output_bytes) + " octets");
  return result_;
}

}  // namespace

Expected<ConvertResult> convert_legacy(Source& in, Sink& out, const ConvertOptions& options) {
  Converter c(in, out, options);
  return c.run();
}

}  // namespace xenstream::convert
