#include "tools/verify/verifier.h"

#include "tools/verify/verifier_impl.h"

#include <xenstream/codecs/open_input.h>

namespace xenstream::verify {

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

namespace detail {

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
      e = rec.cut_short(std::move(e), input_end);
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

}  // namespace detail

using detail::Verifier;

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
  impl_->verifier.check_pages(rec);
  impl_->verifier.check_padding(rec);
  return impl_->result.errors > 0;
}

bool RuleEngine::pages(const RecordView& rec) {
  impl_->verifier.check_pages(rec);
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

