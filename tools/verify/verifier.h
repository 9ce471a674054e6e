// streamverify's engine: would Xen's restore path accept this stream, and if
// not, which byte, which record, which rule (spec/verify-rules.md).
//
// verify() walks the input once, from any Source (mapped file, pipe, zstd),
// with bounded memory: records are looked at in place and dropped; the only
// state that grows with the stream is capped (pfn tracking, listed
// problems, listed emulator blobs and checkpoints). It reports every
// problem it can find; it stops early only when the rest is unreadable
// (framing broken, input truncated, a header it cannot get past).
//
// The result holds the problems in stream order, the verdict and a summary
// for -v / --json (report_text.h, report_json.h).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/blobs/hvm_context.h>
#include <xenstream/libstream/blobs/qemu_state.h>
#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/source.h>
#include <xenstream/libstream/stream_cursor.h>
#include "tools/verify/rules.h"

namespace xenstream::verify {

// Which restore the stream is judged for, as in Xen (spec/verify-rules.md
// "Modes"): a plain restore (xl restore, migrate-receive), a Remus
// secondary (migrate-receive -r) or a COLO secondary (-r --colo). Auto:
// decided from the stream (no CHECKPOINT: plain; CHECKPOINT_STATE after the
// first CHECKPOINT_END: COLO, else Remus), except that a libvirt save file
// is always a plain restore.
enum class Mode : std::uint8_t { kAuto, kPlain, kRemus, kColo };
std::string_view mode_name(Mode m);  // "auto", "plain", "remus", "colo"
std::optional<Mode> parse_mode(std::string_view s);

struct VerifyOptions {
  FormatHint format = FormatHint::kAuto;
  Mode mode = Mode::kAuto;
  // Rules Xen's restore path does not enforce (enforcement "strict" in the
  // rule table) become errors.
  bool strict = false;
  // Memory for tracking which pfns were sent (PfnTracker); beyond it the
  // duplicate count is a lower bound and the summary says so.
  std::size_t pfn_tracking_cap = 32u << 20;
  // Problems listed per rule; further ones are only counted.
  std::size_t max_problems_per_rule = 100;
  // Called now and then with (bytes read, total size or 0) for progress.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  std::uint64_t progress_interval = 64u << 20;
};

struct Problem {
  std::string_view rule;  // id from the rule table
  Severity severity = Severity::kError;
  std::uint64_t offset = 0;  // absolute input offset of the offending octets
  // "record #17 PAGE_DATA", or a header name ("libxc image header", "input").
  std::string where;
  std::optional<std::uint64_t> record_index;
  std::optional<std::string> record_type;  // spec name, for records
  std::optional<std::string> layer;        // "libxl" / "libxc", for records
  std::string message;

  // "offset 0x1a2b40, record #17 PAGE_DATA: pfn[3] has reserved bits set
  // (0x00f0000000000001) [LIBXC-PAGE-04]"; warnings start with "warning: ".
  std::string format() const;
};

struct ConfigFacts {
  std::string source;                   // "xl JSON", "xl text", "libvirt XML"
  std::optional<std::string> guest_type;  // "pv", "hvm", "pvh"
  std::optional<std::string> name;
  std::optional<std::uint32_t> max_vcpus;
};

struct EmulatorBlob {
  std::uint64_t record_index = 0;
  std::uint64_t offset = 0;  // record header offset
  std::string record;        // "EMULATOR_CONTEXT" / "EMULATOR_XENSTORE_DATA"
  std::uint32_t id = 0;
  std::uint32_t index = 0;
  std::uint64_t size = 0;    // octets after the sub-header
  // 0: not inside a checkpoint; else the number (from 1) of the checkpoint
  // whose libxl part holds the record.
  std::uint64_t checkpoint = 0;
  std::optional<blobs::QemuStateSummary> qemu;  // EMULATOR_CONTEXT, walked
  std::uint64_t xenstore_pairs = 0;
};

struct Summary {
  std::string input;
  bool compressed = false;
  std::uint64_t bytes = 0;  // input octets walked (decompressed)

