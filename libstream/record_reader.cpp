#include <xenstream/libstream/record_reader.h>

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

Error RecordView::cut_short(Error e, std::uint64_t input_end) const {
  const std::uint64_t end = offset + 8 + ((std::uint64_t{length} + 7) & ~std::uint64_t{7});
  e.offset = input_end;
  e.range = ByteRange{offset, end};
  e.message = label() + ": truncated: the record needs [" + hex(offset) + ", " + hex(end) +
              ") but the input ends at " + hex(input_end);
  e.record_index = index;
  e.record_type = type;
  return e;
}

void RecordReader::release() {
  if (pending_ > 0) {
    src_.consume(pending_);
    pending_ = 0;
  }
  if (unpulled_ > 0) {
    const std::uint64_t n = unpulled_;
    unpulled_ = 0;
    auto skipped = src_.skip(n, current_.label() + " (its unread part)");
    if (!skipped && !failed_) {
      Error e = std::move(skipped).error();
      e.record_index = current_.index;
      e.record_type = current_.type;
      failed_ = std::move(e);
    }
  }
}

std::uint64_t RecordReader::detach() {
  if (pending_ > 0) {
    src_.consume(pending_);
    pending_ = 0;
  }
  const std::uint64_t rest = unpulled_;
  unpulled_ = 0;
  return rest;
}

Expected<RecordView> RecordReader::fail(Error e, std::uint32_t type) {
  e.record_index = count_;
  e.record_type = type;
  failed_ = e;
  return e;
}

Expected<RecordView> RecordReader::next_head(Layer layer, ByteOrder order, std::size_t body_prefix) {
  if (failed_) return *failed_;
  release();
  if (failed_) return *failed_;
  const std::uint64_t at = src_.position();
  auto head = src_.pull(8, "a record header");
  if (!head) {
    Error e = std::move(head).error();
    e.record_index = count_;
    failed_ = e;
    return e;
  }
  Fields h(head->first(8), order, at);
  current_ = RecordView{};
  current_.layer = layer;
  current_.type = h.u32(0);
  current_.length = h.u32(4);
  current_.offset = at;
  current_.index = count_;
  current_.order = order;
  if (current_.length > limits_.max_record_length) {
    Error e = make_error(ErrorCode::kLimit, at + 4,
                         current_.label() + ": body_length " + hex(current_.length) +
                             " exceeds the cap of " + hex(limits_.max_record_length));
    e.range = ByteRange{at + 4, at + 8};
    return fail(std::move(e), current_.type);
  }
  auto v = view_of(body_prefix);
  if (v) ++count_;
  return v;
}

Expected<RecordView> RecordReader::extend(std::size_t upto) {
  if (failed_) return *failed_;
  if (pending_ == 0) {
    return make_error(ErrorCode::kUsage, src_.position(), "extend() without a current record");
  }
  return view_of(upto);
}

Expected<RecordView> RecordReader::view_of(std::size_t upto) {
  const std::uint64_t at = current_.offset;
  const std::size_t length = current_.length;
  const std::size_t padded = (length + 7) & ~std::size_t{7};
  const bool whole = upto >= length;
  const std::size_t want = 8 + (whole ? padded : upto);
  auto all = src_.pull(want, current_.label());
  if (!all) {
    Error e = std::move(all).error();
    if (e.code == ErrorCode::kTruncated) {
      auto avail = src_.peek(want);
      e = current_.cut_short(std::move(e), at + (avail ? avail->size() : 0));
    }
    e.record_index = current_.index;
    e.record_type = current_.type;
    failed_ = e;
    return e;
  }
  current_.body = all->subspan(8, whole ? length : upto);
  current_.padding = whole ? all->subspan(8 + length, padded - length) : Bytes{};
  pending_ = want;
  unpulled_ = 8 + padded - want;
  return current_;
}

}  // namespace xenstream
