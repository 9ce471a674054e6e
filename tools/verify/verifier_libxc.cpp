// streamverify's libxc layer, for every guest type: the image and domain
// headers, record order, PAGE_DATA, TSC info and the CPUID/MSR policies.
#include "tools/verify/verifier_impl.h"

namespace xenstream::verify::detail {

void Verifier::note_libxc_headers(const StreamCursor& cur) {
  if (!cur.libxc_image() || !cur.libxc_domain()) return;
  const ImageHeaderInfo& ih = *cur.libxc_image();
  if (ih.offset == checked_image_at_) return;
  if (checked_image_at_ != ~std::uint64_t{0}) reset_libxc_state();
  checked_image_at_ = ih.offset;
  const DomainHeaderInfo& dh = *cur.libxc_domain();
  s_.image = ih;
  s_.domain = dh;
  const std::string wi = "libxc image header";
  const std::string wd = "libxc domain header";
  if (ih.version != xc::kVersion2 && ih.version != xc::kVersion3) {
    add(R::kLibxcIhdr03, ih.offset + 12, wi,
        "version is " + std::to_string(ih.version) + ", expected 2 or 3");
  }
  version_ = ih.version == xc::kVersion2 ? 2 : 3;
  if ((ih.options & xc::kOptionBigEndian) != 0) {
    add(R::kLibxcIhdr04, ih.offset + 16, wi,
        "options bit 0 says the stream is big-endian: Xen cannot restore big-endian streams");
  }
  if ((ih.options & xc::kOptionReservedMask) != 0) {
    add(R::kLibxcIhdr05, ih.offset + 16, wi,
        "options " + hex(ih.options) + " has reserved bits " +
            hex(ih.options & xc::kOptionReservedMask) + " set");
  }
  if (ih.reserved1 != 0 || ih.reserved2 != 0) {
    add(R::kLibxcIhdr06, ih.offset + (ih.reserved1 != 0 ? 18 : 20), wi,
        "reserved fields are " + hex(ih.reserved1) + " and " + hex(ih.reserved2) + ", expected 0");
  }
  is_pv_ = dh.type == xc::kDomainX86Pv;
  is_hvm_ = dh.type == xc::kDomainX86Hvm;
  if (!is_pv_ && !is_hvm_) {
    add(R::kLibxcDhdr01, dh.offset, wd,
        "domain type " + hex(dh.type) + " is neither 1 (x86 PV) nor 2 (x86 HVM)");
  }
  if (dh.page_shift != xc::kPageShiftX86) {
    add(R::kLibxcDhdr02, dh.offset + 4, wd,
        "page_shift is " + std::to_string(dh.page_shift) + ", expected 12");
  }
  if (dh.reserved != 0) {
    add(R::kLibxcDhdr03, dh.offset + 6, wd, "reserved field is " + hex(dh.reserved) + ", expected 0");
  }
  if (s_.config && s_.config->guest_type && (is_pv_ || is_hvm_)) {
    const std::string& t = *s_.config->guest_type;
    const bool cfg_pv = t == "pv";
    const bool cfg_hvm = t == "hvm" || t == "pvh";
    if ((is_pv_ && cfg_hvm) || (is_hvm_ && cfg_pv)) {
      add(R::kLibxcDhdr04, dh.offset, wd,
          std::string("the stream holds an x86 ") + (is_pv_ ? "PV" : "HVM") +
              " domain but the " + s_.config->source + " config says " + quote(t) +
              ": Xen refuses to restore it into that domain type");
    }
  }
}

void Verifier::on_libxc(const RecordView& rec) {
  if (gap_open_) {
    gap_open_ = false;
    (state_in_gap_ ? gaps_with_state_ : gaps_without_state_)++;
    if (options_.mode == Mode::kColo && !state_in_gap_ && !ckpt05_reported_) {
      ckpt05_reported_ = true;
      add_record(R::kLibxlCkpt05, rec,
                 "checkpoint " + std::to_string(committed_) + "'s CHECKPOINT_END is not followed by a "
                 "CHECKPOINT_STATE(NEW): a COLO secondary reads this record as one");
    }
    if (options_.mode == Mode::kAuto && gaps_with_state_ > 0 && gaps_without_state_ > 0 &&
        !ckpt05_reported_) {
      ckpt05_reported_ = true;
      add_record(R::kLibxlCkpt05, rec,
              std::string("checkpoint ") + std::to_string(committed_ + 1) +
                  (state_in_gap_ ? " is announced by a CHECKPOINT_STATE, earlier ones were not"
                                 : " is not announced by a CHECKPOINT_STATE, earlier ones were") +
                  " (COLO sends one before every checkpoint, Remus none)");
    }
  }
  ++records_since_commit_;
  const std::uint32_t t = rec.type;
  ++s_.libxc_records[record_display_name(rec.layer, t)];
  if (t > static_cast<std::uint32_t>(xc::RecordType::kX86MsrPolicy)) {
    if (!rec.optional()) {
      add_record(R::kLibxcRec03, rec, "unknown mandatory record type " + hex(t));
    } else if (committed_ > 0) {
      add_record(R::kLibxcRec05, rec,
              "unknown optional record type " + hex(t) +
                  " after the first checkpoint: Xen buffers it and then fails to process it");
    } else {
      add_record(R::kLibxcRec04, rec, "unknown optional record type " + hex(t) + " skipped");
    }
    return;
  }
  if ((is_hvm_ && pv_only(t)) || (is_pv_ && hvm_only(t))) {
    add_record(R::kLibxcRec06, rec,
            std::string(is_hvm_ ? "a PV-only record in an HVM stream"
                                : "an HVM-only record in a PV stream") +
                ": Xen's restorer does not handle it");
    return;
  }
  auto empty_body = [&]() {
    if (rec.length != 0) {
      add_record(R::kLibxcRec09, rec,
              "body_length is " + std::to_string(rec.length) + ", expected 0");
    }
  };
  switch (static_cast<xc::RecordType>(t)) {
    case xc::RecordType::kEnd:
      empty_body();
      if (checkpoints_ > 0) {
        const std::uint64_t dropped = records_since_commit_ - 1;
        add_record(R::kLibxcCkpt04, rec,
                   "END in a checkpointed stream (Xen's saver never writes one): Xen restores "
                   "checkpoint " + std::to_string(committed_) +
                       (dropped > 0 ? " and drops the " + std::to_string(dropped) +
                                          " records received since"
                                    : std::string()));
      } else {
        period_checks(rec, true);
        if (is_pv_) pv_completion(rec);
      }
      if (nested_) in_libxc_ = false;
      if (nested_ && options_.mode == Mode::kRemus) stop_ = Stop::kEnd;  // Xen's Remus secondary stops here
      return;
    case xc::RecordType::kPageData:
      return on_page_data(rec);
    case xc::RecordType::kX86PvInfo:
      return on_pv_info(rec);
    case xc::RecordType::kX86PvP2mFrames:
      return on_p2m_frames(rec);
    case xc::RecordType::kX86PvVcpuBasic:
    case xc::RecordType::kX86PvVcpuExtended:
    case xc::RecordType::kX86PvVcpuXsave:
    case xc::RecordType::kX86PvVcpuMsrs:
      return on_vcpu(rec);
    case xc::RecordType::kSharedInfo:
      if (!pv_info_seen_) {
        add_record(R::kLibxcOrder07, rec, "SHARED_INFO before X86_PV_INFO");
        order07_reported_ = true;
        return;
      }
      if (rec.length != xc::kPageSize) {
        add_record(R::kLibxcSinfo01, rec,
                "body_length is " + std::to_string(rec.length) + ", expected exactly 4096");
      }
      return;
    case xc::RecordType::kX86TscInfo:
      return on_tsc(rec);
    case xc::RecordType::kHvmContext:
      return on_hvm_context(rec);
    case xc::RecordType::kHvmParams:
      return on_hvm_params(rec);
    case xc::RecordType::kToolstack:
      add_record(R::kLibxcRec07, rec,
              "a TOOLSTACK record: deprecated, and no Xen restorer handles it");
      return;
    case xc::RecordType::kVerify:
      empty_body();
      if (checkpoints_ > 0 || verify_seen_) {
        verify_warned_ = true;
        add_record(R::kLibxcOrder14, rec,
                verify_seen_ ? "a second VERIFY record" : "VERIFY in a checkpointed stream");
      }
      verify_seen_ = true;
      s_.verify_mode = true;
      return;
    case xc::RecordType::kCheckpoint:
      return on_checkpoint(rec);
    case xc::RecordType::kCheckpointDirtyPfnList:
      add_record(R::kLibxcRec08, rec,
              "CHECKPOINT_DIRTY_PFN_LIST belongs to the COLO back channel, not the forward stream");
      return;
    case xc::RecordType::kStaticDataEnd:
      empty_body();
      if (sde_seen_) {
        add_record(R::kLibxcOrder02, rec,
                "a second STATIC_DATA_END (Xen: \"Multiple STATIC_DATA_END records found\")");
        return;
      }
      if (version_ == 2) {
        add_record(R::kLibxcOrder03, rec,
                "an explicit STATIC_DATA_END in a v2 stream (no v2 saver writes one)");
      }
      sde_seen_ = true;
      return;
    case xc::RecordType::kX86CpuidPolicy:
      return on_cpuid_policy(rec);
    case xc::RecordType::kX86MsrPolicy:
      return on_msr_policy(rec);
  }
}

bool Verifier::need_static_data_end(const RecordView& rec) {
  if (sde_seen_) return true;
  if (version_ == 2) {
    sde_seen_ = true;  // inferred here, as Xen does for v2 streams
    return true;
  }
  if (!order01_reported_) {
    order01_reported_ = true;
    add_record(R::kLibxcOrder01, rec,
            record_display_name(rec.layer, rec.type) +
                " before STATIC_DATA_END in a v3 stream (Xen: \"No STATIC_DATA_END seen\")");
  }
  return false;
}

void Verifier::on_page_data(const RecordView& rec) {
  pt_active_ = false;
  need_static_data_end(rec);
  if (is_pv_ && !p2m_seen_ && !order09_reported_) {
    order09_reported_ = true;
    add_record(R::kLibxcOrder09, rec,
            "PAGE_DATA before X86_PV_P2M_FRAMES: max_pfn is still 0, Xen refuses every pfn above 0");
  }
  if (rec.length < 8) {
    add_record(R::kLibxcPage01, rec,
            "body_length is " + std::to_string(rec.length) + ", expected at least 8");
    return;
  }
  const Fields f = rec.fields();
  const std::uint32_t count = f.u32(0);
  if (count == 0) {
    add_rec(R::kLibxcPage01, rec, 0, "count is 0");
    return;
  }
  if (f.u32(4) != 0) {
    add_rec(R::kLibxcPage06, rec, 4, "reserved field is " + hex(f.u32(4)) + ", expected 0");
  }
  const std::uint64_t pfn_end = 8 + 8 * std::uint64_t{count};
  if (pfn_end > rec.length) {
    add_rec(R::kLibxcPage02, rec, 0,
            "count " + std::to_string(count) + " needs " + std::to_string(pfn_end) +
                " octets of header and pfns, the body has " + std::to_string(rec.length));
    return;
  }
  if (count > xc::kSaverBatchMax) {
    add_rec(R::kLibxcPage07, rec, 0,
            "count " + std::to_string(count) + " exceeds Xen's saver batch size of 1024");
  }
  bool types_known = true;
  std::uint64_t data_pages = 0;
  scratch_.clear();
  const bool check_bound = is_pv_ && p2m_seen_ && !p2m_bound_unknown_;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::size_t at = 8 + 8 * std::size_t{i};
    const std::uint64_t e = f.u64(at);
    const unsigned type = static_cast<unsigned>(e >> xc::kPfnTypeShift);
    const std::uint64_t pfn = e & xc::kPfnMask;
    ++s_.pages_by_type[type];
    if (!xc::page_type_known(type)) {
      types_known = false;
      add_rec(R::kLibxcPage03, rec, at,
              "pfn[" + std::to_string(i) + "] has the invalid page type " + hex(type) + " (" +
                  hex_entry(e) + ")");
      continue;
    }
    if ((e & xc::kPfnReservedMask) != 0) {
      add_rec(R::kLibxcPage04, rec, at,
              "pfn[" + std::to_string(i) + "] has reserved bits set (" + hex_entry(e) + ")");
    }
    if (is_hvm_ && type != 0 && xc::page_type_has_data(type)) {
      add_rec(R::kLibxcPage10, rec, at,
              "pfn[" + std::to_string(i) + "] is typed as a page table (" + hex(type) +
                  ") in an HVM stream");
    }
    if (check_bound && pfn > max_pfn_) {
      add_rec(R::kLibxcPage09, rec, at,
              "pfn[" + std::to_string(i) + "] " + hex(pfn) + " is beyond max_pfn " + hex(max_pfn_) +
                  " (Xen: \"outside domain maximum\")");
    }
    if (xc::page_type_has_data(type)) {
      ++data_pages;
      pfns_.add(pfn);
    }
    if (check_bound && pfn <= max_pfn_) {
      types_.sent(pfn, type);
    } else if (is_pv_) {
      types_incomplete_ = true;  // Xen refused this record (PAGE-09, ORDER-09)
    }
    if (!s_.pfn_min || pfn < *s_.pfn_min) s_.pfn_min = pfn;
    if (!s_.pfn_max || pfn > *s_.pfn_max) s_.pfn_max = pfn;
    scratch_.push_back(pfn);
  }
  s_.page_entries += count;
  pages_in_period_ += count;
  if (types_known) {
    const std::uint64_t want = pfn_end + std::uint64_t{xc::kPageSize} * data_pages;
    if (want != rec.length) {
      add_record(R::kLibxcPage05, rec,
              std::to_string(data_pages) + " entries carry data and need a body of " +
                  std::to_string(want) + " octets, the body has " + std::to_string(rec.length));
    } else if (check_bound) {
      // The page tables among the pages: judged as their octets arrive.
      pt_active_ = true;
      pt_record_ = rec.index;
      pt_entry_ = 0;
      pt_page_ = 0;
      check_pages(rec);
    }
  }
  std::sort(scratch_.begin(), scratch_.end());
  const auto dup = std::adjacent_find(scratch_.begin(), scratch_.end());
  if (dup != scratch_.end()) {
    const std::uint64_t pfn = *dup;
    std::uint32_t first = 0, second = 0;
    bool found = false;
    for (std::uint32_t i = 0; i < count; ++i) {
      if ((f.u64(8 + 8 * std::size_t{i}) & xc::kPfnMask) != pfn) continue;
      if (found) {
        second = i;
        break;
      }
      first = i;
      found = true;
    }
    add_rec(R::kLibxcPage08, rec, 8 + 8 * std::size_t{second},
            "pfn " + hex(pfn) + " appears twice in this record (pfn[" + std::to_string(first) +
                "] and pfn[" + std::to_string(second) + "])");
  }
}