  // Container and headers.
  std::optional<ContainerInfo> container;
  std::optional<ConfigFacts> config;
  std::optional<LibxlHeaderInfo> libxl;
  std::optional<ImageHeaderInfo> image;
  std::optional<DomainHeaderInfo> domain;
  std::string guest_type = "unknown";  // "PV", "HVM", "PVH", "HVM or PVH"

  // Records by layer and type name, PAGE_DATA included (squashed: a count).
  std::map<std::string, std::uint64_t> libxl_records;
  std::map<std::string, std::uint64_t> libxc_records;
  std::uint64_t records = 0;

  // Memory.
  std::uint64_t page_entries = 0;
  std::array<std::uint64_t, 16> pages_by_type{};  // by PFINFO nibble
  std::optional<std::uint64_t> pfn_min;
  std::optional<std::uint64_t> pfn_max;
  std::uint64_t data_pfns = 0;                // distinct pfns sent with data
  std::uint64_t data_pfns_sent_again = 0;     // of those, sent more than once
  bool pfn_tracking_capped = false;
  std::uint64_t pfn_tracking_bytes = 0;
  std::uint64_t pfn_tracking_cap = 0;

  // PV.
  std::optional<std::pair<std::uint8_t, std::uint8_t>> pv_info;  // width, levels
  std::optional<std::uint64_t> max_pfn;
  std::vector<std::uint32_t> pv_vcpus;  // ids with an X86_PV_VCPU_BASIC

  // Both.
  struct Tsc {
    std::uint32_t mode = 0, khz = 0, incarnation = 0;
    std::uint64_t nsec = 0;
  };
  std::optional<Tsc> tsc;  // the last X86_TSC_INFO
  std::optional<std::uint32_t> cpuid_leaves;
  std::optional<std::uint32_t> msr_entries;

  // HVM.
  std::map<std::uint64_t, std::uint64_t> hvm_params;  // last value per index
  std::optional<blobs::HvmContextSummary> hvm_context;  // the last one

  // libxl.
  std::vector<EmulatorBlob> emulators;  // at most kMaxListed
  std::uint64_t emulators_total = 0;
  std::vector<std::pair<std::string, std::string>> xenstore;  // last record, capped

  // Checkpoints.
  std::uint64_t checkpoints = 0;  // CHECKPOINT records
  std::uint64_t committed = 0;    // checkpoints Xen would commit
  // PAGE_DATA entries per checkpoint: [0] before the first CHECKPOINT, [i]
  // between checkpoint i and i+1 (the last may be a partial, discarded one).
  std::vector<std::uint64_t> pages_per_checkpoint;
  bool verify_mode = false;

  static constexpr std::size_t kMaxListed = 4096;
};

struct VerifyResult {
  std::vector<Problem> problems;  // stream order, at most max_problems_per_rule each
  std::map<std::string_view, std::uint64_t> suppressed;  // rule -> problems not listed
  std::uint64_t errors = 0;    // all error-level problems, listed or not
  std::uint64_t warnings = 0;  // all warnings
  bool complete = true;        // false: stopped early, the rest was unreadable
  std::optional<Error> failure;  // an I/O or usage failure (exit status 2)
  Summary summary;

