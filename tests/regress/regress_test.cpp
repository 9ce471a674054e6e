// Named regression tests, one per fuzzer finding (fuzz/README.md lists them
// with the target that found them and the fix). Each reads its input from
// testdata/regress/<target>/ and pins the behaviour that is now expected,
// message and offset included.
#include <gtest/gtest.h>

#include <cstddef>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>

#ifdef XS_HAVE_BLOBS
#include <xenstream/libstream/blobs/hvm_context.h>
#endif
#ifdef XS_HAVE_REMUS
#include <xenstream/codecs/remus/remus_codec.h>
#endif
#ifdef XS_HAVE_RESTORE
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include <xenstream/libstream/headers.h>
#include "tools/restore/directory_backend.h"
#include "tools/restore/restore_driver.h"
#endif

namespace xenstream {
namespace {

std::vector<std::byte> input(const std::string& name) {
  std::ifstream in(std::string(XS_REGRESS_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  for (std::size_t i = 0; i < c.size(); ++i) b[i] = static_cast<std::byte>(c[i]);
  return b;
}

#ifdef XS_HAVE_BLOBS
// fuzz_blobs, 2026-11-22: an END descriptor with a non-zero instance and
// length after valid HEADER and PIC entries. The walker stops there with
// HVMCTX-14 and leaves `trailing` at 0 (the fuzz target had assumed END
// always accounts for the rest of the blob; the target was wrong).
TEST(FuzzBlobs, EndDescriptorWithInstanceAndLength) {
  const auto in = input("fuzz_blobs/hvm-end-with-length.bin");
  ASSERT_EQ(in.size(), 72u);
  const auto r = blobs::check_hvm_context(Bytes(in), 0x1000);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].rule, "HVMCTX-14");
  EXPECT_EQ(r.findings[0].blob_offset, 48u);
  EXPECT_EQ(r.findings[0].file_offset, 0x1030u);
  EXPECT_EQ(r.findings[0].message,
            "END descriptor has instance 12290 and length 927284791, expected 0 and 0");
  ASSERT_TRUE(r.summary.end_offset);
  EXPECT_EQ(*r.summary.end_offset, 48u);
  EXPECT_EQ(r.summary.trailing, 0u);
}
#endif

#ifdef XS_HAVE_REMUS
// fuzz_remus, 2026-11-22: a zero-length run marker after a SKIP run. The
// error is located at the marker, not at the start of the page encoding
// (the fuzz target had assumed the latter; the target was wrong).
TEST(FuzzRemus, ZeroLengthRunIsReportedAtItsMarker) {
  const auto in = input("fuzz_remus/zero-run-after-skip.bin");
  ASSERT_EQ(in.size(), 3u);  // piece selector, then the encoding 0x85 0x00
  auto len = codecs::remus::encoded_length(Bytes(in).subspan(1), 0x100);
  ASSERT_FALSE(len);
  EXPECT_EQ(len.error().code, ErrorCode::kMalformed);
  EXPECT_EQ(len.error().offset, 0x101u);
  EXPECT_EQ(len.error().message,
            "compressed page at 0x100: zero-length run marker 0x0 at 0x101 after 5 words");
}
#endif

#ifdef XS_HAVE_RESTORE
// fuzz_restore, 2026-11-22: an EMULATOR_XENSTORE_DATA key whose first octet
// is 0xAA (not UTF-8). The directory backend serialised the pairs with
// nlohmann::json::dump(), which throws type_error 316 on invalid UTF-8; the
// exception escaped restore_stream() and streamrestore died in
// std::terminate. Expected now: no exception; either the restore completes
// (or fails over to a checkpoint) and every JSON file it wrote parses, or
// the stream is refused with an error and nothing looks finished.
TEST(FuzzRestore, XenstoreKeyThatIsNotUtf8) {
  namespace fs = std::filesystem;
  const auto in = input("fuzz_restore/xenstore-key-not-utf8.bin");
  const fs::path dir = fs::temp_directory_path() / ("xenstream-regress-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path out = dir / "out";
  MemorySource src{Bytes(in)};
  auto c = read_container(src);
  ASSERT_TRUE(c) << c.error().describe();
  restore::DirectoryOptions dopt;
  dopt.dir = out.string();
  auto backend = restore::DirectoryBackend::create(dopt);
  ASSERT_TRUE(backend) << backend.error().describe();
  restore::RestoreReport r;
  EXPECT_NO_THROW(r = restore::restore_stream(src, *c, **backend, restore::RestoreOptions{}));
  backend->reset();
  if (r.status == restore::RestoreStatus::kComplete ||
      r.status == restore::RestoreStatus::kFailover) {
    for (const auto& e : fs::directory_iterator(out)) {
      if (e.path().extension() != ".json") continue;
      std::ifstream f(e.path());
      EXPECT_FALSE(nlohmann::json::parse(f, nullptr, false).is_discarded()) << e.path();
    }
  } else {
    EXPECT_EQ(r.status, restore::RestoreStatus::kInvalid);
    EXPECT_TRUE(r.error);
    EXPECT_FALSE(fs::exists(out / "manifest.json"));
  }
  fs::remove_all(dir);
}
#endif

}  // namespace
}  // namespace xenstream
