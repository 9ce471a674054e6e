#include "fuzz/common/walk.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>

namespace xenstream::fuzz {

namespace xc = format::libxc;
namespace xl = format::libxl;

void check_failed(const char* file, int line, const char* cond, const std::string& what) {
  std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n  %s\n", file, line, cond, what.c_str());
  std::fflush(stderr);
  std::abort();
}

Expected<Bytes> TrickleSource::fill(std::size_t min) {
  const std::size_t left = data_.size() - cursor_;
  const std::size_t n = std::min(std::max<std::size_t>(min, 1), left);
  // A new allocation every time: the previous window is freed, so a view
  // used after the next fill() reads freed memory.
  window_ = std::make_unique<std::byte[]>(n == 0 ? 1 : n);
  if (n > 0) std::memcpy(window_.get(), data_.data() + cursor_, n);
  return Bytes(window_.get(), n);
}

namespace {

struct Hash {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void add(Bytes b) { add(b.data(), b.size()); }
  void add(std::uint64_t v) { add(&v, sizeof v); }
  void add(const std::string& s) { add(s.data(), s.size()); }
};

void check_error_in_record(const Error& e, const RecordView& rec) {
  FUZZ_CHECK(e.offset >= rec.offset && e.offset <= rec.end_offset(),
             rec.label() + ": decoder error outside the record: " + e.describe());
  FUZZ_CHECK(e.record_index && *e.record_index == rec.index, rec.label() + ": " + e.describe());
  if (e.range) FUZZ_CHECK(e.range->begin <= e.range->end, e.describe());
  FUZZ_CHECK(!e.message.empty(), rec.label());
}

template <typename T>
bool decoded(Expected<T>& r, const RecordView& rec, Hash& h) {
  if (r) return true;
  check_error_in_record(r.error(), rec);
  h.add(r.error().message);
  h.add(r.error().offset);
  return false;
}

// Calls the decoder that matches the record and folds what it returned into
// the hash, touching every element of every view it hands out.
void decode(const RecordView& rec, Hash& h) {
  h.add(rec.body);
  if (rec.layer == Layer::kLibxc) {
    switch (static_cast<xc::RecordType>(rec.type)) {
      case xc::RecordType::kPageData: {
        auto r = decode_page_data(rec);
        if (!decoded(r, rec, h)) return;
        FUZZ_CHECK(r->count >= 1, rec.label());
        FUZZ_CHECK(r->entries.size() == 8 * std::size_t{r->count}, rec.label());
        FUZZ_CHECK(r->pages.size() == std::size_t{xc::kPageSize} * r->data_pages, rec.label());
        std::uint32_t with_data = 0;
        for (std::uint32_t i = 0; i < r->count; ++i) {
          FUZZ_CHECK(xc::page_type_known(r->type(i)), rec.label());
          with_data += xc::page_type_has_data(r->type(i)) ? 1 : 0;
          h.add(r->pfn(i));
        }
        FUZZ_CHECK(with_data == r->data_pages, rec.label());
        return;
      }
      case xc::RecordType::kX86PvInfo: {
        auto r = decode_x86_pv_info(rec);
        if (!decoded(r, rec, h)) return;
        h.add(std::uint64_t{r->guest_width} << 8 | r->pt_levels);
        h.add(r->reserved);
        return;
      }
      case xc::RecordType::kX86PvP2mFrames: {
        auto r = decode_p2m_frames(rec);
        if (!decoded(r, rec, h)) return;
        FUZZ_CHECK(8 + 8 * r->count() == rec.length, rec.label());
        for (std::size_t i = 0; i < r->count(); ++i) h.add(r->frame(i));
        return;
      }
      case xc::RecordType::kX86PvVcpuBasic:
      case xc::RecordType::kX86PvVcpuExtended:
      case xc::RecordType::kX86PvVcpuXsave:
      case xc::RecordType::kX86PvVcpuMsrs: {
        auto r = decode_vcpu_blob(rec);
        if (!decoded(r, rec, h)) return;
        FUZZ_CHECK(r->blob.size() + 8 == rec.length, rec.label());
        h.add(std::uint64_t{r->vcpu_id});
        h.add(r->blob.bytes());
        return;
      }
      case xc::RecordType::kX86TscInfo: {
        auto r = decode_tsc_info(rec);
        if (!decoded(r, rec, h)) return;
        h.add(r->nsec ^ r->khz ^ r->mode ^ r->incarnation ^ r->reserved);
        return;
      }
      case xc::RecordType::kHvmParams: {
        auto r = decode_hvm_params(rec);
        if (!decoded(r, rec, h)) return;
        FUZZ_CHECK(8 + 16 * std::uint64_t{r->count} == rec.length, rec.label());
        for (std::uint32_t i = 0; i < r->count; ++i) h.add(r->index(i) ^ r->value(i));
        return;
      }
      default:
        return;
    }
  }
  switch (static_cast<xl::RecordType>(rec.type)) {
    case xl::RecordType::kEmulatorXenstoreData: {
      auto em = decode_emulator(rec);
      if (!decoded(em, rec, h)) return;
      auto pairs = decode_xenstore_pairs(rec, *em);
      if (!decoded(pairs, rec, h)) return;
      std::size_t octets = 0;
      for (const auto& [k, v] : *pairs) {
        h.add(k);
        h.add(v);
        octets += k.size() + v.size() + 2;
      }
      FUZZ_CHECK(octets == em->data.size(), rec.label() + ": pairs do not cover the data");
      return;
    }
    case xl::RecordType::kEmulatorContext: {
      auto em = decode_emulator(rec);
      if (!decoded(em, rec, h)) return;
      FUZZ_CHECK(em->data.size() + 8 == rec.length, rec.label());
      h.add(std::uint64_t{em->id} << 32 | em->index);
      return;
    }
    case xl::RecordType::kCheckpointState: {
      auto r = decode_checkpoint_state(rec);
      if (!decoded(r, rec, h)) return;
      h.add(std::uint64_t{*r});
      return;
    }
    default:
      return;
  }
}

void check_walk_error(const Error& e, std::uint64_t input_size) {
  FUZZ_CHECK(!e.message.empty(), "an error without a message");
  if (input_size != 0) {
    FUZZ_CHECK(e.offset <= input_size, e.describe() + " (input size " + hex(input_size) + ")");
  }
  if (e.range) FUZZ_CHECK(e.range->begin <= e.range->end, e.describe());
}

}  // namespace

WalkResult walk_stream(Source& src, std::uint64_t input_size, FormatHint hint,
                       std::size_t max_records, std::uint32_t max_record_length,
                       std::size_t body_prefix) {
  WalkResult out;
  auto fail = [&](Error e) {
    check_walk_error(e, input_size);
    out.error = std::move(e);
    return out;
  };
  auto c = read_container(src, hint);
  if (!c) return fail(std::move(c).error());
  out.container = *c;
  FUZZ_CHECK(src.position() == c->payload_offset, "read_container stopped before the payload");
  if (c->payload == PayloadKind::kLegacy) return out;

  ReaderLimits limits;
  limits.max_record_length = max_record_length;
  StreamCursor cur(src, c->payload, limits);
  if (auto s = cur.start(); !s) return fail(std::move(s).error());
  std::uint64_t prev_end = src.position();
  while (!cur.done() && out.records.size() < max_records) {
    auto r = cur.next_head(body_prefix);
    if (!r) return fail(std::move(r).error());
    if (!r->complete()) {
      FUZZ_CHECK(r->body.size() == body_prefix && r->body.size() < r->length && r->padding.empty(),
                 r->label() + ": a head of the wrong size");
      r = cur.extend(RecordReader::kWholeBody);
      if (!r) return fail(std::move(r).error());
    }
    const RecordView& rec = *r;
    FUZZ_CHECK(rec.body.size() == rec.length, rec.label());
    FUZZ_CHECK(rec.padding.size() == (8 - rec.length % 8) % 8, rec.label());
    FUZZ_CHECK(rec.length <= max_record_length, rec.label());
    FUZZ_CHECK(rec.offset >= prev_end, rec.label() + " overlaps the previous record");
    FUZZ_CHECK(rec.index == out.records.size(), rec.label());
    if (input_size != 0) FUZZ_CHECK(rec.end_offset() <= input_size, rec.label());
    prev_end = rec.end_offset();
    Hash h;
    decode(rec, h);
    out.records.push_back({rec.layer, rec.type, rec.length, rec.offset, h.h});
  }
  if (cur.done()) {
    auto f = cur.finish();
    if (!f) return fail(std::move(f).error());
    out.finished = true;
  }
  return out;
}

bool same_error(const Error& a, const Error& b) {
  auto same_range = [](const std::optional<ByteRange>& x, const std::optional<ByteRange>& y) {
    if (x.has_value() != y.has_value()) return false;
    return !x || (x->begin == y->begin && x->end == y->end);
  };
  return a.code == b.code && a.offset == b.offset && same_range(a.range, b.range) &&
         a.record_index == b.record_index && a.record_type == b.record_type &&
         a.message == b.message;
}

std::string WalkResult::describe() const {
  std::string s;
  if (container) {
    s += "container " + std::string(container_name(container->kind)) + " payload " +
         std::string(payload_name(container->payload)) + " at " + hex(container->payload_offset) +
         "\n";
  }
  for (const SeenRecord& r : records) {
    s += "  " + std::string(layer_name(r.layer)) + " " + record_display_name(r.layer, r.type) +
         " len " + hex(r.length) + " at " + hex(r.offset) + " digest " + hex(r.digest) + "\n";
  }
  if (error) {
    s += "error " + std::string(error_code_name(error->code)) + ": " + error->describe() + "\n";
  }
  s += finished ? "finished\n" : "not finished\n";
  return s;
}

void check_same_walk(const WalkResult& a, const WalkResult& b, const char* what) {
  bool same = a.records == b.records && a.finished == b.finished &&
              a.error.has_value() == b.error.has_value() &&
              a.container.has_value() == b.container.has_value();
  if (same && a.error) same = same_error(*a.error, *b.error);
  if (same && a.container) {
    same = a.container->kind == b.container->kind && a.container->payload == b.container->payload &&
           a.container->payload_offset == b.container->payload_offset;
  }
  FUZZ_CHECK(same, std::string(what) + ":\n--- first walk\n" + a.describe() +
                       "--- second walk\n" + b.describe());
}

int pipe_holding(Bytes in) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  const bool whole = ::fcntl(p[1], F_SETPIPE_SZ, 1 << 20) >= static_cast<int>(in.size()) &&
                     (in.empty() || ::write(p[1], in.data(), in.size()) == static_cast<ssize_t>(in.size()));
  ::close(p[1]);
  if (whole) return p[0];
  ::close(p[0]);
  return -1;
}

}  // namespace xenstream::fuzz