void Verifier::on_tsc(const RecordView& rec) {
  if (rec.length != 24) {
    add_record(R::kLibxcTsc01, rec,
            "body_length is " + std::to_string(rec.length) + ", expected exactly 24");
    return;
  }
  const Fields f = rec.fields();
  Summary::Tsc t;
  t.mode = f.u32(0);
  t.khz = f.u32(4);
  t.nsec = f.u64(8);
  t.incarnation = f.u32(16);
  s_.tsc = t;
  if (f.u32(20) != 0) {
    add_rec(R::kLibxcTsc02, rec, 20, "reserved field is " + hex(f.u32(20)) + ", expected 0");
  }
  if (t.mode > 2) {
    add_rec(R::kLibxcTsc03, rec, 0,
            "mode " + std::to_string(t.mode) + " is not one of 0-2 (default, always emulate, "
            "never emulate): Xen refuses it");
  }
}

void Verifier::on_cpuid_policy(const RecordView& rec) {
  if (version_ == 2) {
    add_record(R::kLibxcRec10, rec, "X86_CPUID_POLICY in a v2 stream: it is a v3 record");
    return;
  }
  if (rec.length == 0 || rec.length % xc::kCpuidLeafSize != 0) {
    add_record(R::kLibxcPolicy01, rec,
            "body_length " + std::to_string(rec.length) + " is not a non-zero multiple of 24");
    return;
  }
  if (sde_seen_) {
    add_record(R::kLibxcOrder04, rec,
            "X86_CPUID_POLICY after STATIC_DATA_END: Xen stores it and never applies it");
  }
  const Fields f = rec.fields();
  const std::size_t n = rec.length / xc::kCpuidLeafSize;
  s_.cpuid_leaves = static_cast<std::uint32_t>(n);
  scratch_.clear();
  for (std::size_t i = 0; i < n; ++i) {
    scratch_.push_back((std::uint64_t{f.u32(24 * i)} << 32) | f.u32(24 * i + 4));
  }
  std::sort(scratch_.begin(), scratch_.end());
  const auto dup = std::adjacent_find(scratch_.begin(), scratch_.end());
  if (dup != scratch_.end()) {
    std::size_t second = 0, seen = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (((std::uint64_t{f.u32(24 * i)} << 32) | f.u32(24 * i + 4)) == *dup && ++seen == 2) {
        second = i;
        break;
      }
    }
    add_rec(R::kLibxcPolicy04, rec, 24 * second,
            "leaf " + hex(*dup >> 32) + " subleaf " + hex(*dup & 0xffffffffu) + " appears twice");
  }
}

void Verifier::on_msr_policy(const RecordView& rec) {
  if (version_ == 2) {
    add_record(R::kLibxcRec10, rec, "X86_MSR_POLICY in a v2 stream: it is a v3 record");
    return;
  }
  if (rec.length == 0 || rec.length % xc::kMsrEntrySize != 0) {
    add_record(R::kLibxcPolicy02, rec,
            "body_length " + std::to_string(rec.length) + " is not a non-zero multiple of 16");
    return;
  }
  if (sde_seen_) {
    add_record(R::kLibxcOrder04, rec,
            "X86_MSR_POLICY after STATIC_DATA_END: Xen stores it and never applies it");
  }
  const Fields f = rec.fields();
  const std::size_t n = rec.length / xc::kMsrEntrySize;
  s_.msr_entries = static_cast<std::uint32_t>(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (f.u32(16 * i + 4) != 0) {
      add_rec(R::kLibxcPolicy03, rec, 16 * i + 4,
              "msr[" + std::to_string(i) + "] (index " + hex(f.u32(16 * i)) + ") flags are " +
                  hex(f.u32(16 * i + 4)) + ", expected 0");
      break;
    }
  }
}

}  // namespace xenstream::verify::detail
