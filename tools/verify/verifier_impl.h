// The verifier's engine, shared by its layer files: one class, Verifier,
// which verify() and RuleEngine drive record by record (verifier.cpp), with
// its checks in one file per layer of a stream:
//
//   verifier_container.cpp    xl and libvirt headers, the legacy payload
//   verifier_libxl.cpp        the libxl stream: header, records, emulator blobs
//   verifier_libxc.cpp        libxc records of every guest, PAGE_DATA, policies
//   verifier_pv.cpp           x86 PV: layout, p2m, vcpus, page types
//   verifier_hvm.cpp          x86 HVM: context and params
//   verifier_checkpoints.cpp  Remus and COLO checkpoints, per-period checks
//
// Internal to tools/verify; the public interface is verifier.h.
#pragma once

#include "tools/verify/verifier.h"

#include <algorithm>
#include <bitset>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <xenstream/codecs/open_input.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/record_names.h>
#include <xenstream/libstream/stream_cursor.h>
#include "tools/verify/pfn_tracker.h"
#include "tools/verify/pfn_types.h"

namespace xenstream::verify::detail {

namespace xc = format::libxc;
namespace xl = format::libxl;

using R = Rule;

inline constexpr std::uint32_t kMaxVcpus = 4096;
inline constexpr std::size_t kMaxXenstoreListed = 256;

// Param indexes a Xen saver sends, plus 15 (VM86_TSS) from the converter
// (spec/libxc.md §6.9).
inline constexpr std::uint64_t kSaverParams[] = {1, 5, 6, 27, 28, 29, 37, 17, 19, 9, 12, 34, 32, 33, 36, 38, 15};

inline bool deprecated_param(std::uint64_t i) {
  return i == 4 || i == 13 || (i >= 20 && i <= 26) || i == 30;
}

inline bool pv_only(std::uint32_t t) {
  switch (static_cast<xc::RecordType>(t)) {
    case xc::RecordType::kX86PvInfo:
    case xc::RecordType::kX86PvP2mFrames:
    case xc::RecordType::kX86PvVcpuBasic:
    case xc::RecordType::kX86PvVcpuExtended:
    case xc::RecordType::kX86PvVcpuXsave:
    case xc::RecordType::kSharedInfo:
    case xc::RecordType::kX86PvVcpuMsrs:
      return true;
    default:
      return false;
  }
}

inline bool hvm_only(std::uint32_t t) {
  return t == static_cast<std::uint32_t>(xc::RecordType::kHvmContext) ||
         t == static_cast<std::uint32_t>(xc::RecordType::kHvmParams);
}

inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F && c != '"' && c != '\\') {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  return out + "\"";
}

// A PAGE_DATA entry as 16 hex digits: 0x00f0000000000001.
inline std::string hex_entry(std::uint64_t e) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(e));
  return buf;
}

inline std::string hex_octets(Bytes b, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < std::min(n, b.size()); ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(b[i]));
    if (!out.empty()) out += ' ';
    out += buf;
  }
  return out;
}

class Verifier {
 public:
  Verifier(Source* src, const VerifyOptions& options, VerifyResult& out)
      : src_(src), options_(options), out_(out), s_(out.summary),
        pfns_(options.pfn_tracking_cap), types_(options.pfn_tracking_cap),
        max_p2m_entries_(options.pfn_tracking_cap / sizeof(P2mEntry)) {
    s_.pfn_tracking_cap = pfns_.cap_bytes();
  }

  void run();

