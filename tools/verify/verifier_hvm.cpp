// streamverify's x86 HVM rules: HVM_CONTEXT and HVM_PARAMS.
#include "tools/verify/verifier_impl.h"

namespace xenstream::verify::detail {

void Verifier::on_hvm_context(const RecordView& rec) {
  ++hvm_context_in_period_;
  if (rec.length == 0) {
    add_record(R::kLibxcHvmctx01, rec, "empty HVM context");
    return;
  }
  blobs::HvmContextOptions o;
  if (s_.config && s_.config->max_vcpus) o.vcpu_count = s_.config->max_vcpus;
  blobs::HvmContextReport r = blobs::check_hvm_context(rec.body, rec.body_offset(), o);
  add_findings(r.findings, rec, "HVM context");
  s_.hvm_context = r.summary;
}

void Verifier::on_hvm_params(const RecordView& rec) {
  const Fields f = rec.fields();
  if (rec.length < 8 || rec.length != 8 + 16 * std::uint64_t{f.u32(0)}) {
    add_record(R::kLibxcParams01, rec,
            rec.length < 8 ? "body_length is " + std::to_string(rec.length) + ", expected at least 8"
                           : "count " + std::to_string(f.u32(0)) + " needs a body of " +
                                 std::to_string(8 + 16 * std::uint64_t{f.u32(0)}) +
                                 " octets, the body has " + std::to_string(rec.length));
    return;
  }
  const std::uint32_t count = f.u32(0);
  if (f.u32(4) != 0) {
    add_rec(R::kLibxcParams02, rec, 4, "reserved field is " + hex(f.u32(4)) + ", expected 0");
  }
  if (count == 0) {
    add_rec(R::kLibxcParams03, rec, 0, "count is 0 (Xen 4.6-4.8 erratum), ignored");
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::size_t at = 8 + 16 * std::size_t{i};
    const std::uint64_t index = f.u64(at);
    const std::uint64_t value = f.u64(at + 8);
    if (index >= xc::kHvmNrParams) {
      add_rec(R::kLibxcParams04, rec, at,
              "param[" + std::to_string(i) + "] index " + std::to_string(index) +
                  " is not below 39 (HVM_NR_PARAMS): the hypervisor refuses it");
      continue;
    }
    if (deprecated_param(index)) {
      add_rec(R::kLibxcParams06, rec, at,
              "param[" + std::to_string(i) + "] index " + std::to_string(index) + " is deprecated");
    } else if (std::find(std::begin(kSaverParams), std::end(kSaverParams), index) ==
               std::end(kSaverParams)) {
      add_rec(R::kLibxcParams05, rec, at,
              "param[" + std::to_string(i) + "] index " + std::to_string(index) +
                  " is not one a Xen saver sends");
    }
    s_.hvm_params[index] = value;
  }
}

}  // namespace xenstream::verify::detail
