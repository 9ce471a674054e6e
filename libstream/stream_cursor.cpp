#include <xenstream/libstream/stream_cursor.h>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>

namespace xenstream {

namespace xc = format::libxc;
namespace xl = format::libxl;

StreamCursor::StreamCursor(Source& src, PayloadKind kind, ReaderLimits limits)
    : src_(src), reader_(src, limits), kind_(kind) {}

std::uint64_t StreamCursor::position() const { return src_.position(); }

Expected<void> StreamCursor::start() {
  if (kind_ == PayloadKind::kLibxl) {
    auto h = read_libxl_header(src_);
    if (!h) return std::move(h).error();
    libxl_ = *h;
    nested_ = true;
    state_ = State::kLibxl;
    return {};
  }
  if (kind_ == PayloadKind::kLibxc) {
    state_ = State::kLibxcHeaders;
    nested_ = false;
    return {};
  }
  return make_error(ErrorCode::kUnsupported, src_.position(),
                    "a legacy (pre-Xen 4.6) image is not a v2 stream; convert it with streamconv");
}

Expected<RecordView> StreamCursor::extend(std::size_t body_upto) {
  return reader_.extend(body_upto);
}

Expected<RecordView> StreamCursor::next_head(std::size_t body_prefix) {
  if (state_ == State::kLibxcHeaders) {
    reader_.release();
    auto ih = read_image_header(src_);
    if (!ih) return std::move(ih).error();
    image_ = *ih;
    auto dh = read_domain_header(src_, ih->order());
    if (!dh) return std::move(dh).error();
    domain_ = *dh;
    state_ = State::kLibxc;
  }
  if (state_ == State::kDone) {
    return make_error(ErrorCode::kUsage, src_.position(), "the stream has already ended");
  }

  Layer layer = state_ == State::kLibxl ? Layer::kLibxl : Layer::kLibxc;
  ByteOrder order = layer == Layer::kLibxl ? libxl_->order() : image_->order();

  // COLO sends CHECKPOINT_STATE ahead of the next checkpoint's libxc records.
  // Type 5 is X86_PV_VCPU_EXTENDED in libxc, which an HVM stream never
  // carries, so in HVM streams it is read as the libxl record.
  if (layer == Layer::kLibxc && after_checkpoint_end_ && nested_ && domain_ && domain_->is_hvm()) {
    reader_.release();
    auto head = src_.peek(4);
    if (!head) return std::move(head).error();
    if (head->size() == 4 &&
        Fields(*head, libxl_->order(), 0).u32(0) ==
            static_cast<std::uint32_t>(xl::RecordType::kCheckpointState)) {
      layer = Layer::kLibxl;
      order = libxl_->order();
    }
  }
  after_checkpoint_end_ = false;

  auto rec = reader_.next_head(layer, order, body_prefix);
  if (!rec) {
    Error e = std::move(rec).error();
    if (e.code == ErrorCode::kTruncated && e.range && e.range->begin == e.offset &&
        e.message.rfind("unexpected end of data while reading a record header", 0) == 0) {
      auto rest = src_.peek(8);
      if (rest && rest->empty()) {
        e.message = "the stream ends at " + hex(e.offset) + " without an END record";
      }
    }
    return e;
  }

  if (layer == Layer::kLibxl) {
    switch (static_cast<xl::RecordType>(rec->type)) {
      case xl::RecordType::kEnd:
        state_ = State::kDone;
        break;
      case xl::RecordType::kLibxcContext:
        state_ = State::kLibxcHeaders;
        break;
      case xl::RecordType::kCheckpointEnd:
        if (in_checkpoint_) {
          in_checkpoint_ = false;
          after_checkpoint_end_ = true;
          state_ = State::kLibxc;
        }
        break;
      default:
        break;
    }
  } else {
    switch (static_cast<xc::RecordType>(rec->type)) {
      case xc::RecordType::kEnd:
        state_ = nested_ ? State::kLibxl : State::kDone;
        break;
      case xc::RecordType::kCheckpoint:
        ++checkpoints_;
        if (nested_) {
          in_checkpoint_ = true;
          state_ = State::kLibxl;
        }
        break;
      default:
        break;
    }
  }
  return rec;
}

Expected<void> StreamCursor::finish() {
  reader_.release();
  const std::uint64_t at = src_.position();
  std::uint64_t extra = 0;
  for (;;) {
    auto got = src_.peek(1 << 20);
    if (!got) return std::move(got).error();
    if (got->empty()) break;
    extra += got->size();
    src_.consume(got->size());
  }
  if (extra == 0) return {};
  Error e = make_error(ErrorCode::kMalformed, at,
                       std::to_string(extra) + " trailing bytes after the END record [" + hex(at) +
                           ", " + hex(at + extra) + ")");
  e.range = ByteRange{at, at + extra};
  return e;
}

}  // namespace xenstream
