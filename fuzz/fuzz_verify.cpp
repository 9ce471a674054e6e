// Fuzz target: the verifier as a whole (tools/verify, streamverify's engine).
//
// Verifies the input from memory and again through a source that moves its
// window on every read. Checks that the verdict is one of the three exit
// statuses and agrees with the counts, that listed problems respect the
// per-rule cap and point inside the input, that every problem can be
// formatted, and that both sources give the same problems in the same
// order (and ASan sees no view used past its lifetime).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include <xenstream/codecs/zstd/zstd_source.h>
#include "fuzz/common/walk.h"
#include "tools/verify/verifier.h"

namespace {

using namespace xenstream;

verify::VerifyOptions options() {
  verify::VerifyOptions o;
  o.pfn_tracking_cap = 1u << 20;
  o.max_problems_per_rule = 8;
  return o;
}

// The problems, one per line (the verdict names the source, which differs).
std::string listing(const verify::VerifyResult& r) {
  std::string s;
  for (const auto& p : r.problems) s += "  " + p.format() + "\n";
  if (r.failure) s += "  failure: " + r.failure->describe() + "\n";
  return s;
}

void check(const verify::VerifyResult& r, std::size_t size, bool compressed) {
  const int status = r.exit_status();
  FUZZ_CHECK(status >= 0 && status <= 2, listing(r));
  FUZZ_CHECK(r.valid() == (status == 0), listing(r));
  std::uint64_t errors = 0;
  std::uint64_t warnings = 0;
  std::map<std::string_view, std::size_t> per_rule;
  for (const auto& p : r.problems) {
    FUZZ_CHECK(!p.rule.empty() && !p.message.empty(), listing(r));
    FUZZ_CHECK(!p.format().empty(), listing(r));
    if (!compressed) FUZZ_CHECK(p.offset <= size, "problem past the input: " + p.format());
    (p.severity == verify::Severity::kError ? errors : warnings) += 1;
    FUZZ_CHECK(++per_rule[p.rule] <= 8, "per-rule cap exceeded: " + std::string(p.rule));
  }
  FUZZ_CHECK(errors <= r.errors && warnings <= r.warnings, "listed more problems than counted");
  FUZZ_CHECK(r.summary.emulators.size() <= verify::Summary::kMaxListed, "emulator list above cap");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  const bool compressed = codecs::ZstdSource::sniff(in);
  MemorySource mem(in);
  const verify::VerifyResult a = verify::verify(mem, options());
  check(a, size, compressed);
  FUZZ_CHECK(!a.verdict().empty(), "empty verdict");
  fuzz::TrickleSource trickle(in);
  const verify::VerifyResult b = verify::verify(trickle, options());
  FUZZ_CHECK(a.exit_status() == b.exit_status() && a.errors == b.errors &&
                 a.warnings == b.warnings && listing(a) == listing(b),
             "memory and trickle sources disagree:\n" + listing(a) + "---\n" + listing(b));
  return 0;
}
