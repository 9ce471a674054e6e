// streamverify's checkpoint rules (Remus and COLO): CHECKPOINT, what each
// period between two must hold, and the mode they imply.
#include "tools/verify/verifier_impl.h"

namespace xenstream::verify::detail {

void Verifier::on_checkpoint(const RecordView& rec) {
  if (rec.length != 0) {
    add_record(R::kLibxcRec09, rec, "body_length is " + std::to_string(rec.length) + ", expected 0");
  }
  if (mode() == Mode::kPlain && !ckpt01_reported_) {
    ckpt01_reported_ = true;
    const ContainerKind kind = s_.container ? s_.container->kind : ContainerKind::kNone;
    add_record(R::kLibxcCkpt01, rec,
               std::string("a CHECKPOINT in a plain restore") +
                   (options_.mode == Mode::kAuto && kind == ContainerKind::kLibvirt
                        ? " (a libvirt save file is restored plain)"
                        : "") +
                   " (Xen: \"Found checkpoint in non-checkpointed stream\")");
  }
  period_checks(rec, checkpoints_ == 0);
  if (checkpoints_ == 0 && is_pv_) pv_completion(rec);
  if (verify_seen_ && !verify_warned_) {
    verify_warned_ = true;
    add_record(R::kLibxcOrder14, rec, "VERIFY in a checkpointed stream");
  }
  ++checkpoints_;
  if (s_.pages_per_checkpoint.size() < Summary::kMaxListed) {
    s_.pages_per_checkpoint.push_back(pages_in_period_);
  }
  pages_in_period_ = 0;
  hvm_context_in_period_ = 0;
  emu_context_in_period_ = 0;
  emu_xenstore_in_period_ = 0;
  if (nested_) {
    in_checkpoint_libxl_ = true;
    in_libxc_ = false;
  } else {
    ++committed_;
    records_since_commit_ = 0;
  }
}

void Verifier::period_checks(const RecordView& rec, bool first) {
  if (!is_hvm_) return;
  if (hvm_context_in_period_ == 0) {
    if (first) {
      add_record(R::kLibxcOrder10, rec,
              checkpoints_ == 0 && rec.type == 0
                  ? "the HVM stream has no HVM_CONTEXT: Xen fails to load the domain's state"
                  : "checkpoint 1 has no HVM_CONTEXT: Xen fails to load the domain's state");
    } else {
      add_record(R::kLibxcOrder11, rec,
              "checkpoint " + std::to_string(checkpoints_ + 1) +
                  " has no HVM_CONTEXT: Xen would resume it with the previous checkpoint's CPU state");
    }
  } else if (hvm_context_in_period_ > 1) {
    add_record(R::kLibxcOrder11, rec,
            std::to_string(hvm_context_in_period_) + " HVM_CONTEXT records " +
                (checkpoints_ > 0 || rec.type != 0
                     ? "in checkpoint " + std::to_string(checkpoints_ + 1)
                     : std::string("in the stream")) +
                ", expected one (the last one wins)");
  }
}

}  // namespace xenstream::verify::detail
