// Fuzz target: the legacy converter (tools/convert, streamconv's engine).
//
// Converts the input with everything detected (toolstack width, guest type,
// xl header), random access to the input available as for a regular file,
// and a small spool so temporary files are exercised. A conversion that
// succeeds must have written a well-framed v2 stream: the record cursor
// walks it from its header to END with every decoder and no error, and
// its size is what the result says. Successful inputs are converted a
// second time to the other output format. A failure must point inside the
// input. Then the input is converted once more from a pipe, where the
// legacy reader leaves each batch's pages in the input and the converter
// moves them on (LegacyReaderOptions::defer_pages): its output, or its
// error, must be exactly the one from memory without random access.
#include <unistd.h>

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

// Without random access (as from stdin), from memory and from a pipe that
// already holds the whole input: the deferred page path against the batch
// read whole.
void check_pipe_agrees(Bytes in) {
  const int fd = fuzz::pipe_holding(in);
  if (fd < 0) return;
  {  // the source borrows fd: gone before it is closed
    convert::ConvertOptions o;
    o.spool_memory = 16u << 10;
    o.skip_qemu = true;
    MemorySource mem(in);
    BufferSink from_mem;
    auto m = convert::convert_legacy(mem, from_mem, o);
    FdSource pipe(fd, "<pipe>");
    BufferSink from_pipe;
    auto q = convert::convert_legacy(pipe, from_pipe, o);
    FUZZ_CHECK(m.has_value() == q.has_value(),
               "from memory: " + (m ? std::string("converted") : m.error().describe()) +
                   "; from a pipe: " + (q ? std::string("converted") : q.error().describe()));
    if (m) {
      FUZZ_CHECK(from_pipe.data() == from_mem.data(), "a pipe's output differs from memory's");
    } else {
      FUZZ_CHECK(q.error().describe() == m.error().describe(),
                 "from memory: " + m.error().describe() + "; from a pipe: " + q.error().describe());
    }
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  if (check(in, convert::OutputFormat::kLibxc)) check(in, convert::OutputFormat::kLibxl);
  if (in.size() <= (1u << 20)) check_pipe_agrees(in);
  return 0;
}
