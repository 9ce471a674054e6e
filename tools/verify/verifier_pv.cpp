// streamverify's x86 PV rules: X86_PV_INFO, the p2m frame list, vcpu
// contexts, page-table pages and the page types Xen checks at completion.
#include "tools/verify/verifier_impl.h"

namespace xenstream::verify::detail {

// Xen's x86_pv_localise_page() turns every present entry of a page-table
// page (L1-L4, pinned or not; 512 64-bit entries for both guest widths)
// from a pfn into an mfn as the page arrives: the pfn must be inside the p2m
// (pfn_to_mfn asserts it; without assertions the lookup reads past the
// p2m), and an unpopulated one is populated there and then.
void Verifier::check_pages(const RecordView& rec) {
  if (!pt_active_ || rec.index != pt_record_ || rec.layer != Layer::kLibxc) return;
  const Fields f = rec.fields();
  if (!f.fits(0, 8)) return;  // a reader that moved the pages hands the padding alone
  const std::uint32_t count = f.u32(0);
  const std::size_t entries_end = 8 + 8 * std::size_t{count};
  for (; pt_entry_ < count; ++pt_entry_) {
    const std::uint64_t e = f.u64(8 + 8 * std::size_t{pt_entry_});
    const unsigned type = static_cast<unsigned>(e >> xc::kPfnTypeShift);
    if (!xc::page_type_has_data(type)) continue;
    const std::size_t page_off = entries_end + xc::kPageSize * std::size_t{pt_page_};
    if (!f.fits(page_off, xc::kPageSize)) return;  // not read yet
    ++pt_page_;
    const Bytes page = rec.body.subspan(page_off, xc::kPageSize);
    note_start_info_page(rec, e & xc::kPfnMask, type, page, page_off);
    check_table_page(rec, pt_entry_, e, page, page_off);
  }
  pt_active_ = false;
}

void Verifier::check_page(const RecordView& head, std::uint32_t index, Bytes contents) {
  if (!pt_active_ || head.index != pt_record_ || head.layer != Layer::kLibxc) return;
  const Fields f = head.fields();
  const std::uint32_t count = f.u32(0);
  if (index >= count || !f.fits(8 + 8 * std::size_t{index}, 8)) return;
  // The page's ordinal among the record's data pages, counted on from the
  // entry last judged (pages come in entry order).
  if (index < pt_entry_) {
    pt_entry_ = 0;
    pt_page_ = 0;
  }
  for (; pt_entry_ < index; ++pt_entry_) {
    const unsigned t = static_cast<unsigned>(f.u64(8 + 8 * std::size_t{pt_entry_}) >> xc::kPfnTypeShift);
    if (xc::page_type_has_data(t)) ++pt_page_;
  }
  const std::uint64_t e = f.u64(8 + 8 * std::size_t{index});
  const unsigned type = static_cast<unsigned>(e >> xc::kPfnTypeShift);
  if (!xc::page_type_has_data(type) || contents.size() != xc::kPageSize) return;
  const std::size_t page_off = 8 + 8 * std::size_t{count} + xc::kPageSize * std::size_t{pt_page_};
  note_start_info_page(head, e & xc::kPfnMask, type, contents, page_off);
  check_table_page(head, index, e, contents, page_off);
}

void Verifier::check_table_page(const RecordView& rec, std::uint32_t entry, std::uint64_t e, Bytes page,
                                std::size_t page_off) {
  const unsigned level = static_cast<unsigned>(e >> xc::kPfnTypeShift) & 7;
  if (level < 1 || level > 4 || page.size() != xc::kPageSize) return;
  const Fields f(page, ByteOrder::kLittle, 0);
  for (std::size_t i = 0; i < xc::kPageSize / 8; ++i) {
    const std::uint64_t pte = f.u64(8 * i);
    if ((pte & 1) == 0) continue;  // _PAGE_PRESENT
    const std::uint64_t frame = (pte & 0x000ffffffffff000ull) >> 12;
    if (frame > max_pfn_) {
      add_rec(R::kLibxcPage11, rec, page_off + 8 * i,
              "pfn[" + std::to_string(entry) + "] " + hex(e & xc::kPfnMask) + " is an L" + std::to_string(level) +
                  " table whose entry " + std::to_string(i) + " (" + hex_entry(pte) + ") refers to pfn " +
                  hex(frame) + ", beyond max_pfn " + hex(max_pfn_));
      return;  // one problem per page
    }
    types_.referred(frame);
  }
}

// The start_info page is known only from vcpu 0's context, at the end; a
// page that may be it keeps the two pfns LIBXC-VCPU-17 judges then. Any
// other copy of the pfn replaces what an earlier one said.
void Verifier::note_start_info_page(const RecordView& rec, std::uint64_t pfn, unsigned type, Bytes page,
                                    std::size_t page_off) {
  constexpr std::string_view kMagic = "xen-";
  const bool candidate = type == 0 && page.size() == xc::kPageSize &&
                         std::memcmp(page.data(), kMagic.data(), kMagic.size()) == 0;
  if (!candidate) {
    start_info_pages_.erase(pfn);
    return;
  }
  // struct start_info: magic[32], nr_pages, shared_info, flags, store_mfn,
  // store_evtchn, console.domU.mfn (unsigned longs and xen_pfn_t of the
  // guest's width).
  const Fields f(page, ByteOrder::kLittle, 0);
  const bool w64 = width_ == 8;
  StartInfoPage p;
  p.store = w64 ? f.u64(56) : f.u32(44);
  p.console = w64 ? f.u64(72) : f.u32(52);
  p.record = rec.index;
  p.offset = rec.body_offset() + page_off;
  if (start_info_pages_.size() >= kMaxStartInfoPages && start_info_pages_.count(pfn) == 0) {
    start_info_pages_capped_ = true;
    return;
  }
  start_info_pages_.insert_or_assign(pfn, p);
}

// process_start_info(): the xenstore pfn, then the console pfn, each at
// most max_pfn and populated; Xen stops at the first that is not.
void Verifier::start_info_fields(const StartInfoPage& page, std::uint64_t pfn, const std::string& who) {
  struct Field {
    const char* what;
    std::uint64_t pfn;
    std::size_t offset;  // in the page
  };
  const bool w64 = width_ == 8;
  const Field fields[] = {{"xenstore", page.store, w64 ? 56u : 44u}, {"console", page.console, w64 ? 72u : 52u}};
  for (const Field& field : fields) {
    const Loc at{page.offset + field.offset, page.record, "PAGE_DATA"};
    const std::string named = who + "the start_info page (pfn " + hex(pfn) + ") names " + field.what + " pfn " +
                              hex(field.pfn);
    if (field.pfn > max_pfn_) {
      add_loc(R::kLibxcVcpu17, at, named + ", beyond max_pfn " + hex(max_pfn_));
      return;
    }
    const auto st = types_.get(field.pfn);
    if (st && !st->populated) {
      add_loc(R::kLibxcVcpu17, at, named + ", which was never sent nor referred to by a page table: it is not populated");
      return;
    }
  }
}

void Verifier::on_pv_info(const RecordView& rec) {
  if (pv_info_seen_) {
    add_record(R::kLibxcOrder05, rec, "a second X86_PV_INFO (Xen: \"Already received\")");
    return;
  }
  pv_info_seen_ = true;
  if (rec.length < 8) {
    add_record(R::kLibxcPvinfo01, rec,
            "body_length is " + std::to_string(rec.length) + ", expected at least 8");
    return;
  }
  if (rec.length != 8) {
    add_record(R::kLibxcPvinfo02, rec,
            "body_length is " + std::to_string(rec.length) + ", expected exactly 8");
  }
  const Fields f = rec.fields();
  const std::uint8_t w = f.u8(0), l = f.u8(1);
  if ((w == 4 && l == 3) || (w == 8 && l == 4)) {
    width_ = w;
    s_.pv_info = std::make_pair(w, l);
  } else {
    add_rec(R::kLibxcPvinfo03, rec, 0,
            "guest_width " + std::to_string(w) + " with pt_levels " + std::to_string(l) +
                ": Xen accepts only (4, 3) and (8, 4)");
  }
  for (std::size_t i = 2; i < 8; ++i) {
    if (f.u8(i) != 0) {
      add_rec(R::kLibxcPvinfo04, rec, i, "reserved octet " + std::to_string(i) + " is " + hex(f.u8(i)));
      break;
    }
  }
  if (sde_seen_) {
    add_record(R::kLibxcOrder06, rec, "X86_PV_INFO after STATIC_DATA_END: it is static data");
  }
}

void Verifier::on_p2m_frames(const RecordView& rec) {
  need_static_data_end(rec);
  // From here on pages may come; when this record is broken the bound on
  // pfns is unknown, and the checks that need it are skipped.
  const bool first = !p2m_seen_;
  p2m_seen_ = true;
  auto broken = [&] {
    if (first) p2m_bound_unknown_ = true;
  };
  if (!pv_info_seen_) {
    order07_reported_ = true;
    broken();
    add_record(R::kLibxcOrder07, rec, "X86_PV_P2M_FRAMES before X86_PV_INFO");
    return;
  }
  if (rec.length < 8) {
    broken();
    add_record(R::kLibxcP2m01, rec,
            "body_length is " + std::to_string(rec.length) + ", expected at least 8");
    return;
  }
  const Fields f = rec.fields();
  const std::uint32_t start = f.u32(0), end = f.u32(4);
  if (start > end) {
    broken();
    add_rec(R::kLibxcP2m02, rec, 0, "start_pfn " + hex(start) + " is above end_pfn " + hex(end));
    return;
  }
  if (width_ != 0) {
    const std::uint64_t fpp = xc::kPageSize / width_;
    const std::uint64_t k = end / fpp - start / fpp + 1;
    if (rec.length != 8 + 8 * k) {
      broken();
      add_record(R::kLibxcP2m03, rec,
              "pfns [" + hex(start) + ", " + hex(end) + "] need " + std::to_string(k) +
                  " frames, a body of " + std::to_string(8 + 8 * k) + " octets; the body has " +
                  std::to_string(rec.length));
      return;
    }
  }
  max_pfn_ = std::max<std::uint64_t>(max_pfn_, end);
  s_.max_pfn = max_pfn_;
  // The frame list as Xen keeps it: entry start/fpp + i, the last record
  // giving an index wins.
  if (width_ != 0 && !p2m_given_capped_) {
    const std::uint64_t fpp = xc::kPageSize / width_;
    std::uint64_t b = start / fpp, e = b + (rec.length - 8) / 8;
    auto it = p2m_given_.upper_bound(b);
    if (it != p2m_given_.begin() && std::prev(it)->second >= b) --it;
    while (it != p2m_given_.end() && it->first <= e) {
      b = std::min(b, it->first);
      e = std::max(e, it->second);
      it = p2m_given_.erase(it);
    }
    p2m_given_.emplace(b, e);
    if (p2m_given_.size() > kMaxP2mRanges) p2m_given_capped_ = true;
  }
  if (width_ != 0 && !p2m_entries_capped_) {
    const std::uint64_t fpp = xc::kPageSize / width_;
    const std::uint64_t first_index = start / fpp;
    const std::uint64_t k = (rec.length - 8) / 8;
    if (first_index + k > max_p2m_entries_) {
      p2m_entries_capped_ = true;
      p2m_entries_.clear();
      p2m_entries_.shrink_to_fit();
    } else {
      if (p2m_entries_.size() < first_index + k) p2m_entries_.resize(first_index + k);
      for (std::uint64_t i = 0; i < k; ++i) {
        P2mEntry& pe = p2m_entries_[first_index + i];
        pe.pfn = f.u64(8 + 8 * i);
        pe.offset = rec.body_offset() + 8 + 8 * i;
        pe.record = rec.index;
      }
    }
  }
  for (std::size_t i = 8; i + 8 <= rec.length; i += 8) {
    const std::uint64_t frame = f.u64(i);
    if (!max_frame_ || frame > max_frame_->first) {
      max_frame_ = std::make_pair(frame, loc(rec, rec.body_offset() + i));
    }
  }
}

void Verifier::on_vcpu(const RecordView& rec) {
  if (rec.length < 8) {
    add_record(R::kLibxcVcpu01, rec,
            "body_length is " + std::to_string(rec.length) + ", expected at least 8");
    return;
  }
  const Fields f = rec.fields();
  const std::uint32_t id = f.u32(0);
  const std::size_t n = rec.length - 8;
  if (f.u32(4) != 0) {
    add_rec(R::kLibxcVcpu03, rec, 4, "reserved field is " + hex(f.u32(4)) + ", expected 0");
  }
  if (n == 0) {
    add_record(R::kLibxcVcpu04, rec,
            "vcpu " + std::to_string(id) + ": empty blob (Xen 4.6-4.8 erratum), ignored");
    return;
  }
  if (id >= vcpu_limit()) {
    add_rec(R::kLibxcVcpu02, rec, 0,
            "vcpu_id " + std::to_string(id) + " is not below the vcpu count " +
                std::to_string(vcpu_limit()) +
                (s_.config && s_.config->max_vcpus ? " (from the config)" : " (project cap)"));
    return;
  }
  if (rec.type == static_cast<std::uint32_t>(xc::RecordType::kX86PvVcpuBasic)) basic_seen_.set(id);
  if (!pv_info_seen_ || width_ == 0) {
    if (!pv_info_seen_) {
      add_record(R::kLibxcOrder08, rec,
              "a vcpu record before X86_PV_INFO: its size cannot be judged without the guest width");
    }
    return;
  }
  const Fields blob = f.tail(8);
  switch (static_cast<xc::RecordType>(rec.type)) {
    case xc::RecordType::kX86PvVcpuBasic: {
      const std::size_t want = width_ == 8 ? xc::kVcpuBasicSize64 : xc::kVcpuBasicSize32;
      if (n != want) {
        add_rec(R::kLibxcVcpu05, rec, 8,
                "vcpu " + std::to_string(id) + ": context of " + std::to_string(n) +
                    " octets, a " + std::to_string(width_ * 8) + "-bit guest's is " +
                    std::to_string(want));
        return;
      }
      on_vcpu_basic(rec, id);
      return;
    }
    case xc::RecordType::kX86PvVcpuExtended:
      if (n > xc::kVcpuExtendedMax) {
        add_rec(R::kLibxcVcpu06, rec, 8,
                "vcpu " + std::to_string(id) + ": extended context of " + std::to_string(n) +
                    " octets, at most 128 allowed");
        return;
      }
      if (n >= 8 && (blob.u32(0) != id || blob.u32(4) > n)) {
        add_rec(R::kLibxcVcpu10, rec, 8,
                "vcpu " + std::to_string(id) + ": the embedded context says vcpu " +
                    std::to_string(blob.u32(0)) + ", size " + std::to_string(blob.u32(4)) +
                    " (blob holds " + std::to_string(n) + " octets)");
      }
      return;
    case xc::RecordType::kX86PvVcpuXsave:
      if (n < xc::kVcpuXsaveMin) {
        add_rec(R::kLibxcVcpu07, rec, 8,
                "vcpu " + std::to_string(id) + ": xsave blob of " + std::to_string(n) +
                    " octets, at least 16 needed");
        return;
      }
      if (n < 16 + 576) {
        add_rec(R::kLibxcVcpu11, rec, 8,
                "vcpu " + std::to_string(id) + ": xsave blob of " + std::to_string(n) +
                    " octets is shorter than xcr0, xcr0_accum and the 576-octet XSAVE legacy area "
                    "and header (592)");
      }
      return;
    case xc::RecordType::kX86PvVcpuMsrs: {
      if (n % 16 != 0) {
        add_rec(R::kLibxcVcpu08, rec, 8,
                "vcpu " + std::to_string(id) + ": msr blob of " + std::to_string(n) +
                    " octets is not a multiple of 16");
        return;
      }
      for (std::size_t i = 0; i < n / 16; ++i) {
        if (blob.u32(16 * i + 4) != 0) {
          add_rec(R::kLibxcVcpu09, rec, 8 + 16 * i + 4,
                  "vcpu " + std::to_string(id) + ": msr[" + std::to_string(i) + "] (index " +
                      hex(blob.u32(16 * i)) + ") reserved field is " + hex(blob.u32(16 * i + 4)));
          break;
        }
      }
      return;
    }
    default:
      return;
  }
}

void Verifier::on_vcpu_basic(const RecordView& rec, std::uint32_t id) {
  // Field offsets in vcpu_guest_context (spec/libxc.md §6.5).
  const Fields ctx = rec.fields().tail(8);
  const bool w64 = width_ == 8;
  auto ulong = [&](std::size_t off) -> std::uint64_t { return w64 ? ctx.u64(off) : ctx.u32(off); };
  const std::size_t gdt_frames_off = w64 ? 4832 : 2640;
  const std::size_t gdt_ents_off = w64 ? 4960 : 2704;
  const std::size_t cr3_off = w64 ? 5008 : 2728;
  const std::size_t step = w64 ? 8 : 4;
  if (std::find(s_.pv_vcpus.begin(), s_.pv_vcpus.end(), id) == s_.pv_vcpus.end()) {
    s_.pv_vcpus.insert(std::upper_bound(s_.pv_vcpus.begin(), s_.pv_vcpus.end(), id), id);
  }
  std::optional<std::pair<std::uint64_t, Loc>> worst;
  auto ref = [&](std::uint64_t pfn, std::size_t off) {
    if (!worst || pfn > worst->first) worst = std::make_pair(pfn, loc(rec, rec.body_offset() + 8 + off));
  };
  VcpuRefs refs;
  refs.record = rec.index;
  refs.ctx_offset = rec.body_offset() + 8;
  const std::uint64_t gdt_ents = ulong(gdt_ents_off);
  if (gdt_ents > 7168) {
    add_rec(R::kLibxcVcpu12, rec, 8 + gdt_ents_off,
            "vcpu " + std::to_string(id) + ": gdt_ents " + std::to_string(gdt_ents) +
                " exceeds 7168 (FIRST_RESERVED_GDT_ENTRY)");
  } else {
    const std::uint64_t frames = (gdt_ents + 511) / 512;
    for (std::uint64_t i = 0; i < frames; ++i) {
      ref(ulong(gdt_frames_off + step * i), gdt_frames_off + step * i);
      refs.gdt.emplace_back(ulong(gdt_frames_off + step * i), gdt_frames_off + step * i);
    }
  }
  if (id == 0) {
    ref(ulong(w64 ? 616 : 524), w64 ? 616 : 524);
    refs.start_info = std::make_pair(ulong(w64 ? 616 : 524), std::size_t{w64 ? 616u : 524u});
  }
  if (w64) {
    ref(ctx.u64(cr3_off) >> 12, cr3_off);
    refs.cr3 = {ctx.u64(cr3_off) >> 12, cr3_off};
    const std::uint64_t cr1 = ctx.u64(4992);
    if ((cr1 & 1) != 0) {
      ref(cr1 >> 12, 4992);
      refs.user_cr3 = std::make_pair(cr1 >> 12, std::size_t{4992});
    }
  } else {
    const std::uint32_t cr3 = ctx.u32(cr3_off);
    ref(((cr3 >> 12) | (cr3 << 20)) & 0xffffffffu, cr3_off);
    refs.cr3 = {((cr3 >> 12) | (cr3 << 20)) & 0xffffffffu, cr3_off};
  }
  vcpu_refs_.insert_or_assign(id, std::move(refs));
  if (worst) {
    basic_refs_.insert_or_assign(id, *worst);
  } else {
    basic_refs_.erase(id);
  }
}

void Verifier::pv_completion(const RecordView& rec) {
  if (pv_completion_done_) return;
  pv_completion_done_ = true;
  if ((!pv_info_seen_ || !p2m_seen_) && !order07_reported_ && !order09_reported_) {
    add_record(R::kLibxcOrder13, rec,
            std::string("the PV stream has no ") +
                (!pv_info_seen_ ? (!p2m_seen_ ? "X86_PV_INFO and no X86_PV_P2M_FRAMES" : "X86_PV_INFO")
                                : "X86_PV_P2M_FRAMES"));
  }
  if (!basic_seen_.test(0)) {
    add_record(R::kLibxcOrder12, rec, "vcpu 0 has no X86_PV_VCPU_BASIC record");
  }
  if (!p2m_seen_ || p2m_bound_unknown_) return;
  if (max_frame_ && max_frame_->first > max_pfn_) {
    add_loc(R::kLibxcP2m04, max_frame_->second,
            "p2m frame pfn " + hex(max_frame_->first) + " is beyond max_pfn " + hex(max_pfn_));
  }
  for (const auto& [vcpu, r] : basic_refs_) {
    if (r.first > max_pfn_) {
      add_loc(R::kLibxcVcpu13, r.second,
              "vcpu " + std::to_string(vcpu) + ": the context refers to pfn " + hex(r.first) +
                  ", beyond max_pfn " + hex(max_pfn_));
    }
  }
  pv_type_checks(rec);
}

// What Xen's x86_pv_stream_complete() checks against its pfn types and p2m:
// process_start_info() and process_vcpu_basic() (update_vcpu_context) for
// every vcpu context, then update_guest_p2m() for the p2m frame list. A pfn
// beyond max_pfn is LIBXC-VCPU-13 / LIBXC-P2M-04 and not judged again; a pfn
// the tracker could not follow (its cap) is not judged at all.
void Verifier::pv_type_checks(const RecordView& rec) {
  if (width_ == 0) return;  // no valid X86_PV_INFO: the levels are unknown
  if (types_incomplete_) return;
  const unsigned levels = width_ == 8 ? 4 : 3;
  const std::string_view kVcpuRec = "X86_PV_VCPU_BASIC";
  auto type_text = [](unsigned t) {
    return t == 0 ? std::string("NOTAB or never sent") : "type " + hex(t);
  };
  auto state = [&](std::uint64_t pfn) -> std::optional<PfnTypes::State> {
    if (pfn > max_pfn_) return std::nullopt;
    return types_.get(pfn);
  };
  for (const auto& kv : vcpu_refs_) {
    // Not a structured binding: clang 14 cannot capture one in a lambda.
    const auto vcpu = kv.first;
    const auto& r = kv.second;
    const Loc at{0, r.record, std::string(kVcpuRec)};
    auto at_field = [&](std::size_t off) {
      Loc l = at;
      l.offset = r.ctx_offset + off;
      return l;
    };
    const std::string who = "vcpu " + std::to_string(vcpu) + ": ";
    if (r.start_info) {
      const auto [pfn, off] = *r.start_info;
      if (auto st = state(pfn)) {
        if (st->type != 0) {
          add_loc(R::kLibxcVcpu14, at_field(off),
                  who + "the start_info pfn " + hex(pfn) + " was last sent as " +
                      type_text(st->type) + ", Xen wants NOTAB (\"Start Info pfn has bad type\")");
        } else if (!st->populated) {
          add_loc(R::kLibxcVcpu14, at_field(off),
                  who + "the start_info pfn " + hex(pfn) +
                      " was never sent nor referred to by a page table: it is not populated "
                      "(Xen: \"Start Info has bad mfn\")");
        } else if (auto si = start_info_pages_.find(pfn); si != start_info_pages_.end()) {
          start_info_fields(si->second, pfn, who);
        }
      }
    }
    for (std::size_t i = 0; i < r.gdt.size(); ++i) {
      const auto [pfn, off] = r.gdt[i];
      auto st = state(pfn);
      if (!st) continue;
      if (st->type != 0 || !st->populated) {
        add_loc(R::kLibxcVcpu15, at_field(off),
                who + "GDT frame " + std::to_string(i) + " (pfn " + hex(pfn) + ") " +
                    (st->type != 0 ? "was last sent as " + type_text(st->type) +
                                         ", Xen wants NOTAB"
                                   : std::string("is not populated (never sent nor referred to "
                                                 "by a page table)")));
        break;
      }
    }
    auto check_table = [&](const std::pair<std::uint64_t, std::size_t>& ref, const char* what) {
      const auto [pfn, off] = ref;
      auto st = state(pfn);
      if (!st) return;
      if ((st->type & 7) != levels || !st->populated) {
        add_loc(R::kLibxcVcpu16, at_field(off),
                who + what + " (pfn " + hex(pfn) + ") " +
                    (st->type == 0 && !st->populated
                         ? std::string("was never sent nor referred to by a page table")
                         : "was last sent as " + type_text(st->type)) +
                    ", Xen wants an L" + std::to_string(levels) + " table (pinned or not)");
      }
    };
    check_table(r.cr3, "cr3");
    if (r.user_cr3) check_table(*r.user_cr3, "user cr3 (ctrlreg[1])");
  }
  const std::uint64_t fpp = xc::kPageSize / width_;
  const std::uint64_t frames = max_pfn_ / fpp + 1;
  if (!p2m_given_capped_) {
    std::uint64_t next = 0;  // the first index not yet known to be given
    auto gap = [&](std::uint64_t i, std::uint64_t j) {
      add_record(R::kLibxcP2m05, rec,
                 "p2m frame indices [" + std::to_string(i) + ", " + std::to_string(j) + ") of the " +
                     std::to_string(frames) + " that max_pfn " + hex(max_pfn_) +
                     " needs are given by no X86_PV_P2M_FRAMES record (Xen: \"pfn for "
                     "p2m_frame_list out of range\")");
    };
    for (const auto& [b, e] : p2m_given_) {
      if (next >= frames) break;
      if (b > next) gap(next, std::min(b, frames));
      next = std::max(next, e);
    }
    if (next < frames) gap(next, frames);
  }
  if (p2m_entries_capped_) return;
  const std::string_view kP2mRec = "X86_PV_P2M_FRAMES";
  for (std::uint64_t i = 0; i < frames && i < p2m_entries_.size(); ++i) {
    const P2mEntry& pe = p2m_entries_[i];
    if (pe.record == ~std::uint64_t{0}) continue;
    auto st = state(pe.pfn);
    if (st && (st->type != 0 || !st->populated)) {
      add_loc(R::kLibxcP2m06, Loc{pe.offset, pe.record, std::string(kP2mRec)},
              "p2m frame " + std::to_string(i) + " (pfn " + hex(pe.pfn) + ") " +
                  (st->type != 0 ? "was last sent as " + type_text(st->type) + ", Xen wants NOTAB"
                                 : std::string("is not populated (never sent nor referred to by a "
                                               "page table)")));
    }
  }
}

}  // namespace xenstream::verify::detail
