#include <xenstream/libstream/records.h>

#include <cstring>

#include <xenstream/libstream/format/libxc.h>

namespace xenstream {

namespace xc = format::libxc;

namespace {

Error too_short(const RecordView& rec, std::size_t need) {
  Error e = rec.error_at(0, "body is " + std::to_string(rec.length) + " octets, expected at least " +
                                std::to_string(need));
  e.range = ByteRange{rec.body_offset(), rec.body_offset() + rec.length};
  return e;
}

// A view from next_head() that stops short of what the decoder must see.
Error partial_head(const RecordView& rec, std::uint64_t need) {
  return rec.error_at(0, "only " + std::to_string(rec.body.size()) + " of the body's octets were pulled, " +
                             std::to_string(need) + " are needed to decode it (extend() the view)",
                      ErrorCode::kUsage);
}

Error wrong_length(const RecordView& rec, std::uint64_t need) {
  Error e = rec.error_at(0, "body is " + std::to_string(rec.length) + " octets, expected " +
                                std::to_string(need));
  e.range = ByteRange{rec.body_offset(), rec.body_offset() + rec.length};
  return e;
}

}  // namespace

Expected<PageDataView> decode_page_data(const RecordView& rec) {
  if (rec.length < 8) return too_short(rec, 8);
  const Fields f = rec.fields();
  if (f.size() < 8) return partial_head(rec, 8);
  PageDataView v;
  v.count = f.u32(0);
  v.reserved = f.u32(4);
  if (v.count == 0) return rec.error_at(0, "count is 0");
  const std::uint64_t pfn_end = 8 + 8 * std::uint64_t{v.count};
  if (pfn_end > rec.length) {
    Error e = rec.error_at(0, "count " + std::to_string(v.count) + " needs " +
                                  std::to_string(pfn_end) + " octets of header and pfns, body has " +
                                  std::to_string(rec.length));
    return e;
  }
  if (f.size() < pfn_end) return partial_head(rec, pfn_end);
  v.entries = f.sub(8, 8 * std::size_t{v.count});
  for (std::uint32_t i = 0; i < v.count; ++i) {
    const unsigned t = v.type(i);
    if (!xc::page_type_known(t)) {
      return rec.error_at(8 + 8 * std::size_t{i},
                          "pfn[" + std::to_string(i) + "] has unknown page type " + hex(t) +
                              " (entry " + hex(v.entry(i)) + ")");
    }
    if (xc::page_type_has_data(t)) ++v.data_pages;
  }
  const std::uint64_t want = pfn_end + std::uint64_t{xc::kPageSize} * v.data_pages;
  if (want != rec.length) {
    return rec.error_at(pfn_end, std::to_string(v.data_pages) + " pages with data need a body of " +
                                     std::to_string(want) + " octets, body has " +
                                     std::to_string(rec.length));
  }
  v.pages = rec.body.subspan(static_cast<std::size_t>(pfn_end));
  return v;
}

Expected<X86PvInfoView> decode_x86_pv_info(const RecordView& rec) {
  if (rec.length < 8) return too_short(rec, 8);
  const Fields f = rec.fields();
  X86PvInfoView v;
  v.guest_width = f.u8(0);
  v.pt_levels = f.u8(1);
  for (int i = 7; i >= 2; --i) v.reserved = (v.reserved << 8) | f.u8(static_cast<std::size_t>(i));
  return v;
}

Expected<P2mFramesView> decode_p2m_frames(const RecordView& rec) {
  if (rec.length < 8) return too_short(rec, 8);
  if ((rec.length - 8) % 8 != 0) {
    return rec.error_at(8, "frame list of " + std::to_string(rec.length - 8) +
                               " octets is not a multiple of 8");
  }
  const Fields f = rec.fields();
  P2mFramesView v;
  v.start_pfn = f.u32(0);
  v.end_pfn = f.u32(4);
  v.frames = f.tail(8);
  return v;
}

Expected<VcpuBlobView> decode_vcpu_blob(const RecordView& rec) {
  if (rec.length < 8) return too_short(rec, 8);
  const Fields f = rec.fields();
  VcpuBlobView v;
  v.vcpu_id = f.u32(0);
  v.reserved = f.u32(4);
  v.blob = f.tail(8);
  return v;
}

Expected<TscInfoView> decode_tsc_info(const RecordView& rec) {
  if (rec.length != 24) return wrong_length(rec, 24);
  const Fields f = rec.fields();
  TscInfoView v;
  v.mode = f.u32(0);
  v.khz = f.u32(4);
  v.nsec = f.u64(8);
  v.incarnation = f.u32(16);
  v.reserved = f.u32(20);
  return v;
}

Expected<HvmParamsView> decode_hvm_params(const RecordView& rec) {
  if (rec.length < 8) return too_short(rec, 8);
  const Fields f = rec.fields();
  HvmParamsView v;
  v.count = f.u32(0);
  v.reserved = f.u32(4);
  const std::uint64_t want = 8 + 16 * std::uint64_t{v.count};
  if (want != rec.length) {
    return rec.error_at(0, "count " + std::to_string(v.count) + " needs a body of " +
                               std::to_string(want) + " octets, body has " +
                               std::to_string(rec.length));
  }
  v.entries = f.tail(8);
  return v;
}

Expected<EmulatorView> decode_emulator(const RecordView& rec) {
  if (rec.length < 8) return too_short(rec, 8);
  const Fields f = rec.fields();
  EmulatorView v;
  v.id = f.u32(0);
  v.index = f.u32(4);
  v.data = f.tail(8);
  return v;
}

Expected<std::vector<std::pair<std::string, std::string>>> decode_xenstore_pairs(
    const RecordView& rec, const EmulatorView& em) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto* base = reinterpret_cast<const char*>(em.data.bytes().data());
  const std::size_t n = em.data.size();
  std::size_t pos = 0;
  auto take = [&](std::string& s, const char* what) -> Expected<void> {
    const void* nul = std::memchr(base + pos, '\0', n - pos);
    if (nul == nullptr) {
      return rec.error_at(8 + pos, std::string(what) + " at data offset " + std::to_string(pos) +
                                       " is not NUL-terminated");
    }
    const auto len = static_cast<std::size_t>(static_cast<const char*>(nul) - (base + pos));
    s.assign(base + pos, len);
    pos += len + 1;
    return {};
  };
  while (pos < n) {
    std::pair<std::string, std::string> kv;
    XS_TRY(take(kv.first, "key"));
    if (pos >= n) {
      return rec.error_at(8 + n, "key \"" + kv.first + "\" has no value");
    }
    XS_TRY(take(kv.second, "value"));
    out.push_back(std::move(kv));
  }
  return out;
}

Expected<std::uint32_t> decode_checkpoint_state(const RecordView& rec) {
  if (rec.length != 4) return wrong_length(rec, 4);
  return rec.fields().u32(0);
}

}  // namespace xenstream
