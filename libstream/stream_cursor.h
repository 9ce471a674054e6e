// Walks a whole v2 stream: the libxl layer, the libxc image nested inside
// LIBXC_CONTEXT, and the checkpoints of Remus/COLO streams, yielding every
// record with the layer it belongs to (spec/libxl.md "Reader phases").
//
// Layer switching follows Xen's readers:
//   libxl LIBXC_CONTEXT   -> libxc headers, then libxc records
//   libxc END             -> back to libxl (nested) or done (bare libxc)
//   libxc CHECKPOINT      -> libxl records of this checkpoint (nested); a
//                            bare libxc stream just continues
//   libxl CHECKPOINT_END  -> libxc records of the next checkpoint; in an HVM
//                            stream a record of type 5 right there is the
//                            libxl CHECKPOINT_STATE that COLO sends first
//   libxl END             -> done
// The cursor decides structure only; judging order and contents is the
// verifier's job.
#pragma once

#include <cstdint>
#include <optional>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_reader.h>

namespace xenstream {

class StreamCursor {
 public:
  // `src` must be positioned at the payload (after any container header);
  // `kind` is kLibxl or kLibxc (what read_container() reported).
  StreamCursor(Source& src, PayloadKind kind, ReaderLimits limits = {});

  // Reads the outermost header(s): the libxl header, or for a bare libxc
  // image its image and domain headers.
  Expected<void> start();

  // Returns the next record of either layer. For nested streams the libxc
  // headers are read just before the first libxc record; they are available
  // from libxc_image() / libxc_domain() from then on.
  //   value:       a record; its view lives until the next call
  //   kTruncated:  the input ended (at a record boundary, or inside one)
  //   other:       framing errors from RecordReader
  // Must not be called once done() is true.
  Expected<RecordView> next() { return next_head(RecordReader::kWholeBody); }

  // next(), pulling only the first `body_prefix` octets of the record's body;
  // extend() pulls more of it (RecordReader::next_head). Structure never
  // depends on a body, so the cursor walks on the same either way; whatever
  // of a record was not pulled is skipped by the next call.
  Expected<RecordView> next_head(std::size_t body_prefix);
  // Re-pulls the record last returned so that its body holds its first
  // min(body_upto, length) octets; views of it from earlier calls are void.
  Expected<RecordView> extend(std::size_t body_upto);

  // True after the outermost END record.
  bool done() const { return state_ == State::kDone; }

  // Consumes the record last returned, leaving the source just past it
  // (e.g. after END, for a caller that reads on from the same source).
  void release() { reader_.release(); }
  // Hands the unpulled rest of the record last returned to the caller
  // (RecordReader::detach): returns how many octets the caller must move on.
  std::uint64_t detach() { return reader_.detach(); }

  // After done(): checks that nothing follows the END record.
  //   value:      end of input
  //   kMalformed: trailing bytes; the error gives their range
  Expected<void> finish();

  const std::optional<LibxlHeaderInfo>& libxl_header() const { return libxl_; }
  const std::optional<ImageHeaderInfo>& libxc_image() const { return image_; }
  const std::optional<DomainHeaderInfo>& libxc_domain() const { return domain_; }
  // Number of libxc CHECKPOINT records seen.
  std::uint64_t checkpoints() const { return checkpoints_; }
  // True while inside a checkpoint's libxl part (after CHECKPOINT, before
  // CHECKPOINT_END).
  bool in_checkpoint() const { return in_checkpoint_; }
  std::uint64_t position() const;

 private:
  enum class State { kLibxl, kLibxcHeaders, kLibxc, kDone };

  Source& src_;
  RecordReader reader_;
  PayloadKind kind_;
  State state_ = State::kLibxl;
  bool nested_ = false;
  bool in_checkpoint_ = false;
  bool after_checkpoint_end_ = false;
  std::uint64_t checkpoints_ = 0;
  std::optional<LibxlHeaderInfo> libxl_;
  std::optional<ImageHeaderInfo> image_;
  std::optional<DomainHeaderInfo> domain_;
};

}  // namespace xenstream
