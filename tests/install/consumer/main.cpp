// Writes a bare libxc image with the installed library, reads it back, and
// prints the record count: proof that headers, libraries and the CMake
// package fit together.
#include <cstdio>

#include "codecs/open_input.h"
#include "libstream/record_writer.h"
#include "libstream/stream_cursor.h"

int main() {
  using namespace xenstream;
  BufferSink sink;
  RecordWriter w(sink);
  if (!w.write_image_header() || !w.write_domain_header(2, 4, 17) ||
      !w.append(format::libxc::RecordType::kStaticDataEnd) || !w.finish()) {
    return 1;
  }
  MemorySource src{Bytes(sink.data())};
  auto c = read_container(src);
  if (!c) return 1;
  StreamCursor cur(src, c->payload);
  if (!cur.start()) return 1;
  int n = 0;
  while (!cur.done()) {
    if (!cur.next()) return 1;
    ++n;
  }
  std::printf("records: %d\n", n);
  return n == 2 ? 0 : 1;
}
