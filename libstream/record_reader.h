// Record framing shared by the libxc image and the libxl stream
// (spec/libxc.md "Record framing"): u32 type, u32 body_length, body, zero
// padding to a multiple of 8.
#pragma once

#include <cstdint>
#include <optional>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/record_names.h>
#include <xenstream/libstream/source.h>

namespace xenstream {

struct RecordView {
  Layer layer = Layer::kLibxc;
  std::uint32_t type = 0;
  std::uint32_t length = 0;     // body length, without padding
  Bytes body;                   // `length` octets
  Bytes padding;                // 0-7 octets after the body
  std::uint64_t offset = 0;     // absolute offset of the record header
  std::uint64_t index = 0;      // 0-based count of records before this one
  ByteOrder order = ByteOrder::kLittle;

  // False for a view from next_head() whose body is not all pulled yet.
  bool complete() const { return body.size() == length; }
  std::uint64_t body_offset() const { return offset + 8; }
  std::uint64_t end_offset() const { return offset + 8 + length + padding.size(); }
  bool optional() const { return (type & 0x80000000u) != 0; }
  Fields fields() const { return Fields(body, order, body_offset()); }
  // "record #17 PAGE_DATA at 0x1a2b40", the prefix of every record message.
  std::string label() const;
  // An error located in this record's body at `body_off`.
  Error error_at(std::size_t body_off, std::string message,
                 ErrorCode code = ErrorCode::kMalformed) const;
  // `e`, a truncation inside this record with the input ending at
  // `input_end`, as a record cut short is reported wherever it is found
  // (the reader, or a tool moving the record's body on from a pipe): at
  // input_end, with the record's whole extent as its range.
  Error cut_short(Error e, std::uint64_t input_end) const;
};

struct ReaderLimits {
  // Largest body accepted, for both layers (Xen's REC_LENGTH_MAX).
  std::uint32_t max_record_length = 0x08000000u;
};

// Reads records one after another from a Source.
//
// next() returns a view that lives until the next call to next() (or any
// direct use of the source); it consumes the previous record first. Failure
// is sticky: after an error every call returns the same error.
class RecordReader {
 public:
  RecordReader(Source& src, ReaderLimits limits = {}) : src_(src), limits_(limits) {}

  // Reads one record of `layer` in byte order `order`.
  //   value:       the record
  //   kTruncated:  input ended inside the header, body or padding
  //   kLimit:      body_length above the cap (nothing is allocated)
  Expected<RecordView> next(Layer layer, ByteOrder order) {
    return next_head(layer, order, kWholeBody);
  }

  // Like next(), but pulls only the first `body_prefix` octets of the body
  // (all of it when shorter); the view's body holds just those, and
  // complete() tells whether that is the whole body. extend() pulls more.
  // For consumers that act on a large body piece by piece while its bytes
  // are still in the CPU's caches (streamrestore writing PAGE_DATA).
  static constexpr std::size_t kWholeBody = static_cast<std::size_t>(-1);
  Expected<RecordView> next_head(Layer layer, ByteOrder order, std::size_t body_prefix);

  // Re-pulls the record last returned so that its body holds the first
  // min(upto, length) octets, and its padding once the body is whole.
  //   kTruncated:  the input ends inside the record
  Expected<RecordView> extend(std::size_t upto);

  // Consumes the record last returned, if any, skipping whatever of it was
  // not pulled. Call before touching the source directly (e.g. to read the
  // libxc headers after LIBXC_CONTEXT). A skip that runs out of input makes
  // the failure sticky, so the next call reports it.
  void release();

  // Consumes what was pulled of the record last returned and hands the rest
  // of it (the unpulled body and the padding) to the caller, who moves
  // exactly that many octets of the source on (Source::transfer() to put
  // them somewhere without a copy, skip(), pull() and consume()) before the
  // next call. Returns that count (0 when the record was pulled whole).
  // Views of the record are void from here on. For readers that send a body
  // on rather than look at it (streamrestore moving page data to a file).
  std::uint64_t detach();

  std::uint64_t records_read() const { return count_; }
  Source& source() { return src_; }

 private:
  Source& src_;
  ReaderLimits limits_;
  Expected<RecordView> fail(Error e, std::uint32_t type);
  Expected<RecordView> view_of(std::size_t upto);

  std::size_t pending_ = 0;    // octets of the current record pulled (to consume)
  std::uint64_t unpulled_ = 0; // octets of it not pulled yet (to skip)
  RecordView current_;         // the record last returned
  std::uint64_t count_ = 0;
  std::optional<Error> failed_;
};

}  // namespace xenstream
