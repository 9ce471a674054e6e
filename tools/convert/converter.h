// Converting a legacy (Xen 4.5 and older) save stream into a v2/v3 stream
// (spec/legacy.md, "Conversion to v2/v3").
//
// For every stream Xen's convert-legacy-stream converts, the output is byte
// for byte what it writes with the same flags. Beyond it, this converter
// handles Remus checkpointed streams (into checkpointed v2 streams),
// compressed Remus page data, the QemuDeviceModelRecord and
// RemusDeviceModelState qemu records, xl headers, and it refuses or repairs
// the cases where Xen's script writes a stream no restorer accepts. The
// deliberate differences are listed in tools/convert/README.md.
//
// Memory stays bounded whatever the stream size: page batches go from the
// source's views to the sink (zero-copy from a mapped file); what must wait
// (a qemu record, a Remus checkpoint until it is complete, the receiver's copy
// of pages for compressed checkpoints) waits in temporary files.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/sink.h>
#include <xenstream/libstream/source.h>
#include "tools/convert/legacy_reader.h"

namespace xenstream::convert {

enum class OutputFormat : std::uint8_t { kLibxc, kLibxl };

// Random access to the input, for the Remus decoder's rare need of a page
// last sent uncompressed. Offsets are those of the Source.
class RandomAccess {
 public:
  virtual ~RandomAccess() = default;
  //   kIo / kTruncated: the bytes cannot be read
  virtual Expected<void> read_at(std::uint64_t offset, std::span<std::byte> out) = 0;
};

// Reads with pread() from an fd (borrowed, or owned when opened by path).
class FdRandomAccess : public RandomAccess {
 public:
  explicit FdRandomAccess(int fd, bool owned = false) : fd_(fd), owned_(owned) {}
  static Expected<std::unique_ptr<FdRandomAccess>> open(const std::string& path);
  ~FdRandomAccess() override;
  Expected<void> read_at(std::uint64_t offset, std::span<std::byte> out) override;

 private:
  int fd_;
  bool owned_;
};

// A view of bytes in memory (tests).
class MemoryRandomAccess : public RandomAccess {
 public:
  explicit MemoryRandomAccess(Bytes data) : data_(data) {}
  Expected<void> read_at(std::uint64_t offset, std::span<std::byte> out) override;

 private:
  Bytes data_;
};

enum class Severity : std::uint8_t {
  kNote,     // what was detected and done; shown unless quiet
  kVerbose,  // details, shown with -v
  kWarning,  // something was skipped, repaired or dropped
};

struct ConvertOptions {
  std::optional<unsigned> width;   // toolstack width in octets (4 or 8); detected when unset
  std::optional<GuestType> guest;  // detected when unset
  OutputFormat format = OutputFormat::kLibxc;
  // An xl header precedes the legacy stream: true = required (-x),
  // false = none, unset = detect it.
  std::optional<bool> xl_header;
  // libxc format only: do not carry the HVM qemu record (the reference's
  // --skip-qemu; for the libxl format it is ignored, as there).
  bool skip_qemu = false;
  // Optional random access to the input (see RandomAccess).
  RandomAccess* reread = nullptr;
  // Where temporary files go (empty: $TMPDIR, else /tmp).
  std::string temp_dir;
  // RAM a spool may use before it moves to a temporary file.
  std::size_t spool_memory = 8u << 20;
  LegacyReaderOptions reader;
  std::function<void(Severity, const std::string&)> report;
  // Called now and then with the input position, for progress displays.
  std::function<void(std::uint64_t)> progress;
};

struct ConvertResult {
  LegacyLayout layout;
  bool detected = false;  // the layout was (partly) detected rather than given
  bool xl_header = false;
  std::uint64_t checkpoints = 0;       // complete checkpoints in the output
  std::uint64_t dropped_checkpoints = 0;  // an incomplete last checkpoint
  bool checkpointed = false;           // the output is a checkpointed stream
  std::uint64_t page_records = 0;
  std::uint64_t pages = 0;             // data pages written
  std::uint64_t compressed_pages = 0;  // of which decoded from Remus compression
  std::uint64_t input_bytes = 0;       // input consumed
  std::uint64_t output_bytes = 0;
  std::uint64_t warnings = 0;
  bool last_checkpoint = false;  // the last checkpoint's body had LAST_CHECKPOINT
};

// Converts the legacy stream read from `in` into `out`. On error the sink
// holds a partial stream that the caller must not present as finished (the
// tools' open_output() discards it unless committed); the error's offset is
// where in the input conversion stopped.
//   kTruncated / kMalformed:  the input is not a (complete) legacy stream
//   kUnsupported:             a valid stream this converter cannot carry
//                             (tmem pages, pre-3.2 PV images, a v2 input)
//   kLimit:                   an item exceeds a cap
//   kUsage:                   the layout could not be detected; give -w/-g
//   kIo:                      reading, writing or a temporary file failed
Expected<ConvertResult> convert_legacy(Source& in, Sink& out, const ConvertOptions& options);

}  // namespace xenstream::convert
