#include <gtest/gtest.h>

#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/stream_cursor.h>

namespace xenstream {
TEST(Smoke, WriteThenWalk) {
  BufferSink sink;
  RecordWriter w(sink);
  ASSERT_TRUE(w.write_libxl_header());
  ASSERT_TRUE(w.append(format::libxl::RecordType::kLibxcContext));
  ASSERT_TRUE(w.write_image_header());
  ASSERT_TRUE(w.write_domain_header(2, 4, 17));
  ASSERT_TRUE(w.append(format::libxc::RecordType::kStaticDataEnd));
  ASSERT_TRUE(w.append(format::libxc::RecordType::kEnd));
  ASSERT_TRUE(w.finish());
  MemorySource src(Bytes(sink.data()));
  auto c = read_container(src);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->payload, PayloadKind::kLibxl);
  StreamCursor cur(src, c->payload);
  ASSERT_TRUE(cur.start());
  int n = 0;
  while (!cur.done()) {
    auto r = cur.next();
    ASSERT_TRUE(r) << r.error().describe();
    ++n;
  }
  EXPECT_EQ(n, 4);
  EXPECT_TRUE(cur.finish());
}
}  // namespace xenstream