  bool valid() const { return !failure && errors == 0; }
  // 0 valid, 1 a rule is broken, 2 I/O or usage failure.
  int exit_status() const { return failure ? 2 : (errors > 0 ? 1 : 0); }
  // "<input>: valid libxl stream (x86 HVM, Xen 4.17), 2 warnings" or
  // "<input>: INVALID: 3 errors, 1 warning".
  std::string verdict() const;
};

// Verifies the stream in `src` (positioned at its first octet); `name` is
// used in the summary.
VerifyResult verify(Source& src, const VerifyOptions& options = {});

// Opens `path` ("-" = stdin; zstd decoded transparently) and verifies it.
// A file that cannot be opened gives a result with `failure` set.
VerifyResult verify_path(const std::string& path, const VerifyOptions& options = {});

// The rules as a library for any reader of a stream (streamrestore, the
// migration receiver, streamconv's self-check): the caller walks the stream
// with its own StreamCursor and feeds the engine what it meets, in order,
// before acting on it. The engine keeps no view past the call and copies no
// page body; it reports exactly the problems verify() reports for the same
// octets (verify() is this engine over a plain walk).
//
//   container(c)          after read_container()
//   started(cur, kind)    after cur.start()
//   record(cur, rec)      each record, whole, or for PAGE_DATA a head that
//                         holds at least the count and all the entries (then
//                         pages(rec) as more of the body is read, before its
//                         pages are applied, and padding(rec) once it is whole)
//   read_error(e)         the cursor failed (truncated, framing)
//   end(trailing, bytes)  after the outermost END (cursor.finish()'s result),
//   end(bytes)            or without reading what follows END
// Every step returns / broken() says whether an error-severity rule has
// broken so far; first_error() is the first one.
class RuleEngine {
 public:
  explicit RuleEngine(VerifyOptions options = {});
  ~RuleEngine();
  RuleEngine(const RuleEngine&) = delete;
  RuleEngine& operator=(const RuleEngine&) = delete;

  // `src` (positioned at the payload) is only peeked at, to tell a legacy
  // image from unknown data; without it a legacy payload reads as unknown.
  void container(const ContainerInfo& c, Source* src = nullptr);
  // read_container() failed on `src` (positioned where it started): the
  // problem verify() reports for it (empty input, bad magic, truncation...).
  void container_failed(Source& src, const Error& e);
  void started(const StreamCursor& cur, PayloadKind kind);
  bool record(const StreamCursor& cur, const RecordView& rec);
  bool padding(const RecordView& rec);
  // More of a PAGE_DATA body read (a prefix of the pages, after record()):
  // the page-table pages now whole are checked (LIBXC-PAGE-11) before the
  // caller applies them. padding() checks whatever is left.
  bool pages(const RecordView& rec);
  // Pages whose contents the rules read. A reader that moves PAGE_DATA
  // pages past user space (streamrestore from a pipe) asks for each data
  // entry of the record last given to record() (`entry`: pfn and type as
  // the stream holds them) and still reads the pages this says yes to,
  // handing each to page() before it is applied; every other page may
  // bypass the rules. Yes for every data page of a PV guest: the PV rules
  // read the page tables (LIBXC-PAGE-11) and the start_info page, which is
  // known only from the vcpu records at the end (LIBXC-VCPU-17); no for
  // every HVM page.
  bool needs_page(std::uint64_t entry) const;
  // One page needs_page() asked for, in entry order: `head` is the record
  // given to record() (count and entries), `index` the entry, `contents`
  // its 4096 octets. Returns broken(). A reader that hands the rules whole
  // bodies (record(), padding()) never calls this.
  bool page(const RecordView& head, std::uint32_t index, Bytes contents);
  void read_error(const Error& e);
  bool end(const Expected<void>& trailing, std::uint64_t bytes);
  bool end(std::uint64_t bytes);

  bool broken() const;
  // The restore ends at the record just fed without reading on: a Remus
  // secondary stops at the libxc END (ends_here), a COLO secondary reads a
  // CHECKPOINT_STATE with bit 31 set as a broken channel (fails_over_here:
  // a failover to the last checkpoint, as when the stream stops).
  bool ends_here() const;
  bool fails_over_here() const;
  // After read_error(): the input ended where Xen's libxl takes it for the
  // libxl END (STREAM-07), so the stream is complete, not cut.
  bool end_implied() const;
  const std::optional<Problem>& first_error() const;
  // Problems listed so far (result().problems), stream order.
  std::size_t problem_count() const;
  const VerifyResult& result() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when `head` (the first octets of a payload) looks like a legacy
// (pre-4.6) image per spec/legacy.md §12.
bool looks_like_legacy(Bytes head);

}  // namespace xenstream::verify