  // ---- the steps of a walk, for verify() and for RuleEngine
  void check_container(const ContainerInfo& c);
  void begin_walk(const StreamCursor& cur, PayloadKind kind);
  void step(const StreamCursor& cur, const RecordView& rec);
  void check_padding(const RecordView& rec);
  bool skip_pages(StreamCursor& cur, const RecordView& rec);
  // Every data page of a PV guest: the page-table rules read the tables,
  // and any NOTAB page may be the start_info page (LIBXC-VCPU-17).
  bool needs_page(std::uint64_t entry) const {
    const unsigned type = static_cast<unsigned>(entry >> xc::kPfnTypeShift);
    return is_pv_ && xc::page_type_has_data(type);
  }
  // A page of the PAGE_DATA record `head` (count and entries only) read
  // apart from its body (RuleEngine::page), in entry order: judged as
  // check_pages() judges the pages of a whole body.
  void check_page(const RecordView& head, std::uint32_t index, Bytes contents);
  void read_error(const Error& e);
  // Checks the page-table pages of the PAGE_DATA record last stepped that
  // `rec` (the same record, more of its body read) now holds whole.
  void check_pages(const RecordView& rec);
  // One page of PAGE_DATA entry `entry` (its pfn entry `e`), at body offset
  // `page_off` of `rec`: if it is an L1-L4 table, LIBXC-PAGE-11 on its
  // present entries, which populate the pfns they name.
  void check_table_page(const RecordView& rec, std::uint32_t entry, std::uint64_t e, Bytes page,
                        std::size_t page_off);
  void end_walk(const Expected<void>& fin, std::uint64_t bytes);
  void end_walk_unread(std::uint64_t bytes);
  const std::optional<Problem>& first_error() const { return first_error_; }
  enum class Stop : std::uint8_t { kNo, kEnd, kFailover };
  Stop stop() const { return stop_; }
  bool end_implied() const { return end_implied_; }
  template <typename F>
  void with_source(Source* src, F&& f) {
    Source* saved = src_;
    src_ = src;
    f(*this);
    src_ = saved;
  }
  void legacy(const ContainerInfo& c) { legacy_payload(c); }
  void container_failed(const Error& e) {
    auto head = src_->peek(1);
    if (head && head->empty()) {
      add(R::kStream01, 0, "input", "the input is empty");
      out_.complete = false;
      return;
    }
    container_error(e);
  }

 private:
  struct Loc {
    std::uint64_t offset = 0;
    std::uint64_t index = 0;
    std::string name;
  };

  // ---- reporting
  void push(Problem p) {
    const RuleInfo* info = find_rule(p.rule);
    p.severity = info != nullptr ? info->severity : p.severity;
    if (options_.strict && info != nullptr && info->enforcement == Enforcement::kStrict) {
      p.severity = Severity::kError;
    }
    (p.severity == Severity::kError ? out_.errors : out_.warnings)++;
    if (p.severity == Severity::kError && !first_error_) first_error_ = p;
    if (++per_rule_[p.rule] > options_.max_problems_per_rule) {
      ++out_.suppressed[p.rule];
      return;
    }
    out_.problems.push_back(std::move(p));
  }
  void add(Rule r, std::uint64_t offset, std::string where, std::string message) {
    Problem p;
    p.rule = rule_info(r).id;
    p.offset = offset;
    p.where = std::move(where);
    p.message = std::move(message);
    push(std::move(p));
  }
  Problem rec_problem(const RecordView& rec, std::uint64_t offset, std::string message) const {
    Problem p;
    p.offset = offset;
    p.where = where(rec);
    p.record_index = rec.index;
    p.record_type = record_display_name(rec.layer, rec.type);
    p.layer = std::string(layer_name(rec.layer));
    p.message = std::move(message);
    return p;
  }
  // A problem in `rec`'s body at body offset `body_off`.
  void add_rec(Rule r, const RecordView& rec, std::size_t body_off, std::string message) {
    Problem p = rec_problem(rec, rec.body_offset() + body_off, std::move(message));
    p.rule = rule_info(r).id;
    push(std::move(p));
  }
  // A problem with the record as a whole (its type, length or place):
  // located at the record header.
  void add_record(Rule r, const RecordView& rec, std::string message) {
    Problem p = rec_problem(rec, rec.offset, std::move(message));
    p.rule = rule_info(r).id;
    push(std::move(p));
  }
  void add_loc(Rule r, const Loc& at, std::string message) {
    Problem p;
    p.rule = rule_info(r).id;
    p.offset = at.offset;
    p.where = "record #" + std::to_string(at.index) + " " + at.name;
    p.record_index = at.index;
    p.record_type = at.name;
    p.message = std::move(message);
    push(std::move(p));
  }
  void add_findings(const std::vector<blobs::BlobFinding>& findings, const RecordView& rec,
                    std::string_view what) {
    for (const auto& f : findings) {
      Problem p = rec_problem(rec, f.file_offset,
                              std::string(what) + " at blob offset " + hex(f.blob_offset) + ": " +
                                  f.message);
      p.rule = f.rule;
      p.severity = f.severity;
      push(std::move(p));
    }
  }
  static std::string where(const RecordView& rec) {
    return "record #" + std::to_string(rec.index) + " " + record_display_name(rec.layer, rec.type);
  }
  static Loc loc(const RecordView& rec, std::uint64_t offset) {
    return Loc{offset, rec.index, record_display_name(rec.layer, rec.type)};
  }
  void fail(Error e) {
    out_.failure = std::move(e);
    out_.complete = false;
  }

