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

namespace xenstream::verify {

namespace xc = format::libxc;
namespace xl = format::libxl;

std::string Problem::format() const {
  std::string out = severity == Severity::kWarning ? "warning: " : "";
  out += "offset " + hex(offset) + ", " + where + ": " + message + " [" + std::string(rule) + "]";
  return out;
}

std::string VerifyResult::verdict() const {
  const std::string name = summary.input.empty() ? "<input>" : summary.input;
  if (failure) return name + ": cannot verify: " + failure->describe();
  auto plural = [](std::uint64_t n, const char* what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  if (errors > 0) {
    std::string v = name + ": INVALID: " + plural(errors, "error") + ", " +
                    plural(warnings, "warning");
    if (!complete) v += " (stopped early: the rest of the input is unreadable)";
    return v;
  }
  std::string what;
  const Summary& s = summary;
  if (s.container && s.container->kind != ContainerKind::kNone) {
    what += std::string(container_name(s.container->kind)) + " + ";
  }
  if (s.libxl) what += "libxl + ";
  what += "libxc";
  if (s.image) what += " v" + std::to_string(s.image->version);
  what += ", " + s.guest_type;
  if (s.domain) {
    if (s.domain->xen_major == 0) {
      what += ", converted from a legacy image";
    } else {
      what += ", Xen " + std::to_string(s.domain->xen_major) + "." +
              std::to_string(s.domain->xen_minor);
    }
  }
  if (s.checkpoints > 0) what += ", " + plural(s.committed, "committed checkpoint");
  return name + ": valid (" + what + "), " + plural(warnings, "warning");
}

bool looks_like_legacy(Bytes head) {
  if (head.size() < 12) return false;
  const Fields f(head, ByteOrder::kLittle, 0);
  const std::uint32_t p2m_size = f.u32(0);
  if (p2m_size == 0 || p2m_size > 0x0FFFFFFF) return false;
  const std::uint32_t second = f.u32(4);
  auto text_at = [&](std::size_t off, const char* s) {
    return head.size() >= off + 4 && std::memcmp(head.data() + off, s, 4) == 0;
  };
  auto chunk_id = [](std::int32_t id) { return (id >= 1 && id <= 1024) || (id >= -20 && id <= -1); };
  if (second == 0xFFFFFFFFu && text_at(12, "vcpu")) return true;  // PV, 32-bit toolstack
  if (second == 0) {
    if (head.size() >= 24 && f.u64(8) == ~std::uint64_t{0} && text_at(20, "vcpu")) return true;
    return chunk_id(static_cast<std::int32_t>(f.u32(8)));  // HVM, 64-bit toolstack
  }
  return chunk_id(static_cast<std::int32_t>(second));  // HVM, 32-bit toolstack
}

namespace {

using R = Rule;

constexpr std::uint32_t kMaxVcpus = 4096;
constexpr std::size_t kMaxXenstoreListed = 256;

// Param indexes a Xen saver sends, plus 15 (VM86_TSS) from the converter
// (spec/libxc.md §6.9).
constexpr std::uint64_t kSaverParams[] = {1, 5, 6, 27, 28, 29, 37, 17, 19, 9, 12, 34, 32, 33, 36, 38, 15};

bool deprecated_param(std::uint64_t i) {
  return i == 4 || i == 13 || (i >= 20 && i <= 26) || i == 30;
}

bool pv_only(std::uint32_t t) {
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

bool hvm_only(std::uint32_t t) {
  return t == static_cast<std::uint32_t>(xc::RecordType::kHvmContext) ||
         t == static_cast<std::uint32_t>(xc::RecordType::kHvmParams);
}

std::string quote(std::string_view s) {
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
std::string hex_entry(std::uint64_t e) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(e));
  return buf;
}

std::string hex_octets(Bytes b, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < std::min(n, b.size()); ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(b[i]));
    if (!out.empty()) out += ' ';
    out += buf;
  }
  return out;
}

// Facts from an xl JSON config (libxl_domain_config).
void json_facts(const nlohmann::json& j, ConfigFacts& facts) {
  if (!j.is_object()) return;
  auto ci = j.find("c_info");
  if (ci != j.end() && ci->is_object()) {
    auto t = ci->find("type");
    if (t != ci->end() && t->is_string()) facts.guest_type = t->get<std::string>();
    auto n = ci->find("name");
    if (n != ci->end() && n->is_string()) facts.name = n->get<std::string>();
  }
  auto bi = j.find("b_info");
  if (bi != j.end() && bi->is_object()) {
    auto m = bi->find("max_vcpus");
    if (m != bi->end() && m->is_number_unsigned()) {
      const auto v = m->get<std::uint64_t>();
      if (v > 0 && v <= kMaxVcpus) facts.max_vcpus = static_cast<std::uint32_t>(v);
    }
  }
}

// Facts from libvirt domain XML: <domain ...><name>N</name>, <vcpu ...>N</vcpu>,
// <os><type ...>hvm|xen|xenpvh</type>. A light scan, not an XML parser.
std::optional<std::string> xml_element(std::string_view xml, std::string_view tag,
                                       std::size_t from = 0) {
  const std::string open = "<" + std::string(tag);
  std::size_t p = xml.find(open, from);
  while (p != std::string_view::npos) {
    const char next = p + open.size() < xml.size() ? xml[p + open.size()] : '\0';
    if (next == '>' || next == ' ' || next == '\t' || next == '\n') break;
    p = xml.find(open, p + 1);
  }
  if (p == std::string_view::npos) return std::nullopt;
  const std::size_t gt = xml.find('>', p);
  if (gt == std::string_view::npos) return std::nullopt;
  const std::size_t end = xml.find("</" + std::string(tag) + ">", gt);
  if (end == std::string_view::npos) return std::nullopt;
  std::string v(xml.substr(gt + 1, end - gt - 1));
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
  return v;
}

ConfigFacts xml_facts(std::string_view xml) {
  ConfigFacts f;
  f.source = "libvirt XML";
  f.name = xml_element(xml, "name");
  if (auto v = xml_element(xml, "vcpu")) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(v->c_str(), &end, 10);
    if (end != v->c_str() && *end == '\0' && n > 0 && n <= kMaxVcpus) {
      f.max_vcpus = static_cast<std::uint32_t>(n);
    }
  }
  const std::size_t os = xml.find("<os>");
  if (os != std::string_view::npos) {
    if (auto t = xml_element(xml, "type", os)) {
      if (*t == "hvm") f.guest_type = "hvm";
      if (*t == "xen" || *t == "linux") f.guest_type = "pv";
      if (*t == "xenpvh") f.guest_type = "pvh";
    }
  }
  return f;
}

