// Fuzz target: the HVM context and QEMU device-state walkers
// (libstream/blobs).
//
// Runs both walkers over the input as a blob placed at a non-zero file
// offset, the QEMU walker in both profiles and with a small section list.
// Checks that findings point inside the blob and that file offsets are blob
// offsets moved by the base, that the summaries stay within the blob and
// their caps, that walk_*() fails exactly when check_*() reports an error,
// and that every finding can be described.
#include <cstddef>
#include <cstdint>

#include "fuzz/common/walk.h"
#include <xenstream/libstream/blobs/hvm_context.h>
#include <xenstream/libstream/blobs/qemu_state.h>

namespace {

using namespace xenstream;
using namespace xenstream::blobs;

constexpr std::uint64_t kBase = 0x10000;

void check_findings(const std::vector<BlobFinding>& findings, std::size_t size, const char* what) {
  std::size_t errors = 0;
  for (const BlobFinding& f : findings) {
    FUZZ_CHECK(f.blob_offset <= size, std::string(what) + ": " + describe(f));
    FUZZ_CHECK(f.file_offset == kBase + f.blob_offset, std::string(what) + ": " + describe(f));
    FUZZ_CHECK(!f.rule.empty() && !f.message.empty(), std::string(what) + ": " + describe(f));
    if (f.severity == FindingSeverity::kError) ++errors;
  }
  // The walkers stop at the first error.
  FUZZ_CHECK(errors <= 1, std::string(what) + ": more than one error-level finding");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);

  const HvmContextReport hvm = check_hvm_context(in, kBase);
  check_findings(hvm.findings, size, "hvm context");
  const HvmContextSummary& hs = hvm.summary;
  if (hs.end_offset) {
    FUZZ_CHECK(*hs.end_offset + 8 <= size, "END descriptor past the blob");
    // A well-formed END accounts for every octet after it (a malformed one
    // stops the walk before the trailing octets are counted).
    if (hvm.ok()) {
      FUZZ_CHECK(*hs.end_offset + 8 + hs.trailing == size, "END offset and trailing octets");
    }
  }
  FUZZ_CHECK(hs.entries * 8 <= size, "more descriptors than the blob holds");
  auto hw = walk_hvm_context(in, kBase);
  FUZZ_CHECK(hw.has_value() == hvm.ok(), "walk_hvm_context and check_hvm_context disagree");
  if (!hw) FUZZ_CHECK(hw.error().offset >= kBase && hw.error().offset <= kBase + size,
                      hw.error().describe());
  HvmContextOptions two_vcpus;
  two_vcpus.vcpu_count = 2;
  check_findings(check_hvm_context(in, kBase, two_vcpus).findings, size, "hvm context, 2 vcpus");

  for (bool xen : {true, false}) {
    QemuWalkOptions opt;
    opt.xen_device_state = xen;
    opt.max_sections_listed = xen ? 4096 : 2;
    const QemuStateReport q = check_qemu_state(in, kBase, opt);
    check_findings(q.findings, size, "qemu state");
    const QemuStateSummary& qs = q.summary;
    FUZZ_CHECK(qs.sections.size() <= opt.max_sections_listed, "section list above its cap");
    FUZZ_CHECK(qs.sections.size() <= qs.sections_total, "listed more sections than counted");
    for (const QemuSection& s : qs.sections) {
      FUZZ_CHECK(s.offset < size && s.payload_offset <= size &&
                     s.payload_offset + s.payload_size <= size,
                 "section outside the blob at " + hex(s.offset));
      FUZZ_CHECK(s.idstr.size() <= 255, "idstr longer than a counted string");
    }
    if (qs.eof_offset) FUZZ_CHECK(*qs.eof_offset < size, "EOF marker past the blob");
    auto qw = walk_qemu_state(in, kBase, opt);
    FUZZ_CHECK(qw.has_value() == q.ok(), "walk_qemu_state and check_qemu_state disagree");
  }
  return 0;
}
