#include "tools/restore/restore_driver.h"

#include <sys/wait.h>

#include <algorithm>
#include <map>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/stream_cursor.h>
#include "tools/restore/emulator_replay.h"
#include "tools/restore/process.h"

namespace xenstream::restore {

namespace xc = format::libxc;
namespace xl = format::libxl;
using Severity = verify::Severity;

int exit_status(RestoreStatus status) {
  switch (status) {
    case RestoreStatus::kComplete: return 0;
    case RestoreStatus::kInvalid: return 1;
    case RestoreStatus::kIoError: return 2;
    case RestoreStatus::kFailover: return 3;
    case RestoreStatus::kReplayFailed: return 4;
  }
  return 2;
}

std::string_view status_name(RestoreStatus status) {
  switch (status) {
    case RestoreStatus::kComplete: return "complete";
    case RestoreStatus::kInvalid: return "invalid";
    case RestoreStatus::kIoError: return "io-error";
    case RestoreStatus::kFailover: return "failover";
    case RestoreStatus::kReplayFailed: return "replay-failed";
  }
  return "unknown";
}

namespace {

// A record is read first with this much of its body: the count and entries
// of a PAGE_DATA batch of 1024 pages (Xen's largest), or all of any small
// record.
constexpr std::size_t kHeadOctets = 8 + 8 * 1024;
// Pages applied per slice of a PAGE_DATA record: 256 KiB, which stays in a
// core's cache between the read from the source and the write to the backend.
constexpr std::size_t kSlicePages = 64;

bool is_page_data(const RecordView& rec) {
  return rec.layer == Layer::kLibxc && rec.type == static_cast<std::uint32_t>(xc::RecordType::kPageData);
}

// Errors from handle() with code kIo or kUsage are the backend's (the disk
// failed); every other code means the stream asked for something wrong.
bool is_backend_fault(const Error& e) { return e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage; }

class Driver {
 public:
  Driver(Source& src, const ContainerInfo& container, Backend& backend, const RestoreOptions& o)
      : src_(src), container_(container), be_(backend), o_(o), cur_(src, container.payload),
        engine_(o.rules) {}

  RestoreReport run();

 private:
  Expected<void> handle(const RecordView& rec);
  Expected<void> handle_libxc(const RecordView& rec);
  Expected<void> page_data(RecordView rec);
  Expected<void> page_data_moved(const RecordView& rec);
  std::optional<Error> finish_judged_head(const RecordView& rec);
  std::optional<Error> cut_inside(const RecordView& rec);
  Error cut_within(const RecordView& rec, Error e, std::size_t wanted);
  Expected<void> handle_libxl(const RecordView& rec);
  Expected<void> start_domain();
  Expected<void> commit_checkpoint();
  Expected<void> require(bool hvm, const RecordView& rec);
  void skip(const RecordView& rec);

  RestoreReport stream_broke(Error e);
  RestoreReport read_failed(Error e);
  // `code`: the cursor's, when a read failure broke the rule.
  RestoreReport rule_broke(ErrorCode code = ErrorCode::kMalformed);
  void collect_problems();
  RestoreReport backend_failed(Error e);
  // walk_ended: the rules already saw the end of input (read_error).
  RestoreReport completed(bool walk_ended = false);
  void replay();
  void finish(Outcome outcome, std::optional<Error> reason);
  void report_progress(bool done);
  StreamFacts facts();