  // ---- phases
  void container_error(const Error& e);
  void check_xl(const ContainerInfo& c);
  void check_libvirt(const ContainerInfo& c);
  void legacy_payload(const ContainerInfo& c);
  void walk(PayloadKind kind);
  void check_libxl_header();
  void note_libxc_headers(const StreamCursor& cur);
  void finish_walk();

  // ---- records
  void on_record(const RecordView& rec);
  void on_libxl(const RecordView& rec);
  void on_emulator(const RecordView& rec);
  // Checks the pairs; returns how many were read.
  std::uint64_t check_xenstore(const RecordView& rec, std::size_t data_off);
  void on_libxc(const RecordView& rec);
  void on_page_data(const RecordView& rec);
  void on_pv_info(const RecordView& rec);
  void on_p2m_frames(const RecordView& rec);
  void on_vcpu(const RecordView& rec);
  void on_vcpu_basic(const RecordView& rec, std::uint32_t id);
  void on_tsc(const RecordView& rec);
  void on_hvm_context(const RecordView& rec);
  void on_hvm_params(const RecordView& rec);
  void on_cpuid_policy(const RecordView& rec);
  void on_msr_policy(const RecordView& rec);
  void on_checkpoint(const RecordView& rec);
  bool need_static_data_end(const RecordView& rec);
  void period_checks(const RecordView& rec, bool first_checkpoint);
  void pv_completion(const RecordView& rec);
  void pv_type_checks(const RecordView& rec);
  // A second libxc image (after a second LIBXC_CONTEXT) starts afresh.
  void reset_libxc_state() {
    sde_seen_ = order01_reported_ = order07_reported_ = order09_reported_ = false;
    pv_info_seen_ = p2m_seen_ = p2m_bound_unknown_ = false;
    width_ = 0;
    max_pfn_ = 0;
    max_frame_.reset();
    basic_seen_.reset();
    basic_refs_.clear();
    types_.clear();
    p2m_entries_.clear();
    p2m_entries_capped_ = false;
    p2m_given_.clear();
    p2m_given_capped_ = false;
    vcpu_refs_.clear();
    start_info_pages_.clear();
    start_info_pages_capped_ = false;
    pt_active_ = false;
    types_incomplete_ = false;
    verify_seen_ = verify_warned_ = pv_completion_done_ = false;
    hvm_context_in_period_ = 0;
    pages_in_period_ = 0;
  }

  std::uint32_t vcpu_limit() const {
    return s_.config && s_.config->max_vcpus ? *s_.config->max_vcpus : kMaxVcpus;
  }
  bool config_says(const char* type) const {
    return s_.config && s_.config->guest_type && *s_.config->guest_type == type;
  }

  Source* src_;  // null under RuleEngine: the caller walks
  std::optional<Problem> first_error_;
  const VerifyOptions& options_;
  VerifyResult& out_;
  Summary& s_;
  std::map<std::string_view, std::uint64_t> per_rule_;
  PfnTracker pfns_;
  std::vector<std::uint64_t> scratch_;
  std::uint64_t next_progress_ = 0;

  // Layer state (mirrors the cursor's).
  bool nested_ = false;
  bool in_libxc_ = false;
  bool end_implied_ = false;  // the input ended where libxl reads an END (STREAM-07)
  bool seen_libxc_context_ = false;
  bool legacy_option_ = false;
  std::uint64_t checked_image_at_ = ~std::uint64_t{0};

  // libxc state.
  std::uint32_t version_ = 3;
  bool is_pv_ = false;
  std::vector<std::byte> head_copy_;  // skip_pages(): the entries of the record
  bool is_hvm_ = false;
  bool sde_seen_ = false;
  bool order01_reported_ = false;
  bool order07_reported_ = false;
  bool order09_reported_ = false;
  bool pv_info_seen_ = false;
  std::uint8_t width_ = 0;  // 4 or 8 once a valid X86_PV_INFO was seen
  bool p2m_seen_ = false;
  bool p2m_bound_unknown_ = false;  // a broken X86_PV_P2M_FRAMES: max_pfn unknown
  std::uint64_t max_pfn_ = 0;
  std::optional<std::pair<std::uint64_t, Loc>> max_frame_;  // largest p2m frame pfn
  std::bitset<kMaxVcpus> basic_seen_;
  std::map<std::uint32_t, std::pair<std::uint64_t, Loc>> basic_refs_;  // vcpu -> largest pfn ref
  bool verify_seen_ = false;
  bool verify_warned_ = false;
  bool pv_completion_done_ = false;

