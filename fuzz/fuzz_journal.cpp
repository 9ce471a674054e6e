// Fuzz target: the commit journal decoder (tools/restore/journal.h).
//
// A journal names files to rename and pages to copy when a checkpoint
// commits, and a damaged one is read back after a crash: it must never
// name a path outside the directory, read past its input, or accept counts
// that do not fit. The input is decoded as it is and, so that the fuzzer
// gets past the checksum, again with its last eight octets replaced by the
// right FNV-1a. Whatever decodes must encode back to the same octets.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz/common/walk.h"
#include <xenstream/libstream/fields.h>
#include "tools/restore/journal.h"

namespace {

using namespace xenstream;
using namespace xenstream::restore;

void check(Bytes data) {
  auto j = decode_journal(data);
  if (!j) {
    FUZZ_CHECK(j.error().offset <= data.size(), j.error().describe());
    FUZZ_CHECK(j.error().code == ErrorCode::kMalformed, j.error().describe());
    return;
  }
  FUZZ_CHECK(j->pages.size() * 16 + 40 <= data.size(), "more page entries than the input holds");
  for (const auto& r : j->renames) {
    FUZZ_CHECK(journal_name_ok(r.from) && journal_name_ok(r.to), "a name outside the directory");
    FUZZ_CHECK(r.from.find('/') == std::string::npos && r.to.find('/') == std::string::npos, "a slash");
  }
  const std::vector<std::byte> again = encode_journal(*j);
  FUZZ_CHECK(again.size() == data.size() && std::memcmp(again.data(), data.data(), data.size()) == 0,
             "decode then encode changed the journal");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  check(in);
  if (size >= 40) {
    std::vector<std::byte> fixed(in.begin(), in.end());
    put_u64(fixed.data() + size - 8, fnv1a64(Bytes(fixed.data(), size - 8)), ByteOrder::kLittle);
    check(Bytes(fixed.data(), fixed.size()));
  }
  return 0;
}
