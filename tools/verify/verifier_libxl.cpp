// streamverify's libxl layer: the libxl stream header, its records, and the
// emulator blobs (xenstore data, QEMU and HVM device state) they carry.
#include "tools/verify/verifier_impl.h"

namespace xenstream::verify::detail {

void Verifier::check_libxl_header() {
  const LibxlHeaderInfo& h = *s_.libxl;
  const std::string w = "libxl header";
  legacy_option_ = h.legacy();
  if (h.version != xl::kVersion) {
    add(R::kLibxlHdr02, h.offset + 8, w, "version is " + std::to_string(h.version) + ", expected 2");
  }
  if ((h.options & xl::kOptionBigEndian) != 0) {
    add(R::kLibxlHdr03, h.offset + 12, w,
        "options bit 0 says the stream is big-endian: Xen cannot restore big-endian streams");
  }
  if ((h.options & xl::kOptionReservedMask) != 0) {
    add(R::kLibxlHdr04, h.offset + 12, w,
        "options " + hex(h.options) + " has reserved bits " + hex(h.options & xl::kOptionReservedMask) +
            " set");
  }
}

void Verifier::on_libxl(const RecordView& rec) {
  ++s_.libxl_records[record_display_name(rec.layer, rec.type)];
  const bool after_checkpoint_end = last_was_checkpoint_end_;
  last_was_checkpoint_end_ = false;
  if (rec.type != static_cast<std::uint32_t>(xl::RecordType::kCheckpointEnd) &&
      rec.type != static_cast<std::uint32_t>(xl::RecordType::kCheckpointState)) {
    ++records_since_commit_;
  }
  auto empty_body = [&]() {
    if (rec.length != 0) {
      add_record(R::kLibxlRec05, rec,
              "body_length is " + std::to_string(rec.length) + ", expected 0");
    }
  };
  switch (static_cast<xl::RecordType>(rec.type)) {
    case xl::RecordType::kEnd:
      empty_body();
      if (in_checkpoint_libxl_) {
        add_record(R::kLibxlOrder05, rec,
                "END between a CHECKPOINT and its CHECKPOINT_END (Xen's libxl asserts here)");
      }
      if (!seen_libxc_context_) {
        add_record(R::kLibxlOrder01, rec, "the stream ends without a LIBXC_CONTEXT record");
      }
      return;
    case xl::RecordType::kLibxcContext:
      empty_body();
      if (seen_libxc_context_) {
        add_record(R::kLibxlOrder02, rec, "a second LIBXC_CONTEXT record");
      }
      seen_libxc_context_ = true;
      in_libxc_ = true;
      return;
    case xl::RecordType::kEmulatorXenstoreData:
    case xl::RecordType::kEmulatorContext:
      return on_emulator(rec);
    case xl::RecordType::kCheckpointEnd:
      empty_body();
      if (!in_checkpoint_libxl_) {
        add_record(R::kLibxlCkpt01, rec,
                "CHECKPOINT_END without a libxc CHECKPOINT before it (Xen: \"Unexpected "
                "CHECKPOINT_END record in stream\")");
        return;
      }
      in_checkpoint_libxl_ = false;
      ++committed_;
      records_since_commit_ = 0;
      in_libxc_ = true;
      last_was_checkpoint_end_ = true;
      gap_open_ = true;
      state_in_gap_ = false;
      return;
    case xl::RecordType::kCheckpointState: {
      if (mode() == Mode::kRemus || mode() == Mode::kPlain) {
        add_record(R::kLibxlCkpt05, rec,
                   std::string("CHECKPOINT_STATE in a stream restored as ") +
                       (mode() == Mode::kRemus ? "a Remus secondary" : "a plain restore") +
                       ": Xen does not read one there (its libxc reader takes it for a libxc record)");
        return;
      }
      if (!after_checkpoint_end) {
        add_record(R::kLibxlCkpt03, rec,
                "CHECKPOINT_STATE where Xen does not wait for one (only right after "
                "CHECKPOINT_END)");
      } else {
        state_in_gap_ = true;
      }
      if (rec.length != 4) {
        add_record(R::kLibxlCkpt02, rec,
                "body_length is " + std::to_string(rec.length) + ", expected 4");
        return;
      }
      const std::uint32_t id = rec.fields().u32(0);
      const bool colo = options_.mode == Mode::kColo || (options_.mode == Mode::kAuto && mode() != Mode::kRemus);
      if ((id & 0x80000000u) != 0 && after_checkpoint_end && colo && committed_ > 0) {
        // libxl hands the id on as a return code: a negative one reads as
        // "reading data fails", a broken channel, and COLO fails over.
        add_record(R::kLibxcCkpt03, rec,
                   "CHECKPOINT_STATE id " + hex(id) + " has bit 31 set: a COLO secondary takes it "
                   "for a broken channel and fails over to checkpoint " + std::to_string(committed_));
        stop_ = Stop::kFailover;
        return;
      }
      if (id != xl::kCheckpointNew) {
        const char* names[] = {"CHECKPOINT_NEW", "CHECKPOINT_SVM_SUSPENDED", "CHECKPOINT_SVM_READY",
                               "CHECKPOINT_SVM_RESUMED"};
        add_rec(R::kLibxlCkpt04, rec, 0,
                "control_id is " + std::to_string(id) +
                    (id < 4 ? std::string(" (") + names[id] + ", a back-channel message)"
                            : std::string(" (unknown)")) +
                    ", the forward stream carries only 0 (CHECKPOINT_NEW)");
      }
      return;
    }
  }
  if (rec.optional()) {
    add_record(R::kLibxlRec04, rec,
            "unknown optional record type " + hex(rec.type) +
                ": Xen's libxl reader refuses every unknown type (\"Unrecognised record\")");
  } else {
    add_record(R::kLibxlRec03, rec, "unknown record type " + hex(rec.type));
  }
}

void Verifier::on_emulator(const RecordView& rec) {
  const bool xs = rec.type == static_cast<std::uint32_t>(xl::RecordType::kEmulatorXenstoreData);
  if (!seen_libxc_context_) {
    add_record(R::kLibxlOrder03, rec, "an emulator record before LIBXC_CONTEXT");
  } else if (is_pv_) {
    add_record(R::kLibxlOrder04, rec,
            "an emulator record in a PV stream: Xen refuses emulator records for non-HVM guests");
  } else if (config_says("pvh")) {
    add_record(R::kLibxlOrder04, rec,
            "an emulator record for a PVH guest (per the " + s_.config->source +
                " config): Xen refuses emulator records for non-HVM guests");
  }
  if (rec.length < 8) {
    add_record(R::kLibxlEmu01, rec,
            "body_length is " + std::to_string(rec.length) + ", too short for the 8-octet emulator sub-header");
    return;
  }
  const Fields f = rec.fields();
  const std::uint32_t id = f.u32(0);
  const std::uint32_t index = f.u32(4);
  if (id > xl::kEmulatorQemuUpstream) {
    add_rec(R::kLibxlEmu02, rec, 0, "emulator_id " + std::to_string(id) + " is not 0, 1 or 2");
  } else if (id == xl::kEmulatorUnknown && !legacy_option_) {
    add_rec(R::kLibxlEmu03, rec, 0,
            "emulator_id 0 (unknown) is only written by the legacy converter, but the header's "
            "LEGACY option is clear");
  }
  if (index != 0) {
    add_rec(R::kLibxlEmu04, rec, 4, "emulator index is " + std::to_string(index) + ", expected 0");
  }
  std::uint32_t& count = xs ? emu_xenstore_in_period_ : emu_context_in_period_;
  if (++count > 1) {
    add_record(R::kLibxlEmu05, rec,
            std::string("a second ") + (xs ? "EMULATOR_XENSTORE_DATA" : "EMULATOR_CONTEXT") +
                (checkpoints_ > 0 ? " in this checkpoint" : " in this stream") +
                ": the last one wins");
  }
  if (!xs) emulator_context_seen_ = true;
  ++s_.emulators_total;
  EmulatorBlob blob;
  blob.record_index = rec.index;
  blob.offset = rec.offset;
  blob.record = record_display_name(rec.layer, rec.type);
  blob.id = id;
  blob.index = index;
  blob.size = rec.length - 8;
  blob.checkpoint = in_checkpoint_libxl_ ? checkpoints_ : 0;
  if (xs) {
    blob.xenstore_pairs = check_xenstore(rec, 8);
  } else {
    blobs::QemuStateReport q = blobs::check_qemu_state(rec.body.subspan(8), rec.body_offset() + 8);
    add_findings(q.findings, rec, "QEMU state");
    blob.qemu = std::move(q.summary);
  }
  if (s_.emulators.size() < Summary::kMaxListed) s_.emulators.push_back(std::move(blob));
}

std::uint64_t Verifier::check_xenstore(const RecordView& rec, std::size_t data_off) {
  const auto* base = reinterpret_cast<const char*>(rec.body.data()) + data_off;
  const std::size_t n = rec.length - data_off;
  std::set<std::string_view> keys;
  s_.xenstore.clear();
  std::size_t pos = 0;
  bool warned_value = false;
  bool warned_dup = false;
  std::uint64_t pairs = 0;
  while (pos < n) {
    const std::size_t key_at = pos;
    const void* nul = std::memchr(base + pos, '\0', n - pos);
    if (nul == nullptr) {
      add_rec(R::kLibxlXs01, rec, data_off + pos,
              "the key at data offset " + std::to_string(pos) + " is not NUL-terminated");
      return pairs;
    }
    const std::string_view key(base + pos, static_cast<const char*>(nul) - (base + pos));
    pos += key.size() + 1;
    if (pos >= n) {
      add_rec(R::kLibxlXs04, rec, data_off + pos, "key " + quote(key) + " has no value");
      return pairs;
    }
    const void* vnul = std::memchr(base + pos, '\0', n - pos);
    if (vnul == nullptr) {
      add_rec(R::kLibxlXs04, rec, data_off + pos,
              "the value of key " + quote(key) + " is not NUL-terminated");
      return pairs;
    }
    const std::string_view value(base + pos, static_cast<const char*>(vnul) - (base + pos));
    const std::size_t value_at = pos;
    pos += value.size() + 1;
    if (key.empty()) {
      add_rec(R::kLibxlXs02, rec, data_off + key_at, "empty key");
    } else if (key.front() == '/') {
      add_rec(R::kLibxlXs03, rec, data_off + key_at,
              "key " + quote(key) + " is absolute; keys are relative to the device model's directory");
    } else {
      for (std::size_t i = 0; i < key.size(); ++i) {
        const char c = key[i];
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '@' ||
              c == '-')) {
          add_rec(R::kLibxlXs05, rec, data_off + key_at + i,
                  "key " + quote(key) + " has character " + quote(std::string_view(&key[i], 1)) +
                      " outside [A-Za-z0-9/_@-]");
          break;
        }
      }
    }
    if (!warned_value) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c < 0x20 || c >= 0x7F) {
          warned_value = true;
          add_rec(R::kLibxlXs06, rec, data_off + value_at + i,
                  "the value of key " + quote(key) + " has the non-printable octet " + hex(c));
          break;
        }
      }
    }
    if (!keys.insert(key).second && !warned_dup) {
      warned_dup = true;
      add_rec(R::kLibxlXs07, rec, data_off + key_at, "key " + quote(key) + " appears twice");
    }
    ++pairs;
    if (s_.xenstore.size() < kMaxXenstoreListed) s_.xenstore.emplace_back(key, value);
  }
  return pairs;
}

}  // namespace xenstream::verify::detail