  // PV page types and the p2m frame list, judged at completion as Xen's
  // x86_pv_stream_complete() does (LIBXC-VCPU-14..16, LIBXC-P2M-05..06).
  PfnTypes types_;
  struct P2mEntry {
    std::uint64_t pfn = 0;
    std::uint64_t offset = 0;               // of the entry in the input
    std::uint64_t record = ~std::uint64_t{0};  // index of its record; ~0: never given
  };
  // Indexed by frame index (pfn / fpp); at most max_p2m_entries_ (from the
  // tracking cap), never sized by an untrusted end_pfn alone: beyond the
  // cap the frame list is not judged (p2m_entries_capped_).
  std::size_t max_p2m_entries_;
  std::vector<P2mEntry> p2m_entries_;
  bool p2m_entries_capped_ = false;
  // The frame indices given, as merged half-open ranges (start -> end): one
  // per record at most, so bounded by kMaxP2mRanges, not by end_pfn.
  std::map<std::uint64_t, std::uint64_t> p2m_given_;
  bool p2m_given_capped_ = false;
  static constexpr std::size_t kMaxP2mRanges = 1u << 16;
  // A PV page was sent where Xen refuses it (no bound yet, or beyond
  // max_pfn): Xen stopped there, its page types are unknown, and the
  // completion checks that use them are not judged.
  bool types_incomplete_ = false;
  struct VcpuRefs {
    std::uint64_t record = 0;
    std::uint64_t ctx_offset = 0;  // input offset of the vcpu context
    std::optional<std::pair<std::uint64_t, std::size_t>> start_info;  // pfn, ctx offset
    std::vector<std::pair<std::uint64_t, std::size_t>> gdt;           // at most 14
    std::pair<std::uint64_t, std::size_t> cr3{};
    std::optional<std::pair<std::uint64_t, std::size_t>> user_cr3;
  };
  std::map<std::uint32_t, VcpuRefs> vcpu_refs_;  // the last X86_PV_VCPU_BASIC per vcpu
  // Pages that look like a start_info page (NOTAB, beginning with "xen-"):
  // pfn -> the xenstore and console pfns in its last copy (LIBXC-VCPU-17).
  struct StartInfoPage {
    std::uint64_t store = 0;
    std::uint64_t console = 0;
    std::uint64_t record = 0;  // where the page's last copy was
    std::uint64_t offset = 0;
  };
  std::map<std::uint64_t, StartInfoPage> start_info_pages_;
  bool start_info_pages_capped_ = false;
  static constexpr std::size_t kMaxStartInfoPages = 1024;
  void start_info_fields(const StartInfoPage& page, std::uint64_t pfn, const std::string& who);
  void note_start_info_page(const RecordView& rec, std::uint64_t pfn, unsigned type, Bytes page,
                            std::size_t page_off);
  // Page-table pages of the PAGE_DATA record being read (check_pages).
  bool pt_active_ = false;
  std::uint64_t pt_record_ = 0;
  std::uint32_t pt_entry_ = 0;  // next entry to look at
  std::uint32_t pt_page_ = 0;   // its page's ordinal among the data pages
                                // (check_page(): of the entry last judged)

  // Per period (plain stream, or one checkpoint).
  std::uint32_t hvm_context_in_period_ = 0;
  std::uint32_t emu_context_in_period_ = 0;
  std::uint32_t emu_xenstore_in_period_ = 0;
  std::uint64_t pages_in_period_ = 0;
  bool emulator_context_seen_ = false;

  // Checkpoints.
  std::uint64_t checkpoints_ = 0;
  std::uint64_t committed_ = 0;
  std::uint64_t records_since_commit_ = 0;
  bool in_checkpoint_libxl_ = false;  // after a nested CHECKPOINT, before CHECKPOINT_END
  bool last_was_checkpoint_end_ = false;
  bool gap_open_ = false;
  bool state_in_gap_ = false;
  std::uint64_t gaps_with_state_ = 0;
  std::uint64_t gaps_without_state_ = 0;
  bool ckpt01_reported_ = false;
  bool ckpt05_reported_ = false;
  Stop stop_ = Stop::kNo;  // the restore ends at this record (Remus END, COLO broken channel)

  // The mode decided so far: the option, or under auto what the stream and
  // its container say (kAuto while no checkpoint was seen).
  Mode mode() const {
    if (options_.mode != Mode::kAuto) return options_.mode;
    if (s_.container && s_.container->kind == ContainerKind::kLibvirt) return Mode::kPlain;
    if (gaps_with_state_ > 0) return Mode::kColo;
    if (gaps_without_state_ > 0) return Mode::kRemus;
    return Mode::kAuto;
  }
};

}  // namespace xenstream::verify::detail
