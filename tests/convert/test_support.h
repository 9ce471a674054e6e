// Helpers for the converter tests: converting in memory, checking a v2
// result the way a restorer reads it (StreamCursor + decoders), running
// programs (the reference converter, our CLI) on files in a scratch
// directory.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>
#include "tests/convert/legacy_builder.h"
#include "tools/convert/converter.h"

namespace xenstream::convert::testing {

using Buffer = std::vector<std::byte>;

inline Bytes view(const Buffer& b) { return Bytes(b.data(), b.size()); }
Buffer read_file(const std::string& path);
void write_file(const std::string& path, const Buffer& data);

// A scratch directory, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A source that hands out its bytes in small, varying pieces: fill() makes
// `min` octets available and rarely more, so readers see every split point
// a pipe could produce. Deterministic for a seed.
class TrickleSource : public Source {
 public:
  TrickleSource(Bytes data, std::uint64_t seed, std::size_t max_extra = 64)
      : data_(data), state_(seed * 2654435761u + 1), max_extra_(max_extra) {}
  std::string name() const override { return "<trickle>"; }

 protected:
  Expected<Bytes> fill(std::size_t min) override;
  void advance(std::size_t n) override { cursor_ += n; }

 private:
  Bytes data_;
  std::size_t cursor_ = 0;
  std::uint64_t state_;
  std::size_t max_extra_;
};

struct Converted {
  Expected<ConvertResult> result = make_error(ErrorCode::kUsage, 0, "not run");
  Buffer out;
  std::vector<std::string> warnings;
  std::vector<std::string> notes;  // kNote and kVerbose
};

// Converts `in` in memory (MemorySource, MemoryRandomAccess, BufferSink).
// With a trickle seed the input comes through a TrickleSource instead, and
// without random access (as from a pipe) unless `reread` is set.
Converted convert_bytes(const Buffer& in, ConvertOptions options);
Converted convert_trickled(const Buffer& in, ConvertOptions options, std::uint64_t seed);

// Flags as the CLIs take them.
struct Flags {
  unsigned width = 64;  // bits
  GuestType guest = GuestType::kHvm;
  OutputFormat format = OutputFormat::kLibxc;
  bool xl = false;
  bool skip_qemu = false;
};
ConvertOptions options_for(const Flags& f);
std::vector<std::string> reference_args(const Flags& f);  // -w 64 -g hvm [-f libxl] ...

// What a v2 result says, read the way a restorer would.
struct Decoded {
  std::optional<std::string> error;  // the first rule broken, if any
  bool libxl = false;
  std::uint32_t domain_type = 0;
  std::uint32_t image_version = 0;
  std::uint64_t checkpoints = 0;       // libxc CHECKPOINT records
  std::uint64_t committed = 0;         // checkpoints whose state was committed
  std::map<std::uint64_t, Page> memory;  // committed memory: pfn -> page
  std::uint64_t page_records = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hvm_params;  // committed, in order
  std::vector<std::uint32_t> vcpus;    // committed X86_PV_VCPU_BASIC ids
  Buffer emulator_context;             // committed, last
  Buffer xenstore;                     // committed, last
  Buffer trailing;                     // bytes after the outermost END
  std::vector<std::string> records;    // "libxc:PAGE_DATA", ... in stream order
};
// Walks `stream` (a v2 stream, after any xl header of `xl_header_size`
// octets) and checks Xen's restorer rules that matter here: headers,
// STATIC_DATA_END before pages, one X86_PV_INFO, X86_PV_P2M_FRAMES before
// pages (PV), non-empty PAGE_DATA with known types and exact lengths, vcpu
// blob sizes, CHECKPOINT only in checkpointed streams, CHECKPOINT_END after
// CHECKPOINT, emulator records only for HVM. Page contents of a checkpoint
// are committed at its CHECKPOINT (or at END in a plain stream); records
// after the last CHECKPOINT are dropped at END, as Xen's restorer does.
Decoded decode_v2(const Buffer& stream, std::size_t xl_header_size = 0);

// Runs tools/verify's verifier (xenstream_verify) over `stream` when it is
// part of the build: the error-level problems it lists, one per line
// (empty: valid). Without the library: nullopt.
std::optional<std::string> verifier_errors(const Buffer& stream);

// Runs a program; returns its exit status (or -1 if it did not exit).
struct RunResult {
  int status = -1;
  std::string out;
  std::string err;
};
RunResult run_program(const std::vector<std::string>& argv);

// Paths baked in by CMake.
std::string reference_converter();  // build/oracle/convert-legacy-stream
std::string reference_verifier();   // build/oracle/verify-stream-v2
std::string streamconv_binary();

// Runs the reference converter on `in` with `flags`; fills `out`.
RunResult run_reference(const TempDir& dir, const Buffer& in, const Flags& flags, Buffer& out);

std::string hexdump_diff(const Buffer& a, const Buffer& b);  // first difference, for messages

}  // namespace xenstream::convert::testing
