// Fuzz target: the legacy converter (tools/convert, streamconv's engine).
//
// Converts the input with everything detected (toolstack width, guest type,
// xl header), random access to the input available as for a regular file,
// and a small spool so temporary files are exercised. A conversion that
// succeeds must have written a well-framed v2 stream: the record cursor
// walks it from its header to END with every decoder and no error, and
// its size is what the result says. Successful inputs are converted a
// second time to the other output format. A failure must point inside the
// input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/common/walk.h"
#include <xenstream/libstream/format/libxc.h>
#include "tools/convert/converter.h"

namespace {

using namespace xenstream;

Expected<convert::ConvertResult> run(Bytes in, convert::OutputFormat format, BufferSink& out) {
  convert::MemoryRandomAccess reread(in);
  convert::ConvertOptions o;
  o.format = format;
  o.reread = &reread;
  o.spool_memory = 16u << 10;
  // In the libxc format the qemu record follows END as it came (as the
  // reference converter does); leave it out so the output is one v2 stream.
  o.skip_qemu = format == convert::OutputFormat::kLibxc;
  MemorySource src(in);
  return convert::convert_legacy(src, out, o);
}

// Returns true when the conversion succeeded.
bool check(Bytes in, convert::OutputFormat format) {
  BufferSink out;
  auto r = run(in, format, out);
  if (!r) {
    const Error& e = r.error();
    FUZZ_CHECK(!e.message.empty(), "error without a message");
    FUZZ_CHECK(e.code != ErrorCode::kIo, "I/O error on memory input: " + e.describe());
    FUZZ_CHECK(e.offset <= in.size(), e.describe());
    return false;
  }
  FUZZ_CHECK(r->output_bytes == out.data().size(),
             "output_bytes " + std::to_string(r->output_bytes) + ", wrote " +
                 std::to_string(out.data().size()));
  MemorySource written{Bytes(out.data())};
  const fuzz::WalkResult w = fuzz::walk_stream(written, out.data().size(), FormatHint::kAuto,
                                               1u << 20, format::libxc::kRecordLengthMax);
  FUZZ_CHECK(!w.error && w.finished, "the converted stream does not walk:\n" + w.describe());
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  if (check(in, convert::OutputFormat::kLibxc)) check(in, convert::OutputFormat::kLibxl);
  return 0;
}
