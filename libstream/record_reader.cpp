#include "libstream/record_reader.h"

namespace xenstream {

std::string RecordView::label() const {
  return "record #" + std::to_string(index) + " " + record_display_name(layer, type) + " at " +
         hex(offset);
}

Error RecordView::error_at(std::size_t body_off, std::string message, ErrorCode code) const {
  Error e = make_error(code, body_offset() + body_off, label() + ": " + std::move(message));
  e.record_index = index;
  e.record_type = type;
  return e;
}

void RecordReader::release() {
  if (pending_ > 0) {
    src_.consume(pending_);
    pending_ = 0;
  }
}

Expected<RecordView> RecordReader::next(Layer layer, ByteOrder order) {
  if (failed_) return *failed_;
  release();
  const std::uint64_t at = src_.position();
  auto fail = [&](Error e) -> Expected<RecordView> {
    e.record_index = count_;
    failed_ = e;
    return e;
  };
  auto head = src_.pull(8, "a record header");
  if (!head) return fail(std::move(head).error());
  Fields h(head->first(8), order, at);
  const std::uint32_t type = h.u32(0);
  const std::uint32_t length = h.u32(4);
  const std::string what = "record #" + std::to_string(count_) + " " +
                           record_display_name(layer, type) + " at " + hex(at);
  if (length > limits_.max_record_length) {
    Error e = make_error(ErrorCode::kLimit, at + 4,
                         what + ": body_length " + hex(length) + " exceeds the cap of " +
                             hex(limits_.max_record_length));
    e.range = ByteRange{at + 4, at + 8};
    e.record_type = type;
    return fail(std::move(e));
  }
  const std::size_t padded = (static_cast<std::size_t>(length) + 7) & ~std::size_t{7};
  auto all = src_.pull(8 + padded, what);
  if (!all) {
    Error e = std::move(all).error();
    e.record_type = type;
    if (e.code == ErrorCode::kTruncated) {
      auto avail = src_.peek(8 + padded);
      const std::uint64_t input_end = at + (avail ? avail->size() : 0);
      e.offset = input_end;
      e.range = ByteRange{at, at + 8 + padded};
      e.message = what + ": truncated: the record needs [" + hex(at) + ", " +
                  hex(at + 8 + padded) + ") but the input ends at " + hex(input_end);
    }
    return fail(std::move(e));
  }
  RecordView v;
  v.layer = layer;
  v.type = type;
  v.length = length;
  v.body = all->subspan(8, length);
  v.padding = all->subspan(8 + length, padded - length);
  v.offset = at;
  v.index = count_++;
  v.order = order;
  pending_ = 8 + padded;
  return v;
}

}  // namespace xenstream