  Source& src_;
  const ContainerInfo& container_;
  Backend& be_;
  const RestoreOptions& o_;
  StreamCursor cur_;
  verify::RuleEngine engine_;
  RestoreReport report_;
  StreamFacts facts_;
  std::map<std::pair<Layer, std::uint32_t>, std::uint64_t> skipped_;
  std::optional<DomainHeaderInfo> domain_;
  bool saw_libxc_context_ = false;
  bool in_checkpoint_ = false;         // libxc CHECKPOINT seen, CHECKPOINT_END not yet
  bool after_checkpoint_end_ = false;  // where COLO's CHECKPOINT_STATE goes
  bool verify_ = false;
  // The input moves page data without a copy in user space (a pipe):
  // PAGE_DATA pages go from it straight to the backend (page_data_moved).
  bool direct_ = false;
  std::vector<std::byte> head_copy_;  // count and entries of that record
  bool saw_pv_info_ = false;
  bool saw_static_data_end_ = false;
  std::uint64_t commits_ = 0;
  std::optional<Error> stop_;          // the hook failed after a commit
};

StreamFacts Driver::facts() {
  StreamFacts f = facts_;
  f.stream_offset = cur_.position();
  for (const auto& [key, count] : skipped_) f.skipped.push_back({key.first, key.second, count});
  return f;
}

void Driver::report_progress(bool done) {
  if (!o_.progress) return;
  Progress p;
  p.bytes = cur_.position();
  p.size_hint = src_.size_hint();
  p.pages = report_.pages;
  p.checkpoints = report_.checkpoints;
  p.done = done;
  o_.progress(p);
}

RestoreReport Driver::run() {
  // The rules run on everything before it is applied (tools/verify): the
  // first error-severity problem stops the restore.
  engine_.container(container_);
  if (engine_.broken()) return rule_broke();
  if (auto st = cur_.start(); !st) return read_failed(std::move(st).error());
  engine_.started(cur_, container_.payload);
  if (engine_.broken()) return rule_broke();
  direct_ = src_.moves_directly();
  // Read no further than asked: page data is moved on from the input, not
  // through the window. A record is read first with its count only.
  if (direct_) src_.set_read_ahead(false);
  while (!cur_.done()) {
    auto rec = cur_.next_head(direct_ ? 8 : kHeadOctets);
    if (!rec) return read_failed(std::move(rec).error());
    if (!rec->complete()) {
      if (!is_page_data(*rec)) {
        rec = cur_.extend(RecordReader::kWholeBody);
      } else if (rec->body.size() >= 8) {
        // The rules need the count and every entry (not the pages).
        const std::uint64_t count = rec->fields().u32(0);
        const std::uint64_t entries_end = std::min<std::uint64_t>(8 + 8 * count, rec->length);
        if (rec->body.size() < entries_end) rec = cur_.extend(static_cast<std::size_t>(entries_end));
      }
      if (!rec) return read_failed(std::move(rec).error());
    }
    if (engine_.record(cur_, *rec)) {
      // From a pipe a PAGE_DATA head is judged before the rest of the record
      // arrives. Xen reads a record whole before it looks at it, so after a
      // commit a record the input ends inside is a failover (as the cursor
      // finds it from memory), whatever its head breaks.
      if (!rec->complete()) {
        if (auto cut = finish_judged_head(*rec); cut && commits_ > 0) return read_failed(std::move(*cut));
      }
      return rule_broke();
    }
    if (engine_.fails_over_here()) {
      // A COLO secondary reads this CHECKPOINT_STATE as a broken channel.
      return stream_broke(rec->error_at(0, "CHECKPOINT_STATE id " + hex(rec->fields().u32(0)) +
                                               " has bit 31 set: a COLO secondary takes it for a "
                                               "broken channel and fails over"));
    }
    if (auto r = handle(*rec); !r) {
      Error e = std::move(r).error();
      // PAGE_DATA from a pipe is judged and applied as it arrives. After a
      // commit, a record the input ends inside is a failover whatever was
      // found in it first (Xen reads a record whole before it acts on it).
      if (commits_ > 0 && !rec->complete() && e.code != ErrorCode::kTruncated && e.code != ErrorCode::kIo) {
        if (auto cut = cut_inside(*rec)) return read_failed(std::move(*cut));
      }
      // A record cut short found while its body was read on: as when the
      // cursor finds it.
      if (e.code == ErrorCode::kTruncated) return read_failed(std::move(e));
      if (engine_.broken()) return rule_broke();  // PAGE_DATA padding, checked last
      return is_backend_fault(e) ? backend_failed(std::move(e)) : stream_broke(std::move(e));
    }
    if (engine_.broken()) return rule_broke();
    if (stop_) {
      // The hook refused the checkpoint just committed: stop there.
      report_.bytes = cur_.position();
      report_.status = RestoreStatus::kFailover;
      report_.error = stop_;
      collect_problems();
      finish(Outcome::kFailover, stop_);
      report_progress(true);
      return report_;
    }
    report_progress(false);
    if (engine_.ends_here()) break;  // a Remus secondary stops at the libxc END
  }
  return completed();
}

void Driver::collect_problems() {
  const verify::VerifyResult& r = engine_.result();
  report_.problems = r.problems;
  std::vector<std::string> rules;
  for (const auto& p : r.problems) {
    if (p.severity != Severity::kWarning) continue;
    std::string line = p.format();
    rules.push_back(line.substr(std::string_view("warning: ").size()));
  }
  for (const auto& [rule, n] : r.suppressed) {
    rules.push_back("(" + std::to_string(n) + " more " + std::string(rule) + " problems not listed)");
  }
  report_.warnings.insert(report_.warnings.begin(), rules.begin(), rules.end());
}

// The stream broke an error-severity rule. Before the first commit nothing
// is kept; after one, DIR keeps the last committed checkpoint and says why
// the restore stopped. Either way the stream is bad (exit 1), not a failover.
RestoreReport Driver::rule_broke(ErrorCode code) {
  const verify::Problem& p = *engine_.first_error();
  report_.bytes = cur_.position();
  report_.status = RestoreStatus::kInvalid;
  report_.rule = p;
  Error e = make_error(code, p.offset, p.where + ": " + p.message + " [" + std::string(p.rule) + "]");
  report_.error = e;
  collect_problems();
  if (commits_ == 0) {
    be_.abandon();
    return report_;
  }
  FinishInfo fi;
  fi.outcome = Outcome::kRejected;
  fi.checkpoints = report_.checkpoints;
  fi.reason = e;
  fi.rule = RuleBreak{std::string(p.rule), p.offset, p.where, p.message};
  fi.facts = facts();
  fi.warnings = report_.warnings;
  if (auto r = be_.finish(fi); !r) {
    report_.warnings.push_back("the restore stopped because: " + e.describe());
    report_.status = RestoreStatus::kIoError;
    report_.error = std::move(r).error();
  }
  report_progress(true);
  return report_;
}

// The cursor could not read on: the stream stopped (EOF, truncation, a read
// error, an over-long record header). After a commit that is Xen's failover.
RestoreReport Driver::read_failed(Error e) {
  engine_.read_error(e);
  // The input ended right after the libxc stream, without the libxl END:
  // Xen's libxl reads that as END, and so do we (STREAM-07, a warning).
  if (engine_.end_implied() && !engine_.broken()) return completed(/*walk_ended=*/true);
  if (commits_ == 0 && engine_.broken() && e.code != ErrorCode::kIo && e.code != ErrorCode::kUsage) {
    return rule_broke(e.code);
  }
  return stream_broke(std::move(e));
}

// ---------------------------------------------------------------------------
// Records

Expected<void> Driver::start_domain() {
  const ImageHeaderInfo& ih = *cur_.libxc_image();
  const DomainHeaderInfo& dh = *cur_.libxc_domain();
  if (ih.version != xc::kVersion2 && ih.version != xc::kVersion3) {
    return make_error(ErrorCode::kUnsupported, ih.offset + 12,
                      "libxc image version " + std::to_string(ih.version) +
                          ": Xen restores versions 2 and 3 only");
  }
  if (!dh.is_pv() && !dh.is_hvm()) {
    return make_error(ErrorCode::kUnsupported, dh.offset,
                      "libxc domain type " + hex(dh.type) + ": only x86 PV (1) and HVM (2) exist");
  }
  if (dh.page_shift != xc::kPageShiftX86) {
    return make_error(ErrorCode::kUnsupported, dh.offset + 4,
                      "libxc domain header: page_shift " + std::to_string(dh.page_shift) +
                          ", Xen restores 12 (4 KiB pages) only");
  }
  domain_ = dh;
  DomainInfo info;
  info.container = container_;
  info.libxl = cur_.libxl_header();
  info.image = ih;
  info.domain = dh;
  info.domid = o_.domid;
  info.compressed = o_.compressed;
  return be_.start(info);
}

Expected<void> Driver::require(bool hvm, const RecordView& rec) {
  if (domain_->is_hvm() == hvm) return {};
  return rec.error_at(0, std::string("a ") + (hvm ? "HVM" : "PV") + " record in " +
                             (hvm ? "a PV" : "an HVM") + " stream (Xen refuses it)",
                      ErrorCode::kMalformed);
}

void Driver::skip(const RecordView& rec) { ++skipped_[{rec.layer, rec.type}]; }

Expected<void> Driver::handle(const RecordView& rec) {
  if (rec.layer == Layer::kLibxc) {
    if (!domain_) XS_TRY(start_domain());
    after_checkpoint_end_ = false;
    return handle_libxc(rec);
  }
  return handle_libxl(rec);
}

// PAGE_DATA arrives as a head holding at least the entries of a full batch;
// its pages are pulled and applied a slice at a time, each slice written out
// while its octets are still in the CPU's caches (a whole 4 MiB batch read
// first and written after would have left them). The entries are checked
// whole before any page is applied. A record cut short may leave some of its
// pages applied; they belong to a checkpoint that never commits.
Expected<void> Driver::page_data(RecordView rec) {
  const bool was_complete = rec.complete();  // then the rules saw its padding
  if (!rec.complete()) {
    const std::uint64_t count = rec.fields().u32(0);  // the head holds >= 8 octets
    const std::uint64_t entries_end = std::min<std::uint64_t>(8 + 8 * count, rec.length);
    if (rec.body.size() < entries_end) {
      auto more = cur_.extend(static_cast<std::size_t>(entries_end));
      if (!more) return std::move(more).error();
      rec = *more;
    }
  }
  auto v = decode_page_data(rec);
  if (!v) return std::move(v).error();
  for (std::uint32_t i = 0; i < v->count; ++i) {
    if (v->pfn(i) > o_.limits.max_pfn) {
      return rec.error_at(8 + 8 * std::size_t{i},
                          "pfn[" + std::to_string(i) + "] " + hex(v->pfn(i)) +
                              " is above the highest pfn accepted, " + hex(o_.limits.max_pfn),
                          ErrorCode::kLimit);
    }
  }
  if (direct_ && !verify_ && !rec.complete() && v->data_pages > 0) return page_data_moved(rec);
  if (verify_) {
    if (!rec.complete()) {
      auto whole = cur_.extend(RecordReader::kWholeBody);
      if (!whole) return std::move(whole).error();
      rec = *whole;
      v = decode_page_data(rec);
      if (!v) return std::move(v).error();
    }
    auto m = be_.verify_pages(*v);
    if (!m) return std::move(m).error();
    facts_.verify_pages += v->data_pages;
    facts_.verify_mismatches += *m;
    if (!was_complete) engine_.padding(rec);
    return {};
  }
  const std::size_t entries_end = 8 + 8 * std::size_t{v->count};
  const std::uint32_t count = v->count;
  const std::uint32_t data_pages = v->data_pages;
  std::uint32_t first = 0;
  std::size_t pages_done = 0;
  while (first < count) {
    std::uint32_t last = first;
    std::size_t pages = 0;
    while (last < count && pages < kSlicePages) {
      if (xc::page_type_has_data(v->type(last))) ++pages;
      ++last;
    }
    const std::size_t need = entries_end + xc::kPageSize * (pages_done + pages);
    if (rec.body.size() < need) {
      auto more = cur_.extend(need);  // moves the buffer: decode the views again
      if (!more) return std::move(more).error();
      rec = *more;
      v = decode_page_data(rec);
      if (!v) return std::move(v).error();
    }
    PageDataView slice;
    slice.count = last - first;
    slice.reserved = v->reserved;
    slice.entries = v->entries.sub(8 * std::size_t{first}, 8 * std::size_t{slice.count});
    slice.pages = v->pages.subspan(xc::kPageSize * pages_done, xc::kPageSize * pages);
    slice.data_pages = static_cast<std::uint32_t>(pages);
    // The page tables among these pages are judged before they are applied.
    if (engine_.pages(rec)) {
      return rec.error_at(entries_end + xc::kPageSize * pages_done,
                          "a page of this record breaks a rule");
    }
    XS_TRY(be_.apply_pages(slice));
    pages_done += pages;
    first = last;
  }
  report_.pages += data_pages;
  if (!was_complete && !rec.complete()) {
    auto whole = cur_.extend(RecordReader::kWholeBody);  // the padding, if any
    if (!whole) return std::move(whole).error();
    rec = *whole;
  }
  if (!was_complete) engine_.padding(rec);
  return {};
}

// `e` from reading on inside `rec` after the cursor handed it over (a skip,
// a transfer, or a pull of `wanted` octets): a truncation becomes the record
// cut short, at the octet where the input ends; anything else is unchanged.
Error Driver::cut_within(const RecordView& rec, Error e, std::size_t wanted) {
  if (e.code != ErrorCode::kTruncated) return e;
  auto avail = src_.peek(wanted);
  return rec.cut_short(std::move(e), src_.position() + (avail ? avail->size() : 0));
}

// The restore stopped inside `rec`, a PAGE_DATA record from a pipe: the rest
// of it is read past, and the cut returned when the input ends inside it.
std::optional<Error> Driver::cut_inside(const RecordView& rec) {
  cur_.detach();  // what the cursor still holds of the record is consumed (once)
  const std::uint64_t end = rec.offset + 8 + ((std::uint64_t{rec.length} + 7) & ~std::uint64_t{7});
  if (src_.position() >= end) return std::nullopt;
  if (auto sk = src_.skip(end - src_.position(), rec.label()); !sk) return cut_within(rec, std::move(sk).error(), 0);
  return std::nullopt;
}

// A PAGE_DATA head (from a pipe) broke a rule: the rest of the record is
// read past as Xen would read it, and its padding judged, so that the rules
// report what they report for the whole record from memory. Returns the
// error when the input does not hold the whole record.
std::optional<Error> Driver::finish_judged_head(const RecordView& rec) {
  const std::uint64_t rest = cur_.detach();  // the views of `rec` are void from here
  const auto pad = static_cast<std::size_t>(((std::uint64_t{rec.length} + 7) & ~std::uint64_t{7}) - rec.length);
  auto cut = [&](Error e) { return cut_within(rec, std::move(e), pad); };
  if (auto sk = src_.skip(rest - pad, rec.label()); !sk) return cut(std::move(sk).error());
  auto padding = src_.pull(pad, rec.label() + ": its padding");
  if (!padding) return cut(std::move(padding).error());
  RecordView tail = rec;
  tail.body = Bytes{};
  tail.padding = padding->first(pad);
  engine_.padding(tail);
  src_.consume(pad);
  return std::nullopt;
}

// PAGE_DATA from an input that moves data without a copy (a pipe): the rules
// have seen the count and every entry; the cursor hands the rest of the
// record over, and the pages go from the input to the backend in slices of
// entries that either all bypass user space (apply_pages_from) or are all
// pages the rules read (RuleEngine::needs_page): those are pulled, handed
// to the rules, then applied from the window as before. The padding is
// pulled last and judged as always.
Expected<void> Driver::page_data_moved(const RecordView& rec) {
  const std::uint32_t count = rec.fields().u32(0);
  const std::size_t entries_end = 8 + 8 * std::size_t{count};
  head_copy_.assign(rec.body.begin(), rec.body.begin() + static_cast<std::ptrdiff_t>(entries_end));
  RecordView head = rec;
  head.body = Bytes(head_copy_.data(), head_copy_.size());
  auto v = decode_page_data(head);
  if (!v) return std::move(v).error();
  const std::uint64_t rest = cur_.detach();  // the views of `rec` are void from here
  const std::uint64_t data_octets = std::uint64_t{xc::kPageSize} * v->data_pages;
  const std::string what = rec.label() + ": its pages";
  // Input that ends inside the record is reported as the cursor reports a
  // record cut short (from memory it sees the cut before the record), at
  // the octet where the input ended: `wanted` octets were asked for.
  auto cut = [&](Error e, std::size_t wanted) { return cut_within(rec, std::move(e), wanted); };
  std::uint32_t first = 0;
  std::size_t pages_done = 0;
  while (first < count) {
    // A slice: entries up to the first data page whose need differs.
    std::optional<bool> needed;
    std::uint32_t last = first;
    std::size_t pages = 0;
    for (; last < count; ++last) {
      if (!xc::page_type_has_data(v->type(last))) continue;
      const bool need = engine_.needs_page(v->entry(last));
      if (needed && (need != *needed || (need && pages == kSlicePages))) break;
      needed = need;
      ++pages;
    }
    PageDataView slice;
    slice.count = last - first;
    slice.reserved = v->reserved;
    slice.entries = v->entries.sub(8 * std::size_t{first}, 8 * std::size_t{slice.count});
    slice.data_pages = static_cast<std::uint32_t>(pages);
    if (pages == 0) {
      XS_TRY(be_.apply_pages(slice));
    } else if (!*needed) {
      if (auto r = be_.apply_pages_from(slice, src_); !r) return cut(std::move(r).error(), 0);
    } else {
      auto got = src_.pull(xc::kPageSize * pages, what);
      if (!got) return cut(std::move(got).error(), xc::kPageSize * pages);
      slice.pages = got->first(xc::kPageSize * pages);
      std::size_t k = 0;
      for (std::uint32_t i = first; i < last; ++i) {
        if (!xc::page_type_has_data(v->type(i))) continue;
        if (engine_.page(head, i, slice.pages.subspan(xc::kPageSize * k++, xc::kPageSize))) {
          return rec.error_at(entries_end + xc::kPageSize * (pages_done + k - 1),
                              "a page of this record breaks a rule");
        }
      }
      XS_TRY(be_.apply_pages(slice));
      src_.consume(xc::kPageSize * pages);
    }
    pages_done += pages;
    first = last;
  }
  report_.pages += v->data_pages;
  // The padding (0-7 octets; none for a well-formed record of whole pages).
  const auto pad = static_cast<std::size_t>(rest - data_octets);
  auto padding = src_.pull(pad, rec.label() + ": its padding");
  if (!padding) return cut(std::move(padding).error(), pad);
  head.body = Bytes{};
  head.padding = padding->first(pad);
  engine_.padding(head);
  src_.consume(pad);
  return {};
}

Expected<void> Driver::handle_libxc(const RecordView& rec) {
  using T = xc::RecordType;
  switch (static_cast<T>(rec.type)) {
    case T::kEnd:
      return {};
    case T::kPageData:
      return page_data(rec);
    case T::kX86PvInfo: {
      XS_TRY(require(false, rec));
      if (saw_pv_info_) return rec.error_at(0, "a second X86_PV_INFO (Xen refuses it)");
      saw_pv_info_ = true;
      auto v = decode_x86_pv_info(rec);
      if (!v) return std::move(v).error();
      return be_.set_x86_pv_info(*v);
    }
    case T::kX86PvP2mFrames: {
      XS_TRY(require(false, rec));
      auto v = decode_p2m_frames(rec);
      if (!v) return std::move(v).error();
      return be_.set_p2m_frames(*v);
    }
    case T::kX86PvVcpuBasic:
    case T::kX86PvVcpuExtended:
    case T::kX86PvVcpuXsave:
    case T::kX86PvVcpuMsrs: {
      XS_TRY(require(false, rec));
      auto v = decode_vcpu_blob(rec);
      if (!v) return std::move(v).error();
      // Xen 4.6-4.8 could send these with an empty blob; Xen ignores them.
      if (v->blob.size() == 0) return {};
      if (v->vcpu_id > o_.limits.max_vcpu_id) {
        return rec.error_at(0, "vcpu_id " + std::to_string(v->vcpu_id) + " is above the highest accepted, " +
                                   std::to_string(o_.limits.max_vcpu_id),
                            ErrorCode::kLimit);
      }
      const VcpuRecord kind = rec.type == static_cast<std::uint32_t>(T::kX86PvVcpuBasic)      ? VcpuRecord::kBasic
                              : rec.type == static_cast<std::uint32_t>(T::kX86PvVcpuExtended) ? VcpuRecord::kExtended
                              : rec.type == static_cast<std::uint32_t>(T::kX86PvVcpuXsave)    ? VcpuRecord::kXsave
                                                                                              : VcpuRecord::kMsrs;
      return be_.set_vcpu(kind, v->vcpu_id, v->blob.bytes());
    }
    case T::kSharedInfo:
      XS_TRY(require(false, rec));
      if (rec.length != xc::kPageSize) {
        return rec.error_at(0, "body is " + std::to_string(rec.length) + " octets, expected 4096");
      }
      return be_.set_shared_info(rec.body);
    case T::kX86TscInfo: {
      auto v = decode_tsc_info(rec);
      if (!v) return std::move(v).error();
      return be_.set_tsc_info(*v);
    }
    case T::kHvmContext:
      XS_TRY(require(true, rec));
      if (rec.length == 0) return rec.error_at(0, "empty HVM context (Xen refuses it)");
      return be_.set_hvm_context(rec.body);
    case T::kHvmParams: {
      XS_TRY(require(true, rec));
      auto v = decode_hvm_params(rec);
      if (!v) return std::move(v).error();
      return be_.set_hvm_params(*v);
    }
    case T::kToolstack:
      return rec.error_at(0, "TOOLSTACK records cannot be restored (Xen refuses them too)",
                          ErrorCode::kUnsupported);
    case T::kVerify:
      verify_ = true;
      return {};
    case T::kCheckpoint:
      facts_.checkpointed = true;
      report_.checkpointed = true;
      if (cur_.libxl_header()) {
        in_checkpoint_ = true;  // the libxl records of this checkpoint follow
        return {};
      }
      return commit_checkpoint();
    case T::kCheckpointDirtyPfnList:
      return rec.error_at(0, "CHECKPOINT_DIRTY_PFN_LIST belongs to COLO's back channel, not to the "
                             "stream a secondary restores");
    case T::kStaticDataEnd:
      if (saw_static_data_end_) return rec.error_at(0, "a second STATIC_DATA_END (Xen refuses it)");
      saw_static_data_end_ = true;
      return be_.static_data_end();
    case T::kX86CpuidPolicy:
    case T::kX86MsrPolicy: {
      const bool cpuid = rec.type == static_cast<std::uint32_t>(T::kX86CpuidPolicy);
      const std::uint32_t unit = cpuid ? xc::kCpuidLeafSize : xc::kMsrEntrySize;
      if (rec.length == 0 || rec.length % unit != 0) {
        return rec.error_at(0, "body is " + std::to_string(rec.length) +
                                   " octets, expected a non-zero multiple of " + std::to_string(unit));
      }
      return be_.set_cpu_policy(cpuid ? CpuPolicy::kCpuid : CpuPolicy::kMsr, rec.body);
    }
  }
  if (rec.optional()) {
    skip(rec);
    return {};
  }
  return rec.error_at(0, "unknown mandatory libxc record type " + hex(rec.type), ErrorCode::kUnsupported);
}

Expected<void> Driver::handle_libxl(const RecordView& rec) {
  using T = xl::RecordType;
  const bool at_checkpoint_end = after_checkpoint_end_;
  after_checkpoint_end_ = false;
  switch (static_cast<T>(rec.type)) {
    case T::kEnd:
      if (in_checkpoint_) return rec.error_at(0, "END inside a checkpoint, before its CHECKPOINT_END");
      if (!saw_libxc_context_) {
        return rec.error_at(0, "the stream ends without a LIBXC_CONTEXT record: it holds no domain");
      }
      return {};
    case T::kLibxcContext:
      if (saw_libxc_context_) return rec.error_at(0, "a second LIBXC_CONTEXT");
      saw_libxc_context_ = true;
      return {};
    case T::kEmulatorXenstoreData:
    case T::kEmulatorContext: {
      if (!domain_) return rec.error_at(0, "an emulator record before the libxc image");
      XS_TRY(require(true, rec));
      auto em = decode_emulator(rec);
      if (!em) return std::move(em).error();
      if (rec.type == static_cast<std::uint32_t>(T::kEmulatorContext)) {
        return be_.set_emulator_context(em->id, em->index, em->data.bytes());
      }
      auto pairs = decode_xenstore_pairs(rec, *em);
      if (!pairs) return std::move(pairs).error();
      for (const auto& [k, v] : *pairs) {
        // libxl refuses empty and absolute keys: they would escape the
        // device model's xenstore directory.
        if (k.empty() || k[0] == '/') {
          return rec.error_at(8, "xenstore key \"" + k + "\" is " + (k.empty() ? "empty" : "absolute") +
                                     " (libxl refuses it)");
        }
      }
      return be_.set_emulator_xenstore(em->id, em->index, *pairs);
    }
    case T::kCheckpointEnd:
      if (!in_checkpoint_) return rec.error_at(0, "CHECKPOINT_END outside a checkpoint");
      in_checkpoint_ = false;
      after_checkpoint_end_ = true;
      return commit_checkpoint();
    case T::kCheckpointState: {
      if (!at_checkpoint_end) {
        return rec.error_at(0, "CHECKPOINT_STATE is only valid between a CHECKPOINT_END and the next "
                               "checkpoint's libxc records");
      }
      auto id = decode_checkpoint_state(rec);
      if (!id) return std::move(id).error();
      if (*id != xl::kCheckpointNew) {
        return rec.error_at(0, "CHECKPOINT_STATE control id " + std::to_string(*id) +
                                   ": only 0 (CHECKPOINT_NEW) travels on the forward stream");
      }
      facts_.colo = true;
      if (o_.on_checkpoint_new && !stop_) {
        if (auto r = o_.on_checkpoint_new(); !r) stop_ = std::move(r).error();
      }
      return {};
    }
  }
  if (rec.optional()) {
    skip(rec);
    return {};
  }
  return rec.error_at(0, "unknown mandatory libxl record type " + hex(rec.type), ErrorCode::kUnsupported);
}

Expected<void> Driver::commit_checkpoint() {
  const std::uint64_t k = report_.checkpoints + 1;
  XS_TRY(be_.commit(CommitInfo{k, facts()}));
  ++commits_;
  report_.checkpoints = k;
  if (!o_.on_checkpoint.empty()) {
    auto env = o_.hook_env;
    env.emplace_back("XENSTREAM_CHECKPOINT", std::to_string(k));
    auto status = run_hook(o_.on_checkpoint, env);
    if (!status) return std::move(status).error();
    if (!(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)) {
      stop_ = make_error(ErrorCode::kUnsupported, cur_.position(),
                         "the --on-checkpoint command " + describe_wait_status(*status) +
                             " after checkpoint " + std::to_string(k) + "; stopping there");
    }
  }
  if (o_.after_commit && !stop_) {
    if (auto r = o_.after_commit(k); !r) stop_ = std::move(r).error();
  }
  return {};
}

// ---------------------------------------------------------------------------
// Endings

void Driver::replay() {
  if (o_.emulator_exec.empty()) return;
  auto files = be_.emulator_files();
  if (!files) {
    report_.warnings.push_back("--emulator-exec was given but the restored domain has no emulator "
                               "context; no device model was started");
    return;
  }
  ReplayOptions ro;
  ro.command = o_.emulator_exec;
  ro.files = *files;
  ro.domid = o_.domid;
  ro.timeout = o_.emulator_timeout;
  ro.env = o_.hook_env;
  auto r = replay_emulator(ro);
  if (r) {
    report_.replay = std::move(r).value();
  } else {
    ReplayRecord failed;
    failed.command = o_.emulator_exec;
    failed.log_file = files->log_file;
    failed.message = r.error().message;
    report_.replay = failed;
  }
}

void Driver::finish(Outcome outcome, std::optional<Error> reason) {
  replay();
  FinishInfo fi;
  fi.outcome = outcome;
  fi.checkpoints = report_.checkpoints;
  fi.reason = std::move(reason);
  fi.facts = facts();
  fi.replay = report_.replay;
  fi.warnings = report_.warnings;
  if (auto r = be_.finish(fi); !r) {
    if (report_.error) report_.warnings.push_back("the restore stopped because: " + report_.error->describe());
    report_.status = RestoreStatus::kIoError;
    report_.error = std::move(r).error();
    return;
  }
  if (report_.replay && !report_.replay->ok) report_.status = RestoreStatus::kReplayFailed;
}

RestoreReport Driver::completed(bool walk_ended) {
  if (walk_ended) {
    cur_.release();
  } else if (o_.check_trailing && !engine_.ends_here()) {
    auto t = cur_.finish();
    if (!t && (t.error().code == ErrorCode::kIo || t.error().code == ErrorCode::kUsage)) {
      report_.warnings.push_back(t.error().describe());
      engine_.end(cur_.position());
    } else {
      engine_.end(t, cur_.position());
    }
  } else {
    cur_.release();
    engine_.end(cur_.position());
  }
  if (engine_.broken()) return rule_broke();
  collect_problems();
  report_.bytes = cur_.position();
  if (facts_.checkpointed) {
    // Records after the last checkpoint are dropped, as Xen drops them at
    // END; the rules' LIBXC-CKPT-04 warning says so.
  } else if (auto r = be_.commit(CommitInfo{0, facts()}); !r) {
    return backend_failed(std::move(r).error());
  } else {
    ++commits_;
  }
  report_.status = RestoreStatus::kComplete;
  finish(Outcome::kComplete, std::nullopt);
  report_progress(true);
  return report_;
}

RestoreReport Driver::stream_broke(Error e) {
  report_.bytes = cur_.position();
  collect_problems();
  if (commits_ == 0) {
    be_.abandon();
    report_.status = e.code == ErrorCode::kIo ? RestoreStatus::kIoError : RestoreStatus::kInvalid;
    report_.error = std::move(e);
    return report_;
  }
  report_.status = RestoreStatus::kFailover;
  report_.error = e;
  finish(Outcome::kFailover, std::move(e));
  report_progress(true);
  return report_;
}

RestoreReport Driver::backend_failed(Error e) {
  report_.bytes = cur_.position();
  report_.status = RestoreStatus::kIoError;
  if (commits_ == 0) {
    be_.abandon();
  } else {
    FinishInfo fi;
    fi.outcome = Outcome::kFailover;
    fi.checkpoints = report_.checkpoints;
    fi.reason = e;
    fi.facts = facts();
    if (auto r = be_.finish(fi); !r) report_.warnings.push_back(r.error().message);
  }
  report_.error = std::move(e);
  return report_;
}

}  // namespace

std::optional<verify::Problem> container_refused(Source& src, const Error& e,
                                                 const verify::VerifyOptions& rules) {
  if (e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage) return std::nullopt;
  verify::RuleEngine engine(rules);
  engine.container_failed(src, e);
  return engine.first_error();
}

RestoreReport restore_stream(Source& src, const ContainerInfo& container, Backend& backend,
                             const RestoreOptions& options) {
  if (container.payload != PayloadKind::kLibxl && container.payload != PayloadKind::kLibxc) {
    RestoreReport r;
    r.status = RestoreStatus::kInvalid;
    verify::RuleEngine engine(options.rules);
    engine.container(container, &src);
    if (engine.first_error()) {
      const verify::Problem& p = *engine.first_error();
      r.rule = p;
      r.problems = engine.result().problems;
      r.error = make_error(ErrorCode::kUnsupported, p.offset,
                           p.where + ": " + p.message + " [" + std::string(p.rule) + "]");
    } else {
      r.error = make_error(ErrorCode::kUnsupported, container.payload_offset,
                           "a legacy (pre-Xen 4.6) image is not a v2 stream; convert it with streamconv first");
    }
    backend.abandon();
    return r;
  }
  Driver d(src, container, backend, options);
  return d.run();
}

}  // namespace xenstream::restore
