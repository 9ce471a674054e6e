// What the fuzz targets share: an invariant check that aborts (so libFuzzer
// and the replay driver both report it), a Source that invalidates every view
// on every fill (so a view kept past its lifetime is a use-after-free that
// ASan sees), and a whole-stream walk that calls every record decoder and
// summarises what it saw, so that two walks over the same bytes can be
// compared.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_reader.h>
#include <xenstream/libstream/source.h>

namespace xenstream::fuzz {

// Prints the failed condition and aborts.
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& what);

#define FUZZ_CHECK(cond, what)                                                   \
  do {                                                                           \
    if (!(cond)) ::xenstream::fuzz::check_failed(__FILE__, __LINE__, #cond, (what)); \
  } while (0)

// Serves a byte string through a fresh heap buffer on every fill(), holding
// exactly the bytes asked for (or what is left). Models a reader whose window
// moves and shrinks as much as the Source contract allows.
class TrickleSource : public Source {
 public:
  explicit TrickleSource(Bytes data) : data_(data) {}
  std::string name() const override { return "<trickle>"; }

 protected:
  Expected<Bytes> fill(std::size_t min) override;
  void advance(std::size_t n) override { cursor_ += n; }

 private:
  Bytes data_;
  std::size_t cursor_ = 0;
  std::unique_ptr<std::byte[]> window_;
};

struct SeenRecord {
  Layer layer;
  std::uint32_t type;
  std::uint32_t length;
  std::uint64_t offset;
  std::uint64_t digest;  // a hash of the body and what its decoder returned
  bool operator==(const SeenRecord&) const = default;
};

struct WalkResult {
  std::optional<ContainerInfo> container;
  std::vector<SeenRecord> records;
  std::optional<Error> error;  // the error that ended the walk, if any
  bool finished = false;       // END reached and nothing after it
  std::string describe() const;
};

// Limits that keep one fuzz input cheap: records above this are refused with
// kLimit, as the real cap would refuse bigger ones.
inline constexpr std::uint32_t kFuzzMaxRecord = 1u << 20;

// read_container(), then StreamCursor over a libxl or libxc payload until
// END, an error, or `max_records` (records longer than max_record_length
// are refused with kLimit); every record goes through the decoder for
// its type. Checks the cursor's own invariants on the way (offsets rise,
// views have their declared sizes, errors point inside the input) and aborts
// when one breaks. `input_size` is the size of the whole input when known
// (0 = unknown), for the offset checks.
// With `body_prefix` below RecordReader::kWholeBody every record is read as
// a head of that many body octets first (StreamCursor::next_head), checked,
// then extended to the whole: the result must not depend on it.
WalkResult walk_stream(Source& src, std::uint64_t input_size, FormatHint hint = FormatHint::kAuto,
                       std::size_t max_records = 100000,
                       std::uint32_t max_record_length = kFuzzMaxRecord,
                       std::size_t body_prefix = RecordReader::kWholeBody);

// Aborts with both descriptions when the walks differ.
void check_same_walk(const WalkResult& a, const WalkResult& b, const char* what);

// True when two errors agree in every field.
bool same_error(const Error& a, const Error& b);

// A pipe that already holds all of `in` and is closed for writing, so that
// a reader needs no writer thread: its read end, or -1 when the input does
// not fit in one pipe (more than 1 MiB, or a lower system limit).
int pipe_holding(Bytes in);

}  // namespace xenstream::fuzz