class Verifier {
 public:
  Verifier(Source* src, const VerifyOptions& options, VerifyResult& out)
      : src_(src), options_(options), out_(out), s_(out.summary),
        pfns_(options.pfn_tracking_cap) {
    s_.pfn_tracking_cap = pfns_.cap_bytes();
  }

  void run();

  // ---- the steps of a walk, for verify() and for RuleEngine
  void check_container(const ContainerInfo& c);
  void begin_walk(const StreamCursor& cur, PayloadKind kind);
  void step(const StreamCursor& cur, const RecordView& rec);
  void check_padding(const RecordView& rec);
  bool skip_pages(StreamCursor& cur, const RecordView& rec);
  bool needs_page(std::uint64_t entry) const {
    const unsigned type = static_cast<unsigned>(entry >> xc::kPfnTypeShift);
    return is_pv_ && xc::page_type_has_data(type) && (type & 7) >= 1 && (type & 7) <= 4;
  }
  // A page-table page of a PAGE_DATA record read apart from its body
  // (RuleEngine::page). No rule reads page contents yet; the PV page-table
  // rules judge such a page here.
  void check_page(const RecordView&, std::uint32_t, Bytes) {}
  void read_error(const Error& e);
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
  // A second libxc image (after a second LIBXC_CONTEXT) starts afresh.
  void reset_libxc_state() {
    sde_seen_ = order01_reported_ = order07_reported_ = order09_reported_ = false;
    pv_info_seen_ = p2m_seen_ = p2m_bound_unknown_ = false;
    width_ = 0;
    max_pfn_ = 0;
    max_frame_.reset();
    basic_seen_.reset();
    basic_refs_.clear();
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

// ---------------------------------------------------------------------------

void Verifier::run() {
  s_.input = src_->name();
  auto head = src_->peek(1);
  // A decoding layer (zstd) may already fail here on a short or corrupt
  // input: that is a bad stream, not an I/O failure.
  if (!head) return container_error(head.error());
  if (head->empty()) {
    add(R::kStream01, 0, "input", "the input is empty");
    out_.complete = false;
    return;
  }
  auto c = read_container(*src_, options_.format);
  if (!c) return container_error(c.error());
  s_.container = *c;
  check_container(*c);
  if (c->payload == PayloadKind::kLegacy) return legacy_payload(*c);
  walk(c->payload);
}

void Verifier::container_error(const Error& e) {
  out_.complete = false;
  if (e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage) return fail(e);
  if (e.code == ErrorCode::kTruncated) {
    add(R::kStream04, e.offset, "input", e.message);
    return;
  }
  if (e.message.rfind("zstd:", 0) == 0) {  // corrupt compressed input
    add(R::kStream03, e.offset, "input", e.message);
    return;
  }
  const bool xl_msg = e.message.rfind("xl save header", 0) == 0;
  const bool lv_msg = e.message.rfind("libvirt save header", 0) == 0;
  if (e.code == ErrorCode::kLimit) {
    if (xl_msg) return add(R::kContXl06, e.offset, "xl header", e.message.substr(16));
    if (lv_msg) return add(R::kContLv04, e.offset, "libvirt header", e.message.substr(21));
  }
  switch (options_.format) {
    case FormatHint::kXl:
      return add(R::kContXl01, e.offset, "xl header",
                 "the input does not start with the xl save magic");
    case FormatHint::kLibvirt:
      return add(R::kContLv01, e.offset, "libvirt header",
                 "the input does not start with the libvirt-xml magic");
    case FormatHint::kLibxl:
      return add(R::kLibxlHdr01, e.offset, "libxl header",
                 "the input does not start with the libxl ident \"LibxlFmt\"");
    case FormatHint::kLibxc: {
      auto head = src_ != nullptr ? src_->peek(12) : Expected<Bytes>(Bytes{});
      const bool marker_ok = head && head->size() >= 8 &&
                             Fields(*head, ByteOrder::kBig, 0).u64(0) == xc::kImageMarker;
      if (marker_ok) {
        return add(R::kLibxcIhdr02, e.offset + 8, "libxc image header",
                   "the image id is not 0x58454e46 (\"XENF\")");
      }
      return add(R::kLibxcIhdr01, e.offset, "libxc image header",
                 "the image marker is not 0xffffffffffffffff");
    }
    case FormatHint::kAuto:
      break;
  }
  add(R::kStream03, e.offset, "input", e.message);
}

void Verifier::check_container(const ContainerInfo& c) {
  if (c.kind == ContainerKind::kXl) check_xl(c);
  if (c.kind == ContainerKind::kLibvirt) check_libvirt(c);
}

void Verifier::check_xl(const ContainerInfo& c) {
  const XlHeaderInfo& h = *c.xl;
  const std::string w = "xl header";
  if (h.byteorder != format::xl::kByteOrderMark) {
    add(R::kContXl02, h.offset + 32, w,
        "byteorder is " + hex(h.byteorder) + " read little-endian, expected 0x01020304 "
        "in the saving host's byte order");
  } else if (h.order == ByteOrder::kBig) {
    add(R::kContXl03, h.offset + 32, w,
        "byteorder is 01 02 03 04: a big-endian host wrote this file, and no Xen host is "
        "big-endian");
  }
  if ((h.mandatory_flags & ~format::xl::kMandatoryKnown) != 0) {
    add(R::kContXl04, h.offset + 36, w,
        "mandatory_flags " + hex(h.mandatory_flags) + " has unknown bits " +
            hex(h.mandatory_flags & ~format::xl::kMandatoryKnown) + ": xl refuses the file");
  }
  if (h.optional_flags != 0) {
    add(R::kContXl05, h.offset + 40, w, "optional_flags is " + hex(h.optional_flags) + ", expected 0");
  }
  const std::uint64_t data_at = h.offset + format::xl::kHeaderSize;
  if (h.optional_data_len < 4) {
    add(R::kContXl07, h.offset + 44, w,
        "optional_data_len is " + std::to_string(h.optional_data_len) +
            ", too short for the 4-octet config_len");
  } else if (*h.config_len > h.optional_data_len - 4) {
    add(R::kContXl08, data_at, w,
        "config_len " + std::to_string(*h.config_len) + " exceeds the " +
            std::to_string(h.optional_data_len - 4) +
            " octets of optional data after it (xl: \"Savefile truncated\")");
  } else {
    ConfigFacts facts;
    facts.source = h.json() ? "xl JSON" : "xl text";
    const std::string& cfg = h.config;
    if (h.json()) {
      const std::size_t nul = cfg.find('\0');
      if (cfg.empty() || nul != cfg.size() - 1) {
        add(R::kContXl09, data_at + 4 + (nul == std::string::npos ? cfg.size() : nul), w,
            cfg.empty() ? "the JSON flag is set but the config is empty"
            : nul == std::string::npos ? "the JSON config does not end with a NUL"
                                       : "the JSON config has a NUL at config offset " +
                                             std::to_string(nul) + " before its end");
      } else {
        // Exceptions stay inside this block: nlohmann reports the failing
        // position only through its parse_error.
        try {
          json_facts(nlohmann::json::parse(cfg.begin(), cfg.end() - 1), facts);
        } catch (const nlohmann::json::parse_error& e) {
          const std::size_t at = e.byte > 0 ? std::min<std::size_t>(e.byte - 1, cfg.size() - 1) : 0;
          add(R::kContXl10, data_at + 4 + at, w,
              "the config is not valid JSON (parse error at config offset " + std::to_string(at) + ")");
        }
      }
    }
    s_.config = facts;
    const std::uint64_t extra = h.optional_data_len - 4 - *h.config_len;
    if (extra > 0) {
      add(R::kContXl11, data_at + 4 + *h.config_len, w,
          std::to_string(extra) + " octets follow the config inside the optional data");
    }
  }
  if (h.stream_v2() && c.payload != PayloadKind::kLibxl) {
    add(R::kContXl12, c.payload_offset, w,
        "the STREAMv2 flag says a libxl stream follows, but the payload is a " +
            std::string(payload_name(c.payload)) +
            (c.payload == PayloadKind::kLibxc ? " image" : " image or unknown data"));
  } else if (!h.stream_v2() && c.payload != PayloadKind::kLegacy) {
    add(R::kContXl12, h.offset + 36, w,
        "the STREAMv2 flag is clear (a legacy image follows), but the payload is a " +
            std::string(payload_name(c.payload)) +
            " stream: xl would run the legacy converter on it");
  }
}

void Verifier::check_libvirt(const ContainerInfo& c) {
  const LibvirtHeaderInfo& h = *c.libvirt;
  const std::string w = "libvirt header";
  if (h.version != 1 && h.version != 2) {
    add(R::kContLv02, h.offset + 16, w, "version is " + std::to_string(h.version) + ", expected 1 or 2");
  }
  if (h.xml_len == 0) add(R::kContLv03, h.offset + 20, w, "xmlLen is 0: libvirt refuses the file");
  if (!h.unused_zero) add(R::kContLv05, h.offset + 24, w, "unused[10] is not all zero");
  if (h.xml_len > 0) {
    const std::size_t nul = h.xml.find('\0');
    if (nul != h.xml.size() - 1) {
      add(R::kContLv06, h.offset + 64 + (nul == std::string::npos ? h.xml.size() : nul), w,
          nul == std::string::npos ? "the domain XML does not end with a NUL"
                                   : "the domain XML has a NUL at XML offset " +
                                         std::to_string(nul) + " before its end");
    }
    s_.config = xml_facts(std::string_view(h.xml).substr(0, nul));
  }
  if (h.version == 2 && c.payload != PayloadKind::kLibxl) {
    add(R::kContLv07, h.offset + 16, w,
        "version 2 says a libxl stream follows, but the payload is a " +
            std::string(payload_name(c.payload)) + " image");
  } else if (h.version == 1 && c.payload != PayloadKind::kLegacy) {
    add(R::kContLv07, h.offset + 16, w,
        "version 1 says a legacy image follows, but the payload is a " +
            std::string(payload_name(c.payload)) + " stream");
  }
}

void Verifier::legacy_payload(const ContainerInfo& c) {
  out_.complete = false;
  auto head = src_ != nullptr ? src_->peek(64) : Expected<Bytes>(Bytes{});
  if (!head) return container_error(head.error());
  const bool container_says = (c.xl && !c.xl->stream_v2()) || (c.libvirt && c.libvirt->version == 1);
  if (container_says || looks_like_legacy(*head)) {
    add(R::kStream02, c.payload_offset, "input",
        "legacy (pre-Xen 4.6) image: streamverify checks v2/v3 streams; convert it with "
        "streamconv first");
    return;
  }
  add(R::kStream03, c.payload_offset, "input",
      "unrecognised format: not an xl or libvirt save file, a libxl stream, a libxc image or a "
      "legacy image (first octets: " + hex_octets(*head, 16) + ")");
}

void Verifier::walk(PayloadKind kind) {
  StreamCursor cur(*src_, kind);
  if (auto st = cur.start(); !st) return read_error(st.error());
  begin_walk(cur, kind);
  // From a pipe, the pages of a PAGE_DATA record go to /dev/null inside the
  // kernel (Source::skip) unless a rule reads one of them (needs_page).
  const bool direct = src_->moves_directly();
  while (!cur.done()) {
    auto r = direct ? cur.next_head(8) : cur.next();
    if (r && !r->complete()) {
      const bool pages = r->layer == Layer::kLibxc &&
                         r->type == static_cast<std::uint32_t>(xc::RecordType::kPageData) &&
                         r->body.size() >= 8;
      std::size_t want = RecordReader::kWholeBody;
      if (pages) {
        want = static_cast<std::size_t>(
            std::min<std::uint64_t>(8 + 8 * std::uint64_t{r->fields().u32(0)}, r->length));
      }
      if (r->body.size() < want) r = cur.extend(want);
      if (r && pages && !r->complete()) {
        const Fields f = r->fields();
        for (std::size_t off = 8; off + 8 <= r->body.size(); off += 8) {
          if (needs_page(f.u64(off))) {
            r = cur.extend(RecordReader::kWholeBody);
            break;
          }
        }
      }
      if (r && !r->complete()) {
        note_libxc_headers(cur);
        if (!skip_pages(cur, *r)) return;
        continue;
      }
    }
    note_libxc_headers(cur);
    if (!r) return read_error(r.error());
    step(cur, *r);
    if (options_.progress && r->end_offset() >= next_progress_) {
      options_.progress(r->end_offset(), src_->size_hint());
      next_progress_ = r->end_offset() + options_.progress_interval;
    }
    if (stop_ != Stop::kNo) {
      // The restore reads no further (a Remus secondary at the libxc END, a
      // COLO secondary on a broken channel): neither does the verifier.
      cur.release();
      return end_walk_unread(src_->position());
    }
  }
  auto fin = cur.finish();
  end_walk(fin, src_->position());
}

// A PAGE_DATA head (count and entries) whose pages no rule reads: they are
// skipped past user space, then the record is judged as a whole one would
// be (its entries, then its padding). Input that ends inside the record is
// reported exactly as the cursor reports a record cut short, and the
// record itself is not judged, as from a file. False when the walk ends.
bool Verifier::skip_pages(StreamCursor& cur, const RecordView& rec) {
  head_copy_.assign(rec.body.begin(), rec.body.end());
  RecordView head = rec;
  head.body = Bytes(head_copy_.data(), head_copy_.size());
  cur.detach();  // the rest of the record is ours to move on; `rec`'s views are void
  const std::uint64_t padded = (std::uint64_t{rec.length} + 7) & ~std::uint64_t{7};
  const std::uint64_t body_rest = rec.length - head.body.size();
  const auto pad = static_cast<std::size_t>(padded - rec.length);
  auto cut = [&](Error e) {
    if (e.code == ErrorCode::kTruncated) {
      const std::uint64_t input_end = e.offset;
      e.range = ByteRange{rec.offset, rec.offset + 8 + padded};
      e.message = rec.label() + ": truncated: the record needs [" + hex(rec.offset) + ", " +
                  hex(rec.offset + 8 + padded) + ") but the input ends at " + hex(input_end);
    }
    e.record_index = rec.index;
    e.record_type = rec.type;
    read_error(e);
    return false;
  };
  if (auto sk = src_->skip(body_rest, rec.label()); !sk) return cut(std::move(sk).error());
  auto p = src_->pull(pad, rec.label());
  if (!p) {
    Error e = std::move(p).error();
    if (e.code == ErrorCode::kTruncated) {
      auto avail = src_->peek(pad);
      e.offset = src_->position() + (avail ? avail->size() : 0);
    }
    return cut(std::move(e));
  }
  std::array<std::byte, 8> padding{};
  std::copy_n(p->begin(), pad, padding.begin());
  src_->consume(pad);
  head.padding = Bytes(padding.data(), pad);
  step(cur, head);
  check_padding(head);
  if (options_.progress && head.end_offset() >= next_progress_) {
    options_.progress(head.end_offset(), src_->size_hint());
    next_progress_ = head.end_offset() + options_.progress_interval;
  }
  return true;
}

void Verifier::begin_walk(const StreamCursor& cur, PayloadKind kind) {
  nested_ = kind == PayloadKind::kLibxl;
  in_libxc_ = !nested_;
  if (nested_ && cur.libxl_header()) {
    s_.libxl = *cur.libxl_header();
    check_libxl_header();
  }
}

void Verifier::step(const StreamCursor& cur, const RecordView& rec) {
  note_libxc_headers(cur);
  on_record(rec);
}

void Verifier::end_walk(const Expected<void>& fin, std::uint64_t bytes) {
  s_.bytes = bytes;
  if (!fin) {
    const Error& e = fin.error();
    if (e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage) return fail(e);
    if (!e.range) {  // a decoding layer failed after END (e.g. a cut zstd frame)
      out_.complete = false;
      return add(e.code == ErrorCode::kTruncated ? R::kStream04 : R::kStream03, e.offset, "input",
                 e.message);
    }
    const std::uint64_t n = e.range ? e.range->end - e.range->begin : 0;
    add(R::kStream06, e.offset, "input",
        std::to_string(n) + " octets follow the final END record [" + hex(e.offset) + ", " +
            hex(e.offset + n) + "); Xen never reads them");
  }
  finish_walk();
}

void Verifier::end_walk_unread(std::uint64_t bytes) {
  s_.bytes = bytes;
  finish_walk();
}

void Verifier::read_error(const Error& e) {
  s_.bytes = e.offset;
  if (e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage) return fail(e);
  // The framing messages start "record #N NAME at 0x...: "; keep what follows.
  auto strip = [](const std::string& m) {
    const std::size_t p = m.find(": ");
    return p == std::string::npos ? m : m.substr(p + 2);
  };
  auto record_where = [&]() {
    return "record #" + std::to_string(e.record_index.value_or(0)) + " " +
           record_display_name(in_libxc_ ? Layer::kLibxc : Layer::kLibxl, e.record_type.value_or(0));
  };
  if (e.code == ErrorCode::kLimit && committed_ > 0) {
    // Xen's read_record() fails on it; after a checkpoint that is a broken
    // channel: it fails over to the last one (restore()'s remus_failover).
    add(R::kLibxcCkpt03, e.offset, record_where(),
        strip(e.message) + ": after checkpoint " + std::to_string(committed_) +
            " Xen's read fails and it fails over to that checkpoint");
    finish_walk();
    return;
  }
  if (e.code == ErrorCode::kLimit) {
    out_.complete = false;
    return add(in_libxc_ ? R::kLibxcRec01 : R::kLibxlRec01, e.offset, record_where(),
               strip(e.message));
  }
  if (e.code == ErrorCode::kMalformed) {
    out_.complete = false;
    // read_image_header: a marker error covers [at, at+8), an id error [at+8, at+12).
    const bool id = e.range && e.range->end - e.range->begin == 4;
    if (e.message.rfind("libxc image header", 0) == 0) {
      return add(id ? R::kLibxcIhdr02 : R::kLibxcIhdr01, e.offset, "libxc image header",
                 e.message.substr(20));
    }
    return add(R::kStream03, e.offset, "input", e.message);
  }
  // Truncation.
  const bool at_boundary = e.message.rfind("the stream ends at ", 0) == 0;
  if (checkpoints_ > 0) {
    if (committed_ == 0) {
      out_.complete = false;
      return add(R::kLibxcCkpt02, e.offset, "input",
                 "the stream ends before its first checkpoint was committed: Xen has no "
                 "consistent state to restore");
    }
    if (!(at_boundary && records_since_commit_ == 0)) {
      add(R::kLibxcCkpt03, e.offset, "input",
          "the stream ends inside checkpoint " + std::to_string(committed_ + 1) +
              " (" + (at_boundary ? "at a record boundary" : "inside a record") +
              "): Xen discards it and restores checkpoint " + std::to_string(committed_));
    }
    if (pages_in_period_ > 0 || records_since_commit_ > 0) {
      if (s_.pages_per_checkpoint.size() < Summary::kMaxListed) {
        s_.pages_per_checkpoint.push_back(pages_in_period_);
      }
    }
    finish_walk();
    return;
  }
  if (at_boundary && nested_ && seen_libxc_context_ && !in_libxc_) {
    // libxl's reader asks for the next record header and takes the end of
    // input for success; the header it zero-filled reads as END, so Xen
    // restores the stream (the judge's verdict, tests/xenhost).
    add(R::kStream07, e.offset, "input",
        "the stream ends at " + hex(e.offset) +
            " without its libxl END record: Xen's libxl reads the end of input at a record "
            "boundary as END");
    end_implied_ = true;
    finish_walk();
    return;
  }
  out_.complete = false;
  if (at_boundary) {
    return add(R::kStream05, e.offset, "input",
               "the stream ends at " + hex(e.offset) + " without its " +
                   (in_libxc_ ? "libxc" : "libxl") + " END record");
  }
  std::string where = "input";
  if (e.record_index && e.record_type) where = record_where();
  add(R::kStream04, e.offset, where, where == "input" ? e.message : strip(e.message));
}

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

void Verifier::finish_walk() {
  // Guest type for the summary.
  if (is_pv_) {
    s_.guest_type = "x86 PV";
  } else if (is_hvm_) {
    if (config_says("pvh")) {
      s_.guest_type = "x86 PVH";
    } else if (config_says("hvm") || s_.emulators_total > 0) {
      s_.guest_type = "x86 HVM";
    } else {
      s_.guest_type = "x86 HVM or PVH";
    }
  }
  s_.data_pfns = pfns_.distinct();
  s_.data_pfns_sent_again = pfns_.sent_more_than_once();
  s_.pfn_tracking_capped = pfns_.capped();
  s_.pfn_tracking_bytes = pfns_.bytes();
  s_.checkpoints = checkpoints_;
  s_.committed = committed_;
  if (checkpoints_ == 0 && nested_ && is_hvm_ && config_says("hvm") && !emulator_context_seen_ &&
      out_.complete) {
    add(R::kLibxlEmu06, s_.bytes, "input",
        "the config says HVM but the stream carries no EMULATOR_CONTEXT: the device model "
        "would start without its state");
  }
}

// ---------------------------------------------------------------------------

void Verifier::on_record(const RecordView& rec) {
  ++s_.records;
  // A view pulled as a head (PAGE_DATA under streamrestore) has its padding
  // checked by check_padding() once the body is whole.
  if (rec.complete()) check_padding(rec);
  if (rec.layer == Layer::kLibxl) {
    on_libxl(rec);
  } else {
    on_libxc(rec);
  }
}

void Verifier::check_padding(const RecordView& rec) {
  for (std::size_t i = 0; i < rec.padding.size(); ++i) {
    if (rec.padding[i] != std::byte{0}) {
      Problem p = rec_problem(rec, rec.body_offset() + rec.length + i,
                              "padding octet " + std::to_string(i) + " is " +
                                  hex(static_cast<unsigned>(rec.padding[i])) + ", expected 0");
      p.rule = rule_info(rec.layer == Layer::kLibxl ? R::kLibxlRec02 : R::kLibxcRec02).id;
      push(std::move(p));
      break;
    }
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

// ---------------------------------------------------------------------------

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
  const std::uint64_t gdt_ents = ulong(gdt_ents_off);
  if (gdt_ents > 7168) {
    add_rec(R::kLibxcVcpu12, rec, 8 + gdt_ents_off,
            "vcpu " + std::to_string(id) + ": gdt_ents " + std::to_string(gdt_ents) +
                " exceeds 7168 (FIRST_RESERVED_GDT_ENTRY)");
  } else {
    const std::uint64_t frames = (gdt_ents + 511) / 512;
    for (std::uint64_t i = 0; i < frames; ++i) ref(ulong(gdt_frames_off + step * i), gdt_frames_off + step * i);
  }
  if (id == 0) ref(ulong(w64 ? 616 : 524), w64 ? 616 : 524);
  if (w64) {
    ref(ctx.u64(cr3_off) >> 12, cr3_off);
    const std::uint64_t cr1 = ctx.u64(4992);
    if ((cr1 & 1) != 0) ref(cr1 >> 12, 4992);
  } else {
    const std::uint32_t cr3 = ctx.u32(cr3_off);
    ref(((cr3 >> 12) | (cr3 << 20)) & 0xffffffffu, cr3_off);
  }
  if (worst) {
    basic_refs_.insert_or_assign(id, *worst);
  } else {
    basic_refs_.erase(id);
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
}

}  // namespace

VerifyResult verify(Source& src, const VerifyOptions& options) {
  VerifyResult result;
  Verifier(&src, options, result).run();
  return result;
}

struct RuleEngine::Impl {
  explicit Impl(VerifyOptions o) : options(std::move(o)), verifier(nullptr, options, result) {}
  VerifyOptions options;
  VerifyResult result;
  Verifier verifier;
};

RuleEngine::RuleEngine(VerifyOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
RuleEngine::~RuleEngine() = default;

void RuleEngine::container(const ContainerInfo& c, Source* src) {
  impl_->result.summary.container = c;
  impl_->verifier.with_source(src, [&](Verifier& v) {
    v.check_container(c);
    if (c.payload == PayloadKind::kLegacy) v.legacy(c);
  });
}

void RuleEngine::container_failed(Source& src, const Error& e) {
  impl_->verifier.with_source(&src, [&](Verifier& v) { v.container_failed(e); });
}

void RuleEngine::started(const StreamCursor& cur, PayloadKind kind) {
  impl_->verifier.begin_walk(cur, kind);
}

bool RuleEngine::record(const StreamCursor& cur, const RecordView& rec) {
  impl_->verifier.step(cur, rec);
  return impl_->result.errors > 0;
}

bool RuleEngine::padding(const RecordView& rec) {
  impl_->verifier.check_padding(rec);
  return impl_->result.errors > 0;
}

bool RuleEngine::needs_page(std::uint64_t entry) const { return impl_->verifier.needs_page(entry); }

bool RuleEngine::page(const RecordView& head, std::uint32_t index, Bytes contents) {
  impl_->verifier.check_page(head, index, contents);
  return impl_->result.errors > 0;
}

void RuleEngine::read_error(const Error& e) { impl_->verifier.read_error(e); }

bool RuleEngine::end(const Expected<void>& trailing, std::uint64_t bytes) {
  impl_->verifier.end_walk(trailing, bytes);
  return impl_->result.errors > 0;
}

bool RuleEngine::end(std::uint64_t bytes) {
  impl_->verifier.end_walk_unread(bytes);
  return impl_->result.errors > 0;
}

bool RuleEngine::broken() const { return impl_->result.errors > 0; }
bool RuleEngine::ends_here() const { return impl_->verifier.stop() == Verifier::Stop::kEnd; }
bool RuleEngine::fails_over_here() const { return impl_->verifier.stop() == Verifier::Stop::kFailover; }
bool RuleEngine::end_implied() const { return impl_->verifier.end_implied(); }

std::string_view mode_name(Mode m) {
  switch (m) {
    case Mode::kAuto: return "auto";
    case Mode::kPlain: return "plain";
    case Mode::kRemus: return "remus";
    case Mode::kColo: return "colo";
  }
  return "auto";
}

std::optional<Mode> parse_mode(std::string_view s) {
  for (Mode m : {Mode::kAuto, Mode::kPlain, Mode::kRemus, Mode::kColo}) {
    if (mode_name(m) == s) return m;
  }
  return std::nullopt;
}
const std::optional<Problem>& RuleEngine::first_error() const { return impl_->verifier.first_error(); }
const VerifyResult& RuleEngine::result() const { return impl_->result; }
std::size_t RuleEngine::problem_count() const { return impl_->result.problems.size(); }

VerifyResult verify_path(const std::string& path, const VerifyOptions& options) {
  // From a pipe, page bodies bypass user space: read no further ahead than
  // the records' heads.
  auto in = codecs::open_input(path, /*read_ahead=*/false);
  if (!in) {
    VerifyResult r;
    r.summary.input = path;
    r.failure = std::move(in).error();
    r.complete = false;
    return r;
  }
  VerifyResult r = verify(*in->source, options);
  r.summary.compressed = in->compressed;
  if (path != "-") r.summary.input = path;
  return r;
}

}  // namespace xenstream::verify
